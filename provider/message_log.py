"""Routes the plugin's logger (``poverty_mapper``) to the QGIS message log."""
from __future__ import annotations

import logging

from qgis.core import Qgis, QgsMessageLog

TAG = "Poverty Mapper"
_LEVELS = ((logging.ERROR, Qgis.Critical), (logging.WARNING, Qgis.Warning), (logging.NOTSET, Qgis.Info))


class QgsMessageLogHandler(logging.Handler):
    def emit(self, record: logging.LogRecord) -> None:
        level = next(q for py, q in _LEVELS if record.levelno >= py)
        QgsMessageLog.logMessage(self.format(record), TAG, level)


def install() -> None:
    logger = logging.getLogger("poverty_mapper")
    if not any(isinstance(h, QgsMessageLogHandler) for h in logger.handlers):
        logger.addHandler(QgsMessageLogHandler())
        logger.setLevel(logging.INFO)
