"""Build the bundled Africa night-lights luminance raster from NASA Black Marble 2016 tiles.

    python scripts/build_africa_lights.py PATH/TO/nasa-blackmarble [--out resources/lights/...tif]

Source: the zoom-8 XYZ tiles (EPSG:3857, 256-pixel JPEG, 611.5 m at the equator) of
NASA's Black Marble 2016 night-lights colour composite, as published in the public git
repository https://github.com/freetiler/nasa-blackmarble (``tiles/8/{x}/{y}.jpeg``,
y counted from the north as in XYZ, not TMS). NASA imagery is free of copyright
restrictions; credit: NASA Earth Observatory (tiles: FreeTiler.com). Clone that
repository (``git clone --bare`` is enough) and pass its path: the tiles are read from
its ``HEAD`` commit with ``git cat-file``, nothing is downloaded.

What is written: one uint8 band, the luminance ``0.2126 R + 0.7152 G + 0.0722 B`` of
each tile pixel rounded to the nearest integer (computed in integers, so the same on
every CPU), on the tiles' own grid (no resampling), over the whole tiles that cover
:data:`COVER_LONLAT`; a Cloud-Optimized GeoTIFF with averaged overviews. The same tiles
and the same GDAL give the same bytes. A JSON file beside it records the source
commit, the extent and the size.
"""
from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import rasterio
from PIL import Image
from rasterio.shutil import copy as copy_raster
from rasterio.transform import from_origin

ROOT = Path(__file__).resolve().parents[1]
DEFAULT_OUT = ROOT / "resources" / "lights" / "blackmarble2016_africa_luminance.tif"
ZOOM = 8
TILE = 256
HALF_WORLD = 20037508.342789244  # Web Mercator half circumference, metres
PIXEL = 2 * HALF_WORLD / (TILE * 2**ZOOM)  # 611.496... m
# West, south, east, north in degrees. All of Africa's land and its islands: Cape Verde
# (25.4 W), Rodrigues (63.5 E), the Prince Edward Islands (46.9 S), Tunisia's and
# Algeria's north coast (37.3 N); every DHS and LSMS survey cluster of the evaluation
# data lies well inside (30.6 S..16.6 N, 17.5 W..47.0 E).
COVER_LONLAT = (-26.0, -47.0, 64.0, 38.0)
# The luminance weights (Rec. 709) in ten-thousandths, summing to 10000.
WEIGHTS = (2126, 7152, 722)
CREATION = {"compress": "ZSTD", "predictor": "2", "level": "19"}
SOURCE = "NASA Black Marble 2016 night-lights colour composite, XYZ tiles zoom 8"
CREDIT = "NASA Earth Observatory (tiles: FreeTiler.com, github.com/freetiler/nasa-blackmarble)"


def tile_range(lonlat: tuple[float, float, float, float]) -> tuple[range, range]:
    """The zoom-8 XYZ tile columns and rows that cover ``lonlat`` (west, south, east, north)."""
    west, south, east, north = lonlat
    n = 2**ZOOM

    def column(lon: float) -> int:
        return int(math.floor((lon + 180.0) / 360.0 * n))

    def row(lat: float) -> int:
        r = math.radians(lat)
        return int(math.floor((1 - math.log(math.tan(r) + 1 / math.cos(r)) / math.pi) / 2 * n))

    return range(column(west), column(east) + 1), range(row(north), row(south) + 1)


def luminance(rgb: np.ndarray) -> np.ndarray:
    """uint8 luminance of an [h, w, 3] uint8 image, rounded half up, in integers."""
    wr, wg, wb = WEIGHTS
    lum = (rgb[..., 0].astype(np.uint32) * wr + rgb[..., 1].astype(np.uint32) * wg
           + rgb[..., 2].astype(np.uint32) * wb + 5000) // 10000
    return lum.astype(np.uint8)


class TileSource:
    """Tiles read from a git repository's HEAD through one ``git cat-file --batch``."""

    def __init__(self, repo: Path):
        self.repo = repo
        self.commit = self._git("rev-parse", "HEAD").strip()
        self._proc = subprocess.Popen(
            ["git", "--git-dir", str(self._git_dir()), "cat-file", "--batch"],
            stdin=subprocess.PIPE, stdout=subprocess.PIPE,
        )

    def _git_dir(self) -> Path:
        return Path(self._git("rev-parse", "--absolute-git-dir").strip())

    def _git(self, *args: str) -> str:
        try:
            return subprocess.run(["git", "-C", str(self.repo), *args], capture_output=True, text=True,
                                  check=True).stdout
        except subprocess.CalledProcessError as exc:
            raise SystemExit(f"{self.repo} is not a git clone of freetiler/nasa-blackmarble: {exc.stderr.strip()}")

    def read(self, x: int, y: int) -> np.ndarray:
        self._proc.stdin.write(f"{self.commit}:tiles/{ZOOM}/{x}/{y}.jpeg\n".encode())
        self._proc.stdin.flush()
        header = self._proc.stdout.readline().decode().split()
        if len(header) != 3:
            raise SystemExit(f"tile {ZOOM}/{x}/{y} is missing from {self.repo} ({' '.join(header)}); "
                             "clone the full repository (zoom 8 is only on GitHub, not in the npm package)")
        data = self._proc.stdout.read(int(header[2]))
        self._proc.stdout.read(1)  # the newline after each object
        with Image.open(io.BytesIO(data)) as img:
            rgb = np.asarray(img.convert("RGB"))
        if rgb.shape != (TILE, TILE, 3):
            raise SystemExit(f"tile {ZOOM}/{x}/{y} is {rgb.shape}, not {TILE}x{TILE} RGB")
        return rgb

    def close(self) -> None:
        self._proc.stdin.close()
        self._proc.wait()


def mosaic(source: TileSource, columns: range, rows: range) -> np.ndarray:
    out = np.empty((len(rows) * TILE, len(columns) * TILE), np.uint8)
    for j, y in enumerate(rows):
        for i, x in enumerate(columns):
            out[j * TILE:(j + 1) * TILE, i * TILE:(i + 1) * TILE] = luminance(source.read(x, y))
        sys.stderr.write(f"\rrow {j + 1}/{len(rows)}")
    sys.stderr.write("\n")
    return out


def write_cog(lum: np.ndarray, columns: range, rows: range, out: Path, creation: dict, commit: str) -> None:
    transform = from_origin(-HALF_WORLD + columns.start * TILE * PIXEL, HALF_WORLD - rows.start * TILE * PIXEL,
                            PIXEL, PIXEL)
    tags = {"SOURCE": SOURCE, "YEAR": "2016", "CREDIT": CREDIT, "BAND": "luminance 0.2126 R + 0.7152 G + 0.0722 B",
            "SOURCE_COMMIT": commit, "ZOOM": str(ZOOM)}
    with tempfile.TemporaryDirectory() as tmp:
        plain = Path(tmp) / "plain.tif"
        with rasterio.open(plain, "w", driver="GTiff", width=lum.shape[1], height=lum.shape[0], count=1,
                           dtype="uint8", crs="EPSG:3857", transform=transform, tiled=True,
                           blockxsize=512, blockysize=512) as dst:
            dst.write(lum, 1)
            dst.update_tags(**tags)
            dst.set_band_description(1, "luminance")
        out.parent.mkdir(parents=True, exist_ok=True)
        partial = out.with_suffix(".partial.tif")
        with rasterio.Env(GDAL_NUM_THREADS="1", GDAL_PAM_ENABLED="NO"):
            copy_raster(plain, partial, driver="COG", blocksize="512", overview_resampling="AVERAGE",
                        num_threads="1", **creation)
        partial.replace(out)


def describe(out: Path, lum: np.ndarray, columns: range, rows: range, creation: dict, commit: str) -> dict:
    with rasterio.open(out) as ds:
        bounds, overviews = ds.bounds, ds.overviews(1)
    return {
        "file": out.name,
        "source": SOURCE,
        "source_repository": "https://github.com/freetiler/nasa-blackmarble",
        "source_commit": commit,
        "year": 2016,
        "licence": "NASA imagery is free of copyright restrictions (NASA open data policy); credit requested",
        "credit": CREDIT,
        "band": "uint8 luminance round(0.2126 R + 0.7152 G + 0.0722 B) of the colour composite; "
                "an ordinal intensity, not radiance",
        "crs": "EPSG:3857",
        "pixel_size_m": PIXEL,
        "tiles_zoom": ZOOM,
        "tile_columns": [columns.start, columns.stop - 1],
        "tile_rows": [rows.start, rows.stop - 1],
        "cover_lonlat": list(COVER_LONLAT),
        "bounds_3857": [bounds.left, bounds.bottom, bounds.right, bounds.top],
        "width": int(lum.shape[1]),
        "height": int(lum.shape[0]),
        "overview_factors": overviews,
        "creation_options": creation,
        "bytes": out.stat().st_size,
        "sha256": hashlib.sha256(out.read_bytes()).hexdigest(),
        "built_with": "python scripts/build_africa_lights.py <clone of freetiler/nasa-blackmarble>",
        "gdal": rasterio.__gdal_version__,
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("repo", type=Path, help="a clone (bare is enough) of github.com/freetiler/nasa-blackmarble")
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    parser.add_argument("--compress", default=CREATION["compress"])
    parser.add_argument("--predictor", default=CREATION["predictor"])
    parser.add_argument("--level", default=CREATION["level"])
    args = parser.parse_args(argv)
    creation = {"compress": args.compress, "predictor": args.predictor}
    if args.level:
        creation["level"] = args.level
    columns, rows = tile_range(COVER_LONLAT)
    source = TileSource(args.repo)
    try:
        lum = mosaic(source, columns, rows)
    finally:
        source.close()
    write_cog(lum, columns, rows, args.out, creation, source.commit)
    info = describe(args.out, lum, columns, rows, creation, source.commit)
    args.out.with_suffix(".json").write_text(json.dumps(info, indent=2) + "\n", encoding="utf-8")
    sys.stdout.write(f"{args.out} ({info['bytes'] / 1e6:.2f} MB, {info['width']} x {info['height']} px)\n")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
