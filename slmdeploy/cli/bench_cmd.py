from __future__ import annotations

from pathlib import Path

import click

from slmdeploy.cli.common import emit_json, json_option, stdout


@click.command("bench")
@click.argument("artifact")
@click.option("--device", "-d", default="local", show_default=True, help="local, adb:SERIAL, adb-direct:HOST:PORT or ssh:USER@HOST[:PORT].")
@click.option("--prompt", "-p", "prompt_tokens", default=128, show_default=True, help="Prompt tokens per prefill.")
@click.option("--gen", "-g", "gen_tokens", default=64, show_default=True, help="Decode steps per run.")
@click.option("--runs", "-r", default=5, show_default=True, help="Measured repetitions.")
@click.option("--warmup", default=1, show_default=True, help="Warm-up repetitions (traced, not counted).")
@click.option("--threads", "-t", default=0, show_default=True, help="CPU threads (0 = runtime default).")
@click.option("--iterations", default=10, show_default=True, help="Generic (non-LLM) artifacts: calls per run.")
@click.option("--input", "inputs", multiple=True, type=click.Path(exists=True, dir_okay=False), metavar="FILE",
              help="Generic artifacts: one .npy (or raw .bin) per method input, in order [default: seeded random].")
@click.option("--harness", type=click.Choice(["auto", "python", "native"]), default="auto", show_default=True)
@click.option("--runs-dir", type=click.Path(path_type=Path), default=Path("runs"), show_default=True, help="Where run directories and results.duckdb go.")
@click.option("--db", type=click.Path(path_type=Path), help="Results database [default: RUNS_DIR/results.duckdb].")
@click.option("--timeout", default=1800.0, show_default=True, help="Seconds before the harness run is abandoned.")
@click.option("--retries", default=0, show_default=True, help="Re-run an interrupted run this many times.")
@click.option("--telemetry-ms", default=500, show_default=True, help="Telemetry sampling period (0 = off).")
@click.option("--profile", is_flag=True, help="Also record an op-level profile (ExecuTorch ETDump; LiteRT profiler, native harness); see `report --ops`.")
@click.option("--python", "python", metavar="PATH", help="--harness python: the interpreter on the device [default: python3; this host: the current one].")
@click.option("--cooldown-below", "cooldown_c", type=float, metavar="C", help="Before each run, wait until the device's hottest thermal zone is below C °C.")
@click.option("--cooldown-timeout", default=600.0, show_default=True, help="Seconds to wait for --cooldown-below before failing.")
@click.option("--accelerator", type=click.Choice(["cpu", "gpu"]), default="cpu", show_default=True,
              help="LiteRT (.tflite, native harness): gpu runs on the device's GPU accelerator (the target must list the gpu delegate); fails where the device's LiteRT has none.")
@click.option("--bandwidth-probe/--no-bandwidth-probe", "bandwidth_probe", default=None,
              help="Measure the device's memory bandwidth before the run (~0.3 s; a `bandwidth` trace event, "
                   "kept per device) for the roofline columns of `report` [default: on for LLM artifacts].")
@json_option
def bench_cmd(artifact: str, device: str, prompt_tokens: int, gen_tokens: int, runs: int, warmup: int, threads: int,
              iterations: int, inputs: tuple[str, ...], harness: str, runs_dir: Path, db: Path | None, timeout: float, retries: int,
              telemetry_ms: int, profile: bool, python: str | None, cooldown_c: float | None, cooldown_timeout: float,
              accelerator: str, bandwidth_probe: bool | None, as_json: bool) -> None:
    """Benchmark ARTIFACT (an artifact directory, or a model name exported for this host) on a device.

    \b
    Example:
      slmdeploy bench llama-tiny                      # export (cached) + bench on this host
      slmdeploy bench artifacts/smollm2-135m-host-xnnpack -p 64 -g 32 -r 3 --json
      slmdeploy bench artifacts/x --device adb:R58N12ABCDE --harness native --cooldown-below 40
      slmdeploy bench artifacts/my-cnn --input image.npy --iterations 100
      slmdeploy bench artifacts/x-tflite --device adb:R58N12ABCDE --accelerator gpu
      slmdeploy bench llama-tiny --no-bandwidth-probe   # skip the roofline's bandwidth probe
    """
    from slmdeploy.analysis.roofline_table import roofline_table
    from slmdeploy.analysis.table import results_table
    from slmdeploy.bench import Workload, bench
    from slmdeploy.analysis import load_runs

    workload = Workload(prompt_tokens=prompt_tokens, gen_tokens=gen_tokens, warmup=warmup, runs=runs, threads=threads,
                        iterations=iterations, telemetry_interval_ms=telemetry_ms, inputs=tuple(inputs))
    result = bench(artifact, device, workload=workload, harness=harness, runs_dir=runs_dir, db=db, timeout=timeout,
                   retries=retries, profile=profile, python=python, progress=not as_json, cooldown_c=cooldown_c,
                   cooldown_timeout=cooldown_timeout, accelerator=accelerator, bandwidth_probe=bandwidth_probe)
    frame = load_runs(result.run_dir)
    if as_json:
        emit_json({"run_dir": str(result.run_dir), "status": result.status, "result": frame.to_dict("records")[0]})
        return
    stdout.print(results_table(frame))
    if (roofline := roofline_table(frame)) is not None:
        stdout.print(roofline)
    stdout.print(f"[dim]run directory: {result.run_dir}[/]")
