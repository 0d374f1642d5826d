#!/usr/bin/env bash
# The dashboard's map, offline: U.S. Census county and state shapes (us-atlas, ISC) drawn
# with topojson-client and d3-geo (ISC; d3-array is d3-geo's one dependency), copied with
# their licences into DEST (default: the dashboard's static/vendor, git-ignored), so the page
# loads them from the station itself under its CSP (script-src 'self'). One list of versions
# for both places that need it: scripts/setup.sh (a machine) and deploy/Dockerfile (the image).
#
#   scripts/vendor-map.sh [DEST [NPM_PREFIX]]
set -euo pipefail
cd "$(dirname "$0")/.."
MAP_PACKAGES="us-atlas@3.0.1 topojson-client@3.1.0 d3-geo@3.1.2 d3-array@3.2.5"
DEST=${1:-deploy/station/src/eas_station/dashboard/static/vendor}
PREFIX=${2:-.vendor/npm-map}
STAMP="$DEST/VERSIONS"
if [ "$(cat "$STAMP" 2>/dev/null)" = "$MAP_PACKAGES" ]; then
  exit 0
fi
# shellcheck disable=SC2086  # one word per package
npm install --no-save --no-package-lock --no-audit --no-fund --silent --prefix "$PREFIX" $MAP_PACKAGES
modules="$PREFIX/node_modules"
mkdir -p "$DEST"
cp "$modules/us-atlas/counties-10m.json" "$DEST/"
cp "$modules/topojson-client/dist/topojson-client.min.js" "$DEST/"
cp "$modules/d3-geo/dist/d3-geo.min.js" "$DEST/"
cp "$modules/d3-array/dist/d3-array.min.js" "$DEST/"
for pkg in us-atlas topojson-client d3-geo d3-array; do
  cp "$modules/$pkg/LICENSE" "$DEST/LICENSE.$pkg"
done
printf '%s\n' "$MAP_PACKAGES" >"$STAMP"
