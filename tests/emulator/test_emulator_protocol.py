"""Wire-level behaviour a real client does not exercise: odd WRTE splits, framing, keys."""

from __future__ import annotations

import struct

import pytest
from adb_shell.auth.keygen import keygen
from cryptography.hazmat.primitives import serialization

from slmdeploy.devices.emulator import protocol as p
from slmdeploy.devices.emulator.auth import decode_public_key, encode_public_key
from slmdeploy.devices.emulator.testing import RawAdbClient


def test_header_round_trip_and_magic():
    msg = p.Message(p.A_WRTE, 3, 9, b"abc")
    raw = p.pack(msg, with_checksum=True)
    assert len(raw) == 24 + 3
    assert p.unpack_header(raw[:24]) == (p.A_WRTE, 3, 9, 3, sum(b"abc"))
    bad = raw[:20] + struct.pack("<I", 0)
    with pytest.raises(p.ProtocolError):
        p.unpack_header(bad)


def test_key_format_matches_adb(tmp_path):
    keygen(str(tmp_path / "adbkey"))
    pub_line = (tmp_path / "adbkey.pub").read_text()
    private = serialization.load_pem_private_key((tmp_path / "adbkey").read_bytes(), password=None)
    decoded = decode_public_key(pub_line)
    assert decoded.public_numbers() == private.public_key().public_numbers()
    assert encode_public_key(decoded).split()[0] == pub_line.split()[0]


@pytest.fixture
def raw_client(phone_factory):
    phone = phone_factory(auth_required=False)
    client = RawAdbClient("127.0.0.1", phone.port)
    client.connect()
    yield phone, client
    client.close()


def sync_request(ident: bytes, payload: bytes) -> bytes:
    return struct.pack("<4sI", ident, len(payload)) + payload


def test_sync_requests_split_and_batched_across_writes(raw_client):
    phone, client = raw_client
    ids = client.open("sync:")
    stream = (sync_request(b"SEND", b"/data/local/tmp/split.txt,33188")
              + struct.pack("<4sI", b"DATA", 5) + b"hello"
              + struct.pack("<4sI", b"DONE", 1_700_000_000)
              + sync_request(b"STAT", b"/data/local/tmp/split.txt"))
    for i in range(0, 13):  # header and path torn across WRTEs
        client.write(ids, stream[i:i + 1])
    client.write(ids, stream[13:])  # the rest, including the next request, in one WRTE
    reply = client.read(ids, 8 + 16)
    assert reply[:8] == b"OKAY\0\0\0\0"
    ident, mode, size, mtime = struct.unpack("<4sIII", reply[8:24])
    # adbd copies the owner's permission bits to group and others: 0644 -> 0666
    assert (ident, mode & 0o7777, size, mtime) == (b"STAT", 0o666, 5, 1_700_000_000)
    client.write(ids, sync_request(b"QUIT", b""))
    assert client.read(ids) == b""
    assert phone.device_path("/data/local/tmp/split.txt").read_bytes() == b"hello"


def test_stat_v2_and_list_v2_layout(raw_client):
    phone, client = raw_client
    phone.device_path("/data/local/tmp/f").write_bytes(b"12345")
    ids = client.open("sync:")
    client.write(ids, sync_request(b"STA2", b"/data/local/tmp/f") + sync_request(b"STA2", b"/nope")
                 + sync_request(b"LIS2", b"/data/local/tmp"))
    stat_v2 = struct.Struct("<4sIQQIIIIQqqq")
    data = client.read(ids, 2 * stat_v2.size)
    found, missing = stat_v2.unpack(data[:72]), stat_v2.unpack(data[72:144])
    assert found[0] == b"STA2" and found[1] == 0 and found[8] == 5
    assert missing[0] == b"STA2" and missing[1] == 2  # ENOENT on the wire
    dent = struct.Struct("<4sIQQIIIIQqqqI")
    rest = data[144:] + client.read(ids, 1)
    names = []
    while True:
        while len(rest) < dent.size:
            rest += client.read(ids, 1)
        fields = dent.unpack(rest[:dent.size])
        if fields[0] == b"DONE":
            break
        names.append(rest[dent.size:dent.size + fields[-1]])
        rest = rest[dent.size + fields[-1]:]
    assert sorted(names) == [b".", b"..", b"f"]


def v2_packets(data: bytes) -> list[tuple[int, bytes]]:
    """Shell protocol packets: [id:1][length:4 LE][data]."""
    packets = []
    while data:
        kind, length = struct.unpack("<BI", data[:5])
        packets.append((kind, data[5:5 + length]))
        data = data[5 + length:]
    return packets


def test_shell_v2_packets_stdin_and_exit(raw_client):
    _phone, client = raw_client
    ids = client.open("shell,v2,raw:tr a-z A-Z; echo done >&2; exit 4")
    client.write(ids, struct.pack("<BI", 0, 6) + b"hello\n" + struct.pack("<BI", 4, 0))
    packets = v2_packets(client.read(ids))
    assert (1, b"HELLO\n") in packets and (2, b"done\n") in packets
    assert packets[-1] == (3, b"\x04")


def test_unknown_service_is_closed(raw_client):
    _phone, client = raw_client
    with pytest.raises(ConnectionRefusedError):
        client.open("jdwp:1234")
    ids = client.open("shell:echo still fine")
    assert client.read(ids) == b"still fine\n"


def test_killed_command_reports_128_plus_signal(raw_client):
    _phone, client = raw_client
    ids = client.open("shell,v2,raw:kill -9 $$")
    assert v2_packets(client.read(ids)) == [(3, bytes([128 + 9]))]


def test_v1_stdin_reaches_the_command(raw_client):
    _phone, client = raw_client
    ids = client.open("exec:head -c 5")
    client.write(ids, b"hel")
    client.write(ids, b"lo, and more")
    assert client.read(ids) == b"hello"


def test_pty_shell(raw_client):
    _phone, client = raw_client
    ids = client.open("shell,v2,TERM=xterm-256color,pty:test -t 0 && echo tty $TERM")
    packets = v2_packets(client.read(ids))
    # one stream for a terminal, whose line discipline turns \n into \r\n
    assert b"".join(d for kind, d in packets if kind == 1) == b"tty xterm-256color\r\n"
    assert packets[-1] == (3, b"\0")
