#!/usr/bin/env bash
# Starts the real QGIS desktop under Xvfb with the plugin enabled in a fresh profile,
# runs a prediction from the dock on the bundled real scene, and saves
# out/desktop/screenshot.png, out/desktop/dock_export.png and out/desktop/state.json
# (scripts/desktop_check.py). Gives up after DESKTOP_CHECK_TIMEOUT seconds (90).
set -euo pipefail
limit="${DESKTOP_CHECK_TIMEOUT:-90}"
for tool in xvfb-run xauth /usr/bin/qgis.bin; do
  command -v "$tool" >/dev/null || { echo "desktop check: $tool is missing (scripts/install_system.sh installs it)" >&2; exit 1; }
done
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
# A plugin that fails to import makes QGIS open a modal error dialog at start-up (no
# active window under Xvfb), which would only show up here as a timeout: import it first.
if ! QT_QPA_PLATFORM=offscreen /usr/bin/python3.11 -c "import sys; sys.path.insert(0, sys.argv[1]); import poverty_mapper.plugin, poverty_mapper.ui.dock" \
  "$profiles/profiles/default/python/plugins" >"$out/import.log" 2>&1; then
  echo "desktop check: the plugin does not import in QGIS's Python:" >&2
  tail -n 20 "$out/import.log" >&2
  exit 1
fi
export DESKTOP_CHECK_OUT="$out" DESKTOP_CHECK_SCENE="$root/resources/sample/parana_landsat8_l1_rgb_30m.tif"
unset QT_QPA_PLATFORM
status=0
timeout -k 10 "$limit" xvfb-run -a -s "-screen 0 1280x800x24" \
  /usr/bin/qgis.bin --nologo --profiles-path "$profiles" --code "$root/scripts/desktop_check.py" \
  >"$out/qgis.log" 2>&1 || status=$?
if [ "$status" -eq 124 ] || [ "$status" -eq 137 ]; then
  echo "desktop check: QGIS did not finish within $limit s (killed); last lines of $out/qgis.log:" >&2
  tail -n 20 "$out/qgis.log" >&2
  exit 1
fi
if [ ! -f "$out/state.json" ]; then
  echo "desktop check: QGIS exited ($status) without writing $out/state.json; last lines of $out/qgis.log:" >&2
  tail -n 20 "$out/qgis.log" >&2
  exit 1
fi
if [ "$status" -ne 0 ]; then
  echo "desktop check: QGIS exited with status $status; see $out/state.json:" >&2
  cat "$out/state.json" >&2
  exit 1
fi
echo "screenshot: $out/screenshot.png"
echo "dock:       $out/dock_export.png"
echo "state:      $out/state.json"
