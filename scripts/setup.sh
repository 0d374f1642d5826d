#!/usr/bin/env bash
# Installs everything EAS Station needs on a fresh Debian machine (idempotent, quick when done).
# Debian tools: SAME reference decoder/encoder (multimon-ng, minimodem), audio tools (sox,
# ffmpeg), text-to-speech for EAS narration (espeak-ng; flite, the second engine the tests
# use), Chromium for the dashboard's browser test (driven by Playwright's Python API), npm
# (axe-core for that test's accessibility check), icecast2 (the stream output's real server
# in the tests), PortAudio (libportaudio2, the sound-device output through sounddevice), nginx
# (the single origin of scripts/scaled and its tests), redis-server (the fault test's private,
# append-only Redis that it restarts) and wrk (the HTTP load generator of bench/).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pair in multimon-ng:multimon-ng minimodem:minimodem sox:sox ffmpeg:ffmpeg espeak-ng:espeak-ng flite:flite chromium:chromium npm:npm icecast2:icecast2 nginx:nginx redis-server:redis-server wrk:wrk; do
  command -v "${pair%%:*}" >/dev/null 2>&1 || need_apt+=("${pair##*:}")
done
for lib in libportaudio2; do
  dpkg -s "$lib" >/dev/null 2>&1 || need_apt+=("$lib")
done
if [ ${#need_apt[@]} -gt 0 ]; then
  if [ "$(id -u)" -eq 0 ]; then
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  else
    sudo apt-get update -qq
    sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need_apt[@]}" >/dev/null
  fi
fi

# axe-core (npm, MPL-2.0) for the dashboard's accessibility test only; the page never loads it.
AXE_VERSION=4.11.0
if [ ! -f .vendor/npm/node_modules/axe-core/axe.min.js ] \
  || ! grep -q "\"version\": \"$AXE_VERSION\"" .vendor/npm/node_modules/axe-core/package.json; then
  npm install --no-save --no-package-lock --no-audit --no-fund --silent --prefix .vendor/npm "axe-core@$AXE_VERSION"
fi

# The dashboard's map, offline (us-atlas, topojson-client, d3-geo): see the script.
scripts/vendor-map.sh

command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
# The lock file pins every Python dependency; uv uses the system CPython (>= 3.11).
uv sync --frozen --all-packages -q
