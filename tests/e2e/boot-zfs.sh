#!/usr/bin/env bash
# tests/e2e/boot.sh on a ZFS pool (a file-backed zpool, through zfs-fuse when
# the kernel has no ZFS; made the default pool): image import as a snapshot,
# the VM disk a clone of it holding a raw file.
QVM_E2E_POOL=zfs exec bash "$(dirname "$0")/boot.sh"
