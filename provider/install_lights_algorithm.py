"""``povertymapper:installlights``: sets up the bundled night lights beside an installed plugin."""
from __future__ import annotations

from qgis.core import QgsProcessingOutputString, QgsProcessingParameterFile

from ..core.imagery.lights_file import LIGHTS_FILE, install_lights, installed_lights_path
from .base import PovertyAlgorithm


class InstallLightsAlgorithm(PovertyAlgorithm):
    INPUT = "INPUT"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "installlights"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Install the bundled night lights")

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr(
            "Sets up the NASA Black Marble 2016 night lights over Africa that the default model maps with "
            "(no image needed). They are a separate 58 MB data file ({name}), too large for the plugin's own "
            "package. Give the downloaded file: it is checked to be the very file this plugin was built with "
            "(its SHA-256), then copied to {target}. Nothing is written when the check fails."
        ).format(name=LIGHTS_FILE, target=installed_lights_path())

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API)
        self.add(
            QgsProcessingParameterFile(self.INPUT, self.tr("Night lights file ({name})").format(name=LIGHTS_FILE),
                                       extension="tif"),
            self.tr("The downloaded {name} of this plugin's release.").format(name=LIGHTS_FILE),
        )
        self.addOutput(QgsProcessingOutputString(self.OUTPUT, self.tr("Where the lights now are")))

    def processAlgorithm(self, parameters, context, feedback):  # noqa: N802 (QGIS API)
        source = self.parameterAsFile(parameters, self.INPUT, context)
        feedback.pushInfo(self.tr("Checking {source}...").format(source=source))
        with self.user_errors():
            target = install_lights(source)
        feedback.pushInfo(self.tr("The bundled night lights are set up: {target}").format(target=target))
        return {self.OUTPUT: str(target)}
