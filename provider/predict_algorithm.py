"""``povertymapper:predict``: the estimate raster for a region of an image."""
from __future__ import annotations

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..core.models.defaults import DEFAULT_MODEL_PATH
from ..core.models.model_file import MODEL_SUFFIX, load_model
from ..core.inference.predict import PredictRequest, predict_poverty_map
from .base import PovertyAlgorithm
from .layer_inputs import extent_in_crs, mask_geometries, raster_file_path
from .styling import StyleOnLoad, layer_name


class PredictAlgorithm(PovertyAlgorithm):
    INPUT = "INPUT"
    MODEL = "MODEL"
    EXTENT = "EXTENT"
    MASK = "MASK"
    STRIDE = "STRIDE"
    BATCH_SIZE = "BATCH_SIZE"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "predict"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Predict poverty map")

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr(
            "Estimates wealth for every tile of a satellite image and writes the estimates "
            "as a raster (one cell per tile, or per stride step).\n\n"
            "Satellite image: a raster with the bands the model expects (the bundled default "
            "model: Landsat blue, green, red at 30 m). Model: a .povmodel file from 'Fit poverty "
            "model on survey clusters'; leave empty for the bundled default, trained on LSMS "
            "survey clusters in five African countries.\n"
            "Extent and Mask polygons limit the area mapped; cells outside the mask, and tiles "
            "with less than half of their pixels valid, get no data.\n\n"
            "Advanced: Band numbers map raster bands to the model's bands (e.g. 3,2,1; empty "
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
        self.add_imagery_parameters()
        self.add_double(self.STRIDE, self.tr("Stride in metres (0 = tile size)"), 0.0, 0.0, 1e6, advanced=True)
        self.add_int(self.BATCH_SIZE, self.tr("Batch size (tiles; 0 = automatic)"), 0, 0, 4096, advanced=True)
        self.addParameter(QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Poverty map")))

    def prepareAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> bool:  # noqa: N802
        """Resolve layers into plain values here, in the main thread."""
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        self._raster_path = raster_file_path(layer)
        self._bounds = extent_in_crs(self, parameters, self.EXTENT, context, layer.crs())
        self._mask = None
        if parameters.get(self.MASK) not in (None, ""):
            source = self.parameterAsSource(parameters, self.MASK, context)
            if source is not None:
                self._mask = mask_geometries(source, layer.crs(), context)
        return True

    def processAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:  # noqa: N802
        model_path = self.parameterAsFile(parameters, self.MODEL, context) or str(DEFAULT_MODEL_PATH)
        output = self.parameterAsOutputLayer(parameters, self.OUTPUT, context)
        with self.user_errors():
            model = load_model(model_path)
            feedback.pushInfo(model.card())
            result = predict_poverty_map(
                PredictRequest(
                    raster_path=self._raster_path,
                    output_path=output,
                    model=model,
                    bounds=self._bounds,
                    mask_geometries=self._mask,
                    band_indexes=self.band_indexes(parameters, context),
                    radiometry=self.radiometry(parameters, context),
                    stride_m=self.parameterAsDouble(parameters, self.STRIDE, context) or None,
                    device=self.device(parameters, context),
                    batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
                ),
                progress=lambda fraction: feedback.setProgress(100.0 * fraction),
                is_canceled=feedback.isCanceled,
            )
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
