"""``slmdeploy study``: plan, run and follow a study (models × targets × devices × workloads)."""

from __future__ import annotations

from pathlib import Path

import click

from slmdeploy.cli.common import emit_json, json_option, stdout


@click.group("study")
def study_cmd() -> None:
    """Measure a matrix of models × targets × devices × workloads, across a lab, resumably.

    \b
    Example:
      slmdeploy study plan examples/studies/ci-smoke.toml
      slmdeploy study run examples/studies/ci-smoke.toml --dir studies/smoke
      slmdeploy study status studies/smoke
      slmdeploy report studies/smoke
    """


def _duration(seconds: float) -> str:
    m, s = divmod(int(round(seconds)), 60)
    h, m = divmod(m, 60)
    return f"{h} h {m:02d} min" if h else f"{m} min {s:02d} s"


@study_cmd.command("plan")
@click.argument("study_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--jobs", "show_jobs", is_flag=True, help="List every job, not only the totals.")
@click.option("--device", "devices", multiple=True, metavar="SPEC",
              help="Run on these devices instead of the study file's [devices] (repeatable; e.g. local, adb:SERIAL).")
@json_option
def plan_cmd(study_file: Path, show_jobs: bool, devices: tuple[str, ...], as_json: bool) -> None:
    """Print the exports and run jobs a study expands to, and how long it should take; runs nothing.

    \b
    Example:
      slmdeploy study plan lab.toml
      slmdeploy study plan lab.toml --jobs --json | jq '.jobs | length'
      slmdeploy study plan examples/studies/survey.toml --device adb:R58N12ABCDE
    """
    from rich.table import Table

    from slmdeploy.study import build_plan
    from slmdeploy.study.devices_override import load_study_on

    plan = build_plan(load_study_on(study_file, list(devices)))
    summary = plan.summary()
    if as_json:
        emit_json({**summary, "exports": [{"model": e.model, "target": e.target} for e in plan.exports],
                   "jobs": [{**j.to_dict(), "name": j.name, "estimated_s": round(plan.estimate_s(j), 1)}
                            for j in plan.jobs]})
        return
    stdout.print(f"[bold]study {summary['study']}[/]: {len(plan.exports)} exports "
                 f"({len(plan.study.models)} models × {len(plan.study.targets)} targets), {summary['jobs']} run jobs "
                 f"on {len(plan.devices)} devices ({len(plan.study.workloads)} workloads, "
                 f"{plan.study.run.repeat} repeat(s), {plan.study.run.runs} measured runs each)")
    table = Table(header_style="bold", title="devices (in parallel)")
    for col in ("device", "labels", "jobs", "estimated"):
        table.add_column(col)
    for d in summary["devices"]:
        table.add_row(d["spec"], " ".join(f"{k}={v}" for k, v in d["labels"].items()) or "-", str(d["jobs"]),
                      _duration(d["estimated_s"]))
    stdout.print(table)
    for s in summary["skipped"]:
        stdout.print(f"[yellow]not planned[/]: {s['model']} / {s['target']} on {s['device']}: {s['reason']}")
    if show_jobs:
        jobs = Table(header_style="bold", title="jobs, in the order each device runs them")
        for col in ("job", "model", "target", "device", "workload", "repeat", "estimated"):
            jobs.add_column(col)
        for j in plan.jobs:
            jobs.add_row(j.id, j.export.model, j.export.target, j.device, j.workload.label, str(j.repeat + 1),
                         _duration(plan.estimate_s(j)))
        stdout.print(jobs)
    stdout.print(f"estimated: [bold]{_duration(summary['estimated_s'])}[/] wall "
                 f"({_duration(summary['estimated_device_s'])} of device time), plus exports; a coarse guide "
                 "(a mid-range phone's CPU) until runs are measured: `study status` shows measured times.")


@study_cmd.command("run")
@click.argument("study_file", required=False, type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option("--dir", "study_dir", type=click.Path(file_okay=False, path_type=Path),
              help="The study directory [default: studies/NAME].")
@click.option("--resume", is_flag=True, help="Complete the study in --dir: run exactly the jobs it is missing.")
@click.option("--require-all", is_flag=True, default=None,
              help="Refuse to start when any device is offline [default: run on the others].")
@click.option("--device", "devices", multiple=True, metavar="SPEC",
              help="Run on these devices instead of the study file's [devices] (repeatable; e.g. local, adb:SERIAL).")
@json_option
def run_cmd(study_file: Path | None, study_dir: Path | None, resume: bool, require_all: bool | None,
            devices: tuple[str, ...], as_json: bool) -> None:
    """Run a study: export each (model, target) once, then every device through its jobs in parallel.

    Exit status: 0 when every job completed, 3 when some failed or did not run (what was
    measured is kept), 2 for bad input (nothing was run).

    \b
    Example:
      slmdeploy study run lab.toml --dir studies/lab
      slmdeploy study run --resume --dir studies/lab        # after a crash, Ctrl-C or kill -9
      slmdeploy study run ci.toml --dir out --json | tee events.jsonl
      slmdeploy study run examples/studies/survey.toml --device adb:R58N12ABCDE
    """
    from slmdeploy.study import run_study
    from slmdeploy.study.events import JsonLines

    if resume and study_dir is None:
        raise click.UsageError("--resume needs --dir: the study directory to complete.")
    if not resume and study_file is None:
        raise click.UsageError("give the STUDY_FILE to run (or --resume --dir DIR to complete a study).")
    title = (study_dir or study_file).name
    sink = JsonLines() if as_json else _LazyLive(title)
    try:
        result = run_study(study_file, study_dir, resume=resume, require_all=require_all, sink=sink,
                           progress=not as_json, devices=list(devices))
    finally:
        sink.close()
    if not as_json:
        _print_result(result)
    if not result.ok:
        raise SystemExit(3)


class _LazyLive:
    """The live table starts with the runs (exports print their own progress before that)."""

    def __init__(self, title: str) -> None:
        self.title, self.view, self.pending = title, None, []

    def emit(self, kind: str, **fields) -> None:
        from slmdeploy.study.events import LiveView

        if kind == "runs_start" and self.view is None:
            self.view = LiveView(self.title)
            for k, f in self.pending:
                self.view.emit(k, **f)
        if self.view is None:
            self.pending.append((kind, fields))
            if kind == "device_offline":
                stdout.print(f"[yellow]offline[/]: {fields['device']}: {fields['reason']}", highlight=False)
        else:
            self.view.emit(kind, **fields)

    def close(self) -> None:
        if self.view is not None:
            self.view.close()


def _print_result(result) -> None:
    stdout.print(f"[bold]{result.complete} of {result.jobs}[/] jobs complete in {_duration(result.wall_s)}; "
                 f"results in {result.dir} (`slmdeploy report {result.dir}`)")
    for spec, reason in {**result.offline, **result.quarantined}.items():
        stdout.print(f"[yellow]{spec}[/]: {reason}", highlight=False)
    for job in result.failed:
        stdout.print(f"[red]{job['status']}[/]: {job['model']} / {job['target']} on {job['device']} "
                     f"{job['workload']}: {job['error']}", highlight=False)
    for job in result.not_run[:20]:
        stdout.print(f"[yellow]not run[/]: {job['model']} / {job['target']} on {job['device']} {job['workload']}: "
                     f"{job['reason']}", highlight=False)
    if len(result.not_run) > 20:
        stdout.print(f"... and {len(result.not_run) - 20} more not run (`slmdeploy study status {result.dir}`)")


@study_cmd.command("status")
@click.argument("study_dir", type=click.Path(exists=True, file_okay=False, path_type=Path))
@json_option
def status_cmd(study_dir: Path, as_json: bool) -> None:
    """Where a study stands: jobs per status and device, and why each unfinished job is not complete.

    \b
    Example:
      slmdeploy study status studies/lab
      slmdeploy study status studies/lab --json
    """
    from rich.table import Table

    from slmdeploy.study.status import study_status

    status = study_status(study_dir)
    if as_json:
        emit_json(status)
        return
    counts = ", ".join(f"{n} {s}" for s, n in sorted(status["by_status"].items())) or "not started"
    stdout.print(f"[bold]study {status['study']}[/] ({status['dir']}): {status['jobs']} jobs: {counts}")
    table = Table(header_style="bold")
    statuses = sorted({s for d in status["devices"] for s in d if s not in ("spec", "state", "reason", "jobs")})
    for col in ("device", "state", "jobs", *statuses):
        table.add_column(col)
    for d in status["devices"]:
        state = d["state"] + (f" ({d['reason']})" if d.get("reason") else "")
        table.add_row(d["spec"], state, str(d["jobs"]), *(str(d.get(s, 0)) for s in statuses))
    stdout.print(table)
    for key, error in status.get("exports_failed", {}).items():
        stdout.print(f"[red]export failed[/]: {key}: {error}", highlight=False)
    for p in status["problems"][:30]:
        stdout.print(f"[yellow]{p['status']}[/]: {p['name']}: {p['reason'] or '-'}", highlight=False)
    if len(status["problems"]) > 30:
        stdout.print(f"... {len(status['problems']) - 30} more (--json lists all)")
