"""``slmdeploy.bench()``: artifact + device + workload -> a stored, analysed run.

    deploy (verified, cached) -> run the harness in a fresh device run dir -> pull the
    trace into the local run dir -> summarise -> store in the results database.

Whatever happens, the run directory keeps what was measured and says whether it is
complete; a harness failure is raised only after that is written.
"""

from __future__ import annotations

import contextlib
import shlex
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from slmdeploy.analysis.metrics import summarize
from slmdeploy.analysis.ops import ETDUMP_FILE, LITERT_PROFILE_FILE, profile_file_for
from slmdeploy.analysis.records import TRACE_FILE
from slmdeploy.analysis.store import DB_NAME, store_run
from slmdeploy.bench import harnesses
from slmdeploy.bench.inputs import load_inputs, write_inputs
from slmdeploy.bench.rundir import RunDir, now_iso
from slmdeploy.bench.workload import Workload
from slmdeploy.devices import Device, open_device
from slmdeploy.devices.clean import kill_strays, kill_strays_quietly
from slmdeploy.devices.cooldown import wait_until_cool
from slmdeploy.devices.deploy import deploy_file, pull_into
from slmdeploy.errors import DeviceError, HarnessError, WorkloadError
from slmdeploy.export.artifact import Artifact
from slmdeploy.export.source import sha256_file
from slmdeploy.harness.protocol import EXIT_OK, HarnessArgs
from slmdeploy.harness.trace import read_trace

DEFAULT_RUNS_DIR = Path("runs")
PULLED = (TRACE_FILE, "harness.stdout", "harness.stderr")
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
    entry = artifact.manifest.model_file
    model_remote, _ = deploy_file(device, artifact.model_file, entry.sha256, progress=progress)
    if plan.name == "python":
        return model_remote, plan.command
    binary, *libs = plan.files
    lib_dir = f"{device.workdir}/lib"
    device.shell(["mkdir", "-p", lib_dir], timeout=30)
    for lib in libs:
        remote, _ = deploy_file(device, lib, sha256_file(lib), progress=progress)
        device.shell(["ln", "-sf", remote, f"{lib_dir}/{lib.name}"], timeout=30)
    remote_bin, _ = deploy_file(device, binary, sha256_file(binary), executable=True, progress=progress)
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
                  profile: str | None) -> HarnessArgs:
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
    return args


def _run_once(device: Device, rd: RunDir, command: list[str], args: HarnessArgs, timeout: float,
              profile: str | None, progress: bool = False) -> int:
    remote_run = f"{device.workdir}/runs/{rd.run_id}"
    q = shlex.quote
    device.shell(["mkdir", "-p", remote_run], timeout=30)
    line = (
        f"cd {q(remote_run)} && echo $$ > harness.pid && "
        f"exec {shlex.join(command + args.argv())} > harness.stdout 2> harness.stderr"
    )
    exit_code: int | None = None
    error: str | None = None
    try:
        exit_code = device.shell(line, timeout=timeout).exit_code
    except DeviceError as err:  # dropped connection or timeout: pull what is there
        error = str(err)
        kill_strays_quietly(device)
    pull_into(device, remote_run, rd.path, PULLED + ((profile,) if profile else ()), progress=progress)
    if error is not None:
        raise DeviceError(error)
    return exit_code if exit_code is not None else -1


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
) -> RunResult:
    """Benchmark ``artifact`` on ``device``; see the module docstring for the flow.

    ``harness`` is ``auto`` (Python on this host, native elsewhere), ``python`` or ``native``;
    ``python`` names the interpreter on the device for the Python harness. With
    ``cooldown_c``, every attempt first waits (up to ``cooldown_timeout`` s) until the
    device's hottest thermal zone is below that many °C. ``accelerator`` (``cpu`` or
    ``gpu``) is LiteRT's: ``gpu`` runs a .tflite whose target lists the gpu delegate on the
    device's GPU accelerator (native harness), and fails if the device's LiteRT has none.
    """
    workload = workload or Workload()
    art = resolve_artifact(artifact, progress)
    art.verify()
    workload.check(art.manifest)
    check_accelerator(accelerator, art, harness)
    given_inputs = load_inputs(workload.inputs, art.manifest)
    dev = open_device(device)
    runs_dir = Path(runs_dir)
    rd = RunDir.create(runs_dir, art.name, dev.spec)
    db_path = Path(db) if db else runs_dir / DB_NAME
    m = art.manifest
    rd.update(
        run_id=rd.run_id, status="running", started_at=now_iso(), model=m.model.get("id"),
        params=m.model.get("params"), artifact=m.name, artifact_path=str(art.path.resolve()),
        artifact_sha256=m.model_file.sha256, model_size=m.model_file.size, runtime=m.runtime,
        delegates=m.delegates, quant=m.quantization.get("scheme"), target=m.target.get("name"),
        device=dev.spec, workload=workload.to_dict(),
        **({"accelerator": accelerator} if m.runtime == "tflite" else {}),
    )
    shutil.copy2(art.path / "manifest.json", rd.path / "manifest.json")
    input_files = write_inputs(given_inputs, rd.path / "inputs")
    try:
        with dev.lock(), _closing(dev, opened=dev is not device):
            info = dev.info()
            rd.write_json("device.json", info.to_dict())
            plan = harnesses.plan(harness, getattr(dev, "transport", "local"), info, art, python=python)
            rd.update(device_model=info.model, device_soc=info.soc, device_abi=info.abi, harness=plan.name)
            kill_strays(dev)
            model_remote, command = _deploy(dev, art, plan, progress)
            profile_file = profile_file_for(m.runtime) if profile else None
            command = [*command, *_native_extensions(profile_file, accelerator)]
            args = _harness_args(art, workload, model_remote, rd.run_id, profile_file)
            args.inputs = [deploy_file(dev, f, sha256_file(f), progress=False)[0] for f in input_files]
            outcome = _attempts(dev, rd, command, args, _Attempts(timeout, retries, profile_file, progress, cooldown_c,
                                                                   cooldown_timeout))
    except BaseException as err:
        rd.update(status="incomplete" if _measured(rd) else "failed",
                  finished_at=now_iso(), error=str(err) or type(err).__name__)
        _store_quietly(rd, db_path)
        raise
    status = "complete" if outcome.complete else "incomplete"
    rd.update(status=status, finished_at=now_iso(), error=outcome.error, **_accelerated(rd))
    store_run(rd.path, db_path)
    summary = summarize(read_trace(rd.path / TRACE_FILE)) if (rd.path / TRACE_FILE).exists() else {}
    result = RunResult(run_dir=rd.path, status=status, summary=summary, meta=rd.meta)
    if not outcome.complete:
        raise HarnessError(f"run {rd.run_id} is {status}: {outcome.error}. What was measured is kept in {rd.path}.")
    return result


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
        rd.update(status="incomplete", error=f"attempt {attempts} of {how.retries + 1} failed: {error}; retrying")
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


def _measured(rd: RunDir) -> bool:
    """Whether any attempt left a trace (the current one, or an earlier one kept beside it)."""
    return (rd.path / TRACE_FILE).exists() or any(rd.path.glob("trace.attempt*.jsonl"))


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
