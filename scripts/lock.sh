#!/usr/bin/env bash
# Regenerates scripts/requirements.lock from pyproject.toml with uv's resolver (pip's backtracks for
# hours on this graph). torch stays the CPU build: its CUDA-only dependencies are dropped from the lock.
set -euo pipefail
cd "$(dirname "$0")/.."
uvx() { if command -v uv >/dev/null; then uv "$@"; else python3 -m uv "$@"; fi; }
{
  echo "# Every package slmdeploy[all] installs, pinned: pip installs this with --no-deps (no resolver, so no"
  echo "# backtracking). Regenerate after changing pyproject.toml's dependencies with scripts/lock.sh."
  uvx pip compile pyproject.toml --extra all --python-version 3.11 --python-platform x86_64-manylinux_2_28 \
    --override scripts/lock-overrides.txt --no-header --no-annotate --quiet | grep -v -E '^(nvidia-|triton==|cuda-)'
} > scripts/requirements.lock.new
mv scripts/requirements.lock.new scripts/requirements.lock
echo "wrote scripts/requirements.lock ($(grep -c '==' scripts/requirements.lock) pins)"
