"""A GENERATED world for tests: not real data, and no score on it is an accuracy.

Settlements are Gaussian blobs of 'built-up density' d in [0, 1]. In the daytime
image built-up areas show a texture of bright roofs and dark streets (2x2-pixel
blocks) over vegetation; the nighttime lights are d averaged to ~450 m and written in
another CRS (EPSG:4326) and resolution; each surveyed cluster's outcome is a planted
linear function of d around it plus noise. The machinery should recover the relation.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import rasterio
from affine import Affine
from rasterio.crs import CRS
from rasterio.enums import Resampling
from rasterio.warp import calculate_default_transform, reproject

IMAGE_CRS = CRS.from_epsg(32636)  # UTM 36N
PIXEL_M = 30.0
ORIGIN = (500_000.0, 1_000_000.0)


@dataclass(frozen=True)
class GeneratedWorld:
    image_path: Path
    lights_path: Path
    density: np.ndarray  # [H, W] built-up density of each pixel
    transform: Affine
    clusters: list[tuple[float, float, float, float]]  # x, y (image CRS), outcome, weight


def _density(size: int, rng: np.random.Generator, n_settlements: int) -> np.ndarray:
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float64)
    d = np.zeros((size, size))
    for _ in range(n_settlements):
        cy, cx = rng.uniform(0, size, 2)
        radius = rng.uniform(8, 45)  # pixels: 240 m to 1.35 km
        d += rng.uniform(0.4, 1.0) * np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * radius**2))
    return np.clip(d, 0, 1)


def make_world(
    directory: Path, size: int = 768, n_settlements: int = 40, n_clusters: int = 150,
    box_m: float = 1500.0, seed: int = 0,
) -> GeneratedWorld:
    rng = np.random.default_rng(seed)
    directory.mkdir(parents=True, exist_ok=True)
    d = _density(size, rng, n_settlements)
    transform = Affine(PIXEL_M, 0, ORIGIN[0], 0, -PIXEL_M, ORIGIN[1])

    # Daytime image (reflectance 0..1, float32): vegetation, and where built up, a
    # texture of bright roofs and dark streets in 2x2 blocks whose share grows with d.
    vegetation = np.array([0.04, 0.08, 0.05])[:, None, None] + rng.normal(0, 0.004, (3, size, size))
    blocks = rng.random((size // 2 + 1, size // 2 + 1)).repeat(2, 0).repeat(2, 1)[:size, :size]
    built = rng.random((size, size)) < d
    roof = blocks > 0.5
    urban = np.where(roof, 0.28, 0.03)[None] + rng.normal(0, 0.01, (3, size, size))
    image = np.where(built[None], urban, vegetation).astype(np.float32)
    image_path = directory / "generated_world_image.tif"
    with rasterio.open(image_path, "w", driver="GTiff", width=size, height=size, count=3, dtype="float32",
                       crs=IMAGE_CRS, transform=transform) as dst:
        dst.write(image)
        dst.descriptions = ("blue", "green", "red")

    # Nightlights: density averaged to 15 px (450 m), brightness 0..60, then warped to WGS 84.
    f = 15
    coarse = d[: size // f * f, : size // f * f].reshape(size // f, f, size // f, f).mean((1, 3))
    lights = (60 * coarse**1.5 + rng.normal(0, 0.5, coarse.shape)).clip(0).astype(np.float32)
    coarse_transform = transform * Affine.scale(f)
    west, south, east, north = rasterio.transform.array_bounds(coarse.shape[0], coarse.shape[1], coarse_transform)
    dst_transform, w, h = calculate_default_transform(
        IMAGE_CRS, "EPSG:4326", coarse.shape[1], coarse.shape[0], west, south, east, north
    )
    warped = np.full((h, w), -1.0, np.float32)
    reproject(lights, warped, src_transform=coarse_transform, src_crs=IMAGE_CRS, dst_transform=dst_transform,
              dst_crs="EPSG:4326", dst_nodata=-1.0, resampling=Resampling.bilinear)
    lights_path = directory / "generated_world_nightlights_wgs84.tif"
    with rasterio.open(lights_path, "w", driver="GTiff", width=w, height=h, count=1, dtype="float32",
                       crs="EPSG:4326", transform=dst_transform, nodata=-1.0) as dst:
        dst.write(warped, 1)

    # Clusters: outcome = 2 * mean density in the box + noise; households as weights.
    half = int(box_m / PIXEL_M / 2)
    clusters = []
    for _ in range(n_clusters):
        r, c = rng.integers(half, size - half, 2)
        local = d[r - half : r + half, c - half : c + half].mean()
        x, y = transform * (c + 0.5, r + 0.5)
        clusters.append((x, y, float(2.0 * local + rng.normal(0, 0.05)), float(rng.integers(8, 25))))
    return GeneratedWorld(image_path, lights_path, d, transform, clusters)



def density_on(world: GeneratedWorld, ds) -> np.ndarray:
    """The world's density averaged over each cell of the open map ``ds`` (NaN off the
    world), wherever the map's grid starts."""
    out = np.full(ds.shape, np.nan)
    reproject(world.density, out, src_transform=world.transform, src_crs=IMAGE_CRS, dst_transform=ds.transform,
              dst_crs=ds.crs, resampling=Resampling.average, src_nodata=np.nan, dst_nodata=np.nan)
    return out
