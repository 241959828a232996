"""ExecuTorch export of a decoder LLM: manifest contract, parity with eager PyTorch, cache."""

import json
import shutil

import pytest
import torch

from slmdeploy.errors import ArtifactError, OutputDirError, UnknownTargetError
from slmdeploy.export import Artifact, cache, export, load_target
from slmdeploy.export.executorch.llm_module import StaticCacheLM
from slmdeploy.export.source import from_zoo, sha256_file


def test_manifest_describes_the_artifact(tiny_fp32):
    m = json.loads((tiny_fp32.path / "manifest.json").read_text())
    assert m["schema"] == "slmdeploy.manifest/1"
    assert m["runtime"] == "executorch" and m["delegates"] == ["xnnpack"]
    assert m["quantization"]["scheme"] == "fp32"
    assert m["model"]["id"] == "llama-tiny" and m["model"]["architecture"]["kv_heads"] == 2
    assert m["model"]["params"] == 4_917_504
    assert m["llm"]["max_seq_len"] == 256 and m["llm"]["convention"] == "slmdeploy.llm/1"
    (method,) = m["methods"]
    assert [i["name"] for i in method["inputs"]] == ["tokens", "input_pos"]
    assert method["inputs"][0]["shape"] == [1, "seq"]
    (entry,) = m["files"]
    pte = tiny_fp32.path / entry["path"]
    assert entry["size"] == pte.stat().st_size and entry["sha256"] == sha256_file(pte)
    assert set(m["tools"]) >= {"torch", "executorch", "transformers", "slmdeploy"}
    assert m["export"]["wall_s"] > 0 and "lower to edge + delegate" in m["export"]["stages"]
    d = m["delegation"]
    # Per layer only the rotary half-slices and the two cache writes stay outside XNNPACK
    # (47 subgraphs for these 4 layers before the edge passes of export/executorch/passes/).
    assert d["delegated_subgraphs"] <= 3 * 4 and d["delegated_fraction"] > 0.75
    assert "aten_view_copy_default" not in d["fallback_ops"] and "aten_expand_copy_default" not in d["fallback_ops"]


def _run_program(artifact, prompt_len=12, steps=6):
    """Prefill then greedy decode through the exported program and through eager PyTorch."""
    from executorch.runtime import Runtime

    method = Runtime.get().load_program(str(artifact.model_file)).load_method("forward")
    eager = StaticCacheLM(from_zoo("llama-tiny").build(), artifact.manifest.llm.max_seq_len).eval()
    tokens = torch.randint(0, 4096, (1, prompt_len), generator=torch.Generator().manual_seed(3))
    pos = torch.arange(prompt_len)
    pairs = []
    with torch.no_grad():
        for _ in range(steps + 1):
            ref = eager(tokens, pos)
            out = method.execute([tokens, pos])[0]
            pairs.append((out, ref))
            tokens, pos = ref.argmax(-1, keepdim=True), torch.tensor([int(pos[-1]) + 1])
    return pairs


def test_fp32_program_matches_eager_for_prefill_and_decode(tiny_fp32):
    pairs = _run_program(tiny_fp32)
    for out, ref in pairs:  # the first pair is the prefill, the rest decode steps
        assert out.shape == ref.shape == (1, 4096)
        assert torch.allclose(out, ref, atol=1e-4, rtol=1e-4), (out - ref).abs().max()
        assert out.argmax() == ref.argmax()
    assert tiny_fp32.manifest.verification["status"] == "passed"
    assert tiny_fp32.manifest.verification["relative_diff"] < 1e-4


def test_8da4w_program_agrees_with_eager(tiny_8da4w, tiny_fp32):
    v = tiny_8da4w.manifest.verification
    assert v["status"] == "passed", v
    assert v["top1_agreement_vs_quantized_eager"] >= 0.8
    assert v["relative_diff_vs_quantized_eager"] <= 0.05
    assert 0.0 <= v["top1_agreement"] <= 1.0 and v["positions"] == 17
    # int4 weights: the program is much smaller than the fp32 one
    assert tiny_8da4w.manifest.model_file.size < 0.4 * tiny_fp32.manifest.model_file.size
    assert tiny_8da4w.manifest.quantization == {
        "scheme": "8da4w", "weights": "int4", "activations": "int8 dynamic", "group_size": 32, "method": "torchao"
    }


def test_same_model_and_target_is_served_from_the_cache(tiny_fp32, tmp_path):
    again = export("llama-tiny", "host-xnnpack", tmp_path / "again", progress=False)
    assert again.cache_hit
    assert again.manifest.export["cache_key"] == tiny_fp32.manifest.export["cache_key"]
    assert again.manifest.model_file.sha256 == tiny_fp32.manifest.model_file.sha256
    again.verify()


def test_an_exported_artifact_is_a_copy_of_the_cache_entry(tiny_fp32, tmp_path):
    """Editing one artifact in place changes neither the cache entry nor another artifact made from it."""
    a = export("llama-tiny", "host-xnnpack", tmp_path / "a", progress=False)
    b = export("llama-tiny", "host-xnnpack", tmp_path / "b", progress=False)
    entry = cache.entry_dir(a.manifest.export["cache_key"])
    assert a.cache_hit and b.cache_hit
    assert len({a.model_file.stat().st_ino, b.model_file.stat().st_ino, (entry / "model.pte").stat().st_ino}) == 3
    assert a.model_file.stat().st_nlink == 1
    with open(a.model_file, "r+b") as fh:  # edited in place, as an editor or a bad script would
        fh.seek(1000)
        fh.write(b"\xff\xfe\xfd")
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        a.verify()
    Artifact.open(entry).verify()
    b.verify()
    again = export("llama-tiny", "host-xnnpack", tmp_path / "a", progress=False)  # the edited copy is replaced
    assert again.cache_hit
    again.verify()


def test_hf_checkpoint_exports_through_transformers_loading(hf_checkpoint, tmp_path, monkeypatch):
    monkeypatch.setenv("SLMDEPLOY_CACHE", str(tmp_path / "cache"))  # a cold cache, however often this runs
    art = export(hf_checkpoint, "host-xnnpack", tmp_path / "hf", progress=False)
    m = art.manifest
    assert not art.cache_hit and m.model["source"] == "hf" and m.model["id"] == "tiny-llama-hf"
    per_layer = 2 * 64 * 64 + 2 * 64 * 32 + 3 * 64 * 176 + 2 * 64  # q,o + k,v + SwiGLU + 2 norms
    assert m.model["params"] == 512 * 64 + 2 * per_layer + 64  # tied embeddings counted once
    assert {f.role for f in m.files} == {"model", "tokenizer"}
    assert (art.path / "tokenizer.json").is_file()
    assert m.verification["status"] == "passed"
    assert export(hf_checkpoint, "host-xnnpack", tmp_path / "hf", progress=False).cache_hit


def test_corrupt_artifact_is_detected(tiny_fp32, tmp_path):
    copy = tmp_path / "corrupt"
    shutil.copytree(tiny_fp32.path, copy)
    pte = copy / "model.pte"
    data = bytearray(pte.read_bytes())
    data[len(data) // 2] ^= 0xFF
    pte.write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="sha256 mismatch"):
        Artifact.open(copy).verify()
    with pytest.raises(ArtifactError, match="no manifest.json"):
        Artifact.open(tmp_path)


def test_output_dir_problems_are_caught_before_work(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(OutputDirError, match="cannot create"):
        export("llama-tiny", "host-xnnpack", blocker / "sub" / "out", progress=False)
    (tmp_path / "busy").mkdir()
    (tmp_path / "busy" / "notes.txt").write_text("mine")
    with pytest.raises(OutputDirError, match="not empty"):
        export("llama-tiny", "host-xnnpack", tmp_path / "busy", progress=False)
    assert (tmp_path / "busy" / "notes.txt").read_text() == "mine"


def test_targets_are_validated_when_loaded(tmp_path):
    assert load_target("host-xnnpack").delegates == ("xnnpack",)
    bad = tmp_path / "bad.toml"
    bad.write_text('description = "x"\nruntime = "tflite"\nplatform = "ios"\ndelegates = ["coreml"]\nquantization = "fp32"\n')
    with pytest.raises(UnknownTargetError, match="cannot be used with runtime 'tflite'"):
        load_target(bad)
    with pytest.raises(UnknownTargetError, match="unknown target"):
        load_target("no-such-target")


def test_cache_entries_with_folders_materialize_over_an_old_artifact(tmp_path):
    """A Core ML package is a folder: a cached entry with subfolders is placed whole, replacing what was there."""
    from slmdeploy.export import cache

    entry = tmp_path / "entry"
    (entry / "model.mlpackage" / "Data").mkdir(parents=True)
    (entry / "model.mlpackage" / "Data" / "weights.bin").write_bytes(b"w" * 100)
    (entry / "manifest.json").write_text("{}")
    out = tmp_path / "out"
    out.mkdir()
    (out / "stale.pte").write_bytes(b"old")
    cache.materialize(entry, out)
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*")) == [
        "manifest.json", "model.mlpackage", "model.mlpackage/Data", "model.mlpackage/Data/weights.bin"]
    assert (out / "model.mlpackage/Data/weights.bin").read_bytes() == b"w" * 100
    assert not list(tmp_path.glob(".out.*"))  # no temporary or old copy left behind
