#!/usr/bin/env bash
# Install demoforge into .venv and run the main job on built-in sample data.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/bootstrap.sh
exec .venv/bin/demoforge demo "$@"
