"""``povertymapper:predict``: the estimate raster for a region of an image."""
from __future__ import annotations

from functools import partial

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingFeedback,
    QgsProcessingOutputString,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterFile,
    QgsProcessingParameterRasterDestination,
    QgsProcessingParameterRasterLayer,
)

from ..core.models.defaults import default_model_path
from ..core.models.model_file import MODEL_SUFFIX, load_model
from ..core.inference.predict import PredictRequest, predict_poverty_map
from ..core.inference.writer import check_geotiff_name
from .base import PovertyAlgorithm
from .layer_inputs import check_mask_overlaps, extent_in_crs, mask_geometries, raster_file_path, raster_input
from .map_layers import map_name
from .styling import StyleOnLoad, write_map_style


class PredictAlgorithm(PovertyAlgorithm):
    CONFIG = PredictRequest
    INPUT = "INPUT"
    MODEL = "MODEL"
    EXTENT = "EXTENT"
    MASK = "MASK"
    NIGHTLIGHTS = "NIGHTLIGHTS"
    STRIDE = "STRIDE"
    BATCH_SIZE = "BATCH_SIZE"
    OUTPUT = "OUTPUT"
    SUMMARY = "SUMMARY"  # output: the run in one line (cells estimated, device, bands, radiometry)

    def name(self) -> str:
        return "predict"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Predict poverty map")

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr(
            "Estimates wealth for every tile of a satellite image and writes the estimates "
            "as a raster (one cell per tile, or per stride step).\n\n"
            "Satellite image: a raster with the bands the model expects (the bundled RGB "
            "model: Landsat blue, green, red at 30 m); it gives the map's grid and region. Model: a "
            ".povmodel file from 'Fit poverty model on survey clusters'; leave empty for a bundled "
            "model trained on LSMS survey clusters in five African countries: with a night-lights "
            "layer, the night-lights model (the most trustworthy out of the survey countries), "
            "without one the RGB model.\n"
            "Night-lights layer: for models that read night lights (the bundled night-lights model: "
            "VIIRS average radiance in nW/cm²/sr, e.g. NASA Black Marble VNP46A4), any CRS; it is "
            "warped onto the image's pixels.\n"
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
        self._add_image_and_model()
        self._add_region()
        self._add_run_options()
        self._add_outputs()

    def _add_image_and_model(self) -> None:
        self.add(
            QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Satellite image")),
            self.tr(
                "The image to map: a raster with the bands the model expects, at about its pixel "
                "size (the bundled model: Landsat blue, green, red at 30 m). Any CRS in metres or degrees. "
                "A layer that is no file (XYZ, WMS) is fetched for the extent (or the mask) at about the "
                "model's pixel size, its rendered red, green, blue as bands 1-3."
            ),
        )
        self.add(
            QgsProcessingParameterFile(
                self.MODEL,
                self.tr("Model file (empty = bundled default)"),
                behavior=QgsProcessingParameterFile.File,
                extension=MODEL_SUFFIX.lstrip("."),
                optional=True,
            ),
            self.tr(
                "A .povmodel file written by 'Fit poverty model on survey clusters'. Leave empty for a "
                "bundled model (an asset wealth index, fitted on LSMS clusters in five African countries): "
                "with a night-lights layer, resources/models/africa_nightlights_viirs.povmodel (night lights "
                "alone; the best out of the survey countries: leave-one-country-out r² 0.39 within countries), "
                "without one resources/models/default.povmodel (Landsat blue, green, red histograms; about 0 "
                "out of country). "
                "The plugin also bundles resources/models/kinshasa_cnn.povmodel in its folder: the night-light "
                "CNN of the method, fitted on 44 DHS clusters of Kinshasa (for 8-bit true-colour Landsat at "
                "about 38 m; other radiometries are standardized by the scene). Fit your own on local survey "
                "clusters for other places or imagery."
            ),
        )
        self.add(
            QgsProcessingParameterRasterLayer(
                self.NIGHTLIGHTS, self.tr("Night-lights layer (for models that read night lights)"), optional=True
            ),
            self.tr(
                "A night-lights raster for a model with a NIGHTLIGHTS band (its card names the product and "
                "units; the bundled night-lights model: VIIRS annual or monthly average radiance in nW/cm²/sr, "
                "e.g. NASA Black Marble VNP46A4 or the Earth Observation Group's annual VNL). Any CRS and "
                "resolution: it is read on the image's pixels (nearest). It must cover the image. A colour "
                "rendering (e.g. a Black Marble RGB image) is not radiance and is refused."
            ),
        )

    def _add_region(self) -> None:
        self.add(
            QgsProcessingParameterExtent(self.EXTENT, self.tr("Extent to map"), optional=True),
            self.tr("Maps only this rectangle of the image (any CRS). Leave empty for the whole image."),
        )
        self.add(
            QgsProcessingParameterFeatureSource(
                self.MASK, self.tr("Mask polygons"), [QgsProcessing.TypeVectorPolygon], optional=True
            ),
            self.tr(
                "Polygons (e.g. districts, or only their selected features) to map: cells whose centre lies "
                "outside them get no data. Set the extent too to read only their area. Leave empty to map "
                "every cell."
            ),
        )

    def _add_run_options(self) -> None:
        self.add_imagery_parameters()
        self.add_double(
            self.STRIDE, self.tr("Stride in metres (0 = tile size)"), self.default("stride_m"), 0.0, 1e6, advanced=True,
            help_text=self.tr(
                "Distance between tile centres, which is the output cell size. 0: the model's tile size "
                "(6.72 km for the bundled model), one estimate per tile. A smaller stride gives a finer map "
                "from overlapping tiles; half the tile size takes about four times longer."
            ),
        )
        self.add_int(
            self.BATCH_SIZE, self.tr("Batch size (tiles; 0 = automatic)"), self.default("batch_size"), 0, 4096,
            advanced=True,
            help_text=self.tr(
                "Tiles read and estimated together. 0 chooses by device (8 or 16 on the CPU, 256 on a GPU, "
                "halved when the GPU runs out of memory); lower it when memory is short. Cancelling takes "
                "effect after the current batch."
            ),
        )
        self.add_scheduler_parameter()

    def _add_outputs(self) -> None:
        self.add(
            QgsProcessingParameterRasterDestination(self.OUTPUT, self.tr("Poverty map")),
            self.tr(
                "The estimate raster (GeoTIFF; one cell per tile or stride step, in the image's CRS), "
                "styled red (poorer) to blue (wealthier) when loaded, in a group named after the model and "
                "the image with the cells its quality band flags above it (hatched grey: extrapolations; "
                "cross-hatched dark: imagery unlike the model's, out of its domain; kept as NAME.quality.gpkg "
                "beside the map)."
            ),
        )
        self.addOutput(QgsProcessingOutputString(self.SUMMARY, self.tr("Summary of the run")))

    def prepareAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> bool:  # noqa: N802
        """Resolve layers into plain values here, in the main thread."""
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        self._input_name = layer.name()
        lights = self.parameterAsRasterLayer(parameters, self.NIGHTLIGHTS, context)
        self._nightlights_path = raster_file_path(lights) if lights is not None else None
        self._bounds = extent_in_crs(self, parameters, self.EXTENT, context, layer.crs())
        self._mask, self._mask_name = None, None
        if parameters.get(self.MASK) not in (None, ""):
            source = self.parameterAsSource(parameters, self.MASK, context)
            if source is not None:
                self._mask = mask_geometries(source, layer.crs(), context)
                self._mask_name = source.sourceName() or None
                check_mask_overlaps(self._mask, self._mask_name or self.tr("the mask layer"), layer)
        model_path = self.parameterAsFile(parameters, self.MODEL, context) or str(
            default_model_path(with_nightlights=self._nightlights_path is not None)
        )
        self._raster = raster_input(layer, model_path, self._bounds, self._mask)  # a file, or a layer to fetch
        return True

    def processAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:  # noqa: N802
        model_path = self.parameterAsFile(parameters, self.MODEL, context) or str(
            default_model_path(with_nightlights=self._nightlights_path is not None)
        )
        with self.user_errors():
            output = check_geotiff_name(self.parameterAsOutputLayer(parameters, self.OUTPUT, context))
        scheduler = self.scheduler(parameters, context)
        executor = None
        if scheduler:
            from ..core.imagery.dask_run import DaskExecutor

            executor = DaskExecutor(scheduler)
        with self.user_errors():
            model = load_model(model_path)
            feedback.pushInfo(model.card())
            result = predict_poverty_map(
                PredictRequest(
                    raster_path=self._raster.path(feedback),
                    output_path=output,
                    model=model,
                    bounds=self._bounds,
                    mask_geometries=self._mask,
                    mask_name=self._mask_name,
                    band_indexes=self.band_indexes(parameters, context),
                    radiometry=self.radiometry(parameters, context),
                    stride_m=self.parameterAsDouble(parameters, self.STRIDE, context),
                    device=self.device(parameters, context),
                    batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
                    nightlights_path=self._nightlights_path,
                ),
                progress=lambda fraction: feedback.setProgress(100.0 * fraction),
                is_canceled=feedback.isCanceled,
                executor=executor,
            )
        summary = self.tr("Estimated {} of {} cells on {}; bands {}; radiometry: {}.").format(
            result.n_estimated, result.n_cells, result.device,
            ",".join(map(str, result.band_indexes)) or self.tr("none (night lights only)"), result.radiometry.label,
        )
        feedback.pushInfo(summary)
        for note in result.notes:
            feedback.pushWarning(note)
        # Its look travels with the file (a .qml beside it), written in the main thread.
        self.in_main_thread_after_run(partial(write_map_style, output, model.target.name, model.target.unit))
        if context.willLoadLayerOnCompletion(output):
            details = context.layerToLoadOnCompletionDetails(output)
            details.name = map_name(model.name, self._input_name, self._mask_name)  # made unique when loaded
            details.setPostProcessor(StyleOnLoad.create(model.target.name, model.target.unit))
        return {self.OUTPUT: output, self.SUMMARY: summary}
