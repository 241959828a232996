"""Analyse a study from Python: rows with confidence intervals, a fit, and a figure.

    python examples/analysis.py studies/lab            # a study dir, a folder of runs or a results.duckdb
    python examples/analysis.py studies/lab --figure decode.png

Prints each configuration's decode speed (median and 95% CI over its valid measured runs),
how decode speed scales with model bytes per quantization (a log-log fit: on a memory-bound
phone the slope is close to -1), and draws decode tok/s against model size with CI whiskers.
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np

from slmdeploy.analysis import load_runs, summarize_rows


def scaling_fits(rows) -> dict[str, tuple[float, float]]:
    """quant -> (slope, R²) of log(decode tok/s) against log(model bytes), for quants with ≥ 3 sizes."""
    fits = {}
    for quant, group in rows.dropna(subset=["decode_tps_median", "model_size"]).groupby("quant"):
        if group["model_size"].nunique() < 3:
            continue
        x, y = np.log(group["model_size"].astype(float)), np.log(group["decode_tps_median"].astype(float))
        slope, intercept = np.polyfit(x, y, 1)
        residual = y - (slope * x + intercept)
        fits[str(quant)] = (float(slope), float(1 - residual.var() / y.var()))
    return fits


def figure(rows, path: Path) -> None:
    from matplotlib.figure import Figure

    fig = Figure(figsize=(7, 4.5))
    ax = fig.add_subplot()
    for quant, group in rows.dropna(subset=["decode_tps_median", "model_size"]).groupby("quant"):
        mib = group["model_size"].astype(float) / 2**20
        med = group["decode_tps_median"].astype(float)
        err = np.vstack([med - group["decode_tps_ci_lo"].fillna(med), group["decode_tps_ci_hi"].fillna(med) - med])
        ax.errorbar(mib, med, yerr=err, fmt="o", capsize=3, label=str(quant))
    ax.set(xscale="log", yscale="log", xlabel="model size (MiB)", ylabel="decode tok/s (median, 95% CI)")
    ax.legend(title="quantization")
    fig.savefig(path, bbox_inches="tight")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("path", type=Path)
    parser.add_argument("--figure", type=Path, help="write decode tok/s vs model size here (PNG, SVG, PDF)")
    args = parser.parse_args(argv)

    runs = load_runs(args.path)
    rows = summarize_rows(runs)  # valid runs only: throttled, too short or damaged runs are left out
    sizes = runs.groupby("model")["model_size"].first() if "model_size" in runs else None
    if sizes is not None and "model_size" not in rows:
        rows["model_size"] = rows["model"].map(sizes)
    print(f"{len(runs)} runs, {int(runs['valid'].sum())} valid, in {len(rows)} rows")
    for r in rows.sort_values("decode_tps_median", ascending=False).head(20).to_dict("records"):
        print(f"  {r['model']:>16} {r['quant']:>6} {str(r.get('device_model')):>14}  decode "
              f"{r['decode_tps_median']:8.1f} tok/s [{r['decode_tps_ci_lo']:.1f}, {r['decode_tps_ci_hi']:.1f}]"
              f"  n={r['decode_tps_n']}")
    for quant, (slope, r2) in scaling_fits(rows).items():
        print(f"decode tok/s ∝ bytes^{slope:.2f} for {quant} (R² {r2:.2f})")
    if args.figure:
        figure(rows, args.figure)
        print(f"figure: {args.figure}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
