"""Poverty Mapper: poverty estimates from satellite imagery, as a QGIS plugin."""
from __future__ import annotations


def classFactory(iface):  # noqa: N802 (QGIS entry point name)
    """QGIS calls this to create the plugin; imports stay lazy so a missing
    dependency gives a helpful message instead of breaking QGIS start-up."""
    from .dependencies import missing_dependencies

    missing = missing_dependencies()
    if missing:
        from .dependencies import MissingDependenciesPlugin

        return MissingDependenciesPlugin(iface, missing)
    from .plugin import PovertyMapperPlugin

    return PovertyMapperPlugin(iface)
