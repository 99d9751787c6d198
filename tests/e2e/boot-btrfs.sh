#!/usr/bin/env bash
# tests/e2e/boot.sh on a Btrfs pool (a loop-mounted file, made the default
# pool): image import as a read-only snapshot, the VM disk a snapshot of it.
QVM_E2E_POOL=btrfs exec bash "$(dirname "$0")/boot.sh"
