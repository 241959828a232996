"""``slmdeploy compare``: exit codes CI acts on, one-line usage errors, JUnit and Markdown files."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))
from gate_runs import noisy, write_run  # noqa: E402

CLI = [sys.executable, "-m", "slmdeploy", "compare"]
BASE = noisy(100, 0.01, 10, seed=1)


def run(*args):
    return subprocess.run([*CLI, *map(str, args)], capture_output=True, text=True, timeout=300,
                          env=os.environ | {"COLUMNS": "200"})


def one_line_error(proc, *needles):
    assert proc.returncode == 2, (proc.returncode, proc.stdout, proc.stderr)
    assert "Traceback" not in proc.stderr
    lines = [line for line in proc.stderr.strip().splitlines() if line.strip()]
    assert len(lines) == 1 and lines[0].startswith("error:"), proc.stderr
    for needle in needles:
        assert needle in lines[0]


@pytest.fixture(scope="module")
def farm(tmp_path_factory):
    """baseline: two rows (fp32, 8da4w); candidate: fp32 10% slower, 8da4w missing, an extra workload."""
    root = tmp_path_factory.mktemp("farm")
    write_run(root / "base", "b-fp32", BASE)
    write_run(root / "base", "b-q", BASE, target="host-xnnpack-8da4w")
    write_run(root / "slow", "c-fp32", [0.9 * v for v in noisy(100, 0.01, 10, seed=2)])
    write_run(root / "slow", "c-p64", BASE, prompt=64)
    write_run(root / "same", "s-fp32", BASE)
    write_run(root / "same", "s-q", BASE, target="host-xnnpack-8da4w")
    base = noisy(100, 0.4, 10, seed=7)
    write_run(root / "noisy-base", "nb", base)
    write_run(root / "noisy-cand", "nc", [0.9 * v for v in base])
    return root


def test_regression_exits_1_and_writes_junit_and_markdown(farm, tmp_path):
    junit, md = tmp_path / "out" / "gate.xml", tmp_path / "gate.md"
    proc = run(farm / "base", farm / "slow", "--junit", junit, "--markdown", md)
    assert proc.returncode == 1, proc.stderr
    assert "regression" in proc.stdout and "FAIL" in proc.stdout
    assert "only in baseline: llama-tiny · host-xnnpack-8da4w" in proc.stdout
    assert "only in candidate: llama-tiny · host-xnnpack · local (AMD EPYC) · pp64+tg64" in proc.stdout

    root = ET.parse(junit).getroot()
    assert root.tag == "testsuites"
    suites = {s.get("name"): s for s in root.iter("testsuite")}
    assert len(suites) == 4  # one per default metric
    # 1 matched row + 2 unmatched rows per metric; decode, prefill and TTFT regressed, peak RSS did not
    assert [int(s.get("tests")) for s in suites.values()] == [3, 3, 3, 3]
    assert sum(int(s.get("failures")) for s in suites.values()) == 3 == int(root.get("failures"))
    assert all(int(s.get("skipped")) == 2 for s in suites.values())
    decode = suites["slmdeploy compare: decode (tok/s)"]
    [failure] = decode.iter("failure")
    message = failure.get("message")
    assert "decode -" in message and "%" in message and "95% CI" in message and "p=" in message
    pct = float(message.split("decode ")[1].split("%")[0])
    assert -11.5 < pct < -8.5
    skipped = [c for c in decode.iter("testcase") if c.find("skipped") is not None]
    assert {c.find("skipped").get("message").split(":")[0] for c in skipped} == {"only in baseline", "only in candidate"}
    assert all(c.get("classname") == "slmdeploy.compare.decode_tps" for c in decode.iter("testcase"))

    text = md.read_text()
    assert text.startswith("## ❌ slmdeploy compare: FAIL")
    table = [line for line in text.splitlines() if line.startswith("| llama-tiny")]
    assert len(table) == 4 and sum("🔴 regression" in line for line in table) == 3
    assert "**Only in baseline (no candidate run):**" in text and "host-xnnpack-8da4w" in text
    header = [line for line in text.splitlines() if line.startswith("| row |")][0]
    assert header.count("|") - 1 == table[0].replace("\\|", "").count("|") - 1 == 8


def test_same_data_exits_0(farm, tmp_path):
    proc = run(farm / "base", farm / "same", "--json", "--junit", tmp_path / "g.xml")
    assert proc.returncode == 0, proc.stderr
    data = json.loads(proc.stdout)
    assert data["passed"] and data["exit_code"] == 0 and data["matched_rows"] == 2
    assert data["counts"]["unchanged"] == 8 and not data["only_baseline"] and not data["only_candidate"]
    assert all(r["change_pct"] == 0 for r in data["results"])
    root = ET.parse(tmp_path / "g.xml").getroot()
    assert root.get("tests") == "8" and root.get("failures") == "0"


def test_huge_noise_is_inconclusive_and_exits_0(farm):
    proc = run(farm / "noisy-base", farm / "noisy-cand", "-m", "decode_tps", "--json")
    assert proc.returncode == 0, proc.stderr
    [r] = json.loads(proc.stdout)["results"]
    assert r["verdict"] == "inconclusive" and r["change_pct"] == pytest.approx(-10) and r["p_value"] > 0.3
    assert r["baseline"]["n"] == r["candidate"]["n"] == 10


def test_threshold_option_and_fail_unmatched(farm):
    assert run(farm / "base", farm / "slow", "-m", "decode_tps", "--threshold", "15%").returncode == 0
    assert run(farm / "base", farm / "slow", "-m", "decode_tps", "--threshold", "8").returncode == 1
    assert run(farm / "base", farm / "same", "--fail-unmatched").returncode == 0
    proc = run(farm / "same", farm / "slow", "-m", "peak_rss_mib", "--fail-unmatched")
    assert proc.returncode == 1 and "unmatched" in proc.stdout


@pytest.mark.parametrize("args,needles", [
    (["--threshold", "abc"], ["--threshold 'abc'", "5%"]),
    (["--threshold", "-5%"], ["--threshold '-5%'"]),
    (["-m", "tokens_per_s"], ["unknown metric 'tokens_per_s'", "decode_tps"]),
])
def test_usage_errors_exit_2_with_one_line(farm, args, needles):
    one_line_error(run(farm / "base", farm / "same", *args), *needles)


def test_paths_that_are_not_runs_and_nothing_matched_exit_2(farm, tmp_path):
    one_line_error(run(farm / "base", tmp_path / "nowhere"), "candidate", "does not exist")
    (tmp_path / "empty").mkdir()
    one_line_error(run(tmp_path / "empty", farm / "base"), "neither a run directory")
    mine = write_run(tmp_path / "mine", "m", BASE, model="my-model")
    one_line_error(run(farm / "base", mine, "--match-device", "model"), "no row of the candidate matches", "my-model")
    other = write_run(tmp_path / "phone", "p", BASE, device="adb:SER9", device_model="Pixel 8")
    one_line_error(run(farm / "base", other), "no row of the candidate matches", "--match-device model")


def test_help_has_an_example_and_the_exit_codes():
    proc = subprocess.run([sys.executable, "-m", "slmdeploy", "compare", "--help"], capture_output=True, text=True)
    assert proc.returncode == 0 and "Example" in proc.stdout and "Exit status" in proc.stdout


def test_cli_default_metrics_are_the_gates():
    from slmdeploy.analysis.gate import DEFAULT_METRICS
    from slmdeploy.cli.compare_cmd import DEFAULT_METRICS as CLI_DEFAULTS

    assert CLI_DEFAULTS == DEFAULT_METRICS
