"""``povertymapper:aggregate``: a poverty map summed up per polygon (e.g. districts)."""
from __future__ import annotations

import json

from qgis.core import (
    QgsCoordinateTransform,
    QgsCsException,
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtCore import QVariant

from ..core.maps.zonal import ZoneStats, estimate_quantity, read_estimate_grid, zone_stats
from .base import PovertyAlgorithm
from .layer_inputs import raster_file_path
from .sinks import atomic_sink

MEAN_FIELD = "pov_mean"
WEIGHTED_FIELD = "pov_wmean"
CELLS_FIELD = "pov_cells"


class AggregateAlgorithm(PovertyAlgorithm):
    INPUT = "INPUT"
    POLYGONS = "POLYGONS"
    POPULATION = "POPULATION"
    OUTPUT = "OUTPUT"

    def name(self) -> str:
        return "aggregate"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Aggregate poverty map to polygons")

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr(
            "Sums a poverty map up per polygon, e.g. per district, for a table or a choropleth "
            "map.\n\n"
            "Poverty map: the estimate raster from 'Predict poverty map' (band 1). Polygons: "
            "any polygon layer, in any CRS. Population (optional): a population count raster "
            "(e.g. WorldPop people per pixel), in any CRS and resolution; its counts are summed "
            "onto the poverty map's cells.\n\n"
            "A cell counts for a polygon when its centre lies inside it. The output is the "
            "polygons with all their fields, in their own CRS, plus:\n"
            "pov_mean: the plain mean of the estimates of those cells;\n"
            "pov_wmean (with a population raster): the population-weighted mean, "
            "sum(people x estimate) / sum(people), the estimate of the average person rather "
            "than of the average square kilometre;\n"
            "pov_cells: how many cells with an estimate lie inside.\n"
            "Polygons with no estimated cell inside (small or outside the map) get "
            "pov_cells 0 and empty means; make the map finer (a smaller stride in 'Predict "
            "poverty map') to cover small polygons.\n\n"
            "Estimates are model predictions, not survey measurements: compare places, and "
            "read the model's scores before trusting differences."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API)
        self.add(
            QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Poverty map")),
            self.tr("The estimate raster written by 'Predict poverty map'; band 1 is read."),
        )
        self.add(
            QgsProcessingParameterFeatureSource(
                self.POLYGONS, self.tr("Polygons (e.g. districts)"), [QgsProcessing.TypeVectorPolygon]
            ),
            self.tr(
                "The areas to sum up, e.g. districts, in any CRS. A cell counts for a polygon when its "
                "centre lies inside; polygons smaller than a cell may get none (make the map finer)."
            ),
        )
        self.add(
            QgsProcessingParameterRasterLayer(
                self.POPULATION, self.tr("Population raster (people per pixel)"), optional=True
            ),
            self.tr(
                "Optional: people per pixel (e.g. WorldPop), in any CRS and resolution. Adds pov_wmean, "
                "the mean weighted by people. Leave empty for plain means only."
            ),
        )
        self.add(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT, self.tr("Polygons with poverty estimates"), QgsProcessing.TypeVectorPolygon
            ),
            self.tr(
                "The polygons with all their fields plus pov_mean, pov_cells and (with a population raster) "
                "pov_wmean; a .shp or .gpkg file, or a temporary layer."
            ),
        )

    def prepareAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> bool:  # noqa: N802
        """Resolve the raster layers into file paths here, in the main thread."""
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        self._raster_path = raster_file_path(layer)
        self._raster_crs = layer.crs()
        population = self.parameterAsRasterLayer(parameters, self.POPULATION, context)
        self._population_path = raster_file_path(population) if population is not None else None
        return True

    def processAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:  # noqa: N802
        source = self.parameterAsSource(parameters, self.POLYGONS, context)
        if source is None:
            raise QgsProcessingException(self.tr("Choose a polygon layer (e.g. districts)."))
        with self.user_errors():
            quantity, unit = estimate_quantity(self._raster_path)
            grid = read_estimate_grid(self._raster_path, self._population_path)

        ours = [QgsField(MEAN_FIELD, QVariant.Double, "double", 24, 15)]
        if self._population_path is not None:
            ours.append(QgsField(WEIGHTED_FIELD, QVariant.Double, "double", 24, 15))
        ours.append(QgsField(CELLS_FIELD, QVariant.Int, "integer", 10))
        replaced = {f.name().lower() for f in ours}
        kept = [i for i, f in enumerate(source.fields()) if f.name().lower() not in replaced]
        if len(kept) < source.fields().count():
            feedback.pushWarning(
                self.tr("The polygons already have fields named like the results ({}); they are "
                        "replaced in the output.").format(", ".join(f.name() for f in ours))
            )
        fields = QgsFields()
        for i in kept:
            fields.append(source.fields().at(i))
        for field in ours:
            fields.append(field)
        to_raster = QgsCoordinateTransform(source.sourceCrs(), self._raster_crs, context.transformContext())
        total = max(1, source.featureCount())
        n_empty = 0
        with atomic_sink(self, parameters, self.OUTPUT, context, fields, source.wkbType(), source.sourceCrs()) as (sink, dest):
            for i, polygon in enumerate(source.getFeatures()):
                if feedback.isCanceled():
                    raise QgsProcessingException(self.tr("Canceled: no output was written."))
                stats = self._zone_stats(grid, polygon, to_raster)
                n_empty += stats.cells == 0
                values = [stats.mean]
                if self._population_path is not None:
                    values.append(stats.weighted_mean)
                values.append(stats.cells)
                attributes = polygon.attributes()
                feature = QgsFeature(fields)
                feature.setGeometry(polygon.geometry())
                feature.setAttributes([attributes[k] for k in kept] + values)
                sink.addFeature(feature, QgsFeatureSink.FastInsert)
                feedback.setProgress(100.0 * (i + 1) / total)

        feedback.pushInfo(
            self.tr("Aggregated {} over {} polygons.").format(
                f"{quantity} ({unit})" if quantity else self.tr("the estimates"), source.featureCount()
            )
        )
        if n_empty:
            feedback.pushWarning(
                self.tr("{} polygons hold no cell with an estimate; their means are empty.").format(n_empty)
            )
        return {self.OUTPUT: dest}

    def _zone_stats(self, grid, polygon: QgsFeature, to_raster: QgsCoordinateTransform) -> ZoneStats:
        geometry = polygon.geometry()
        if geometry.isNull() or geometry.isEmpty():
            return ZoneStats(0, None, None)
        try:
            geometry.transform(to_raster)
        except QgsCsException as exc:
            raise QgsProcessingException(
                self.tr("Polygon {} cannot be transformed to the poverty map's CRS ({}); check the "
                        "layer's CRS.").format(polygon.id(), exc)
            ) from exc
        return zone_stats(grid, json.loads(geometry.asJson()))
