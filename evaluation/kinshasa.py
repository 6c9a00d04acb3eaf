"""The proxy task on real imagery: Landsat 8 over Kinshasa and Brazzaville on two dates,
labelled with NASA Black Marble 2016 night lights (../shared/data/README.md), and the
three networks compared on it with the same tiles, split, epochs and settings.

Tiles are 112 pixels of 38.2 m (4.3 km, about 7 x 7 night-light pixels) so that about
4,000 tiles of the two dates train on a 2-core CPU in minutes per epoch; a 224-pixel
tile costs four times as much and gives a quarter of the tiles. Only tiles wholly
inside the scenes are used. The held-out blocks (4 x 4 tiles, 20 %) are the same for
every network; nothing was tuned on them beyond the fixed settings below.
"""
from __future__ import annotations

from contextlib import ExitStack
from dataclasses import replace
from pathlib import Path

import rasterio

from ..core.extractors.cnn import SMALL_CNN, CnnExtractor
from ..core.extractors.efficientnet import ARCHITECTURE as EFFICIENTNET
from ..core.imagery.radiometry import PRESETS
from ..core.models.model_file import PovertyModel
from ..core.models.scene_domain import SceneDomain
from ..core.models.scene_reference import TrainingRaster, scene_domain_of
from ..core.training.clusters import Cluster, ClusterFitConfig
from ..core.training.survey_inputs import extractor_fields
from ..core.training.proxy import ProxyTrainingConfig
from . import dhs

KINSHASA_IMAGE_2015 = Path("kinshasa") / "kinshasa_landsat8_20150904_rgba_38m.tif"
PIXEL_M = 38.2185  # the scenes' pixel in EPSG:3857 units at their centre (about 38.1 m on the ground)
TILE_PX = 112
PROXY_EPOCHS = 8
# variant name (as printed by make eval) -> what differs between the networks
PROXY_VARIANTS = {
    "imagenet_start": {"architecture": EFFICIENTNET, "imagenet_start": True},
    "random_start": {"architecture": EFFICIENTNET, "imagenet_start": False},
    "small_cnn": {"architecture": SMALL_CNN},
}
BUNDLED_VARIANT = "imagenet_start"
# Seeds each network is trained with (the survey-stage figures are distributions over
# them): five for the EfficientNets (10-20 minutes each on 2 CPU cores), ten for the small CNN.
PROXY_SEEDS = {"imagenet_start": (0, 1, 2, 3, 4), "random_start": (0, 1, 2), "small_cnn": tuple(range(10))}
# PyTorch's CPU threads in proxy training: fixed, so that a run repeats on any machine with
# as many cores (the order of a convolution's sums depends on how work is split).
PROXY_THREADS = 2


def proxy_config(real_dir: Path, variant: str, model_path: Path, report_path: Path | None = None,
                 device: str = "cpu", seed: int = 0) -> ProxyTrainingConfig:
    """The proxy training of ``variant`` on both Kinshasa dates with ``seed`` (the network's
    start where it is random, the order of the tiles, their turns and photometric changes;
    the held-out blocks are the same for every seed)."""
    base = ProxyTrainingConfig(
        image_path=str(real_dir / dhs.KINSHASA_IMAGE),
        more_image_paths=(str(real_dir / KINSHASA_IMAGE_2015),),
        nightlights_path=str(real_dir / dhs.KINSHASA_LIGHTS),
        model_path=str(model_path),
        report_path=None if report_path is None else str(report_path),
        band_indexes=dhs.KINSHASA_BANDS,
        radiometry=dhs.KINSHASA_RADIOMETRY,
        tile_size_m=TILE_PX * PIXEL_M,
        min_valid_fraction=1.0,
        n_classes=3,
        epochs=PROXY_EPOCHS,
        batch_size=32,
        learning_rate=1e-3,
        device=device,
        seed=seed,
        split_seed=0,
        threads=PROXY_THREADS,
    )
    return replace(base, **PROXY_VARIANTS[variant])


def cluster_config(real_dir: Path, extractor: str, model_path: Path) -> ClusterFitConfig:
    """fit_clusters on the 44 Kinshasa DHS clusters with the plugin's defaults (10 km box,
    five folds, seed 0) and clusters within 10 km of each other in one fold."""
    survey = dhs.load_dhs_clusters(real_dir / dhs.KINSHASA_CLUSTERS, crs="EPSG:3857")
    clusters = tuple(
        Cluster(float(x), float(y), float(w), 1.0, str(i)) for i, (x, y, w) in enumerate(zip(survey.x, survey.y, survey.wealth))
    )
    return ClusterFitConfig(
        str(real_dir / dhs.KINSHASA_IMAGE), clusters, str(model_path), outcome_name="wealthpooled",
        outcome_unit="DHS asset index", **extractor_fields(extractor), band_indexes=dhs.KINSHASA_BANDS,
        radiometry=dhs.KINSHASA_RADIOMETRY, nightlights_path=str(real_dir / dhs.KINSHASA_LIGHTS),
        fold_distance_m=dhs.KINSHASA_FOLD_DISTANCE_M, device="cpu",
    )


def lights_config(real_dir: Path, extractor: str, model_path: Path) -> ClusterFitConfig:
    """:func:`cluster_config` with the bundled night lights' features fitted beside the
    extractor's (``with_lights``) and no night-lights layer: its baseline is then the
    bundled lights alone, on the same folds."""
    return replace(cluster_config(real_dir, extractor, model_path), nightlights_path=None, with_lights=True)


def untuned_imagenet_model(proxy: PovertyModel) -> PovertyModel:
    """``proxy`` with its network back at the ImageNet weights (no fine-tuning), the same
    tiles and input standardization: what the night-light task added, isolated."""
    from ..core.extractors.efficientnet import EfficientNetProxy
    from ..core.extractors.imagenet import imagenet_state_dict

    config = proxy.extractor.network.config
    network = EfficientNetProxy(config["in_bands"], config["n_classes"])
    network.load_imagenet(imagenet_state_dict())
    extractor = CnnExtractor(network.eval(), proxy.extractor.band_means, proxy.extractor.band_stds,
                             input_std=proxy.extractor.input_std)
    return replace(proxy, name="EfficientNet-Lite0, ImageNet weights (not fine-tuned)", extractor=extractor)


def training_scene_paths(real_dir: Path) -> tuple[Path, Path]:
    """The two Landsat 8 renders the proxy networks were trained on (2013, 2015)."""
    return real_dir / dhs.KINSHASA_IMAGE, real_dir / KINSHASA_IMAGE_2015


def training_scene_domain(real_dir: Path, model: PovertyModel) -> SceneDomain | None:
    """The scene domain of ``model`` from both training renders, read as the proxy training read them."""
    with ExitStack() as stack:
        rasters = [
            TrainingRaster(stack.enter_context(rasterio.open(path)), dhs.KINSHASA_BANDS, PRESETS[dhs.KINSHASA_RADIOMETRY])
            for path in training_scene_paths(real_dir)
        ]
        return scene_domain_of(model, rasters)
