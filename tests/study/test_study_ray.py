"""Studies across a real multi-node Ray cluster on this machine: two lab hosts (Ray nodes on
127.0.0.1), each with its own adb server and its own emulated phones. Every job must run on
the node that owns its device (the other node's adb server does not know that phone), run
directories come back to the driver, and a host that leaves the cluster takes only its
devices out of the study."""

from __future__ import annotations

import json
import os
import textwrap

os.environ.setdefault("RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER", "0")  # before Ray is imported: nodes on 127.0.0.1 only

import pytest  # noqa: E402
import ray  # noqa: E402
from ray.cluster_utils import Cluster  # noqa: E402

from slmdeploy.analysis import load_runs  # noqa: E402
from slmdeploy.devices.emulator import EmulatedPhone  # noqa: E402
from slmdeploy.devices.emulator.testing import AdbServer  # noqa: E402
from slmdeploy.study import run_study  # noqa: E402
from slmdeploy.study.lab import node_resources  # noqa: E402
from slmdeploy.study.status import study_status  # noqa: E402


class LabHost:
    """One lab host: an adb server with its phones, and the Ray node options that make it a lab node."""

    def __init__(self, root, profiles):
        self.server = AdbServer(home=root / "adb-home").start()
        self.phones = []
        for i, profile in enumerate(profiles):
            phone = EmulatedPhone(profile, root=root / f"phone{i}").start()
            self.server.connect(phone.serial)
            self.phones.append(phone)
        self.specs = [f"adb:{p.serial}" for p in self.phones]

    def node_args(self) -> dict:
        env = {"ANDROID_ADB_SERVER_PORT": str(self.server.port), "ANDROID_USER_HOME": str(self.server.home / "u"),
               "SLMDEPLOY_CACHE": os.environ["SLMDEPLOY_CACHE"]}
        return {"node_ip_address": "127.0.0.1", "num_cpus": 1, "resources": node_resources(self.specs),
                "env_vars": env, "object_store_memory": 100 << 20}

    def stop(self):
        for phone in self.phones:
            phone.stop()
        self.server.stop()


@pytest.fixture
def lab(tmp_path, tiny_fp32, bundle):
    hosts = [LabHost(tmp_path / "host-a", ["pixel8", "galaxy-s24"]), LabHost(tmp_path / "host-b", ["pixel8", "pixel8"])]
    cluster = Cluster(initialize_head=True, head_node_args={**hosts[0].node_args(), "include_dashboard": False})
    node_b = cluster.add_node(**hosts[1].node_args())
    cluster.wait_for_nodes()
    try:
        yield cluster, hosts, node_b
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        for host in hosts:
            host.stop()


def write_study(tmp_path, address, devices: str, **run) -> object:
    settings = {"runs": 1, "warmup": 0, "harness": "native", "telemetry_ms": 0, "retries": 1,
                "quarantine_after": 2, "timeout_s": 120} | run
    path = tmp_path / "lab.toml"
    path.write_text(textwrap.dedent(f"""
        name = "lab"
        models = ["llama-tiny"]
        targets = ["host-xnnpack"]
        [devices]
        {devices}
        reconnect_s = 1
        [[workloads]]
        prompt = [4, 8]
        gen = 2
        [execution]
        backend = "ray"
        ray_address = "{address}"
        [run]
    """) + "\n".join(f"{k} = {json.dumps(v)}" for k, v in settings.items()) + "\n")
    return path


def test_every_job_runs_on_the_host_that_owns_its_phone_and_comes_back(lab, tmp_path):
    cluster, hosts, node_b = lab
    absent = "adb:127.0.0.1:1"  # a phone no host owns
    result = run_study(write_study(tmp_path, cluster.address, 'adb = "all"\nspecs = ["adb:127.0.0.1:1"]'),
                       tmp_path / "study", progress=False)

    assert (result.jobs, result.complete) == (5 * 2, 4 * 2)
    assert list(result.offline) == [absent] and "no host of the Ray cluster" in result.offline[absent]
    frame = load_runs(tmp_path / "study")  # the run directories came back to the driver
    assert len(frame) == 8 and (frame["decode_tps"] > 0).all() and set(frame["status"]) == {"complete"}
    head_id = cluster.head_node.node_id
    owner = {spec: head_id for spec in hosts[0].specs} | {spec: node_b.node_id for spec in hosts[1].specs}
    for row in frame.to_dict("records"):
        assert row["lab_node"] == owner[row["device"]]
    assert all((p / "trace.jsonl").is_file() for p in (tmp_path / "study" / "runs").iterdir())


def test_a_host_that_leaves_takes_only_its_phones_out_of_the_study(lab, tmp_path):
    cluster, hosts, node_b = lab
    leaving = hosts[1].specs[0]
    left = []

    class Sink:
        def emit(self, kind, **f):
            if kind == "job_end" and f["device"] == leaving and not left:
                left.append(True)
                cluster.remove_node(node_b)  # the host is switched off after its first job

        def close(self):
            pass

    result = run_study(write_study(tmp_path, cluster.address, 'adb = "all"'), tmp_path / "study", sink=Sink(),
                       progress=False)
    assert set(result.quarantined) == set(hosts[1].specs)  # both of its phones went with it
    status = study_status(tmp_path / "study")
    done = {d["spec"]: d.get("complete", 0) for d in status["devices"]}
    assert all(done[spec] == 2 for spec in hosts[0].specs)  # the other host finished everything
    assert result.complete == 4 + done[hosts[1].specs[0]] + done[hosts[1].specs[1]]
    assert len(result.failed) + len(result.not_run) == 8 - result.complete


def test_lab_join_starts_a_real_ray_node_owning_the_phones_and_a_study_runs_on_it(tiny_fp32, bundle, tmp_path):
    """`slmdeploy lab join --head` as a lab host runs it: the real `ray start`, on 127.0.0.1."""
    import subprocess
    import sys

    from slmdeploy.devices.emulator.testing import free_port

    host = LabHost(tmp_path / "host", ["pixel8"])
    env = {**os.environ, "ANDROID_ADB_SERVER_PORT": str(host.server.port),
           "ANDROID_USER_HOME": str(host.server.home / "u")}
    port = free_port()
    cli = [sys.executable, "-m", "slmdeploy", "lab"]
    try:
        joined = subprocess.run([*cli, "join", "--head", "--port", str(port), "--node-ip", "127.0.0.1", "--adb-all",
                                 "--json"], env=env, capture_output=True, text=True, timeout=300)
        assert joined.returncode == 0, joined.stderr[-2000:]
        assert json.loads(joined.stdout)["devices"] == host.specs
        listed = subprocess.run([*cli, "devices", "--address", f"127.0.0.1:{port}", "--json"], env=env,
                                capture_output=True, text=True, timeout=120)
        assert [h["devices"] for h in json.loads(listed.stdout)] == [host.specs]
        result = run_study(write_study(tmp_path, f"127.0.0.1:{port}", 'adb = "all"'), tmp_path / "study",
                           progress=False)
        assert (result.jobs, result.complete) == (2, 2)
    finally:
        subprocess.run([os.path.join(os.path.dirname(sys.executable), "ray"), "stop", "--force"], env=env,
                       capture_output=True, timeout=120)
        host.stop()


def test_lab_join_refuses_names_ray_cannot_place(tmp_path):
    from click.testing import CliRunner

    from slmdeploy.cli.main import cli

    result = CliRunner().invoke(cli, ["lab", "join", "--head", "-d", "local", "--dry-run"])
    assert result.exit_code == 2 and "`local` cannot be a lab device" in result.output
    result = CliRunner().invoke(cli, ["lab", "join", "-d", "adb:X"])
    assert result.exit_code == 2 and "either --head" in result.output
