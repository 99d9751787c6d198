# tests/pools/btrfs.sh - sourced after tests/lib.sh (and new_root): a real
# Btrfs pool on a loop-mounted file in $T.
#
#   make_btrfs_pool NAME SIZE_MB [qvm pool add options...]
#
# makes $T/btrfs-NAME.img (SIZE_MB at least 128: mkfs.btrfs refuses less
# than ~109 MiB), mounts it on $T/btrfs-NAME and adds it as qvm pool NAME
# with the btrfs driver (extra options such as --default go to qvm pool
# add). Sets BTRFS_MNT to the mount point; btrfs_pool_state prints what is
# in every such pool (paths and subvolumes) for "exactly as before" checks. If Btrfs cannot be mounted here
# (not root, no btrfs-progs, no btrfs in the kernel, no loop devices) it
# prints a TAP skip line with the reason and returns 1. The mount goes when
# the test exits: cleanup_btrfs_pools runs first from the EXIT trap, then
# whatever the test's own trap was (cleanup_root, which also lazily
# unmounts anything left under $T).

btrfs_pool_mounts=()

btrfs_pool_state() {
    local m
    for m in "${btrfs_pool_mounts[@]}"; do
        (cd "$m" && find . | sort | sed "s|^\.|$m|")
        btrfs subvolume list "$m" | awk -v m="$m" '{print "subvolume:", m "/" $NF}' | sort
    done
}

cleanup_btrfs_pools() {
    local m p
    # QEMU holding a disk open would keep the mount busy.
    for p in $(pgrep -f -- "-pidfile $QVM_ROOT/" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    for m in "${btrfs_pool_mounts[@]}"; do
        mountpoint -q "$m" || continue
        umount "$m" 2>/dev/null || { sleep 0.5; umount "$m" 2>/dev/null; } || umount -l "$m"
    done
    btrfs_pool_mounts=()
}

# Puts cleanup_btrfs_pools in front of the current EXIT trap, once.
_btrfs_pool_trap() {
    local cur
    cur=$(trap -p EXIT)
    case $cur in *cleanup_btrfs_pools*) return ;; esac
    if [ -n "$cur" ]; then
        eval "set -- $cur"       # trap -- 'COMMAND' EXIT
        trap "cleanup_btrfs_pools; $3" EXIT
    else
        trap cleanup_btrfs_pools EXIT
    fi
}

make_btrfs_pool() {
    local name=$1 size=$2; shift 2
    local img=$T/btrfs-$name.img mnt=$T/btrfs-$name
    BTRFS_MNT=
    if [ "$(id -u)" != 0 ]; then
        skip "btrfs pool: needs root to mount a file system"; return 1
    fi
    local t
    for t in mkfs.btrfs btrfs mount; do
        command -v "$t" >/dev/null || { skip "btrfs pool: $t not found (install btrfs-progs)"; return 1; }
    done
    if [ ! -e /dev/loop-control ] && [ ! -e /dev/loop0 ]; then
        skip "btrfs pool: no loop devices here"; return 1
    fi
    truncate -s "${size}M" "$img" && mkfs.btrfs -q -f "$img" >"$T/mkfs-$name.log" 2>&1 || {
        skip "btrfs pool: mkfs.btrfs failed: $(tail -1 "$T/mkfs-$name.log")"; return 1; }
    mkdir -p "$mnt"
    if ! mount -o loop "$img" "$mnt" 2>"$T/mount-$name.log"; then
        skip "btrfs pool: cannot loop-mount Btrfs here: $(tail -1 "$T/mount-$name.log")"
        return 1
    fi
    btrfs_pool_mounts+=("$mnt")
    _btrfs_pool_trap
    if ! "$QVM" pool add "$name" --driver btrfs --path "$mnt" "$@" >"$T/pool-add-$name.log" 2>&1; then
        not_ok "btrfs pool: qvm pool add $name failed"; diag <"$T/pool-add-$name.log"
        return 1
    fi
    BTRFS_MNT=$mnt
    return 0
}
