"""``slmdeploy.bench()``: artifact + device + workload -> a stored, analysed run.

    deploy (verified, cached) -> run the harness in a fresh device run dir -> pull the
    trace into the local run dir -> summarise -> store in the results database.

Whatever happens, the run directory keeps what was measured and says whether it is
complete; a harness failure is raised only after that is written. Ctrl-C, SIGTERM and SIGHUP
stop the harness, pull its trace and mark the run before the exception leaves ``bench``; a
bench killed outright leaves an orphan that the next bench on the device (or ``report``)
settles (``bench/recover.py``). Arguments are checked before any work is done.
"""

from __future__ import annotations

import contextlib
import logging
import math
import os
import shlex
import shutil
import socket
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from slmdeploy.analysis.metrics import summarize
from slmdeploy.analysis.ops import ETDUMP_FILE, LITERT_PROFILE_FILE, profile_file_for
from slmdeploy.analysis.records import TRACE_FILE
from slmdeploy.analysis.roofline import kv_facts, trace_bandwidth
from slmdeploy.analysis.store import DB_NAME, check_db, store_run
from slmdeploy.analysis.validate import check_trace
from slmdeploy.bench import harnesses
from slmdeploy.bench.inputs import load_inputs, write_inputs
from slmdeploy.bench.recover import recover_runs
from slmdeploy.bench.rundir import PULLED, RunDir, check_runs_dir, now_iso, unfinished_status
from slmdeploy.signals import terminate_as_interrupt
from slmdeploy.bench.workload import Workload
from slmdeploy.devices import Device, bandwidth_store, open_device
from slmdeploy.devices.clean import kill_run, kill_strays, kill_strays_quietly
from slmdeploy.devices.cooldown import wait_until_cool
from slmdeploy.devices.deploy import deploy_file, deploy_files, pull_into
from slmdeploy.devices.spec import parse as parse_device
from slmdeploy.errors import DeviceError, HarnessError, SlmdeployError, WorkloadError
from slmdeploy.export.artifact import Artifact
from slmdeploy.export.source import sha256_file
from slmdeploy.harness import bandwidth
from slmdeploy.harness.protocol import EXIT_OK, HarnessArgs
from slmdeploy.harness.trace import read_trace

log = logging.getLogger(__name__)

DEFAULT_RUNS_DIR = Path("runs")
ACCELERATORS = ("cpu", "gpu")


@dataclass
class RunResult:
    run_dir: Path
    status: str  # "complete" | "incomplete" | "failed"
    summary: dict[str, Any]
    meta: dict[str, Any]

    def row(self) -> dict[str, Any]:
        from slmdeploy.analysis.records import record

        return record(self.run_dir)


def resolve_artifact(artifact: str | Path | Artifact, progress: bool) -> Artifact:
    """An artifact directory, or a model name (exported for this host first, cached)."""
    if isinstance(artifact, Artifact):
        return artifact
    path = Path(artifact)
    if path.is_dir() or path.name == "manifest.json":
        return Artifact.open(path)
    from slmdeploy.export import export

    return export(str(artifact), progress=progress)


def _deploy(device: Device, artifact: Artifact, plan: harnesses.HarnessPlan, progress: bool) -> tuple[str, list[str]]:
    """The model (and the native harness with its libraries) on the device: one round trip when all are there."""
    files = [(artifact.model_file, artifact.manifest.model_file.sha256, False)]
    if plan.name == "native":
        binary, *libs = plan.files
        files += [(lib, sha256_file(lib), False) for lib in libs] + [(binary, sha256_file(binary), True)]
    model_remote, *bundle = deploy_files(device, files, progress=progress)
    if plan.name == "python":
        return model_remote, plan.command
    *lib_blobs, remote_bin = bundle
    lib_dir = f"{device.workdir}/lib"
    q = shlex.quote
    links = " && ".join(f"ln -sf {q(blob)} {q(f'{lib_dir}/{lib.name}')}" for lib, blob in zip(libs, lib_blobs))
    device.shell(f"mkdir -p {q(lib_dir)}" + (f" && {links}" if links else ""), timeout=30)
    return model_remote, ["env", f"LD_LIBRARY_PATH={lib_dir}", remote_bin]


def check_accelerator(accelerator: str, artifact: Artifact, harness: str) -> None:
    """``accelerator="gpu"`` is LiteRT's GPU accelerator: a .tflite meant for it, the native harness."""
    if accelerator not in ACCELERATORS:
        raise WorkloadError(f"unknown accelerator {accelerator!r}; choose one of {', '.join(ACCELERATORS)}.")
    if accelerator == "cpu":
        return
    m = artifact.manifest
    if m.runtime != "tflite":
        raise WorkloadError(f"--accelerator gpu selects LiteRT's GPU accelerator; {artifact.name} is {m.runtime} "
                            "(its delegates were chosen at export). Export a tflite target, or drop --accelerator.")
    if "gpu" not in m.delegates:
        raise WorkloadError(f"--accelerator gpu: {artifact.name} was exported for {'+'.join(m.delegates)}, not gpu. "
                            "Export a tflite target whose delegates include gpu, or use --accelerator cpu.")
    if harness == "python":
        raise HarnessError("--accelerator gpu needs the native harness (the Python harness runs ExecuTorch only); "
                           "use --harness native or auto.")


def _native_extensions(profile_file: str | None, accelerator: str) -> list[str]:
    """The native harness's LiteRT flags (not protocol v1): its op profiler, its GPU (cpu is the default)."""
    flags = ["--litert-profile", LITERT_PROFILE_FILE] if profile_file == LITERT_PROFILE_FILE else []
    return flags + (["--accelerator", accelerator] if accelerator != "cpu" else [])


def _harness_args(artifact: Artifact, workload: Workload, model_remote: str, run_id: str,
                  profile: str | None, bandwidth_probe: bool = False) -> HarnessArgs:
    m = artifact.manifest
    args = HarnessArgs(
        model=model_remote,
        trace=TRACE_FILE,
        runtime=m.runtime,
        warmup=workload.warmup,
        runs=workload.runs,
        threads=workload.threads,
        seed=workload.seed,
        telemetry_interval_ms=workload.telemetry_interval_ms,
        run_id=run_id,
        artifact_sha256=m.model_file.sha256,
        etdump=profile if profile == ETDUMP_FILE else "",
    )
    if m.llm is not None:
        args.workload = "llm"
        args.prompt_tokens, args.gen_tokens = workload.prompt_tokens, workload.gen_tokens
        args.max_seq_len, args.vocab_size = m.llm.max_seq_len, m.llm.vocab_size
        args.prefill_method, args.decode_method = m.llm.prefill_method, m.llm.decode_method
    else:
        args.workload, args.iterations, args.method = "generic", workload.iterations, m.methods[0].name
    args.bandwidth_probe_mib = bandwidth.DEFAULT_MIB if bandwidth_probe else 0
    return args


def _run_once(device: Device, rd: RunDir, command: list[str], args: HarnessArgs, timeout: float,
              profile: str | None, progress: bool = False) -> int:
    remote_run = _remote_run(device, rd)
    names = PULLED + ((profile,) if profile else ())
    q = shlex.quote
    device.shell(["mkdir", "-p", remote_run], timeout=30)
    line = (
        f"cd {q(remote_run)} && echo $$ > harness.pid && "
        f"exec {shlex.join(command + args.argv())} > harness.stdout 2> harness.stderr"
    )
    exit_code: int | None = None
    error: str | None = None
    rd.unpulled = True
    try:
        exit_code = device.shell(line, timeout=timeout).exit_code
    except DeviceError as err:  # dropped connection or timeout: pull what is there
        error = str(err)
        kill_strays_quietly(device)
    except BaseException:  # interrupted here (Ctrl-C, SIGTERM): stop the harness, keep what it measured
        _salvage(device, rd, remote_run, names)
        raise
    pull_into(device, remote_run, rd.path, names, progress=progress)
    rd.unpulled = False
    if error is not None:
        raise DeviceError(error)
    return exit_code if exit_code is not None else -1


def _remote_run(device: Device, rd: RunDir) -> str:
    return f"{device.workdir}/runs/{rd.run_id}"


def _salvage(device: Device, rd: RunDir, remote_run: str, names: tuple[str, ...]) -> None:
    """After an interruption: the harness stopped, its files pulled; a device error leaves it to recovery."""
    try:
        kill_run(device, remote_run)
        pull_into(device, remote_run, rd.path, names)
        rd.unpulled = False
    except SlmdeployError:  # the link is down too: the run stays pending for the next look
        pass


def check_arguments(device: str | Device, *, timeout: float, retries: int, cooldown_c: float | None,
                    cooldown_timeout: float) -> None:
    """bench's own arguments, checked before any work (the workload's are ``Workload.check``)."""
    if isinstance(device, str):
        parse_device(device)
    if not isinstance(timeout, (int, float)) or not math.isfinite(timeout) or timeout <= 0:
        raise WorkloadError(f"--timeout must be a positive number of seconds, got {timeout}.")
    if not isinstance(retries, int) or retries < 0:
        raise WorkloadError(f"--retries cannot be negative, got {retries}.")
    if cooldown_c is not None and not math.isfinite(cooldown_c):
        raise WorkloadError(f"--cooldown-below must be a temperature in °C, got {cooldown_c}.")
    if not math.isfinite(cooldown_timeout) or cooldown_timeout < 0:
        raise WorkloadError(f"--cooldown-timeout cannot be negative, got {cooldown_timeout}.")


def bench(
    artifact: str | Path | Artifact,
    device: str | Device = "local",
    *,
    workload: Workload | None = None,
    harness: str = "auto",
    runs_dir: str | Path = DEFAULT_RUNS_DIR,
    db: str | Path | None = None,
    timeout: float = 1800.0,
    retries: int = 0,
    profile: bool = False,
    python: str | None = None,
    progress: bool = True,
    cooldown_c: float | None = None,
    cooldown_timeout: float = 600.0,
    accelerator: str = "cpu",
    run_name: str | None = None,
    meta: dict[str, Any] | None = None,
    store: bool = True,
    bandwidth_probe: bool | None = None,
) -> RunResult:
    """Benchmark ``artifact`` on ``device``; see the module docstring for the flow.

    ``harness`` is ``auto`` (Python on this host, native elsewhere), ``python`` or ``native``;
    ``python`` names the interpreter on the device for the Python harness. With
    ``cooldown_c``, every attempt first waits (up to ``cooldown_timeout`` s) until the
    device's hottest thermal zone is below that many °C. ``accelerator`` (``cpu`` or
    ``gpu``) is LiteRT's: ``gpu`` runs a .tflite whose target lists the gpu delegate on the
    device's GPU accelerator (native harness), and fails if the device's LiteRT has none.
    ``run_name`` names the run directory (default: time, artifact, device, random suffix);
    ``meta`` adds fields to run.json (a study records its name, job and device labels there).
    ``store=False`` leaves the database to the caller (a study indexes its runs in batches).
    ``bandwidth_probe`` asks the harness to measure the device's memory bandwidth first
    (None: for LLM artifacts); the result is also kept per device (docs/roofline.md).
    """
    workload = workload or Workload()
    workload.check()
    check_arguments(device, timeout=timeout, retries=retries, cooldown_c=cooldown_c, cooldown_timeout=cooldown_timeout)
    runs_dir = Path(runs_dir)
    check_runs_dir(runs_dir)
    db_path = (Path(db) if db else runs_dir / DB_NAME).absolute()
    if store:
        check_db(db_path)
    art = resolve_artifact(artifact, progress)
    art.verify()
    workload.check(art.manifest)
    check_accelerator(accelerator, art, harness)
    given_inputs = load_inputs(workload.inputs, art.manifest)
    dev = open_device(device)
    how = _Attempts(timeout, retries, profile_file_for(art.manifest.runtime) if profile else None, progress,
                    cooldown_c, cooldown_timeout)
    with terminate_as_interrupt(), _closing(dev, opened=dev is not device), \
            RunDir.create(runs_dir, art.name, dev.spec, name=run_name) as rd:
        m = art.manifest
        rd.update(
            run_id=rd.run_id, status="running", started_at=now_iso(), model=m.model.get("id"),
            params=m.model.get("params"), artifact=m.name, artifact_path=str(art.path.resolve()),
            artifact_sha256=m.model_file.sha256, model_size=m.model_file.size, runtime=m.runtime,
            delegates=m.delegates, quant=m.quantization.get("scheme"), target=m.target.get("name"),
            device=dev.spec, workload=workload.to_dict(),
            **({"kv_cache": kv_facts(m.to_dict()).to_dict()} if m.llm is not None else {}),
            **({"accelerator": accelerator} if m.runtime == "tflite" else {}), **(meta or {}),
        )
        # who is measuring and where its files are: what a recovery needs if this process dies
        rd.update(host=socket.gethostname(), pid=os.getpid(), db=str(db_path) if store else None,
                  device_run_dir=_remote_run(dev, rd))
        shutil.copy2(art.path / "manifest.json", rd.path / "manifest.json")
        input_files = write_inputs(given_inputs, rd.path / "inputs")
        try:
            with dev.lock():
                recover_runs(runs_dir, dev, device_locked=True, by=f"bench {rd.run_id}", progress=progress)
                info = dev.info()
                rd.write_json("device.json", info.to_dict())
                plan = harnesses.plan(harness, getattr(dev, "transport", "local"), info, art, python=python)
                rd.update(device_model=info.model, device_soc=info.soc, device_abi=info.abi, harness=plan.name)
                # a harness still running here shares the device with this run: recorded, and the
                # run is flagged invalid by the analysis (analysis/validity.py)
                rd.update(strays_killed=kill_strays(dev))
                model_remote, command = _deploy(dev, art, plan, progress)
                command = [*command, *_native_extensions(how.profile, accelerator)]
                probe = _probe_bandwidth(bandwidth_probe, art, plan, getattr(dev, "transport", "local"))
                args = _harness_args(art, workload, model_remote, rd.run_id, how.profile, probe)
                args.inputs = [deploy_file(dev, f, sha256_file(f), progress=False)[0] for f in input_files]
                outcome = _attempts(dev, rd, command, args, how)
        except BaseException as err:
            fields: dict[str, Any] = dict(status=unfinished_status(rd.path), finished_at=now_iso(), error=_reason(err))
            if rd.unpulled:  # the device may still hold what the harness measured: a later look pulls it
                fields["recovery"] = {"status": "pending", "at": now_iso(), "by": f"bench {rd.run_id}",
                                      "note": "interrupted before the harness's files were pulled"}
            rd.update(**fields)
            if store:
                _store_quietly(rd, db_path)
            raise
        status = "complete" if outcome.complete else unfinished_status(rd.path)
        _remember_bandwidth(rd, dev.spec)
        rd.update(status=status, finished_at=now_iso(), error=outcome.error, **_accelerated(rd))
        if store:
            store_run(rd.path, db_path)
    # what the device sent back is checked like any trace (analysis/validate.py): no impossible number
    summary = summarize(check_trace(rd.path / TRACE_FILE).trace) if (rd.path / TRACE_FILE).exists() else {}
    result = RunResult(run_dir=rd.path, status=status, summary=summary, meta=rd.meta)
    if not outcome.complete:
        raise HarnessError(f"run {rd.run_id} is {status}: {outcome.error}. What was measured is kept in {rd.path}.")
    return result


def _probe_bandwidth(asked: bool | None, art: Artifact, plan: harnesses.HarnessPlan, transport: str) -> bool:
    """Whether the harness measures memory bandwidth first: as asked, else (auto) for LLM artifacts
    (~0.3 s), except with the Python harness on another machine, whose installed slmdeploy may
    predate ``--bandwidth-probe-mib``."""
    if asked is not None:
        return asked
    return art.manifest.llm is not None and (plan.name == "native" or transport == "local")


def _remember_bandwidth(rd: RunDir, spec: str) -> None:
    """Keep the run's bandwidth probe as the device's last measurement (a cache: never fails the run)."""
    trace_path = rd.path / TRACE_FILE
    if not trace_path.is_file():
        return
    trace = read_trace(trace_path)
    probe = trace_bandwidth(trace)
    if probe is None:
        return
    try:
        bandwidth_store.remember(spec, probe, harness=trace.header.get("harness", {}).get("name"), run_id=rd.run_id)
    except OSError as err:
        log.warning("could not keep the bandwidth of %s in %s: %s", spec, bandwidth_store.store_dir(), err)


def _reason(err: BaseException) -> str:
    """run.json's ``error`` for an exception: an interruption names its signal."""
    if isinstance(err, KeyboardInterrupt):
        return f"interrupted on the host ({err.args[0] if err.args else 'SIGINT'})"
    return str(err) or type(err).__name__


@dataclass
class _Attempts:
    """How each attempt runs (``bench``'s arguments)."""

    timeout: float
    retries: int
    profile: str | None  # the op-level profile file the harness writes, if asked for
    progress: bool
    cooldown_c: float | None
    cooldown_timeout: float


@dataclass
class _Outcome:
    complete: bool
    error: str | None  # why the last attempt is not complete


def _attempts(dev: Device, rd: RunDir, command: list[str], args: HarnessArgs, how: _Attempts) -> _Outcome:
    """Run the harness up to ``1 + retries`` times, until one attempt is complete.

    After a failed attempt that is retried, run.json already says ``incomplete`` (with the
    attempts so far and why), so a process killed during the retry leaves an honest record;
    the failed attempt's trace is kept as ``trace.attemptN.jsonl``. Stray harnesses are
    killed before every retry, whatever ended the attempt before.
    """
    cooldowns: list[dict[str, Any]] = []
    attempts = 0
    while True:
        attempts += 1
        if attempts > 1:
            kill_strays_quietly(dev)
        if how.cooldown_c is not None:
            cooldowns.append(wait_until_cool(dev, how.cooldown_c, how.cooldown_timeout))
            rd.update(cooldown=cooldowns, cooldown_wait_s=round(sum(c["waited_s"] for c in cooldowns), 3))
        start = time.perf_counter()
        try:
            exit_code = _run_once(dev, rd, command, args, how.timeout, how.profile, how.progress)
            failure = None
        except DeviceError as err:
            exit_code, failure = None, str(err)
        trace = read_trace(rd.path / TRACE_FILE) if (rd.path / TRACE_FILE).exists() else None
        # the link dropped but the harness finished on the device (its footer came back): the
        # measurement is whole, and throwing it away would only make the lab run it again
        finished_unseen = failure is not None and bool(trace and trace.complete)
        complete = bool(trace and trace.complete and (exit_code == EXIT_OK or finished_unseen))
        rd.update(attempts=attempts, harness_exit_code=exit_code, wall_s=round(time.perf_counter() - start, 3))
        if finished_unseen:
            rd.update(link_lost=failure)
        if complete:
            return _Outcome(True, None)
        error = failure or (trace.error if trace else None) or _stderr_tail(rd) or f"harness exit {exit_code}"
        if attempts > how.retries:
            return _Outcome(False, error)
        rd.update(status=unfinished_status(rd.path), error=f"attempt {attempts} of {how.retries + 1} failed: {error}; retrying")
        if trace is not None:  # keep the interrupted attempt's measurements beside the retry
            (rd.path / TRACE_FILE).rename(rd.path / f"trace.attempt{attempts}.jsonl")


def _accelerated(rd: RunDir) -> dict[str, Any]:
    """The native LiteRT harness's word on what ran: whether every op went to the accelerator."""
    path = rd.path / TRACE_FILE
    loads = read_trace(path).of("load") if path.exists() else []
    fully = loads[0].get("fully_accelerated") if loads else None
    return {"fully_accelerated": fully} if isinstance(fully, bool) else {}


def _stderr_tail(rd: RunDir) -> str | None:
    """The harness's last stderr line: the likeliest reason it failed."""
    path = rd.path / "harness.stderr"
    lines = path.read_text(errors="replace").strip().splitlines() if path.exists() else []
    return lines[-1] if lines else None


@contextlib.contextmanager
def _closing(dev: Device, opened: bool) -> Iterator[None]:
    """Close a device bench opened itself (an ssh/adb-direct connection), not one it was given."""
    try:
        yield
    finally:
        if opened:
            dev.close()


def _store_quietly(rd: RunDir, db: Path) -> None:
    try:
        store_run(rd.path, db)
    except Exception:  # the run directory is the record; the database is an index of it
        pass
