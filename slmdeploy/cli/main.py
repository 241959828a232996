"""``slmdeploy``: export, measure, compare, decide."""

from __future__ import annotations

import click

from slmdeploy._version import __version__
from slmdeploy.cli.bench_cmd import bench_cmd
from slmdeploy.cli.common import Group, quiet_libraries
from slmdeploy.cli.compare_cmd import compare_cmd
from slmdeploy.cli.devices_cmd import devices_cmd
from slmdeploy.cli.export_cmd import export_cmd
from slmdeploy.cli.harness_cmd import harness_cmd
from slmdeploy.cli.lab_cmd import lab_cmd
from slmdeploy.cli.report_cmd import report_cmd
from slmdeploy.cli.study_cmd import study_cmd
from slmdeploy.cli.targets_cmd import models_cmd, targets_cmd


@click.group(cls=Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="slmdeploy")
def cli() -> None:
    """Small language models from PyTorch to a phone and back with numbers.

    \b
    Example (no phone needed: this host is the device):
      slmdeploy bench smollm2-135m --prompt 64 --gen 32
    """
    quiet_libraries()


for command in (export_cmd, bench_cmd, study_cmd, devices_cmd, report_cmd, compare_cmd, targets_cmd, models_cmd,
                harness_cmd, lab_cmd):
    cli.add_command(command)


def main() -> None:
    cli()
