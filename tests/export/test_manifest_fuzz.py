"""Manifests are untrusted input: property and fuzz tests (hypothesis) over ``Manifest`` and ``Artifact``.

Whatever a manifest.json holds — any JSON, any bytes, a valid manifest with any one field
replaced or removed — reading it either gives a manifest whose invariants hold (exactly one
model file, every path inside the artifact, sha256 as 64 hex digits, sizes and lengths that
are numbers) or raises ``ManifestError``/``ArtifactError`` with a one-line message. Never a
traceback from deep inside, never a file outside the artifact.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
import re
import tempfile
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from slmdeploy.bench import Workload
from slmdeploy.bench.api import _harness_args
from slmdeploy.errors import ArtifactError, SlmdeployError
from slmdeploy.export.artifact import Artifact
from slmdeploy.export.manifest import SCHEMA, Manifest, ManifestError, check_relative_path

FUZZ = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
MODEL = b"\x00model bytes\x01" * 64
SHA = hashlib.sha256(MODEL).hexdigest()


def valid_dict() -> dict[str, Any]:
    """A small manifest of the shape the exporters write (an LLM with one method)."""
    spec = {"name": "tokens", "dtype": "int64", "shape": [1, "seq"]}
    return {
        "schema": SCHEMA, "name": "tiny", "runtime": "executorch",
        "model": {"id": "llama-tiny", "source": "zoo", "params": 1000, "architecture": {"layers": 2}},
        "target": {"name": "host-xnnpack", "max_seq_len": 64}, "delegates": ["xnnpack"],
        "quantization": {"scheme": "fp32"},
        "methods": [{"name": "forward", "inputs": [spec, {"name": "input_pos", "dtype": "int64", "shape": ["seq"]}],
                     "outputs": [{"name": "logits", "dtype": "float32", "shape": [1, 512]}]}],
        "files": [{"path": "model.pte", "role": "model", "size": len(MODEL), "sha256": SHA}],
        "tools": {"torch": "2.13.0"}, "export": {"wall_s": 1.5},
        "llm": {"convention": "slmdeploy.llm/1", "max_seq_len": 64, "vocab_size": 512,
                "prefill_method": "forward", "decode_method": "forward"},
    }


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=10), inner, max_size=4),
    max_leaves=12,
)
segment = st.from_regex(r"[A-Za-z0-9_][A-Za-z0-9_.-]{0,11}", fullmatch=True)
safe_paths = st.lists(segment, min_size=1, max_size=3).map("/".join)
hostile_paths = st.sampled_from(["../x", "/etc/passwd", "a/../../b", "..", ".", "", "C:\\model.pte", "a\\..\\b",
                                 "model.pte\0.txt", "./../model.pte", "//etc/passwd", "a/./../../etc"])


def leaf_paths(value: Any, prefix: tuple = ()) -> list[tuple]:
    """Every key/index path into a JSON value, the value itself included."""
    paths = [prefix]
    if isinstance(value, dict):
        for k, v in value.items():
            paths += leaf_paths(v, prefix + (k,))
    elif isinstance(value, list):
        for i, v in enumerate(value):
            paths += leaf_paths(v, prefix + (i,))
    return paths


def mutated(data: st.DataObject, remove: bool = False) -> dict[str, Any]:
    """A valid manifest with one part (any key or element, at any depth) replaced by any JSON, or removed."""
    manifest = valid_dict()
    where = data.draw(st.sampled_from(leaf_paths(manifest)[1:]), label="where")
    parent = manifest
    for key in where[:-1]:
        parent = parent[key]
    if remove:
        del parent[where[-1]]
    else:
        parent[where[-1]] = data.draw(json_values | hostile_paths, label="replacement")
    return manifest


def assert_invariants(m: Manifest) -> None:
    """What every accepted manifest guarantees to the code downstream."""
    assert sum(f.role == "model" for f in m.files) == 1 and m.model_file.role == "model"
    for f in m.files:
        pure = PurePosixPath(f.path)
        assert f.path and not pure.is_absolute() and ".." not in pure.parts and "\\" not in f.path and "\0" not in f.path
        assert re.fullmatch(r"[0-9a-f]{64}", f.sha256)
        assert type(f.size) is int and f.size >= 0
    assert m.methods and all(type(d) in (int, str) for meth in m.methods for t in meth.inputs for d in t.shape)
    if m.llm is not None:
        assert type(m.llm.max_seq_len) is int and m.llm.max_seq_len >= 1 and type(m.llm.vocab_size) is int
    for name in ("model", "target", "quantization", "tools", "export", "delegation", "verification"):
        assert isinstance(getattr(m, name), dict)
    assert Manifest.from_dict(m.to_dict()) == m  # what was read is what is written back


def read_or_refuse(data: Any) -> Manifest | None:
    try:
        manifest = Manifest.from_dict(data)
    except ManifestError as err:
        assert "\n" not in str(err) and str(err)
        return None
    assert_invariants(manifest)
    return manifest


@given(name=st.text(min_size=1, max_size=30), extra=st.lists(safe_paths, max_size=3, unique=True),
       sizes=st.lists(st.integers(0, 2**40), min_size=3, max_size=3), with_llm=st.booleans())
@FUZZ
def test_every_valid_manifest_round_trips(name, extra, sizes, with_llm):
    data = valid_dict()
    data["name"] = name
    data["files"] += [{"path": p, "role": "tokenizer", "size": s, "sha256": SHA}
                      for p, s in zip((p for p in extra if p != "model.pte"), sizes)]
    if not with_llm:
        del data["llm"]
    manifest = read_or_refuse(data)
    assert manifest is not None and manifest.name == name and len(manifest.files) == len(data["files"])


@given(data=st.data())
@FUZZ
def test_a_valid_manifest_with_any_part_replaced_is_read_or_refused_in_one_line(data):
    read_or_refuse(mutated(data))


@given(data=st.data())
@FUZZ
def test_a_valid_manifest_with_any_part_removed_is_read_or_refused_in_one_line(data):
    read_or_refuse(mutated(data, remove=True))


@given(value=json_values)
@FUZZ
def test_any_json_is_read_or_refused_in_one_line(value):
    read_or_refuse(value)
    read_or_refuse({**valid_dict(), "files": value})
    read_or_refuse({**valid_dict(), "llm": value})


@given(raw=st.binary(max_size=300))
@FUZZ
def test_any_bytes_are_read_or_refused_in_one_line(raw):
    try:
        assert_invariants(Manifest.from_json(raw))
    except ManifestError as err:
        assert "\n" not in str(err)


@given(path=st.text(alphabet="ab./\\\0:C", max_size=12) | hostile_paths | safe_paths)
@FUZZ
def test_an_accepted_path_never_leaves_the_directory(path):
    try:
        check_relative_path(path, "files[0].path")
    except ManifestError:
        return
    root = "/artifact/dir"
    inside = os.path.normpath(os.path.join(root, path))
    assert inside.startswith(root + "/")


def _artifact_dir(root: Path, manifest: Any) -> Path:
    (root / "model.pte").write_bytes(MODEL)
    (root / "manifest.json").write_text(json.dumps(manifest))
    return root


@given(data=st.data())
@FUZZ
def test_an_artifact_with_a_fuzzed_manifest_opens_or_fails_with_artifact_error(data):
    """And an artifact that opens is safe all the way to the harness's arguments."""
    manifest = mutated(data)
    with tempfile.TemporaryDirectory() as tmp:
        try:
            art = Artifact.open(_artifact_dir(Path(tmp), manifest))
            art.verify()
        except ArtifactError as err:
            assert "\n" not in str(err)
            return
        for entry in art.manifest.files:
            assert art.file(entry).resolve().is_relative_to(Path(tmp).resolve())
        workload = Workload(prompt_tokens=4, gen_tokens=2)
        try:
            workload.check(art.manifest)
        except SlmdeployError:
            return
        args = _harness_args(art, workload, "/device/blob", "run-id", None)
        assert all("\n" not in a for a in args.argv()[:2])


@pytest.mark.parametrize("path", ["../x", "/etc/passwd", "a/../../x", "..", "./../model.pte"])
def test_a_path_out_of_the_artifact_is_refused_even_with_a_matching_sha(tmp_path, path):
    """The attack of issue 12: a manifest naming a file elsewhere whose sha256 it states correctly."""
    outside = tmp_path / "x"
    outside.write_bytes(MODEL)
    art_dir = tmp_path / "art"
    art_dir.mkdir()
    manifest = valid_dict()
    manifest["files"][0]["path"] = path
    _artifact_dir(art_dir, manifest)
    with pytest.raises(ArtifactError, match="leaves the artifact directory"):
        Artifact.open(art_dir)


def test_a_symlink_out_of_the_artifact_is_refused(tmp_path):
    secret = tmp_path / "secret"
    secret.write_bytes(MODEL)
    art_dir = tmp_path / "art"
    art_dir.mkdir()
    _artifact_dir(art_dir, valid_dict())
    (art_dir / "model.pte").unlink()
    (art_dir / "model.pte").symlink_to(secret)
    with pytest.raises(ArtifactError, match="outside the artifact directory"):
        Artifact.open(art_dir)


@pytest.mark.parametrize("files, message", [
    ([], "files is empty"),
    ([{"path": "tok.json", "role": "tokenizer", "size": 1, "sha256": SHA}], "0 entries with role 'model'"),
    ([{"path": "a.pte", "role": "model", "size": 1, "sha256": SHA}] * 2, "2 entries with role 'model'"),
])
def test_no_model_file_is_a_one_line_cli_error(tmp_path, files, message):
    from click.testing import CliRunner

    from slmdeploy.cli.main import cli

    (tmp_path / "art").mkdir()
    art_dir = _artifact_dir(tmp_path / "art", {**valid_dict(), "files": files})
    result = CliRunner().invoke(cli, ["bench", str(art_dir), "--runs-dir", str(tmp_path / "runs")])
    lines = [line for line in result.stderr.splitlines() if line.strip()]
    assert result.exit_code == 2 and len(lines) == 1 and message in lines[0], result.stderr
    assert not (tmp_path / "runs").exists()


def test_a_cache_entry_without_a_model_file_is_dropped_not_served(tmp_path, monkeypatch):
    """Before, such an entry raised StopIteration on every export, forever."""
    from slmdeploy.export import api
    from slmdeploy.export.target import load_target

    monkeypatch.setenv("SLMDEPLOY_CACHE", str(tmp_path / "cache"))
    entry = tmp_path / "cache" / "artifacts" / "k"
    entry.mkdir(parents=True)
    _artifact_dir(entry, {**valid_dict(), "files": []})
    assert api._from_cache(entry, tmp_path / "out", load_target("host-xnnpack"), strict=False, verify=True) is None
    assert not entry.exists() and not (tmp_path / "out").exists()


def test_the_fuzz_base_is_valid():
    """The fuzz tests start from a valid manifest (else they would only test refusals)."""
    assert_invariants(Manifest.from_dict(copy.deepcopy(valid_dict())))
    with tempfile.TemporaryDirectory() as tmp:
        Artifact.open(_artifact_dir(Path(tmp), valid_dict())).verify()


def test_refusals_name_the_field():
    bad = valid_dict()
    bad["files"][0]["size"] = "26"
    with pytest.raises(ManifestError, match=r"^files\[0\]\.size: "):
        Manifest.from_dict(bad)
    bad = valid_dict()
    bad["llm"]["max_seq_len"] = True  # a bool is not a length
    with pytest.raises(ManifestError, match=r"^llm\.max_seq_len: "):
        Manifest.from_dict(bad)
