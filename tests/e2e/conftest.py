"""End-to-end benches on loopback: the emulated phone over adb and adb-direct, OpenSSH as a board.

The artifact is ``tiny_fp32`` (tests/conftest.py: llama-tiny for this host, exported once per
session); the emulated phone runs host binaries, so this host's Python harness runs "on the phone".
"""

from __future__ import annotations

from typing import Iterator

import pytest

from slmdeploy.devices.loopback import LoopbackLab


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackLab]:
    with LoopbackLab(tmp_path_factory.mktemp("e2e-lab")) as lab:
        yield lab
