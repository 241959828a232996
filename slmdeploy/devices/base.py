"""The Device protocol: the five things slmdeploy needs from any machine it measures on.

``shell`` (exit code + separate stdout/stderr), ``push``, ``pull``, ``info`` and ``lock``.
Everything above (deployment, harness runs, telemetry) is written once against this
protocol; a transport (local, adb, adb-direct, ssh) only implements it.
"""

from __future__ import annotations

import shlex
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable, ContextManager, Protocol, Sequence, runtime_checkable

ProgressFn = Callable[[int], None]  # called with the number of bytes just transferred


@dataclass
class ShellResult:
    exit_code: int
    stdout: str
    stderr: str

    @property
    def ok(self) -> bool:
        return self.exit_code == 0


@dataclass
class DeviceInfo:
    """What ``slmdeploy devices`` shows; fields a device cannot tell stay None."""

    spec: str
    transport: str
    serial: str
    model: str | None = None
    manufacturer: str | None = None
    soc: str | None = None
    abi: str | None = None
    exec_abi: str | None = None  # the ABI binaries must be built for (differs on emulated phones)
    os: str | None = None
    os_version: str | None = None
    cpu_cores: int | None = None
    cpu_max_khz: list[int] = field(default_factory=list)
    ram_kib: int | None = None
    free_storage_kib: int | None = None
    battery_pct: int | None = None
    battery_temp_c: float | None = None
    thermal_max_c: float | None = None
    thermal_status: str | None = None
    emulated: bool = False
    extra: dict[str, Any] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@runtime_checkable
class Device(Protocol):
    spec: str
    workdir: str  # the directory on the device where slmdeploy keeps artifacts, harnesses and runs

    def shell(self, cmd: str | Sequence[str], timeout: float | None = None) -> ShellResult:
        """Run a command; a sequence is quoted argument by argument."""

    def push(self, local: Path, remote: str, progress: ProgressFn | None = None) -> None: ...

    def pull(self, remote: str, local: Path, progress: ProgressFn | None = None) -> None: ...

    def info(self) -> DeviceInfo: ...

    def lock(self) -> ContextManager[None]: ...

    def close(self) -> None: ...


def quote_cmd(cmd: str | Sequence[str]) -> str:
    """A shell command line: a string is taken as written, a sequence is quoted per argument."""
    if isinstance(cmd, str):
        return cmd
    return " ".join(shlex.quote(str(part)) for part in cmd)
