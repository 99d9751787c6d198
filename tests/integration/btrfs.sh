#!/usr/bin/env bash
# The Btrfs pool against a real Btrfs (a loop-mounted file), the real
# btrfs-progs, qemu-img and QEMU (TCG; no boot needed): pool add and the
# refusal of a non-Btrfs path, raw and qcow2 import as read-only snapshots,
# qvm up as a snapshot of the version (O(1): up times of a 64 MiB and a
# 1 GiB image are recorded), start and stop, rm down to the image's
# subvolumes, doctor --repair of a detached bundle, image commit as a
# snapshot of a VM's disk, an injected failure after every journaled step
# of up, import and commit and a SIGKILL at every step, each leaving the
# pool and the state tree exactly as before; doctor clean at the end.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
source "$top/tests/pools/btrfs.sh"
TP="provisioning virtual machine"
TI="importing cloud image"

make_btrfs_pool bt 3072 || { done_testing; exit; }
ok "a loop-mounted Btrfs is added as pool 'bt'"
M=$BTRFS_MNT

# The state tree, and what is in the pool: every path and every subvolume.
snap_all() { state_snapshot; btrfs_pool_state; }
same_state() {  # same_state DESC [REFERENCE]: as in REFERENCE (default $before), no QEMU
    local ref=${2:-$before} now; now=$(snap_all)
    if [ "$ref" = "$now" ] && [ -z "$(qemu_procs)" ]; then ok "$1"; else
        not_ok "$1"; diff <(echo "$ref") <(echo "$now") | diag; qemu_procs | diag; fi
}
subvols() { btrfs subvolume list "$M" | awk '{print $NF}' | sort | tr '\n' ' '; }
# show_field PATH FIELD: one field of `btrfs subvolume show PATH`, which
# prints (btrfs-progs 6.2; tabs after the colons):
#   images/.versions/small/v1
#   	Name: 			v1
#   	UUID: 			2ac19727-e2e7-f240-aa90-8e32646db66e
#   	Parent UUID: 		05fc906f-64be-bc4b-b06f-1754efb1d831
#   	Received UUID: 		-
#   	Subvolume ID: 		257
#   	Flags: 			readonly
show_field() {
    btrfs subvolume show "$1" 2>/dev/null | awk -F':[ \t]*' -v f="$2" '$1 ~ "^[ \t]*"f"$" {print $2; exit}'
}

# --- pool add ---------------------------------------------------------------
mkdir -p "$T/plain"
fstype=$(findmnt -n -o FSTYPE --target "$T/plain")
expect_error "a path not on Btrfs is refused, naming its file system ($fstype)" "adding pool" \
    "pool 'nob': $T/plain is not on a Btrfs file system \(it is $fstype\)" \
    pool add nob --driver btrfs --path "$T/plain"
expect_error "a missing path is refused" "adding pool" "$T/none: No such file" \
    pool add nob --driver btrfs --path "$T/none"
run_qvm pool ls
grep -qE "^bt +btrfs" <<<"$out" && ! grep -q "^nob" <<<"$out" && ok "pool ls lists bt, not the refused pool" ||
    { not_ok "pool ls"; echo "$out$err" | diag; }
[ -d "$M/images/.versions" ] && [ -d "$M/vms" ] && [ -z "$(subvols)" ] &&
    ok "pool add makes images/, images/.versions/ and vms/ (plain directories)" || { not_ok "pool layout"; find "$M" | diag; }

# --- image import -----------------------------------------------------------
raw=$T/small.raw
truncate -s 64M "$raw"
for off in 0 7 31 63; do
    head -c 1048576 /dev/urandom | dd of="$raw" bs=1M seek=$off conv=notrunc status=none
done
run_qvm image import --pool bt small "$raw"
[ "$rc" = 0 ] && ok "import of a raw image into the btrfs pool" || { not_ok "import raw"; echo "$err" | diag; }
v1=$M/images/.versions/small/v1
cmp -s "$raw" "$v1/disk.raw" && ok "v1/disk.raw holds the same bytes as the source" || not_ok "v1 differs from the source"
sync
alloc=$(( $(stat -c %b "$v1/disk.raw") * $(stat -c %B "$v1/disk.raw") ))
[ "$alloc" -lt $((16 * 1024 * 1024)) ] && ok "v1 is sparse ($((alloc / 1048576)) MiB allocated of 64)" ||
    not_ok "v1 is not sparse ($alloc bytes allocated)"
[ "$(btrfs property get -ts "$v1" ro)" = "ro=true" ] && ok "v1 is a read-only snapshot (btrfs property ro=true)" ||
    not_ok "v1 ro property: $(btrfs property get -ts "$v1" ro 2>&1)"
[ "$(show_field "$v1" "Parent UUID")" = "$(show_field "$M/images/small" UUID)" ] &&
    ok "v1 is a snapshot of the image subvolume images/small" || { not_ok "v1 parent"; btrfs subvolume show "$v1" | diag; }
! touch "$v1/x" 2>/dev/null && ok "the version cannot be written" || not_ok "wrote into v1"
[ "$(ls -A "$M/images/small")" = image.json ] &&
    ok "images/small holds image.json only (the snapshot holds the data)" || { not_ok "image dir"; ls -la "$M/images/small" | diag; }
[ "$(subvols)" = "images/.versions/small/v1 images/small " ] && ok "subvolumes: images/small and its v1" ||
    not_ok "subvolumes: $(subvols)"
qemu-img convert -f raw -O qcow2 "$raw" "$T/small.qcow2"
run_qvm image import --pool bt small-q "$T/small.qcow2"
[ "$rc" = 0 ] && qemu-img compare -q -f raw -F raw "$raw" "$M/images/.versions/small-q/v1/disk.raw" &&
    ok "import of a qcow2 image gives the same disk, as raw" || { not_ok "import qcow2"; echo "$err" | diag; }
run_qvm image ls --json
python3 - "$T/out" <<'PY' && ok "image ls --json: both images in pool bt, v1 published, 64 MiB" || { not_ok "image ls"; cat "$T/out" | diag; }
import json, sys
imgs = {i["name"]: i for i in json.load(open(sys.argv[1]))}
for n in ("small", "small-q"):
    assert imgs[n]["pool"] == "bt", imgs[n]
    v = imgs[n]["versions"][0]
    assert v["name"] == "v1" and v["state"] == "published" and v["size"] == 64 << 20
PY
expect_error "an existing image name is refused" "$TI" "image 'small' already exists" \
    image import --pool bt small "$raw"

# --- qvm up: the disk is a snapshot of the version ----------------------------
vmfile() {  # vmfile PATH NAME BASE [extra disk lines...]
    local path=$1 name=$2 base=$3; shift 3
    {
        echo "qvm: vm"; echo "name: $name"; echo "memory: 128"; echo "vcpus: 1"
        echo "graphics: none"; echo "network: user"
        echo "disk:"; echo "  bus: virtio"
        for l in "$@"; do echo "$l"; done
        echo "  zvol:"; echo "    base: $base"
        echo "---"; echo "qvm: user-data"; echo "runcmd:"; echo "  - [true]"
        echo "---"; echo "qvm: meta-data"; echo "instance-id: $name-1"
    } >"$path"
}
vmfile "$T/a.yaml" alpha small "  size: 1"
vmfile "$T/b.yaml" beta small-q "  pool: bt"
before=$(snap_all)

run_qvm up --no-start --pool bt "$T/a.yaml"
[ "$rc" = 0 ] && [ -z "$(qemu_procs)" ] && ok "up --no-start --pool bt" || { not_ok "up alpha"; echo "$err" | diag; }
d=$M/vms/alpha/disk0
[ -f "$M/vms/alpha/vm.json" ] && [ -f "$M/vms/alpha/seed.iso" ] && [ -f "$d/disk.raw" ] &&
    ok "the bundle vms/alpha holds vm.json, the seed and disk0/disk.raw" || { not_ok "bundle"; find "$M/vms" | diag; }
btrfs subvolume show "$M/vms/alpha" >/dev/null 2>&1 && ok "the bundle is a subvolume" || not_ok "bundle is not a subvolume"
[ "$(show_field "$d" "Parent UUID")" = "$(show_field "$v1" UUID)" ] &&
    ok "disk0 is a snapshot of small@v1 (btrfs subvolume show: parent UUID)" || { not_ok "disk0 parent"; btrfs subvolume show "$d" 2>&1 | diag; }
[ "$(btrfs property get -ts "$d" ro)" = "ro=false" ] && ok "disk0 is writable" || not_ok "disk0 ro: $(btrfs property get -ts "$d" ro 2>&1)"
[ "$(stat -c %s "$d/disk.raw")" = $((1 << 30)) ] && ok "disk.raw grown to disk.size (1 GiB)" || not_ok "size $(stat -c %s "$d/disk.raw")"
sync
excl=$(btrfs filesystem du --raw -s "$d" | awk 'NR == 2 {print $2}')
[ "$excl" = 0 ] && ok "the clone shares all its data with v1 (0 bytes exclusive)" || { not_ok "clone exclusive bytes: $excl"; btrfs filesystem du -s "$d" | diag; }
cmp -s -n $((64 << 20)) "$raw" "$d/disk.raw" && ok "the clone reads as the image" || not_ok "clone data differs"
run_qvm ls --json
python3 -c 'import json,sys; v=[x for x in json.load(open(sys.argv[1])) if x["name"]=="alpha"][0]; assert v["pool"]=="bt", v' "$T/out" &&
    ok "ls --json: alpha is in pool bt" || { not_ok "ls --json pool"; cat "$T/out" | diag; }

run_qvm up --no-start "$T/b.yaml"
[ "$rc" = 0 ] && [ "$(show_field "$M/vms/beta/disk0" "Parent UUID")" = "$(show_field "$M/images/.versions/small-q/v1" UUID)" ] &&
    ok "disk.pool: bt in the qvm file: beta's disk0 is a snapshot of small-q@v1" || { not_ok "up beta"; echo "$err" | diag; }

# --- start and stop with real QEMU ---------------------------------------------
run_qvm start alpha
pid=$(pgrep -f -- "-pidfile $QVM_ROOT/run/qvm/vms/alpha/" | head -1)
[ "$rc" = 0 ] && [ -n "$pid" ] && ok "qvm start runs QEMU" || { not_ok "start"; echo "$err" | diag; }
tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null | grep -q "file=$d/disk.raw,.*format=raw" &&
    ok "QEMU opens disk0/disk.raw as raw" || { not_ok "QEMU disk argument"; tr '\0' ' ' <"/proc/$pid/cmdline" | diag; }
run_qvm stop --force alpha
[ "$rc" = 0 ] && [ -z "$(qemu_procs)" ] && ok "stop --force ends QEMU" || { not_ok "stop --force"; echo "$err" | diag; }
head -c 1048576 /dev/urandom | dd of="$d/disk.raw" bs=1M seek=7 conv=notrunc status=none
cmp -s "$raw" "$v1/disk.raw" && ! cmp -s -n $((64 << 20)) "$raw" "$d/disk.raw" &&
    ok "writing the VM disk leaves the version unchanged (copy-on-write)" || not_ok "the version changed"

# --- rm -----------------------------------------------------------------------------
run_qvm start alpha
run_qvm rm alpha
[ "$rc" = 0 ] && ok "rm of a running VM" || { not_ok "rm alpha"; echo "$err" | diag; }
run_qvm rm beta
[ "$rc" = 0 ] && ok "rm of a stopped VM" || { not_ok "rm beta"; echo "$err" | diag; }
[ "$(subvols)" = "images/.versions/small-q/v1 images/.versions/small/v1 images/small images/small-q " ] &&
    ok "after rm only the images and their versions are subvolumes" || not_ok "subvolumes after rm: $(subvols)"
same_state "after up and rm: pool and state tree exactly as before"

# vm_destroy after qvm rm's atomic step (vm.json renamed) when qvm died
# before freeing the storage: doctor --repair frees it.
# (The rename is rm's committed step: a crash after it is simulated by hand.)
run_qvm up --no-start "$T/a.yaml"
mv "$M/vms/alpha/vm.json" "$M/vms/alpha/vm.json.removed"
run_qvm doctor --repair
grep -q "repaired .*vms/alpha holds disks but no VM definition" <<<"$out" && ok "doctor --repair finds and frees the orphan bundle" || { not_ok "doctor orphan"; echo "$out$err" | diag; }
same_state "doctor --repair deletes its subvolumes"

# --- image commit: the next version is a read-only snapshot of the VM's disk --
run_qvm up --no-start "$T/a.yaml"
head -c 1048576 /dev/urandom | dd of="$d/disk.raw" bs=1M seek=9 conv=notrunc status=none
before_commit=$(snap_all)
QVM_FAULT_TRACE=$T/csteps run_qvm image commit small --from alpha
v2=$M/images/.versions/small/v2
[ "$rc" = 0 ] && [ "$(btrfs property get -ts "$v2" ro)" = "ro=true" ] &&
    ok "image commit makes small@v2, a read-only snapshot" || { not_ok "commit"; echo "$out$err" | diag; }
[ "$(show_field "$v2" "Parent UUID")" = "$(show_field "$d" UUID)" ] && cmp -s "$d/disk.raw" "$v2/disk.raw" &&
    ok "v2 is a snapshot of alpha's disk0, same bytes" || { not_ok "v2 parent"; btrfs subvolume show "$v2" 2>&1 | diag; }
run_qvm image rm small@v2
[ "$rc" = 0 ] && [ ! -e "$v2" ] && ok "image rm small@v2 deletes its snapshot" || { not_ok "rm v2"; echo "$err" | diag; }
csteps=$(cat "$T/csteps" 2>/dev/null)
for step in $csteps; do
    QVM_FAULT=$step run_qvm image commit small --from alpha
    [ "$rc" = 1 ] && grep -q "injected failure after step '$step'" <<<"$err" &&
        ok "commit, failure after '$step': exit 1" || { not_ok "commit, failure after $step"; echo "$err" | diag; }
    same_state "commit, failure after '$step': no v3 left" "$before_commit"
    (QVM_FAULT=kill:$step exec "$QVM" image commit small --from alpha >/dev/null 2>&1)
    run_qvm image ls
    grep -q "was interrupted; rolled it back" <<<"$err" && ok "the next command rolls back the commit killed at '$step'" ||
        { not_ok "no rollback after kill at $step"; echo "$err" | diag; }
    same_state "commit, SIGKILL at '$step': no v3 left" "$before_commit"
done
[ -n "$csteps" ] || not_ok "commit reported no journaled steps"
run_qvm rm alpha
same_state "after commit, rm of the VM and of v2: as before"

# --- O(1) clone: up of a 64 MiB and of a 1 GiB image, all data -----------------
head -c 64M /dev/urandom >"$T/r64.raw"
head -c 1G /dev/urandom >"$T/r1g.raw"
run_qvm image import --pool bt r64 "$T/r64.raw"; r1=$rc
run_qvm image import --pool bt r1g "$T/r1g.raw"; r2=$rc
rm -f "$T/r64.raw" "$T/r1g.raw"
[ "$r1$r2" = 00 ] && ok "import of a 64 MiB and a 1 GiB image of random data" || { not_ok "big imports"; echo "$err" | diag; }
vmfile "$T/t64.yaml" t64 r64
vmfile "$T/t1g.yaml" t1g r1g
for v in t64 t1g; do
    s=$(date +%s%N); run_qvm up --no-start "$T/$v.yaml"; e=$(date +%s%N)
    [ "$rc" = 0 ] || { not_ok "up $v"; echo "$err" | diag; }
    eval "ms_$v=$(( (e - s) / 1000000 ))"
done
echo "qvm up --no-start: 64 MiB image ${ms_t64} ms, 1 GiB image ${ms_t1g} ms" | diag
ok "up of the 64 MiB and the 1 GiB image (times above; not asserted)"
"$QVM" rm t64 >/dev/null 2>&1; "$QVM" rm t1g >/dev/null 2>&1
btrfs subvolume delete -c "$M/images/.versions/r64/v1" "$M/images/.versions/r1g/v1" "$M/images/r64" "$M/images/r1g" >/dev/null
rmdir "$M/images/.versions/r64" "$M/images/.versions/r1g"
same_state "after the timing VMs and images are gone: as before"

# --- every journaled step of up ------------------------------------------------
QVM_FAULT_TRACE=$T/steps "$QVM" up "$T/a.yaml" >/dev/null 2>&1
"$QVM" rm alpha >/dev/null 2>&1
steps=$(cat "$T/steps")
[ "$(echo "$steps" | wc -l)" -ge 5 ] && ok "up reports its journaled steps: $(echo $steps)" || not_ok "step trace: $steps"
same_state "up then rm leaves the pool as before"
for step in $steps; do
    QVM_FAULT=$step run_qvm up "$T/a.yaml"
    [ "$rc" = 1 ] && grep -q "^Error $TP: injected failure after step '$step'" <<<"$err" &&
        ok "up, failure after '$step': exit 1" || { not_ok "up, failure after $step"; echo "$err" | diag; }
    same_state "up, failure after '$step': subvolumes, files and processes as before"
    (QVM_FAULT=kill:$step exec "$QVM" up "$T/a.yaml" >/dev/null 2>&1)
    [ $? = 137 ] && ok "up, SIGKILL at '$step'" || not_ok "up, SIGKILL at '$step' did not kill"
    run_qvm ls
    grep -q "'up alpha' was interrupted; rolled it back" <<<"$err" &&
        ok "next command rolls back the up killed at '$step'" || { not_ok "no rollback after kill at $step"; echo "$err" | diag; }
    same_state "up, SIGKILL at '$step': subvolumes, files and processes as before"
done

# --- every journaled step of import -----------------------------------------------
QVM_FAULT_TRACE=$T/isteps "$QVM" image import --pool bt traced "$raw" >/dev/null 2>&1
btrfs subvolume delete -c "$M/images/.versions/traced/v1" "$M/images/traced" >/dev/null
rmdir "$M/images/.versions/traced"
isteps=$(cat "$T/isteps" 2>/dev/null)
[ "$(echo "$isteps" | wc -l)" -ge 3 ] && ok "import reports its journaled steps: $(echo $isteps)" || not_ok "no import step trace"
same_state "before the import faults: as before"
for step in $isteps; do
    QVM_FAULT=$step run_qvm image import --pool bt faulty "$raw"
    [ "$rc" = 1 ] && grep -q "injected failure after step '$step'" <<<"$err" &&
        ok "import, failure after '$step': exit 1" || { not_ok "import, failure after $step"; echo "$err" | diag; }
    same_state "import, failure after '$step': rolled back completely"
    (QVM_FAULT=kill:$step exec "$QVM" image import --pool bt faulty "$raw" >/dev/null 2>&1)
    krc=$?
    [ "$krc" = 137 ] && ls "$QVM_ROOT"/var/lib/qvm/journal/*.jnl >/dev/null 2>&1 &&
        ok "import, SIGKILL at '$step' leaves a journal" || not_ok "import, SIGKILL at $step (status $krc)"
    run_qvm image ls
    grep -q "was interrupted; rolled it back" <<<"$err" && ok "the next command rolls back the import killed at '$step'" ||
        { not_ok "no rollback reported after kill at $step"; echo "$err" | diag; }
    same_state "import, SIGKILL at '$step': subvolumes and files as before"
done

run_qvm doctor
[ "$rc" = 0 ] && ok "doctor finds nothing at the end" || { not_ok "doctor"; echo "$out$err" | diag; }
done_testing
