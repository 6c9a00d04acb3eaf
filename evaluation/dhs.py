"""DHS survey clusters of the Yeh et al. 2020 release, placed on imagery (make eval).

The Kinshasa set: the 44 DR Congo 2013 clusters with a full 224-pixel valid tile in the
Landsat 8 scene over Kinshasa and Brazzaville (../shared/data/README.md), 37 urban and
7 rural. DHS displaces published coordinates by up to 2 km (urban) and 5-10 km (rural).
"""
from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from rasterio.warp import transform as warp_points

KINSHASA_CLUSTERS = Path("yeh2020_dhs") / "drc2013_clusters_in_kinshasa_scenes.csv"
KINSHASA_IMAGE = Path("kinshasa") / "kinshasa_landsat8_20130728_rgba_38m.tif"
KINSHASA_LIGHTS = Path("kinshasa") / "blackmarble2016_kinshasa_rgb_611m.tif"
KINSHASA_BANDS = (1, 2, 3)  # red, green, blue; band 4 is the alpha mask
KINSHASA_RADIOMETRY = "eight_bit"  # a renderer's 8-bit stretch, not reflectance
KINSHASA_FOLD_DISTANCE_M = 10_000.0  # clusters within 10 km of each other share a fold


@dataclass(frozen=True)
class DhsClusters:
    """Survey clusters in ``crs``: location, asset wealth, urban or rural, households."""

    x: np.ndarray
    y: np.ndarray
    wealth: np.ndarray  # wealthpooled: asset index standardized across all surveys
    urban: np.ndarray  # bool
    households: np.ndarray
    crs: str

    def __len__(self) -> int:
        return self.wealth.size


def load_dhs_clusters(path: str | Path, crs: str = "EPSG:3857") -> DhsClusters:
    """The clusters of a release CSV (lat, lon, wealthpooled, households, urban_rural),
    their coordinates transformed from WGS 84 to ``crs``."""
    with open(path, newline="", encoding="utf-8") as fh:
        rows = list(csv.DictReader(fh))
    lon = [float(r["lon"]) for r in rows]
    lat = [float(r["lat"]) for r in rows]
    x, y = warp_points("EPSG:4326", crs, lon, lat)
    return DhsClusters(
        x=np.asarray(x, np.float64),
        y=np.asarray(y, np.float64),
        wealth=np.array([float(r["wealthpooled"]) for r in rows]),
        urban=np.array([r["urban_rural"].strip() == "1" for r in rows]),
        households=np.array([float(r["households"]) for r in rows]),
        crs=crs,
    )
