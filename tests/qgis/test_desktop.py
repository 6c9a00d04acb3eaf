"""The real QGIS desktop under Xvfb: the plugin loads from a fresh profile; its dock
refuses bands it cannot match, maps the bundled real scene (its notes shown in the dock),
sums the map up per district (one concave with a hole) with exact coverage, maps XYZ tiles,
a layer that is no file, and names each map apart, grouped with its quality layer
(scripts/desktop_check.sh writes screenshots and a JSON of the state; about 40 s)."""
from __future__ import annotations

import json
import struct
import subprocess

from conftest import ROOT
from poverty_mapper.core.maps.quality_regions import MEANINGS


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_dock_maps_the_scene_in_the_real_desktop():
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "desktop_check.sh")], cwd=ROOT, capture_output=True, text=True, timeout=240
    )  # the script gives up by itself after 180 s, with the tail of QGIS's log
    assert done.returncode == 0, done.stderr + done.stdout
    out = ROOT / "out" / "desktop"
    state = json.loads((out / "state.json").read_text())
    assert state["errors"] == []
    assert state["run_ok"] is True
    assert state["dock_visible"] is True
    assert "Parana Landsat 8 (real scene)" in state["layers"]
    assert state["toolbar"] == ["Poverty Mapper"]  # its own toolbar, shown in a fresh profile
    # 0. The first look: the default Africa lights model, no image needed and no night-lights
    # picker, Run disabled with a one-line reason (a region or an image); "Load sample data"
    # gives an image and the model that maps it (the scene lies outside the Africa lights).
    first = state["first_look"]
    assert first["model"] == "africa_lights" and first["run_enabled"] is False
    assert first["image"].startswith("(none") and first["region"] == "layer"
    assert first["run_hint"].startswith("To run: choose a region") and "\n" not in first["run_hint"]
    assert first["lights_picker_shown"] is False and "no image needed" in first["model_summary"]
    assert first["sample_button_in_view"] is True
    loaded = state["sample_loaded"]
    assert loaded["image"] and "Landsat 8" in loaded["image"]
    assert loaded["model"] == "rgb_histogram" and loaded["run_enabled"] is True and loaded["run_hint"] == ""
    assert _png_size(out / "first_look.png")[1] >= 400
    # 1. The 6-band Landsat 7 scene: refused, the bands left to choose.
    assert state["wrong_bands"]["running"] is False
    assert "Cannot tell which of the raster's 6 bands" in state["wrong_bands"]["status"]
    assert state["wrong_bands"]["bands"] == ["Choose a band…"] * 3
    # 2. The map, its notes in the dock, its style beside the file.
    assert "Note: Level-1 DN converted to top-of-atmosphere reflectance" in state["dock_status"]
    assert state["style_file"] is True
    result = [name for name in state["layers"] if name.startswith("Poverty map")]
    assert len(result) == 1
    assert state["renderers"][result[0]] == "singlebandpseudocolor"
    width, height = _png_size(out / "screenshot.png")
    assert (width, height) == tuple(state["window_size"])
    assert width >= 800 and height >= 500
    # The export section (opened) offers the fresh map and fits the dock's width.
    assert state["export_map"] == result[0]
    layout = state["dock_layout"]
    assert layout["content_width"] <= layout["viewport_width"] and layout["scrolled_sideways"] == 0
    assert _png_size(out / "dock_export.png")[1] >= 400
    # 3. Districts with exact coverage: one of 2 km (smaller than a 6.72 km cell) gets its cell,
    # one two-thirds off the map says so.
    districts = state["districts"]
    assert districts["ok"] is True and districts["renderer"] == "graduatedSymbol"
    rows = districts["rows"]
    assert rows["small (2 km)"]["pov_cells"] == 1 and rows["small (2 km)"]["pov_mean"] is not None
    # Two-thirds of it lie west of the scene; the map starts on a cell edge up to a cell further west,
    # and the scene's fill corner has no estimates: its coverage is at most the part on the map.
    west, east = districts["off_map_west_east"]
    on_map = (east - districts["map_west"]) / (east - west)
    assert 0.1 < rows["mostly off the map"]["pov_cover"] <= on_map + 1e-6 and on_map < 0.6
    assert "Note: 1 polygon(s) are covered only in part" in districts["status"]
    # Not a rectangle: computed (QGIS crashed on such districts), on several cells, all of it on the map.
    shaped = rows["concave with a hole"]
    assert shaped["pov_cells"] >= 4 and shaped["pov_mean"] is not None and shaped["pov_cover"] > 0.99
    assert "districts: " + result[0] in districts["layer_names"]
    # 4. XYZ tiles, fetched for the map extent.
    assert state["xyz"]["ok"] is True and state["xyz_bands"] == ["Band 1: red", "Band 2: green", "Band 3: blue"]
    assert "Estimated" in state["xyz"]["status"]
    for shot in ("dock_wrong_bands", "districts", "dock_districts", "xyz"):
        assert _png_size(out / f"{shot}.png")[1] >= 400
    # 5. Each map named after its model and image, unique; grouped with its quality layer, shown.
    names = state["names"]
    assert names["ok"] is True
    assert len(names["maps"]) == len(set(names["maps"])) == 3
    assert result[0] + " (2)" in names["maps"]
    assert any("Kinshasa CNN" in name and "XYZ tiles of the scene" in name for name in names["maps"])
    for group in names["groups"]:
        assert group["group"] in names["maps"] and group["children"][1] == group["group"]
        assert group["quality_visible"] == [True] and group["quality_renderer"] == ["categorizedSymbol"]
    assert set(names["maps"]) <= set(names["export_list"])
    assert not any("quality" in name or "interval" in name for name in names["export_list"])
    assert _png_size(out / "names_quality.png")[1] >= 400
    # 6. Identify on a flagged cell: its results panel opens below the dock, which keeps its form.
    identify = state["identify"]
    assert identify["panel_visible"] is True and identify["code"] in (1, 3)
    meaning = MEANINGS[identify["code"]]  # the cell's code in words, not a bare number
    assert ["meaning", meaning] in identify["rows"]
    assert identify["form_height"] >= 150
    assert _png_size(out / "identify.png")[1] >= 400
