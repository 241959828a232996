"""Reports people open: a self-contained HTML page of runs, and a run as a Perfetto trace.

    from slmdeploy.report import html_report, write_perfetto
    html_report(["runs/"], "report.html")                 # open from disk, no network
    write_perfetto("runs/2026…-fp32", "run.trace.json")   # open in ui.perfetto.dev

Importing this package stays light: matplotlib and pandas load when a report is made.
"""

from slmdeploy.report.page import HtmlReport, html_report
from slmdeploy.report.perfetto import PerfettoResult, write_perfetto

__all__ = ["HtmlReport", "PerfettoResult", "html_report", "write_perfetto"]
