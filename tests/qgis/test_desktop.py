"""The real QGIS desktop under Xvfb: the plugin loads from a fresh profile, its dock
maps the bundled real scene, and the styled result is on screen
(scripts/desktop_check.sh writes screenshots and a JSON of the state; about 10 s)."""
from __future__ import annotations

import json
import struct
import subprocess

from conftest import ROOT


def _png_size(path) -> tuple[int, int]:
    header = path.read_bytes()[:24]
    assert header[:8] == b"\x89PNG\r\n\x1a\n"
    return struct.unpack(">II", header[16:24])


def test_dock_maps_the_scene_in_the_real_desktop():
    done = subprocess.run(
        ["bash", str(ROOT / "scripts" / "desktop_check.sh")], cwd=ROOT, capture_output=True, text=True, timeout=120
    )  # the script gives up by itself after 90 s, with the tail of QGIS's log
    assert done.returncode == 0, done.stderr + done.stdout
    out = ROOT / "out" / "desktop"
    state = json.loads((out / "state.json").read_text())
    assert state["errors"] == []
    assert state["run_ok"] is True
    assert state["dock_visible"] is True
    assert "Parana Landsat 8 (real scene)" in state["layers"]
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
