"""``slmdeploy lab``: make this host a node of a lab's Ray cluster, owning the phones plugged into it."""

from __future__ import annotations

import subprocess

import click

from slmdeploy.cli.common import emit_json, json_option, stdout


@click.group("lab")
def lab_cmd() -> None:
    """Studies across many hosts: each lab host joins a Ray cluster with the devices it owns.

    \b
    Example (one head, any number of hosts with phones; then run studies from anywhere):
      slmdeploy lab join --head --adb-all                 # on the first host
      slmdeploy lab join --address 10.0.0.5:6379 --adb-all  # on every other host
      slmdeploy lab devices --address 10.0.0.5:6379
      slmdeploy study run lab.toml      # with [execution] backend = "ray", ray_address = "10.0.0.5:6379"
    """


@lab_cmd.command("join")
@click.option("--address", help="The head node's HOST:PORT (what `lab join --head` printed).")
@click.option("--head", is_flag=True, help="Start the cluster's head node here (and own this host's devices).")
@click.option("--port", default=6379, show_default=True, help="--head: the port the head listens on.")
@click.option("--device", "-d", "specs", multiple=True, help="A device plugged into this host (repeatable).")
@click.option("--adb-all", is_flag=True, help="Every device this host's adb server lists.")
@click.option("--node-ip", help="The address other hosts reach this one at [default: Ray's choice].")
@click.option("--dry-run", is_flag=True, help="Check the devices and print the `ray start` command, start nothing.")
@json_option
def join_cmd(address: str | None, head: bool, port: int, specs: tuple[str, ...], adb_all: bool, node_ip: str | None,
             dry_run: bool, as_json: bool) -> None:
    """Join (or with --head, start) the lab's Ray cluster, advertising this host's devices.

    Each device becomes a Ray resource of this host (one unit per phone), so a study's jobs
    for it run here and only one at a time. Devices that do not answer are left out (listed).

    \b
    Example:
      slmdeploy lab join --address 10.0.0.5:6379 --adb-all
      slmdeploy lab join --head -d adb:R58N12ABCDE -d ssh:pi@jetson.local --dry-run
    """
    from slmdeploy.study.devices import adb_devices
    from slmdeploy.study.lab import LabError, describe, device_resource, join_command, require_ray
    from slmdeploy.study.local_backend import probe_devices

    if head == bool(address):
        raise click.UsageError("give either --head (start the cluster here) or --address HEAD:PORT (join it).")
    wanted = list(dict.fromkeys([*specs, *(adb_devices() if adb_all else [])]))
    if not wanted:
        raise click.UsageError("no devices: name them with --device SPEC, or --adb-all for this host's adb server.")
    for spec in wanted:
        device_resource(spec)  # a name Ray can carry, checked before any device is asked
    require_ray()
    opened, offline = probe_devices(wanted)
    for device in opened.values():
        device.close()
    owned = [s for s in wanted if s not in offline]
    if not owned:
        raise LabError("none of the devices answers: " + "; ".join(f"{s}: {r}" for s, r in offline.items()))
    cmd = join_command(address, owned, head=head, port=port, node_ip=node_ip)
    if as_json:
        emit_json({"devices": owned, "offline": offline, "command": cmd, "started": not dry_run})
    else:
        for spec, reason in offline.items():
            stdout.print(f"[yellow]left out[/] {spec}: {reason}", highlight=False)
        stdout.print(f"this host owns {len(owned)} device(s): {', '.join(owned)}")
        stdout.print(describe(cmd), highlight=False)
    if dry_run:
        return
    done = subprocess.run(cmd, stdout=subprocess.DEVNULL if as_json else None)
    if done.returncode != 0:
        raise LabError(f"`ray start` failed (exit {done.returncode}); see its output above.")


@lab_cmd.command("devices")
@click.option("--address", default="auto", show_default=True, help="The cluster's HOST:PORT.")
@json_option
def devices_cmd(address: str, as_json: bool) -> None:
    """List the lab's hosts and the devices each owns (what a study with backend = "ray" can use).

    \b
    Example:
      slmdeploy lab devices --address 10.0.0.5:6379 --json
    """
    from slmdeploy.study.lab import LabError, devices_of, require_ray

    ray = require_ray()
    try:
        ray.init(address=address, logging_level="ERROR", log_to_driver=False)
    except (ConnectionError, RuntimeError) as err:
        raise LabError(f"cannot reach the Ray cluster at {address}: {err}") from None
    try:
        hosts = [{"node": n["NodeID"], "address": n["NodeManagerAddress"], "alive": n["Alive"],
                  "devices": devices_of(n.get("Resources", {}))} for n in ray.nodes()]
    finally:
        ray.shutdown()
    if as_json:
        emit_json(hosts)
        return
    for h in hosts:
        state = "" if h["alive"] else " [red](gone)[/]"
        stdout.print(f"[bold]{h['address']}[/] {h['node'][:12]}{state}: {', '.join(h['devices']) or 'no devices'}")
