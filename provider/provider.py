"""The Processing provider ``povertymapper``."""
from __future__ import annotations

from pathlib import Path

from qgis.core import QgsMessageLog, QgsProcessingModelAlgorithm, QgsProcessingProvider, Qgis
from qgis.PyQt.QtGui import QIcon

from . import message_log
from .aggregate_algorithm import AggregateAlgorithm
from .fit_clusters_algorithm import FitClustersAlgorithm
from .predict_algorithm import PredictAlgorithm
from .to_polygons_algorithm import ToPolygonsAlgorithm
from .train_proxy_algorithm import TrainProxyAlgorithm

RESOURCES = Path(__file__).resolve().parents[1] / "resources"
ICON = RESOURCES / "icon.svg"
# Example Processing models shipped with the plugin, offered in the toolbox too.
EXAMPLE_MODELS = (RESOURCES / "models" / "fit_predict_aggregate.model3",)


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
            TrainProxyAlgorithm(), FitClustersAlgorithm(), PredictAlgorithm(), ToPolygonsAlgorithm(), AggregateAlgorithm()
        ):
            self.addAlgorithm(algorithm)
        for path in EXAMPLE_MODELS:
            model = QgsProcessingModelAlgorithm()
            if model.fromFile(str(path)):
                self.addAlgorithm(model)
            else:
                QgsMessageLog.logMessage(f"Cannot read the example model {path}", message_log.TAG, Qgis.Warning)
