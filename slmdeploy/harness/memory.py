"""Process memory from /proc: VmRSS/VmHWM and RssAnon/RssFile (status), PSS (smaps_rollup), in KiB."""

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
    """``{"rss_kib", "hwm_kib", "pss_kib", "rss_anon_kib", "rss_file_kib"}`` where the kernel provides them.

    RSS splits into anonymous memory (heap, KV caches, weights a runtime copied) and resident
    pages of mapped files (a model the runtime mmaps): the split says how to read RSS.
    """
    mem = _read_kib(Path(f"/proc/{pid}/status"), {"VmRSS": "rss_kib", "VmHWM": "hwm_kib", "RssAnon": "rss_anon_kib",
                                                  "RssFile": "rss_file_kib"})
    mem |= _read_kib(Path(f"/proc/{pid}/smaps_rollup"), {"Pss": "pss_kib"})
    return mem
