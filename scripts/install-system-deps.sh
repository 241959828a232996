#!/bin/sh
# System packages slmdeploy's tests need (idempotent: installs only what is missing).
#   openssh-server  the real sshd the ssh transport's tests and benchmarks start on loopback
#   cmake, g++, make  to build the native harness (android_harness/) for this host
#   chromium          the headless browser the HTML report's tests open the page in (via playwright)
# The adb binary comes from the adbutils wheel; nothing else is needed from apt.
set -eu

missing=""
[ -x /usr/sbin/sshd ] || command -v sshd >/dev/null 2>&1 || missing="$missing openssh-server"
command -v ssh-keygen >/dev/null 2>&1 || missing="$missing openssh-client"
command -v cmake >/dev/null 2>&1 || missing="$missing cmake"
command -v g++ >/dev/null 2>&1 || missing="$missing g++"
command -v make >/dev/null 2>&1 || missing="$missing make"
[ -x /usr/bin/chromium ] || missing="$missing chromium"

if [ -z "$missing" ]; then
  echo "system deps: all present"
  exit 0
fi

if [ "$(id -u)" -eq 0 ]; then
  SUDO=""
elif command -v sudo >/dev/null 2>&1; then
  SUDO="sudo"
else
  echo "system deps missing:$missing (run as root or install sudo)" >&2
  exit 1
fi

echo "installing:$missing"
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get -o DPkg::Lock::Timeout=600 update -qq
# shellcheck disable=SC2086  # word splitting of the package list is intended
$SUDO apt-get -o DPkg::Lock::Timeout=600 install -y -qq --no-install-recommends $missing
