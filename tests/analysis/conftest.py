"""Fixtures of the analysis tests: synthetic runs (``slmdeploy.analysis.synthetic``)."""

from __future__ import annotations

import pytest

from slmdeploy.analysis.synthetic import trace_events, write_run


@pytest.fixture
def make_trace():
    return trace_events


@pytest.fixture
def make_run():
    return write_run
