# tests/pools/zfs.sh - sourced after tests/lib.sh (and new_root): a real ZFS
# pool on a sparse file in $T, through zfs-fuse (ZFS in user space) when the
# kernel has no ZFS module.
#
#   make_zfs_pool NAME SIZE_MB [qvm pool add options...]
#
# starts the zfs-fuse daemon if no ZFS answers (and remembers that it did),
# creates the zpool qvmt<PID>_<N> on $T/zfs-NAME.img (SIZE_MB, sparse; at
# least 64) mounted under $T/zfs-NAME, creates the dataset ZPOOL/qvm and adds
# it as qvm pool NAME with the zfs driver and --default (extra options such
# as --mode go to qvm pool add). Sets ZFS_POOL (the zpool), ZFS_DATASET
# (ZPOOL/qvm) and ZFS_MNT (its mountpoint); zfs_pool_state prints every
# dataset, snapshot and origin and every file of such pools, for "exactly as
# before" checks. If ZFS cannot run here (not root, zfs-fuse not installed,
# no /dev/fuse, the daemon does not start) it prints a TAP skip line with the
# reason and returns 1.
#
# The pools go when the test exits: cleanup_zfs_pools runs first from the
# EXIT trap, then whatever the test's own trap was (cleanup_root); it
# destroys the zpools this shell made, removes their files, and stops
# zfs-fuse only if this shell started it and no other pool is imported.

zfs_pools=()             # zpools made by this shell
zfs_pool_files=()
zfs_started_daemon=
zfs_pool_count=0
ZFS_FUSE_PIDFILE=${ZFS_FUSE_PIDFILE:-/var/run/zfs-fuse.pid}

zfs_pool_state() {
    local p m
    for p in "${zfs_pools[@]}"; do
        zfs list -H -t all -r -o name,origin,mounted "$p" 2>&1 | sort
        m=$(zfs get -H -o value mountpoint "$p" 2>/dev/null)
        [ -d "$m" ] && (cd "$m" && find . | sort | sed "s|^\.|$m|")
    done
}

# Retries zfs-fuse's "busy" answers: it finishes unmounts asynchronously.
_zfs_retry() {
    local i
    for i in $(seq 50); do
        "$@" 2>/dev/null && return 0
        sleep 0.1
    done
    "$@"
}

_zfs_stop_daemon() {
    local pid i
    pid=$(cat "$ZFS_FUSE_PIDFILE" 2>/dev/null) || return 0
    [ -n "$pid" ] && kill -0 "$pid" 2>/dev/null || return 0
    kill -TERM "$pid"
    for i in $(seq 100); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
    kill -0 "$pid" 2>/dev/null && kill -KILL "$pid"
    rm -f "$ZFS_FUSE_PIDFILE"
}

cleanup_zfs_pools() {
    local p f
    # QEMU holding a disk open would keep the datasets busy.
    for p in $(pgrep -f -- "-pidfile $QVM_ROOT/" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    for p in "${zfs_pools[@]}"; do
        zpool list -H -o name "$p" >/dev/null 2>&1 || continue
        _zfs_retry zpool destroy -f "$p" >/dev/null 2>&1 ||
            echo "# cleanup: zpool destroy -f $p failed" >&2
    done
    for f in "${zfs_pool_files[@]}"; do rm -f "$f"; done
    zfs_pools=()
    zfs_pool_files=()
    if [ -n "$zfs_started_daemon" ] && [ -z "$(zpool list -H -o name 2>/dev/null)" ]; then
        _zfs_stop_daemon
        zfs_started_daemon=
    fi
}

# Puts cleanup_zfs_pools in front of the current EXIT trap, once.
_zfs_pool_trap() {
    local cur
    cur=$(trap -p EXIT)
    case $cur in *cleanup_zfs_pools*) return ;; esac
    if [ -n "$cur" ]; then
        eval "set -- $cur"       # trap -- 'COMMAND' EXIT
        trap "cleanup_zfs_pools; $3" EXIT
    else
        trap cleanup_zfs_pools EXIT
    fi
}

# Makes sure a ZFS answers: a kernel ZFS or a running zfs-fuse, or starts
# zfs-fuse. Returns 1 with the reason in zfs_why if none can. (Not run in a
# $(...) subshell: it records in zfs_started_daemon that it started one.)
_zfs_daemon() {
    local i
    zfs_why=
    zpool list >/dev/null 2>&1 && return 0
    if [ "$(id -u)" != 0 ]; then zfs_why="needs root"; return 1; fi
    if ! command -v zpool >/dev/null || ! command -v zfs >/dev/null; then
        zfs_why="zfs and zpool not found (install zfs-fuse or zfsutils-linux)"; return 1
    fi
    if ! command -v zfs-fuse >/dev/null; then
        zfs_why="no ZFS answers and zfs-fuse is not installed: $(zpool list 2>&1 | tail -1)"
        return 1
    fi
    if [ ! -c /dev/fuse ]; then zfs_why="zfs-fuse needs /dev/fuse, which this machine has not"; return 1; fi
    # A pid file left by a zfs-fuse that was killed makes the next one
    # refuse to start: remove it when no zfs-fuse has that pid.
    local old
    old=$(cat "$ZFS_FUSE_PIDFILE" 2>/dev/null)
    if [ -n "$old" ] && ! grep -qs zfs-fuse "/proc/$old/comm"; then rm -f "$ZFS_FUSE_PIDFILE"; fi
    if ! zfs-fuse -p "$ZFS_FUSE_PIDFILE" >"$T/zfs-fuse.log" 2>&1; then
        zfs_why="zfs-fuse did not start: $(tail -1 "$T/zfs-fuse.log")"; return 1
    fi
    zfs_started_daemon=1
    for i in $(seq 100); do
        zpool list >/dev/null 2>&1 && return 0
        sleep 0.1
    done
    zfs_why="zfs-fuse started but does not answer: $(zpool list 2>&1 | tail -1)"
    _zfs_stop_daemon
    zfs_started_daemon=
    return 1
}

make_zfs_pool() {
    local name=$1 size=$2; shift 2
    local img=$T/zfs-$name.img mnt=$T/zfs-$name zpool
    ZFS_POOL= ZFS_DATASET= ZFS_MNT=
    _zfs_pool_trap
    if ! _zfs_daemon; then
        skip "zfs pool: $zfs_why"; return 1
    fi
    zfs_pool_count=$((zfs_pool_count + 1))
    zpool=qvmt$$_$zfs_pool_count
    [ "$size" -ge 64 ] || size=64
    truncate -s "${size}M" "$img" || { skip "zfs pool: cannot create $img"; return 1; }
    zfs_pool_files+=("$img")
    if ! zpool create -m "$mnt" "$zpool" "$img" >"$T/zpool-$name.log" 2>&1; then
        skip "zfs pool: zpool create failed: $(tail -1 "$T/zpool-$name.log")"
        return 1
    fi
    zfs_pools+=("$zpool")
    if ! zfs create "$zpool/qvm" >>"$T/zpool-$name.log" 2>&1; then
        not_ok "zfs pool: zfs create $zpool/qvm failed"; diag <"$T/zpool-$name.log"
        return 1
    fi
    if ! "$QVM" pool add "$name" --driver zfs --dataset "$zpool/qvm" --default "$@" \
            >"$T/pool-add-$name.log" 2>&1; then
        not_ok "zfs pool: qvm pool add $name failed"; diag <"$T/pool-add-$name.log"
        return 1
    fi
    ZFS_POOL=$zpool
    ZFS_DATASET=$zpool/qvm
    ZFS_MNT=$mnt/qvm
    return 0
}
