#!/usr/bin/env bash
# Installs slmdeploy into ./.venv with every optional part, plus the system packages the
# tests use (OpenSSH server, CMake, a C++ compiler), then fetches and builds the pinned
# llama.cpp for this host (once per machine). Idempotent: safe to run again.
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
# Everything from the lock, without pip's resolver (it backtracks for hours on this graph). torch 2.13.0
# there is the CPU build on this disk. llama-cpp-python's sdist would compile its own libllama (and mtmd):
# slmdeploy supplies libllama (built below from the same pinned source), so its bindings build none.
CMAKE_ARGS="-DLLAMA_BUILD=OFF -DLLAVA_BUILD=OFF" .venv/bin/python -m pip install --quiet --no-deps -r scripts/requirements.lock
.venv/bin/python -m pip install --quiet --no-deps -e .
.venv/bin/python -m pip check

if [ -f scripts/install-system-deps.sh ]; then
  bash scripts/install-system-deps.sh
fi
# The pinned llama.cpp (llama-cpp-python 0.3.36's sdist from PyPI, sha256-checked), built for this CPU into
# ~/.cache/slmdeploy/toolchains ($SLMDEPLOY_TOOLCHAINS): minutes the first time, a no-op afterwards.
nice -n 10 .venv/bin/python -c "from slmdeploy import llamacpp; print('llama.cpp:', llamacpp.toolchain().build_dir)"
echo "slmdeploy installed in $(pwd)/.venv ($(.venv/bin/slmdeploy --version))"
