"""``povertymapper:aggregate``: a poverty map summed up per polygon (e.g. districts)."""
from __future__ import annotations

from functools import partial

import json

from qgis.core import (
    QgsCoordinateReferenceSystem,
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
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
)
from qgis.PyQt.QtCore import QVariant

from ..core.errors import PovertyMapperError
from ..core.maps.zonal import ZoneStats, is_index
from ..core.maps.zonal_worker import IsolatedEstimateMap
from ..dependencies import qgis_python
from .base import PovertyAlgorithm
from .layer_inputs import raster_file_path, read_poverty_map_tags
from .sinks import atomic_sink
from .styling import write_estimate_polygons_style

COVER_FIELD = "pov_cover"
MEAN_FIELD = "pov_mean"
WEIGHTED_FIELD = "pov_wmean"
POPULATION_FIELD = "pov_pop"
BELOW_FIELD = "pov_below"
EXTRAPOLATED_FIELD = "pov_extra"
OUT_OF_DOMAIN_FIELD = "pov_ood"
CELLS_FIELD = "pov_cells"


class AggregateAlgorithm(PovertyAlgorithm):
    INPUT = "INPUT"
    POLYGONS = "POLYGONS"
    POPULATION = "POPULATION"
    POVERTY_LINE = "POVERTY_LINE"
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
            "Each cell counts with the share of it that lies inside the polygon (exact "
            "cell-polygon coverage), so a district smaller than a cell gets the estimate of the cells "
            "it lies on. The output is the polygons with all their fields, in their own CRS, plus:\n"
            "pov_cover: the share (0-1) of the polygon's area on cells with an estimate; below 1 the "
            "numbers speak for that part only (the map ends, or cells have no estimate);\n"
            "pov_mean: the mean estimate of those cells, each weighted by its share inside;\n"
            "pov_wmean (with a population raster): the population-weighted mean, "
            "sum(people x estimate) / sum(people), the estimate of the average person rather "
            "than of the average square kilometre;\n"
            "pov_pop (with a population raster): the people on the estimated part of the polygon;\n"
            "pov_below (with a population raster and a poverty line, for a map of consumption or "
            "income, not of an index): the share of those people on cells whose estimate lies below "
            "the line; a cell's estimate is the mean of a place, so this is not a headcount ratio of "
            "households;\n"
            "pov_extra: the share of the estimated part on cells flagged as extrapolation (outside "
            "the range of the survey outcomes); pov_ood: on cells whose imagery is unlike the model's "
            "training imagery (out of domain); cells left without an estimate (fill, water, cloud) do not "
            "count;\n"
            "pov_cells: how many cells with an estimate the polygon overlaps.\n"
            "Polygons outside the map get pov_cover 0 and empty means.\n\n"
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
                "The areas to sum up, e.g. districts, in any CRS (the layer must have one). Each cell counts "
                "with the share of it inside the polygon."
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
            QgsProcessingParameterNumber(
                self.POVERTY_LINE, self.tr("Poverty line (in the map's unit; consumption maps only)"),
                type=QgsProcessingParameterNumber.Double, optional=True,
            ),
            self.tr(
                "Optional, with a population raster: adds pov_below, the share of people on cells whose "
                "estimate lies below this line, e.g. 2.15 for a map of consumption in USD per person per "
                "day. Refused for a map of an index (e.g. asset wealth), whose values have no poverty line."
            ),
        )
        self.add(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT, self.tr("Polygons with poverty estimates"), QgsProcessing.TypeVectorPolygon
            ),
            self.tr(
                "The polygons with all their fields plus pov_cover, pov_mean, pov_extra, pov_ood, pov_cells and (with a "
                "population raster) pov_wmean, pov_pop and, with a poverty line, pov_below; a .shp or .gpkg "
                "file, or a temporary layer."
            ),
        )

    def prepareAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> bool:  # noqa: N802
        """Resolve the raster layers into file paths, read the map's tags and take the
        polygons' feature source here, in the main thread, as every other algorithm of the
        plugin takes its layers: the task's worker thread then reads only that source (a
        copy of the layer's features, made to be read in another thread) and the files,
        through the separate process of the statistics. (Taken in the worker thread, the
        source looked the layer up in the project from there; the dock's aggregate crashed
        QGIS about once in 20 runs of the dock tests.)"""
        self._source = self.parameterAsSource(parameters, self.POLYGONS, context)
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        self._raster_path = raster_file_path(layer)
        self._map_tags = read_poverty_map_tags(self._raster_path)
        population = self.parameterAsRasterLayer(parameters, self.POPULATION, context)
        self._population_path = raster_file_path(population) if population is not None else None
        return True

    def processAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:  # noqa: N802
        source, self._source = self._source, None  # released with this run
        if source is None:
            raise QgsProcessingException(self.tr("Choose a polygon layer (e.g. districts)."))
        if not source.sourceCrs().isValid():
            raise QgsProcessingException(
                self.tr("The polygons have no coordinate reference system, so they cannot be placed on the map; "
                        "set it in the layer's properties (Source > Assigned CRS) and run again.")
            )
        quantity, unit = self._map_tags.checked()
        line = self._poverty_line(parameters, context, quantity, unit)
        # In a separate Python process: inside QGIS the GEOS, GDAL and PROJ that wheels bundle
        # clash with QGIS's own (core/maps/zonal_worker.py).
        with self.user_errors(), IsolatedEstimateMap(self._raster_path, self._population_path, qgis_python()) as estimates:
            if estimates.crs_wkt is None:
                raise PovertyMapperError(f"The poverty map {self._raster_path} has no coordinate reference system.")
            dest, n_empty, n_partial = self._write(parameters, context, feedback, source, estimates, line)
        feedback.pushInfo(
            self.tr("Aggregated {} over {} polygons.").format(
                f"{quantity} ({unit})" if quantity else self.tr("the estimates"), source.featureCount()
            )
        )
        if n_empty:
            feedback.pushWarning(
                self.tr("{} polygon(s) lie on no cell with an estimate; their means are empty.").format(n_empty)
            )
        field = WEIGHTED_FIELD if self._population_path is not None else MEAN_FIELD
        title = self.tr("{} per polygon").format(quantity or field)
        self.in_main_thread_after_run(partial(write_estimate_polygons_style, dest, field, self._raster_path, title))
        if n_partial:
            feedback.pushWarning(
                self.tr("{} polygon(s) are covered only in part by cells with an estimate (pov_cover below 0.99); "
                        "their numbers speak for that part only.").format(n_partial)
            )
        return {self.OUTPUT: dest}

    def _poverty_line(self, parameters, context, quantity: str | None, unit: str | None) -> float | None:
        if parameters.get(self.POVERTY_LINE) in (None, ""):
            return None
        line = self.parameterAsDouble(parameters, self.POVERTY_LINE, context)
        if self._population_path is None:
            raise QgsProcessingException(
                self.tr("A poverty line gives the share of people below it: give a population raster too.")
            )
        if is_index(quantity, unit):
            raise QgsProcessingException(
                self.tr("This map holds {} ({}), an index without a poverty line; a line applies to a map of "
                        "consumption or income. Leave the poverty line empty.").format(quantity, unit)
            )
        return line

    def _fields(self, source, with_population: bool, line: float | None) -> tuple[QgsFields, list[int], list[QgsField]]:
        def number(name: str) -> QgsField:
            return QgsField(name, QVariant.Double, "double", 24, 15)

        ours = [number(COVER_FIELD), number(MEAN_FIELD)]
        if with_population:
            ours += [number(WEIGHTED_FIELD), number(POPULATION_FIELD)]
            if line is not None:
                ours.append(number(BELOW_FIELD))
        ours += [number(EXTRAPOLATED_FIELD), number(OUT_OF_DOMAIN_FIELD), QgsField(CELLS_FIELD, QVariant.Int, "integer", 10)]
        replaced = {f.name().lower() for f in ours}
        kept = [i for i, f in enumerate(source.fields()) if f.name().lower() not in replaced]
        fields = QgsFields()
        for i in kept:
            fields.append(source.fields().at(i))
        for field in ours:
            fields.append(field)
        return fields, kept, ours

    def _write(self, parameters, context, feedback, source, estimates: IsolatedEstimateMap, line: float | None):
        with_population = estimates.with_population
        fields, kept, ours = self._fields(source, with_population, line)
        if len(kept) < source.fields().count():
            feedback.pushWarning(
                self.tr("The polygons already have fields named like the results ({}); they are "
                        "replaced in the output.").format(", ".join(f.name() for f in ours))
            )
        to_raster = QgsCoordinateTransform(
            source.sourceCrs(), QgsCoordinateReferenceSystem.fromWkt(estimates.crs_wkt), context.transformContext()
        )
        total = max(1, source.featureCount())
        n_empty = n_partial = 0
        with atomic_sink(self, parameters, self.OUTPUT, context, fields, source.wkbType(), source.sourceCrs()) as (sink, dest):
            for i, polygon in enumerate(source.getFeatures()):
                if feedback.isCanceled():
                    raise QgsProcessingException(self.tr("Canceled: no output was written."))
                stats = self._zone_stats(estimates, polygon, to_raster, line)
                n_empty += stats.mean is None
                n_partial += stats.mean is not None and stats.coverage < 0.99
                values = [stats.coverage, stats.mean]
                if with_population:
                    values += [stats.weighted_mean, stats.population]
                    if line is not None:
                        values.append(stats.below_line)
                values += [stats.extrapolated, stats.out_of_domain, stats.cells]
                attributes = polygon.attributes()
                feature = QgsFeature(fields)
                feature.setGeometry(polygon.geometry())
                feature.setAttributes([attributes[k] for k in kept] + values)
                sink.addFeature(feature, QgsFeatureSink.FastInsert)
                feedback.setProgress(100.0 * (i + 1) / total)
        return dest, n_empty, n_partial

    def _zone_stats(self, estimates: IsolatedEstimateMap, polygon: QgsFeature, to_raster: QgsCoordinateTransform,
                    line: float | None) -> ZoneStats:
        geometry = polygon.geometry()
        if geometry.isNull() or geometry.isEmpty():
            return ZoneStats(0, 0.0, None)
        try:
            geometry.transform(to_raster)
        except QgsCsException as exc:
            raise QgsProcessingException(
                self.tr("Polygon {} cannot be transformed to the poverty map's CRS ({}); check the "
                        "layer's CRS.").format(polygon.id(), exc)
            ) from exc
        return estimates.stats(json.loads(geometry.asJson()), line)
