"""RSA authentication as adbd does it, seen from the real adb client and a raw client."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives.asymmetric import rsa

from slmdeploy.devices.emulator.auth import encode_public_key
from slmdeploy.devices.emulator.testing import RawAdbClient


def test_new_key_is_accepted_and_recorded(emulated_phone, adb_server):
    assert emulated_phone.keys.keys == []
    adb_server.connect(emulated_phone.serial)
    try:
        assert adb_server.adb("-s", emulated_phone.serial, "shell", "echo hi").stdout == "hi\n"
        stored = emulated_phone.device_path("/data/misc/adb/adb_keys").read_text()
        assert adb_server.public_key.split()[0] in stored
    finally:
        adb_server.disconnect(emulated_phone.serial)


def test_preauthorized_key_gets_in_without_asking(phone_factory, adb_server):
    phone = phone_factory(auto_accept_keys=False, authorized_keys=[adb_server.public_key])
    result = adb_server.connect(phone.serial)
    try:
        assert "connected to" in result.stdout  # signature verified on the first try
        assert adb_server.adb("-s", phone.serial, "shell", "getprop ro.product.model").stdout == "Pixel 8\n"
    finally:
        adb_server.disconnect(phone.serial)


def test_unknown_key_is_refused_when_keys_must_be_preauthorized(phone_factory, adb_server):
    other = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    phone = phone_factory(auto_accept_keys=False, authorized_keys=[encode_public_key(other.public_key())])
    adb_server.adb("connect", phone.serial)
    try:
        adb_server.wait_for_state(phone.serial, "unauthorized", timeout=10)
        result = adb_server.adb("-s", phone.serial, "shell", "echo hi")
        assert result.returncode != 0 and "unauthorized" in result.stderr
        assert phone.keys.keys == [encode_public_key(other.public_key())]
    finally:
        adb_server.disconnect(phone.serial)


def test_raw_client_signature_and_refusal(phone_factory):
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    phone = phone_factory(auto_accept_keys=False, authorized_keys=[encode_public_key(key.public_key())])
    client = RawAdbClient("127.0.0.1", phone.port, key)
    assert client.connect().startswith("device::ro.product.name=shiba;")
    client.close()

    stranger = RawAdbClient("127.0.0.1", phone.port, rsa.generate_private_key(65537, 2048), timeout=1.0)
    with pytest.raises(TimeoutError):  # like a phone whose user never taps "Allow"
        stranger.connect()
    stranger.close()


def test_no_auth_mode_goes_straight_online(phone_factory):
    phone = phone_factory(auth_required=False)
    client = RawAdbClient("127.0.0.1", phone.port)
    assert "features=" in client.connect()
    client.close()
