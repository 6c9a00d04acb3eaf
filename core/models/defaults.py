"""Where the plugin's bundled files lie."""
from __future__ import annotations

from pathlib import Path

PLUGIN_ROOT = Path(__file__).resolve().parents[2]
MODELS_DIR = PLUGIN_ROOT / "resources" / "models"
# The RGB histogram model (Landsat blue, green, red histograms): an example of a model of
# imagery alone, on no default path: it carries nothing to another country (leave-one-country-out
# within country-year r2 0.004). Chosen only by its path or its key.
DEFAULT_MODEL_PATH = MODELS_DIR / "default.povmodel"
RGB_MODEL_PATH = DEFAULT_MODEL_PATH
# The VIIRS night-lights model: the default where a night-lights radiance layer is given
# (leave-one-country-out within country-year r2 0.39 on LSMS).
NIGHTLIGHTS_MODEL_PATH = MODELS_DIR / "africa_nightlights_viirs.povmodel"
# The model of the bundled NASA Black Marble 2016 lights (DHS, 22 countries; out of country
# within country-year r2 0.658): the default everywhere else, with or without an image; it
# maps a region and a CRS with no image (core.inference.map_region).
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


def default_model_key(with_nightlights: bool) -> str:
    """The key of the bundled model a run without a model gets, the one rule of every front
    end: the VIIRS night-lights model only where a night-lights radiance layer is given, else
    the Africa lights model (with or without an image; it reads the bundled lights)."""
    return NIGHTLIGHTS_MODEL_KEY if with_nightlights else DEFAULT_MODEL_KEY


def default_model_path(with_nightlights: bool) -> Path:
    """The file of :func:`default_model_key`'s model."""
    return BUNDLED_MODELS[default_model_key(with_nightlights)]
