"""Fail-soft start when the Python packages the engine needs are missing."""
from __future__ import annotations

import importlib.util

REQUIRED = {
    "torch": "PyTorch runs the feature extractors (CPU or CUDA)",
    "rasterio": "rasterio reads imagery in windows and writes the estimate rasters",
}

INSTALL_HINT = (
    "Install them into the Python that QGIS uses, then restart QGIS. On Linux: "
    "'python3 -m pip install --user torch rasterio \"affine<3\"' (for a CPU-only PyTorch add "
    "'--index-url https://download.pytorch.org/whl/cpu'); on Windows run the same command in "
    "the OSGeo4W Shell. See the plugin's README, section 'Installing into QGIS'."
)


def missing_dependencies() -> list[str]:
    return [name for name in REQUIRED if importlib.util.find_spec(name) is None]


def missing_message(missing: list[str]) -> str:
    what = "; ".join(f"{name}: {REQUIRED[name]}" for name in missing)
    return f"Poverty Mapper needs Python packages that are not installed ({what}). {INSTALL_HINT}"


class MissingDependenciesPlugin:
    """Stands in for the plugin when dependencies are missing: says how to fix it."""

    def __init__(self, iface, missing: list[str]):
        self.iface = iface
        self.missing = missing

    def initProcessing(self) -> None:  # noqa: N802 (QGIS API)
        pass

    def initGui(self) -> None:  # noqa: N802 (QGIS API)
        from qgis.core import Qgis, QgsMessageLog

        text = missing_message(self.missing)
        QgsMessageLog.logMessage(text, "Poverty Mapper", Qgis.Warning)
        if self.iface is not None:
            self.iface.messageBar().pushMessage("Poverty Mapper", text, level=Qgis.Warning, duration=0)

    def unload(self) -> None:
        pass
