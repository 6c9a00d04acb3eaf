"""What the plugin's Processing algorithms share."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Iterator

from qgis.core import (
    QgsProcessingAlgorithm,
    QgsProcessingException,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterNumber,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core.imagery.bands import parse_band_list
from ..core.device import DEVICE_CHOICES
from ..core.errors import Canceled, PovertyMapperError
from ..core.imagery.radiometry import PRESETS

RADIOMETRY_KEYS = ("auto", *PRESETS)


class PovertyAlgorithm(QgsProcessingAlgorithm):
    """Common parameters (bands, radiometry, device, seed) and error handling."""

    BANDS = "BANDS"
    RADIOMETRY = "RADIOMETRY"
    DEVICE = "DEVICE"

    def tr(self, text: str) -> str:
        return QCoreApplication.translate(type(self).__name__, text)

    def createInstance(self):  # noqa: N802 (QGIS API)
        return type(self)()

    def add_advanced(self, parameter: QgsProcessingParameterDefinition) -> None:
        parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)

    def add_imagery_parameters(self, with_device: bool = True) -> None:
        self.add_advanced(
            QgsProcessingParameterString(
                self.BANDS, self.tr("Band numbers to use, in order (e.g. 3,2,1; empty = guess)"), optional=True
            )
        )
        self.add_advanced(
            QgsProcessingParameterEnum(
                self.RADIOMETRY,
                self.tr("Radiometry (pixel values to reflectance)"),
                options=[self.tr("Auto (from the data type)"), *(p.label for p in PRESETS.values())],
                defaultValue=0,
            )
        )
        if with_device:
            self.add_advanced(
                QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), options=list(DEVICE_CHOICES), defaultValue=0)
            )

    def add_int(self, name: str, label: str, default: int, minimum: int, maximum: int, advanced: bool = False) -> None:
        parameter = QgsProcessingParameterNumber(name, label, defaultValue=default, minValue=minimum, maxValue=maximum)
        self.add_advanced(parameter) if advanced else self.addParameter(parameter)

    def add_double(self, name: str, label: str, default: float, minimum: float, maximum: float, advanced: bool = False) -> None:
        parameter = QgsProcessingParameterNumber(
            name, label, type=QgsProcessingParameterNumber.Double, defaultValue=default, minValue=minimum, maxValue=maximum
        )
        self.add_advanced(parameter) if advanced else self.addParameter(parameter)

    def band_indexes(self, parameters, context) -> tuple[int, ...] | None:
        return parse_band_list(self.parameterAsString(parameters, self.BANDS, context))

    def radiometry(self, parameters, context) -> str:
        return RADIOMETRY_KEYS[self.parameterAsEnum(parameters, self.RADIOMETRY, context)]

    def device(self, parameters, context) -> str:
        return DEVICE_CHOICES[self.parameterAsEnum(parameters, self.DEVICE, context)]

    @contextmanager
    def user_errors(self) -> Iterator[None]:
        """Engine errors become Processing errors with the engine's message."""
        try:
            yield
        except Canceled:
            raise QgsProcessingException(self.tr("Canceled: no output was written.")) from None
        except PovertyMapperError as exc:
            raise QgsProcessingException(str(exc)) from exc
