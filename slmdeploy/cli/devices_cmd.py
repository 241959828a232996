from __future__ import annotations

import click

from slmdeploy.cli.common import emit_json, json_option, stdout


@click.command("devices")
@click.option("--device", "-d", "specs", multiple=True, help="Only these devices (repeatable), e.g. adb:SERIAL or ssh:pi@board.")
@json_option
def devices_cmd(specs: tuple[str, ...], as_json: bool) -> None:
    """List devices: this host, phones seen by the adb server, and any --device given.

    \b
    Example:
      slmdeploy devices
      slmdeploy devices --device ssh:pi@raspberrypi.local --json
    """
    from rich.table import Table

    from slmdeploy.devices.discovery import describe_all

    infos = describe_all(list(specs))
    if as_json:
        emit_json([i.to_dict() for i in infos])
        return
    table = Table(header_style="bold")
    for col in ("device", "model", "SoC", "ABI", "OS", "cores", "max GHz", "RAM GiB", "free GiB", "battery", "temp °C", "thermal"):
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
        )
    stdout.print(table)
    for i in infos:
        if i.extra.get("error"):
            stdout.print(f"[red]{i.spec}[/]: {i.extra['error']}")
