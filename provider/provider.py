"""The Processing provider ``povertymapper``."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsMessageLog, QgsProcessingModelAlgorithm, QgsProcessingProvider, Qgis
from qgis.PyQt.QtGui import QIcon

from . import message_log
from .aggregate_algorithm import AggregateAlgorithm
from .fit_clusters_algorithm import FitClustersAlgorithm
from .install_lights_algorithm import InstallLightsAlgorithm
from .predict_algorithm import PredictAlgorithm
from .to_polygons_algorithm import ToPolygonsAlgorithm
from .train_proxy_algorithm import TrainProxyAlgorithm

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
ICON = RESOURCES / "icon.svg"
# Example Processing models shipped with the plugin, offered in the toolbox too, each under
# an id without spaces (a model's own name is its display name, spaces and all).
EXAMPLE_MODELS = {"povertybydistrict": RESOURCES / "models" / "fit_predict_aggregate.model3"}


class ExampleModel(QgsProcessingModelAlgorithm):
    """A shipped Processing model under a short id (``povertymapper:<key>``), shown by its own name."""

    def __init__(self, key: str = "", path: Path | None = None) -> None:
        super().__init__()
        self._key, self._path = key, path
        self.loaded = path is not None and self.fromFile(str(path))

    def name(self) -> str:
        return self._key

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return super().displayName()

    def createInstance(self):  # noqa: N802 (QGIS API)
        return ExampleModel(self._key, self._path)


class PovertyMapperProvider(QgsProcessingProvider):
    def __init__(self) -> None:
        super().__init__()
        message_log.install()

    def id(self) -> str:
        return "povertymapper"

    def name(self) -> str:
        return self.tr("Poverty Mapper")

    def longName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Poverty Mapper: poverty estimates from satellite imagery")

    def icon(self) -> QIcon:
        return QIcon(str(ICON))

    def loadAlgorithms(self) -> None:  # noqa: N802 (QGIS API)
        for algorithm in (
            TrainProxyAlgorithm(), FitClustersAlgorithm(), PredictAlgorithm(), ToPolygonsAlgorithm(), AggregateAlgorithm(),
            InstallLightsAlgorithm(),
        ):
            self.addAlgorithm(algorithm)
        for key, path in EXAMPLE_MODELS.items():
            model = ExampleModel(key, path)
            if model.loaded:
                self.addAlgorithm(model)
            else:
                QgsMessageLog.logMessage(f"Cannot read the example model {path}", message_log.TAG, Qgis.Warning)
