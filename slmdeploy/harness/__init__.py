"""Harness protocol v1: the arguments every harness takes and the trace it writes.

Implementations: ``python_harness`` (ExecuTorch's Python runtime, wherever Python is)
and the native C++ harness in ``android_harness/``. See docs/harness-protocol.md.
"""

from slmdeploy.harness.protocol import PROTOCOL, HarnessArgs
from slmdeploy.harness.trace import Trace, TraceWriter, read_trace

__all__ = ["PROTOCOL", "HarnessArgs", "Trace", "TraceWriter", "read_trace"]
