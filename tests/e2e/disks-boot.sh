#!/usr/bin/env bash
# End to end, several disks (issue 5): the real Debian cloud image with its
# image disk in the dir pool, a data disk in a Btrfs pool (a loop-mounted
# file) and a scsi data disk beside the image disk, booted once. Through
# the guest agent the guest sees every disk with the size the qvm file
# gave it, boots from the image disk, and writes a file system on the
# Btrfs-backed disk that the host then finds in that pool's file; rm leaves
# both pools as before.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
source "$top/tests/pools/btrfs.sh"
make_btrfs_pool data 512 || { done_testing; exit; }
M=$BTRFS_MNT

img=$(cloud_image)
if [ -z "$img" ]; then
    skip "no cloud image: tests/image/build-cloud-image.sh failed (needs root, mmdebstrap and a Debian mirror): $(tail -1 "$T/image-build.log" 2>/dev/null)"
    done_testing; exit
fi
command -v qemu-system-x86_64 >/dev/null || { skip "qemu-system-x86_64 is not installed"; done_testing; exit; }
run_qvm image import debian12 "$img"
[ "$rc" = 0 ] && ok "image import of the cloud image" || { not_ok "image import"; echo "$err" | diag; }
before=$(state_snapshot; btrfs_pool_state)

cat >"$T/disks.yaml" <<'Y'
qvm: vm
name: disks
memory: 1024
vcpus: 2
graphics: none
network: user
disk:
  - size: 4
    zvol: {base: debian12}
  - name: data
    size: 1
    pool: data
  - name: scratch
    size: 0.5
    bus: scsi
---
qvm: user-data
hostname: disks-qvm
---
qvm: meta-data
instance-id: disks-1
Y
run_qvm up "$T/disks.yaml"
[ "$rc" = 0 ] && grep -q "VM 'disks' is running" <<<"$out" && ok "qvm up of a VM with three disks on two pools" ||
    { not_ok "up"; echo "$out$err" | diag; }
run_qvm wait disks --timeout 900
[ "$rc" = 0 ] && ok "cloud-init finished (qvm wait)" || { not_ok "qvm wait"; echo "$out$err" | diag; }

# Whole disks only (-d), sizes in bytes: vda the image disk (grown to 4 GiB),
# vdb the Btrfs-backed data disk, vdc the seed, sda the scsi data disk.
run_qvm exec disks -- lsblk -b -d -n -o NAME,SIZE
sizes=$(sort <<<"$out" | awk '{print $1 "=" $2}' | tr '\n' ' ')
echo "$sizes" | diag
grep -q "vda=4294967296 " <<<"$sizes" && grep -q "vdb=1073741824 " <<<"$sizes" &&
    grep -q "sda=536870912 " <<<"$sizes" &&
    ok "the guest sees the image disk (4 GiB), the data disk (1 GiB, virtio) and scratch (512 MiB, scsi)" ||
    { not_ok "guest disks: $sizes"; echo "$err" | diag; }
run_qvm exec disks -- findmnt -n -o SOURCE /
[ "$out" = /dev/vda1 ] && ok "the guest booted from the image disk (/ on /dev/vda1)" || not_ok "root is '$out'"

# The guest writes a file system on the data disk; the host finds it in
# the Btrfs pool's file once the guest is stopped.
run_qvm exec disks -- mkfs.ext4 -q -L qvmdata /dev/vdb
[ "$rc" = 0 ] && ok "the guest makes a file system on the data disk" || { not_ok "mkfs in guest"; echo "$out$err" | diag; }
run_qvm exec disks -- sync
run_qvm stop disks --timeout 120
[ "$rc" = 0 ] && ok "qvm stop" || { not_ok "stop"; echo "$err" | diag; }
[ "$(blkid -o value -s LABEL "$M/vms/disks/data/disk.raw")" = qvmdata ] &&
    ok "the file system is in the Btrfs pool's disk file" || not_ok "no file system in $M/vms/disks/data/disk.raw"

run_qvm rm disks
[ "$rc" = 0 ] && ok "qvm rm disks" || { not_ok "rm"; echo "$err" | diag; }
after=$(state_snapshot; btrfs_pool_state)
[ "$before" = "$after" ] && ok "both pools exactly as before up" ||
    { not_ok "state differs after rm"; diff <(echo "$before") <(echo "$after") | diag; }
done_testing
