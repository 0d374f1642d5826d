#!/usr/bin/env bash
# Installs everything EAS Station needs on a fresh Debian machine (idempotent, quick when done).
# Debian tools: SAME reference decoder/encoder (multimon-ng, minimodem), audio tools (sox,
# ffmpeg), text-to-speech for EAS narration (espeak-ng; flite, the second engine the tests
# use), Chromium for the dashboard's browser test (driven by Playwright's Python API),
# icecast2 (the stream output's real server in the tests) and PortAudio (libportaudio2, the
# sound-device output through sounddevice).
set -euo pipefail
cd "$(dirname "$0")/.."

need_apt=()
for pair in multimon-ng:multimon-ng minimodem:minimodem sox:sox ffmpeg:ffmpeg espeak-ng:espeak-ng flite:flite chromium:chromium icecast2:icecast2; do
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

command -v uv >/dev/null 2>&1 || python3 -m pip install -q uv
# The lock file pins every Python dependency; uv uses the system CPython (>= 3.11).
uv sync --frozen --all-packages -q
