#!/usr/bin/env bash
# Several disks per VM (issue 5) against real pools: a dir pool (the
# default) and a Btrfs pool on a loop device, the real qemu-img and QEMU
# (TCG; nothing boots). A VM whose image disk is in the dir pool, with a
# data disk on Btrfs (a subvolume in the VM's own bundle there) and one
# beside the image disk: dry-run, up --no-start, what exists where, vm.json,
# ls, info, QEMU's command line, rm down to nothing; an injected failure
# after every journaled step of up and a SIGKILL at every step, each leaving
# both pools and the state tree exactly as before; the operations that do
# not handle several disks yet refuse, naming why; list errors name
# file:line:column and vm.disk[N].KEY.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
source "$top/tests/pools/btrfs.sh"
TF="importing qvm file"
TP="provisioning virtual machine"

raw=$T/small.raw
truncate -s 64M "$raw"
head -c 1M /dev/urandom | dd of="$raw" conv=notrunc status=none
"$QVM" image import tiny "$raw" >/dev/null 2>&1 || not_ok "setup: image import"
make_btrfs_pool fast 256 || { done_testing; exit; }
ok "a loop-mounted Btrfs is added as pool 'fast'"
M=$BTRFS_MNT
D=$QVM_ROOT/var/lib/qvm/pools/default/vms/multi

snap_all() { state_snapshot; btrfs_pool_state; }
before=$(snap_all)
same_state() {
    local now; now=$(snap_all)
    if [ "$before" = "$now" ] && [ -z "$(qemu_procs)" ]; then ok "$1"; else
        not_ok "$1"; diff <(echo "$before") <(echo "$now") | diag; qemu_procs | diag; fi
}
vmjson() { python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print($2)" "$D/vm.json"; }

cat >"$T/m.yaml" <<'Y'
qvm: vm
name: multi
memory: 128
graphics: none
network: user
disk:
  - size: 0.125
    zvol: {base: tiny}
  - size: 0.5
    pool: fast
  - name: logs
    size: 0.25
    bus: scsi
    cache: none
---
qvm: user-data
runcmd: [[true]]
---
qvm: meta-data
instance-id: multi-1
Y

# --- errors in the list --------------------------------------------------------------
sed 's/^    pool: fast$/    pool: fast\n    colour: red/' "$T/m.yaml" >"$T/bad1.yaml"
expect_error "an unknown key in a list entry names file:line:col and vm.disk[1].colour" "$TF" \
    "$T/bad1.yaml:11:5: key 'vm.disk\[1\].colour': unsupported option 'colour'" up "$T/bad1.yaml"
sed 's/^  - size: 0.5$/  - size: big/' "$T/m.yaml" >"$T/bad2.yaml"
expect_error "a bad size names vm.disk[1].size" "$TF" "$T/bad2.yaml:9:11: key 'vm.disk\[1\].size'" \
    up "$T/bad2.yaml"
sed 's/^    pool: fast$/    pool: nosuch/' "$T/m.yaml" >"$T/bad3.yaml"
expect_error "a data disk on a pool that does not exist is named" "$TP" "data disk disk1: .*nosuch" \
    up "$T/bad3.yaml"
sed 's/^name: multi$/name: multi\nruntime: virt-install/' "$T/m.yaml" >"$T/bad4.yaml"
expect_error "runtime virt-install refuses several disks" "$TP" "runtime virt-install takes one disk" \
    up "$T/bad4.yaml"
same_state "list errors change nothing"

run_qvm up --dry-run "$T/m.yaml"
[ "$rc" = 0 ] && grep -q "create data disk disk1 in pool 'fast' as $M/vms/multi/disk1/disk.raw (raw, 0.50 GiB" <<<"$out" &&
    grep -q "create data disk logs in pool 'default' as $D/logs.raw (raw, 0.25 GiB" <<<"$out" &&
    grep -q "id=disk-disk1" <<<"$out" && grep -q "scsi-hd,bus=scsi0.0,drive=disk-logs" <<<"$out" &&
    ok "--dry-run shows every disk, where it goes, and QEMU's drives" || { not_ok "dry-run"; echo "$out$err" | diag; }
same_state "--dry-run changes nothing"

# --- up --no-start: what exists where ----------------------------------------------
run_qvm up --no-start "$T/m.yaml"
[ "$rc" = 0 ] && ok "up --no-start of a VM with three disks on two pools" || { not_ok "up"; echo "$err" | diag; }
[ "$(stat -c %s "$M/vms/multi/disk1/disk.raw" 2>/dev/null)" = 536870912 ] &&
    [ "$(stat -c %b "$M/vms/multi/disk1/disk.raw")" = 0 ] &&
    ok "the Btrfs data disk is a sparse 512 MiB disk.raw" || { not_ok "btrfs data disk"; ls -lsR "$M/vms" | diag; }
btrfs subvolume list "$M" | awk '{print $NF}' | sort | tr '\n' ' ' | grep -q "vms/multi vms/multi/disk1 " &&
    ok "on Btrfs: a bundle subvolume vms/multi holding the disk's subvolume disk1" ||
    { not_ok "btrfs subvolumes"; btrfs subvolume list "$M" | diag; }
[ ! -e "$M/vms/multi/vm.json" ] && ok "the Btrfs bundle holds no vm.json (the VM lives in pool default)" ||
    not_ok "vm.json in the data pool"
[ "$(stat -c %s "$D/logs.raw" 2>/dev/null)" = 268435456 ] && [ -e "$D/vm.json" ] &&
    ok "the second data disk is a sparse raw file beside the image disk" || { not_ok "dir data disk"; ls -ls "$D" | diag; }
[ "$(vmjson "" '[(x["name"], x["pool"], x["format"], x["size"], x["bus"], x["cache"]) for x in d["data_disks"]], d["disk"]["name"], "position" in d["disk"]')" = \
  "[('disk1', 'fast', 'raw', 536870912, 'virtio', 'writeback'), ('logs', 'default', 'raw', 268435456, 'scsi', 'none')] disk0 False" ] &&
    ok "vm.json records every data disk (name, pool, format, size, bus, cache)" ||
    { not_ok "vm.json data_disks"; cat "$D/vm.json" | diag; }
run_qvm ls --json
python3 - "$T/out" <<'PY' && ok "ls --json lists the three disks with pool and size" || { not_ok "ls --json"; cat "$T/out" | diag; }
import json, sys
v = [x for x in json.load(open(sys.argv[1])) if x["name"] == "multi"][0]
assert [(d["name"], d["pool"], d["size"]) for d in v["disks"]] == \
    [("disk0", "default", 128 << 20), ("disk1", "fast", 512 << 20), ("logs", "default", 256 << 20)], v
PY
run_qvm ls
grep -qE "^multi +stopped .* 128M\+2 " <<<"$out" && ok "ls shows the image disk and '+2' more" || { not_ok "ls"; echo "$out" | diag; }
run_qvm info multi
grep -q "^disk: *disk1 $M/vms/multi/disk1/disk.raw (raw, 512M virtual" <<<"$out" &&
    grep -q "^disk: *logs $D/logs.raw (raw, 256M virtual" <<<"$out" &&
    ok "info shows each disk with path, format and size" || { not_ok "info"; echo "$out" | diag; }

# --- the refusals ------------------------------------------------------------------------
refusal="VM 'multi' has 3 disks: %s of several disks are not supported yet"
expect_error "snapshot is refused" "taking snapshot" "$(printf "$refusal" snapshots)" snapshot multi s1
expect_error "revert is refused" "reverting virtual machine" "$(printf "$refusal" reverts)" revert multi s1
expect_error "clone is refused" "cloning virtual machine" "$(printf "$refusal" clones)" clone multi multi2
expect_error "export is refused" "[a-z ]+" "$(printf "$refusal" exports)" export -o "$T/x.qvmb" multi
expect_error "image commit is refused" "[a-z ]+" "$(printf "$refusal" "image commits")" image commit tiny --from multi
expect_error "resize is refused" "[a-z ]+" "$(printf "$refusal" resizes)" resize multi disk1 +1G
sed 's/^  - size: 0.5$/  - size: 1/' "$D/vm.yaml" >"$T/grow.yaml"
expect_error "edit growing a data disk is refused" "[a-z ]+" "VM 'multi' has 3 disks: changing the disk list" \
    edit multi --file "$T/grow.yaml"
run_qvm edit multi --set memory=256
[ "$rc" = 0 ] && [ "$(vmjson "" 'd["memory_mib"], len(d["data_disks"])')" = "256 2" ] &&
    ok "edit of another key keeps the data disks" || { not_ok "edit memory"; echo "$out$err" | diag; }
[ ! -e "$T/x.qvmb" ] && ok "the refused export wrote nothing" || not_ok "export left $T/x.qvmb"

# --- QEMU gets every disk ----------------------------------------------------------------
run_qvm start multi
pid=$(pgrep -f -- "-pidfile $QVM_ROOT/" | head -1)
cmd=$(tr '\0' ' ' <"/proc/$pid/cmdline" 2>/dev/null)
[ "$rc" = 0 ] && grep -q "file=$M/vms/multi/disk1/disk.raw,if=none,id=disk-disk1" <<<"$cmd" &&
    grep -q "id=disk-logs,format=raw,cache=none" <<<"$cmd" && grep -q "drive=disk0,bootindex=1" <<<"$cmd" &&
    ok "QEMU runs with the three disks, the image disk booting" || { not_ok "start"; echo "$err $cmd" | diag; }
run_qvm rm multi
[ "$rc" = 0 ] && ok "rm of the running VM" || { not_ok "rm"; echo "$err" | diag; }
same_state "rm removes every disk in both pools and the Btrfs bundle"

# --- every journaled step ----------------------------------------------------------------
QVM_FAULT_TRACE=$T/steps "$QVM" up --no-start "$T/m.yaml" >/dev/null 2>&1
"$QVM" rm multi >/dev/null 2>&1
steps=$(cat "$T/steps")
grep -q "^data-bundle-created:fast$" <<<"$steps" && grep -q "^data-disk-created:disk1$" <<<"$steps" &&
    grep -q "^data-disk-created:logs$" <<<"$steps" &&
    ok "up reports its journaled steps: $(echo $steps)" || not_ok "step trace: $steps"
same_state "up then rm leaves both pools as before"
for step in $steps; do
    QVM_FAULT=$step run_qvm up --no-start "$T/m.yaml"
    [ "$rc" = 1 ] && grep -q "^Error $TP: injected failure after step '$step'" <<<"$err" &&
        ok "failure after '$step': exit 1" || { not_ok "failure after $step"; echo "$err" | diag; }
    same_state "failure after '$step': both pools as before"
    (QVM_FAULT=kill:$step exec "$QVM" up --no-start "$T/m.yaml" >/dev/null 2>&1)
    [ $? = 137 ] && ok "SIGKILL at '$step'" || not_ok "SIGKILL at '$step' did not kill"
    run_qvm ls
    grep -q "'up multi' was interrupted; rolled it back" <<<"$err" &&
        ok "next command rolls back the up killed at '$step'" || { not_ok "no rollback after kill at $step"; echo "$err" | diag; }
    same_state "SIGKILL at '$step': both pools as before"
done

# --- a removal cut short: doctor frees the data pool's bundle ---------------------------
run_qvm up --no-start "$T/m.yaml"
"$QVM" pool ls >/dev/null
mv "$D/vm.json" "$D/vm.json.removed"    # as rm's detach leaves it when qvm dies right after
run_qvm doctor
[ "$rc" = 1 ] && grep -q "$M/vms/multi holds disks but no VM definition" <<<"$out" &&
    ok "doctor finds the data pool's bundle of a removed VM" || { not_ok "doctor"; echo "$out" | diag; }
run_qvm doctor --repair
run_qvm doctor
[ "$rc" = 0 ] && ok "doctor --repair frees it" || { not_ok "doctor repair"; echo "$out" | diag; }
same_state "after doctor --repair: both pools as before"
done_testing
