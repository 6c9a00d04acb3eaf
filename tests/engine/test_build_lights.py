"""scripts/build_africa_lights.py on a small git repository of generated tiles: the tile
range, the integer luminance, the y order of XYZ tiles, and the same bytes twice."""
from __future__ import annotations

import subprocess

import numpy as np
import pytest
import rasterio
from PIL import Image

import build_africa_lights as build


def test_the_cover_is_africa_in_whole_zoom_8_tiles():
    columns, rows = build.tile_range(build.COVER_LONLAT)
    assert (columns.start, columns.stop - 1) == (109, 173)
    assert (rows.start, rows.stop - 1) == (98, 165)
    kinshasa = build.tile_range((12.7, -5.6, 16.8, -2.9))  # inside the shared crop of tiles x 137-139, y 130-131
    assert (kinshasa[0], kinshasa[1]) == (range(137, 140), range(130, 132))


def test_luminance_is_rounded_in_integers():
    rgb = np.array([[[255, 255, 255], [0, 0, 0], [100, 0, 0], [0, 0, 7], [10, 20, 30]]], np.uint8)
    lum = build.luminance(rgb)
    assert lum.dtype == np.uint8
    # 21.26 -> 21, 0.5054 -> 1, 19.59 -> 20 (0.2126*10 + 0.7152*20 + 0.0722*30 = 18.72 -> 19)
    assert lum.tolist() == [[255, 0, 21, 1, 19]]


@pytest.fixture()
def tile_repo(tmp_path):
    """A bare-able git repository with 2 x 2 generated zoom-8 tiles at x 10-11, y 20-21,
    each a flat colour saying its place; JPEG at quality 100 keeps flat colours exact."""
    repo = tmp_path / "tiles_repo"
    for x in (10, 11):
        (repo / "tiles" / "8" / str(x)).mkdir(parents=True)
        for y in (20, 21):
            value = 40 * (x - 10) + 100 * (y - 20) + 20
            Image.new("RGB", (256, 256), (value, value, value)).save(repo / "tiles" / "8" / str(x) / f"{y}.jpeg",
                                                                     quality=100)
    git = ["git", "-C", str(repo), "-c", "user.name=t", "-c", "user.email=t@t"]
    subprocess.run(["git", "init", "-q", str(repo)], check=True)
    subprocess.run(git + ["add", "-A"], check=True)
    subprocess.run(git + ["commit", "-q", "-m", "tiles"], check=True)
    return repo


def test_tiles_are_placed_north_first_and_built_the_same_twice(tile_repo, tmp_path):
    source = build.TileSource(tile_repo)
    try:
        lum = build.mosaic(source, range(10, 12), range(20, 22))
    finally:
        source.close()
    assert lum.shape == (512, 512)
    assert lum[0, 0] == 20 and lum[0, 300] == 60 and lum[300, 0] == 120 and lum[511, 511] == 160
    outs = [tmp_path / "a" / "l.tif", tmp_path / "b" / "l.tif"]
    for out in outs:
        build.write_cog(lum, range(10, 12), range(20, 22), out, build.CREATION, source.commit)
    assert outs[0].read_bytes() == outs[1].read_bytes()
    with rasterio.open(outs[0]) as ds:
        np.testing.assert_array_equal(ds.read(1), lum)
        assert ds.crs.to_epsg() == 3857 and ds.tags()["SOURCE_COMMIT"] == source.commit
        # Tile x 10 starts at -180 + 10 * 360 / 256 degrees; y 20 at its north edge.
        assert ds.bounds.left == pytest.approx(-build.HALF_WORLD + 10 * 256 * build.PIXEL)
        assert ds.bounds.top == pytest.approx(build.HALF_WORLD - 20 * 256 * build.PIXEL)


def test_a_missing_tile_is_named(tile_repo):
    source = build.TileSource(tile_repo)
    try:
        with pytest.raises(SystemExit, match="tile 8/12/20 is missing"):
            source.read(12, 20)
    finally:
        source.close()
