"""Real transports against real servers on loopback (``slmdeploy.devices.loopback.LoopbackLab``):
the emulated phone through the real adb server and directly, and OpenSSH through a cuttable
relay. Nothing leaves 127.0.0.1.

``device`` is parametrized over the three transports; ``lab.cut(device)`` drops its link the
way a pulled cable or lost Wi-Fi would.
"""

from __future__ import annotations

import secrets
from typing import Iterator

import pytest

from slmdeploy.devices.loopback import LoopbackLab

TRANSPORTS = ("adb", "adb-direct", "ssh")


@pytest.fixture(scope="session")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LoopbackLab]:
    with LoopbackLab(tmp_path_factory.mktemp("lab")) as lab:
        yield lab


@pytest.fixture(scope="session")
def phone(lab):
    return lab.phone


@pytest.fixture(scope="session")
def adb_server(lab):
    return lab.adb_server


@pytest.fixture(params=TRANSPORTS)
def device(request, lab, tmp_path) -> Iterator:
    dev = lab.open(request.param, workdir=tmp_path / "board-workdir")
    yield dev
    dev.close()


@pytest.fixture
def scratch(device) -> Iterator[str]:
    """A fresh directory on the device under its workdir."""
    path = f"{device.workdir}/test-{secrets.token_hex(4)}"
    assert device.shell(["mkdir", "-p", path]).ok
    yield path
    device.shell(["rm", "-rf", path])
