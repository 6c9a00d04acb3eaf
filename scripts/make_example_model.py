"""Build the example Processing model fit clusters -> predict -> aggregate.

    python scripts/make_example_model.py [--out resources/models/fit_predict_aggregate.model3]

The model (open it in QGIS's Model Designer, or run it from the Processing toolbox
after Models > Open Existing Model) takes a satellite image, survey cluster points,
their outcome field and district polygons; it fits a poverty model on the clusters
(per-band histogram features), maps the image with it and writes the districts with
their mean estimate. Its outputs are the aggregated districts and the fitted model.
"""
from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

from _bootstrap import ROOT, import_plugin_package

DEFAULT_OUT = ROOT / "resources" / "models" / "fit_predict_aggregate.model3"
MODEL_NAME = "Poverty by district (fit, predict, aggregate)"
GROUP = ""  # the provider's node already says Poverty Mapper: no second one inside it
HELP = (
    "Fits a poverty model on survey clusters, maps the satellite image with it and sums "
    "the map up per district: the whole method in one run.\n\n"
    "Satellite image: a raster with blue, green and red bands (reflectance, or Landsat / "
    "Sentinel-2 digital numbers). Survey clusters: points in any CRS with a numeric outcome "
    "(consumption, an asset wealth index). Districts: polygons in any CRS. Population "
    "(optional): a people-per-pixel raster for a population-weighted district mean.\n\n"
    "Features are per-band histograms (no training needed); for the nightlight proxy CNN, "
    "run the three algorithms one by one. Outputs: the districts with pov_cover (the share "
    "covered by the map), pov_mean, pov_cells (and pov_wmean, pov_pop with a population raster), and the fitted model file, reusable in "
    "'Predict poverty map'. Read the model's cross-validated scores in the log."
)

# Per-parameter help, kept in the model's help map as the Model Designer's "Edit Model Help"
# does: QGIS gives it to the parameters (their tooltips) when it loads the model.
PARAMETER_HELP = {
    "image": "Daytime imagery with blue, green and red bands covering the clusters and the districts; "
    "the model is fitted on it and maps it.",
    "clusters": "One point per surveyed cluster, in any CRS, with the survey outcome as a field.",
    "outcome": "The numeric field to predict, e.g. consumption per person or an asset wealth index.",
    "box_size": "Side of the square around each cluster whose tiles are averaged; the default 10 km "
    "covers the displacement surveys apply to cluster coordinates.",
    "districts": "The polygons to sum the map up per (e.g. districts), in any CRS.",
    "population": "Optional: people per pixel (e.g. WorldPop) for a population-weighted mean per district.",
}


def build_model():
    """The example model as a QgsProcessingModelAlgorithm (QGIS must be initialised)."""
    from qgis.core import (
        QgsProcessing,
        QgsProcessingModelAlgorithm,
        QgsProcessingModelChildAlgorithm,
        QgsProcessingModelChildParameterSource,
        QgsProcessingModelOutput,
        QgsProcessingModelParameter,
        QgsProcessingParameterFeatureSource,
        QgsProcessingParameterField,
        QgsProcessingParameterNumber,
        QgsProcessingParameterRasterLayer,
    )
    from qgis.PyQt.QtCore import QPointF

    model = QgsProcessingModelAlgorithm(MODEL_NAME, GROUP, "")
    inputs = (
        QgsProcessingParameterRasterLayer("image", "Satellite image"),
        QgsProcessingParameterFeatureSource("clusters", "Survey clusters (points)", [QgsProcessing.TypeVectorPoint]),
        QgsProcessingParameterField(
            "outcome", "Outcome field", parentLayerParameterName="clusters", type=QgsProcessingParameterField.Numeric
        ),
        QgsProcessingParameterNumber(
            "box_size", "Neighbourhood box size around each cluster (m)", QgsProcessingParameterNumber.Double,
            defaultValue=10_000.0, minValue=100.0, maxValue=100_000.0,
        ),
        QgsProcessingParameterFeatureSource("districts", "Districts (polygons)", [QgsProcessing.TypeVectorPolygon]),
        QgsProcessingParameterRasterLayer("population", "Population raster (people per pixel)", optional=True),
    )
    for row, parameter in enumerate(inputs):
        component = QgsProcessingModelParameter(parameter.name())
        component.setPosition(QPointF(120.0, 80.0 + 70.0 * row))
        model.addModelParameter(parameter, component)

    def source(name: str):
        return [QgsProcessingModelChildParameterSource.fromModelParameter(name)]

    def child(algorithm_id: str, child_id: str, description: str, x: float, y: float, sources: dict, outputs=()):
        step = QgsProcessingModelChildAlgorithm(algorithm_id)
        step.setChildId(child_id)
        step.setDescription(description)
        step.setPosition(QPointF(x, y))
        for key, value in sources.items():
            step.addParameterSources(key, value)
        model_outputs = {}
        for output_name, child_output, description in outputs:
            output = QgsProcessingModelOutput(output_name, description)
            output.setChildId(child_id)
            output.setChildOutputName(child_output)
            output.setPosition(QPointF(x + 180.0, y + 60.0))
            model_outputs[output_name] = output
        step.setModelOutputs(model_outputs)
        # The algorithm's defaults for the rest, written out as the Model Designer does.
        for definition in step.algorithm().parameterDefinitions():
            name = definition.name()
            if name in sources or definition.isDestination() or definition.defaultValue() is None:
                continue
            default = QgsProcessingModelChildParameterSource.fromStaticValue(definition.defaultValue())
            step.addParameterSources(name, [default])
        model.addChildAlgorithm(step)

    child(
        "povertymapper:fitclusters", "fitclusters", "Fit poverty model on survey clusters", 420.0, 120.0,
        {
            "INPUT": source("image"),
            "CLUSTERS": source("clusters"),
            "OUTCOME": source("outcome"),
            "BOX_SIZE": source("box_size"),
            "EXTRACTOR": [QgsProcessingModelChildParameterSource.fromStaticValue(0)],  # histogram
        },
        [("model_file", "OUTPUT_MODEL", "Fitted poverty model")],
    )
    child(
        "povertymapper:predict", "predict", "Predict poverty map", 420.0, 260.0,
        {
            "INPUT": source("image"),
            "MODEL": [QgsProcessingModelChildParameterSource.fromChildOutput("fitclusters", "OUTPUT_MODEL")],
        },
    )
    child(
        "povertymapper:aggregate", "aggregate", "Aggregate poverty map to districts", 420.0, 400.0,
        {
            "INPUT": [QgsProcessingModelChildParameterSource.fromChildOutput("predict", "OUTPUT")],
            "POLYGONS": source("districts"),
            "POPULATION": source("population"),
        },
        [("districts", "OUTPUT", "Districts with poverty estimates")],
    )
    model.setHelpContent({"ALG_DESC": HELP, "ALG_CREATOR": "Poverty Mapper", **PARAMETER_HELP})
    return model


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", type=Path, default=DEFAULT_OUT)
    args = parser.parse_args(argv)

    os.environ.setdefault("QT_QPA_PLATFORM", "offscreen")
    os.environ.setdefault("QT_HASH_SEED", "0")  # Qt then writes XML attributes in a fixed order
    import_plugin_package()
    from qgis.core import QgsApplication

    app = QgsApplication([], False)
    app.initQgis()
    from poverty_mapper.provider.provider import PovertyMapperProvider

    provider = PovertyMapperProvider()
    QgsApplication.processingRegistry().addProvider(provider)
    try:
        model = build_model()
        problems = [
            f"{child_id}: {issue}"
            for child_id in model.childAlgorithms()
            for issue in model.validateChildAlgorithm(child_id)[1]
        ]
        if problems:
            sys.stderr.write("\n".join(problems) + "\n")
            return 1
        if not model.toFile(str(args.out)):
            sys.stderr.write(f"Cannot write {args.out}\n")
            return 1
        sys.stdout.write(f"written: {args.out}\n")
        return 0
    finally:
        QgsApplication.processingRegistry().removeProvider(provider)
        app.exitQgis()


if __name__ == "__main__":
    sys.exit(main())
