"""``povertymapper:trainproxy``: train the nightlight proxy CNN (Jean et al. task A)."""
from __future__ import annotations

import re

from qgis.core import (
    QgsProcessingContext,
    QgsProcessingException,
    QgsProcessingFeedback,
    QgsProcessingParameterExtent,
    QgsProcessingParameterFile,
    QgsProcessingParameterMultipleLayers,
    QgsProcessingParameterFileDestination,
    QgsProcessingParameterRasterLayer,
    QgsProcessingParameterString,
    QgsProcessingParameterEnum,
    QgsProcessing,
)

from ..core.models.model_file import MODEL_SUFFIX
from ..core.extractors.cnn import SMALL_CNN
from ..core.extractors.efficientnet import ARCHITECTURE as EFFICIENTNET, N_BLOCKS
from ..core.training.proxy import ProxyTrainingConfig, train_proxy
from .base import PovertyAlgorithm
from .layer_inputs import extent_in_crs, raster_file_path

# The network options, in their order: the engine's architecture and whether it starts from ImageNet's weights.
NETWORKS = ((EFFICIENTNET, True), (EFFICIENTNET, False), (SMALL_CNN, False))
# The binning options, in their order: the engine's binning; the last option, fixed
# thresholds, gives the engine its default binning and the thresholds.
BINNINGS = ("auto", "quantiles")
FIXED_THRESHOLDS = len(BINNINGS)


class TrainProxyAlgorithm(PovertyAlgorithm):
    CONFIG = ProxyTrainingConfig
    INPUT = "INPUT"
    MORE_IMAGES = "MORE_IMAGES"
    NIGHTLIGHTS = "NIGHTLIGHTS"
    NETWORK = "NETWORK"
    FROZEN_BLOCKS = "FROZEN_BLOCKS"
    EXTENT = "EXTENT"
    TILE_SIZE = "TILE_SIZE"
    N_CLASSES = "N_CLASSES"
    BINNING = "BINNING"
    THRESHOLDS = "THRESHOLDS"
    EPOCHS = "EPOCHS"
    BATCH_SIZE = "BATCH_SIZE"
    LEARNING_RATE = "LEARNING_RATE"
    VAL_SHARE = "VAL_SHARE"
    START_MODEL = "START_MODEL"
    SEED = "SEED"
    OUTPUT_MODEL = "OUTPUT_MODEL"
    OUTPUT_REPORT = "OUTPUT_REPORT"
    OUTPUT_PLOT = "OUTPUT_PLOT"

    def name(self) -> str:
        return "trainproxy"

    def displayName(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr("Train nightlight proxy CNN")

    def shortHelpString(self) -> str:  # noqa: N802 (QGIS API)
        return self.tr(
            "Step 1 of the transfer-learning method (Jean et al. 2016). Nighttime lights are "
            "plentiful where surveys are not: a convolutional network learns to tell dark, dim "
            "and bright places from daytime imagery alone. What it learns (roads, roofs, field "
            "patterns) becomes the image features for the poverty model in 'Fit poverty model on "
            "survey clusters'.\n\n"
            "Satellite image: the daytime imagery (an alpha band marks valid pixels and is not "
            "learnt from); more scenes (dates) of the same place can join it. Nightlights: a VIIRS "
            "or DMSP radiance raster, or a colour composite such as NASA Black Marble (its "
            "luminance is used), in any CRS and resolution; it is averaged over each tile's "
            "footprint. Left empty, the labels come from the night lights bundled with the plugin "
            "(NASA Black Marble 2016 over Africa): daytime imagery of a place in Africa is all it "
            "needs; an image elsewhere is refused. Network: EfficientNet-Lite0 started from ImageNet weights (the method's "
            "'reuse the lower layers'), the same from random weights, or a small CNN. Classes: "
            "dark places, then the lit ones split by quantiles (for real night lights, where most "
            "places are dark), plain quantiles, or fixed thresholds (e.g. 0.5,5).\n"
            "Validation share: this share of tiles, in whole spatial blocks, is held out to "
            "report honest accuracy; training tiles touching it are left out.\n"
            "Starting model: a proxy model whose lower layers are reused (transfer learning).\n"
            "The log gives each epoch's held-out accuracy and the time left; Cancel stops it and "
            "writes nothing.\n\n"
            "Outputs: the model file (a feature extractor), a JSON training report (loss and "
            "accuracy per epoch, validation confusion matrix) and a PNG plot of it."
        )

    def initAlgorithm(self, config=None) -> None:  # noqa: N802 (QGIS API)
        self._add_imagery()
        self._add_network()
        self._add_tiles_and_classes()
        self._add_training_options()
        self._add_outputs()

    def _add_imagery(self) -> None:
        self.add(
            QgsProcessingParameterRasterLayer(self.INPUT, self.tr("Satellite image (daytime)")),
            self.tr(
                "Daytime imagery the network learns from, of the same kind as the images you will map "
                "(bands, pixel size, radiometry); the larger the area, the more tiles to learn from."
            ),
        )
        self.add(
            QgsProcessingParameterMultipleLayers(
                self.MORE_IMAGES, self.tr("More scenes of the same place (other dates)"),
                QgsProcessing.TypeRaster, optional=True,
            ),
            self.tr(
                "Optional: further daytime scenes with the same bands and pixel size, e.g. other dates. Their "
                "tiles join the training set; a place falls on the same side of the validation split on every date."
            ),
        )
        self.add(
            QgsProcessingParameterRasterLayer(
                self.NIGHTLIGHTS, self.tr("Nighttime lights raster (empty = the bundled lights, Africa)"), optional=True
            ),
            self.tr(
                "A VIIRS or DMSP radiance raster, or an 8-bit colour composite such as NASA Black Marble (its "
                "luminance serves as an ordinal intensity), over the same area, in any CRS and resolution; it "
                "is averaged over each tile's footprint to label the tile dark, dim or bright. Leave empty to "
                "take the labels from the night lights bundled with the plugin (NASA Black Marble 2016 over "
                "Africa, an ordinal luminance: classes by quantiles of the training tiles); an image outside "
                "Africa then needs a layer of its own."
            ),
        )

    def _add_network(self) -> None:
        self.add(
            QgsProcessingParameterEnum(
                self.NETWORK, self.tr("Network"),
                options=[self.tr("EfficientNet-Lite0 from ImageNet weights"),
                         self.tr("EfficientNet-Lite0 from random weights"), self.tr("Small CNN (4 layers)")],
                defaultValue=NETWORKS.index((self.default("architecture"), self.default("imagenet_start"))),
            ),
            self.tr(
                "EfficientNet-Lite0 from ImageNet weights reuses what the network learnt on photographs (the "
                "method's transfer learning); from random weights it learns everything from your tiles. The "
                "small CNN is about 20 times cheaper to run, for quick trials on a CPU."
            ),
        )
        self.add_int(
            self.FROZEN_BLOCKS, self.tr("Frozen lowest blocks (EfficientNet)"), self.default("frozen_blocks"), 0,
            N_BLOCKS, advanced=True,
            help_text=self.tr(
                "How many of EfficientNet's 16 blocks, from the bottom, keep their starting weights (with the "
                "first convolution). More frozen blocks train faster and need fewer tiles; 0 fine-tunes all."
            ),
        )

    def _add_tiles_and_classes(self) -> None:
        self.add(
            QgsProcessingParameterExtent(self.EXTENT, self.tr("Training extent"), optional=True),
            self.tr("Trains only on this rectangle (any CRS). Leave empty for the whole image."),
        )
        self.add_double(
            self.TILE_SIZE, self.tr("Tile size (m)"), self.default("tile_size_m"), 60.0, 50_000.0,
            help_text=self.tr(
                "Side of the tiles the network sees, in metres on the ground; about 2 km (64 pixels) suits "
                "30 m Landsat. The model keeps it: maps made with it use this tile size."
            ),
        )
        self.add_int(
            self.N_CLASSES, self.tr("Number of light classes"), self.default("n_classes"), 2, 10,
            help_text=self.tr(
                "How many light-intensity classes the network tells apart with quantile binning; 3 (dark, "
                "dim, bright) follows the paper. Fixed thresholds set the classes themselves."
            ),
        )
        self.add(
            QgsProcessingParameterEnum(
                self.BINNING, self.tr("Class binning"),
                options=[self.tr("Automatic: dark then quantiles of the lit tiles where most places are dark"),
                         self.tr("Quantiles of the training tiles"), self.tr("Fixed thresholds")],
                defaultValue=BINNINGS.index(self.default("binning")),
            ),
            self.tr(
                "Automatic: where most places are dark (real night lights), the dark tiles (up to 3 robust "
                "standard deviations above the typical tile) form the first class and the lit ones are split "
                "into equal shares; elsewhere plain quantiles. The report says which was used. Quantiles: equal numbers of training tiles per class. "
                "Fixed thresholds: class edges in light units that you give below."
            ),
        )
        self.add(
            QgsProcessingParameterString(
                self.THRESHOLDS, self.tr("Fixed thresholds (e.g. 0.5,5; with fixed binning)"), optional=True
            ),
            self.tr(
                "With fixed binning: the light values between classes, e.g. 0.5,5 gives three classes. They "
                "must lie inside the range of the nightlights, or a class gets no tile."
            ),
        )

    def _add_training_options(self) -> None:
        self.add_int(
            self.EPOCHS, self.tr("Epochs"), self.default("epochs"), 1, 500,
            help_text=self.tr(
                "Passes over the training tiles. Stop adding epochs when the validation accuracy in the "
                "report no longer rises."
            ),
        )
        self.add_int(
            self.BATCH_SIZE, self.tr("Batch size"), self.default("batch_size"), 2, 2048, advanced=True,
            help_text=self.tr("Tiles per training step; lower it when memory runs out, raise it on a large GPU."),
        )
        self.add_double(
            self.LEARNING_RATE, self.tr("Learning rate (Adam)"), self.default("learning_rate"), 1e-6, 1.0,
            advanced=True,
            help_text=self.tr(
                "Step size of the Adam optimiser. Lower it (e.g. 0.0001) when the loss jumps about, or when "
                "fine-tuning a starting model."
            ),
        )
        self.add_double(
            self.VAL_SHARE, self.tr("Validation share (spatial blocks)"), self.default("val_fraction"), 0.05, 0.5,
            advanced=True,
            help_text=self.tr(
                "Share of the tiles held out, in whole spatial blocks, to report honest accuracy; training "
                "tiles touching them are left out."
            ),
        )
        self.add(
            QgsProcessingParameterFile(
                self.START_MODEL, self.tr("Starting model (reuse its lower layers)"),
                extension=MODEL_SUFFIX.lstrip("."), optional=True,
            ),
            self.tr(
                "Optional: a proxy model (.povmodel) whose lower layers start the training (transfer "
                "learning), e.g. one trained on another region. Leave empty to start from scratch."
            ),
        )
        self.add_imagery_parameters()
        self.add_int(
            self.SEED, self.tr("Random seed"), self.default("seed"), 0, 2**31 - 1, advanced=True,
            help_text=self.tr(
                "Fixes the random choices (validation blocks, initial weights, tile order): the same seed "
                "gives the same split and, on the CPU, the same model."
            ),
        )

    def _add_outputs(self) -> None:
        self.add(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_MODEL, self.tr("Proxy model file"), self.tr("Poverty models (*{})").format(MODEL_SUFFIX)
            ),
            self.tr(
                "The trained network as a feature extractor (.povmodel); use it as 'model file' in 'Fit "
                "poverty model on survey clusters'."
            ),
        )
        self.add(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_REPORT, self.tr("Training report (JSON)"), self.tr("JSON files (*.json)"), optional=True
            ),
            self.tr("Optional: loss and accuracy per epoch and the validation confusion matrix, as JSON."),
        )
        self.add(
            QgsProcessingParameterFileDestination(
                self.OUTPUT_PLOT, self.tr("Training plot (PNG)"), self.tr("PNG images (*.png)"), optional=True
            ),
            self.tr("Optional: a plot of the loss and accuracy per epoch, for training and validation."),
        )

    def prepareAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> bool:  # noqa: N802
        layer = self.parameterAsRasterLayer(parameters, self.INPUT, context)
        self._image = raster_file_path(layer)
        self._more = tuple(raster_file_path(more) for more in self.parameterAsLayerList(parameters, self.MORE_IMAGES, context))
        lights = self.parameterAsRasterLayer(parameters, self.NIGHTLIGHTS, context)
        self._lights = None if lights is None else raster_file_path(lights)
        self._bounds = extent_in_crs(self, parameters, self.EXTENT, context, layer.crs())
        return True

    def _thresholds(self, parameters, context) -> tuple[float, ...] | None:
        if self.parameterAsEnum(parameters, self.BINNING, context) != FIXED_THRESHOLDS:
            return None
        text = self.parameterAsString(parameters, self.THRESHOLDS, context)
        try:
            values = tuple(float(v) for v in re.split(r"[,;\s]+", text.strip()) if v)
        except ValueError:
            values = ()
        if not values:
            raise QgsProcessingException(self.tr("Fixed binning needs thresholds, e.g. 0.5,5 (light values)."))
        return values

    def processAlgorithm(self, parameters, context: QgsProcessingContext, feedback: QgsProcessingFeedback) -> dict:  # noqa: N802
        model_out = self.parameterAsFileOutput(parameters, self.OUTPUT_MODEL, context)
        report_out = self.parameterAsFileOutput(parameters, self.OUTPUT_REPORT, context) or None
        plot_out = self.parameterAsFileOutput(parameters, self.OUTPUT_PLOT, context) or None
        architecture, imagenet_start = NETWORKS[self.parameterAsEnum(parameters, self.NETWORK, context)]
        binning = self.parameterAsEnum(parameters, self.BINNING, context)
        config = ProxyTrainingConfig(
            image_path=self._image,
            more_image_paths=self._more,
            nightlights_path=self._lights,
            model_path=model_out,
            report_path=report_out,
            plot_path=plot_out,
            bounds=self._bounds,
            band_indexes=self.band_indexes(parameters, context),
            radiometry=self.radiometry(parameters, context),
            tile_size_m=self.parameterAsDouble(parameters, self.TILE_SIZE, context),
            architecture=architecture,
            imagenet_start=imagenet_start,
            frozen_blocks=self.parameterAsInt(parameters, self.FROZEN_BLOCKS, context),
            n_classes=self.parameterAsInt(parameters, self.N_CLASSES, context),
            binning=BINNINGS[binning] if binning < FIXED_THRESHOLDS else self.default("binning"),
            thresholds=self._thresholds(parameters, context),
            epochs=self.parameterAsInt(parameters, self.EPOCHS, context),
            batch_size=self.parameterAsInt(parameters, self.BATCH_SIZE, context),
            learning_rate=self.parameterAsDouble(parameters, self.LEARNING_RATE, context),
            device=self.device(parameters, context),
            start_model_path=self.parameterAsFile(parameters, self.START_MODEL, context) or None,
            val_fraction=self.parameterAsDouble(parameters, self.VAL_SHARE, context),
            seed=self.parameterAsInt(parameters, self.SEED, context),
        )
        with self.user_errors():
            result = train_proxy(config, lambda f: feedback.setProgress(100.0 * f), feedback.isCanceled,
                                 feedback.pushInfo)
        report = result.report
        held_out = report["held_out"]
        if "labels" in report:
            feedback.pushInfo(self.tr("Night lights: {}.").format(report["labels"]))
        feedback.pushInfo(self.tr("Trained {} ({} start) on {} with {} tiles ({} held out).").format(
            report["network"]["architecture"], report["network"]["start"], report["device"],
            report["tiles"]["train"], report["tiles"]["val"]))
        feedback.pushInfo(self.tr(
            "Held-out blocks: accuracy {accuracy:.2f}, balanced accuracy {balanced_accuracy:.2f}; chance "
            "{chance:.2f}, always the commonest class {majority_class_accuracy:.2f}.").format(**held_out))
        return {self.OUTPUT_MODEL: model_out, self.OUTPUT_REPORT: report_out, self.OUTPUT_PLOT: plot_out}
