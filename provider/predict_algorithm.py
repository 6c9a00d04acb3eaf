"""``povertymapper:predict``: the estimate raster for a region of an image."""
from __future__ import annotations

from functools import partial

from qgis.core import (
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
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
from ..core.inference.lights_map import LightsMapResult
from ..core.inference.map_region import NO_REGION, RegionRequest, map_region
from ..core.inference.predict import PredictRequest
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
            "Estimates wealth for every cell of a region and writes the estimates as a raster.\n\n"
            "With no model and no night-lights layer, the bundled Africa lights model maps the region from "
            "the NASA Black Marble night lights of 2016 that ship with the plugin (fitted on DHS clusters "
            "of 22 African countries; out of country within r² 0.66): no image is needed, an extent with "
            "its CRS or mask polygons (e.g. a country's boundary) are enough; with an image, the image's "
            "extent is mapped. Outside Africa it says so.\n"
            "Satellite image (optional): for a model that reads imagery, a raster with the bands the model "
            "expects; it gives the map's grid and region. Model: a .povmodel file from 'Fit poverty model "
            "on survey clusters'; leave empty for a bundled model: with a night-lights layer, the VIIRS "
            "night-lights model, without one the Africa lights model.\n"
            "Night-lights layer: for models that read night lights (the bundled VIIRS night-lights model: "
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
            QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Satellite image (optional)"), optional=True),
            self.tr(
                "The image to map, for a model that reads imagery: a raster with the bands the model expects, "
                "at about its pixel size. Any CRS in metres or degrees. Optional for the default Africa lights "
                "model (it reads the bundled night lights): without an image, give an extent or mask polygons; "
                "with one, its extent is mapped. "
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
                "bundled model (an asset wealth index): with a night-lights layer, "
                "resources/models/africa_nightlights_viirs.povmodel (VIIRS radiance; LSMS clusters of five "
                "countries, leave-one-country-out r² 0.39 within countries), without one "
                "resources/models/africa_lights.povmodel (the bundled NASA Black Marble lights of 2016; DHS "
                "clusters of 22 countries, out of country r² 0.66 within countries; no image needed). "
                "resources/models/default.povmodel (Landsat blue, green, red histograms) is an example only: "
                "it carries nothing to another country (about 0 out of country). "
                "The plugin also bundles resources/models/kinshasa_cnn.povmodel in its folder: the night-light "
                "CNN of the method, fitted on 44 DHS clusters of Kinshasa (for true-colour Landsat-like imagery at "
                "about 38 m; every scene is standardized by its own band statistics). Fit your own on local survey "
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
            self.tr(
                "Maps only this rectangle of the image (any CRS); leave empty for the whole image. Without an "
                "image, the region to map, in its CRS (with the default Africa lights model)."
            ),
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
        self._input_name = layer.name() if layer is not None else None
        lights = self.parameterAsRasterLayer(parameters, self.NIGHTLIGHTS, context)
        self._nightlights_path = raster_file_path(lights) if lights is not None else None
        model_path = self.parameterAsFile(parameters, self.MODEL, context) or str(
            default_model_path(with_nightlights=self._nightlights_path is not None)
        )
        self._refusal = None
        try:
            with self.user_errors():
                self._model = load_model(model_path)
        except QgsProcessingException as exc:
            # Said when the algorithm runs, naming the file: Processing passes a run's error on
            # with its message, a refusal while preparing only as "There were errors executing
            # the algorithm." (its message in the feedback alone).
            self._refusal = exc
            return True
        crs = layer.crs() if layer is not None else self._region_crs(parameters, context)
        self._bounds = extent_in_crs(self, parameters, self.EXTENT, context, crs)
        self._mask, self._mask_name = self._mask_in(parameters, context, crs, layer)
        self._crs = crs.authid() or crs.toWkt()
        self._raster = None
        if self._model.extractor.reads_imagery:
            if layer is None:
                raise QgsProcessingException(self.tr(
                    "The model '{}' reads imagery: choose the satellite image to map, or leave the model empty "
                    "for the bundled Africa lights model, which maps an extent or mask polygons alone."
                ).format(self._model.name))
            self._raster = raster_input(layer, model_path, self._bounds, self._mask)  # a file, or a layer to fetch
        elif layer is not None and self._bounds is None:  # the image says where
            extent = layer.extent()
            self._bounds = extent.xMinimum(), extent.yMinimum(), extent.xMaximum(), extent.yMaximum()
        return True

    def _region_crs(self, parameters, context: QgsProcessingContext):
        """With no image: the extent's CRS, else the mask layer's; refused when neither is given."""
        if parameters.get(self.EXTENT) not in (None, ""):
            crs = self.parameterAsExtentCrs(parameters, self.EXTENT, context)
            if not crs.isValid():
                raise QgsProcessingException(self.tr(
                    "The extent has no CRS: give it with one (e.g. 15.2,15.5,-4.5,-4.3 [EPSG:4326])."
                ))
            return crs
        if parameters.get(self.MASK) not in (None, ""):
            source = self.parameterAsSource(parameters, self.MASK, context)
            if source is not None:
                return source.sourceCrs()
        raise QgsProcessingException(self.tr(NO_REGION))

    def _mask_in(self, parameters, context: QgsProcessingContext, crs, layer) -> tuple:
        """The mask polygons in ``crs`` and the mask's name, or (None, None)."""
        if parameters.get(self.MASK) in (None, ""):
            return None, None
        source = self.parameterAsSource(parameters, self.MASK, context)
        if source is None:
            return None, None
        shapes, name = mask_geometries(source, crs, context), source.sourceName() or None
        if layer is not None:
            check_mask_overlaps(shapes, name or self.tr("the mask layer"), layer)
        return shapes, name

    def processAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:  # noqa: N802
        if self._refusal is not None:  # an unreadable model file, refused before anything is written
            raise self._refusal
        model = self._model
        with self.user_errors():
            output = check_geotiff_name(self.parameterAsOutputLayer(parameters, self.OUTPUT, context))
        scheduler = self.scheduler(parameters, context)
        executor = None
        if scheduler and self._raster is not None:
            from ..core.imagery.dask_run import DaskExecutor

            executor = DaskExecutor(scheduler)
        with self.user_errors():
            feedback.pushInfo(model.card())
            options = dict(
                band_indexes=self.band_indexes(parameters, context), radiometry=self.radiometry(parameters, context),
                stride_m=self.parameterAsDouble(parameters, self.STRIDE, context), device=self.device(parameters, context),
                batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context), nightlights_path=self._nightlights_path,
            )
            result = map_region(
                RegionRequest(output, model, raster_path=self._raster.path(feedback) if self._raster else None,
                              bounds=self._bounds, crs=self._crs, mask_geometries=self._mask, mask_name=self._mask_name,
                              options=options),
                progress=lambda fraction: feedback.setProgress(100.0 * fraction),
                is_canceled=feedback.isCanceled,
                executor=executor,
            )
        summary = self._summary(result)
        feedback.pushInfo(summary)
        for note in getattr(result, "notes", ()):
            feedback.pushWarning(note)
        # Its look travels with the file (a .qml beside it), written in the main thread.
        self.in_main_thread_after_run(partial(write_map_style, output, model.target.name, model.target.unit))
        if context.willLoadLayerOnCompletion(output):
            details = context.layerToLoadOnCompletionDetails(output)
            where = self._input_name or self._mask_name or self.tr("extent")
            details.name = map_name(model.name, where, self._mask_name if self._input_name else None)
            details.setPostProcessor(StyleOnLoad.create(model.target.name, model.target.unit))
        return {self.OUTPUT: output, self.SUMMARY: summary}

    def _summary(self, result) -> str:
        if isinstance(result, LightsMapResult):
            return self.tr("Estimated {} of {} cells from the bundled NASA Black Marble night lights of {}; no image read.").format(
                result.n_estimated, result.n_cells, result.lights_year)
        return self.tr("Estimated {} of {} cells on {}; bands {}; radiometry: {}.").format(
            result.n_estimated, result.n_cells, result.device,
            ",".join(map(str, result.band_indexes)) or self.tr("none (night lights only)"), result.radiometry.label,
        )
