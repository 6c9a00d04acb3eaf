#!/usr/bin/env bash
# The main job, headless through QGIS's own runner: the plugin's "Predict poverty map"
# algorithm on the bundled real Landsat 8 scene with the bundled default model.
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
"$QGIS_PROCESS" run povertymapper:predict \
  --INPUT="$scene" \
  --STRIDE=960 \
  --OUTPUT="$out/poverty.tif"
"$PY" scripts/quicklook.py "$out/poverty.tif" "$out/poverty.png" --image "$scene"
echo
echo "Estimate raster: $PWD/$out/poverty.tif"
echo "Quicklook:       $PWD/$out/poverty.png"
