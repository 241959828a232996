"""`strict` turns delegate fallback into an error; any nn.Module (not only LLMs) exports to
every runtime through the Python API, with parity checked where it runs."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
import torch
from export_matrix import CROSS_MODEL, MLP, SEQ

from slmdeploy.errors import ExportError
from slmdeploy.export import export, from_module, load_target


class SmallCNN(torch.nn.Module):
    """A non-LLM model: conv -> relu -> pool -> linear."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = torch.nn.Conv2d(3, 8, 3, padding=1)
        self.head = torch.nn.Linear(8, 10)

    def forward(self, x):
        return self.head(torch.relu(self.conv(x)).mean(dim=(2, 3), keepdim=True).flatten(1))


class CumsumMLP(torch.nn.Module):
    """An MLP with a cumulative sum, which XNNPACK has no kernel for."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(16, 16)

    def forward(self, x):
        return torch.cumsum(self.fc(x), dim=-1)


def _cnn():
    torch.manual_seed(0)
    return from_module("small-cnn", SmallCNN().eval(), (torch.randn(1, 3, 16, 16),))


@pytest.mark.parametrize("target", ["host-xnnpack", "android-portable-fp32", "tflite-xnnpack-fp32", "ios-coreml-ane-fp16"])
def test_a_plain_nn_module_exports_to_every_runtime(target, tmp_path, support_matrix, request):
    from export_matrix import Outcome

    outcome = Outcome(export(_cnn(), target, tmp_path / target, progress=False))
    with support_matrix.checking(load_target(target), "nn.Module (CNN)", "small-cnn", request.node.nodeid, outcome):
        _check_module_artifact(outcome.get())


def _check_module_artifact(artifact) -> None:
    m = artifact.manifest
    assert m.llm is None and m.model["source"] == "module"
    (method,) = m.methods
    assert method.inputs[0].shape == [1, 3, 16, 16] and method.outputs[0].shape == [1, 10]
    v = m.verification
    if m.runtime == "coreml":
        assert v["status"] == "not verified on this host" and v["spec_check"]["status"] == "passed"
    else:
        assert v["status"] == "passed" and v["relative_diff"] <= 1e-3


def test_strict_fails_on_fallback_and_names_the_ops(tmp_path):
    torch.manual_seed(0)
    source = from_module("cumsum-mlp", CumsumMLP().eval(), (torch.randn(2, 16),))
    relaxed = export(source, "host-xnnpack", tmp_path / "relaxed", progress=False)
    assert relaxed.manifest.delegation["fallback_ops"] == {"aten_cumsum_default": 1}
    assert relaxed.manifest.verification["status"] == "passed"
    with pytest.raises(ExportError) as err:
        export(source, "host-xnnpack", tmp_path / "strict", progress=False, strict=True, force=True)
    assert "aten_cumsum_default×1" in str(err.value) and "fell back outside xnnpack" in str(err.value)
    assert not (tmp_path / "strict").exists(), "a strict failure leaves no artifact"
    with pytest.raises(ExportError, match="aten_cumsum_default"):  # a cached artifact is held to it too
        export(source, "host-xnnpack", tmp_path / "strict", progress=False, strict=True)


def test_strict_passes_when_the_delegate_takes_everything(tmp_path):
    artifact = export(_cnn(), "host-xnnpack", tmp_path / "cnn", progress=False, strict=True)
    d = artifact.manifest.delegation
    assert d["fallback_ops"] == {} and d["delegated_fraction"] == 1.0 and d["by_delegate"]["XnnpackBackend"]["nodes"] > 0


def test_force_replaces_the_cached_artifact(tmp_path):
    from slmdeploy.export import cache

    first = export(_cnn(), "host-xnnpack", tmp_path / "a", progress=False)
    entry = cache.entry_dir(first.manifest.export["cache_key"])
    (entry / "stale-marker").write_text("from the old entry")
    assert export(_cnn(), "host-xnnpack", tmp_path / "b", progress=False).cache_hit
    rebuilt = export(_cnn(), "host-xnnpack", tmp_path / "c", progress=False, force=True)
    assert not rebuilt.cache_hit and not (tmp_path / "c" / "stale-marker").exists()
    assert not (entry / "stale-marker").exists(), "the rebuilt artifact replaces the cache entry"
    assert export(_cnn(), "host-xnnpack", tmp_path / "d", progress=False).manifest.export == rebuilt.manifest.export


def test_strict_on_an_llm_lists_the_kv_cache_fallback(export_once, tmp_path):
    export_once(CROSS_MODEL, "host-xnnpack").get()
    with pytest.raises(ExportError, match="aten_index_put_default×4"):
        export(CROSS_MODEL, "host-xnnpack", tmp_path / "s", max_seq_len=SEQ, progress=False, strict=True)
    artifact = export_once(CROSS_MODEL, "ios-executorch-coreml").get()
    again = export(CROSS_MODEL, "ios-executorch-coreml", tmp_path / "c", max_seq_len=SEQ, progress=False, strict=True)
    assert again.cache_hit and again.manifest.delegation == artifact.manifest.delegation


def test_cli_strict_is_a_one_line_error(export_once, tmp_path):
    export_once(CROSS_MODEL, "tflite-xnnpack-fp32").get()
    cli = str(Path(sys.executable).parent / "slmdeploy")
    out = subprocess.run([cli, "export", CROSS_MODEL, "-t", "tflite-xnnpack-fp32", "--max-seq-len", str(SEQ),
                          "--out", str(tmp_path / "t"), "--strict"], capture_output=True, text=True)
    assert out.returncode == 2 and "Traceback" not in out.stderr
    (line,) = [ln for ln in out.stderr.splitlines() if ln.startswith("error:")]
    assert "DYNAMIC_UPDATE_SLICE×8" in line  # 2 layers x (k, v) x (prefill, decode)


class ZeroRowLinear(torch.nn.Module):
    """A linear layer with an all-zero output row (like the padding row of a tied embedding)."""

    def __init__(self) -> None:
        super().__init__()
        self.fc = torch.nn.Linear(64, 8, bias=False)
        with torch.no_grad():
            self.fc.weight[0].zero_()

    def forward(self, x):
        return self.fc(x)


def test_int4_tflite_with_an_all_zero_weight_block_loads_and_matches(tmp_path):
    """ai-edge-quantizer gives a zero block scale 0, which XNNPACK refuses; the exporter fixes it."""
    torch.manual_seed(0)
    artifact = export(from_module("zero-row", ZeroRowLinear().eval(), (torch.randn(2, 64),)), "tflite-int4",
                      tmp_path / "z", progress=False)
    v = artifact.manifest.verification
    assert v["status"] == "passed" and v["relative_diff_vs_quantized_eager"] < 0.05
    assert artifact.manifest.quantization["weights"] == "int4"


def test_a_quantized_export_leaves_the_callers_module_as_it_was(tmp_path):
    torch.manual_seed(0)
    mlp = MLP().train()
    before = {k: v.clone() for k, v in mlp.state_dict().items()}
    export(from_module("mlp-untouched", mlp, (torch.randn(4, 64),)), "host-xnnpack-8da4w", tmp_path / "q",
           progress=False, force=True)
    assert mlp.training, "export must not switch the caller's module to eval mode"
    assert type(mlp.fc1) is torch.nn.Linear and type(mlp.fc1.weight) is torch.nn.Parameter, "not quantized in place"
    after = mlp.state_dict()
    assert after.keys() == before.keys() and all(torch.equal(after[k], before[k]) for k in before)


def test_a_quantized_module_is_judged_against_the_same_quantization_run_eagerly(tmp_path):
    from slmdeploy.export.executorch.verify import QUANT_TOLERANCE

    torch.manual_seed(0)
    source = from_module("mlp-8da4w", MLP().eval(), (torch.randn(4, 64),))
    v = export(source, "host-xnnpack-8da4w", tmp_path / "q", progress=False).manifest.verification
    assert v["status"] == "passed" and "vs the eager quantized model" in v["criterion"]
    assert v["relative_diff_vs_quantized_eager"] <= QUANT_TOLERANCE and v["max_abs_diff_vs_quantized_eager"] >= 0
    # the program is far closer to eager torchao than to the float model (what int4 weights cost)
    assert v["relative_diff_vs_quantized_eager"] < v["relative_diff"] / 10


def test_a_verifying_export_never_serves_an_unverified_cache_entry(tmp_path):
    torch.manual_seed(0)
    source = from_module("small-cnn-verify", SmallCNN().eval(), (torch.randn(1, 3, 16, 16),))
    quick = export(source, "host-xnnpack", tmp_path / "a", verify=False, force=True, progress=False)
    assert quick.manifest.verification == {"status": "skipped"}
    checked = export(source, "host-xnnpack", tmp_path / "b", progress=False)
    assert not checked.cache_hit and checked.manifest.verification["status"] == "passed"
    again = export(source, "host-xnnpack", tmp_path / "c", verify=False, progress=False)
    assert again.cache_hit and again.manifest.verification["status"] == "passed", "the verified entry replaced it"


class PlusCumsum(torch.nn.Module):
    def __init__(self, cumsum: bool) -> None:
        super().__init__()
        self.fc, self.cumsum = torch.nn.Linear(16, 16), cumsum

    def forward(self, x):
        y = self.fc(x)
        return torch.cumsum(y, dim=-1) if self.cumsum else y


def test_tflite_delegation_covers_every_signature(tmp_path):
    """An op XNNPACK cannot take in the *second* signature (decode) is still a fallback."""
    import litert_torch

    from slmdeploy.export.tflite.verify import delegation_report

    torch.manual_seed(0)
    path, x = tmp_path / "two.tflite", (torch.randn(2, 16),)
    converter = litert_torch.signature("prefill", PlusCumsum(False).eval(), sample_args=x)
    converter.signature("decode", PlusCumsum(True).eval(), sample_args=x).convert().export(str(path))
    d = delegation_report(path, load_target("tflite-xnnpack-fp32"))
    assert d["by_signature"]["prefill"]["fallback_ops"] == {}
    assert d["by_signature"]["decode"]["fallback_ops"] == {"CUMSUM": 1} == d["fallback_ops"]
    assert d["by_signature"]["prefill"]["delegated_nodes"] >= 1 and d["delegated_fraction"] < 1
