"""One study, one device, three runtimes: ExecuTorch, LiteRT and llama.cpp side by side (issue 11, part 4).

A short version of examples/studies/runtimes.toml on this host: llama-tiny, the int4 scheme
(8da4w) in all three runtimes, the native harness for all, then the study's database read back
and compared the way `slmdeploy report DIR --compare` does.
"""

from __future__ import annotations

import json
from pathlib import Path

from click.testing import CliRunner

REPO = Path(__file__).resolve().parents[2]
TFLITE_SHORT = """description = "tflite-int4 with a 16-token prefill, for a short study"
runtime = "tflite"
platform = "android"
delegates = ["xnnpack"]
quantization = "8da4w"
[options]
prefill_len = 16
group_size = 32
"""
STUDY = """name = "runtimes-short"
models = ["llama-tiny"]
targets = ["host-xnnpack-8da4w", "tflite-int4-short.toml", "gguf-q4_0"]
[devices]
specs = ["local"]
[[workloads]]
prompt = 16
gen = 8
threads = 2
[run]
runs = 2
warmup = 1
harness = "native"
telemetry_ms = 0
"""


def test_the_example_study_is_valid():
    from slmdeploy.export.target import load_target
    from slmdeploy.study import load_study

    study = load_study(REPO / "examples" / "studies" / "runtimes.toml")
    runtimes = {load_target(t).runtime for t in study.targets}
    assert runtimes == {"executorch", "tflite", "llamacpp"} and study.run.harness == "native"


def test_one_study_compares_three_runtimes_on_one_device(tmp_path, gguf_harness, tiny_8da4w, gguf_q4_0):
    """(The session's tiny_8da4w and gguf_q4_0 exports make two of the study's three exports cache hits.)"""
    from slmdeploy.analysis import load_runs
    from slmdeploy.cli.main import cli
    from slmdeploy.study import run_study

    (tmp_path / "tflite-int4-short.toml").write_text(TFLITE_SHORT)
    (tmp_path / "study.toml").write_text(STUDY)
    result = run_study(tmp_path / "study.toml", tmp_path / "study", progress=False)
    assert not result.failed and not result.not_run, (result.failed, result.not_run)

    frame = load_runs(tmp_path / "study").set_index("runtime")
    assert sorted(frame.index) == ["executorch", "llamacpp", "tflite"]
    assert set(frame["status"]) == {"complete"} and set(frame["harness"]) == {"native"}
    assert set(frame["quant"]) == {"8da4w"}  # like for like: q4_0 is ExecuTorch's and LiteRT's 8da4w
    assert (frame["decode_tps"] > 0).all() and (frame["prefill_tps"] > 0).all() and (frame["peak_rss_mib"] > 0).all()
    assert set(frame["prefill_tokens"]) == {16} and set(frame["threads"]) == {2}

    # (runs this short are flagged invalid, under 1 s measured: compared here all the same)
    out = CliRunner().invoke(cli, ["report", str(tmp_path / "study"), "--compare", "--include-invalid", "--json"])
    assert out.exit_code == 0, out.output
    labels = [row["label"] for row in json.loads(out.output)["comparison"]]
    assert len(set(labels)) == 3 and all(any(rt in label for label in labels)
                                         for rt in ("executorch", "tflite", "llamacpp"))
