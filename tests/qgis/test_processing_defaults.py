"""Every default a Processing algorithm offers is the engine's: the default of the field
of the engine configuration that the parameter fills, which the command line offers too.
A default typed into an algorithm that drifts from the engine's fails here."""
from __future__ import annotations

import pytest
from qgis.core import QgsApplication

from poverty_mapper.core.device import DEVICE_CHOICES
from poverty_mapper.core.inference.predict import PredictRequest
from poverty_mapper.core.options import default_of
from poverty_mapper.core.training.clusters import ClusterFitConfig
from poverty_mapper.core.training.proxy import ProxyTrainingConfig
from poverty_mapper.provider.base import RADIOMETRY_KEYS, PovertyAlgorithm
from poverty_mapper.provider.fit_clusters_algorithm import EXTRACTOR_OPTIONS
from poverty_mapper.provider.train_proxy_algorithm import BINNINGS, NETWORKS

IMAGERY = {"RADIOMETRY": "radiometry", "DEVICE": "device"}
# Per algorithm: the engine configuration, and the field (or fields) each parameter with a
# default fills. Written out here, not read from the algorithms, so that a parameter's
# default is compared with the field it is meant to give.
ENGINE_FIELDS = {
    "predict": (PredictRequest, {"STRIDE": "stride_m", "BATCH_SIZE": "batch_size", **IMAGERY}),
    "fitclusters": (ClusterFitConfig, {
        "LOG_OUTCOME": "log_outcome", "BOX_SIZE": "box_size_m", "EXTRACTOR": "extractor_kind",
        "TILE_SIZE": "tile_size_m", "FOLDS": "n_folds", "FOLD_DISTANCE": "fold_distance_m", "MIN_TILES": "min_tiles",
        "MIN_COVERAGE": "min_covered_share", "SEED": "seed", "WITH_LIGHTS": "with_lights", **IMAGERY,
    }),
    "trainproxy": (ProxyTrainingConfig, {
        "NETWORK": ("architecture", "imagenet_start"), "FROZEN_BLOCKS": "frozen_blocks", "TILE_SIZE": "tile_size_m",
        "N_CLASSES": "n_classes", "BINNING": "binning", "EPOCHS": "epochs", "BATCH_SIZE": "batch_size",
        "LEARNING_RATE": "learning_rate", "VAL_SHARE": "val_fraction", "SEED": "seed", **IMAGERY,
    }),
    "aggregate": (None, {}),
    "topolygons": (None, {}),
    "installlights": (None, {}),
}
# What an option of a choice parameter gives the engine, option by option (the tables
# the algorithms read their choices with).
CHOICES = {"RADIOMETRY": RADIOMETRY_KEYS, "DEVICE": DEVICE_CHOICES, "EXTRACTOR": EXTRACTOR_OPTIONS,
           "NETWORK": NETWORKS, "BINNING": BINNINGS}
# Defaults of the QGIS side alone, with no engine field: the name of the output layer's field.
QGIS_ONLY = {("topolygons", "FIELD_NAME")}


def _algorithm(name: str):
    algorithm = QgsApplication.processingRegistry().algorithmById(f"povertymapper:{name}")
    assert algorithm is not None, name
    return algorithm


def test_every_algorithm_of_the_provider_is_listed(poverty_provider):
    """Each algorithm of the plugin (the example Processing model aside, which runs them)."""
    names = {a.name() for a in poverty_provider.algorithms() if isinstance(a, PovertyAlgorithm)}
    assert names == set(ENGINE_FIELDS)


@pytest.mark.parametrize("name", sorted(ENGINE_FIELDS))
def test_every_parameter_default_is_the_engines(poverty_provider, name):
    algorithm = _algorithm(name)
    config, fields = ENGINE_FIELDS[name]
    with_default = {p.name() for p in algorithm.parameterDefinitions() if p.defaultValue() is not None}
    assert with_default - set(fields) - {key for alg, key in QGIS_ONLY if alg == name} == set()  # none unchecked
    for key, field in fields.items():
        parameter = algorithm.parameterDefinition(key)
        assert parameter is not None, f"{name}: {key}"
        offered = parameter.defaultValue()
        if key in CHOICES:
            offered = CHOICES[key][offered]
        engine = tuple(default_of(config, f) for f in field) if isinstance(field, tuple) else default_of(config, field)
        assert offered == engine, f"{name}: {key} offers {offered!r}, the engine's {field} is {engine!r}"


def test_a_default_that_drifts_from_the_engines_is_seen(poverty_provider):
    """The comparison can fail: an algorithm whose configuration says another default
    offers that one (it is read from the engine, not typed in)."""
    import dataclasses

    from poverty_mapper.provider.fit_clusters_algorithm import FitClustersAlgorithm

    @dataclasses.dataclass(frozen=True)
    class Drifted(ClusterFitConfig):
        box_size_m: float = 5_000.0

    algorithm = type("Drifted", (FitClustersAlgorithm,), {"CONFIG": Drifted})()
    algorithm.initAlgorithm()
    assert algorithm.parameterDefinition("BOX_SIZE").defaultValue() == 5_000.0 != default_of(ClusterFitConfig, "box_size_m")
