#!/usr/bin/env bash
# Create .venv and install demoforge with its test extras; fast when nothing changed.
# Everything the project needs is installed from here (PyPI through uv; Debian packages via apt-get
# when a later feature needs them), so a fresh machine needs nothing by hand.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3.11}
command -v "$PYTHON" >/dev/null 2>&1 || PYTHON=python3
"$PYTHON" -c 'import sys; sys.exit(0 if sys.version_info[:2] >= (3, 11) else 1)' \
  || { echo "demoforge needs Python >= 3.11 (found $("$PYTHON" --version 2>&1))" >&2; exit 1; }

# MuJoCo renders headless through Mesa's EGL; Debian images usually have it, a bare one may not.
if ! ldconfig -p 2>/dev/null | grep -q 'libEGL.so.1'; then
  echo "[bootstrap] installing Mesa EGL for headless MuJoCo rendering (apt-get)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq libegl1 libgl1 libgles2 >/dev/null
fi

[ -x .venv/bin/python ] || "$PYTHON" -m venv .venv
[ -x .venv/bin/uv ] || .venv/bin/python -m pip install --quiet --disable-pip-version-check uv

# Reinstall only when the project's dependency list changed.
stamp=.venv/.demoforge-installed
want=$(sha256sum pyproject.toml | cut -d' ' -f1)
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "[bootstrap] installing demoforge and its dependencies into .venv" >&2
  .venv/bin/uv pip install --quiet --python .venv/bin/python -e '.[dev]'
  echo "$want" > "$stamp"
fi
