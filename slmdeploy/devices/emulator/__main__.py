"""Run one emulated phone in the foreground: ``python -m slmdeploy.devices.emulator``."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from slmdeploy.devices.emulator.daemon import EmulatedPhone
from slmdeploy.devices.emulator.faults import FaultPlan
from slmdeploy.devices.emulator.profiles import available_profiles

EXAMPLE = """\
example:
  python -m slmdeploy.devices.emulator --profile pixel8 --port 5555 --root /tmp/pixel8
  adb connect 127.0.0.1:5555
  adb -s 127.0.0.1:5555 shell getprop ro.product.model     # -> Pixel 8
"""


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m slmdeploy.devices.emulator",
        description="Emulated Android phone speaking the adb protocol on a loopback TCP port.",
        epilog=EXAMPLE,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--profile", default="pixel8",
                        help=f"shipped profile ({', '.join(available_profiles())}) or a JSON file")
    parser.add_argument("--port", type=int, default=5555, help="TCP port on 127.0.0.1 (0: any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to listen on (default loopback)")
    parser.add_argument("--root", help="sandbox directory, kept between runs (default: temporary)")
    parser.add_argument("--isolation", choices=("auto", "namespace", "rewrite"), default="auto")
    parser.add_argument("--no-auth", action="store_true", help="skip RSA auth (like ro.adb.secure=0)")
    parser.add_argument("--ask-keys", action="store_true",
                        help="do not auto-accept unknown host keys (only --authorize'd ones get in)")
    parser.add_argument("--authorize", action="append", default=[], metavar="ADBKEY_PUB",
                        help="adbkey.pub file whose key is accepted from the start (repeatable)")
    parser.add_argument("--link-speed", type=float, help="throttle to this many bytes/s per direction")
    parser.add_argument("--storage-quota", type=int, help="bytes /data + /sdcard may hold")
    parser.add_argument("--cpu-share", type=float, metavar="CORES",
                        help="host cores all the phone's commands share (e.g. 0.1: a phone 10x slower than one "
                             "host core); needs root (a cgroup with the cpu controller)")
    parser.add_argument("--thermal-interval", type=float, default=0.2, metavar="S",
                        help="how often the heating model updates the sysfs files (default 0.2 s)")
    parser.add_argument("-v", "--verbose", action="store_true")
    args = parser.parse_args(argv)

    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.INFO,
                        format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    keys = [open(path).read().strip() for path in args.authorize]
    phone = EmulatedPhone(
        args.profile, root=args.root, host=args.host, port=args.port,
        auth_required=not args.no_auth, auto_accept_keys=not args.ask_keys, authorized_keys=keys,
        faults=FaultPlan(link_bytes_per_s=args.link_speed, data_quota_bytes=args.storage_quota),
        isolation=args.isolation, cpu_share=args.cpu_share, thermal_interval_s=args.thermal_interval,
    )
    done = threading.Event()
    signal.signal(signal.SIGINT, lambda *_: done.set())
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    with phone:
        print(f"emulated {phone.profile.model} ({phone.profile.name}) ready; isolation={phone.isolation}; "
              f"sandbox={phone.root}", flush=True)
        print(f"connect with: adb connect {phone.serial}", flush=True)
        print(phone.serial, flush=True)
        done.wait()
    return 0


if __name__ == "__main__":
    sys.exit(main())
