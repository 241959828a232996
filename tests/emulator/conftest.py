"""Fixtures for tests that need a phone: an emulated one and the real adb client.

Reuse from another test folder with ``pytest_plugins = ["tests.emulator.conftest"]``
in a conftest.py at the tests root, or use the classes directly
(``slmdeploy.devices.emulator.testing.AdbServer``, ``EmulatedPhone``).

* ``adb_server`` (session): the real adb server on a free port with a private HOME;
  ``.adb(*args)`` runs the real client against it, ``.port``, ``.env``, ``.public_key``.
* ``adb_client``: the adb binary path and the env that points it at that server.
* ``emulated_phone``: a started Pixel 8 with its sandbox under ``tmp_path``.
* ``phone_factory``: ``phone_factory(profile="galaxy-s24", **EmulatedPhone kwargs)``.
* ``connected_phone``: ``emulated_phone`` after ``adb connect`` (disconnected after).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from slmdeploy.devices.emulator import EmulatedPhone, Profile
from slmdeploy.devices.emulator.testing import AdbServer


@dataclass(frozen=True)
class AdbClient:
    """What code that shells out to adb needs: the binary and its environment."""

    path: Path
    env: dict[str, str]
    port: int

    def argv(self, *args: str) -> list[str]:
        return [str(self.path), "-P", str(self.port), *args]


@pytest.fixture(scope="session")
def adb_server() -> Iterator[AdbServer]:
    with AdbServer() as server:
        yield server


@pytest.fixture
def adb_client(adb_server: AdbServer) -> AdbClient:
    return AdbClient(adb_server.adb_path, dict(adb_server.env), adb_server.port)


@pytest.fixture
def phone_factory(tmp_path: Path) -> Iterator[Callable[..., EmulatedPhone]]:
    phones: list[EmulatedPhone] = []

    def make(profile: str | Profile = "pixel8", **kwargs: Any) -> EmulatedPhone:
        kwargs.setdefault("root", tmp_path / f"phone{len(phones)}")
        phone = EmulatedPhone(profile, **kwargs).start()
        phones.append(phone)
        return phone

    yield make
    for phone in phones:
        phone.stop()


@pytest.fixture
def emulated_phone(phone_factory: Callable[..., EmulatedPhone]) -> EmulatedPhone:
    return phone_factory("pixel8")


@pytest.fixture
def connected_phone(emulated_phone: EmulatedPhone, adb_server: AdbServer) -> Iterator[EmulatedPhone]:
    adb_server.connect(emulated_phone.serial)
    yield emulated_phone
    adb_server.disconnect(emulated_phone.serial)
