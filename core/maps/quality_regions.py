"""The cells of a map that its quality band flags, as polygons (one per connected region of
one code) with the code's meaning in words: an overlay whose features QGIS's Identify names,
where a raster band could only give the code's number."""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import rasterio
import rasterio.features

# The flagged codes of band 2 (as the map's writer sets them, see inference.writer), in words
# short enough to read whole where Identify shows them.
MEANINGS = {
    1: "1 = extrapolation: beyond the range of the survey outcomes (read as below or above it)",
    3: "3 = out of the model's domain: imagery unlike its training imagery (do not trust)",
    4: "4 = no estimate: water",
    5: "5 = no estimate: cloud",
}


@dataclass(frozen=True)
class QualityRegion:
    code: int
    meaning: str
    rings: list[list[tuple[float, float]]]  # the exterior, then any holes, in the map's CRS
    n_cells: int


def quality_band(ds: rasterio.io.DatasetReader) -> int | None:
    """The band of the plugin's maps described 'quality…' (band 2), or None."""
    return next((i + 1 for i, d in enumerate(ds.descriptions) if i and (d or "").startswith("quality")), None)


def quality_regions(raster_path: str) -> tuple[str | None, list[QualityRegion]]:
    """The map's CRS (WKT; None without one) and its flagged regions (none for a raster
    without a quality band)."""
    with rasterio.open(raster_path) as ds:
        band = quality_band(ds)
        if band is None:
            return (ds.crs.to_wkt() if ds.crs else None), []
        codes = np.nan_to_num(ds.read(band), nan=0.0).astype(np.int16)
        transform, crs = ds.transform, ds.crs
    flagged = np.isin(codes, tuple(MEANINGS))
    cell_area = abs(transform.a * transform.e - transform.b * transform.d)
    regions = []
    for geometry, value in rasterio.features.shapes(codes, mask=flagged, transform=transform, connectivity=4):
        rings = [[(float(x), float(y)) for x, y in ring] for ring in geometry["coordinates"]]
        area = _ring_area(rings[0]) - sum(_ring_area(r) for r in rings[1:])
        code = int(value)
        regions.append(QualityRegion(code, MEANINGS[code], rings, int(round(area / cell_area))))
    return (crs.to_wkt() if crs else None), regions


def _ring_area(ring: list[tuple[float, float]]) -> float:
    """Shoelace area of a closed ring (a handful of vertices: plain Python is fastest)."""
    return abs(sum(x0 * y1 - x1 * y0 for (x0, y0), (x1, y1) in zip(ring, ring[1:]))) / 2
