#!/usr/bin/env bash
# Builds a real Debian 12 cloud image offline from Debian's package archive:
# mmdebstrap of bookworm with the cloud kernel, cloud-init, the QEMU guest agent
# and OpenSSH, on an MBR disk with one ext4 partition booted by extlinux.
#
# The result is cached outside the repository, keyed by this script's hash, so
# repeated test runs reuse it. Prints the path of the raw image on stdout.
#
#   tests/image/build-cloud-image.sh [--print-path]
#
# Environment: QVM_IMAGE_CACHE (default /var/cache/qvm-test-images),
#              QVM_IMAGE_MIRROR (default: the host's configured Debian mirror).
# Needs root (mmdebstrap into a directory, losetup, mount).
set -euo pipefail

script_hash=$(sha256sum "$0" | cut -c1-16)
cache=${QVM_IMAGE_CACHE:-/var/cache/qvm-test-images}
out="$cache/debian12-cloud-$script_hash.raw"

if [ "${1:-}" = "--print-path" ]; then echo "$out"; exit 0; fi
if [ -s "$out" ]; then echo "$out"; exit 0; fi

mkdir -p "$cache"
exec 9>"$cache/.build.lock"
flock 9
if [ -s "$out" ]; then echo "$out"; exit 0; fi

work=$(mktemp -d "$cache/.build.XXXXXX")
mnt="$work/mnt"
loop=""
cleanup() {
    set +e
    mountpoint -q "$mnt" && umount "$mnt"
    [ -n "$loop" ] && losetup -d "$loop"
    rm -rf "$work"
}
trap cleanup EXIT

mirror=${QVM_IMAGE_MIRROR:-}
if [ -z "$mirror" ]; then
    # the host's own Debian mirror: the only archive these machines reach
    mirror=$(cat /etc/apt/sources.list /etc/apt/sources.list.d/*.list /etc/apt/sources.list.d/*.sources 2>/dev/null \
             | grep -E '^(deb |URIs:)' | grep -oE 'https?://[^ ]+/debian/?' | head -n1 || true)
    mirror=${mirror:-http://deb.debian.org/debian}
fi

packages=linux-image-cloud-amd64,cloud-init,qemu-guest-agent,openssh-server,ifupdown
packages=$packages,isc-dhcp-client,systemd-sysv,udev,netbase,sudo,cloud-guest-utils
packages=$packages,e2fsprogs,iproute2,procps,ca-certificates,initramfs-tools
# dbus: systemd-logind needs it to act on the ACPI power button (qvm stop)
packages=$packages,dbus,libpam-systemd
echo "build-cloud-image: mmdebstrap bookworm from $mirror" >&2
mmdebstrap --quiet --variant=minbase --include="$packages" \
    --customize-hook='echo qvm-image > "$1/etc/hostname"' \
    bookworm "$work/root" "$mirror" >&2

root="$work/root"
# NoCloud only: cloud-init does not wait for network metadata services that
# cannot exist here, which saves minutes of boot time under TCG.
# C.UTF-8 is built into glibc: cloud-init's locale module needs no locale
# generation (this image has no locales package).
cat > "$root/etc/cloud/cloud.cfg.d/90-qvm-datasource.cfg" <<'CFG'
datasource_list: [ NoCloud, None ]
locale: C.UTF-8
CFG
cat > "$root/etc/network/interfaces" <<'CFG'
auto lo
iface lo inet loopback
source /etc/network/interfaces.d/*
CFG
rm -f "$root/etc/ssh/ssh_host_"*          # each VM gets its own keys from cloud-init
: > "$root/etc/machine-id"
rm -rf "$root/var/lib/apt/lists/"* "$root/var/cache/apt/"*.bin

size_mib=2048
disk="$work/disk.raw"
truncate -s "${size_mib}M" "$disk"
printf 'label: dos\nstart=2048, type=83, bootable\n' | sfdisk --quiet "$disk"
loop=$(losetup --find --show --offset $((2048 * 512)) --sizelimit $(((size_mib - 1) * 1024 * 1024)) "$disk")
# extlinux 6.04 cannot boot ext4 with 64bit or metadata_csum_seed.
mkfs.ext4 -q -L rootfs -O ^64bit,^metadata_csum_seed -d "$root" "$loop"
uuid=$(blkid -s UUID -o value "$loop")
mkdir -p "$mnt"
mount "$loop" "$mnt"
echo "UUID=$uuid / ext4 errors=remount-ro 0 1" > "$mnt/etc/fstab"
mkdir -p "$mnt/boot/extlinux"
cat > "$mnt/boot/extlinux/extlinux.conf" <<CFG
DEFAULT debian
PROMPT 0
TIMEOUT 0
LABEL debian
  LINUX /vmlinuz
  INITRD /initrd.img
  APPEND root=UUID=$uuid ro console=tty0 console=ttyS0,115200n8 net.ifnames=0
CFG
extlinux --install "$mnt/boot/extlinux" >&2
umount "$mnt"
losetup -d "$loop"; loop=""
dd if=/usr/lib/EXTLINUX/mbr.bin of="$disk" bs=440 count=1 conv=notrunc status=none
mv "$disk" "$out"
echo "$out"
