"""adb RSA authentication, as adbd does it.

On connect the daemon sends ``AUTH TOKEN`` (20 random bytes). The host answers with
``AUTH SIGNATURE`` (PKCS#1 v1.5 over the token, treated as an already hashed SHA-1
digest) for each private key it has; when none verifies it sends ``AUTH
RSAPUBLICKEY`` and a real phone shows the "Allow USB debugging?" dialog. Here
``auto_accept`` stands for the user tapping "Allow"; without it only keys already
in the store (``/data/misc/adb/adb_keys`` on the phone) get in.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
import struct
import threading
from dataclasses import dataclass
from pathlib import Path

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import padding, rsa, utils

from slmdeploy.devices.emulator.protocol import TOKEN_SIZE

log = logging.getLogger(__name__)

# Android's RSAPublicKey struct (libcrypto_utils android_pubkey.h): word count,
# n0inv, modulus (little-endian), R^2 mod n (little-endian), exponent.
_MODULUS_BYTES = 256
_PUBKEY = struct.Struct(f"<II{_MODULUS_BYTES}s{_MODULUS_BYTES}sI")


class KeyFormatError(ValueError):
    """Text that is not an adb public key."""


def decode_public_key(text: str | bytes) -> rsa.RSAPublicKey:
    """The RSA key in an ``adbkey.pub`` line (base64 struct, optional " user@host")."""
    if isinstance(text, bytes):
        text = text.decode("ascii", "replace")
    fields = text.strip().strip("\0").split()
    if not fields:
        raise KeyFormatError("empty adb public key")
    try:
        raw = base64.b64decode(fields[0], validate=True)
    except (binascii.Error, ValueError) as exc:
        raise KeyFormatError(f"adb public key is not base64: {exc}") from exc
    if len(raw) != _PUBKEY.size:
        raise KeyFormatError(f"adb public key struct is {len(raw)} bytes, expected {_PUBKEY.size}")
    words, _n0inv, modulus, _rr, exponent = _PUBKEY.unpack(raw)
    if words * 4 != _MODULUS_BYTES:
        raise KeyFormatError(f"unsupported modulus size of {words} words")
    n = int.from_bytes(modulus, "little")
    return rsa.RSAPublicNumbers(exponent, n).public_key()


def encode_public_key(key: rsa.RSAPublicKey, comment: str = "slmdeploy@emulator") -> str:
    """The ``adbkey.pub`` text for ``key`` (a 2048-bit RSA key), as adb writes it."""
    numbers = key.public_numbers()
    n = numbers.n
    r = 1 << (_MODULUS_BYTES * 8)
    n0inv = (-pow(n, -1, 1 << 32)) % (1 << 32)
    raw = _PUBKEY.pack(
        _MODULUS_BYTES // 4,
        n0inv,
        n.to_bytes(_MODULUS_BYTES, "little"),
        (r * r % n).to_bytes(_MODULUS_BYTES, "little"),
        numbers.e,
    )
    return f"{base64.b64encode(raw).decode()} {comment}"


def sign_token(key: rsa.RSAPrivateKey, token: bytes) -> bytes:
    """What the adb host sends in AUTH SIGNATURE for ``token``."""
    return key.sign(token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))


def new_token() -> bytes:
    return os.urandom(TOKEN_SIZE)


@dataclass(frozen=True)
class AuthorizedKey:
    text: str
    key: rsa.RSAPublicKey


class KeyStore:
    """The phone's accepted host keys, kept in ``adb_keys`` so they survive restarts."""

    def __init__(self, path: Path, preauthorized: list[str] | None = None) -> None:
        self.path = path
        self._lock = threading.Lock()
        self._keys: list[AuthorizedKey] = []
        if path.exists():
            for line in path.read_text().splitlines():
                self._add_parsed(line)
        for text in preauthorized or []:
            self.add(text)

    def _add_parsed(self, text: str) -> AuthorizedKey | None:
        text = text.strip().strip("\0")
        if not text or any(k.text.split()[0] == text.split()[0] for k in self._keys):
            return None
        try:
            entry = AuthorizedKey(text, decode_public_key(text))
        except KeyFormatError as exc:
            log.warning("ignoring bad adb key: %s", exc)
            return None
        self._keys.append(entry)
        return entry

    def add(self, text: str) -> None:
        """Accept ``text`` (an adbkey.pub line) and persist it."""
        with self._lock:
            if self._add_parsed(text) is not None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                self.path.write_text("".join(k.text + "\n" for k in self._keys))

    @property
    def keys(self) -> list[str]:
        with self._lock:
            return [k.text for k in self._keys]

    def verify(self, token: bytes, signature: bytes) -> str | None:
        """The accepted key that signed ``token``, or None."""
        with self._lock:
            keys = list(self._keys)
        for entry in keys:
            try:
                entry.key.verify(signature, token, padding.PKCS1v15(), utils.Prehashed(hashes.SHA1()))
            except (InvalidSignature, ValueError):
                continue
            return entry.text
        return None
