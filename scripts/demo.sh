#!/usr/bin/env bash
# The main job, headless through QGIS's own runner: the plugin's "Predict poverty map"
# algorithm with nothing but a region (Rwanda's extent: no image, no model) and the bundled
# default, the Africa night-lights model (NASA Black Marble 2016, shipped with the plugin);
# then on the bundled real Landsat 8 scene with the RGB example model and with
# the bundled Kinshasa CNN (it reads every scene, this Level-1 one too, standardized by
# the scene's own band statistics).
set -euo pipefail
out=out/demo
mkdir -p "$out"
scene=resources/sample/parana_landsat8_l1_rgb_30m.tif
export QGIS_PLUGINPATH="$PWD/$PLUGIN_DIR"
# qgis_process runs the system Python: let it see torch and rasterio from the venv.
export PYTHONPATH="$PWD/$SITE${PYTHONPATH:+:$PYTHONPATH}"
export QGIS_CUSTOM_CONFIG_PATH="$PWD/build/qgis-profile"
if ! "$QGIS_PROCESS" plugins 2>/dev/null | grep -q '^\* poverty_mapper$'; then
  "$QGIS_PROCESS" plugins enable poverty_mapper >/dev/null
fi
# A whole country from its extent and CRS: the default model, the bundled lights.
"$QGIS_PROCESS" run povertymapper:predict \
  --EXTENT="28.86,30.90,-2.84,-1.05 [EPSG:4326]" \
  --OUTPUT="$out/poverty_rwanda.tif"
"$PY" scripts/quicklook.py "$out/poverty_rwanda.tif" "$out/poverty_rwanda.png"
# The sample scene (Parana, Brazil) lies outside the bundled Africa lights, the default:
# it is mapped with the RGB histogram model, named (an example model: it carries nothing
# to another country).
"$QGIS_PROCESS" run povertymapper:predict \
  --INPUT="$scene" \
  --MODEL=resources/models/default.povmodel \
  --STRIDE=960 \
  --OUTPUT="$out/poverty.tif"
"$PY" scripts/quicklook.py "$out/poverty.tif" "$out/poverty.png" --image "$scene"
"$QGIS_PROCESS" run povertymapper:predict \
  --INPUT="$scene" \
  --MODEL=resources/models/kinshasa_cnn.povmodel \
  --OUTPUT="$out/poverty_cnn.tif"
"$PY" scripts/quicklook.py "$out/poverty_cnn.tif" "$out/poverty_cnn.png" --image "$scene"
echo
echo "Estimate raster: $PWD/$out/poverty_rwanda.tif (default: Africa night lights 2016, no image),"
echo "                 $PWD/$out/poverty.tif (RGB example model), $PWD/$out/poverty_cnn.tif (Kinshasa CNN)"
echo "Quicklook:       $PWD/$out/poverty_rwanda.png, $PWD/$out/poverty.png, $PWD/$out/poverty_cnn.png"
