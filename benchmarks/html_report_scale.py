#!/usr/bin/env python3
"""The HTML report at lab scale: 1,000 runs -> one page, timed, sized (goal < 5 s, < 5 MB).

    python benchmarks/html_report_scale.py [--runs 1000] [--per-run 6] [--keep DIR]

Builds ``--runs`` realistic run directories (``slmdeploy.report.synthetic``: run.json and a
protocol-v1 trace with 1 warm-up + 5 measured pp64+tg32 runs, telemetry, throttling) over
4 devices x 4 models x 3 quantizations, stores them in a results .duckdb as ``bench`` does,
then times, each best of ``--repeats``:

1. the page from the results database (``report results.duckdb --html``): reading the
   table, grouping runs into configurations with bootstrap CIs, the charts, the per-run
   timelines (their traces read from the run directories);
2. the page from the run directories (``report runs/ --html``), which also re-reads every
   trace (ingest; issue 9's ingest benchmark is its own goal).

It prints wall and CPU time (CPU time: what the page costs when the machine is shared), the
file size and their ratio to the goals.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOAL_S, GOAL_MB = 5.0, 5.0


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=1000)
    parser.add_argument("--per-run", type=int, default=6)
    parser.add_argument("--repeats", type=int, default=2)
    parser.add_argument("--keep", type=Path, help="build the runs here and keep them (default: a temp dir)")
    args = parser.parse_args()

    from slmdeploy.analysis.store import store_runs
    from slmdeploy.report import html_report
    from slmdeploy.report.synthetic import write_runs

    with tempfile.TemporaryDirectory() as tmp:
        root = args.keep or Path(tmp)
        runs_dir = root / "runs"
        t = time.perf_counter()
        dirs = write_runs(runs_dir, args.runs)
        print(f"built {len(dirs)} run directories in {time.perf_counter() - t:.1f} s")
        db = root / "results.duckdb"
        t = time.perf_counter()
        store_runs(dirs, db)
        print(f"stored them in {db.name} in {time.perf_counter() - t:.1f} s")

        for label, source in (("from results.duckdb", db), ("from run directories", runs_dir)):
            best, cpu, report = float("inf"), float("inf"), None
            for _ in range(args.repeats):
                t, c = time.perf_counter(), time.process_time()
                report = html_report(source, root / "report.html", per_run=args.per_run)
                best, cpu = min(best, time.perf_counter() - t), min(cpu, time.process_time() - c)
            mb = report.bytes / 1e6
            print(f"{label:22s} wall {best:6.2f} s ({best / GOAL_S:.2f} x goal), CPU {cpu:6.2f} s "
                  f"({cpu / GOAL_S:.2f} x goal)  {mb:5.2f} MB ({mb / GOAL_MB:.2f} x goal)  "
                  f"{report.runs} runs, {report.rows} rows, {len(report.charts)} charts")
        print(report.per_run_note)


if __name__ == "__main__":
    main()
