"""A GGUF benched on the emulated phone over the real adb client: the native harness's llama.cpp backend,
libllama and ggml pushed beside it through the verified deployment, the trace analysed like any other."""

from __future__ import annotations

from slmdeploy.bench import Workload, bench
from slmdeploy.devices.deploy import blob_path
from slmdeploy.export.source import sha256_file
from slmdeploy.harness.trace import read_trace


def test_gguf_on_the_emulated_phone(lab, gguf_q4_0, bundle, tmp_path):
    device = lab.open("adb")
    workload = Workload(prompt_tokens=8, gen_tokens=4, runs=2, warmup=1, threads=2, telemetry_interval_ms=50)
    result = bench(gguf_q4_0, device, workload=workload, harness="auto", runs_dir=tmp_path / "runs", progress=False)

    assert result.status == "complete" and result.meta["harness"] == "native"  # no Python on a phone
    assert result.meta["runtime"] == "llamacpp" and result.meta["quant"] == "8da4w"
    trace = read_trace(result.run_dir / "trace.jsonl")
    assert trace.header["runtime"]["name"] == "llamacpp"
    assert trace.of("load")[0]["llamacpp"]["n_ctx"] == gguf_q4_0.manifest.llm.max_seq_len
    assert result.summary["decode_tps"] > 0 and result.summary["prefill_tps"] > 0
    assert any(e["type"] == "telemetry" and e["thermal_mc"] for e in trace.events)  # the phone's zones
    libs = [p for p in bundle if p.name.startswith(("libllama", "libggml"))]
    assert len(libs) == 4
    for path in libs:  # deployed verified, by content
        sha = sha256_file(path)
        assert device.shell(["sha256sum", blob_path(device, sha)]).stdout.split()[0] == sha
