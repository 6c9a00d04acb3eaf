"""Real faults through QGIS Processing: a full disk is a tmpfs, a shapefile that cannot be
replaced is an immutable .shp (chattr +i, as root). Whatever fails, the earlier layer
of the name stays whole, byte for byte, and nothing half-written is left beside it."""
from __future__ import annotations

import subprocess
from pathlib import Path

import numpy as np
import pytest
from qgis.core import QgsProcessingException, QgsVectorLayer, edit

from faults import fill, small_disk
from helpers import (
    MAP_ESTIMATES, MAP_UTM, districts_layer, layer_files, partial_leftovers, recording_feedback,
    write_earlier_layer, write_poverty_map,
)


def _large_map(path: Path) -> str:
    """A generated 60 x 60 poverty map: 3,600 cells, a layer of several hundred kB."""
    values = np.random.default_rng(3).uniform(-1, 1, size=(60, 60))
    return write_poverty_map(path, values)


@pytest.mark.parametrize("suffix", [".gpkg", ".shp"])
def test_topolygons_on_a_full_disk_keeps_the_earlier_layer(poverty_provider, tmp_path, suffix):
    import processing

    poverty_map = _large_map(tmp_path / "generated_map.tif")
    with small_disk(tmp_path / "small_disk", "1m") as disk:
        out = disk / f"cells{suffix}"
        earlier = write_earlier_layer(out)
        (disk / "generated_other_map.tif").unlink()
        fill(disk, leave_bytes=48 * 1024)
        with pytest.raises(QgsProcessingException, match=r"The disk is full: .*cells\.(gpkg|shp)"):
            processing.run("povertymapper:topolygons", {"INPUT": poverty_map, "OUTPUT": str(out)})
        assert layer_files(disk, "cells") == earlier
        assert partial_leftovers(disk) == []


def test_aggregate_on_a_full_disk_keeps_the_earlier_layer(poverty_provider, tmp_path):
    import processing

    poverty_map = write_poverty_map(tmp_path / "generated_map.tif", MAP_ESTIMATES)
    with small_disk(tmp_path / "small_disk", "1m") as disk:
        out = disk / "districts.gpkg"
        processing.run("povertymapper:aggregate", {"INPUT": poverty_map, "POLYGONS": districts_layer(MAP_UTM), "OUTPUT": str(out)})
        earlier = out.read_bytes()
        fill(disk, leave_bytes=16 * 1024)
        with pytest.raises(QgsProcessingException, match=r"The disk is full: .*districts\.gpkg"):
            processing.run("povertymapper:aggregate", {"INPUT": poverty_map, "POLYGONS": districts_layer(MAP_UTM), "OUTPUT": str(out)})
        assert out.read_bytes() == earlier
        assert partial_leftovers(disk) == []


@pytest.fixture
def immutable():
    """chattr +i on the files given, undone afterwards whatever the test did."""
    fixed: list[Path] = []

    def make(path: Path) -> None:
        subprocess.run(["chattr", "+i", str(path)], check=True)
        fixed.append(path)

    yield make
    for path in fixed:
        subprocess.run(["chattr", "-i", str(path)], check=True)


def test_a_shapefile_whose_shp_cannot_be_replaced_is_kept_whole(poverty_provider, tmp_path, immutable):
    import processing

    out = tmp_path / "cells.shp"
    earlier = write_earlier_layer(out)
    immutable(out)
    poverty_map = write_poverty_map(tmp_path / "generated_map.tif", MAP_ESTIMATES)
    with pytest.raises(QgsProcessingException, match=r"Cannot replace .*cells\.shp"):
        processing.run("povertymapper:topolygons", {"INPUT": poverty_map, "OUTPUT": str(out)})
    assert layer_files(tmp_path, "cells") == earlier
    assert QgsVectorLayer(str(out), "cells", "ogr").featureCount() == 4
    assert partial_leftovers(tmp_path) == []


@pytest.mark.parametrize("as_layer", [False, True])
def test_aggregate_refuses_to_write_over_its_own_districts(poverty_provider, tmp_path, as_layer):
    import processing

    poverty_map = write_poverty_map(tmp_path / "generated_map.tif", MAP_ESTIMATES)
    districts = tmp_path / "districts.gpkg"
    processing.run("native:savefeatures", {"INPUT": districts_layer(MAP_UTM), "OUTPUT": str(districts)})
    earlier = districts.read_bytes()
    polygons = QgsVectorLayer(str(districts), "districts", "ogr") if as_layer else str(districts)
    with pytest.raises(QgsProcessingException, match=r"is the .*districts\.gpkg.*Choose another output file name"):
        processing.run("povertymapper:aggregate", {"INPUT": poverty_map, "POLYGONS": polygons, "OUTPUT": str(tmp_path / "." / "districts.gpkg")})
    assert districts.read_bytes() == earlier


def test_a_bar_in_the_raster_file_name_is_part_of_the_name(poverty_provider, tmp_path):
    import processing

    poverty_map = write_poverty_map(tmp_path / "generated|map.tif", MAP_ESTIMATES)
    out = tmp_path / "cells.gpkg"
    processing.run("povertymapper:topolygons", {"INPUT": poverty_map, "OUTPUT": str(out)})
    assert QgsVectorLayer(str(out), "cells", "ogr").featureCount() == 15


def test_predict_refuses_an_extent_without_area_instead_of_mapping_the_whole_raster(
    poverty_provider, small_world, tmp_path
):
    import processing

    from poverty_mapper.core.models.defaults import DEFAULT_MODEL_PATH

    x, y = small_world.clusters[0][:2]
    out = tmp_path / "map.tif"
    feedback = recording_feedback()
    with pytest.raises(QgsProcessingException):
        processing.run("povertymapper:predict", {
            "INPUT": str(small_world.image_path), "MODEL": str(DEFAULT_MODEL_PATH), "OUTPUT": str(out),
            "EXTENT": f"{x},{x},{y - 500},{y + 500}",  # xmin, xmax, ymin, ymax: a line
        }, feedback=feedback)
    assert any("has no area; draw or choose an extent" in e for e in feedback.errors), feedback.errors
    assert not out.exists()


# --- a nearly full disk: every vector output is read back, attributes included -------------


@pytest.mark.parametrize("suffix", [".shp", ".gpkg"])
def test_aggregate_on_a_nearly_full_disk_writes_nothing_or_a_whole_layer(poverty_provider, tmp_path, suffix):
    """A 64 kB disk with 56 kB used: a shapefile's .dbf failed with 'Failure seeking' in
    GDAL's log only, and the run ended with a .shp that had no attributes."""
    import processing

    poverty_map = write_poverty_map(tmp_path / "generated_map.tif", MAP_ESTIMATES)
    with small_disk(tmp_path / "small_disk", "64k") as disk:
        out = disk / f"agg{suffix}"
        fill(disk, leave_bytes=8 * 1024)
        with pytest.raises(QgsProcessingException, match=r"The disk is full: .*agg\.(shp|gpkg)"):
            processing.run("povertymapper:aggregate", {"INPUT": poverty_map, "POLYGONS": districts_layer(MAP_UTM), "OUTPUT": str(out)})
        assert layer_files(disk, "agg") == {}
        assert partial_leftovers(disk) == []


@pytest.mark.parametrize("suffix", [".shp", ".gpkg"])
def test_topolygons_on_a_nearly_full_disk_writes_nothing(poverty_provider, tmp_path, suffix):
    import processing

    poverty_map = write_poverty_map(tmp_path / "generated_map.tif", MAP_ESTIMATES)
    with small_disk(tmp_path / "small_disk", "64k") as disk:
        out = disk / f"cells{suffix}"
        fill(disk, leave_bytes=8 * 1024)
        with pytest.raises(QgsProcessingException, match=r"The disk is full: .*cells\.(shp|gpkg)"):
            processing.run("povertymapper:topolygons", {"INPUT": poverty_map, "OUTPUT": str(out)})
        assert layer_files(disk, "cells") == {}
        assert partial_leftovers(disk) == []


@pytest.mark.parametrize("suffix, leave", [(".shp", 8192), (".gpkg", 8192), (".gpkg", 0)])
def test_fitclusters_predictions_on_a_nearly_full_disk_write_nothing(poverty_provider, small_world, tmp_path, suffix, leave):
    """The model and report go to a roomy folder; only the predictions to the full disk.
    A GeoPackage that cannot even be created was a page of SQL from sqlite, not 'disk full'."""
    import processing

    from helpers import wgs84_clusters

    rows = [(x, y, f"{o:.6f}") for x, y, o, _ in small_world.clusters]
    with small_disk(tmp_path / "small_disk", "64k") as disk:
        out = disk / f"p{suffix}"
        fill(disk, leave_bytes=leave)
        with pytest.raises(QgsProcessingException, match=r"The disk is full: .*p\.(shp|gpkg)"):
            processing.run(
                "povertymapper:fitclusters",
                {"INPUT": str(small_world.image_path), "CLUSTERS": wgs84_clusters(rows), "OUTCOME": "wealth",
                 "BOX_SIZE": 1500, "TILE_SIZE": 480, "FOLD_DISTANCE": 0, "OUTPUT_MODEL": str(tmp_path / "m.povmodel"),
                 "OUTPUT_PREDICTIONS": str(out)},
            )
        assert layer_files(disk, "p") == {}
        assert partial_leftovers(disk) == []


@pytest.mark.parametrize("suffix", [".shp", ".gpkg"])
def test_blank_and_null_attributes_read_back_as_written(poverty_provider, tmp_path, suffix):
    """The read-back check counts values that every format keeps: a name of blanks or NULL
    (a shapefile reads both as NULL) is no missing value."""
    import processing

    districts = districts_layer(MAP_UTM)
    names = iter(["   ", None])
    with edit(districts):
        for feature in list(districts.getFeatures())[:2]:
            districts.changeAttributeValue(feature.id(), 0, next(names))
    poverty_map = write_poverty_map(tmp_path / "generated_map.tif", MAP_ESTIMATES)
    out = tmp_path / f"agg{suffix}"
    processing.run("povertymapper:aggregate", {"INPUT": poverty_map, "POLYGONS": districts, "OUTPUT": str(out)})
    assert QgsVectorLayer(str(out), "agg", "ogr").featureCount() == districts.featureCount()
