"""`report --survey` (report/survey.py): the survey's four tables and figures from synthetic runs, and a real bench."""

import json

import pytest
from click.testing import CliRunner

from slmdeploy.analysis import load_runs
from slmdeploy.analysis.synthetic import trace_events, write_run
from slmdeploy.cli.main import cli
from slmdeploy.report.survey import survey_tables

MIB = 1 << 20
GEN = 6
# model: (params, vocab, layers, heads, kv_heads, head_dim, fp32 first-step ns)
MODELS = {"mha-small": (5_000_000, 512, 2, 4, 4, 16, 1_000_000),
          "gqa-large": (20_000_000, 4096, 4, 8, 2, 32, 4_000_000),
          "mqa-mid": (10_000_000, 32000, 2, 4, 1, 16, 2_000_000)}
QUANTS = {"fp32": 1.0, "8da4w": 0.5}  # step time factor


def _events(first_ns: int):
    """Decode step i takes first_ns x (1 + i / 10): the step grows with the token index."""
    events = trace_events(runs=3, warmup=1, prompt=50, gen=GEN, jitter=0.0)
    for e in events:
        if e.get("phase") == "decode":
            e["step_ns"] = [int(first_ns * (1 + i / 10)) for i in range(GEN)]
            e["ns"] = sum(e["step_ns"])
        if e["type"] == "load":
            e["rss_before_kib"] = 50_000
    return events


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    root = tmp_path_factory.mktemp("survey")
    for model, (params, vocab, layers, heads, kv_heads, head_dim, first_ns) in MODELS.items():
        for quant, factor in QUANTS.items():
            run_dir = write_run(root, f"{model}-{quant}", _events(int(first_ns * factor)),
                                meta={"model": model, "quant": quant, "params": params, "model_size": 8 * MIB})
            arch = {"layers": layers, "heads": heads, "kv_heads": kv_heads, "head_dim": head_dim, "vocab_size": vocab}
            llm = {"convention": "slmdeploy.llm/1", "max_seq_len": 128, "vocab_size": vocab, "kv_cache": "internal"}
            (run_dir / "manifest.json").write_text(json.dumps({"model": {"architecture": arch}, "llm": llm}))
    return root


def test_tables_hold_hand_computed_numbers(study):
    tables = survey_tables(load_runs([study]))
    lat = tables["latency"].set_index(["model", "quant"])
    # decode ms/token = the mean step: first x (1 + mean(i/10) for i < 6) = first x 1.25
    assert lat.loc[("gqa-large", "fp32"), "decode_ms_per_token"] == pytest.approx(4.0 * 1.25)
    assert lat.loc[("mha-small", "8da4w"), "decode_ms_per_token"] == pytest.approx(0.5 * 1.25)
    assert lat.loc[("mqa-mid", "fp32"), "params"] == 10_000_000
    assert list(tables["memory"]["vocab_size"]) == [512, 512, 4096, 4096, 32000, 32000]  # ordered by vocabulary
    mem = tables["memory"].set_index(["model", "quant"])
    # gqa-large: 2 x 4 layers x 2 kv heads x 32 x 4 B x 128 positions = 262144 B = 0.25 MiB
    assert mem.loc[("gqa-large", "fp32"), "kv_mib"] == pytest.approx(0.25)
    assert mem.loc[("gqa-large", "fp32"), "other_mib"] == pytest.approx(121_003 / 1024 - 8 - 0.25)
    kv = tables["kv"]
    assert list(kv["attention"]) == ["MHA", "GQA", "MQA"] and list(kv["model"]) == ["mha-small", "gqa-large", "mqa-mid"]
    # MHA 4/4 heads vs MQA 4/1 at the same layers and head_dim: 4x the cache
    by_model = kv.set_index("model")
    assert by_model.loc["mha-small", "kv_mib"] == pytest.approx(4 * by_model.loc["mqa-mid", "kv_mib"])
    assert by_model.loc["mha-small", "kv_kib_per_token"] == pytest.approx(2 * 2 * 4 * 16 * 4 / 1024)
    tok = tables["tokens"]
    one = tok[(tok["model"] == "mqa-mid") & (tok["quant"] == "fp32")]
    assert list(one["token"]) == list(range(GEN)) and set(one["samples"]) == {3}  # warm-up left out
    assert list(one["step_ms"]) == pytest.approx([2.0 * (1 + i / 10) for i in range(GEN)])


def test_cli_text_json_and_html(study, tmp_path):
    text = CliRunner().invoke(cli, ["report", str(study), "--survey", "--no-compare"])
    assert text.exit_code == 0, text.output
    for title in ("latency vs parameters", "peak memory split", "per token index", "KV cache by attention type",
                  "memory: peak RSS = weights + KV cache + other"):
        assert title in text.output
    out = CliRunner().invoke(cli, ["report", str(study), "--survey", "--json"])
    assert out.exit_code == 0, out.output
    data = json.loads(out.output)
    assert set(data["survey"]) == {"latency", "memory", "tokens", "kv"}
    assert len(data["survey"]["tokens"]) == len(MODELS) * len(QUANTS) * GEN
    assert all(r["mem_kv_mib"] is not None and r["arch_attention"] for r in data["runs"])
    page = tmp_path / "survey.html"
    res = CliRunner().invoke(cli, ["report", str(study), "--survey", "--html", str(page), "--json"])
    assert res.exit_code == 0, res.output
    charts = json.loads(res.output)["html"]["charts"]
    assert charts[:4] == ["survey-latency", "survey-memory", "survey-tokens", "survey-kv"]
    html = page.read_text()
    for chart_id in charts[:4]:
        figure = html[html.index(f"id='{chart_id}'"):]
        figure = figure[:figure.index("</figure>")]
        assert "id=\"data-" in figure  # something was drawn


def test_a_real_bench_is_split(tiny_fp32, tmp_path):
    from slmdeploy.bench import Workload, bench

    result = bench(tiny_fp32, "local", workload=Workload(prompt_tokens=50, gen_tokens=50, warmup=1, runs=2),
                   runs_dir=tmp_path / "runs", progress=False)
    row = load_runs([result.run_dir]).iloc[0].to_dict()
    size = json.loads((result.run_dir / "run.json").read_text())["model_size"]
    assert row["mem_weights_mib"] == pytest.approx(size / MIB)
    # llama-tiny: 2 x 4 layers x 2 kv heads x 32 head dim x 4 B (fp32) x 256 positions (host-xnnpack) = 0.5 MiB
    assert row["mem_kv_mib"] == pytest.approx(0.5) and row["mem_kv_positions"] == 256
    assert row["mem_other_mib"] == pytest.approx(row["mem_peak_mib"] - row["mem_weights_mib"] - 0.5)
    assert row["mem_before_load_mib"] > 0 and row["mem_work_mib"] >= 0
    assert row["arch_attention"] == "GQA" and row["arch_vocab_size"] == 4096
    # the cache the program holds (its mutated buffers, manifest llm.cache_*) is the same 0.5 MiB, 2 heads of 8
    assert row["arch_cache_heads"] == 2 and row["arch_cache_mib"] == pytest.approx(0.5)
    tables = survey_tables(load_runs([result.run_dir]))
    assert len(tables["tokens"]) == 50 and tables["tokens"]["step_ms"].gt(0).all()
