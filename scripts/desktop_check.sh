#!/usr/bin/env bash
# Starts the real QGIS desktop under Xvfb with the plugin enabled in a fresh profile and
# drives the dock (scripts/desktop_check.py): wrong bands refused, the bundled real scene
# mapped (with its notes), a district export with coverage, XYZ tiles (a layer that is no
# file) mapped, maps named and grouped with their quality layers. Saves screenshots and
# out/desktop/state.json. Needs the real data beside the clone (../shared/data). Gives up
# after DESKTOP_CHECK_TIMEOUT seconds (180).
set -euo pipefail
limit="${DESKTOP_CHECK_TIMEOUT:-180}"
for tool in xvfb-run xauth /usr/bin/qgis.bin gdal_translate gdal2tiles.py; do
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
scene="$root/resources/sample/parana_landsat8_l1_rgb_30m.tif"
landsat7="$root/../shared/data/real/scenes/landsat7_olinda_6band_28m.tif"
[ -f "$landsat7" ] || { echo "desktop check: the real data is expected at $landsat7" >&2; exit 1; }
# XYZ tiles (file:// URLs) of the scene as 8-bit red, green, blue: imagery that is no file.
gdal_translate -q -ot Byte -scale 6000 14000 1 255 -a_nodata 0 -b 3 -b 2 -b 1 "$scene" "$out/rgb8.tif"
gdal2tiles.py -q --xyz -z 12 -w none "$out/rgb8.tif" "$out/xyz"
export DESKTOP_CHECK_OUT="$out" DESKTOP_CHECK_SCENE="$scene" DESKTOP_CHECK_LANDSAT7="$landsat7"
export DESKTOP_CHECK_XYZ_URL="type=xyz&url=file://$out/xyz/{z}/{x}/{y}.png&zmin=12&zmax=12"
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
for shot in screenshot dock_wrong_bands dock_export districts dock_districts xyz names_quality identify; do
  echo "screenshot: $out/$shot.png"
done
echo "state:      $out/state.json"
