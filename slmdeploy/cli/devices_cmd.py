from __future__ import annotations

import click

from slmdeploy.cli.common import emit_json, json_option, stdout


@click.command("devices")
@click.option("--device", "-d", "specs", multiple=True, help="Only these devices (repeatable), e.g. adb:SERIAL or ssh:pi@board.")
@click.option("--clean", is_flag=True,
              help="Free space on the --device(s): kill stray harnesses, remove slmdeploy's blob cache, "
                   "device run directories and stale scratch files (the next bench pushes again).")
@json_option
def devices_cmd(specs: tuple[str, ...], clean: bool, as_json: bool) -> None:
    """List devices: this host, phones seen by the adb server, and any --device given.

    \b
    Example:
      slmdeploy devices
      slmdeploy devices --device ssh:pi@raspberrypi.local --json
      slmdeploy devices --clean -d adb:R58M123ABC --json
    """
    if clean:
        _clean(specs, as_json)
        return
    from rich.table import Table

    from slmdeploy.devices import bandwidth_store
    from slmdeploy.devices.discovery import describe_all

    infos = describe_all(list(specs))
    measured = {i.spec: bandwidth_store.last(i.spec) for i in infos}  # the last bench's probe, kept on this host
    if as_json:
        emit_json([{**i.to_dict(), "bandwidth": measured[i.spec]} for i in infos])
        return
    table = Table(header_style="bold")
    for col in ("device", "model", "SoC", "ABI", "OS", "cores", "max GHz", "RAM GiB", "free GiB", "battery", "temp °C", "thermal", "mem GB/s"):
        table.add_column(col)
    for i in infos:
        ghz = sorted({round(k / 1e6, 2) for k in i.cpu_max_khz}, reverse=True)
        table.add_row(
            i.spec, i.model or "-", i.soc or "-", i.abi or "-", f"{i.os or ''} {i.os_version or ''}".strip() or "-",
            str(i.cpu_cores or "-"), "/".join(map(str, ghz)) or "-",
            f"{i.ram_kib / (1 << 20):.1f}" if i.ram_kib else "-",
            f"{i.free_storage_kib / (1 << 20):.1f}" if i.free_storage_kib else "-",
            " ".join(filter(None, (f"{i.battery_pct}%" if i.battery_pct is not None else "",
                                   f"{i.battery_temp_c:.1f}°C" if i.battery_temp_c is not None else ""))) or "-",
            f"{i.thermal_max_c:.1f}" if i.thermal_max_c is not None else "-",
            i.thermal_status or "-",
            f"{measured[i.spec]['best_gbps']:.1f}" if measured[i.spec] else "-",
        )
    stdout.print(table)
    for i in infos:
        if i.extra.get("error"):
            stdout.print(f"[red]{i.spec}[/]: {i.extra['error']}")


def _clean(specs: tuple[str, ...], as_json: bool) -> None:
    """``--clean``: only devices named with --device (cleaning every phone on the server by accident is not undoable)."""
    from slmdeploy.devices import open_device
    from slmdeploy.devices.clean import clean_device

    if not specs:
        raise click.UsageError("--clean needs the device(s) to clean: add --device SPEC (e.g. -d adb:SERIAL).")
    reports = []
    for spec in specs:
        device = open_device(spec)
        try:
            reports.append(clean_device(device))
        finally:
            device.close()
    if as_json:
        emit_json(reports)
        return
    for r in reports:
        what = ", ".join(f"{name} ({kib / 1024:.1f} MiB)" for name, kib in r["removed"].items()) or "nothing cached"
        stdout.print(f"{r['device']}: removed {what} from {r['workdir']}; {r['freed_kib'] / 1024:.1f} MiB freed")
