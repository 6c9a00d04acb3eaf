#!/usr/bin/env bash
# Starts the real QGIS desktop under Xvfb with the plugin enabled in a fresh profile,
# runs a prediction from the dock on the bundled real scene, and saves
# out/desktop/screenshot.png and out/desktop/state.json (scripts/desktop_check.py).
set -euo pipefail
root="$(cd "$(dirname "$0")/.." && pwd)"
out="$root/out/desktop"
profiles="$root/build/desktop-profiles"
rm -rf "$out" "$profiles"
mkdir -p "$out" "$profiles/profiles/default/python/plugins" "$profiles/profiles/default/QGIS"
ln -sfn "$root" "$profiles/profiles/default/python/plugins/poverty_mapper"
cat > "$profiles/profiles/default/QGIS/QGIS3.ini" <<INI
[PythonPlugins]
poverty_mapper=true

[qgis]
showTips=false
checkVersion=false
INI
export PYTHONPATH="$root/.venv/lib/python3.11/site-packages${PYTHONPATH:+:$PYTHONPATH}"
export DESKTOP_CHECK_OUT="$out" DESKTOP_CHECK_SCENE="$root/resources/sample/parana_landsat8_l1_rgb_30m.tif"
unset QT_QPA_PLATFORM
status=0
timeout "${DESKTOP_CHECK_TIMEOUT:-150}" xvfb-run -a -s "-screen 0 1280x800x24" \
  /usr/bin/qgis.bin --nologo --profiles-path "$profiles" --code "$root/scripts/desktop_check.py" \
  >"$out/qgis.log" 2>&1 || status=$?
if [ "$status" -eq 124 ]; then
  echo "QGIS did not finish within ${DESKTOP_CHECK_TIMEOUT:-150} s; see $out/qgis.log" >&2
  exit 1
fi
[ -f "$out/state.json" ] || { echo "QGIS exited ($status) without writing $out/state.json; see $out/qgis.log" >&2; exit 1; }
echo "screenshot: $out/screenshot.png"
echo "state:      $out/state.json"
