"""The SLM survey's relative claims (arXiv 2409.15790) as checks on measured runs.

Each check reads a study's runs (one configuration = model x quantization x device,
``analysis.configurations``) and says whether the claim *holds*, *does not hold*, or was
*not measured* (the runs lack what it needs, and the summary says what to add):

- ``decode-bytes``: decode time per token grows with the model's bytes (least-squares fit of
  decode ms/token on the model file's MiB over >= 6 sizes on one device; holds when the slope is
  positive with p < 0.05 and R^2 >= 0.8).
- ``gqa-kv``: grouped-query attention shrinks the KV cache by heads / kv_heads. The cache is the
  one the artifact holds (the exported program's cache tensors, ``arch_cache_*``), compared
  with the multi-head cache the same layers would hold; holds when every model's shrink is
  heads / kv_heads within 1% and at least one GQA or MQA model was measured.
- ``int4-size``: 4-bit weights shrink the program >= 3x against fp32 (same model and runtime,
  the model files' sizes); holds when every such pair does.
- ``prefill-architecture``: at equal size (parameters within 10%), prefill speed depends on the
  architecture; holds when some pair of different models on one device and quantization
  differs by >= 10% with the bootstrap CI of the change excluding 0 and Mann-Whitney p < 0.05.

Thresholds are module constants, so a report states what it checked. docs/survey.md.
"""

from __future__ import annotations

import itertools
import json
from dataclasses import asdict, dataclass, field
from typing import TYPE_CHECKING, Any

from slmdeploy.analysis.configurations import Key, configurations, first_of, is_number, median_of
from slmdeploy.analysis.stats import change

if TYPE_CHECKING:
    import pandas as pd

HOLDS, FAILS, UNMEASURED = "holds", "does not hold", "not measured"

MIN_SIZES = 6  # decode-bytes: distinct model sizes per device
MIN_R2 = 0.8
MAX_P = 0.05
KV_TOLERANCE = 0.01  # gqa-kv: |measured shrink / (heads / kv_heads) - 1|
MIN_INT4_SHRINK = 3.0
EQUAL_SIZE = 0.10  # prefill-architecture: parameters within 10% of each other
MIN_PREFILL_DIFFERENCE = 10.0  # percent
FOUR_BIT = frozenset({"8da4w", "4w", "q4_0", "q4_1", "q4_k_m", "q4_k_s", "int4"})


@dataclass(frozen=True)
class ClaimCheck:
    """One claim, its verdict on these runs, and the numbers behind it (``evidence``: a row per point or pair)."""

    id: str
    claim: str
    verdict: str
    summary: str
    evidence: list[dict[str, Any]] = field(default_factory=list)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def _by_device(configs: dict[Key, list[dict[str, Any]]]) -> dict[str, dict[Key, list[dict[str, Any]]]]:
    out: dict[str, dict[Key, list[dict[str, Any]]]] = {}
    for key, runs in configs.items():
        out.setdefault(key[2], {})[key] = runs
    return out


def decode_vs_bytes(configs: dict[Key, list[dict[str, Any]]]) -> ClaimCheck:
    from scipy.stats import linregress

    claim = "decode time per token grows with the model's size in bytes"
    points, fits, most_sizes = [], [], 0
    for device, group in _by_device(configs).items():
        pts = []
        for (model, quant, _), runs in group.items():
            size, tps = median_of(runs, "model_size"), median_of(runs, "decode_tps")
            if size and tps:
                pts.append({"device": device, "model": model, "quant": quant, "model_mib": size / 2**20,
                            "decode_ms_per_token": 1000 / tps})
        points += pts
        sizes = len({round(p["model_mib"], 1) for p in pts})
        most_sizes = max(most_sizes, sizes)
        if sizes < MIN_SIZES:
            continue
        fit = linregress([p["model_mib"] for p in pts], [p["decode_ms_per_token"] for p in pts])
        r2 = fit.rvalue ** 2
        fits.append({"device": device, "sizes": len(pts), "slope_ms_per_mib": fit.slope,
                     "intercept_ms": fit.intercept, "r2": r2, "p": fit.pvalue,
                     "holds": bool(fit.slope > 0 and fit.pvalue < MAX_P and r2 >= MIN_R2)})
    if not fits:
        return ClaimCheck("decode-bytes", claim, UNMEASURED,
                          f"needs >= {MIN_SIZES} model sizes with decode figures on one device "
                          f"(largest here: {most_sizes})", points)
    verdict = HOLDS if all(f["holds"] for f in fits) else FAILS
    text = "; ".join(f"{f['device']}: {f['slope_ms_per_mib'] * 1000:.3g} ms per GB, R^2 {f['r2']:.3f}, "
                     f"p {f['p']:.2g} over {f['sizes']} configurations" for f in fits)
    for p in points:  # the fit each point belongs to, for the figure
        p["fit"] = next((f for f in fits if f["device"] == p["device"]), None)
    return ClaimCheck("decode-bytes", claim, verdict, f"{text} (holds at slope > 0, p < {MAX_P}, R^2 >= {MIN_R2})",
                      points)


def kv_shrink(configs: dict[Key, list[dict[str, Any]]]) -> ClaimCheck:
    claim = "grouped-query attention shrinks the KV cache by heads / kv_heads"
    rows, seen = [], set()
    for (model, _quant, _device), runs in configs.items():
        heads, kv_heads = first_of(runs, "arch_heads"), first_of(runs, "arch_kv_heads")
        cache_heads, cache_mib = first_of(runs, "arch_cache_heads"), first_of(runs, "arch_cache_mib")
        if model in seen or not (heads and kv_heads and cache_heads and cache_mib):
            continue
        seen.add(model)
        shrink = heads / cache_heads  # the program's cache against one with a key/value head per query head
        mha_mib, expected = cache_mib * shrink, heads / kv_heads
        rows.append({"model": model, "attention": first_of(runs, "arch_attention"), "heads": heads,
                     "kv_heads": kv_heads, "cache_heads": cache_heads, "cache_mib": cache_mib, "mha_mib": mha_mib,
                     "shrink": shrink, "expected": expected,
                     "holds": abs(shrink / expected - 1) <= KV_TOLERANCE})
    grouped = [r for r in rows if r["kv_heads"] < r["heads"]]
    if not grouped:
        return ClaimCheck("gqa-kv", claim, UNMEASURED,
                          "needs a GQA or MQA model whose artifact states its cache tensors (ExecuTorch, Core ML and "
                          f"TFLite exports do; models with it here: {len(rows)}, none grouped)", rows)
    verdict = HOLDS if all(r["holds"] for r in rows) else FAILS
    text = "; ".join(f"{r['model']} {r['heads']}/{r['kv_heads']}: {r['cache_mib']:.3g} MiB vs {r['mha_mib']:.3g} "
                     f"MiB multi-head ({r['shrink']:.2f}x, expected {r['expected']:.2f}x)" for r in grouped)
    return ClaimCheck("gqa-kv", claim, verdict, text, rows)


def int4_size(configs: dict[Key, list[dict[str, Any]]]) -> ClaimCheck:
    claim = f"4-bit weights shrink the program >= {MIN_INT4_SHRINK:g}x against fp32"
    sizes: dict[tuple[str, str], dict[str, tuple[str, float]]] = {}  # (model, runtime) -> fp32/4-bit -> (quant, bytes)
    for (model, quant, _device), runs in configs.items():
        size, runtime = median_of(runs, "model_size"), str(first_of(runs, "runtime") or "?")
        kind = "fp32" if quant == "fp32" else "4-bit" if quant in FOUR_BIT else None
        if size and kind:
            sizes.setdefault((model, runtime), {})[kind] = (quant, size)
    rows = [{"model": model, "runtime": runtime, "quant": pair["4-bit"][0], "fp32_mib": pair["fp32"][1] / 2**20,
             "int4_mib": pair["4-bit"][1] / 2**20, "shrink": pair["fp32"][1] / pair["4-bit"][1],
             "holds": pair["fp32"][1] / pair["4-bit"][1] >= MIN_INT4_SHRINK}
            for (model, runtime), pair in sizes.items() if len(pair) == 2]
    if not rows:
        return ClaimCheck("int4-size", claim, UNMEASURED,
                          "needs a model measured both fp32 and 4-bit on one runtime "
                          "(e.g. host-xnnpack and host-xnnpack-8da4w, or gguf-f32 and gguf-q4_0)")
    verdict = HOLDS if all(r["holds"] for r in rows) else FAILS
    text = "; ".join(f"{r['model']} {r['runtime']} {r['quant']}: {r['fp32_mib']:.3g} -> {r['int4_mib']:.3g} MiB "
                     f"({r['shrink']:.2f}x)" for r in rows)
    return ClaimCheck("int4-size", claim, verdict, text, rows)


def _prefill_samples(runs: list[dict[str, Any]]) -> list[float]:
    """Per measured iteration prefill tok/s, pooled over the configuration's runs."""
    out: list[float] = []
    for r in runs:
        try:
            out += [v for v in json.loads(r.get("samples") or "{}").get("prefill_tps", []) if is_number(v)]
        except (TypeError, ValueError):
            continue
    return out


def _architecture(runs: list[dict[str, Any]]) -> tuple[Any, ...]:
    return tuple(first_of(runs, c) for c in ("arch_layers", "arch_heads", "arch_kv_heads", "arch_vocab_size"))


def prefill_by_architecture(configs: dict[Key, list[dict[str, Any]]]) -> ClaimCheck:
    claim = "at equal size, prefill speed depends on the architecture"
    rows = []
    for device, group in _by_device(configs).items():
        for (a, ra), (b, rb) in itertools.combinations(sorted(group.items()), 2):
            pa, pb = first_of(ra, "params"), first_of(rb, "params")
            if a[1] != b[1] or a[0] == b[0] or not (is_number(pa) and is_number(pb) and pa and pb):
                continue
            if abs(pa - pb) / max(pa, pb) > EQUAL_SIZE or _architecture(ra) == _architecture(rb):
                continue
            c = change(_prefill_samples(ra), _prefill_samples(rb))
            if c.change_pct is None:
                continue
            differs = abs(c.change_pct) >= MIN_PREFILL_DIFFERENCE and c.significant(MAX_P)
            rows.append({"device": device, "quant": a[1], "model_a": a[0], "model_b": b[0], "params_a": pa,
                         "params_b": pb, "prefill_tps_a": c.baseline.median, "prefill_tps_b": c.candidate.median,
                         "change_pct": c.change_pct, "ci_lo": c.ci_lo_pct, "ci_hi": c.ci_hi_pct, "p": c.p_value,
                         "differs": differs})
    if not rows:
        return ClaimCheck("prefill-architecture", claim, UNMEASURED,
                          f"needs two models of different architecture within {EQUAL_SIZE:.0%} in parameters, "
                          "measured with prefill on one device and quantization")
    hits = [r for r in rows if r["differs"]]
    verdict = HOLDS if hits else FAILS
    shown = hits or rows
    text = "; ".join(f"{r['model_b']} vs {r['model_a']} ({r['quant']}, {r['params_b'] / 1e6:.0f}M vs "
                     f"{r['params_a'] / 1e6:.0f}M): prefill {r['change_pct']:+.0f}% ({_ci(r)})" for r in shown[:4])
    more = f"; {len(shown) - 4} more" if len(shown) > 4 else ""
    return ClaimCheck("prefill-architecture", claim, verdict,
                      f"{len(hits)} of {len(rows)} equal-size pairs differ by >= {MIN_PREFILL_DIFFERENCE:g}%: "
                      f"{text}{more}", rows)


def _ci(row: dict[str, Any]) -> str:
    if row["ci_lo"] is None or row["p"] is None:
        return "too few runs for an interval"
    return f"CI {row['ci_lo']:+.0f}..{row['ci_hi']:+.0f}%, p {row['p']:.2g}"


def survey_claims(frame: "pd.DataFrame") -> list[ClaimCheck]:
    """Every claim's check on these runs, in the survey's order."""
    configs = configurations(frame)
    return [decode_vs_bytes(configs), kv_shrink(configs), int4_size(configs), prefill_by_architecture(configs)]
