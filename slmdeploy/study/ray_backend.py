"""The Ray backend: each job runs on the lab host its device is plugged into.

The driver (where ``study run`` was started) exports, schedules and keeps the journal, as
with the local backend. A job is a Ray task that asks for its device's resource
(``lab.device_resource``), so Ray places it on the one node that owns the device. On that
node the task unpacks the artifact (shipped once per node through Ray's object store and
kept in a node-local cache by sha256), runs the same ``bench`` as a local study into a
scratch directory and returns the run directory as a tar archive; the driver unpacks it
into the study's ``runs/`` and indexes it. A node that dies takes its jobs with it: they
fail as device losses and count towards the device's quarantine.
"""

from __future__ import annotations

import fcntl
import io
import os
import shutil
import socket
import tarfile
import tempfile
from pathlib import Path
from typing import Any

from slmdeploy.devices.spec import parse
from slmdeploy.export.artifact import Artifact
from slmdeploy.study.directory import StudyDir
from slmdeploy.study.lab import LabError, device_resource, devices_of, require_ray
from slmdeploy.study.plan import Job
from slmdeploy.study.runner import PROBE_TIMEOUT_S, Outcome
from slmdeploy.study.spec import DeviceEntry, Study


def pack_dir(path: Path) -> bytes:
    """A directory as an uncompressed tar archive (members relative to it)."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w") as tar:
        tar.add(path, arcname=".")
    return buf.getvalue()


def unpack_dir(data: bytes, dest: Path) -> None:
    """Unpack into a fresh ``dest``; members that would land outside it, links and devices are refused."""
    staging = dest.with_name(f".{dest.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    try:
        with tarfile.open(fileobj=io.BytesIO(data), mode="r") as tar:
            tar.extractall(staging, filter="data")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(staging, dest)
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise


# -- on the lab host ---------------------------------------------------------------------

_DEVICES: dict[str, Any] = {}  # open devices of this worker process, reused by its later tasks


def _node_root() -> Path:
    from slmdeploy.export.cache import cache_root

    return cache_root() / "lab-node"


def _node_artifact(refs: list, sha256: str, name: str) -> Artifact:
    """The artifact on this node: unpacked once per node (file lock against sibling workers)."""
    import ray

    root = _node_root() / "artifacts"
    root.mkdir(parents=True, exist_ok=True)
    path = root / sha256[:16] / name
    with open(root / f"{sha256[:16]}.lock", "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        if not (path / "manifest.json").is_file():
            unpack_dir(ray.get(refs[0]), path)
    return Artifact.open(path)


def _device(spec: str, reconnect_s: float):
    from slmdeploy.study.local_backend import connect

    if spec not in _DEVICES:
        _DEVICES[spec] = connect(spec, reconnect_s)
    return _DEVICES[spec]


def _forget(spec: str) -> None:
    dev = _DEVICES.pop(spec, None)
    if dev is not None:
        try:
            dev.close()
        except Exception:  # a dead link may fail to close
            pass


def node_probe(spec: str, reconnect_s: float) -> dict[str, Any]:
    from slmdeploy.errors import SlmdeployError

    try:
        _device(spec, reconnect_s).info()
        return {"ok": True}
    except (SlmdeployError, OSError) as err:
        _forget(spec)
        return {"ok": False, "reason": str(err)}


def node_run_job(study: Study, job: Job, refs: list, sha256: str, name: str, run_name: str,
                 meta: dict[str, Any]) -> dict[str, Any]:
    """One attempt of ``job`` on this node; returns the outcome and the run directory as a tar archive."""
    import ray

    from slmdeploy.errors import SlmdeployError
    from slmdeploy.study.local_backend import bench_job, is_alive

    node = ray.get_runtime_context().get_node_id()
    meta = {**meta, "lab_node": node, "lab_host": socket.gethostname()}  # which host measured it
    artifact = _node_artifact(refs, sha256, name)
    with tempfile.TemporaryDirectory(prefix="slmdeploy-job-", dir=_node_root()) as scratch:
        runs = Path(scratch) / "runs"
        try:
            device = _device(job.device, study.devices.reconnect_s)
        except SlmdeployError as err:
            return {"status": "failed", "error": str(err), "device_lost": True, "node": node, "run": None}
        outcome = bench_job(study, job, artifact, device, runs, run_name, meta)
        lost = outcome.status != "complete" and not is_alive(device, study.devices.reconnect_s)
        if lost:
            _forget(job.device)
        run_dir = runs / run_name
        return {"status": outcome.status, "error": outcome.error, "device_lost": lost, "node": node,
                "run": pack_dir(run_dir) if run_dir.is_dir() else None}


# -- on the driver -----------------------------------------------------------------------

class RayBackend:
    def __init__(self, study: Study, sd: StudyDir, address: str | None = None) -> None:
        self.study, self.sd = study, sd
        self.ray = require_ray()
        self.address = address or study.execution.ray_address or os.environ.get("RAY_ADDRESS") or "auto"
        self._owns_connection = not self.ray.is_initialized()
        if self._owns_connection:
            try:
                self.ray.init(address=self.address, logging_level="ERROR", log_to_driver=False)
            except (ConnectionError, RuntimeError) as err:
                raise LabError(f"cannot reach the Ray cluster at {self.address}: {err}. Start it "
                               "(`slmdeploy lab join --head` on one host) or set [execution] ray_address.") from None
        self._refs: dict[str, Any] = {}
        self._probe = self.ray.remote(num_cpus=0, max_retries=0)(node_probe)
        self._run = self.ray.remote(num_cpus=0, max_retries=0)(node_run_job)
        self.nodes: dict[str, set[str]] = {}  # device -> the node ids its jobs ran on (for the record)

    def discover(self) -> list[str]:
        return devices_of(self.ray.cluster_resources())

    def probe(self, devices: list[DeviceEntry]) -> dict[str, str]:
        owned = set(self.discover())
        local = {d.spec: "`local` names no particular lab host; with backend = \"ray\" name devices as their hosts "
                         "reach them (adb:SERIAL, ssh:USER@HOST)" for d in devices if parse(d.spec).transport == "local"}
        devices = [d for d in devices if d.spec not in local]
        offline = local | {d.spec: f"no host of the Ray cluster at {self.address} owns it; run `slmdeploy lab join "
                           f"--address ADDRESS --device {d.spec}` on the host it is plugged into"
                   for d in devices if d.spec not in owned}
        pending = {d.spec: self._probe.options(resources={device_resource(d.spec): 1}).remote(
            d.spec, self.study.devices.reconnect_s) for d in devices if d.spec in owned}
        for spec, ref in pending.items():
            try:
                answer = self.ray.get(ref, timeout=PROBE_TIMEOUT_S)
            except self.ray.exceptions.GetTimeoutError:
                self.ray.cancel(ref, force=True)
                answer = {"ok": False, "reason": f"no answer from its host in {PROBE_TIMEOUT_S:.0f} s"}
            except self.ray.exceptions.RayError as err:
                answer = {"ok": False, "reason": f"its host failed: {type(err).__name__}"}
            if not answer["ok"]:
                offline[spec] = answer["reason"]
        return offline

    def prepare(self, artifacts: list[Artifact]) -> None:
        for art in artifacts:
            art.verify()
            self._refs[art.manifest.model_file.sha256] = self.ray.put(pack_dir(art.path))

    def run_job(self, job: Job, artifact: Artifact, run_name: str, meta: dict[str, Any]) -> Outcome:
        if job.device not in self.discover():  # its host left the cluster: Ray would wait for it forever
            return Outcome("failed", f"no host of the Ray cluster owns {job.device} any more (its host left)",
                           device_lost=True)
        sha = artifact.manifest.model_file.sha256
        task = self._run.options(resources={device_resource(job.device): 1})
        ref = task.remote(self.study, job, [self._refs[sha]], sha, artifact.path.name, run_name, meta)
        # the harness has its own timeout on the node; this one covers a node that stops answering
        limit = self.study.run.timeout_s + self.study.cooldown.timeout_s + 4 * self.study.devices.reconnect_s + 300
        try:
            result = self.ray.get(ref, timeout=limit)
        except self.ray.exceptions.GetTimeoutError:
            self.ray.cancel(ref, force=True)
            return Outcome("failed", f"its lab host gave no answer in {limit:.0f} s", device_lost=True)
        except self.ray.exceptions.RayError as err:  # the node or its worker died under the job
            return Outcome("failed", f"the lab host running it failed: {type(err).__name__}: {err}"[:500],
                           device_lost=True)
        self.nodes.setdefault(job.device, set()).add(result["node"])
        if result["run"] is not None:  # indexed with the others by the runner
            unpack_dir(result["run"], self.sd.runs / run_name)
        return Outcome(result["status"], result["error"], device_lost=result["device_lost"])

    def close(self) -> None:
        if self._owns_connection and self.ray.is_initialized():
            self.ray.shutdown()
