#!/usr/bin/env bash
# Snapshots, revert and clone (issue 4, seed 004) with the same checks on a
# dir pool on ext4 (qcow2 overlay disks), a dir pool on XFS (raw reflink
# disks), a Btrfs pool and a zfs-fuse pool; no guest is booted: the VMs are
# provisioned with --no-start and known bytes are written into and read
# from their disk files with qemu-io. Per pool: snapshot, write, snapshot,
# revert to the first snapshot (its data back, the second still there and
# intact), revert to the second, back again; refusals (a taken name, an
# unknown snapshot, revert of a running VM); snapshot rm; clone from the
# VM as it is and from a snapshot (new uuid, MAC, instance-id and host name
# in the seed, the same data); image rm refused while the clone exists; rm
# of the source (dir, btrfs: allowed, the clones intact; zfs: refused
# naming the clones, allowed once they are gone); an injected failure and
# a SIGKILL after every journaled step of snapshot, revert and clone, each
# leaving the pool and the state tree exactly as before; on zfs, removing
# every snapshot after reverts leaves no history dataset and no hidden
# snapshot behind. Then, on the ext4 dir pool, a running QEMU (TCG, on the
# small unbootable test image): a snapshot pauses and resumes it (no guest
# agent answers), a SIGKILL while it is paused is resumed by the next
# command, and a clone of the running VM works.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
source "$top/tests/pools/btrfs.sh"
source "$top/tests/pools/zfs.sh"
TS="taking snapshot"
TR="reverting virtual machine"
TC="cloning virtual machine"

raw=$T/small.raw
truncate -s 64M "$raw"
head -c 1M /dev/urandom | dd of="$raw" conv=notrunc status=none
DIRP=$QVM_ROOT/var/lib/qvm/pools/default

# --- pools --------------------------------------------------------------------------
pools=(default)
kinds=(dir-ext4)
X=
if [ "$(id -u)" = 0 ] && command -v mkfs.xfs >/dev/null && truncate -s 1G "$T/xfs.img" &&
        mkfs.xfs -q -m reflink=1 "$T/xfs.img" >/dev/null 2>&1 && mkdir -p "$T/xfs" &&
        mount -o loop "$T/xfs.img" "$T/xfs" 2>/dev/null; then
    X=$T/xfs
    trap 'for p in $(pgrep -f -- "-pidfile $QVM_ROOT/"); do kill -9 $p; done 2>/dev/null; sleep 0.2; umount "$X" 2>/dev/null || umount -l "$X"; cleanup_root' EXIT
    "$QVM" pool add xf --driver dir --path "$X/qvm" --mode reflink >/dev/null 2>&1 &&
        { pools+=(xf); kinds+=(dir-xfs); }
else
    skip "dir pool on XFS (reflink copies): cannot make and mount an XFS here"
fi
if make_btrfs_pool bt 512; then pools+=(bt); kinds+=(btrfs); BT=$BTRFS_MNT; fi
if make_zfs_pool zt 512; then pools+=(zt); kinds+=(zfs); ZT=$ZFS_MNT; ZDS=$ZFS_DATASET; fi
ok "pools: ${pools[*]} (${kinds[*]})"

full_state() {
    state_snapshot
    [ -n "$X" ] && (cd "$X" && find . | sort)
    btrfs_pool_state
    zfs_pool_state
}
same_state() {  # same_state DESC: as in $before, and no QEMU
    local now; now=$(full_state)
    if [ "$before" = "$now" ] && [ -z "$(qemu_procs)" ]; then ok "$1"; else
        not_ok "$1"; diff <(echo "$before") <(echo "$now") | diag; qemu_procs | diag; fi
}

vmfile() {  # vmfile PATH NAME POOL IMAGE
    cat >"$1" <<EOF
qvm: vm
name: $2
memory: 128
vcpus: 1
graphics: none
network:
  type: user
  ssh-port: auto
disk:
  bus: virtio
  pool: $3
  zvol:
    base: $4
---
qvm: user-data
hostname: $2-host
fqdn: $2-host.example.org
runcmd:
  - [true]
---
qvm: meta-data
instance-id: $2-1
local-hostname: $2-host
EOF
}

# The disk file of VM in pool P and its format.
disk_of() {
    local p=$1 vm=$2 base
    base=$(bundle_of "$p" "$vm")
    case $p in bt|zt) echo "$base/disk0/disk.raw raw"; return ;; esac
    if [ -f "$base/disk0.qcow2" ]; then echo "$base/disk0.qcow2 qcow2"; else echo "$base/disk0.raw raw"; fi
}
bundle_of() {  # bundle_of POOL VM: its bundle directory
    case $1 in
        default) echo "$DIRP/vms/$2" ;; xf) echo "$X/qvm/vms/$2" ;;
        bt) echo "$BT/vms/$2" ;; zt) echo "$ZT/vms/$2" ;;
    esac
}
put() {  # put POOL VM BYTE: 64 KiB of BYTE at 1 MiB into VM's disk
    local f fmt; read -r f fmt <<<"$(disk_of "$1" "$2")"
    qemu-io -f "$fmt" -c "write -P $3 1M 64k" "$f" >/dev/null 2>&1
}
holds() {  # holds POOL VM BYTE: the 64 KiB at 1 MiB are BYTE
    local f fmt o; read -r f fmt <<<"$(disk_of "$1" "$2")"
    o=$(qemu-io -f "$fmt" -c "read -P $3 1M 64k" "$f" 2>&1)
    grep -q "^read 65536/65536" <<<"$o" && ! grep -q "verification failed" <<<"$o"
}
snaps() {  # snaps VM: its snapshot names, oldest first, on one line
    "$QVM" snapshot ls --json "$1" 2>/dev/null |
        python3 -c 'import json,sys; print(" ".join(s["name"] for s in json.load(sys.stdin)))'
}
jfield() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }
# seed_file ISO NAME: a file of a NoCloud seed, extracted with xorriso if
# there is one, else read from the ISO's bytes (they are stored as is).
seed_file() {
    if command -v xorriso >/dev/null; then
        rm -rf "$T/seedx" && mkdir -p "$T/seedx" &&
            xorriso -osirrox on -indev "$1" -extract "/$2" "$T/seedx/$2" >/dev/null 2>&1 &&
            cat "$T/seedx/$2"
    else
        strings -a "$1"
    fi
}

# rollback_ok DESC: the command just run reported rolling back an interrupted one.
rollback_ok() {
    if grep -q "was interrupted; rolled it back" <<<"$err"; then ok "$1"; else
        not_ok "$1"; echo "$err" | diag; fi
}

# faults OP DESC CMD...: an injected failure, then a SIGKILL, after every
# step CMD reports with QVM_FAULT_TRACE (traced once first by the caller
# into $T/steps); each leaves everything as in $before.
faults() {
    local op=$1 step; shift
    for step in $(cat "$T/steps"); do
        QVM_FAULT=$step run_qvm "$@"
        [ "$rc" = 1 ] && grep -q "injected failure after step '$step'" <<<"$err" &&
            ok "$op, failure after '$step': exit 1 with the error" ||
            { not_ok "$op, failure after '$step'"; echo "$err" | diag; }
        same_state "$op, failure after '$step': rolled back completely"
        (QVM_FAULT=kill:$step exec "$QVM" "$@" >/dev/null 2>&1)
        [ $? = 137 ] && ok "$op, SIGKILL at '$step'" || not_ok "$op, SIGKILL at '$step' did not kill"
        run_qvm ls
        rollback_ok "$op, SIGKILL at '$step': the next command rolls it back"
        same_state "$op, SIGKILL at '$step': everything as before"
    done
}

suite() {  # suite POOL KIND
    local p=$1 kind=$2 a=a-$1 b=b-$1 g=g-$1 img=img-$1
    echo "# --- $kind pool '$p' ---"
    run_qvm image import --pool "$p" "$img" "$raw"
    [ "$rc" = 0 ] || { not_ok "$kind: import"; echo "$err" | diag; return; }
    vmfile "$T/$a.yaml" "$a" "$p" "$img"
    run_qvm up --no-start "$T/$a.yaml"
    [ "$rc" = 0 ] || { not_ok "$kind: up"; echo "$err" | diag; return; }
    local pristine; pristine=$(full_state)

    put "$p" "$a" 0x11
    run_qvm snapshot "$a" s1
    [ "$rc" = 0 ] && grep -q "Snapshot 's1' of VM '$a' taken" <<<"$out" && ok "$kind: snapshot s1" ||
        { not_ok "$kind: snapshot s1"; echo "$out$err" | diag; }
    put "$p" "$a" 0x22
    run_qvm snapshot "$a" s2
    put "$p" "$a" 0x33
    [ "$(snaps "$a")" = "s1 s2" ] && ok "$kind: snapshot ls: s1 s2, oldest first" ||
        not_ok "$kind: snapshot ls: '$(snaps "$a")'"
    run_qvm snapshot ls "$a"
    grep -qE "^s1 +[0-9]{4}-[0-9]{2}-[0-9]{2} [0-9:]{8} +64M$" <<<"$out" &&
        ok "$kind: snapshot ls: name, time and size" || { not_ok "$kind: snapshot ls table"; echo "$out" | diag; }
    before=$(full_state)
    expect_error "$kind: a taken snapshot name is refused" "$TS" "VM '$a' already has a snapshot 's1'" \
        snapshot "$a" s1
    expect_error "$kind: an invalid snapshot name is refused" "$TS" "invalid snapshot name 'S 1'" \
        snapshot "$a" "S 1"
    expect_error "$kind: revert to an unknown snapshot names the snapshots" "$TR" \
        "VM '$a' has no snapshot 'nope' \(its snapshots: s1, s2\)" revert "$a" nope
    same_state "$kind: the refusals change nothing"

    run_qvm revert "$a" s1
    [ "$rc" = 0 ] && holds "$p" "$a" 0x11 && [ "$(snaps "$a")" = "s1 s2" ] &&
        ok "$kind: revert to the first snapshot: its data is back, s2 is kept" ||
        { not_ok "$kind: revert s1"; echo "$err" | diag; }
    run_qvm revert "$a" s2
    [ "$rc" = 0 ] && holds "$p" "$a" 0x22 && [ "$(snaps "$a")" = "s1 s2" ] &&
        ok "$kind: revert to the second (newer) snapshot works too: s2 was intact" ||
        { not_ok "$kind: revert s2"; echo "$err" | diag; }
    put "$p" "$a" 0x44
    run_qvm revert "$a" s1
    [ "$rc" = 0 ] && holds "$p" "$a" 0x11 && ok "$kind: and back to s1" || { not_ok "$kind: revert s1 again"; echo "$err" | diag; }

    # --- fault injection: snapshot, revert ---
    before=$(full_state)
    rm -f "$T/steps"
    QVM_FAULT_TRACE=$T/steps "$QVM" snapshot "$a" tr >/dev/null 2>&1
    "$QVM" snapshot rm "$a" tr >/dev/null 2>&1
    same_state "$kind: snapshot then snapshot rm leaves everything as before"
    [ -s "$T/steps" ] && ok "$kind: snapshot reports its steps: $(echo $(cat "$T/steps"))" || not_ok "$kind: no snapshot steps"
    faults "$kind: snapshot" snapshot "$a" f1
    put "$p" "$a" 0x55
    before=$(full_state)
    rm -f "$T/steps"
    QVM_FAULT_TRACE=$T/steps "$QVM" revert "$a" s2 >/dev/null 2>&1
    holds "$p" "$a" 0x22 && ok "$kind: revert (traced) to s2" || not_ok "$kind: traced revert"
    "$QVM" revert "$a" s1 >/dev/null 2>&1
    put "$p" "$a" 0x55
    before=$(full_state)
    [ "$(wc -l <"$T/steps")" -ge 2 ] && ok "$kind: revert reports its steps: $(echo $(cat "$T/steps"))" ||
        not_ok "$kind: revert steps: $(cat "$T/steps")"
    faults "$kind: revert" revert "$a" s2
    holds "$p" "$a" 0x55 && ok "$kind: after every failed or killed revert the disk holds what it held" ||
        not_ok "$kind: the disk changed"

    # --- snapshot rm ---
    run_qvm snapshot rm "$a" s2
    [ "$rc" = 0 ] && [ "$(snaps "$a")" = "s1" ] && ok "$kind: snapshot rm s2" || { not_ok "$kind: snapshot rm"; echo "$err" | diag; }
    expect_error "$kind: snapshot rm of an unknown snapshot" "removing snapshot" "VM '$a' has no snapshot 's2'" \
        snapshot rm "$a" s2
    run_qvm revert "$a" s1
    [ "$rc" = 0 ] && holds "$p" "$a" 0x11 && ok "$kind: s1 still reverts after s2 went" || not_ok "$kind: revert after rm"

    # --- clones ---
    put "$p" "$a" 0x66
    run_qvm clone --no-start "$a" "$b"
    [ "$rc" = 0 ] && ok "$kind: clone of the VM as it is" || { not_ok "$kind: clone"; echo "$err" | diag; }
    local fa fb fmt
    read -r fa fmt <<<"$(disk_of "$p" "$a")"; read -r fb _ <<<"$(disk_of "$p" "$b")"
    qemu-img compare -q -f "$fmt" -F "$fmt" "$fa" "$fb" && holds "$p" "$b" 0x66 &&
        ok "$kind: the clone's disk holds the same data (qemu-img compare)" || not_ok "$kind: clone data differs"
    local adir bdir ja jb; adir=$(bundle_of "$p" "$a"); bdir=$(bundle_of "$p" "$b")
    ja=$adir/vm.json jb=$bdir/vm.json
    md=$(seed_file "$bdir/seed.iso" meta-data); ud=$(seed_file "$bdir/seed.iso" user-data)
    [ "$(jfield "$ja" 'd["uuid"]')" != "$(jfield "$jb" 'd["uuid"]')" ] &&
        [ "$(jfield "$ja" 'd["network"]["mac"]')" != "$(jfield "$jb" 'd["network"]["mac"]')" ] &&
        [ "$(jfield "$jb" 'd["hostname"]')" = "$b" ] && [ "$(jfield "$jb" 'd["image"]')" = "$img" ] &&
        ok "$kind: the clone has a new uuid and MAC, host name $b, and records image $img" ||
        { not_ok "$kind: clone identity"; cat "$jb" | diag; }
    grep -qE "^local-hostname: \"?$b\"?$" <<<"$md" && grep -qE "^instance-id: \"?$b-" <<<"$md" &&
        ! grep -q "$a-1" <<<"$md" && grep -qE "^hostname: \"?$b\"?$" <<<"$ud" &&
        grep -qE "^fqdn: \"?$b.example.org\"?$" <<<"$ud" && grep -q "^runcmd:" <<<"$ud" &&
        ok "$kind: the clone's seed: a new instance-id, local-hostname, hostname and fqdn; the rest of the user-data kept" ||
        { not_ok "$kind: clone seed"; { echo "$md"; echo "$ud"; } | diag; }
    grep -q "^name: \"$b\"" "$bdir/vm.yaml" && grep -q "^instance-id: \"$b-" "$bdir/vm.yaml" &&
        ok "$kind: the clone's vm.yaml is the source's with its identity replaced" || { not_ok "$kind: vm.yaml"; diag <"$bdir/vm.yaml"; }
    run_qvm clone --no-start --snapshot s1 "$a" "$g"
    [ "$rc" = 0 ] && holds "$p" "$g" 0x11 && ok "$kind: clone of snapshot s1 holds s1's data" ||
        { not_ok "$kind: clone --snapshot"; echo "$err" | diag; }
    expect_error "$kind: a clone onto an existing VM is refused" "$TC" "VM '$b' already exists" \
        clone --no-start "$a" "$b"
    expect_error "$kind: a clone of an unknown snapshot is refused" "$TC" "no snapshot 'nope'" \
        clone --no-start --snapshot nope "$a" c-$p
    run_qvm image rm "$img"
    [ "$rc" = 1 ] && grep -q "$b" <<<"$err" && grep -q "$g" <<<"$err" &&
        ok "$kind: image rm is refused, naming the clones (they record the image)" || { not_ok "$kind: image rm"; echo "$err" | diag; }

    # --- fault injection: clone ---
    before=$(full_state)
    rm -f "$T/steps"
    QVM_FAULT_TRACE=$T/steps "$QVM" clone --no-start "$a" tr-$p >/dev/null 2>&1
    "$QVM" rm tr-$p >/dev/null 2>&1
    [ "$(wc -l <"$T/steps")" -ge 4 ] && ok "$kind: clone reports its steps: $(echo $(cat "$T/steps"))" ||
        not_ok "$kind: clone steps: $(cat "$T/steps")"
    # (zfs: rm of the clone also destroys the snapshot qvm took of the source for it)
    same_state "$kind: clone then rm of the clone leaves everything as before"
    faults "$kind: clone" clone --no-start "$a" f-$p

    # --- removing the source ---
    if [ "$kind" = zfs ]; then
        before=$(full_state)
        expect_error "zfs: rm of the source is refused, naming the clones" "removing virtual machine" \
            "VM '$a' cannot be removed: 2 VM disks were cloned from it .*VM '$b'.*VM '$g'|VM '$a' cannot be removed: 2 VM disks were cloned from it .*VM '$g'.*VM '$b'" rm "$a"
        expect_error "zfs: snapshot rm of a snapshot a VM was cloned from is refused, naming it" "removing snapshot" \
            "snapshot 's1' of VM '$a' cannot be removed: 1 VM disk is cloned from it \($ZDS/vms/$g/disk0 \(VM '$g'\)\)" \
            snapshot rm "$a" s1
        same_state "zfs: ... and nothing changed"
        holds "$p" "$b" 0x66 && holds "$p" "$g" 0x11 && ok "zfs: the clones are intact" || not_ok "zfs: clone data"
        run_qvm rm "$b" "$g"
        run_qvm rm "$a"
        [ "$rc" = 0 ] && ok "zfs: once the clones are gone, rm of the source works" || { not_ok "zfs: rm source"; echo "$err" | diag; }
    else
        run_qvm rm "$a"
        [ "$rc" = 0 ] && holds "$p" "$b" 0x66 && holds "$p" "$g" 0x11 &&
            ok "$kind: rm of the source works; the clones stand alone and keep their data" ||
            { not_ok "$kind: rm source"; echo "$err" | diag; }
        run_qvm rm "$b" "$g"
    fi

    # --- zfs: every snapshot removed after reverts leaves nothing behind ---
    if [ "$kind" = zfs ]; then
        run_qvm up --no-start "$T/$a.yaml"
        put "$p" "$a" 0x11; "$QVM" snapshot "$a" s1 >/dev/null
        put "$p" "$a" 0x22; "$QVM" snapshot "$a" s2 >/dev/null
        "$QVM" revert "$a" s1 >/dev/null
        zfs list -H -o name -r "$ZDS/vms/$a" | grep -q "disk0:h1$" &&
            ok "zfs: after a revert to s1, s2 lives on in the history dataset disk0:h1" ||
            { not_ok "zfs: history"; zfs list -t all -r "$ZDS/vms/$a" | diag; }
        [ "$(zfs get -H -o value origin "$ZDS/vms/$a/disk0")" = "$ZDS/images/$img@v1" ] &&
            ok "zfs: the disk was promoted up to, never past, the image's snapshot" ||
            { not_ok "zfs: promote"; zfs list -t all -o name,origin -r "$ZDS" | diag; }
        run_qvm snapshot rm "$a" s1
        [ "$rc" = 0 ] && [ "$(snaps "$a")" = "s2" ] && zfs list -H -t snapshot -o name -r "$ZDS/vms/$a" | grep -q "@s1:removed:" &&
            ok "zfs: snapshot rm of s1, the base of s2's history: gone from the list, its blocks kept out of sight" ||
            { not_ok "zfs: rm of a branch point"; echo "$err" | diag; zfs list -t all -r "$ZDS/vms/$a" | diag; }
        run_qvm revert "$a" s2
        [ "$rc" = 0 ] && holds "$p" "$a" 0x22 && ok "zfs: revert to s2 on the history dataset" || { not_ok "zfs: revert s2"; echo "$err" | diag; }
        run_qvm snapshot rm "$a" s2
        [ "$(zfs list -H -t all -o name -r "$ZDS/vms/$a" | tr '\n' ' ')" = "$ZDS/vms/$a $ZDS/vms/$a/disk0 " ] &&
            ok "zfs: with every snapshot removed only the bundle and its disk remain (no history, no hidden snapshot)" ||
            { not_ok "zfs: leftovers"; zfs list -t all -o name,origin -r "$ZDS/vms/$a" | diag; }
        run_qvm rm "$a"
    fi
    before=$pristine
    run_qvm up --no-start "$T/$a.yaml"; run_qvm rm "$a"
    run_qvm image rm "$img"
    [ "$rc" = 0 ] && ok "$kind: every VM removed, the image removed" || { not_ok "$kind: image rm"; echo "$err" | diag; }
}

for i in "${!pools[@]}"; do
    suite "${pools[$i]}" "${kinds[$i]}"
done

# --- a running QEMU (dir pool on ext4): pause and resume ------------------------------
if command -v qemu-system-x86_64 >/dev/null; then
    "$QVM" image import --pool default img-run "$raw" >/dev/null 2>&1
    vmfile "$T/r.yaml" run default img-run
    run_qvm up "$T/r.yaml"
    state() { "$QVM" info --json run 2>/dev/null | python3 -c 'import json,sys; print(json.load(sys.stdin)["state"])'; }
    # QEMU's run state from its own QMP socket: any qvm command would first
    # roll back an interrupted one.
    qmp_state() {
        python3 - "$QVM_ROOT/run/qvm/vms/run/qmp.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(10)
s.connect(sys.argv[1])
f = s.makefile("rw")
def reply():
    while True:
        m = json.loads(f.readline())
        if "event" not in m:
            return m
reply()
for cmd in ("qmp_capabilities", "query-status"):
    f.write(json.dumps({"execute": cmd}) + "\n")
    f.flush()
    r = reply()
print(r["return"]["status"])
PY
    }
    [ "$rc" = 0 ] && [ "$(state)" = running ] && ok "running VM 'run' (TCG, no guest agent)" || { not_ok "up run"; echo "$err" | diag; }
    run_qvm snapshot run live
    [ "$rc" = 0 ] && grep -q "Paused VM 'run' (no guest agent answered)" <<<"$out" &&
        grep -q "Resumed VM 'run'" <<<"$out" && [ "$(state)" = running ] && [ "$(snaps run)" = live ] &&
        ok "a running VM is paused for its snapshot and resumed after" || { not_ok "snapshot of a running VM"; echo "$out$err" | diag; }
    expect_error "revert of a running VM is refused: stop it first" "$TR" "VM 'run' is running; stop it first \(qvm stop run\)" \
        revert run live
    (QVM_FAULT=kill:vm-paused exec "$QVM" snapshot run killed >/dev/null 2>&1)
    [ $? = 137 ] && [ "$(qmp_state)" = paused ] && ok "SIGKILL of qvm while the VM is paused for a snapshot leaves it paused" ||
        not_ok "kill at vm-paused: QEMU's state $(qmp_state)"
    run_qvm ls
    [ "$(state)" = running ] && [ "$(snaps run)" = live ] && grep -q "was interrupted; rolled it back" <<<"$err" &&
        ok "the next command resumes the VM and removes the half-taken snapshot" || { not_ok "resume after kill"; echo "$err" | diag; }
    QVM_FAULT=vm-paused run_qvm snapshot run failed
    [ "$rc" = 1 ] && [ "$(state)" = running ] && [ "$(snaps run)" = live ] &&
        ok "a failure while the VM is paused resumes it" || { not_ok "failure while paused"; echo "$err" | diag; }
    run_qvm clone --no-start run run2
    [ "$rc" = 0 ] && [ "$(state)" = running ] && grep -q "Paused VM 'run'" <<<"$out" &&
        ok "a clone of the running VM pauses it for the copy and resumes it" || { not_ok "clone of a running VM"; echo "$out$err" | diag; }
    run_qvm rm run run2
    [ "$rc" = 0 ] && [ -z "$(qemu_procs)" ] && ok "rm of the running VM and its clone" || { not_ok "rm run"; echo "$err" | diag; }
    "$QVM" image rm img-run >/dev/null 2>&1
else
    skip "qemu-system-x86_64 is not installed: no running-VM checks"
fi

run_qvm doctor
[ "$rc" = 0 ] && ok "doctor finds nothing at the end" || { not_ok "doctor"; echo "$out$err" | diag; }
done_testing
