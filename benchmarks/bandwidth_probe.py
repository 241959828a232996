"""The memory-bandwidth probe on this host: Python harness vs native harness vs numpy's copy.

Prints, for one thread and for every CPU:

1. the Python harness's probe (``slmdeploy.harness.bandwidth.probe``, numpy ``add.reduce``);
2. the native harness's probe (``slmdeploy_harness --bandwidth-probe-mib``, a C++ read with
   eight accumulators), run against a missing model: it probes, writes the event, then
   stops at load (exit 3);
3. numpy's copy (``np.copyto``) over a buffer of the same size, counted STREAM-style as
   read + write bytes, best of the same number of passes;

each as best-of-passes GB/s (1e9 bytes/s), the best over ``--reps`` probes, with the ratio to
the native probe and the probe's whole cost (fork, allocation, passes) against its 0.5 s budget.

    python benchmarks/bandwidth_probe.py
    python benchmarks/bandwidth_probe.py --mib 256 --reps 5 --binary android_harness/build/host-release/slmdeploy_harness
"""

from __future__ import annotations

import argparse
import os
import subprocess
import tempfile
import time
from pathlib import Path

from slmdeploy.harness import bandwidth
from slmdeploy.harness.trace import read_trace


def python_probe(mib: int, threads: int) -> dict:
    result = bandwidth.probe(mib, threads)
    if "error" in result:
        raise SystemExit(f"python probe failed: {result['error']}")
    return result


def native_probe(binary: Path, mib: int, threads: int) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        trace = Path(tmp) / "t.jsonl"
        subprocess.run([str(binary), "--model", str(Path(tmp) / "missing.pte"), "--trace", str(trace),
                        "--vocab-size", "2", "--threads", str(threads), "--telemetry-interval-ms", "0",
                        "--bandwidth-probe-mib", str(mib)], capture_output=True, timeout=120)
        found = read_trace(trace).of("bandwidth")
    if not found or "error" in found[0]:
        raise SystemExit(f"native probe failed: {found[0].get('error') if found else 'no bandwidth event'}")
    return found[0]


def numpy_copy_gbps(size: int, passes: int) -> float:
    import numpy as np

    src = np.ones(size // 8, dtype=np.int64)
    dst = np.empty_like(src)
    np.copyto(dst, src)  # fault the destination pages in before timing
    best = min(_timed(lambda: np.copyto(dst, src)) for _ in range(passes))
    return 2 * size / best / 1e9  # read + write, as STREAM counts copy


def _timed(fn) -> float:
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--mib", type=int, default=bandwidth.DEFAULT_MIB, help="probe buffer (raised to 4x the LLC)")
    parser.add_argument("--reps", type=int, default=3, help="probes per harness and thread count")
    parser.add_argument("--binary", type=Path, help="native harness [default: build it for this host]")
    args = parser.parse_args()
    if args.binary is None:
        from slmdeploy.harness import native

        args.binary = native.build(progress=False, llamacpp=False)
    size = bandwidth.buffer_bytes(args.mib)
    print(f"buffer {size / (1 << 20):.0f} MiB (largest cache {(bandwidth.largest_cache_bytes() or 0) / (1 << 20):.1f} "
          f"MiB), best of {args.reps} probes, GB/s = 1e9 bytes/s\n")
    print(f"{'threads':>7}  {'native':>8}  {'python':>8}  {'py/nat':>6}  {'np copy':>8}  {'copy/nat':>8}  "
          f"{'native cost s':>13}  {'python cost s':>13}")
    for threads in sorted({1, os.cpu_count() or 1}):
        nat = [native_probe(args.binary, args.mib, threads) for _ in range(args.reps)]
        py = [python_probe(args.mib, threads) for _ in range(args.reps)]
        nat_gbps, py_gbps = max(p["best_gbps"] for p in nat), max(p["best_gbps"] for p in py)
        copy = numpy_copy_gbps(size, max(p["passes"] for p in py))
        print(f"{threads:>7}  {nat_gbps:8.2f}  {py_gbps:8.2f}  {py_gbps / nat_gbps:6.2f}  {copy:8.2f}  "
              f"{copy / nat_gbps:8.2f}  {max(p['ns'] for p in nat) / 1e9:13.3f}  {max(p['ns'] for p in py) / 1e9:13.3f}")
    print("\ncost = the whole probe (fork, allocation, passes), the worst of the probes; budget 0.5 s")


if __name__ == "__main__":
    main()
