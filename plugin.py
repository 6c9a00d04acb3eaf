"""Wires the plugin into QGIS: the Processing provider, the dock and its action."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsApplication
from qgis.PyQt.QtCore import QCoreApplication, Qt
from qgis.PyQt.QtGui import QIcon
from qgis.PyQt.QtWidgets import QAction

from .provider.provider import PovertyMapperProvider

ICON = str(Path(__file__).resolve().parent / "resources" / "icon.svg")


class PovertyMapperPlugin:
    def __init__(self, iface):
        self.iface = iface
        self.provider: PovertyMapperProvider | None = None
        self.dock = None
        self.action: QAction | None = None
        self.toolbar = None

    @staticmethod
    def tr(text: str) -> str:
        return QCoreApplication.translate("PovertyMapper", text)

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API; also called headless by qgis_process)
        if self.provider is None:
            provider = PovertyMapperProvider()
            # Refused (and logged by QGIS) when another copy of the plugin registered it.
            if QgsApplication.processingRegistry().addProvider(provider):
                self.provider = provider

    def initGui(self) -> None:  # noqa: N802 (QGIS API)
        self.initProcessing()
        from .ui.dock import PovertyDock

        self.dock = PovertyDock(self.iface)
        self.iface.addDockWidget(Qt.DockWidgetArea.RightDockWidgetArea, self.dock)
        self.action = QAction(QIcon(ICON), self.tr("Poverty Mapper"), self.iface.mainWindow())
        self.action.setCheckable(True)
        self.action.setChecked(self.dock.isVisible())
        self.action.toggled.connect(self.dock.setVisible)
        self.dock.visibilityChanged.connect(self.action.setChecked)
        # Its own toolbar, shown in a fresh profile (the Raster toolbar is hidden there), and
        # one entry in the Raster menu (not Raster > Poverty Mapper > Poverty Mapper).
        self.toolbar = self.iface.addToolBar(self.tr("Poverty Mapper"))
        self.toolbar.setObjectName("PovertyMapperToolbar")
        self.toolbar.addAction(self.action)
        self.iface.rasterMenu().addAction(self.action)

    def unload(self) -> None:
        if self.action is not None:
            self.iface.rasterMenu().removeAction(self.action)
            self.action.deleteLater()
            self.action = None
        if self.toolbar is not None:
            self.toolbar.deleteLater()  # QGIS has no removeToolBar: the toolbar goes with its widget
            self.toolbar = None
        if self.dock is not None:
            self.dock.unload()
            self.iface.removeDockWidget(self.dock)
            self.dock.deleteLater()
            self.dock = None
        if self.provider is not None:
            QgsApplication.processingRegistry().removeProvider(self.provider)
            self.provider = None
