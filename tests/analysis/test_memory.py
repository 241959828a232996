"""Memory accounting per run (analysis/memory.py): peak RSS = weights + KV cache + other, hand-computed."""

import json

import pytest

from slmdeploy.analysis.architecture import attention_type
from slmdeploy.analysis.records import record
from slmdeploy.analysis.synthetic import trace_events, write_run

MIB = 1 << 20
ARCH = {"layers": 4, "heads": 8, "kv_heads": 2, "head_dim": 32, "vocab_size": 4096}
LLM = {"convention": "slmdeploy.llm/1", "max_seq_len": 256, "vocab_size": 4096, "kv_cache": "internal"}


def _run(tmp_path, name="r", *, model_size=10 * MIB, manifest=True, before_kib=80_000, arch=ARCH, llm=LLM):
    events = trace_events(runs=5, warmup=1, prompt=16, gen=8)
    load = next(e for e in events if e["type"] == "load")
    if before_kib is not None:
        load["rss_before_kib"] = before_kib
    run_dir = write_run(tmp_path, name, events, meta={"model_size": model_size})
    if manifest:
        (run_dir / "manifest.json").write_text(json.dumps({"model": {"architecture": arch}, "llm": llm}))
    return run_dir


def test_peak_splits_into_weights_kv_and_other(tmp_path):
    row = record(_run(tmp_path))
    # peak: the largest hwm_kib of the synthetic trace, 121_000 + 5 (the last of 6 iterations)
    assert row["mem_peak_mib"] == pytest.approx(121_005 / 1024)
    assert row["mem_weights_mib"] == pytest.approx(10.0)
    # 2 (K and V) x 4 layers x 2 kv heads x 32 head dim x 4 bytes (fp32) x 256 positions = 524288 B
    assert row["mem_kv_mib"] == pytest.approx(0.5)
    assert row["mem_kv_positions"] == 256
    assert row["mem_other_mib"] == pytest.approx(121_005 / 1024 - 10.5)  # 107.669 MiB
    assert row["mem_before_load_mib"] == pytest.approx(78.125)
    assert row["mem_after_load_mib"] == pytest.approx(100_000 / 1024)
    assert row["mem_work_mib"] == pytest.approx(121_005 / 1024 - 10.5 - 78.125)  # 29.544 MiB
    assert "static cache of max_seq_len 256" in row["mem_basis"] and "model file" in row["mem_basis"]
    assert (row["arch_vocab_size"], row["arch_attention"], row["arch_heads"], row["arch_kv_heads"]) == (4096, "GQA", 8, 2)


def test_llama_cpp_context_is_named(tmp_path):
    row = record(_run(tmp_path, llm={**LLM, "kv_cache": "runtime", "convention": "llama.cpp/gguf"}))
    # llama.cpp's cache is float16 by convention: half the fp32 bytes
    assert row["mem_kv_mib"] == pytest.approx(0.25)
    assert "llama.cpp context n_ctx of max_seq_len 256" in row["mem_basis"]


def test_weights_above_peak_give_no_other_and_a_reason(tmp_path):
    row = record(_run(tmp_path, model_size=200 * MIB))  # a mapped file larger than the whole peak RSS
    assert row["mem_weights_mib"] == pytest.approx(200.0) and row["mem_kv_mib"] == pytest.approx(0.5)
    assert row["mem_other_mib"] is None and row["mem_work_mib"] is None
    assert f"exceed peak RSS by {200.5 - 121_005 / 1024:.1f} MiB" in row["mem_basis"]  # 82.3 MiB


def test_without_a_manifest_the_positions_used_are_counted(tmp_path):
    run_dir = _run(tmp_path, manifest=False, before_kib=None)
    meta = json.loads((run_dir / "run.json").read_text())
    meta["kv_cache"] = {"layers": 4, "kv_heads": 2, "head_dim": 32, "dtype": "float32"}
    (run_dir / "run.json").write_text(json.dumps(meta))
    row = record(run_dir)
    assert row["mem_kv_positions"] == 24  # decode starts at 16 and generates 8
    assert row["mem_kv_mib"] == pytest.approx(2048 * 24 / MIB)
    assert "24 positions used" in row["mem_basis"]
    assert row["mem_before_load_mib"] is None and row["mem_work_mib"] is None
    assert row["mem_other_mib"] == pytest.approx(121_005 / 1024 - 10 - 2048 * 24 / MIB)
    assert row["arch_attention"] is None


def test_missing_kv_facts_are_named_not_guessed(tmp_path):
    row = record(_run(tmp_path, arch={"layers": 4, "heads": 8, "head_dim": 32}))
    assert row["mem_kv_mib"] is None and row["mem_other_mib"] is None
    assert "kv: unknown (kv_heads)" in row["mem_basis"]
    assert row["mem_weights_mib"] == pytest.approx(10.0)


def test_attention_types():
    assert [attention_type(8, 8), attention_type(8, 2), attention_type(8, 1), attention_type(None, 2)] == \
        ["MHA", "GQA", "MQA", None]


def test_memory_columns_keep_their_types_in_duckdb(tmp_path):
    """A first run without KV facts must not make the integer columns text in the results database."""
    import duckdb

    from slmdeploy.analysis.store import store_runs

    first = _run(tmp_path / "runs", "a-first", manifest=False)
    second = _run(tmp_path / "runs", "b-second")
    db = tmp_path / "results.duckdb"
    store_runs([first, second], db)
    with duckdb.connect(str(db)) as con:
        rows = con.execute("select run_id, mem_kv_positions, arch_kv_heads, mem_kv_mib from runs order by run_id").fetchall()
        types = dict(con.execute("select column_name, data_type from information_schema.columns "
                                 "where table_name = 'runs'").fetchall())
    assert rows == [("a-first", None, None, None), ("b-second", 256, 2, 0.5)]
    assert types["mem_kv_positions"] == "BIGINT" and types["mem_kv_mib"] == "DOUBLE"


def test_llama_cpp_trace_facts_win(tmp_path):
    """The native llama.cpp harness states its context size, cache type and weight bytes: those are the run's truth."""
    events = trace_events(runs=2, warmup=0, prompt=16, gen=8)
    load = next(e for e in events if e["type"] == "load")
    load["llamacpp"] = {"n_ctx": 128, "type_k": "f32", "type_v": "f32", "model_bytes": 4 * MIB}
    run_dir = write_run(tmp_path, "gguf", events, meta={"model_size": 5 * MIB})
    (run_dir / "manifest.json").write_text(json.dumps({"model": {"architecture": ARCH}, "llm": {
        **LLM, "kv_cache": "runtime", "convention": "llama.cpp/gguf", "cache_dtype": "float16"}}))
    row = record(run_dir)
    assert row["mem_weights_mib"] == pytest.approx(4.0)
    # 2 x 4 x 2 x 32 x 4 B (f32, as the context was made) x 128 positions = 262144 B
    assert row["mem_kv_mib"] == pytest.approx(0.25) and row["mem_kv_positions"] == 128
    assert "llama.cpp context n_ctx 128 (trace)" in row["mem_basis"] and "llama.cpp count" in row["mem_basis"]
