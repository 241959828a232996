#!/usr/bin/env bash
# The regression gate, short, on this host: measure a study, compare it with a baseline.
#
#   examples/ci/gate.sh                       # baseline = this measurement itself (a smoke test: exit 0)
#   BASELINE=baseline/study examples/ci/gate.sh   # a previous study dir, run folder or results.duckdb
#
#   DEVICE=adb:SERIAL examples/ci/gate.sh     # the same study on a phone (or the emulated one)
#
# Environment: OUT (output folder, default gate-out), STUDY (study file, default
# examples/ci/gate-smoke.toml), DEVICE (run the study there instead of its own devices),
# BASELINE, THRESHOLD (default 5%), SLMDEPLOY (the command, default `slmdeploy`; e.g.
# "python -m slmdeploy").
# Exit status is compare's: 0 no regression, 1 regression, 2 usage error; a study whose
# jobs failed stops the script first with the study's status (3).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
OUT=${OUT:-gate-out}
STUDY=${STUDY:-$HERE/gate-smoke.toml}
THRESHOLD=${THRESHOLD:-5%}
read -r -a SLM <<< "${SLMDEPLOY:-slmdeploy}"

rm -rf "$OUT/candidate"
mkdir -p "$OUT"
DEVICES=()
if [ -n "${DEVICE:-}" ]; then DEVICES=(--device "$DEVICE"); fi  # instead of the study's own devices
"${SLM[@]}" study run "$STUDY" --dir "$OUT/candidate" "${DEVICES[@]}"
BASELINE=${BASELINE:-$OUT/candidate}

status=0
"${SLM[@]}" compare "$BASELINE" "$OUT/candidate" --threshold "$THRESHOLD" \
    --junit "$OUT/gate.xml" --markdown "$OUT/gate.md" || status=$?
if "${SLM[@]}" report --help | grep -q -- '--html'; then  # the HTML report (slmdeploy report --html)
    "${SLM[@]}" report "$OUT/candidate" --html "$OUT/report.html" >/dev/null || echo "warning: no HTML report" >&2
fi
if [ -n "${GITHUB_STEP_SUMMARY:-}" ] && [ -f "$OUT/gate.md" ]; then
    cat "$OUT/gate.md" >> "$GITHUB_STEP_SUMMARY"
fi
echo "gate: exit $status; JUnit $OUT/gate.xml, summary $OUT/gate.md"
exit "$status"
