"""``povertymapper:topolygons``: a poverty map as one polygon per estimated cell."""
from __future__ import annotations

from functools import partial

import re

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingMultiStepFeedback,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingUtils,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from ..core.maps.zonal import CELL_BANDS, cell_bands_at
from .base import PovertyAlgorithm
from .layer_inputs import raster_file_path, read_poverty_map_tags
from .sinks import atomic_sink
from .styling import write_estimate_polygons_style

MAX_FIELD_NAME = 10  # dBase, hence shapefiles
MAX_TEXT = 254  # dBase text fields
QUANTITY_FIELD = "quantity"
UNIT_FIELD = "unit"
FIELD_NAME_PATTERN = re.compile(r"^[A-Za-z][A-Za-z0-9_]*$")


class ToPolygonsAlgorithm(PovertyAlgorithm):
    INPUT = "INPUT"
    FIELD_NAME = "FIELD_NAME"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "topolygons"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Poverty map to grid-cell polygons")

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr(
            "Turns a poverty map (the raster from 'Predict poverty map') into a polygon layer: "
            "one square per estimated cell, with the estimate as a number, ready for a "
            "shapefile, a GeoPackage, a join or a table.\n\n"
            "Poverty map: the estimate raster; band 1 is used. Cells without an estimate "
            "(no data) get no polygon.\n"
            "Estimate field name: the name of the number field (default 'estimate'); letters, "
            "digits and underscores, starting with a letter. Names longer than 10 characters "
            "are shortened to 10, the limit of shapefiles.\n"
            "Two text fields say what the number is: 'quantity' (e.g. asset wealth index) and "
            "'unit', taken from the poverty map; they stay empty for rasters that do not say.\n\n"
            "The polygons are in the raster's CRS. Estimates are model predictions, not survey "
            "measurements."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API)
        self.add(
            QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Poverty map")),
            self.tr("The estimate raster written by 'Predict poverty map'; band 1 is read, no-data cells are left out."),
        )
        self.add(
            QgsProcessingParameterString(self.FIELD_NAME, self.tr("Estimate field name"), defaultValue="estimate"),
            self.tr(
                "Name of the number field holding each cell's estimate: letters, digits and underscores, "
                "starting with a letter; shapefiles keep the first 10 characters."
            ),
        )
        self.add(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT, self.tr("Poverty grid cells"), QgsProcessing.TypeVectorPolygon
            ),
            self.tr(
                "One square per estimated cell, in the raster's CRS, with the estimate, 'quantity' and "
                "'unit', and for maps of this plugin 'quality' (0 = within the range of the survey outcomes, "
                "1 = outside it, an extrapolation, 3 = imagery unlike the model's training imagery) and "
                "'interval80' (the estimate +- this is its 80 % interval); a .shp or .gpkg file, or a temporary layer."
            ),
        )

    def field_name(self, parameters, context, feedback) -> str:
        """The estimate field's name, shortened to 10 characters with a warning."""
        name = self.parameterAsString(parameters, self.FIELD_NAME, context).strip()
        if not FIELD_NAME_PATTERN.match(name):
            raise QgsProcessingException(
                self.tr("The field name '{}' is not usable: use letters, digits and underscores, "
                        "starting with a letter (e.g. estimate).").format(name)
            )
        if len(name) > MAX_FIELD_NAME:
            short = name[:MAX_FIELD_NAME]
            feedback.pushWarning(
                self.tr("The field name '{}' is longer than {} characters, the limit of shapefiles; "
                        "using '{}'.").format(name, MAX_FIELD_NAME, short)
            )
            name = short
        if name.lower() in (QUANTITY_FIELD, UNIT_FIELD, *CELL_BANDS):
            raise QgsProcessingException(
                self.tr("The field name '{}' is taken by the description fields; choose another "
                        "(e.g. estimate).").format(name)
            )
        return name

    def prepareAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> bool:  # noqa: N802
        """Resolve the layer into plain values and read the map's tags here, in the main thread."""
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        self._raster_path = raster_file_path(layer)
        self._crs = layer.crs()
        self._map_tags = read_poverty_map_tags(self._raster_path)
        return True

    def processAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:  # noqa: N802
        raster_path = self._raster_path
        name = self.field_name(parameters, context, feedback)
        quantity, unit = self._map_tags.checked()

        fields = QgsFields()
        fields.append(QgsField(name, QVariant.Double, "double", 24, 15))  # all a float32 holds, in a shapefile too
        fields.append(QgsField(QUANTITY_FIELD, QVariant.String, "string", MAX_TEXT))
        fields.append(QgsField(UNIT_FIELD, QVariant.String, "string", MAX_TEXT))
        steps = QgsProcessingMultiStepFeedback(2, feedback)
        import processing  # QGIS's Processing plugin; loaded by the time algorithms run

        cells = processing.run(
            "native:pixelstopolygons",
            {"INPUT_RASTER": raster_path, "RASTER_BAND": 1, "FIELD_NAME": name, "OUTPUT": "TEMPORARY_OUTPUT"},
            context=context, feedback=steps, is_child_algorithm=True,
        )["OUTPUT"]
        if feedback.isCanceled():
            raise QgsProcessingException(self.tr("Canceled: no output was written."))
        steps.setCurrentStep(1)
        polygons = QgsProcessingUtils.mapLayerFromString(cells, context)
        total = max(1, polygons.featureCount())
        centres = [f.geometry().centroid().asPoint() for f in polygons.getFeatures()]
        with self.user_errors():
            cell_bands = cell_bands_at(raster_path, [p.x() for p in centres], [p.y() for p in centres])
        if "quality" in cell_bands:  # maps of this plugin (see core.maps.zonal.CELL_BANDS)
            fields.append(QgsField("quality", QVariant.Int, "integer", 1))
        if "interval80" in cell_bands:
            fields.append(QgsField("interval80", QVariant.Double, "double", 24, 15))
        description = [text[:MAX_TEXT] if text else None for text in (quantity, unit)]
        with atomic_sink(self, parameters, self.OUTPUT, context, fields, QgsWkbTypes.Polygon, self._crs) as (sink, dest):
            for i, cell in enumerate(polygons.getFeatures()):
                if i % 1000 == 0:
                    if feedback.isCanceled():
                        raise QgsProcessingException(self.tr("Canceled: no output was written."))
                    steps.setProgress(100.0 * i / total)
                feature = QgsFeature(fields)
                feature.setGeometry(cell.geometry())
                extra = [int(cell_bands["quality"][i])] if "quality" in cell_bands else []
                if "interval80" in cell_bands:
                    interval = float(cell_bands["interval80"][i])
                    extra.append(interval if interval >= 0 else None)  # nodata: not known
                feature.setAttributes([float(cell[0]), *description, *extra])
                sink.addFeature(feature, QgsFeatureSink.FastInsert)
        title = self.tr("{} per cell").format(quantity or name)
        self.in_main_thread_after_run(partial(write_estimate_polygons_style, dest, name, raster_path, title))
        feedback.pushInfo(
            self.tr("{} cells with an estimate became polygons (field '{}'{}).").format(
                polygons.featureCount(), name, self.tr(", {}").format(quantity) if quantity else ""
            )
        )
        return {self.OUTPUT: dest}
