"""The study file: what a lab or a CI job wants measured, as TOML.

    name = "nightly"
    models = ["smollm2-135m", "./checkpoints/mine"]
    targets = ["android-xnnpack-fp32", "android-xnnpack-8da4w"]

    [devices]
    specs = ["adb:R58N12ABCDE"]       # and/or: adb = "all", inventory = "lab.toml"

    [[workloads]]
    prompt = [64, 128]                # a list expands into one workload per value
    gen = 64
    threads = [1, 4]

    [run]
    runs = 5

Everything is checked when the file is read, before any export or device work; an error
names the key (``workloads[0].prompt``) and says what it takes. The format is documented
in docs/studies.md.
"""

from __future__ import annotations

import itertools
import tomllib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from slmdeploy.errors import SlmdeployError


class StudyError(SlmdeployError):
    """A study file (or study directory) that cannot be used as written."""


@dataclass(frozen=True)
class DeviceEntry:
    """One device of the study: a spec (``adb:SERIAL``, ``local``, ...) and the labels a lab gave it."""

    spec: str
    labels: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class DeviceSelection:
    specs: tuple[DeviceEntry, ...] = ()
    adb_all: bool = False  # every device in state "device" on the adb server
    inventory: Path | None = None  # a lab's device list (TOML, [[device]] spec + labels)
    labels: dict[str, str] = field(default_factory=dict)  # keep inventory devices with these labels
    require_all: bool = False  # refuse to start when a device is offline
    reconnect_s: float = 30.0  # how long a phone that dropped off (USB, Wi-Fi) may take to come back


@dataclass(frozen=True)
class WorkloadSpec:
    """One expanded workload: a single value per knob."""

    prompt: int = 128
    gen: int = 64
    threads: int = 0

    @property
    def label(self) -> str:
        return f"pp{self.prompt}+tg{self.gen}" + (f"@{self.threads}t" if self.threads else "")


@dataclass(frozen=True)
class RunSettings:
    """How each run is measured (``slmdeploy bench``'s knobs) and how failures are handled."""

    runs: int = 5
    warmup: int = 1
    repeat: int = 1  # separate benches of every job (spread over the study, to see drift)
    harness: str = "auto"
    timeout_s: float = 1800.0
    retries: int = 1  # further attempts of a failed job on the same device
    quarantine_after: int = 3  # consecutive failed jobs that take a device out of the study
    telemetry_ms: int = 500
    profile: bool = False


@dataclass(frozen=True)
class Cooldown:
    below_c: float | None = None  # before each run, wait until the hottest zone is below this
    timeout_s: float = 600.0
    pause_s: float = 0.0  # and rest this long between two runs on one device


@dataclass(frozen=True)
class Execution:
    backend: str = "local"  # "local" (threads, one per device) or "ray" (devices on many hosts)
    ray_address: str | None = None


@dataclass(frozen=True)
class Study:
    name: str
    models: tuple[str, ...]
    targets: tuple[str, ...]
    devices: DeviceSelection
    workloads: tuple[WorkloadSpec, ...]
    run: RunSettings = RunSettings()
    cooldown: Cooldown = Cooldown()
    execution: Execution = Execution()
    description: str = ""
    max_seq_len: int | None = None
    base_dir: Path = Path(".")  # relative paths in the file (checkpoints, inventory, targets) start here

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        data["base_dir"] = str(self.base_dir)
        data["devices"]["inventory"] = str(self.devices.inventory) if self.devices.inventory else None
        return data


# -- reading ------------------------------------------------------------------------------

_TOP = {"name", "description", "models", "targets", "max_seq_len", "devices", "workloads", "run", "cooldown",
        "execution"}
_DEVICES = {"specs", "adb", "inventory", "labels", "require_all", "reconnect_s", "device"}
_WORKLOAD = {"prompt", "gen", "threads"}
_RUN = {f for f in RunSettings.__dataclass_fields__}
_COOLDOWN = {"below_c", "timeout_s", "pause_s"}
_EXECUTION = {"backend", "ray_address"}
BACKENDS = ("local", "ray")
HARNESSES = ("auto", "python", "native")


class _Reader:
    """Typed access to one TOML table; every error names the file and the key."""

    def __init__(self, where: str, table: Any, prefix: str = "") -> None:
        self.where, self.prefix = where, prefix
        if not isinstance(table, dict):
            raise StudyError(f"{where}: {prefix.rstrip('.') or 'the file'} must be a table.")
        self.table = table

    def fail(self, key: str, message: str) -> StudyError:
        return StudyError(f"{self.where}: {self.prefix}{key} {message}")

    def known(self, allowed: set[str]) -> None:
        unknown = sorted(set(self.table) - allowed)
        if unknown:
            raise self.fail(unknown[0], f"is not a study setting here; this table takes {', '.join(sorted(allowed))} "
                                        "(see docs/studies.md).")

    def sub(self, key: str) -> "_Reader":
        return _Reader(self.where, self.table.get(key, {}), f"{self.prefix}{key}.")

    def string(self, key: str, default: str | None = None, required: bool = False) -> str | None:
        value = self.table.get(key, default)
        if value is None and required:
            raise self.fail(key, "is required (a string).")
        if value is not None and (not isinstance(value, str) or not value.strip()):
            raise self.fail(key, f"must be a non-empty string, got {value!r}.")
        return value

    def strings(self, key: str, required: bool = False) -> tuple[str, ...]:
        value = self.table.get(key)
        if value is None:
            if required:
                raise self.fail(key, "is required: a list of strings, e.g. [\"llama-tiny\"].")
            return ()
        if isinstance(value, str):
            value = [value]
        if not isinstance(value, list) or not value or not all(isinstance(v, str) and v.strip() for v in value):
            raise self.fail(key, f"must be a non-empty list of non-empty strings, got {value!r}.")
        return tuple(v.strip() for v in value)

    def number(self, key: str, default: Any, *, integer: bool = False, minimum: float | None = None,
               above: float | None = None) -> Any:
        value = self.table.get(key, default)
        if value is None:
            return None
        kinds = (int,) if integer else (int, float)
        if isinstance(value, bool) or not isinstance(value, kinds):
            raise self.fail(key, f"must be {'an integer' if integer else 'a number'}, got {value!r}.")
        if minimum is not None and value < minimum:
            raise self.fail(key, f"must be at least {minimum:g}, got {value!r}.")
        if above is not None and value <= above:
            raise self.fail(key, f"must be greater than {above:g}, got {value!r}.")
        return value

    def ints(self, key: str, default: int, minimum: int) -> tuple[int, ...]:
        value = self.table.get(key, default)
        values = value if isinstance(value, list) else [value]
        if not values:
            raise self.fail(key, "must not be an empty list.")
        for v in values:
            if isinstance(v, bool) or not isinstance(v, int) or v < minimum:
                raise self.fail(key, f"must be an integer >= {minimum} (or a list of them), got {v!r}.")
        return tuple(dict.fromkeys(values))

    def flag(self, key: str, default: bool) -> bool:
        value = self.table.get(key, default)
        if not isinstance(value, bool):
            raise self.fail(key, f"must be true or false, got {value!r}.")
        return value

    def labels(self, key: str) -> dict[str, str]:
        value = self.table.get(key, {})
        if not isinstance(value, dict) or not all(isinstance(v, (str, int, float)) for v in value.values()):
            raise self.fail(key, f"must be a table of label = value, e.g. {{ soc = \"SM8650\" }}, got {value!r}.")
        return {str(k): str(v) for k, v in value.items()}


def _devices(r: _Reader, base: Path) -> DeviceSelection:
    r.known(_DEVICES)
    entries = [DeviceEntry(spec) for spec in r.strings("specs")]
    listed = r.table.get("device", [])
    if not isinstance(listed, list):
        raise r.fail("device", "must be an array of tables: [[devices.device]] spec = \"...\" labels = {...}.")
    for i, item in enumerate(listed):
        d = _Reader(r.where, item, f"{r.prefix}device[{i}].")
        d.known({"spec", "labels"})
        entries.append(DeviceEntry(d.string("spec", required=True), d.labels("labels")))
    adb = r.table.get("adb", False)
    if adb not in (False, "all"):
        raise r.fail("adb", f"takes \"all\" (every device the adb server lists) or false, got {adb!r}.")
    inventory = r.string("inventory")
    inventory_path = (base / inventory) if inventory else None
    if inventory_path is not None and not inventory_path.is_file():
        raise r.fail("inventory", f"names {inventory_path}, which does not exist.")
    selection = DeviceSelection(specs=tuple(entries), adb_all=adb == "all", inventory=inventory_path,
                                labels=r.labels("labels"), require_all=r.flag("require_all", False),
                                reconnect_s=float(r.number("reconnect_s", 30.0, above=0)))
    if not (selection.specs or selection.adb_all or selection.inventory):
        raise r.fail("specs", "(or adb = \"all\", or inventory = FILE) is needed: the study has no devices.")
    return selection


def _workloads(where: str, raw: Any) -> tuple[WorkloadSpec, ...]:
    if raw is None:
        return (WorkloadSpec(),)
    if not isinstance(raw, list) or not raw:
        raise StudyError(f"{where}: workloads must be an array of tables: [[workloads]] prompt = 128 gen = 64.")
    out: list[WorkloadSpec] = []
    for i, table in enumerate(raw):
        r = _Reader(where, table, f"workloads[{i}].")
        r.known(_WORKLOAD)
        combos = itertools.product(r.ints("prompt", 128, 1), r.ints("gen", 64, 0), r.ints("threads", 0, 0))
        out += [WorkloadSpec(p, g, t) for p, g, t in combos]
    return tuple(dict.fromkeys(out))


def _run(r: _Reader) -> RunSettings:
    r.known(_RUN)
    harness = r.string("harness", "auto")
    if harness not in HARNESSES:
        raise r.fail("harness", f"must be one of {', '.join(HARNESSES)}, got {harness!r}.")
    return RunSettings(
        runs=r.number("runs", 5, integer=True, minimum=1),
        warmup=r.number("warmup", 1, integer=True, minimum=0),
        repeat=r.number("repeat", 1, integer=True, minimum=1),
        harness=harness,
        timeout_s=float(r.number("timeout_s", 1800.0, above=0)),
        retries=r.number("retries", 1, integer=True, minimum=0),
        quarantine_after=r.number("quarantine_after", 3, integer=True, minimum=1),
        telemetry_ms=r.number("telemetry_ms", 500, integer=True, minimum=0),
        profile=r.flag("profile", False),
    )


def _cooldown(r: _Reader) -> Cooldown:
    r.known(_COOLDOWN)
    below = r.number("below_c", None)
    return Cooldown(below_c=float(below) if below is not None else None,
                    timeout_s=float(r.number("timeout_s", 600.0, above=0)),
                    pause_s=float(r.number("pause_s", 0.0, minimum=0)))


def _execution(r: _Reader) -> Execution:
    r.known(_EXECUTION)
    backend = r.string("backend", "local")
    if backend not in BACKENDS:
        raise r.fail("backend", f"must be one of {', '.join(BACKENDS)}, got {backend!r}.")
    return Execution(backend=backend, ray_address=r.string("ray_address"))


def parse_study(data: dict[str, Any], where: str, base_dir: Path) -> Study:
    """A study from its TOML table; ``where`` names the file in errors."""
    r = _Reader(where, data)
    r.known(_TOP)
    seq = r.number("max_seq_len", None, integer=True, minimum=2)
    return Study(
        name=r.string("name", required=True).strip(),
        description=r.string("description") or "",
        models=r.strings("models", required=True),
        targets=r.strings("targets", required=True),
        devices=_devices(r.sub("devices"), base_dir),
        workloads=_workloads(where, data.get("workloads")),
        run=_run(r.sub("run")),
        cooldown=_cooldown(r.sub("cooldown")),
        execution=_execution(r.sub("execution")),
        max_seq_len=seq,
        base_dir=base_dir,
    )


def load_study(path: str | Path) -> Study:
    """Read and check a study file; relative paths in it are taken from the file's folder."""
    path = Path(path)
    if not path.is_file():
        raise StudyError(f"study file {path} does not exist; see examples/studies/ for examples.")
    try:
        data = tomllib.loads(path.read_text())
    except tomllib.TOMLDecodeError as err:
        raise StudyError(f"{path} is not valid TOML: {err}.") from None
    except UnicodeDecodeError:
        raise StudyError(f"{path} is not a text file; a study file is TOML.") from None
    return parse_study(data, str(path), path.resolve().parent)
