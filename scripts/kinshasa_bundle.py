"""The bundled Kinshasa CNN model: the ImageNet-started proxy network fitted on the 44
DR Congo 2013 DHS clusters (called by train_kinshasa_cnn.py --bundle).

The survey clusters stay out of the model file: it holds the network's weights, the
ridge coefficients, the outcome's spread and the cross-validated scores, no coordinates.
"""
from __future__ import annotations

import dataclasses
import sys
from pathlib import Path

from _bootstrap import ROOT, import_plugin_package

import_plugin_package()
from poverty_mapper.evaluation import kinshasa  # noqa: E402
from poverty_mapper.core.models.model_file import load_model, save_model  # noqa: E402
from poverty_mapper.core.training.clusters import fit_clusters  # noqa: E402

NAME = "Kinshasa CNN (EfficientNet-Lite0, DHS wealth) v3"
USE = (
    "one city region (Kinshasa and Brazzaville) and 44 survey clusters, 37 of them urban: "
    "indicative for comparing neighbourhoods of a Central African city on Landsat-like true "
    "colour imagery at about 38 m. Every scene is standardized by its own mean and spread per "
    "band (the network was trained so, on two dates and random gamma and histogram-equalization "
    "renders), so another "
    "linear stretch or product level changes little; elsewhere the estimates are untested, and "
    "rural estimates rest on 7 clusters."
)


def write_bundled_model(real: Path, proxy_path: Path, out: Path, runs: str) -> Path:
    fit = fit_clusters(kinshasa.cluster_config(real, str(proxy_path), ROOT / "out" / "kinshasa" / "fit_cnn.povmodel"))
    fitted = load_model(fit.model_path)
    proxy = load_model(proxy_path)
    provenance = {
        **fitted.provenance,
        "network": ("EfficientNet-Lite0 started from ImageNet weights, fine-tuned on night-light classes; each "
                    "scene read standardized by its own mean and spread per band"),
        "runs": runs,
        "data": (
            "proxy task: Landsat 8 over Kinshasa on 2013-07-28 and 2015-09-04 (true colour rendered to 8 bit), "
            "NASA Black Marble 2016 night lights (colour composite luminance); survey: 44 DHS clusters of DR "
            "Congo 2013 (wealthpooled)"
        ),
        "proxy": proxy.provenance,
        "use": USE,
    }
    # The scenes' bands 1-3 are coloured red, green, blue (they carry no descriptions):
    # named so, a map finds them by colour in any RGB image.
    model = dataclasses.replace(fitted, name=NAME, provenance=provenance, bands=("RED", "GREEN", "BLUE"))
    # The network was trained on both dates: the scene check compares a scene with both.
    model = dataclasses.replace(model, scene_domain=kinshasa.training_scene_domain(real, model))
    save_model(model, out)
    sys.stdout.write(f"wrote {out}: {fit.report.cv.pooled.to_json()}\n")
    return out
