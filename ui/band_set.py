"""A band set: separate single-band files (e.g. Landsat's per-band GeoTIFFs) stacked into
one image, a VRT beside them whose bands are named so the model's bands are found."""
from __future__ import annotations

import re
from pathlib import Path
from typing import Sequence

from ..core.errors import PovertyMapperError

# Landsat band numbers by sensor (file names start with the sensor: LC08_..., LE07_...).
_LANDSAT_BANDS = {
    ("LC08", "LC09"): {2: "blue", 3: "green", 4: "red", 5: "nir", 6: "swir1", 7: "swir2"},
    ("LE07", "LT05", "LT04"): {1: "blue", 2: "green", 3: "red", 4: "nir", 5: "swir1", 7: "swir2"},
}


def band_name(path: str | Path) -> str:
    """What a single-band file holds, from its name: 'blue' for LC08_..._B2.TIF or
    LE07_..._B1.TIF; else its band token (B8) or its name."""
    stem = Path(path).stem
    match = re.search(r"(?:^|_)(?:SR_)?B(\d+)$", stem, re.IGNORECASE)
    if match is None:
        return stem
    number = int(match.group(1))
    for sensors, names in _LANDSAT_BANDS.items():
        if stem[:4].upper() in sensors:
            return names.get(number, f"B{number}")
    return f"B{number}"


def build_band_set(paths: Sequence[str | Path]) -> Path:
    """One VRT of the files as bands, in the given order, beside the first file; refused
    unless each file is one band in one CRS."""
    from osgeo import gdal, osr  # QGIS's GDAL bindings

    if len(paths) < 2:
        raise PovertyMapperError("Choose two or more single-band files (e.g. the blue, green and red bands).")
    crs = None
    for path in paths:
        dataset = gdal.Open(str(path))
        if dataset is None:
            raise PovertyMapperError(f"{path} cannot be read as a raster.")
        if dataset.RasterCount != 1:
            raise PovertyMapperError(f"{Path(path).name} has {dataset.RasterCount} bands; a band set is made of single-band files.")
        reference = osr.SpatialReference(wkt=dataset.GetProjectionRef()) if dataset.GetProjectionRef() else None
        if reference is None:
            raise PovertyMapperError(f"{Path(path).name} has no CRS; assign one first (Raster > Projections > Assign Projection).")
        if crs is not None and not crs.IsSame(reference):
            raise PovertyMapperError(f"{Path(path).name} is in another CRS than {Path(paths[0]).name}; reproject it first.")
        crs = reference
    first = Path(paths[0])
    stem = re.sub(r"_(?:SR_)?B\d+$", "", first.stem, flags=re.IGNORECASE)
    names = [band_name(p) for p in paths]
    vrt = first.with_name(f"{stem}_{'_'.join(names)}.vrt")
    dataset = gdal.BuildVRT(str(vrt), [str(p) for p in paths], separate=True)
    if dataset is None:
        raise PovertyMapperError(f"Cannot write the band set {vrt}; the folder must be writable.")
    for index, name in enumerate(names, start=1):
        dataset.GetRasterBand(index).SetDescription(name)
    dataset = None  # written when closed
    return vrt
