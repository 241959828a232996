"""Analysis: traces and stored runs as pandas DataFrames, tables and comparisons."""

from slmdeploy.analysis.metrics import summarize
from slmdeploy.analysis.runs import load_runs
from slmdeploy.analysis.summary import summarize_rows
from slmdeploy.analysis.table import comparison

__all__ = ["comparison", "load_runs", "summarize", "summarize_rows"]
