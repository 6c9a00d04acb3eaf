"""The survey fit's features: an extractor (a model file's, or one fitted to the imagery)
run over the tiles of each cluster's box, on an executor (:mod:`..imagery.executors`):
here, or on a Dask cluster's workers."""
from __future__ import annotations

from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Callable, Iterable, Iterator, Sequence

import numpy as np
import torch

from ..errors import PovertyMapperError
from ..extractors.base import FeatureExtractor
from ..extractors.histogram import HistogramExtractor
from ..imagery.box_tiles import ClusterTiles, batches
from ..imagery.executors import executor_for
from ..imagery.tile_work import TileWork
from ..imagery.tile_reader import ImageTiles, OpenedTileReader, TileReader, read_batch
from ..imagery.tiling import PixelWindow
from .progress import Phase
from .setup import TrainingImagery

if TYPE_CHECKING:
    from .clusters import ClusterFitConfig


@dataclass(frozen=True)
class Coverage:
    """How much of each input cluster's box the fit could see (0 where it has no box on the image)."""

    tiles_used: np.ndarray  # tiles with enough valid pixels, whose features were averaged
    tiles_in_box: np.ndarray  # tiles of the box's grid, inside the image or not
    covered_share: np.ndarray  # valid pixels / all pixels of the box's tiles


@dataclass(frozen=True)
class ClusterFeatures:
    """The extractor and each cluster's features."""

    extractor: FeatureExtractor
    features: np.ndarray  # mean feature vector per input cluster (NaN where it has no valid tile)
    coverage: Coverage



def features_of(
    config: ClusterFitConfig, imagery: TrainingImagery, windows: ClusterTiles,
    tiles_in_box: np.ndarray, phase: Phase,
) -> ClusterFeatures:
    """The extractor (the model file's, or one fitted to this imagery) and each cluster's mean features."""
    extractor = imagery.model.extractor if imagery.model else fresh_extractor(config, imagery.tile_reader(), windows)
    image = ImageTiles(config.image_path, imagery.bands, imagery.tile_px, imagery.radiometry)
    features, tiles_used, valid_pixels = cluster_features(
        extractor, image, windows, len(config.clusters), imagery.device, config, phase
    )
    with np.errstate(invalid="ignore", divide="ignore"):
        covered = np.where(tiles_in_box > 0, valid_pixels / (tiles_in_box * float(imagery.tile_px) ** 2), 0.0)
    return ClusterFeatures(extractor, features, Coverage(tiles_used, tiles_in_box, covered))



def fresh_extractor(
    config: ClusterFitConfig, reader: TileReader, windows: ClusterTiles
) -> FeatureExtractor:
    """A histogram or random-convolution extractor fitted to this imagery: band
    statistics (and random patches) from a seeded sample of the clusters' tiles."""
    rng = np.random.default_rng(config.seed)
    n_tiles = len(windows)
    pick = rng.choice(n_tiles, size=min(n_tiles, 256), replace=False) if n_tiles else []
    if len(pick) == 0:
        raise PovertyMapperError("No cluster lies on the image; check that the clusters and the image overlap.")
    pixels, valid = read_batch(reader, [w for _, w in windows.picked(sorted(pick))], torch.device("cpu"))
    values = pixels.transpose(0, 1)[:, valid].double()
    if values.shape[1] == 0:
        raise PovertyMapperError("The tiles around the clusters hold no valid pixels; check the image's nodata.")
    means = values.mean(1).numpy()
    stds = values.std(1).clamp(min=1e-6).numpy()
    if config.extractor_kind == "histogram":
        return HistogramExtractor(means, stds, transform="sqrt")
    from ..extractors.random_conv import RandomConvExtractor

    try:
        return RandomConvExtractor.sample(
            pixels.numpy(), valid.numpy(), n_filters=config.n_random_filters, seed=config.seed,
            band_means=means, band_stds=stds,
        )
    except ValueError as exc:  # fewer valid patch locations than filters
        raise PovertyMapperError(
            f"The tiles around the clusters hold too few valid pixels to draw {config.n_random_filters} "
            f"random filters ({exc}); use the 'histogram' extractor or imagery with fewer gaps."
        ) from exc


def cluster_features(
    extractor: FeatureExtractor, image: ImageTiles, windows: ClusterTiles | Sequence[tuple[int, PixelWindow]],
    n_clusters: int, device: torch.device, config: ClusterFitConfig, phase: Phase,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Mean feature vector of each cluster's tiles with enough valid pixels, the number
    of such tiles, and the valid pixels of all its tiles. Tiles with too few valid
    pixels are read (for the coverage) but not run through the extractor. The chunks of
    tiles run here, or on the workers of ``config.scheduler``'s Dask cluster."""
    sums = np.zeros((n_clusters, extractor.n_features))
    counts = np.zeros(n_clusters, np.int64)
    valid_pixels = np.zeros(n_clusters, np.float64)
    work = ClusterTileWork(image, extractor, config.min_valid_fraction * image.tile_px**2, device)
    chunks = batches(windows, config.batch_size)  # taken one at a time, never listed
    n_tiles, done = len(windows), 0
    for chunk, (n_valid, enough, feats) in executor_for(config.scheduler).results(work, chunks, phase.is_canceled):
        owners = np.array([i for i, _ in chunk])
        np.add.at(valid_pixels, owners, n_valid)
        if enough.any():
            np.add.at(sums, owners[enough], feats)
            np.add.at(counts, owners[enough], 1)
        done += len(chunk)
        phase.report(done / max(1, n_tiles))
    with np.errstate(invalid="ignore", divide="ignore"):
        return sums / counts[:, None], counts, valid_pixels


@dataclass(frozen=True)
class ClusterTileWork(TileWork):
    """The features of chunks of cluster tiles, as an executor runs them: each tile's
    valid pixels, whether it has enough, and the features of those that do (float64)."""

    image: ImageTiles
    extractor: FeatureExtractor
    min_valid: float  # valid pixels a tile needs to reach the extractor
    device: torch.device

    def paths(self) -> tuple[str, ...]:
        return (self.image.path,)

    def at_paths(self, where: Callable[[str], str]) -> "ClusterTileWork":
        return replace(self, image=replace(self.image, path=where(self.image.path)))

    def open_reader(self, read_ahead: bool) -> OpenedTileReader:
        return self.image.open()

    def run(self, reader: TileReader, batches: Iterable[list]) -> Iterator[tuple[list, tuple]]:
        for chunk in batches:
            yield chunk, self.chunk_features(reader, chunk)

    def chunk_features(
        self, reader: TileReader, chunk: list[tuple[int, PixelWindow]]
    ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        pixels, valid = read_batch(reader, [w for _, w in chunk], self.device)
        n_valid = valid.flatten(1).sum(1).cpu().numpy()
        enough = n_valid >= self.min_valid
        feats = np.zeros((0, self.extractor.n_features))
        if enough.any():
            keep = torch.from_numpy(enough).to(pixels.device)
            with torch.inference_mode():
                feats = self.extractor.extract(pixels[keep], valid[keep]).double().cpu().numpy()
        return n_valid, enough, feats
