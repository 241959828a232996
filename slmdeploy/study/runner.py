"""``run_study``: a study directory filled in, whatever happens on the way.

    plan -> recover what a killed runner left -> probe devices -> export each
    (model, target) once -> every device works through its own jobs in parallel
    (one run per physical device at a time) -> reconcile the database with runs/

Each device has one worker thread: it runs its jobs grouped by artifact (deployed once,
then found on the device), rests ``cooldown.pause_s`` between runs, retries a failed job
``run.retries`` times and quarantines the device after ``run.quarantine_after`` failed
attempts in a row where the device stopped answering; the jobs it had left are recorded
as not run, never dropped. Where a job runs is the backend's business (``local``: on
this host's links to its devices; ``ray``: on the lab host that owns the device).
"""

from __future__ import annotations

import re
import threading
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

from slmdeploy.bench.workload import Workload
from slmdeploy.errors import SlmdeployError
from slmdeploy.export.artifact import Artifact
from slmdeploy.study.directory import StudyDir, mark_interrupted
from slmdeploy.study.events import Silent, Sink
from slmdeploy.study.journal import Journal, JobState
from slmdeploy.study.plan import Export, Job, Plan, build_plan
from slmdeploy.study.spec import DeviceEntry, Study, StudyError

PROBE_TIMEOUT_S = 60.0
INDEX_EVERY_S = 30.0  # how often results.duckdb catches up with runs/ while a study runs (and at its end)


@dataclass
class Outcome:
    """One attempt of one job, as the backend saw it."""

    status: str  # complete | incomplete | failed
    error: str | None = None
    device_lost: bool = False  # the device stopped answering (counts towards quarantine)


class Backend(Protocol):
    """Where jobs run: ``local`` (threads on this host) or ``ray`` (the host that owns each device)."""

    def discover(self) -> list[str]:
        """Device specs for ``adb = "all"``."""

    def probe(self, devices: list[DeviceEntry]) -> dict[str, str]:
        """spec -> why it cannot be used now, for each device that is offline."""

    def prepare(self, artifacts: list[Artifact]) -> None:
        """Make the artifacts available where the jobs will run."""

    def run_job(self, job: Job, artifact: Artifact, run_name: str, meta: dict[str, Any]) -> Outcome: ...

    def close(self) -> None: ...


@dataclass
class StudyResult:
    dir: Path
    jobs: int
    complete: int
    failed: list[dict[str, Any]] = field(default_factory=list)  # jobs whose last attempt did not complete
    not_run: list[dict[str, Any]] = field(default_factory=list)  # jobs that did not run, with the reason
    offline: dict[str, str] = field(default_factory=dict)
    quarantined: dict[str, str] = field(default_factory=dict)
    wall_s: float = 0.0

    @property
    def ok(self) -> bool:
        return self.complete == self.jobs

    def to_dict(self) -> dict[str, Any]:
        return {"dir": str(self.dir), "jobs": self.jobs, "complete": self.complete, "failed": self.failed,
                "not_run": self.not_run, "offline": self.offline, "quarantined": self.quarantined,
                "wall_s": round(self.wall_s, 3), "ok": self.ok}


def artifact_name(export: Export) -> str:
    name = f"{Path(export.model).name}-{Path(export.target).stem}"
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name)


class Runner:
    def __init__(self, study: Study, sd: StudyDir, journal: Journal, backend: Backend, sink: Sink,
                 progress: bool, require_all: bool) -> None:
        self.study, self.sd, self.journal, self.backend, self.sink = study, sd, journal, backend, sink
        self.progress, self.require_all = progress, require_all
        self.stop = threading.Event()
        self.state: dict[str, JobState] = {}
        self.not_run: dict[str, str] = {}
        self.quarantined: dict[str, str] = {}
        self.offline: dict[str, str] = {}
        self.artifacts: dict[str, Artifact] = {}

    # -- the steps ---------------------------------------------------------------------

    def run(self) -> StudyResult:
        start = time.monotonic()
        plan = build_plan(self.study, self._devices())
        state = self.journal.state()
        self.state = state.jobs
        self._recover(state.jobs)
        self.sd.reconcile()
        pending = [j for j in plan.jobs if not self._job(j.id).complete]
        self.journal.write("study", name=self.study.name, jobs=len(plan.jobs), pending=len(pending),
                           devices=[d.spec for d in plan.devices], backend=self.study.execution.backend)
        self._probe(plan, pending)
        self._announce(plan, pending)
        runnable = [j for j in pending if j.device not in self.offline]
        self._export(plan, runnable)
        runnable = [j for j in runnable if self._workload_fits(j)]
        self.backend.prepare(list(self.artifacts.values()))
        self._run_devices(plan, runnable)
        self.sd.reconcile()
        result = self._result(plan)
        result.wall_s = time.monotonic() - start
        self.sink.emit("study_end", **result.to_dict())
        return result

    def _announce(self, plan: Plan, pending: list[Job]) -> None:
        """The plan event: per device, its pending jobs and the plan's mean estimate of one."""
        mine: dict[str, list[Job]] = {d.spec: [] for d in plan.devices}
        for job in pending:
            mine[job.device].append(job)
        devices = [{"spec": spec, "jobs": len(jobs),
                    "estimate_s": sum(map(plan.estimate_s, jobs)) / len(jobs) if jobs else 0.0}
                   for spec, jobs in mine.items()]
        self.sink.emit("plan", study=self.study.name, jobs=len(plan.jobs), pending=len(pending), devices=devices)

    def _devices(self) -> list[DeviceEntry]:
        from slmdeploy.study.devices import resolve_devices

        return resolve_devices(self.study.devices, f"study {self.study.name}", discover=self.backend.discover)

    def _job(self, job_id: str) -> JobState:
        return self.state.setdefault(job_id, JobState())

    def _recover(self, jobs: dict[str, JobState]) -> None:
        """Attempts a killed runner left open: adopt finished ones, keep the others aside.

        First the orphaned runs are recovered from their devices (``bench.recover``): a
        harness that went on after the runner died is stopped, or found finished, and what
        it measured is pulled back, so an attempt that completed on the device is adopted
        rather than measured again.
        """
        if any(js.open_attempt for js in jobs.values()) and self.sd.runs.is_dir():
            from slmdeploy.bench.recover import recover_runs

            for recovered in recover_runs(self.sd.runs, by=f"study {self.study.name} (resume)"):
                self.sink.emit("recovered", run=recovered.run_dir.name, status=recovered.status,
                               detail=recovered.describe())
        for job_id, js in jobs.items():
            if js.open_attempt is None:
                continue
            attempt, rel = js.open_attempt
            run_dir = self.sd.run_path(rel)
            status = mark_interrupted(run_dir, "interrupted: the study runner stopped during this run") \
                if run_dir.is_dir() else "failed"
            if status == "complete":  # it finished (or was recovered finished): only the runner's `end` was lost
                self._end(job_id, attempt, "complete", rel, None, adopted=True)
                continue
            if run_dir.is_dir():
                self.sd.supersede(rel)
                rel = f"attempts/{run_dir.name}"
            self._end(job_id, attempt, "interrupted", rel, "the study runner stopped during this attempt")

    def _probe(self, plan: Plan, pending: list[Job]) -> None:
        used = [d for d in plan.devices if any(j.device == d.spec for j in pending)]
        self.offline = self.backend.probe(used)
        for device in used:
            reason = self.offline.get(device.spec)
            self.journal.write("device", device=device.spec, state="offline" if reason else "ok", reason=reason)
            if reason:
                self.sink.emit("device_offline", device=device.spec, reason=reason)
        if self.offline and self.require_all:
            listed = "; ".join(f"{s}: {r}" for s, r in self.offline.items())
            raise StudyError(f"{len(self.offline)} of {len(used)} devices are offline ({listed}); "
                             "connect them, or drop --require-all to run on the others.")
        for job in pending:
            if job.device in self.offline:
                self._not_run(job, f"device offline at start: {self.offline[job.device]}")

    def _export(self, plan: Plan, jobs: list[Job]) -> None:
        """Each (model, target) that a runnable job needs, exported once (the export cache makes repeats cheap),
        each build in a process of its own (isolated_export.py: memory is given back between models)."""
        from slmdeploy.study.isolated_export import export_isolated

        needed = [e for e in plan.exports if any(j.export == e for j in jobs)]
        failed: dict[Export, str] = {}
        self.sd.artifacts.mkdir(parents=True, exist_ok=True)
        for i, exp in enumerate(needed, 1):
            self.sink.emit("export_start", model=exp.model, target=exp.target, index=i, total=len(needed))
            t0 = time.monotonic()
            try:
                art = export_isolated(exp.model, exp.target, self.sd.artifacts / artifact_name(exp),
                                      max_seq_len=self.study.max_seq_len, progress=self.progress)
            except Exception as err:  # one model that cannot export must not stop a lab's whole study
                reason = str(err) if isinstance(err, SlmdeployError) else f"{type(err).__name__}: {err}"
                failed[exp] = reason
                self._log(f"export {exp.key} failed", err)
                self.journal.write("export", key=exp.key, error=reason)
                self.sink.emit("export_end", model=exp.model, target=exp.target, error=reason)
                continue
            self.artifacts[exp.key] = art
            self.journal.write("export", key=exp.key, artifact=str(art.path), sha256=art.manifest.model_file.sha256,
                               cache_hit=art.cache_hit)
            self.sink.emit("export_end", model=exp.model, target=exp.target, artifact=str(art.path),
                           cache_hit=art.cache_hit, wall_s=round(time.monotonic() - t0, 3))
        for job in jobs:
            if job.export in failed:
                self._not_run(job, f"export failed: {failed[job.export]}")

    def _workload_fits(self, job: Job) -> bool:
        art = self.artifacts.get(job.export.key)
        if art is None:
            return False
        try:
            self._workload(job).check(art.manifest)
        except SlmdeployError as err:
            self._not_run(job, str(err))
            return False
        return True

    def _workload(self, job: Job) -> Workload:
        r = self.study.run
        return Workload(prompt_tokens=job.workload.prompt, gen_tokens=job.workload.gen, warmup=r.warmup, runs=r.runs,
                        threads=job.workload.threads, telemetry_interval_ms=r.telemetry_ms)

    # -- running -----------------------------------------------------------------------

    def _run_devices(self, plan: Plan, jobs: list[Job]) -> None:
        self.sink.emit("runs_start", jobs=len(jobs))
        threads = []
        for device in plan.devices:
            mine = [j for j in jobs if j.device == device.spec]
            if mine:
                t = threading.Thread(target=self._device_loop, args=(device.spec, mine), daemon=True,
                                     name=f"study-{device.spec}")
                t.start()
                threads.append(t)
        finished = threading.Event()
        indexer = threading.Thread(target=self._index_until, args=(finished,), daemon=True, name="study-index")
        indexer.start()
        try:
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
        except KeyboardInterrupt:
            self.stop.set()  # workers finish their current job; a second Ctrl-C ends the process now
            self.sink.emit("stopping", reason="interrupted: finishing the running jobs (Ctrl-C again to stop now; "
                                              "`study run --resume` completes the rest)")
            for t in threads:
                while t.is_alive():
                    t.join(0.2)
            raise
        finally:
            finished.set()
            indexer.join()

    def _index_until(self, finished: threading.Event) -> None:
        """Keep the database a few seconds behind runs/, not one write per job (the run directory is the record)."""
        while not finished.wait(INDEX_EVERY_S):
            try:
                self.sd.reconcile()
            except Exception as err:  # an index that lags is caught up at the end; a study must not die of it
                self._log("indexing runs", err)

    def _device_loop(self, device: str, jobs: list[Job]) -> None:
        settings = self.study.run
        lost_in_a_row = 0
        for i, job in enumerate(jobs):
            if self.stop.is_set():
                return
            if device in self.quarantined:
                self._not_run(job, f"device quarantined: {self.quarantined[device]}")
                continue
            if i and self.study.cooldown.pause_s and self.stop.wait(self.study.cooldown.pause_s):
                return
            for failures in range(settings.retries + 1):
                outcome = self._attempt(job, final=failures == settings.retries)
                if outcome.status == "complete":
                    lost_in_a_row = 0
                    break
                lost_in_a_row = lost_in_a_row + 1 if outcome.device_lost else 0
                if lost_in_a_row >= settings.quarantine_after:
                    reason = f"{lost_in_a_row} failed attempts in a row without an answer; last: {outcome.error}"
                    self.quarantined[device] = reason
                    self.journal.write("device", device=device, state="quarantined", reason=reason)
                    self.sink.emit("quarantine", device=device, reason=reason)
                    break
                if self.stop.is_set():
                    return

    def _attempt(self, job: Job, final: bool) -> Outcome:
        js = self._job(job.id)
        if js.run_dir and js.run_dir.startswith("runs/"):  # the job's earlier result makes way for this one
            self.sd.supersede(js.run_dir)
            js.run_dir = f"attempts/{Path(js.run_dir).name}"
        attempt = js.started + 1
        js.started = attempt
        run_name = f"{job.name}-a{attempt}"
        rel = f"runs/{run_name}"
        self.journal.write("start", job=job.id, attempt=attempt, run_dir=rel, device=job.device)
        self.sink.emit("job_start", job=job.id, name=job.name, device=job.device, attempt=attempt)
        t0 = time.monotonic()
        meta = {"study": self.study.name, "job_id": job.id, "study_attempt": attempt, "repeat": job.repeat,
                **{f"label_{k}": v for k, v in job.labels}}
        try:
            outcome = self.backend.run_job(job, self.artifacts[job.export.key], run_name, meta)
        except Exception as err:  # a bug must not take the other devices' jobs down with it
            self._log(f"job {job.name} attempt {attempt}", err)
            outcome = Outcome("failed", f"{type(err).__name__}: {err}")
            mark_interrupted(self.sd.run_path(rel), outcome.error) if self.sd.run_path(rel).is_dir() else None
        wall = time.monotonic() - t0
        self._end(job.id, attempt, outcome.status, rel, outcome.error)
        self.sink.emit("job_end", job=job.id, name=job.name, device=job.device, attempt=attempt,
                       status=outcome.status, error=outcome.error, wall_s=round(wall, 3),
                       final=final or outcome.status == "complete")
        return outcome

    # -- records -----------------------------------------------------------------------

    def _end(self, job_id: str, attempt: int, status: str, rel: str, error: str | None, **extra: object) -> None:
        js = self._job(job_id)
        js.status, js.run_dir, js.error, js.open_attempt = status, rel, error, None
        self.journal.write("end", job=job_id, attempt=attempt, status=status, run_dir=rel, error=error, **extra)

    def _not_run(self, job: Job, reason: str) -> None:
        self.not_run[job.id] = reason
        self.journal.write("not_run", job=job.id, reason=reason)
        self.sink.emit("not_run", job=job.id, name=job.name, device=job.device, reason=reason)

    def _log(self, what: str, err: BaseException) -> None:
        with open(self.sd.path / "study.log", "a") as fh:
            fh.write(f"{time.strftime('%Y-%m-%dT%H:%M:%S')} {what}:\n")
            fh.write("".join(traceback.format_exception(err)))

    def _result(self, plan: Plan) -> StudyResult:
        result = StudyResult(dir=self.sd.path, jobs=len(plan.jobs), complete=0, offline=dict(self.offline),
                             quarantined=dict(self.quarantined))
        for job in plan.jobs:
            js = self._job(job.id)
            if js.complete:
                result.complete += 1
            elif job.id in self.not_run:
                result.not_run.append({**job.to_dict(), "reason": self.not_run[job.id]})
            elif js.status is not None:
                result.failed.append({**job.to_dict(), "status": js.status, "error": js.error, "run_dir": js.run_dir})
            else:  # stopped before its turn (Ctrl-C)
                result.not_run.append({**job.to_dict(), "reason": "the study was stopped before this job"})
        return result


def run_study(
    study_file: str | Path | None = None,
    study_dir: str | Path | None = None,
    *,
    resume: bool = False,
    require_all: bool | None = None,
    sink: Sink | None = None,
    progress: bool = True,
    backend: Backend | None = None,
    devices: list[str] | None = None,
) -> StudyResult:
    """Run (or with ``resume``, complete) a study into ``study_dir``; see the module docstring.

    ``study_dir`` defaults to ``studies/<name>``. A resumed study reads the study file it
    was started with from its directory (``study_file``, if given, must be that file).
    ``backend`` defaults to the study's ``[execution] backend``. ``devices`` (device specs)
    replace the study file's ``[devices]`` in a new study (a resumed one keeps its own).
    """
    if study_file is None and not resume:
        raise StudyError("a study file is needed to start a study (resume takes the one in --dir).")
    if resume and devices:
        raise StudyError("--device is for a new study; a resumed study runs on the devices it started with.")
    if study_dir is None:
        if study_file is None:
            raise StudyError("--resume needs --dir: the study directory to complete.")
        from slmdeploy.study.spec import load_study

        study_dir = Path("studies") / re.sub(r"[^A-Za-z0-9_.-]+", "_", load_study(study_file).name)
    sd = StudyDir.open(Path(study_dir), study_file and Path(study_file)) if resume else \
        StudyDir.create(Path(study_dir), Path(study_file), devices)
    study = sd.study()
    sink = sink or Silent()
    with sd.runner_lock():
        journal = Journal(sd.path)
        backend = backend or make_backend(study, sd)
        try:
            runner = Runner(study, sd, journal, backend, sink, progress,
                            study.devices.require_all if require_all is None else require_all)
            return runner.run()
        finally:
            backend.close()
            journal.close()


def make_backend(study: Study, sd: StudyDir) -> Backend:
    if study.execution.backend == "ray":
        from slmdeploy.study.ray_backend import RayBackend

        return RayBackend(study, sd)
    from slmdeploy.study.local_backend import LocalBackend

    return LocalBackend(study, sd)

