"""Where the plugin's bundled files lie."""
from __future__ import annotations

from pathlib import Path

PLUGIN_ROOT = Path(__file__).resolve().parents[2]
DEFAULT_MODEL_PATH = PLUGIN_ROOT / "resources" / "models" / "default.povmodel"
SAMPLE_SCENE_PATH = PLUGIN_ROOT / "resources" / "sample" / "parana_landsat8_l1_rgb_30m.tif"

DEFAULT_MODEL_KEY = "default"
# The models shipped with the plugin, by a key that names them wherever the plugin is
# installed (the dock remembers a bundled model by its key), in the order they are offered.
BUNDLED_MODELS: dict[str, Path] = {
    DEFAULT_MODEL_KEY: DEFAULT_MODEL_PATH,
    "kinshasa_cnn": DEFAULT_MODEL_PATH.with_name("kinshasa_cnn.povmodel"),
}


def bundled_models() -> dict[str, Path]:
    """The bundled models whose file is there, by key, in :data:`BUNDLED_MODELS`'s order."""
    return {key: path for key, path in BUNDLED_MODELS.items() if path.is_file()}
