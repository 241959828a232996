"""A study expanded into jobs: one export per (model, target), one run job per
(model, target, device, workload, repeat).

Planning touches no device and exports nothing, so ``study plan`` is instant even for
10,000 jobs. A job's id hashes what it measures (model, target, device identity,
workload, run settings): a resumed study recognises its finished jobs by id, and a
changed study file makes new jobs rather than mixing old numbers into new ones.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

from slmdeploy.devices.spec import identity
from slmdeploy.errors import SlmdeployError
from slmdeploy.study.devices import resolve_devices
from slmdeploy.study.spec import DeviceEntry, Study, StudyError, WorkloadSpec

# A coarse device for estimates before anything was measured: a mid-range phone's CPU.
EST_BANDWIDTH = 8e9  # bytes/s a decode step streams the weights at
EST_FLOPS = 40e9  # FLOP/s of prefill
EST_OVERHEAD_S = 3.0  # per job: deploy check, load, pull, store
BYTES_PER_WEIGHT = {"fp32": 4.0, "fp16": 2.0, "bf16": 2.0, "8da8w": 1.0, "8w": 1.0, "8da4w": 0.56, "4w": 0.56}


@dataclass(frozen=True)
class Export:
    model: str  # as written in the study (zoo name, or checkpoint path resolved against the file)
    target: str

    @property
    def key(self) -> str:
        return f"{self.model}|{self.target}"


@dataclass(frozen=True)
class Job:
    id: str
    export: Export
    device: str  # spec
    identity: str  # the physical device (lock key)
    labels: tuple[tuple[str, str], ...]
    workload: WorkloadSpec
    repeat: int  # 0-based

    @property
    def name(self) -> str:
        """Readable and unique: what a run directory of this job is called (plus the attempt)."""
        parts = (_slug(Path(self.export.model).name), _slug(Path(self.export.target).stem), _slug(self.device),
                 self.workload.label.replace("+", "-").replace("@", "-"))
        return "-".join(parts) + (f"-rep{self.repeat + 1}" if self.repeat else "") + f"-{self.id}"

    def to_dict(self) -> dict[str, Any]:
        return {"id": self.id, "model": self.export.model, "target": self.export.target, "device": self.device,
                "identity": self.identity, "labels": dict(self.labels), "workload": self.workload.label,
                "prompt": self.workload.prompt, "gen": self.workload.gen, "threads": self.workload.threads,
                "repeat": self.repeat}


@dataclass(frozen=True)
class Skipped:
    """A (target, device) pair the plan leaves out, and why (never silently)."""

    export: Export
    device: str
    reason: str


@dataclass
class Plan:
    study: Study
    devices: list[DeviceEntry]
    exports: list[Export]
    jobs: list[Job]
    skipped: list[Skipped] = field(default_factory=list)

    def jobs_for(self, device: str) -> list[Job]:
        return [j for j in self.jobs if j.device == device]

    def estimate_s(self, job: Job) -> float:
        return estimate_job_s(job.export, job.workload, self.study.run.runs + self.study.run.warmup)

    def summary(self) -> dict[str, Any]:
        per_device: dict[str, float] = {}
        for job in self.jobs:
            per_device[job.device] = per_device.get(job.device, 0.0) + self.estimate_s(job) + self.study.cooldown.pause_s
        return {
            "study": self.study.name,
            "exports": len(self.exports),
            "devices": [{"spec": d.spec, "labels": d.labels, "jobs": len(self.jobs_for(d.spec)),
                         "estimated_s": round(per_device.get(d.spec, 0.0), 1)} for d in self.devices],
            "jobs": len(self.jobs),
            "skipped": [{"model": s.export.model, "target": s.export.target, "device": s.device, "reason": s.reason}
                        for s in self.skipped],
            # devices work in parallel: the study takes as long as its busiest device
            "estimated_s": round(max(per_device.values(), default=0.0), 1),
            "estimated_device_s": round(sum(per_device.values()), 1),
        }


def _slug(text: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", text).strip("_")[:40]


def _job_id(payload: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(payload, sort_keys=True, separators=(",", ":")).encode()).hexdigest()[:10]


def _check_model(study: Study, i: int, model: str) -> str:
    """A zoo name, or a checkpoint directory (relative to the study file); not loaded here."""
    from slmdeploy import zoo
    from slmdeploy.errors import UnknownModelError

    path = Path(model).expanduser()
    path = path if path.is_absolute() else study.base_dir / path
    if path.is_dir():
        if not (path / "config.json").is_file():
            raise StudyError(f"study {study.name}: models[{i}] = {model!r} is a directory without config.json; "
                             "give a Hugging Face checkpoint directory (save_pretrained()) or a zoo name.")
        return str(path)
    try:
        zoo.get(model)
    except UnknownModelError as err:
        raise StudyError(f"study {study.name}: models[{i}]: {err}") from None
    return model


def _check_target(study: Study, i: int, target: str) -> str:
    from slmdeploy.export.target import load_target

    path = Path(target)
    name = str(study.base_dir / path) if path.suffix == ".toml" and not path.is_absolute() else target
    try:
        load_target(name)
    except SlmdeployError as err:
        raise StudyError(f"study {study.name}: targets[{i}]: {err}") from None
    return name


def check_sources(study: Study) -> tuple[list[str], list[str]]:
    """The study's models and targets, each checked (StudyError naming the entry); paths resolved."""
    return ([_check_model(study, i, m) for i, m in enumerate(study.models)],
            [_check_target(study, i, t) for i, t in enumerate(study.targets)])


def unrunnable(target: str, device: str) -> str | None:
    """Why ``target``'s artifacts cannot run on ``device`` (None when they can)."""
    from slmdeploy.export.target import load_target

    t = load_target(target)
    apple = t.runtime == "coreml" or (t.runtime == "executorch" and {"coreml", "mps"} & set(t.delegates))
    if apple:
        return f"{t.name} runs on Apple devices only (Core ML / MPS); {device} is not one"
    return None


def build_plan(study: Study, devices: list[DeviceEntry] | None = None) -> Plan:
    """Every export and run job of ``study``, in the order devices will run them.

    Per device, jobs are grouped by artifact so each is deployed once and then found on
    the device; repeats come last, so the study's first pass covers every job once.
    """
    models, targets = check_sources(study)
    devices = devices if devices is not None else resolve_devices(study.devices, f"study {study.name}")
    exports = [Export(m, t) for m in models for t in targets]
    settings = {"runs": study.run.runs, "warmup": study.run.warmup, "harness": study.run.harness,
                "profile": study.run.profile, "max_seq_len": study.max_seq_len}
    blocked = {(t, d.spec): unrunnable(t, d.spec) for t in targets for d in devices}
    jobs: list[Job] = []
    skipped: list[Skipped] = []
    for repeat in range(study.run.repeat):
        for device in devices:
            ident = identity(device.spec)
            labels = tuple(sorted(device.labels.items()))
            for export in exports:
                reason = blocked[(export.target, device.spec)]
                if reason:
                    if repeat == 0:
                        skipped.append(Skipped(export, device.spec, reason))
                    continue
                for workload in study.workloads:
                    payload = {"model": export.model, "target": export.target, "device": ident,
                               "workload": [workload.prompt, workload.gen, workload.threads], "repeat": repeat,
                               **settings}
                    jobs.append(Job(_job_id(payload), export, device.spec, ident, labels, workload, repeat))
    return Plan(study=study, devices=devices, exports=exports, jobs=jobs, skipped=skipped)


# -- estimates ------------------------------------------------------------------------------

@lru_cache(maxsize=None)
def _weights(model: str, target: str) -> tuple[float, float]:
    """(parameters, bytes) of a model's weights under a target's quantization, from its config."""
    from slmdeploy.export.target import load_target

    config = _config(model)
    params = estimate_params(config)
    scheme = load_target(target).quantization
    return params, params * BYTES_PER_WEIGHT.get(scheme, 4.0)


def _config(model: str) -> dict[str, Any]:
    path = Path(model)
    if path.is_dir():
        try:
            return json.loads((path / "config.json").read_text())
        except (OSError, ValueError):
            return {}
    from slmdeploy import zoo

    return zoo.get(model).hf_config


def estimate_params(config: dict[str, Any]) -> float:
    """Parameters of a decoder from its config (embeddings, attention, MLP); 0 when unknown."""
    from slmdeploy.export.source import architecture_facts

    f = architecture_facts(config)
    h, layers, vocab = f.get("hidden_size") or 0, f.get("layers") or 0, f.get("vocab_size") or 0
    heads, kv, d = f.get("heads") or 1, f.get("kv_heads") or f.get("heads") or 1, f.get("head_dim") or 0
    inter = f.get("intermediate_size") or 4 * h
    attention = h * heads * d * 2 + h * kv * d * 2
    mlp = 3 * h * inter
    embeddings = vocab * h * (1 if f.get("tie_word_embeddings") else 2)
    return float(embeddings + layers * (attention + mlp))


def estimate_job_s(export: Export, workload: WorkloadSpec, passes: int) -> float:
    """Seconds one job takes on a mid-range phone: a coarse guide before anything is measured."""
    params, nbytes = _weights(export.model, export.target)
    per_pass = workload.prompt * 2 * params / EST_FLOPS + workload.gen * nbytes / EST_BANDWIDTH
    return EST_OVERHEAD_S + passes * per_pass
