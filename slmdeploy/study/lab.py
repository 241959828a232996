"""A lab of many hosts as one Ray cluster: every phone is a Ray resource of the host it is plugged into.

A lab host joins the cluster with ``slmdeploy lab join --address HEAD:6379``; its attached
devices become custom resources, one unit per physical device
(``slmdeploy.device/adb:R58N12ABCDE``), so Ray can only place a job on the host that owns
the device and never two jobs on one device at once. Resource names are the device specs
as that host reaches them.
"""

from __future__ import annotations

import json
import shlex
import shutil
import sys
from pathlib import Path
from typing import Any

from slmdeploy.devices.spec import parse
from slmdeploy.errors import SlmdeployError

RESOURCE_PREFIX = "slmdeploy.device/"


class LabError(SlmdeployError):
    """Ray is missing, unreachable, or a lab host cannot join."""


def device_resource(spec: str) -> str:
    """The Ray resource that stands for the device ``spec`` names."""
    parsed = parse(spec)
    if parsed.transport == "local":  # every host is "local": the name would not say which
        raise LabError("`local` cannot be a lab device: every host is local, so the name does not say which one. "
                       "Name the host as a board instead (ssh:USER@HOST), or run the study with backend = \"local\".")
    return RESOURCE_PREFIX + str(parsed)


def devices_of(resources: dict[str, Any]) -> list[str]:
    """Device specs in a Ray resources dict (``ray.cluster_resources()``), in order."""
    return sorted(name[len(RESOURCE_PREFIX):] for name in resources if name.startswith(RESOURCE_PREFIX))


def node_resources(specs: list[str]) -> dict[str, float]:
    """What a lab host advertises: one unit per device it owns."""
    return {device_resource(spec): 1.0 for spec in specs}


def require_ray():
    try:
        import ray
    except ImportError:
        raise LabError("Ray is not installed: studies across many hosts need it; "
                       "pip install 'slmdeploy[lab]' on the driver and on every lab host.") from None
    return ray


def join_command(address: str | None, specs: list[str], head: bool = False, port: int = 6379,
                 node_ip: str | None = None) -> list[str]:
    """The ``ray start`` command line that makes this host a lab node owning ``specs``."""
    beside = Path(sys.executable).with_name("ray")  # the ray of this environment, even when not on PATH
    ray_bin = str(beside) if beside.is_file() else shutil.which("ray") or "ray"
    cmd = [ray_bin, "start"]
    cmd += ["--head", f"--port={port}"] if head else [f"--address={address}"]
    if node_ip:
        cmd.append(f"--node-ip-address={node_ip}")
    cmd.append(f"--resources={json.dumps(node_resources(specs), sort_keys=True)}")
    return cmd


def describe(cmd: list[str]) -> str:
    return shlex.join(cmd)
