#!/usr/bin/env bash
# qvm on a real ZFS pool (through zfs-fuse when the kernel has no ZFS):
# pool add and its refusals; image import of raw and qcow2 as a snapshot
# holding the same data; qvm up as a clone of that snapshot (--pool and
# disk.pool; disk.zvol properties set on the clone); start and stop with
# real QEMU (TCG; no boot needed); image and version removal refused while
# clones depend on them; rm destroys the VM's datasets; an injected failure
# after every journaled step of up and import and a SIGKILL at each, each
# leaving the datasets, their files and the state tree exactly as before;
# doctor clean at the end. Zvol mode needs a kernel ZFS: on zfs-fuse only
# its clean refusal is checked and the rest is skipped with the reason.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
source "$top/tests/pools/zfs.sh"
TI="importing cloud image"
TP="provisioning virtual machine"
TA="adding pool"

make_zfs_pool tank 1024 || { done_testing; exit; }
ok "zfs pool 'tank': zpool $ZFS_POOL, dataset $ZFS_DATASET mounted at $ZFS_MNT"
DS=$ZFS_DATASET
MNT=$ZFS_MNT
ZP=$ZFS_POOL
ZROOT=$(zfs get -H -o value mountpoint "$ZP")     # where ad-hoc datasets of the test mount

# The whole state: qvm's tree, and every dataset, snapshot, origin and file
# of the zpool.
full_state() { state_snapshot; zfs_pool_state; }
before=$(full_state)
[ -n "${QVM_TEST_DEBUG:-}" ] && echo "$before" | diag
same_state() {
    local now; now=$(full_state)
    if [ "$before" = "$now" ] && [ -z "$(qemu_procs)" ]; then ok "$1"; else
        not_ok "$1"; diff <(echo "$before") <(echo "$now") | diag; qemu_procs | diag; fi
}
# zfs-fuse finishes unmounts asynchronously: a destroy right after may be "busy".
zdestroy() { _zfs_retry zfs destroy "$@" >/dev/null 2>&1; }

# --- pool add ------------------------------------------------------------------
run_qvm pool ls
grep -qE "^tank +zfs +yes +online +$DS\$" <<<"$out" && ok "pool ls: tank is the zfs default pool, online" ||
    { not_ok "pool ls"; echo "$out" | diag; }
[ "$(zfs list -H -o name,mountpoint -r "$DS" | tr '\t' ' ')" = "$DS $MNT
$DS/images $MNT/images
$DS/vms $MNT/vms" ] && ok "pool add made DATASET/images and DATASET/vms, mounted below the pool's mountpoint" ||
    { not_ok "pool layout"; zfs list -r "$DS" | diag; }
conf=$(cat "$QVM_ROOT/etc/qvm/qvm.conf" 2>/dev/null)
expect_error "a missing dataset is refused, with the command that makes it" "$TA" \
    "pool 'bad': zfs dataset '$ZP/nope' does not exist \(create it with: zfs create -p $ZP/nope\)" \
    pool add bad --driver zfs --dataset "$ZP/nope"
expect_error "a path is not a dataset" "$TA" "invalid zfs dataset '/$DS': a dataset name \(like tank/qvm\) has no leading '/'" \
    pool add bad --driver zfs --dataset "/$DS"
expect_error "'..' in a dataset is refused" "$TA" "invalid zfs dataset '$ZP/../x': '..' is not allowed" \
    pool add bad --driver zfs --dataset "$ZP/../x"
expect_error "a zfs pool needs a dataset" "$TA" "needs a dataset" pool add bad --driver zfs
expect_error "an unknown mode is refused" "$TA" "unknown zfs mode 'raw' \(modes: dataset, zvol\)" \
    pool add bad --driver zfs --dataset "$DS" --mode raw
zfs create -o canmount=noauto "$ZP/unmounted"
expect_error "an unmounted dataset is refused" "$TA" "zfs dataset '$ZP/unmounted' is not mounted \(mount it with: zfs mount $ZP/unmounted\)" \
    pool add bad --driver zfs --dataset "$ZP/unmounted"
zdestroy "$ZP/unmounted"
[ "$conf" = "$(cat "$QVM_ROOT/etc/qvm/qvm.conf" 2>/dev/null)" ] && same_state "refused pool adds change nothing" ||
    not_ok "refused pool adds changed qvm.conf"

# --- image import --------------------------------------------------------------
raw=$T/small.raw
truncate -s 64M "$raw"
for off in 0 7 31 63; do
    head -c 1048576 /dev/urandom | dd of="$raw" bs=1M seek=$off conv=notrunc status=none
done
run_qvm image import small "$raw"
[ "$rc" = 0 ] && grep -q "in pool 'tank'" <<<"$out" && ok "import of a raw image into the zfs pool" ||
    { not_ok "import raw"; echo "$out$err" | diag; }
[ "$(zfs list -H -t snapshot -o name -r "$DS")" = "$DS/images/small@v1" ] &&
    ok "version v1 is the snapshot $DS/images/small@v1 (zfs list -t snapshot)" ||
    { not_ok "snapshot"; zfs list -t all -r "$DS" | diag; }
[ "$(zfs get -Hp -o value qvm:virtual-size "$DS/images/small@v1")" = 67108864 ] &&
    ok "the snapshot records the virtual size (qvm:virtual-size=67108864)" || not_ok "qvm:virtual-size"
[ "$(ls -A "$MNT/images/small" | tr '\n' ' ')" = "disk.raw image.json " ] &&
    [ "$(zfs get -Hp -o value used "$DS/images/small@v1")" -lt $((1 << 20)) ] &&
    ok "the live dataset holds image.json and the newest version's disk.raw, sharing all its blocks with the snapshot" ||
    { not_ok "live dataset contents"; ls -la "$MNT/images/small" | diag; zfs get used "$DS/images/small@v1" | diag; }
ref=$(zfs get -Hp -o value referenced "$DS/images/small@v1")
[ "$ref" -lt $((16 << 20)) ] && ok "the snapshot is sparse ($((ref >> 20)) MiB referenced of 64)" || not_ok "not sparse: $ref"
# zfs-fuse has no .zfs/snapshot directory: read a snapshot through a clone.
snap_file() {  # snap_file SNAPSHOT: clones it as ZP/check, prints its disk.raw
    zdestroy "$ZP/check"
    zfs clone "$1" "$ZP/check" && echo "$ZROOT/check/disk.raw"
}
f=$(snap_file "$DS/images/small@v1")
cmp -s "$raw" "$f" && ok "small@v1 holds the same bytes as the source (cmp)" || not_ok "small@v1 differs from the source"
zdestroy "$ZP/check"
qemu-img convert -f raw -O qcow2 "$raw" "$T/small.qcow2"
run_qvm image import small-q "$T/small.qcow2"
f=$(snap_file "$DS/images/small-q@v1")
[ "$rc" = 0 ] && qemu-img compare -q -f raw -F raw "$raw" "$f" &&
    ok "import of a qcow2 image gives the same disk (qemu-img compare)" || { not_ok "import qcow2"; echo "$err" | diag; }
zdestroy "$ZP/check"
run_qvm image ls --json
python3 - "$T/out" <<'PY' && ok "image ls --json: both images in pool tank, v1 published, 64 MiB" || { not_ok "image ls --json"; diag <"$T/out"; }
import json, sys
imgs = {i["name"]: i for i in json.load(open(sys.argv[1]))}
for n in ("small", "small-q"):
    assert imgs[n]["pool"] == "tank", imgs[n]
    v = imgs[n]["versions"][0]
    assert v["name"] == "v1" and v["state"] == "published" and v["size"] == 64 << 20, v
PY
expect_error "an existing image name is refused" "$TI" "image 'small' already exists in pool 'tank'" \
    image import small "$raw"

# --- qvm up: clones ---------------------------------------------------------------
vmfile() {  # vmfile PATH NAME [lines under disk: ...] - the zvol mapping comes last
    local path=$1 name=$2; shift 2
    {
        echo "qvm: vm"; echo "name: $name"; echo "memory: 128"; echo "vcpus: 1"
        echo "graphics: none"; echo "network: user"
        echo "disk:"; echo "  bus: virtio"
        for l in "$@"; do echo "$l"; done
        echo "---"; echo "qvm: user-data"; echo "runcmd:"; echo "  - [true]"
        echo "---"; echo "qvm: meta-data"; echo "instance-id: $name-1"
    } >"$path"
}
vmfile "$T/a.yaml" alpha "  zvol:" "    base: small"
before=$(full_state)
expect_error "--pool default: the image is not in that pool" "$TP" "no image named 'small'" \
    up --no-start --pool default "$T/a.yaml"
same_state "a refused up changes nothing"
run_qvm up --no-start --pool tank "$T/a.yaml"
[ "$rc" = 0 ] && ok "qvm up --no-start --pool tank" || { not_ok "up --pool tank"; echo "$err" | diag; }
[ "$(zfs get -H -o value type "$DS/vms/alpha")" = filesystem ] && ok "the bundle is the dataset $DS/vms/alpha" || not_ok "bundle dataset"
[ "$(zfs get -Hp -o value origin "$DS/vms/alpha/disk0")" = "$DS/images/small@v1" ] &&
    ok "the disk is a clone whose origin is the image snapshot (zfs get -Hp origin)" ||
    { not_ok "origin"; zfs get origin -r "$DS/vms" | diag; }
b=$MNT/vms/alpha
[ -f "$b/vm.json" ] && [ -f "$b/vm.yaml" ] && [ -f "$b/seed.iso" ] && cmp -s "$raw" "$b/disk0/disk.raw" &&
    ok "the bundle holds vm.json, the qvm file and the seed; disk0/disk.raw has the image's bytes" ||
    { not_ok "bundle contents"; ls -laR "$b" | diag; }

# disk.zvol properties: lz4 where this ZFS has it (zfs-fuse has not).
if zfs create -o compression=lz4 "$ZP/lz4probe" >/dev/null 2>&1; then
    comp=lz4
    zdestroy "$ZP/lz4probe"
else
    comp=gzip-1
    vmfile "$T/lz4.yaml" delta "  zvol:" "    base: small" "    compression: lz4"
    before=$(full_state)
    expect_error "compression=lz4 on a ZFS without it: zfs's own reason, after the clone was tried" "$TP" \
        "cannot clone image 'small@v1' for VM 'delta': zfs clone -o compression=lz4 .*'compression' must be one of" \
        up --no-start "$T/lz4.yaml"
    same_state "the failed clone is rolled back completely"
fi
vmfile "$T/b.yaml" beta "  pool: tank" "  size: 1" "  zvol:" "    base: small" "    compression: $comp"
run_qvm up --no-start "$T/b.yaml"
[ "$rc" = 0 ] && ok "qvm up with disk.pool: tank and disk.zvol compression: $comp" || { not_ok "up disk.pool"; echo "$err" | diag; }
[ "$(zfs get -H -o value compression "$DS/vms/beta/disk0")" = "$comp" ] &&
    [ "$(zfs get -H -o source compression "$DS/vms/beta/disk0")" = local ] &&
    ok "the clone has compression=$comp, set on it" || { not_ok "compression"; zfs get compression "$DS/vms/beta/disk0" | diag; }
[ "$(stat -c %s "$MNT/vms/beta/disk0/disk.raw")" = 1073741824 ] && ok "disk.size 1 grew the clone's disk.raw to 1 GiB" ||
    not_ok "disk size $(stat -c %s "$MNT/vms/beta/disk0/disk.raw")"
vmfile "$T/mp.yaml" eps "  zvol:" "    base: small" "    mountpoint: /etc"
before=$(full_state)
expect_error "a property qvm manages is refused" "$TP" "zfs property 'mountpoint' is managed by qvm" \
    up --no-start "$T/mp.yaml"
same_state "... and nothing is left of the attempt"
vmfile "$T/dn.yaml" eta "  zvol:" "    base: small" "    name: seed.iso"
expect_error "a disk name that would cover the bundle's seed.iso is refused" "$TP" \
    "disk name 'seed.iso' is taken by qvm's own files" up --no-start "$T/dn.yaml"
same_state "... before anything is changed"

# --- real QEMU -----------------------------------------------------------------------
if command -v qemu-system-x86_64 >/dev/null; then
    run_qvm start alpha
    [ "$rc" = 0 ] && qemu_procs | grep -q -- "$b/disk0/disk.raw" &&
        ok "qvm start runs QEMU on the clone's disk.raw" || { not_ok "start"; echo "$err" | diag; qemu_procs | diag; }
    run_qvm ls --json
    python3 -c 'import json,sys; v=[x for x in json.load(open(sys.argv[1])) if x["name"]=="alpha"][0]; assert v["state"]=="running" and v["pool"]=="tank"' "$T/out" &&
        ok "ls --json: alpha running in pool tank" || { not_ok "ls --json"; diag <"$T/out"; }
    run_qvm stop --force alpha
    [ "$rc" = 0 ] && [ -z "$(qemu_procs)" ] && ok "stop --force ends QEMU" || { not_ok "stop --force"; echo "$err" | diag; }
else
    skip "qemu-system-x86_64 is not installed"
fi

# --- removal refused while clones depend -----------------------------------------
if "$QVM" image --help 2>&1 | grep -q "qvm image rm"; then
    expect_error "image rm of an image VMs were cloned from is refused" "removing image" "used by VMs alpha, beta" \
        image rm small
    # A clone qvm does not know about: the driver names it, and keeps the image.
    zfs clone "$DS/images/small-q@v1" "$ZP/handclone"
    expect_error "image rm: the driver refuses while a clone depends, naming it" "removing image" \
        "image 'small-q' cannot be removed: 1 VM disk is cloned from it \($ZP/handclone\)" image rm small-q
    [ -f "$MNT/images/small-q/image.json" ] && [ -n "$(zfs list -H -o name "$DS/images/small-q@v1" 2>/dev/null)" ] &&
        ok "... and the image, its metadata and its snapshot are kept" || not_ok "refused image rm lost something"
    zdestroy "$ZP/handclone"
    run_qvm image rm small-q
    [ "$rc" = 0 ] && ! zfs list -H "$DS/images/small-q" >/dev/null 2>&1 && [ ! -e "$MNT/images/small-q" ] &&
        ok "image rm without dependents destroys the image's dataset and snapshots" || { not_ok "image rm"; echo "$err" | diag; }
else
    skip "this qvm has no 'qvm image rm': the driver's refusal is checked in test_zfs_argv only"
fi
if "$QVM" image --help 2>&1 | grep -q "qvm image commit"; then
    printf 'committed' | dd of="$b/disk0/disk.raw" bs=1 seek=$((5 << 20)) conv=notrunc status=none
    run_qvm image commit small --from alpha
    [ "$rc" = 0 ] && [ "$(zfs get -Hp -o value qvm:virtual-size "$DS/images/small@v2")" = 67108864 ] &&
        ok "image commit: small@v2 is a snapshot made from alpha's disk" || { not_ok "commit"; echo "$err" | diag; }
    f=$(snap_file "$DS/images/small@v2")
    cmp -s "$b/disk0/disk.raw" "$f" && ok "small@v2 holds alpha's disk" || not_ok "v2 differs from alpha's disk"
    zdestroy "$ZP/check"
    u=$(zfs get -Hp -o value used "$DS/images/small@v1")
    [ "$u" -le $((256 << 10)) ] && ok "commit wrote only the changed record: v2 shares all else with v1 (v1 owns $((u >> 10)) KiB)" ||
        not_ok "v1 owns $u bytes after the commit"
    run_qvm image rm small@v2
    [ "$rc" = 0 ] && ! zfs list -H "$DS/images/small@v2" >/dev/null 2>&1 && [ "$(ls -A "$MNT/images/small")" = image.json ] &&
        ok "image rm small@v2 destroys that snapshot only (and the live disk.raw that held it)" || { not_ok "version rm"; echo "$err" | diag; }
else
    skip "this qvm has no 'qvm image commit'"
fi

run_qvm rm alpha
run_qvm rm beta
[ "$rc" = 0 ] && [ "$(zfs list -H -o name -r "$DS/vms")" = "$DS/vms" ] && [ -z "$(ls -A "$MNT/vms")" ] &&
    ok "qvm rm destroys the VMs' datasets and clones: zfs list shows only images" ||
    { not_ok "rm"; zfs list -t all -r "$DS" | diag; ls -la "$MNT/vms" | diag; }

# --- every journaled step of up and of import ------------------------------------
before=$(full_state)
QVM_FAULT_TRACE=$T/steps "$QVM" up "$T/a.yaml" >/dev/null 2>&1
"$QVM" rm alpha >/dev/null 2>&1
steps=$(cat "$T/steps")
[ "$(echo "$steps" | wc -l)" -ge 5 ] && ok "up reports its journaled steps: $(echo $steps)" || not_ok "step trace: $steps"
same_state "up then rm leaves the datasets and the state as before"
for step in $steps; do
    QVM_FAULT=$step run_qvm up "$T/a.yaml"
    [ "$rc" = 1 ] && grep -q "^Error $TP: injected failure after step '$step'" <<<"$err" &&
        ok "up, failure after '$step': exit 1 with the error" || { not_ok "failure after $step"; echo "$err" | diag; }
    same_state "up, failure after '$step': datasets, files and processes as before"
    (QVM_FAULT=kill:$step exec "$QVM" up "$T/a.yaml" >/dev/null 2>&1)
    [ $? = 137 ] && ok "up, SIGKILL at '$step'" || not_ok "SIGKILL at '$step' did not kill"
    run_qvm ls
    grep -q "'up alpha' was interrupted; rolled it back" <<<"$err" &&
        ok "the next command rolls back the up killed at '$step'" || { not_ok "no rollback after kill at $step"; echo "$err" | diag; }
    same_state "up, SIGKILL at '$step': datasets, files and processes as before"
done

QVM_FAULT_TRACE=$T/isteps "$QVM" image import traced "$raw" >/dev/null 2>&1
isteps=$(cat "$T/isteps" 2>/dev/null)
[ "$(echo "$isteps" | wc -l)" -ge 3 ] && ok "import reports its journaled steps: $(echo $isteps)" || not_ok "no import step trace"
"$QVM" image rm traced >/dev/null 2>&1 || { zdestroy -r "$DS/images/traced"; }
same_state "import then removal leaves the datasets and the state as before"
for step in $isteps; do
    QVM_FAULT=$step run_qvm image import faulty "$raw"
    [ "$rc" = 1 ] && grep -q "injected failure after step '$step'" <<<"$err" &&
        ok "import, failure after '$step': exit 1 with the error" || { not_ok "import failure after $step"; echo "$err" | diag; }
    same_state "import, failure after '$step': rolled back completely"
    (QVM_FAULT=kill:$step exec "$QVM" image import faulty "$raw" >/dev/null 2>&1)
    [ $? = 137 ] && ok "import, SIGKILL at '$step'" || not_ok "import SIGKILL at $step"
    run_qvm image ls
    grep -q "was interrupted; rolled it back" <<<"$err" && ok "the next command rolls back the import killed at '$step'" ||
        { not_ok "no rollback of the import killed at $step"; echo "$err" | diag; }
    same_state "import, SIGKILL at '$step': datasets and state exactly as before"
done

# --- zvol mode -------------------------------------------------------------------------
zvol_reason="zvols need a kernel ZFS; zfs-fuse has none (Function not implemented)"
zfs create "$ZP/zv"
run_qvm pool add zv --driver zfs --dataset "$ZP/zv" --mode zvol
[ "$rc" = 0 ] && ok "pool add --mode zvol" || { not_ok "pool add zvol"; echo "$err" | diag; }
# (zfs-fuse's zfs aborts on it: an inner shell keeps bash's "Aborted" quiet)
if bash -c 'zfs create -V 16M "$1"; exit $?' _ "$ZP/zvolprobe" >/dev/null 2>&1; then
    zdestroy "$ZP/zvolprobe"
    run_qvm image import --pool zv zi "$raw"
    zv=$ZP/zv/images/zi/disk
    [ "$rc" = 0 ] && grep -qxE "volume 16384 (0|none) " <<<"$(zfs get -Hp -o value type,volblocksize,refreservation "$zv" | tr '\n' ' ')" &&
        ok "zvol import: $zv is a zvol with volblocksize 16K and no refreservation" || { not_ok "zvol import"; echo "$err" | diag; }
    [ -n "$(zfs list -H -o name "$zv@v1" 2>/dev/null)" ] && cmp -s -n 67108864 "$raw" "/dev/zvol/$zv" &&
        ok "zvol import: snapshot @v1, the zvol holds the image's bytes" || not_ok "zvol data"
    vmfile "$T/z.yaml" zeta "  size: 1" "  zvol:" "    base: zi"
    run_qvm up --no-start --pool zv "$T/z.yaml"
    d=/dev/zvol/$ZP/zv/vms/zeta/disk0
    [ "$rc" = 0 ] && [ -b "$d" ] && [ "$(zfs get -Hp -o value origin "$ZP/zv/vms/zeta/disk0")" = "$zv@v1" ] &&
        [ "$(zfs get -Hp -o value volsize "$ZP/zv/vms/zeta/disk0")" = 1073741824 ] &&
        ok "zvol up: the disk is a 1 GiB zvol clone of zi@v1 at $d" || { not_ok "zvol up"; echo "$err" | diag; }
    run_qvm rm zeta
    [ "$rc" = 0 ] && ! zfs list -H "$ZP/zv/vms/zeta" >/dev/null 2>&1 && ok "zvol rm destroys the clone" || not_ok "zvol rm"
else
    before=$(full_state)
    expect_error "zvol mode on zfs-fuse: import is refused with the reason" "$TI" \
        "zfs create -V 67108864 -o volblocksize=16K -o refreservation=none $ZP/zv/images/zi/disk: .*Function not implemented: zvols need a kernel ZFS" \
        image import --pool zv zi "$raw"
    same_state "zvol mode on zfs-fuse: the refused import leaves nothing"
    skip "zvol mode import, clone and rm: $zvol_reason"
fi
run_qvm pool rm zv
zdestroy -r "$ZP/zv"

run_qvm doctor
[ "$rc" = 0 ] && ok "doctor finds nothing at the end" || { not_ok "doctor"; echo "$out" | diag; }
done_testing
