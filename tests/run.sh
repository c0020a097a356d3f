#!/bin/sh
# Install what the tests need, when it is missing, then run them: `tests/run.sh [PYTEST ARGS]`.
#
# Needs the project's own set-up first (README, "Set up and run": .venv with brushlink[dev]).
# Adds what only the tests use:
#   - Krita (kritarunner), PyQt5 for its Python, Xvfb and xauth: Debian/Ubuntu packages,
#     installed with apt-get (through sudo when not root);
#   - .venv-blender: Blender 4.2 LTS as a Python module (bpy needs Python 3.11), kept apart
#     from .venv.
# Then runs `.venv/bin/python -m pytest "$@"` from the repository root.
set -eu
cd "$(dirname "$0")/.."
export PIP_DISABLE_PIP_VERSION_CHECK=1

say() { printf 'tests/run.sh: %s\n' "$*" >&2; }

if [ ! -x .venv/bin/python ]; then
  say "no .venv here: run the set-up command of README.md first (\"Set up and run\")."
  exit 2
fi

# --- Debian packages: real Krita for the Krita bridge tests, Xvfb for the one with a window.
PACKAGES="krita python3-pyqt5 xvfb xauth"
missing=""
for package in $PACKAGES; do
  if ! dpkg-query -W -f='${Status}' "$package" 2>/dev/null | grep -q "install ok installed"; then
    missing="$missing $package"
  fi
done
if [ -n "$missing" ]; then
  if ! command -v apt-get >/dev/null 2>&1; then
    say "the tests need Krita (with kritarunner), PyQt5 for Krita's Python, Xvfb and xauth;"
    say "this is not a Debian/Ubuntu system: install them with its package manager"
    say "(Debian names:$missing), then run this again."
    exit 2
  fi
  if [ "$(id -u)" -eq 0 ]; then
    as_root=""
  elif command -v sudo >/dev/null 2>&1; then
    as_root="sudo"
    say "installing$missing with sudo"
  else
    say "the tests need the Debian packages$missing, and installing them needs root:"
    say "  apt-get install -y --no-install-recommends$missing"
    say "run that as root (there is no sudo here), then run this again."
    exit 2
  fi
  # shellcheck disable=SC2086 # the lists are meant to split into words
  $as_root env DEBIAN_FRONTEND=noninteractive apt-get update -q
  # shellcheck disable=SC2086
  $as_root env DEBIAN_FRONTEND=noninteractive \
    apt-get install -y -q --no-install-recommends $missing
fi

# --- Blender 4.2 LTS as a Python module, in its own environment.
if ! .venv-blender/bin/python -c "import importlib.util, sys; sys.exit(importlib.util.find_spec('bpy') is None)" 2>/dev/null; then
  python311=""
  for candidate in python3.11 python3; do
    if command -v "$candidate" >/dev/null 2>&1 &&
      "$candidate" -c "import sys; sys.exit(sys.version_info[:2] != (3, 11))" 2>/dev/null; then
      python311="$candidate"
      break
    fi
  done
  if [ -z "$python311" ]; then
    say "the Blender tests need Python 3.11 (bpy 4.2 is built for it), and none was found:"
    say "install python3.11 (with its venv module), then run this again."
    exit 2
  fi
  say "making .venv-blender (bpy==4.2.23) with $python311"
  rm -rf .venv-blender
  "$python311" -m venv .venv-blender
  .venv-blender/bin/pip install -q bpy==4.2.23 'numpy<2'
fi

exec .venv/bin/python -m pytest "$@"
