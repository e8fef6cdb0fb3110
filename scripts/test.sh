#!/usr/bin/env bash
# Run the whole test suite. The real lerobot 0.6.1 (built once into a cached venv by
# ../shared/tools/lerobot-oracle/setup.sh) judges our LeRobot exports.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh

# The dashboard's tests drive a real headless Chromium from Debian's packages (never `playwright install`).
if ! command -v chromium >/dev/null 2>&1; then
  echo "[test] installing Debian's chromium for the dashboard's browser tests (apt-get, about 1 min)" >&2
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium >/dev/null
fi

ORACLE_DIR=../shared/tools/lerobot-oracle
if [ -z "${LEROBOT_ORACLE_PYTHON:-}" ]; then
  if [ -x "$ORACLE_DIR/setup.sh" ] || [ -f "$ORACLE_DIR/setup.sh" ]; then
    echo "[test] preparing the lerobot oracle (first time ~80 s, then ~5 s)" >&2
    LEROBOT_ORACLE_PYTHON="$(bash "$ORACLE_DIR/setup.sh")"
    export LEROBOT_ORACLE_PYTHON
  else
    echo "[test] $ORACLE_DIR not found: tests that need the real lerobot will be skipped" >&2
  fi
fi
exec .venv/bin/python -m pytest "$@"
