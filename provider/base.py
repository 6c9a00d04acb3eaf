"""What the plugin's Processing algorithms share."""
from __future__ import annotations

from contextlib import contextmanager
from typing import Callable, Iterator

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
from ..core.options import SCHEDULER_HELP, TileOptions, default_of

RADIOMETRY_KEYS = ("auto", *PRESETS)


class PovertyAlgorithm(QgsProcessingAlgorithm):
    """Common parameters (bands, radiometry, device, seed) and error handling.

    An algorithm names the engine configuration it fills (``CONFIG``): its parameters'
    defaults are that configuration's, as the command line's are."""

    BANDS = "BANDS"
    RADIOMETRY = "RADIOMETRY"
    DEVICE = "DEVICE"
    SCHEDULER = "SCHEDULER"
    CONFIG: type = TileOptions

    def tr(self, text: str) -> str:
        return QCoreApplication.translate(type(self).__name__, text)

    def createInstance(self):  # noqa: N802 (QGIS API)
        return type(self)()

    def default(self, name: str):
        """The default of the engine configuration's field ``name``."""
        return default_of(self.CONFIG, name)

    def add(self, parameter: QgsProcessingParameterDefinition, help_text: str, advanced: bool = False) -> None:
        """Adds ``parameter`` with its help, the tooltip of its widget in the dialog and the Model Builder."""
        parameter.setHelp(help_text)
        if advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
        self.addParameter(parameter)

    def add_imagery_parameters(self, with_device: bool = True) -> None:
        self.add(
            QgsProcessingParameterString(
                self.BANDS, self.tr("Band numbers to use, in order (e.g. 3,2,1; empty = guess)"), optional=True
            ),
            self.tr(
                "The raster's band numbers that give the model's bands, in the model's order (the bundled "
                "model reads blue, green, red: 3,2,1 for a red, green, blue image). Leave empty to guess "
                "from the band names and colour interpretation, else the first bands in order."
            ),
            advanced=True,
        )
        self.add(
            QgsProcessingParameterEnum(
                self.RADIOMETRY,
                self.tr("Radiometry (pixel values to reflectance)"),
                options=[self.tr("Auto (from the data type)"), *(p.label for p in PRESETS.values())],
                defaultValue=RADIOMETRY_KEYS.index(self.default("radiometry")),
            ),
            self.tr(
                "How pixel values become reflectance, the scale the features expect. Auto: the imagery a "
                "model was trained on where the pixel type can hold it, else a guess from the pixel type "
                "(16-bit as Landsat Level-1 DN, floats as reflectance). Choose the preset of your product "
                "when the guess is wrong, e.g. Collection 2 Level-2 or Sentinel-2 L2A."
            ),
            advanced=True,
        )
        if with_device:
            self.add(
                QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), options=list(DEVICE_CHOICES),
                                           defaultValue=DEVICE_CHOICES.index(self.default("device"))),
                self.tr(
                    "Where the network runs. auto: a CUDA GPU when PyTorch sees one, else the CPU; cpu: always "
                    "the CPU; cuda: the GPU, refused when PyTorch sees none."
                ),
                advanced=True,
            )

    def add_scheduler_parameter(self) -> None:
        self.add(
            QgsProcessingParameterString(
                self.SCHEDULER, self.tr("Dask scheduler address (empty = this machine)"), optional=True
            ),
            self.tr(SCHEDULER_HELP),
            advanced=True,
        )

    def scheduler(self, parameters, context) -> str | None:
        return self.parameterAsString(parameters, self.SCHEDULER, context).strip() or None

    def add_int(
        self, name: str, label: str, default: int, minimum: int, maximum: int,
        *, help_text: str, advanced: bool = False,
    ) -> None:
        parameter = QgsProcessingParameterNumber(name, label, defaultValue=default, minValue=minimum, maxValue=maximum)
        self.add(parameter, help_text, advanced)

    def add_double(
        self, name: str, label: str, default: float, minimum: float, maximum: float,
        *, help_text: str, advanced: bool = False,
    ) -> None:
        parameter = QgsProcessingParameterNumber(
            name, label, type=QgsProcessingParameterNumber.Double, defaultValue=default, minValue=minimum, maxValue=maximum
        )
        self.add(parameter, help_text, advanced)

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

    def in_main_thread_after_run(self, action: Callable[[], object]) -> None:
        """Runs ``action`` once the algorithm has run, in the main thread (QGIS calls
        postProcessAlgorithm there): for work with QGIS objects that are not for worker
        threads, such as the default style's colour ramps and symbols."""
        self.__dict__.setdefault("_after_run", []).append(action)

    def postProcessAlgorithm(self, context, feedback) -> dict:  # noqa: N802 (QGIS API)
        for action in self.__dict__.pop("_after_run", []):
            action()
        return {}
