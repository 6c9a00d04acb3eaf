"""The dock's remembered choices: one table of QgsSettings keys and their defaults."""
from __future__ import annotations

import enum

from qgis.core import QgsSettings

SETTINGS_PREFIX = "poverty_mapper/"


class DockSetting(enum.Enum):
    """A remembered choice: its key under ``poverty_mapper/`` and its default, whose
    type is the type it is read back as."""

    # "bundled:<key>" = a bundled model, wherever the plugin is installed; else a model file's
    # path; "" (older versions' bundled model) = the default model
    MODEL = ("model_path", "")
    DEVICE = ("device", "auto")
    RADIOMETRY = ("radiometry", "auto")
    STRIDE_M = ("stride_m", 0.0)  # 0 = the model's tile size
    BATCH_SIZE = ("batch_size", 0)  # 0 = automatic
    REGION = ("region", "layer")
    OUTPUT_MODE = ("output_mode", "temporary")
    # the folder of the last output file; never the file itself (a later run would overwrite it)
    OUTPUT_FOLDER = ("output_folder", "")

    def __init__(self, key: str, default: str | float | int) -> None:
        self.key = SETTINGS_PREFIX + key
        self.default = default

    def read(self) -> str | float | int:
        return QgsSettings().value(self.key, self.default, type=type(self.default))

    def write(self, value: str | float | int) -> None:
        QgsSettings().setValue(self.key, value)
