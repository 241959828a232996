"""Reports at lab scale: 10,000 runs in a study's results.duckdb.

    python benchmarks/report_scale.py              # 10,000 runs
    python benchmarks/report_scale.py --runs 2000

The database is built the way a study fills it: a few real run directories (synthetic,
protocol-true traces: ``analysis.synthetic``) go through ``records.record`` (trace checks,
per-run samples and bootstrap CIs, validity), and their records are replicated into 10,000
runs over 4 models x 3 quantisations x 5 phones x 2 thread counts, each with its own
per-run speed factor (samples and the statistics derived from them scaled alike), a few
percent throttled or too short. The runs table is written with the store's own schema
rules (``store._append``). Then, best of 3 where cheap:

1. ``load_runs(db)``: DuckDB -> DataFrame, validity recomputed (goal with 2: < 2 s);
2. ``summarize_rows``: rows, pooled samples, exact bootstrap CIs (and the worst case: every
   run a row of its own);
3. ``slmdeploy report DB --json > /dev/null`` (a new process: imports included);
4. ``slmdeploy report DB > /dev/null`` (text: grouped by row above 50 runs).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOAL_INGEST_S = 2.0
MODELS = ["llama-tiny", "smollm2-135m", "qwen2.5-0.5b", "gemma-2b"]
QUANTS = ["fp32", "8da4w", "q4_0"]
PHONES = [("adb:R58N%05d" % i, model) for i, model in enumerate(["Pixel 8", "Pixel 7", "Galaxy S23", "Galaxy A54",
                                                                   "OnePlus 11"])]
THREADS = [2, 4]


def templates(tmp: Path) -> list[dict]:
    """Real records of a few run directories: clean, throttled, too short."""
    from slmdeploy.analysis.records import record
    from slmdeploy.analysis.synthetic import write_run

    cool = {"cpu_khz": {"cpu0": 2_000_000}, "cpu_max_khz": {"cpu0": 2_000_000}, "thermal_mc": {"cpu": 40_000}}
    capped = {"cpu_khz": {"cpu0": 1_600_000}, "cpu_max_khz": {"cpu0": 1_600_000}, "thermal_mc": {"cpu": 47_000}}
    rows = [record(write_run(tmp, f"clean{i}", jitter=0.01 * (i + 1), telemetry=[cool, cool])) for i in range(8)]
    rows.append(record(write_run(tmp, "throttled", telemetry=[cool, capped])))
    rows.append(record(write_run(tmp, "short", runs=2)))
    return rows


def build(db: Path, n: int, tmp: Path) -> None:
    import numpy as np
    import pandas as pd

    from slmdeploy.analysis.samples import METRICS
    from slmdeploy.analysis.store import _append, _connect

    base = templates(tmp)
    weights = np.array([0.12] * 8 + [0.02, 0.02])
    rng = np.random.default_rng(0)
    picks = rng.choice(len(base), size=n, p=weights / weights.sum())
    factor = rng.lognormal(0.0, 0.05, size=n)
    rows = []
    for i in range(n):
        row = dict(base[picks[i]])
        model, quant = MODELS[i % len(MODELS)], QUANTS[(i // len(MODELS)) % len(QUANTS)]
        device, device_model = PHONES[(i // 12) % len(PHONES)]
        threads = THREADS[(i // 60) % len(THREADS)]
        f = float(factor[i]) * (1 + MODELS.index(model)) ** -0.8 * (1.6 if quant != "fp32" else 1.0)
        samples = json.loads(row["samples"])
        for name, values in samples.items():
            scale = f if METRICS[name].higher_is_better else 1 / f
            samples[name] = [round(v * scale, 4) for v in values]
            for stat in ("median", "ci_lo", "ci_hi"):
                if row.get(f"{name}_{stat}") is not None:
                    row[f"{name}_{stat}"] *= scale
        row.update(run_id=f"20261201-{i:05d}-{model}-{quant}", started_at=f"2026-12-01T{i // 3600 % 24:02d}:"
                   f"{i // 60 % 60:02d}:{i % 60:02d}", model=model, quant=quant, device=device,
                   target=f"android-xnnpack-{quant}",  # a target implies its quantization (rows.row_key)
                   device_model=device_model, threads=threads, samples=json.dumps(samples, separators=(",", ":")),
                   run_dir=f"/lab/study/runs/{i:05d}")
        rows.append(row)
    with _connect(db) as con:
        _append(con, "runs", pd.DataFrame(rows))


def best_of(fn, repeat: int = 3) -> tuple[float, object]:
    best, result = float("inf"), None
    for _ in range(repeat):
        start = time.perf_counter()
        result = fn()
        best = min(best, time.perf_counter() - start)
    return best, result


def cli_seconds(*args: str) -> float:
    env = {**os.environ, "PYTHONPATH": str(REPO)}
    start = time.perf_counter()
    with open(os.devnull, "w") as null:
        subprocess.run([sys.executable, "-m", "slmdeploy", "report", *args], stdout=null, check=True, env=env)
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=10_000)
    args = parser.parse_args()
    from slmdeploy.analysis import load_runs
    from slmdeploy.analysis.summary import summarize_rows

    with tempfile.TemporaryDirectory() as tmp_name:
        tmp = Path(tmp_name)
        db = tmp / "results.duckdb"
        start = time.perf_counter()
        build(db, args.runs, tmp / "templates")
        print(f"built {args.runs} runs in {db.name} ({db.stat().st_size / 1e6:.1f} MB) in "
              f"{time.perf_counter() - start:.1f} s")
        load_s, frame = best_of(lambda: load_runs(db))
        rows_s, rows = best_of(lambda: summarize_rows(frame))
        print(f"load_runs:        {load_s:6.3f} s  ({len(frame)} runs, {int((~frame.valid).sum())} invalid)")
        print(f"summarize_rows:   {rows_s:6.3f} s  ({len(rows)} rows, "
              f"{int(rows.decode_tps_n.sum())} pooled decode samples)")
        alone_s, alone = best_of(lambda: summarize_rows(frame.assign(device=frame.run_id)))
        print(f"  worst case:     {alone_s:6.3f} s  ({len(alone)} rows of one run each)")
        total = load_s + rows_s
        print(f"ingest+summarise: {total:6.3f} s  (goal < {GOAL_INGEST_S:.0f} s: {total / GOAL_INGEST_S:.2f} of it)")
        with contextlib.suppress(subprocess.CalledProcessError):
            print(f"report --json:    {cli_seconds(str(db), '--json'):6.3f} s  (new process, to /dev/null)")
            print(f"report (text):    {cli_seconds(str(db)):6.3f} s  (new process, to /dev/null; by row)")
            print(f"process start:    {cli_seconds('--help'):6.3f} s  (report --help: imports only)")


if __name__ == "__main__":
    main()
