"""Where the plugin's bundled files lie."""
from __future__ import annotations

from pathlib import Path

PLUGIN_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = PLUGIN_ROOT / "resources" / "models"
# The RGB histogram model: the model of imagery alone, and the algorithms' model when none
# is given (it needs no night-lights layer).
DEFAULT_MODEL_PATH = MODELS_DIR / "default.povmodel"
# The night-lights model: the dock's default, the most trustworthy map for a country
# without surveys (leave-one-country-out within country-year r2 0.39 against 0.00).
NIGHTLIGHTS_MODEL_PATH = MODELS_DIR / "africa_nightlights_viirs.povmodel"
# The model of the bundled NASA Black Marble 2016 lights (DHS, 22 countries): maps a region
# and a CRS with no image (core.inference.lights_map): the dock's default, which needs no image.
AFRICA_LIGHTS_MODEL_PATH = MODELS_DIR / "africa_lights.povmodel"
SAMPLE_SCENE_PATH = PLUGIN_ROOT / "resources" / "sample" / "parana_landsat8_l1_rgb_30m.tif"
# The bundled model that maps the sample scene: from its own bands, without night lights
# (no night-light radiance ships with the plugin).
SAMPLE_MODEL_KEY = "rgb_histogram"

DEFAULT_MODEL_KEY = "africa_lights"
NIGHTLIGHTS_MODEL_KEY = "africa_nightlights_viirs"
# The models shipped with the plugin, by a key that names them wherever the plugin is
# installed (the dock remembers a bundled model by its key), in the order they are offered.
BUNDLED_MODELS: dict[str, Path] = {
    DEFAULT_MODEL_KEY: AFRICA_LIGHTS_MODEL_PATH,
    NIGHTLIGHTS_MODEL_KEY: NIGHTLIGHTS_MODEL_PATH,
    "rgb_histogram": DEFAULT_MODEL_PATH,
    "kinshasa_cnn": MODELS_DIR / "kinshasa_cnn.povmodel",
}


def bundled_models() -> dict[str, Path]:
    """The bundled models whose file is there, by key, in :data:`BUNDLED_MODELS`'s order."""
    return {key: path for key, path in BUNDLED_MODELS.items() if path.is_file()}


def default_model_path(with_nightlights: bool) -> Path:
    """The bundled model a run without a model file gets: the night-lights model where a
    night-lights layer is given, else the RGB model (which needs imagery alone)."""
    return NIGHTLIGHTS_MODEL_PATH if with_nightlights else DEFAULT_MODEL_PATH
