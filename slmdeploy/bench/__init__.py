"""Benchmark: run an artifact's workload on a device and store the result."""

from slmdeploy._callable import make_callable
from slmdeploy.bench.api import RunResult, bench
from slmdeploy.bench.workload import Workload

__all__ = ["RunResult", "Workload", "bench"]

make_callable(__name__, bench)
