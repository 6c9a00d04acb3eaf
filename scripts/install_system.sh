#!/usr/bin/env bash
# Installs QGIS (with its Python bindings and qgis_process) and matplotlib from Debian's
# packages when they are missing. Needs root or sudo.
set -euo pipefail
packages=(python3-qgis qgis-providers qgis python3-matplotlib xvfb xauth)
missing=()
for p in "${packages[@]}"; do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
[ ${#missing[@]} -eq 0 ] && exit 0
sudo=""
[ "$(id -u)" -ne 0 ] && sudo="sudo"
echo "Installing from Debian: ${missing[*]}"
$sudo apt-get update -qq
DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
