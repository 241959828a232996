"""Configure and compile a CMake project with a progress bar and a kept log (the native harness, llama.cpp)."""

from __future__ import annotations

import re
import subprocess
from pathlib import Path
from typing import Callable

from slmdeploy.errors import SlmdeployError

_PERCENT = re.compile(r"^\[\s*(\d+)%\]")


def run_logged(cmd: list[str], log, env: dict[str, str], cwd: Path, on_line: Callable[[str], None] | None = None) -> int:
    log.write(f"$ {' '.join(cmd)}\n")
    log.flush()
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True, env=env,
                            cwd=cwd, errors="replace")
    assert proc.stdout is not None
    for line in proc.stdout:
        log.write(line)
        if on_line:
            on_line(line)
    return proc.wait()


def tail(path: Path, lines: int = 25) -> str:
    try:
        text = path.read_text(errors="replace").splitlines()
    except OSError:
        return ""
    return "\n".join(text[-lines:])


def configure_and_build(configure: list[str], compile_: list[str], *, log_path: Path, env: dict[str, str], cwd: Path,
                        title: str, error: type[SlmdeployError], progress: bool) -> None:
    """Run CMake's configure then build step, showing make's percentage; ``error`` carries the log's end."""
    from slmdeploy.progress import count_progress

    with open(log_path, "w") as log, count_progress(progress) as bar:
        task = bar.add_task(f"{title}: configure", total=100)
        if run_logged(configure, log, env, cwd) != 0:
            raise error(f"CMake could not configure {title} (log: {log_path}):\n{tail(log_path)}")
        bar.update(task, description=f"{title}: compile")

        def on_line(line: str) -> None:
            match = _PERCENT.match(line)
            if match:
                bar.update(task, completed=int(match.group(1)))

        if run_logged(compile_, log, env, cwd, on_line) != 0:
            raise error(f"{title} did not compile (log: {log_path}):\n{tail(log_path)}")
        bar.update(task, completed=100)
