#!/bin/sh
# Install every Debian package the project needs; idempotent and quick when
# everything is already there.  Runs apt-get as root (or through sudo).
set -eu

PACKAGES="build-essential gcc make binutils libelf-dev zlib1g-dev liblz4-dev \
libdeflate-dev \
libjansson-dev kconfig-frontends qemu-system-x86 python3 python3-pytest \
busybox-static clang libclang-rt-14-dev linux-image-amd64 kmod iproute2 \
e2fsprogs libssl-dev libgnutls28-dev gnutls-bin \
libseccomp-dev libcap-dev libxxhash-dev"

missing=""
for p in $PACKAGES; do
	if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null |
	     grep -q "install ok installed"; then
		missing="$missing $p"
	fi
done
[ -z "$missing" ] && exit 0

echo "setup: installing:$missing"
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo
export DEBIAN_FRONTEND=noninteractive
$SUDO apt-get update -qq
# shellcheck disable=SC2086
$SUDO apt-get install -y -qq --no-install-recommends $missing
