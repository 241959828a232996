"""The memory-bandwidth probe of the Python harness: a streaming read over a buffer far larger than the caches.

Decode of a small LLM reads every weight once per token, so its ceiling is the memory
bandwidth; this measures that ceiling on the device the run is on (``docs/roofline.md``).

It runs in a forked child so the buffer never counts in the harness's own peak RSS
(``VmHWM`` of the process being measured). The read is numpy's ``add.reduce`` over int64
chunks, one chunk per thread (numpy releases the GIL inside the reduction); the result is the
best of up to ``MAX_PASSES`` passes, stopping early once ``BUDGET_S`` has been spent.
The whole probe costs about 0.3 s on this host (128 MiB: most of it is faulting the pages in).
"""

from __future__ import annotations

import glob
import json
import os
import time
from typing import Any

MAX_PASSES = 5
MIN_PASSES = 2
BUDGET_S = 0.2  # passes stop once this much time went into them (after MIN_PASSES)
DEFAULT_MIB = 128  # what bench asks for; raised to LLC_FACTOR x the last-level cache
LLC_FACTOR = 4  # the buffer is at least this many times the largest cache sysfs reports


def _size_bytes(text: str) -> int | None:
    """sysfs cache sizes: ``32768K``, ``1M``, or plain bytes."""
    text = text.strip().upper()
    scale = {"K": 1 << 10, "M": 1 << 20, "G": 1 << 30}.get(text[-1:], 1)
    digits = text[:-1] if text[-1:] in "KMG" else text
    return int(digits) * scale if digits.isdigit() else None


def largest_cache_bytes(sys_root: str = "/sys") -> int | None:
    """The largest CPU cache any core reports (the last-level cache), None where sysfs says nothing."""
    sizes = []
    for path in glob.glob(f"{sys_root}/devices/system/cpu/cpu[0-9]*/cache/index[0-9]*/size"):
        try:
            with open(path) as fh:
                size = _size_bytes(fh.read())
        except OSError:
            continue
        if size:
            sizes.append(size)
    return max(sizes) if sizes else None


def _available_bytes() -> int | None:
    try:
        with open("/proc/meminfo") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    return None


def buffer_bytes(mib: int) -> int:
    """``mib`` MiB, raised to ``LLC_FACTOR`` x the last-level cache, capped at a quarter of the available memory."""
    size = mib << 20
    llc = largest_cache_bytes()
    if llc:
        size = max(size, LLC_FACTOR * llc)
    available = _available_bytes()
    if available:
        size = min(size, available // 4)
    return max(size - size % (1 << 20), 1 << 20)


def measure(mib: int, threads: int) -> dict[str, Any]:
    """The probe itself, in this process: allocate, touch, then timed read passes."""
    from concurrent.futures import ThreadPoolExecutor

    import numpy as np

    size = buffer_bytes(mib)
    buf = np.ones(size // 8, dtype=np.int64)  # written once: every page is backed before the timed passes
    chunks = np.array_split(buf, threads)
    reduce = np.add.reduce
    passes: list[float] = []
    start = time.perf_counter()
    with ThreadPoolExecutor(max_workers=threads) as pool:
        while len(passes) < MAX_PASSES:
            t0 = time.perf_counter_ns()
            total = sum(pool.map(reduce, chunks)) if threads > 1 else reduce(buf)
            passes.append((time.perf_counter_ns() - t0) / 1e9)
            if total != buf.size:  # every element is 1: a wrong sum means the read was not done
                raise RuntimeError(f"bandwidth probe read {total} instead of {buf.size}")
            if len(passes) >= MIN_PASSES and time.perf_counter() - start > BUDGET_S:
                break
    return {"bytes": size, "passes": len(passes), "threads": threads, "best_gbps": size / min(passes) / 1e9,
            "median_gbps": size / sorted(passes)[len(passes) // 2] / 1e9, "method": "numpy add.reduce int64"}


def probe(mib: int, threads: int) -> dict[str, Any]:
    """The probe in a forked child; ``{"error": ...}`` when it could not run (the run goes on without it).

    Call it before the process starts threads (fork copies only the calling thread).
    """
    import numpy  # noqa: F401 - imported here, once: the child then only allocates and reads

    threads = max(1, threads or os.cpu_count() or 1)
    start = time.perf_counter_ns()
    read_fd, write_fd = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child: measure, report one JSON line, leave without running any cleanup
        os.close(read_fd)
        try:
            result = measure(mib, threads)
        except BaseException as err:  # noqa: BLE001 - whatever it is, the parent reports it
            result = {"error": f"{type(err).__name__}: {err}"[:500]}
        os.write(write_fd, json.dumps(result).encode())
        os._exit(0)
    os.close(write_fd)
    with os.fdopen(read_fd, "rb") as fh:
        data = fh.read()
    _, status = os.waitpid(pid, 0)
    try:
        result = json.loads(data) if data else {}
    except ValueError:
        result = {}
    if not result:
        code = os.waitstatus_to_exitcode(status)
        result = {"error": f"the probe process ended without a result (exit status {code}; out of memory?)"}
    return {**result, "ns": time.perf_counter_ns() - start}
