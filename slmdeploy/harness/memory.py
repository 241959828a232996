"""Process memory from /proc: VmRSS/VmHWM (status) and PSS (smaps_rollup), in KiB."""

from __future__ import annotations

from pathlib import Path


def _read_kib(path: Path, keys: dict[str, str]) -> dict[str, int]:
    out: dict[str, int] = {}
    try:
        text = path.read_text()
    except OSError:
        return out
    for line in text.splitlines():
        name, _, rest = line.partition(":")
        if name in keys:
            out[keys[name]] = int(rest.split()[0])
    return out


def snapshot(pid: str = "self") -> dict[str, int]:
    """``{"rss_kib", "hwm_kib", "pss_kib"}`` where the kernel provides them."""
    mem = _read_kib(Path(f"/proc/{pid}/status"), {"VmRSS": "rss_kib", "VmHWM": "hwm_kib"})
    mem |= _read_kib(Path(f"/proc/{pid}/smaps_rollup"), {"Pss": "pss_kib"})
    return mem
