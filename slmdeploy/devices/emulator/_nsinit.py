"""Holds the emulated phone's private mount namespace open (run under ``unshare -m -u``).

Started as a stand-alone script (no package imports: it runs in a fresh interpreter
and chroots away). It builds a new root on a private tmpfs: the host's top-level
directories bound read-only (so the host's /bin/sh, python and natively built
binaries run), the host's /tmp read-only, /dev, /proc and /sys, and the phone's own paths
(/data, /sdcard, /system, fake /proc and /sys files) bound from the sandbox. Then it
chroots there, prints "ready" and waits for stdin to close; commands join with
``nsenter -t PID -m -u -r -w``. Nothing of this is visible on the host.
"""

from __future__ import annotations

import ctypes
import json
import os
import socket
import sys

MS_RDONLY = 1
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_UNBINDABLE = 1 << 17
MS_PRIVATE = 1 << 18

_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]


def _enc(value: str | None) -> bytes | None:
    return None if value is None else value.encode()


def mount(source: str | None, target: str, fstype: str | None = None, flags: int = 0,
          data: str | None = None) -> None:
    if _libc.mount(_enc(source), _enc(target), _enc(fstype), flags, _enc(data)) != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"mount {source} on {target}: {os.strerror(err)}")


def bind(source: str, target: str, *, read_only: bool, recursive: bool = True, reset_flags: bool = False) -> None:
    """Bind ``source`` on ``target``; read-only, or with ``reset_flags`` clear noexec/nosuid/nodev."""
    mount(source, target, None, MS_BIND | (MS_REC if recursive else 0))
    if read_only or reset_flags:
        try:
            mount(None, target, None, MS_BIND | MS_REMOUNT | (MS_RDONLY if read_only else 0))
        except OSError as exc:  # e.g. locked flags; the phone is then a bit more writable
            print(f"warning: {exc}", file=sys.stderr)


def build(spec: dict) -> None:
    root = spec["newroot"]
    own = set(spec["own_top_level"])
    mount(None, "/", None, MS_REC | MS_PRIVATE)
    mount("tmpfs", root, "tmpfs", 0, "size=4m,mode=755")
    mount(None, root, None, MS_UNBINDABLE)  # keeps it out of the rbinds of its host parents

    for name in sorted(os.listdir("/")):
        src, dst = "/" + name, os.path.join(root, name)
        if name in own:
            continue
        if os.path.islink(src):
            os.symlink(os.readlink(src), dst)
        elif os.path.isdir(src):
            os.mkdir(dst)
            try:
                bind(src, dst, read_only=name not in ("dev",))
            except OSError as exc:
                print(f"warning: {exc}", file=sys.stderr)

    for name, read_only in (("proc", False), ("sys", True)):
        os.mkdir(os.path.join(root, name))
        bind("/" + name, os.path.join(root, name), read_only=read_only)
    # The host's /tmp, read-only like every host directory: host binaries (a venv, a harness
    # build, a CI checkout) may live there, and the phone runs host binaries. Android has no
    # /tmp of its own; phone files go to /data.
    os.mkdir(os.path.join(root, "tmp"))
    bind("/tmp", os.path.join(root, "tmp"), read_only=True)

    for link, target in spec["symlinks"]:
        path = os.path.join(root, link.lstrip("/"))
        os.makedirs(os.path.dirname(path), exist_ok=True)
        os.symlink(target, path)
    for entry in spec["mounts"]:
        dst = os.path.join(root, entry["target"].lstrip("/"))
        if not os.path.exists(dst):
            os.makedirs(dst)
        # /data must allow exec even if the sandbox sits on a noexec host /tmp
        bind(entry["source"], dst, read_only=entry["read_only"], recursive=False, reset_flags=True)

    try:
        mount(None, root, None, MS_REMOUNT | MS_RDONLY)
    except OSError as exc:
        print(f"warning: {exc}", file=sys.stderr)
    if spec.get("hostname"):
        socket.sethostname(spec["hostname"])
    os.chroot(root)
    os.chdir("/")


def main() -> int:
    build(json.loads(sys.argv[1]))
    sys.stdout.write("ready\n")
    sys.stdout.flush()
    sys.stdin.read()  # the daemon closes our stdin (or dies) to end the namespace
    return 0


if __name__ == "__main__":
    sys.exit(main())
