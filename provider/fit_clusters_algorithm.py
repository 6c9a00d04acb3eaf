"""``povertymapper:fitclusters``: fit the poverty model on surveyed clusters."""
from __future__ import annotations

import math

from qgis.core import (
    QgsFeature,
    QgsFeatureSink,
    QgsField,
    QgsFields,
    QgsGeometry,
    QgsPointXY,
    QgsProcessing,
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterBoolean,
    QgsProcessingParameterEnum,
    QgsProcessingParameterFeatureSink,
    QgsProcessingParameterFeatureSource,
    QgsProcessingParameterField,
    QgsProcessingParameterFile,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterNumber,
    QgsProcessingParameterRasterLayer,
    QgsProcessingUtils,
    QgsWkbTypes,
)
from qgis.PyQt.QtCore import QVariant

from ..core.training.clusters import ClusterFitConfig, fit_clusters
from ..core.training.survey_inputs import EXTRACTOR_CHOICES
from ..core.models.model_file import MODEL_SUFFIX
from ..core.regression.metrics import describe_r2
from .base import PovertyAlgorithm
from .layer_inputs import cluster_points, count_not_points, raster_file_path
from .sinks import atomic_sink, check_sink_folder

EXTRACTOR_OPTIONS = (*EXTRACTOR_CHOICES, "model file")


class FitClustersAlgorithm(PovertyAlgorithm):
    CONFIG = ClusterFitConfig
    INPUT = "INPUT"
    CLUSTERS = "CLUSTERS"
    OUTCOME = "OUTCOME"
    WEIGHT = "WEIGHT"
    GROUP = "GROUP"
    LOG_OUTCOME = "LOG_OUTCOME"
    BOX_SIZE = "BOX_SIZE"
    EXTRACTOR = "EXTRACTOR"
    EXTRACTOR_MODEL = "EXTRACTOR_MODEL"
    NIGHTLIGHTS = "NIGHTLIGHTS"
    WITH_LIGHTS = "WITH_LIGHTS"
    TILE_SIZE = "TILE_SIZE"
    FOLDS = "FOLDS"
    FOLD_DISTANCE = "FOLD_DISTANCE"
    MIN_TILES = "MIN_TILES"
    MIN_COVERAGE = "MIN_COVERAGE"
    SEED = "SEED"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    OUTPUT_PREDICTIONS = "OUTPUT_PREDICTIONS"
    OUTPUT_SCATTER = "OUTPUT_SCATTER"

    def name(self) -> str:
        return "fitclusters"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Fit poverty model on survey clusters")

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr(
            "Step 2 of the transfer-learning method (Jean et al. 2016). For each surveyed cluster, "
            "image features of the tiles in a box around it are averaged, and a ridge regression "
            "learns the cluster outcome (consumption, or an asset wealth index) from them.\n\n"
            "Clusters: a point layer in any CRS. Outcome field: the numeric survey value; missing "
            "or non-numeric values are left out and counted. Weight field (optional): e.g. the "
            "number of households. Log transform: fit log(outcome), common for consumption.\n"
            "Box size: survey coordinates are displaced by up to 2 km (urban) and 5-10 km (rural) "
            "for privacy; the default 10 km box covers that.\n"
            "Feature extractor: 'histogram' (per-band histograms as square-rooted frequencies, "
            "transparent), 'random' "
            "(random convolutional features after MOSAIKS, no training), or 'model file' (the "
            "proxy CNN from 'Train nightlight proxy CNN', the method of the paper).\n"
            "Nightlights (optional): scores a nightlights-only model beside it, the baseline the "
            "method should beat; left empty, the baseline uses the night lights bundled with the "
            "plugin (NASA Black Marble 2016 over Africa) where they cover the clusters. With the "
            "bundled lights' features: the fit reads them beside the image features, in one ridge "
            "(such a model cannot map yet).\n\n"
            "The reported r² (squared Pearson correlation, with the correlation's sign: below 0 is no "
            "skill) and R² (coefficient of determination) "
            "are out-of-fold: nested cross-validation, folds by location (clusters closer than the "
            "box size, whose boxes share imagery, stay in one fold, and so do chains of them), ridge "
            "penalty chosen inside each training fold. The report gives the fold sizes, the penalty "
            "of each fold (flagged where it lay at an end of its grid) and, per cluster, the tiles "
            "used and the share of its box covered by valid pixels.\n"
            "Outputs: the model file for 'Predict poverty map', a JSON report, a point layer of "
            "out-of-fold predictions (with the cluster layer's own fields, the nightlights-only "
            "prediction and the coverage) and a predicted-vs-observed scatter plot."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API)
        self._add_survey_inputs()
        self._add_feature_options()
        self._add_fold_options()
        self._add_outputs()

    def _add_survey_inputs(self) -> None:
        self.add(
            QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Satellite image")),
            self.tr(
                "Daytime imagery covering the survey clusters, the same kind of image the model will map "
                "later (bands, pixel size, radiometry)."
            ),
        )
        self.add(
            QgsProcessingParameterFeatureSource(
                self.CLUSTERS, self.tr("Survey clusters (points)"), [QgsProcessing.TypeVectorPoint]
            ),
            self.tr(
                "One point per surveyed cluster (village or neighbourhood), in any CRS, with the survey "
                "outcome as a field. Clusters outside the image are left out and counted."
            ),
        )
        self.add(
            QgsProcessingParameterField(
                self.OUTCOME, self.tr("Outcome field"), parentLayerParameterName=self.CLUSTERS,
                type=QgsProcessingParameterField.Numeric,
            ),
            self.tr(
                "The numeric field the model learns to predict, e.g. consumption per person or an asset "
                "wealth index. Missing values are left out and counted."
            ),
        )
        self.add(
            QgsProcessingParameterField(
                self.WEIGHT, self.tr("Weight field (e.g. households)"), parentLayerParameterName=self.CLUSTERS,
                type=QgsProcessingParameterField.Numeric, optional=True,
            ),
            self.tr(
                "Optional: a numeric field weighting each cluster in the fit, e.g. the number of households "
                "surveyed. Leave empty to weigh all clusters equally."
            ),
        )
        self.add(
            QgsProcessingParameterField(
                self.GROUP, self.tr("Country or survey field (scores within groups)"),
                parentLayerParameterName=self.CLUSTERS, optional=True,
            ),
            self.tr(
                "Optional: a field naming each cluster's country or survey round. The report and the model "
                "card then add r² within these groups (predictions and survey values demeaned per group): "
                "how well the model ranks places inside one country, which a pooled r² hides when the "
                "groups differ in level. Only for scoring; never a feature."
            ),
        )
        self.add(
            QgsProcessingParameterBoolean(
                self.LOG_OUTCOME, self.tr("Log-transform the outcome"), self.default("log_outcome")
            ),
            self.tr(
                "Fit log(outcome) instead of the outcome: usual for consumption or income, which are skewed; "
                "leave off for an asset index (it has negative values)."
            ),
        )

    def _add_feature_options(self) -> None:
        self.add_double(
            self.BOX_SIZE, self.tr("Neighbourhood box size (m)"), self.default("box_size_m"), 100.0, 100_000.0,
            help_text=self.tr(
                "Side of the square around each cluster whose tiles' features are averaged. Surveys displace "
                "cluster coordinates by up to 2 km (urban) and 5-10 km (rural); the default 10 km covers that."
            ),
        )
        self.add(
            QgsProcessingParameterEnum(
                self.EXTRACTOR, self.tr("Feature extractor"), options=list(EXTRACTOR_OPTIONS),
                defaultValue=EXTRACTOR_OPTIONS.index(self.default("extractor_kind")),
            ),
            self.tr(
                "How tiles become features. histogram: per-band histograms (square roots of the frequencies), "
                "fast and transparent; random: "
                "random convolutional features (MOSAIKS), no training; model file: the proxy CNN from "
                "'Train nightlight proxy CNN' (choose it below), the method of the paper."
            ),
        )
        self.add(
            QgsProcessingParameterFile(
                self.EXTRACTOR_MODEL, self.tr("Extractor model file (with 'model file')"),
                extension=MODEL_SUFFIX.lstrip("."), optional=True,
            ),
            self.tr(
                "The .povmodel written by 'Train nightlight proxy CNN'; needed only with the extractor "
                "'model file'. Its tile size and bands are used."
            ),
        )
        self.add(
            QgsProcessingParameterRasterLayer(self.NIGHTLIGHTS, self.tr("Nightlights raster for the baseline"), optional=True),
            self.tr(
                "Optional: a VIIRS or DMSP nightlights raster (or a red-green-blue colour composite such as "
                "NASA Black Marble, whose luminance is used). The report then scores a model on nightlights "
                "alone over the same folds, the baseline the image features should beat. Left empty, the "
                "baseline uses the night lights bundled with the plugin (NASA Black Marble 2016 over Africa) "
                "where they cover the clusters, and the report says so."
            ),
        )
        self.add(
            QgsProcessingParameterBoolean(
                self.WITH_LIGHTS, self.tr("Fit the bundled night lights' features too"), self.default("with_lights")
            ),
            self.tr(
                "Adds the bundled lights' 35 luminance features (NASA Black Marble 2016, the 6.7 km box around each "
                "cluster) to the image features, standardized beside them in the same ridge. Clusters outside "
                "Africa are left out. The model file records it; such a model cannot make maps yet."
            ),
        )
        self.add_double(
            self.TILE_SIZE, self.tr("Tile size (m; histogram and random)"), self.default("tile_size_m"), 60.0, 50_000.0,
            advanced=True,
            help_text=self.tr(
                "Side of the tiles cut from the box, for the histogram and random extractors (a model file "
                "brings its own). About 2 km (64 Landsat pixels) suits 30 m imagery."
            ),
        )

    def _add_fold_options(self) -> None:
        self.add_int(
            self.FOLDS, self.tr("Cross-validation folds"), self.default("n_folds"), 2, 20, advanced=True,
            help_text=self.tr(
                "Folds of the nested cross-validation (clusters closer than the fold distance stay in one fold); they "
                "also choose the final model's ridge penalty. More folds train on more clusters each time, "
                "and take longer."
            ),
        )
        self.add(
            QgsProcessingParameterNumber(
                self.FOLD_DISTANCE, self.tr("Fold distance (m; empty = the box size)"),
                type=QgsProcessingParameterNumber.Double, defaultValue=self.default("fold_distance_m"), optional=True,
                minValue=0.0, maxValue=1_000_000.0,
            ),
            self.tr(
                "Clusters closer than this share a fold, and so do chains of such neighbours, so that no "
                "cluster is scored by a model trained on its neighbour's imagery. Empty: the box size (boxes "
                "closer than that overlap). 0: only clusters at the same place share a fold. A larger "
                "distance is stricter; when the clusters form fewer groups than folds, lower it or the folds."
            ),
            advanced=True,
        )
        self.add_int(
            self.MIN_TILES, self.tr("Minimum tiles per cluster"), self.default("min_tiles"), 1, 10_000, advanced=True,
            help_text=self.tr(
                "Clusters whose box has fewer tiles with enough valid pixels (half of a tile) are left out and "
                "counted. The report and the predictions layer give each cluster's tiles used."
            ),
        )
        self.add_double(
            self.MIN_COVERAGE, self.tr("Minimum covered share of the box (0-1)"), self.default("min_covered_share"),
            0.0, 1.0, advanced=True,
            help_text=self.tr(
                "Clusters whose box is covered by valid pixels (inside the image, not nodata) less than this "
                "share are left out and counted, e.g. 0.5 for at least half. 0 keeps every cluster with a tile."
            ),
        )
        self.add_imagery_parameters()
        self.add_int(
            self.SEED, self.tr("Random seed"), self.default("seed"), 0, 2**31 - 1, advanced=True,
            help_text=self.tr(
                "Fixes the random choices (folds, random features): the same seed gives the same model and "
                "scores. Change it to see how much the scores depend on the split."
            ),
        )
        self.add_scheduler_parameter()

    def _add_outputs(self) -> None:
        self.add(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_MODEL, self.tr("Poverty model file"), self.tr("Poverty models (*{})").format(MODEL_SUFFIX)
            ),
            self.tr(
                "The fitted model (.povmodel): features, ridge regression, the imagery it expects and its "
                "scores. Use it in 'Predict poverty map' or the dock."
            ),
        )
        self.add(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_REPORT, self.tr("Cross-validation report (JSON)"), self.tr("JSON files (*.json)"), optional=True
            ),
            self.tr("Optional: the scores per fold and pooled, the penalties chosen and the baseline, as JSON."),
        )
        self.add(
            QgsProcessingParameterFeatureSink(
                self.OUTPUT_PREDICTIONS, self.tr("Out-of-fold predictions"), QgsProcessing.TypeVectorPoint, optional=True
            ),
            self.tr(
                "Optional: the clusters with their own fields, observed, predicted (by a model that did not see "
                "them), residual and fold; nl_pred and nl_resid, the same from nightlights alone (with a "
                "nightlights raster); tiles_used, tiles_box and covered, how much of the box the features saw. "
                "Split it by a field of yours (urban/rural, region) to compare the image model with nightlights."
            ),
        )
        self.add(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_SCATTER, self.tr("Predicted vs observed (PNG)"), self.tr("PNG images (*.png)"), optional=True
            ),
            self.tr("Optional: a scatter plot of out-of-fold predictions against the survey values."),
        )

    def prepareAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> bool:  # noqa: N802
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        self._image = raster_file_path(layer)
        source = self.parameterAsSource(parameters, self.CLUSTERS, context)
        if source is None:
            raise QgsProcessingException(self.tr("Choose a point layer of survey clusters."))
        self._source_crs = source.sourceCrs()
        outcome = self.parameterAsString(parameters, self.OUTCOME, context)
        weight = self.parameterAsString(parameters, self.WEIGHT, context) or None
        group = self.parameterAsString(parameters, self.GROUP, context) or None
        self._clusters = cluster_points(source, outcome, weight, layer.crs(), context, group)
        self._lights = None
        lights = self.parameterAsRasterLayer(parameters, self.NIGHTLIGHTS, context)
        if lights is not None:
            self._lights = raster_file_path(lights)
        # Original coordinates and fields, for the prediction layer in the clusters' own CRS.
        self._fields = source.fields()
        self._rows = {f.id(): (_point(f.geometry()), f.attributes()) for f in source.getFeatures()}
        self._not_points = count_not_points(source)
        return True

    def processAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:  # noqa: N802
        choice = EXTRACTOR_OPTIONS[self.parameterAsEnum(parameters, self.EXTRACTOR, context)]
        extractor_path = None
        if choice == "model file":
            extractor_path = self.parameterAsFile(parameters, self.EXTRACTOR_MODEL, context)
            if not extractor_path:
                raise QgsProcessingException(self.tr("Choose the extractor model file (e.g. a trained proxy CNN)."))
        outcome = self.parameterAsString(parameters, self.OUTCOME, context)
        model_out = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        report_out = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None
        scatter_out = self.parameterAsFileOutput(parameters, self.OUTPUT_SCATTER, context) or None
        config = ClusterFitConfig(
            image_path=self._image,
            clusters=self._clusters,
            model_path=model_out,
            outcome_name=outcome,
            **({"extractor_path": extractor_path} if extractor_path else {"extractor_kind": choice}),
            band_indexes=self.band_indexes(parameters, context),
            radiometry=self.radiometry(parameters, context),
            box_size_m=self.parameterAsDouble(parameters, self.BOX_SIZE, context),
            tile_size_m=self.parameterAsDouble(parameters, self.TILE_SIZE, context),
            log_outcome=self.parameterAsBool(parameters, self.LOG_OUTCOME, context),
            use_weights=bool(self.parameterAsString(parameters, self.WEIGHT, context)),
            n_folds=self.parameterAsInt(parameters, self.FOLDS, context),
            fold_distance_m=self._fold_distance(parameters, context),
            min_tiles=self.parameterAsInt(parameters, self.MIN_TILES, context),
            min_covered_share=self.parameterAsDouble(parameters, self.MIN_COVERAGE, context),
            nightlights_path=self._lights,
            with_lights=self.parameterAsBool(parameters, self.WITH_LIGHTS, context),
            report_path=report_out,
            scatter_path=scatter_out,
            device=self.device(parameters, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
            scheduler=self.scheduler(parameters, context),
        )
        check_sink_folder(parameters.get(self.OUTPUT_PREDICTIONS), context, self.tr("out-of-fold predictions"))
        if self._not_points:
            feedback.pushWarning(self.tr("{} clusters are lines or polygons, not points: each was taken at its "
                                         "centroid.").format(self._not_points))
        with self.user_errors():
            result = fit_clusters(config, lambda f: feedback.setProgress(100.0 * f), feedback.isCanceled)
        pooled = result.report.cv.pooled
        feedback.pushInfo(self.tr("Out-of-fold scores on {} clusters: {} (squared Pearson, signed), R² {:.3f}.").format(
            pooled.n, describe_r2(pooled.r2), pooled.R2))
        folds, coverage = result.report.folds, result.report.coverage
        feedback.pushInfo(self.tr("Folds of {} groups of neighbours closer than {:g} m; clusters per fold: {}.").format(
            folds.groups, folds.distance_m, ", ".join(str(n) for n in folds.sizes)))
        feedback.pushInfo(self.tr("Median tiles used per cluster {:g}; median share of the box covered {:.0%}.").format(
            coverage.median_tiles_used, coverage.median_covered_share))
        baseline = result.report.nightlights_baseline
        if baseline is not None:
            lights = self.tr("Nightlights") if self._lights else self.tr("The bundled NASA Black Marble 2016 lights")
            feedback.pushInfo(self.tr("{} alone: {}, R² {:.3f}.").format(
                lights, describe_r2(baseline.pooled.r2), baseline.pooled.R2))
        for note in result.notes:
            feedback.pushWarning(note)

        outputs = {self.OUTPUT_MODEL: model_out, self.OUTPUT_REPORT: report_out, self.OUTPUT_SCATTER: scatter_out}
        if parameters.get(self.OUTPUT_PREDICTIONS) is not None:
            outputs[self.OUTPUT_PREDICTIONS] = self._write_predictions(parameters, context, config, result)
        return outputs

    def _fold_distance(self, parameters, context) -> float | None:
        """The fold distance given, or None (the box size) when left empty."""
        if parameters.get(self.FOLD_DISTANCE) in (None, ""):
            return None
        return self.parameterAsDouble(parameters, self.FOLD_DISTANCE, context)

    def _write_predictions(self, parameters, context, config, result) -> str:
        added = QgsFields()
        for name, kind in PREDICTION_FIELDS:
            added.append(QgsField(name, kind))
        fields = QgsProcessingUtils.combineFields(self._fields, added)
        used = [i for i, u in enumerate(result.used) if u]
        lights = result.baseline_predicted
        with atomic_sink(
            self, parameters, self.OUTPUT_PREDICTIONS, context, fields, QgsWkbTypes.Point, self._source_crs
        ) as (sink, dest):
            for k, i in enumerate(used):
                cluster = config.clusters[i]
                point, attributes = self._rows[int(cluster.id)]
                obs, pred = float(result.observed[k]), float(result.predicted[k])
                nl_pred = None if lights is None or not math.isfinite(lights[k]) else float(lights[k])
                feature = QgsFeature(fields)
                feature.setGeometry(QgsGeometry.fromPointXY(QgsPointXY(point)))
                feature.setAttributes(list(attributes) + [
                    cluster.id, obs, pred, obs - pred, int(result.fold[k]),
                    nl_pred, None if nl_pred is None else obs - nl_pred,
                    int(result.coverage.tiles_used[i]), int(result.coverage.tiles_in_box[i]),
                    float(result.coverage.covered_share[i]),
                ])
                sink.addFeature(feature, QgsFeatureSink.FastInsert)
        return dest


def _point(geometry) -> QgsPointXY | None:
    """A cluster's place in its layer's CRS (a polygon's centroid); None without geometry."""
    if geometry.isNull() or geometry.isEmpty():
        return None
    return geometry.centroid().asPoint()


# The out-of-fold layer's own fields (names of at most 10 characters, for shapefiles),
# after the cluster layer's fields; a name the cluster layer already has gets a suffix.
PREDICTION_FIELDS = (
    ("cluster", QVariant.String), ("observed", QVariant.Double), ("predicted", QVariant.Double),
    ("residual", QVariant.Double), ("fold", QVariant.Int), ("nl_pred", QVariant.Double),
    ("nl_resid", QVariant.Double), ("tiles_used", QVariant.Int), ("tiles_box", QVariant.Int),
    ("covered", QVariant.Double),
)
