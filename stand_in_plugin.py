"""Fail-soft start: when the Python packages the engine needs are missing or fail to load,
this plugin stands in for Poverty Mapper (classFactory returns it), so QGIS starts as
usual; it says what is wrong and how to fix it, and offers to install the packages."""
from __future__ import annotations

import sys

from .dependencies import DependencyProblem, problems_message


class MissingDependenciesPlugin:
    """Stands in for the plugin when dependencies are missing or broken: says how to fix it."""

    def __init__(self, iface, problems: list[DependencyProblem]):
        self.iface = iface
        self.problems = problems
        self.installer = None  # the 'Install dependencies' button, in the desktop

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API)
        """Headless (qgis_process): no message bar, and QGIS would only say "Algorithm ... not
        found": say on stderr what is missing and how to fix it."""
        if self.iface is None:
            sys.stderr.write(
                problems_message(self.problems)
                + " Under qgis_process, packages installed in a virtual environment are seen only when its "
                "site-packages folder is on PYTHONPATH (see the README).\n"
            )

    def initGui(self) -> None:  # noqa: N802 (QGIS API)
        from qgis.core import Qgis, QgsMessageLog

        text = problems_message(self.problems)
        QgsMessageLog.logMessage(text, "Poverty Mapper", Qgis.Warning)
        if self.iface is not None:
            from .dependency_installer import InstallerEntry

            self.installer = InstallerEntry(self.iface, self.problems)
            text += " Or click 'Install dependencies' on the Poverty Mapper toolbar: the plugin installs them for QGIS."
            self.iface.messageBar().pushMessage("Poverty Mapper", text, level=Qgis.Warning, duration=0)

    def unload(self) -> None:
        if self.installer is not None:
            self.installer.unload()
