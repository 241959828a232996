#!/usr/bin/env bash
# Installs slmdeploy into ./.venv with every optional part, plus the system packages the
# tests use (OpenSSH server, CMake, a C++ compiler). Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# torch first and pinned: 2.13.0 is the CPU build; an unpinned resolve would pull a CUDA build.
.venv/bin/python -m pip install --quiet torch==2.13.0
.venv/bin/python -m pip install --quiet -e '.[all]'

if [ -f scripts/install-system-deps.sh ]; then
  bash scripts/install-system-deps.sh
fi
echo "slmdeploy installed in $(pwd)/.venv ($(.venv/bin/slmdeploy --version))"
