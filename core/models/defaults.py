"""Where the plugin's bundled files lie."""
from __future__ import annotations

from pathlib import Path

PLUGIN_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_PATH = PLUGIN_ROOT / "resources" / "models" / "default.povmodel"
SAMPLE_SCENE_PATH = PLUGIN_ROOT / "resources" / "sample" / "parana_landsat8_l1_rgb_30m.tif"
