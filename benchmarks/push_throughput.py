#!/usr/bin/env python3
"""Push throughput of each transport vs the real `adb push`, and the cost of an unchanged re-deploy.

Everything runs on loopback (``slmdeploy.devices.loopback.LoopbackLab``): an emulated Pixel 8
behind a private adb server (the adb binary from the adbutils wheel), OpenSSH as the "board",
and this host (``local``). For each transport the same random file is pushed ``--repeat``
times and checked by sha256 on the device (not timed); the best time counts, as for any
throughput figure on a shared machine. Then a first ``deploy_file`` (push + sha256 on the
device + rename: what a new artifact costs) and a ``deploy_file`` of the unchanged artifact
(already on the device: what every bench after the first pays) are timed.

    python benchmarks/push_throughput.py                # 100 MB, 3 repeats
    python benchmarks/push_throughput.py --size-mb 300 --repeat 2 --json

Goals: each transport >= 1.0x the real `adb push`; an unchanged 100 MB re-deploy < 1 s. Each
figure gets a "goal met" / "goal NOT met" line.
Note that the ssh rows push to this host's sshd (the emulated phone speaks adb only) through
the lab's TCP relay (``lab.ssh_address``, the board's "network"; it splices in the kernel), so
they compare the SSH path, not the same receiver. The ``ssh 'cat > FILE' (binary)`` row is the
OpenSSH ceiling: the plain ``ssh`` command over a warm connection, what any SSH path pays for
encryption; the ssh rows are also shown against it. ``ssh`` is the default transfer path (the
system OpenSSH client when there is one, see docs/devices.md); ``ssh-sftp`` is the same device
forced onto paramiko's SFTP (``transfer="sftp"``), the fallback without an ``ssh`` binary or
key file.
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shlex
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from slmdeploy.devices.deploy import blob_path, deploy_file
from slmdeploy.devices.local import LocalDevice
from slmdeploy.devices.loopback import LoopbackLab
from slmdeploy.devices.ssh import SshDevice

PUSH_GOAL = 1.0  # x the real `adb push`
REDEPLOY_GOAL_S = 1.0
REFERENCE = "adb push (binary)"
SSH_CEILING = "ssh 'cat > FILE' (binary)"


def make_file(path: Path, size: int) -> str:
    digest = hashlib.sha256()
    with open(path, "wb") as fh:
        left = size
        while left:
            block = os.urandom(min(left, 1 << 22))
            fh.write(block)
            digest.update(block)
            left -= len(block)
    return digest.hexdigest()


def best_of(repeat: int, push, check) -> float:
    times = []
    for _ in range(repeat):
        start = time.perf_counter()
        push()
        times.append(time.perf_counter() - start)
        check()
    return min(times)


def plain_ssh(lab: LoopbackLab, control_dir: str) -> list[str]:
    """The command a user would type (``ssh board 'cat > FILE' < FILE``), over a warm
    ControlMaster connection so its login is not timed either: the OpenSSH ceiling."""
    sshd = lab.sshd
    host, port = lab.ssh_address.split("@", 1)[1].rsplit(":", 1)
    return ["ssh", "-F", os.devnull, "-T", "-i", str(sshd.key), "-p", port, "-l", sshd.user,
            "-o", "StrictHostKeyChecking=no", "-o", f"UserKnownHostsFile={os.devnull}", "-o", "LogLevel=ERROR",
            "-o", "ControlMaster=auto", "-o", f"ControlPath={control_dir}/cm", "-o", "ControlPersist=60", host]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--size-mb", type=int, default=100, help="file size in MB (10^6 bytes) [100]")
    parser.add_argument("--repeat", type=int, default=3, help="pushes per transport; the best counts [3]")
    parser.add_argument("--json", action="store_true", help="print the results as JSON")
    args = parser.parse_args()
    size = args.size_mb * 1_000_000
    with tempfile.TemporaryDirectory(prefix="slmdeploy-push-bench-") as tmp, LoopbackLab(Path(tmp) / "lab") as lab:
        local = Path(tmp) / "artifact.bin"
        sha = make_file(local, size)
        devices = {t: lab.open(t, workdir=Path(tmp) / "board") for t in ("adb", "adb-direct", "ssh")}
        devices["ssh-sftp"] = SshDevice(lab.ssh_address, key_filename=lab.sshd.key,
                                        workdir=str(Path(tmp) / "board"), transfer="sftp")
        devices["local"] = LocalDevice(Path(tmp) / "local-device")
        phone = devices["adb"]

        def check(device, remote: str):
            def run() -> None:
                got = device.shell(["sha256sum", remote], timeout=300).stdout.split()
                assert got and got[0] == sha, f"{device.spec}: pushed file differs"
                device.shell(["rm", "-f", remote])
            return run

        remote = f"{phone.workdir}/push-bench.bin"
        phone.shell(["mkdir", "-p", phone.workdir])
        adb = lab.adb_server
        seconds = {
            REFERENCE: best_of(
                args.repeat,
                lambda: adb.adb("-s", lab.phone.serial, "push", str(local), remote, check=True, timeout=600),
                check(phone, remote)),
        }
        board_file = f"{devices['ssh'].workdir}/push-bench.bin"
        ssh_cmd = plain_ssh(lab, tmp)
        subprocess.run([*ssh_cmd, "mkdir -p " + shlex.quote(devices["ssh"].workdir)], check=True, timeout=60)

        def ssh_cat() -> None:
            with open(local, "rb") as src:
                subprocess.run([*ssh_cmd, "cat > " + shlex.quote(board_file)], stdin=src, check=True, timeout=600)

        seconds[SSH_CEILING] = best_of(args.repeat, ssh_cat, check(devices["ssh"], board_file))
        subprocess.run([*ssh_cmd[:-1], "-O", "exit", ssh_cmd[-1]], capture_output=True, timeout=30)
        warm = Path(tmp) / "warm.bin"
        warm.write_bytes(b"x")
        for transport, device in devices.items():
            target = f"{device.workdir}/push-bench.bin"
            device.shell(["mkdir", "-p", device.workdir])
            device.push(warm, target)  # the first transfer sets up the path (ssh: the master login); not timed
            took = best_of(args.repeat, lambda d=device, t=target: d.push(local, t), check(device, target))
            how = getattr(device, "transfer_path", None) or type(device).__module__.rsplit(".", 1)[-1]
            how = {"sftp": "paramiko sftp"}.get(how, how)
            seconds[f"{transport} ({how})"] = took
        first, redeploy = {}, {}
        for transport, device in devices.items():
            blob = blob_path(device, sha)  # adb and adb-direct share the phone, ssh and ssh-sftp the board
            device.shell(["rm", "-f", blob, blob + ".ok"], timeout=60)
            first[transport], pushed = timed_deploy(device, local, sha)
            assert pushed, f"{transport}: a new artifact was not pushed"
            redeploy[transport], pushed = timed_deploy(device, local, sha)
            assert not pushed, f"{transport}: an unchanged artifact was pushed again"
        ssh_path = f"{devices['ssh'].transfer_path}: {devices['ssh'].transfer_detail}"
        for device in devices.values():
            device.close()

    rows = push_rows(seconds, size)
    goals = goal_lines(seconds, redeploy)
    result = {"size_mb": args.size_mb, "repeat": args.repeat, "push": rows,
              "first_deploy_s": {k: round(v, 3) for k, v in first.items()},
              "redeploy_unchanged_s": {k: round(v, 3) for k, v in redeploy.items()},
              "goals": goals, "ssh_transfer": ssh_path, "emulated_phone": True, "cpus": os.cpu_count()}
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print_report(args, rows, first, redeploy, goals, ssh_path)
    return 0


def timed_deploy(device, local: Path, sha: str) -> tuple[float, bool]:
    start = time.perf_counter()
    _, pushed = deploy_file(device, local, sha, progress=False)
    return time.perf_counter() - start, pushed


def push_rows(seconds: dict[str, float], size: int) -> list[dict]:
    reference = size / seconds[REFERENCE]
    ssh_ceiling = size / seconds[SSH_CEILING]
    return [{"transport": name, "seconds": round(s, 3), "MB/s": round(size / s / 1e6, 1),
             "vs adb push": round(size / s / reference, 2),
             "vs ssh binary": round(size / s / ssh_ceiling, 2) if name.startswith("ssh") else None}
            for name, s in seconds.items()]


def goal_lines(seconds: dict[str, float], redeploy: dict[str, float]) -> list[dict]:
    """One verdict per figure (on the unrounded ratio): each transport's push vs `adb push`, each re-deploy."""
    goals = [{"figure": f"push {name}", "value": f"{seconds[REFERENCE] / s:.2f}x adb push",
              "goal": f">= {PUSH_GOAL:.1f}x", "met": seconds[REFERENCE] / s >= PUSH_GOAL}
             for name, s in seconds.items() if "(binary)" not in name]
    goals += [{"figure": f"re-deploy {transport}", "value": f"{s:.3f} s", "goal": f"< {REDEPLOY_GOAL_S:.0f} s",
               "met": s < REDEPLOY_GOAL_S} for transport, s in redeploy.items()]
    return goals


def print_report(args, rows: list[dict], first: dict[str, float], redeploy: dict[str, float], goals: list[dict],
                 ssh_path: str) -> None:
    print(f"push of {args.size_mb} MB, best of {args.repeat} (emulated Pixel 8 on loopback; ssh: this host's sshd; "
          f"{os.cpu_count()} CPUs)")
    print(f"ssh transfers: {ssh_path}")
    print(f"{'transport':<28}{'seconds':>9}{'MB/s':>9}{'vs adb push':>13}{'vs ssh binary':>15}")
    for row in rows:
        vs_ssh = f"{row['vs ssh binary']:>14.2f}x" if row["vs ssh binary"] is not None else ""
        print(f"{row['transport']:<28}{row['seconds']:>9.3f}{row['MB/s']:>9.1f}{row['vs adb push']:>12.2f}x{vs_ssh}")
    print(f"\ndeploy_file of the {args.size_mb} MB artifact: first (push + sha256 on the device), unchanged re-deploy")
    for transport in redeploy:
        print(f"  {transport:<12}{first[transport]:>8.3f} s{redeploy[transport]:>10.3f} s")
    print()
    for goal in goals:
        verdict = "goal met" if goal["met"] else "goal NOT met"
        print(f"{goal['figure']:<34}{goal['value']:>18}  (goal {goal['goal']}): {verdict}")


if __name__ == "__main__":
    sys.exit(main())
