"""``povertymapper:predict``: the estimate raster for a region of an image."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingAlgorithm,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterDefinition,
    QgsProcessingParameterEnum,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
)
from qgis.PyQt.QtCore import QCoreApplication

from ..core.bands import parse_band_list
from ..core.defaults import DEFAULT_MODEL_PATH
from ..core.device import DEVICE_CHOICES
from ..core.errors import Canceled, PovertyMapperError
from ..core.model_file import MODEL_SUFFIX, load_model
from ..core.predict import PredictRequest, predict_poverty_map
from ..core.radiometry import PRESETS
from .layer_inputs import mask_geometries, raster_file_path
from .styling import StyleOnLoad, layer_name

RADIOMETRY_KEYS = ("auto", *PRESETS)


class PredictAlgorithm(QgsProcessingAlgorithm):
    INPUT = "INPUT"
    MODEL = "MODEL"
    EXTENT = "EXTENT"
    MASK = "MASK"
    BANDS = "BANDS"
    RADIOMETRY = "RADIOMETRY"
    STRIDE = "STRIDE"
    DEVICE = "DEVICE"
    BATCH_SIZE = "BATCH_SIZE"
    OUTPUT = "OUTPUT"

    def tr(self, text: str) -> str:
        return QCoreApplication.translate("PredictAlgorithm", text)

    def createInstance(self) -> "PredictAlgorithm":  # noqa: N802 (QGIS API)
        return type(self)()

    def name(self) -> str:
        return "predict"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Predict poverty map")

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr(
            "Estimates wealth for every tile of a satellite image and writes the estimates "
            "as a raster (one cell per tile, or per stride step).\n\n"
            "Input: a raster with the bands the model expects (the bundled default model: "
            "Landsat blue, green, red, 30 m). Model: a .povmodel file; leave empty for the "
            "bundled default, trained on LSMS survey clusters in five African countries.\n"
            "Extent and Mask limit the area mapped; cells outside the mask, and tiles with less "
            "than half of their pixels valid, get no data.\n\n"
            "Advanced: Bands maps raster band numbers to the model's bands (e.g. 3,2,1; empty "
            "guesses from band names). Radiometry says how pixel values become reflectance "
            "(Auto guesses from the data type: 16-bit as Landsat Level-1 DN). Stride in metres "
            "gives a finer map from overlapping tiles (0 = the tile size). Device: auto uses a "
            "CUDA GPU when PyTorch sees one.\n\n"
            "Estimates are model predictions, not survey measurements: read them as relative "
            "differences between places, and see the model's scores in its card."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API)
        self.addParameter(QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Satellite image")))
        self.addParameter(
            QgsProcessingParameterFile(
                self.MODEL,
                self.tr("Model file (empty = bundled default)"),
                behavior=QgsProcessingParameterFile.File,
                extension=MODEL_SUFFIX.lstrip("."),
                optional=True,
            )
        )
        self.addParameter(QgsProcessingParameterExtent(self.EXTENT, self.tr("Extent to map"), optional=True))
        self.addParameter(
            QgsProcessingParameterFeatureSource(
                self.MASK, self.tr("Mask polygons"), [QgsProcessing.TypeVectorPolygon], optional=True
            )
        )
        advanced = [
            QgsProcessingParameterString(
                self.BANDS, self.tr("Band numbers for the model's bands (e.g. 3,2,1; empty = guess)"), optional=True
            ),
            QgsProcessingParameterEnum(
                self.RADIOMETRY,
                self.tr("Radiometry (pixel values to reflectance)"),
                options=["Auto (from the data type)", *(p.label for p in PRESETS.values())],
                defaultValue=0,
            ),
            QgsProcessingParameterNumber(
                self.STRIDE,
                self.tr("Stride in metres (0 = tile size)"),
                type=QgsProcessingParameterNumber.Double,
                defaultValue=0.0,
                minValue=0.0,
                maxValue=1e6,
            ),
            QgsProcessingParameterEnum(self.DEVICE, self.tr("Device"), options=list(DEVICE_CHOICES), defaultValue=0),
            QgsProcessingParameterNumber(
                self.BATCH_SIZE, self.tr("Batch size (tiles)"), defaultValue=64, minValue=1, maxValue=4096
            ),
        ]
        for parameter in advanced:
            parameter.setFlags(parameter.flags() | QgsProcessingParameterDefinition.FlagAdvanced)
            self.addParameter(parameter)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Poverty map")))

    def prepareAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> bool:  # noqa: N802
        """Resolve layers into plain values here, in the main thread."""
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        self._raster_path = raster_file_path(layer)
        raster_crs = layer.crs()
        self._bounds = None
        if parameters.get(self.EXTENT) not in (None, ""):
            extent = self.parameterAsExtent(parameters, self.EXTENT, context, raster_crs)
            if not extent.isNull() and not extent.isEmpty():
                self._bounds = (extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum())
        self._mask = None
        if parameters.get(self.MASK) not in (None, ""):
            source = self.parameterAsSource(parameters, self.MASK, context)
            if source is not None:
                self._mask = mask_geometries(source, raster_crs, context)
        return True

    def processAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:  # noqa: N802
        model_path = self.parameterAsFile(parameters, self.MODEL, context) or str(DEFAULT_MODEL_PATH)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        try:
            model = load_model(model_path)
            feedback.pushInfo(model.card())
            request = PredictRequest(
                raster_path=self._raster_path,
                output_path=output,
                model=model,
                bounds=self._bounds,
                mask_geometries=self._mask,
                band_indexes=parse_band_list(self.parameterAsString(parameters, self.BANDS, context)),
                radiometry=RADIOMETRY_KEYS[self.parameterAsEnum(parameters, self.RADIOMETRY, context)],
                stride_m=self.parameterAsDouble(parameters, self.STRIDE, context) or None,
                device=DEVICE_CHOICES[self.parameterAsEnum(parameters, self.DEVICE, context)],
                batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            )
            result = predict_poverty_map(
                request,
                progress=lambda fraction: feedback.setProgress(100.0 * fraction),
                is_canceled=feedback.isCanceled,
            )
        except Canceled:
            raise QgsProcessingException(self.tr("Canceled: no output was written."))
        except PovertyMapperError as exc:
            raise QgsProcessingException(str(exc)) from exc
        feedback.pushInfo(
            self.tr("Estimated {} of {} cells on {}; bands {}; radiometry: {}.").format(
                result.n_estimated, result.n_cells, result.device,
                ",".join(map(str, result.band_indexes)), result.radiometry.label,
            )
        )
        for note in result.notes:
            feedback.pushWarning(note)
        if context.willLoadLayerOnCompletion(output):
            details = context.layerToLoadOnCompletionDetails(output)
            details.name = layer_name(model.target.name, model.target.unit)
            details.setPostProcessor(StyleOnLoad.create(model.target.name, model.target.unit))
        return {self.OUTPUT: output}
