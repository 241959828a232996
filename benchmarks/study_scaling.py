"""Studies at lab scale, measured side by side in one run.

    python benchmarks/study_scaling.py                 # local pool and a 2-node Ray cluster
    python benchmarks/study_scaling.py --phones 1,2,4 --no-ray

1. Planning: a 10,000-job study expanded into its plan (goal < 1 s).
2. Throughput with N = 1, 2, 4, 8 emulated phones, each its own process behind the real adb
   server. The jobs are device-bound: every phone's commands share ``--share`` of one host
   core (a cgroup CPU limit: a phone that much slower than this host), so a harness takes
   device time, not host CPU, and this host's two cores drive all phones at once, as a lab
   host drives a shelf of real phones. Goal: jobs/s with N phones >= 0.9 N x one phone.
3. Host CPU per job: the study runner's own CPU (scheduling, journal, device links, pulling
   and parsing traces, the database) per job: the slope of runner CPU over jobs across the
   study sizes (a study's fixed start -- export cache lookup, probes -- is not per job; it
   is printed beside) and, per row, CPU / jobs (goal < 20 ms per job).

The same through a 2-node Ray cluster on 127.0.0.1 (each node with its own adb server
and half the phones): driver CPU per job, and the Ray workers' CPU (they run the bench
client on the lab hosts) reported beside it.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import textwrap
import time
from pathlib import Path

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # Ray nodes on 127.0.0.1 only

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

GOAL_PLAN_S, GOAL_CPU_MS, GOAL_SCALING = 1.0, 20.0, 0.9


def plan_10k(tmp: Path) -> float:
    from slmdeploy.study import build_plan, load_study

    path = tmp / "big.toml"
    path.write_text(textwrap.dedent("""
        name = "big"
        models = ["llama-tiny", "smollm2-135m", "qwen2.5-0.5b", "gemma-2b", "phi3-mini-4k"]
        targets = ["android-xnnpack-fp32", "android-xnnpack-8da4w", "tflite-int8", "tflite-xnnpack-fp32"]
        [devices]
        specs = [%s]
        [[workloads]]
        prompt = [32, 64, 128, 256, 512]
        gen = [32, 64]
        threads = [1, 4]
    """) % ", ".join(f'"adb:SERIAL{i:03d}"' for i in range(25)))
    best = float("inf")
    for _ in range(3):
        start = time.perf_counter()
        plan = build_plan(load_study(path))
        best = min(best, time.perf_counter() - start)
    assert len(plan.jobs) == 10_000, len(plan.jobs)
    return best


class Phone:
    """An emulated phone in its own process (so its CPU is not the runner's)."""

    def __init__(self, root: Path, share: float) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "slmdeploy.devices.emulator", "--port", "0", "--root", str(root),
             "--cpu-share", str(share), "--thermal-interval", "1.0"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        for line in self.proc.stdout:
            if line.startswith("127.0.0.1:"):
                self.serial = line.strip()
                break
        else:
            raise RuntimeError("emulated phone did not start")

    def stop(self) -> None:
        self.proc.terminate()
        self.proc.wait(timeout=30)


def write_study(path: Path, specs: list[str], jobs_per_phone: int, backend: str = "local",
                address: str | None = None) -> Path:
    prompts = ", ".join(str(16 + 4 * i) for i in range(jobs_per_phone))
    execution = f'[execution]\nbackend = "{backend}"\n' + (f'ray_address = "{address}"\n' if address else "")
    path.write_text(textwrap.dedent(f"""
        name = "{path.stem}"
        models = ["llama-tiny"]
        targets = ["host-xnnpack"]
        [devices]
        specs = [{", ".join(f'"{s}"' for s in specs)}]
        [[workloads]]
        prompt = [{prompts}]
        gen = 32
        threads = 1
        [run]
        runs = 3
        warmup = 1
        harness = "native"
        telemetry_ms = 0
    """) + execution)
    return path


def run(study: Path, out: Path) -> tuple[float, float, int]:
    """(wall s, runner CPU s, complete jobs)."""
    from slmdeploy.study import run_study

    cpu, wall = time.process_time(), time.perf_counter()
    result = run_study(study, out, progress=False)
    wall, cpu = time.perf_counter() - wall, time.process_time() - cpu
    assert result.ok, result.to_dict()
    return wall, cpu, result.complete


def scaling(label: str, counts: list[int], specs_for, jobs_per_phone: int, tmp: Path, **study) -> list[tuple]:
    rows = []
    for n in counts:
        path = write_study(tmp / f"{label}-{n}.toml", specs_for(n), jobs_per_phone, **study)
        wall, cpu, jobs = run(path, tmp / f"{label}-{n}")
        rows.append((n, jobs, wall, jobs / wall, cpu * 1000 / jobs))
    base = rows[0][3]
    print(f"\n{label}: {jobs_per_phone} jobs per phone (llama-tiny fp32, pp16..+tg32, 1 warm-up + 3 runs)")
    print(f"{'phones':>6} {'jobs':>5} {'wall s':>7} {'jobs/s':>7} {'speed-up':>8} {'goal':>6} {'verdict':>8} "
          f"{'runner CPU ms/job':>18}")
    for n, jobs, wall, rate, cpu_ms in rows:
        ratio = rate / base
        verdict = "met" if ratio >= GOAL_SCALING * n else "NOT met"
        print(f"{n:>6} {jobs:>5} {wall:>7.1f} {rate:>7.3f} {ratio:>7.2f}x {GOAL_SCALING * n:>5.1f}x {verdict:>8} "
              f"{cpu_ms:>12.1f}")
    if len(rows) > 1:
        import numpy as np

        jobs = np.array([r[1] for r in rows], dtype=float)
        cpu = np.array([r[1] * r[4] for r in rows])
        slope, fixed = np.polyfit(jobs, cpu, 1)
        verdict = "met" if slope < GOAL_CPU_MS else "NOT met"
        print(f"runner CPU per job (slope over the study sizes): {slope:.1f} ms (goal < {GOAL_CPU_MS:.0f} ms: "
              f"{verdict}); per study, fixed: {fixed:.0f} ms")
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--phones", default="1,2,4,8")
    parser.add_argument("--jobs-per-phone", type=int, default=4)
    parser.add_argument("--share", type=float, default=0.05, help="host cores each phone's commands share")
    parser.add_argument("--no-ray", action="store_true")
    parser.add_argument("--no-local", action="store_true")
    args = parser.parse_args()
    counts = [int(n) for n in args.phones.split(",")]
    os.environ.setdefault("SLMDEPLOY_CACHE", str(REPO / "build" / "bench-cache"))

    from slmdeploy.devices.emulator.testing import AdbServer
    from slmdeploy.export import export
    from slmdeploy.harness import native

    tmp = Path(tempfile.mkdtemp(prefix="slmdeploy-study-scaling-"))
    print(f"planning a 10,000-job study: {plan_10k(tmp) * 1000:.0f} ms (best of 3; goal < {GOAL_PLAN_S * 1000:.0f} ms)")

    export("llama-tiny", "host-xnnpack", tmp / "warm-export", progress=False)  # the export cache, warm
    native.build(progress=False)
    top = max(counts)
    print(f"\n{top} emulated phones, each limited to {args.share} of one host core (device-bound: the harnesses "
          f"use at most {top * args.share:.2f} of this host's {os.cpu_count()} cores; the host only drives them)")
    servers = [AdbServer(home=tmp / f"adb{i}").start() for i in range(2)]
    phones = [Phone(tmp / f"phone{i}", args.share) for i in range(top)]
    # phone i belongs to lab host i % 2 (for Ray); locally one adb server sees them all
    for i, phone in enumerate(phones):
        servers[0].connect(phone.serial)
        if i % 2:
            servers[1].connect(phone.serial)
    specs = [f"adb:{p.serial}" for p in phones]
    try:
        os.environ["ANDROID_ADB_SERVER_PORT"] = str(servers[0].port)
        run(write_study(tmp / "warm.toml", specs, 1), tmp / "warm")  # deploy model + harness on every phone once
        if not args.no_local:
            scaling("local pool", counts, lambda n: specs[:n], args.jobs_per_phone, tmp)
        if not args.no_ray:
            ray_scaling(counts, specs, servers, args.jobs_per_phone, tmp)
    finally:
        for phone in phones:
            phone.stop()
        for server in servers:
            server.stop()


def ray_scaling(counts: list[int], specs: list[str], servers, jobs_per_phone: int, tmp: Path) -> None:
    import ray
    from ray.cluster_utils import Cluster

    from slmdeploy.study.lab import node_resources

    def node(i: int) -> dict:
        env = {"ANDROID_ADB_SERVER_PORT": str(servers[i].port), "ANDROID_USER_HOME": str(servers[i].home / "u"),
               "SLMDEPLOY_CACHE": os.environ["SLMDEPLOY_CACHE"]}
        # a host with k phones keeps k warm Ray workers (Ray's soft limit on idle workers is the node's CPU count:
        # below k, workers are killed between jobs and restarted, with their imports, for the next one)
        return {"node_ip_address": "127.0.0.1", "num_cpus": max(1, len(specs[i::2])), "env_vars": env,
                "resources": node_resources(specs[i::2])}

    cluster = Cluster(initialize_head=True, head_node_args={**node(0), "include_dashboard": False})
    cluster.add_node(**node(1))
    cluster.wait_for_nodes()
    # one driver connection for every study, as a lab's long studies have: the hosts' Ray workers (and
    # the artifact each keeps) are started once, not inside the first jobs of each measured study
    ray.init(address=cluster.address, logging_level="ERROR", log_to_driver=False)
    try:
        run(write_study(tmp / "ray-warm.toml", specs, 1, backend="ray", address=cluster.address), tmp / "ray-warm")
        # phones alternate between the two hosts, so N phones span both hosts from N = 2
        scaling("Ray, 2 lab hosts", counts, lambda n: specs[:n], jobs_per_phone, tmp, backend="ray",
                address=cluster.address)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()


if __name__ == "__main__":
    main()
