"""Poverty Mapper: poverty estimates from satellite imagery, as a QGIS plugin."""
from __future__ import annotations


def classFactory(iface):  # noqa: N802 (QGIS entry point name)
    """QGIS calls this to create the plugin. The dependencies are imported here first, so
    one that is missing or fails to load (e.g. a CUDA library) gives a message saying
    what to do instead of breaking QGIS start-up; the plugin's own imports stay lazy."""
    from .dependencies import add_dependencies_folder, dependency_problems

    add_dependencies_folder()  # packages the plugin installed for QGIS's Python
    problems = dependency_problems()
    if problems:
        from .stand_in_plugin import MissingDependenciesPlugin

        return MissingDependenciesPlugin(iface, problems)
    from .plugin import PovertyMapperPlugin

    return PovertyMapperPlugin(iface)
