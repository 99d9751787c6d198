#!/usr/bin/env bash
# Installs what qvm needs to build, run and be tested on Debian 12.
# Safe to run again: apt-get skips what is installed.
set -euo pipefail
if [ "$(id -u)" != 0 ]; then
    echo "install-deps: run as root (apt-get)" >&2
    exit 1
fi
build=(meson ninja-build pkg-config gcc libyaml-dev libjson-c-dev libarchive-dev libssl-dev
       libzstd-dev libxml2-dev libvirt-dev)
run=(qemu-system-x86 qemu-utils dnsmasq-base nftables iproute2)
test=(mmdebstrap extlinux syslinux-common e2fsprogs fdisk util-linux valgrind
      clang libclang-rt-14-dev btrfs-progs xfsprogs zfs-fuse
      libvirt-daemon-system libvirt-clients virtinst libxml2-utils
      openssh-client iputils-ping python3 bind9-dnsutils)
bench=(hyperfine virtinst libvirt-daemon-system)
want=("${build[@]}" "${run[@]}" "${test[@]}")
[ "${QVM_WITH_BENCH:-0}" = 1 ] && want+=("${bench[@]}")
missing=()
for p in "${want[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ ${#missing[@]} -gt 0 ]; then
    echo "install-deps: installing ${missing[*]}" >&2
    export DEBIAN_FRONTEND=noninteractive
    apt-get update -qq
    apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
