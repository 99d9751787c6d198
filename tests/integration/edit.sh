#!/usr/bin/env bash
# qvm edit, qvm resize and autostart against the real dir pool, a real
# Btrfs (loop-mounted) and a real ZFS (zfs-fuse), qemu-img and QEMU (TCG; no
# guest boots: a bare 64 MiB image): --set and --file, $EDITOR rewriting the
# private copy (and re-editing on a terminal after an error), every refusal
# (name, pool, base image, cloud-init documents, a smaller disk, bad values)
# leaving vm.yaml and vm.json as they were; offline growth of a qcow2
# overlay (qemu-img resize), a raw reflink disk, a Btrfs disk and a ZFS
# dataset disk (ftruncate), and a live one through QMP block_resize, seen in
# QEMU's query-block; an injected failure after every journaled step and a
# SIGKILL at each, leaving the definition as before and never claiming a
# size the disk does not have; autostart in the qvm file and vm.json,
# --boot starting the marked VMs only and going past one that fails,
# --shutdown stopping them all at once; the systemd unit checked with
# systemd-analyze verify and its install rule; doctor clean at the end.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
source "$top/tests/pools/btrfs.sh"
source "$top/tests/pools/zfs.sh"
TE="editing virtual machine"
TR="resizing disk"
GIB=$((1 << 30))
MIB=$((1 << 20))

raw=$T/small.raw
truncate -s 64M "$raw"
head -c 1M /dev/urandom | dd of="$raw" conv=notrunc status=none
"$QVM" image import tiny "$raw" >/dev/null 2>&1 || not_ok "setup: image import"

vmfile() {  # vmfile PATH NAME [lines appended to the vm document...]
    local path=$1 name=$2; shift 2
    {
        echo "# $name: a test VM"
        echo "qvm: vm"; echo "name: $name"; echo "memory: 128     # MiB"; echo "vcpus: 1"
        echo "graphics: none"; echo "network: user"
        echo "disk:"; echo "  bus: virtio"; echo "  zvol:"; echo "    base: tiny"
        for l in "$@"; do echo "$l"; done
        echo "---"; echo "qvm: user-data"; echo "runcmd:"; echo "  - [true]"
        echo "---"; echo "qvm: meta-data"; echo "instance-id: $name-1"
    } >"$path"
}
# vmjson BUNDLE EXPR: a value of BUNDLE/vm.json (d is the document).
vmjson() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1]+"/vm.json")); print(eval(sys.argv[2]))' "$1" "$2"; }
# The definition: both files, byte for byte, and the state tree.
defn() { md5sum "$1/vm.yaml" "$1/vm.json"; state_snapshot; }
# disk_size BUNDLE: the virtual size of its disk as the storage has it.
disk_size() {
    local f
    for f in "$1"/disk0.qcow2 "$1"/disk0.raw "$1"/disk0/disk.raw; do
        [ -f "$f" ] || continue
        qemu-img info -U --output=json "$f" | python3 -c 'import json,sys; print(json.load(sys.stdin)["virtual-size"])'
        return
    done
    echo 0
}

vmfile "$T/a.yaml" alpha
run_qvm up --no-start "$T/a.yaml"
[ "$rc" = 0 ] || { not_ok "setup: up alpha"; echo "$err" | diag; }
A=$QVM_ROOT/var/lib/qvm/pools/default/vms/alpha

# --- edit --set and --file -------------------------------------------------------
cp "$A/vm.yaml" "$T/alpha.orig"
run_qvm edit alpha --set memory=256 --set vcpus=2
[ "$rc" = 0 ] && grep -q "memory 128 MiB -> 256 MiB, vcpus 1 -> 2" <<<"$out" &&
    grep -q "apply when it starts (qvm start alpha)" <<<"$out" &&
    ok "edit --set memory=256 --set vcpus=2: the changes are named, and when they apply" ||
    { not_ok "edit --set"; echo "$out$err" | diag; }
[ "$(vmjson "$A" 'd["memory_mib"], d["vcpus"]')" = "(256, 2)" ] && ok "vm.json has memory 256 MiB, 2 vCPUs" ||
    not_ok "vm.json: $(vmjson "$A" 'd["memory_mib"], d["vcpus"]')"
[ "$(diff "$T/alpha.orig" "$A/vm.yaml" | grep '^[<>]' | tr '\n' '|')" = "< memory: 128     # MiB|< vcpus: 1|> memory: 256     # MiB|> vcpus: 2|" ] &&
    ok "vm.yaml changed in place: only those two values, the comment after memory kept" ||
    { not_ok "vm.yaml diff"; diff "$T/alpha.orig" "$A/vm.yaml" | diag; }
[ "$(stat -c %a "$A/vm.yaml")" = 600 ] && [ ! -e "$A/.edit" ] && [ -z "$(ls "$QVM_ROOT/var/lib/qvm/journal")" ] &&
    ok "vm.yaml stays mode 0600; no staging directory or journal left" || not_ok "leftovers: $(ls -a "$A")"
sed 's/^vcpus: 2/vcpus: 4/; s/^network: user/network: {type: user, ssh-port: 42022}/' "$A/vm.yaml" >"$T/new.yaml"
run_qvm edit alpha --file "$T/new.yaml"
[ "$rc" = 0 ] && cmp -s "$T/new.yaml" "$A/vm.yaml" && [ "$(vmjson "$A" 'd["vcpus"], d["network"]["ssh_port"]')" = "(4, 42022)" ] &&
    ok "edit --file: vm.yaml is the new file; vcpus and the SSH port in vm.json" ||
    { not_ok "edit --file"; echo "$out$err" | diag; }
run_qvm edit alpha --file "$T/new.yaml"
[ "$rc" = 0 ] && grep -q "No changes to VM 'alpha'" <<<"$out" && ok "the same file again: no changes" || not_ok "no-op edit: $out$err"

# --- $EDITOR ----------------------------------------------------------------------
cat >"$T/ed.sh" <<'EOF'
#!/bin/sh
# A scripted editor: applies $EDIT_SED to the file it is given (the last argument).
for f; do :; done
echo "$*" >>"$EDIT_LOG"
sed -i "$EDIT_SED" "$f"
EOF
chmod +x "$T/ed.sh"
export EDIT_LOG=$T/editor.log
EDIT_SED='s/^memory: .*/memory: 512/' EDITOR="$T/ed.sh --wait" run_qvm edit alpha </dev/null
[ "$rc" = 0 ] && [ "$(vmjson "$A" 'd["memory_mib"]')" = 512 ] && grep -q "^memory: 512$" "$A/vm.yaml" &&
    ok "EDITOR (a script rewriting the file): memory 512 in vm.yaml and vm.json" || { not_ok "EDITOR edit"; echo "$out$err" | diag; }
edited=$(tail -1 "$EDIT_LOG")
[[ $edited == "--wait "*/qvm-edit-alpha-*.yaml ]] && [ ! -e "${edited#--wait }" ] &&
    ok "the editor ran without a shell on a private copy (EDITOR's words, then the file), removed after" ||
    not_ok "editor argv: $edited"
VISUAL="$T/ed.sh" EDITOR=false EDIT_SED='s/^vcpus: .*/vcpus: 3/' run_qvm edit alpha </dev/null
[ "$rc" = 0 ] && [ "$(vmjson "$A" 'd["vcpus"]')" = 3 ] && ok "VISUAL wins over EDITOR" || { not_ok "VISUAL"; echo "$err" | diag; }
before=$(defn "$A")
EDIT_SED='s/^memory: .*/memory: lots/' EDITOR="$T/ed.sh" run_qvm edit alpha </dev/null
kept=$(grep -o 'kept in [^;]*' <<<"$err" | cut -c9-)
[ "$rc" = 1 ] && grep -qE "^Error $TE: .*/qvm-edit-alpha-.{6}\.yaml:4:9: key 'vm\.memory': expected an integer \(MiB\), got 'lots' \(your edit is kept in .*; apply it with: qvm edit alpha --file " <<<"$err" &&
    [ -f "$kept" ] && grep -q "^memory: lots" "$kept" &&
    ok "an invalid edit without a terminal: exit 1, FILE:LINE:COL and the key, the edit kept" ||
    { not_ok "invalid edit"; echo "$err" | diag; }
[ "$(defn "$A")" = "$before" ] && ok "... and vm.yaml and vm.json are as they were" || not_ok "invalid edit changed the definition"
rm -f "$kept"
EDITOR=false run_qvm edit alpha </dev/null
[ "$rc" = 1 ] && grep -q "^Error $TE: the editor failed: false failed (exit status 1)" <<<"$err" && [ "$(defn "$A")" = "$before" ] &&
    ok "an editor that fails changes nothing" || { not_ok "editor failure"; echo "$err" | diag; }
if command -v script >/dev/null; then
    cat >"$T/ed2.sh" <<'EOF'
#!/bin/sh
# First call: an invalid vcpus; second call: a valid one.
n=$(($(cat "$EDIT_LOG.n" 2>/dev/null || echo 0) + 1)); echo $n >"$EDIT_LOG.n"
[ $n = 1 ] && v=many || v=5
sed -i "s/^vcpus: .*/vcpus: $v/" "$1"
EOF
    chmod +x "$T/ed2.sh"
    (sleep 2; printf 'y\n') | EDITOR="$T/ed2.sh" script -qec "$QVM edit alpha" /dev/null >"$T/tty.out" 2>&1
    [ "$(cat "$EDIT_LOG.n")" = 2 ] && grep -q "key 'vm.vcpus': expected an integer, got 'many'" "$T/tty.out" &&
        grep -q "Edit again? \[Y/n\]" "$T/tty.out" && [ "$(vmjson "$A" 'd["vcpus"]')" = 5 ] &&
        ok "on a terminal an invalid edit is offered again (as crontab -e); the second, valid, applies" ||
        { not_ok "re-edit on a terminal"; diag <"$T/tty.out"; }
else
    skip "re-edit on a terminal: script(1) (util-linux) is not installed"
fi

# --- what cannot change --------------------------------------------------------------
before=$(defn "$A")
refused() {  # refused DESC PATTERN SED
    sed "$3" "$A/vm.yaml" >"$T/bad.yaml"
    expect_error "$1" "$TE" "$2" edit alpha --file "$T/bad.yaml"
}
refused "the name cannot change" "name cannot change \('alpha' to 'omega'\)" 's/^name: alpha/name: omega/'
refused "the pool cannot change" "disk.pool cannot change \('default' to 'elsewhere'\)" 's/^  bus: virtio/  pool: elsewhere/'
refused "the base image cannot change, naming the version the disk is a clone of" \
    "disk.zvol.base cannot change \('tiny' to 'other'\): the disk is a clone of tiny@v1" 's/base: tiny/base: other/'
refused "the disk name cannot change" "disk.zvol.name cannot change \('disk0' to 'data'\)" 's/^    base: tiny/    base: tiny\n    name: data/'
refused "the user-data document cannot change" "the user-data document cannot change: cloud-init configured" 's/\[true\]/[false]/'
refused "the meta-data document cannot change" "the meta-data document cannot change" 's/alpha-1/alpha-2/'
refused "a smaller disk is refused with both sizes" \
    "disk.size 0.03125 GiB \(33554432 bytes\) is smaller than disk0 now \(0.0625 GiB, 67108864 bytes\): disks only grow" \
    's/^    base: tiny/    base: tiny\n  size: 0.03125/'
refused "an invalid value names file, line and column" "$T/bad.yaml:5:8: key 'vm.vcpus': 0 is out of range" 's/^vcpus: .*/vcpus: 0/'
refused "an unknown key is named" "$T/bad.yaml:[0-9]+:1: key 'vm.rng': unsupported option 'rng'" 's/^graphics: none/graphics: none\nrng: yes/'
expect_error "--set of an unknown key is validated as up validates" "$TE" "vm.yaml:[0-9]+:1: key 'vm.colour': unsupported option" \
    edit alpha --set colour=red
expect_error "--set of a value YAML would read otherwise is refused" "$TE" "invalid value 'a b' for memory" \
    edit alpha --set "memory=a b"
expect_error "--set without '='" "$TE" "--set 'memory': expected KEY=VALUE" edit alpha --set memory
expect_error "a VM that does not exist" "$TE" "no VM named 'nope'" edit nope --set memory=256
expect_error "resize: a smaller size is refused, with both sizes" "$TR" \
    "disk0 of VM 'alpha' is 0.0625 GiB \(67108864 bytes\); 0.03125 GiB \(33554432 bytes\) is smaller: qvm resize only grows" \
    resize alpha disk0 32M
expect_error "resize: a disk the VM does not have" "$TR" "VM 'alpha' has no disk 'disk1' \(its disk is disk0\)" resize alpha disk1 1G
expect_error "resize: a size with a unit qvm does not take" "$TR" "invalid size '5K'" resize alpha disk0 5K
expect_error "resize: a size beyond disk.size's limit" "$TR" "too large \(at most 65536 GiB\)" resize alpha disk0 65T
[ "$(defn "$A")" = "$before" ] && [ "$(disk_size "$A")" = $((64 * MIB)) ] &&
    ok "every refusal leaves vm.yaml, vm.json, the state tree and the disk as they were" ||
    { not_ok "a refusal changed something"; diff <(echo "$before") <(defn "$A") | diag; }

# --- resize offline: the dir pool's qcow2 overlay ------------------------------------------
fmt=$(vmjson "$A" 'd["disk"]["format"]')
run_qvm resize alpha disk0 +64M
[ "$rc" = 0 ] && [ "$(disk_size "$A")" = $((128 * MIB)) ] && [ "$(vmjson "$A" 'd["disk"]["size"]')" = $((128 * MIB)) ] &&
    grep -q "^  size: 0.125$" "$A/vm.yaml" &&
    ok "resize +64M of a stopped VM ($fmt disk): 128 MiB on disk, in vm.json and as disk.size 0.125 in vm.yaml" ||
    { not_ok "resize +64M"; echo "$out$err" | diag; }
run_qvm resize alpha disk0 128M
[ "$rc" = 0 ] && grep -q "already 0.125 GiB; nothing to do" <<<"$out" && ok "resize to the size it has: nothing to do" || not_ok "same-size resize: $out$err"
run_qvm edit alpha --set disk.size=0.25
[ "$rc" = 0 ] && [ "$(disk_size "$A")" = $((256 * MIB)) ] && [ "$(vmjson "$A" 'd["disk"]["size"]')" = $((256 * MIB)) ] &&
    ok "edit --set disk.size=0.25 grows the disk through the resize path" || { not_ok "edit disk.size"; echo "$out$err" | diag; }

# --- every journaled step: injected failure and SIGKILL ----------------------------------
rm -f "$T/steps"
QVM_FAULT_TRACE=$T/steps "$QVM" resize alpha disk0 +16M >/dev/null 2>&1
steps=$(cat "$T/steps")
[ "$(echo $steps)" = "disk-grown staged file-replaced definition-replaced" ] &&
    ok "resize reports its journaled steps: $(echo $steps)" || not_ok "step trace: $(echo $steps)"
claim_ok() {  # vm.json never claims more than the disk has
    local claim; claim=$(vmjson "$A" 'd["disk"]["size"]')
    [ "$claim" -le "$(disk_size "$A")" ]
}
n=0
for step in $steps; do
    n=$((n + 1))
    before=$(defn "$A")
    QVM_FAULT=$step run_qvm resize alpha disk0 $((300 + 2 * n - 1))M
    [ "$rc" = 1 ] && grep -q "^Error $TR: injected failure after step '$step'" <<<"$err" &&
        [ "$(defn "$A")" = "$before" ] && claim_ok &&
        ok "failure after '$step': vm.yaml, vm.json and the state tree as before; vm.json claims no more than the disk has" ||
        { not_ok "failure after $step"; echo "$err" | diag; diff <(echo "$before") <(defn "$A") | diag; }
    (QVM_FAULT=kill:$step exec "$QVM" resize alpha disk0 $((300 + 2 * n))M >/dev/null 2>&1)
    [ $? = 137 ] || not_ok "SIGKILL at '$step' did not kill"
    run_qvm ls
    grep -q "'resize alpha' was interrupted; rolled it back" <<<"$err" && [ "$(defn "$A")" = "$before" ] && claim_ok &&
        ok "SIGKILL at '$step': the next command rolls back; definition as before, no size claimed that the disk lacks" ||
        { not_ok "SIGKILL at $step"; echo "$err" | diag; diff <(echo "$before") <(defn "$A") | diag; }
done
before=$(defn "$A")
(QVM_FAULT=kill:file-replaced exec "$QVM" edit alpha --set memory=1024 >/dev/null 2>&1)
run_qvm ls
grep -q "'edit alpha' was interrupted; rolled it back" <<<"$err" && [ "$(defn "$A")" = "$before" ] &&
    ok "an edit killed between replacing vm.yaml and vm.json is rolled back whole" || { not_ok "edit kill"; echo "$err" | diag; }
run_qvm resize alpha disk0 320M
[ "$rc" = 0 ] && [ "$(disk_size "$A")" = $((320 * MIB)) ] && [ "$(vmjson "$A" 'd["disk"]["size"]')" = $((320 * MIB)) ] &&
    ok "after the faults, resize completes (320 MiB on disk and in vm.json)" || { not_ok "resize after faults"; echo "$err" | diag; }

# --- raw disks: a reflink dir pool on Btrfs, the btrfs pool ------------------------------------
if make_btrfs_pool bt 1024; then
    ok "a loop-mounted Btrfs is pool 'bt'"
    run_qvm pool add flat --driver dir --path "$BTRFS_MNT/flat" --mode reflink
    run_qvm image import --pool flat tiny "$raw"
    vmfile "$T/r.yaml" rho
    run_qvm up --no-start --pool flat "$T/r.yaml"
    R=$BTRFS_MNT/flat/vms/rho
    [ "$rc" = 0 ] && [ -f "$R/disk0.raw" ] || { not_ok "setup: dir reflink VM"; echo "$err" | diag; }
    run_qvm resize rho disk0 1G
    [ "$rc" = 0 ] && [ "$(stat -c %s "$R/disk0.raw")" = $GIB ] && [ "$(vmjson "$R" 'd["disk"]["size"]')" = $GIB ] &&
        [ "$(du -k "$R/disk0.raw" | cut -f1)" -lt 4096 ] &&
        ok "dir pool, raw reflink disk: grown to 1 GiB by ftruncate (a hole: still sparse)" || { not_ok "dir raw resize"; echo "$err" | diag; }
    run_qvm image import --pool bt tiny "$raw"
    vmfile "$T/b.yaml" bravo "  size: 0.125"
    run_qvm up --no-start --pool bt "$T/b.yaml"
    Bb=$BTRFS_MNT/vms/bravo
    [ "$rc" = 0 ] || { not_ok "setup: btrfs VM"; echo "$err" | diag; }
    run_qvm edit bravo --set memory=192
    [ "$rc" = 0 ] && [ "$(vmjson "$Bb" 'd["memory_mib"]')" = 192 ] && grep -q "^memory: 192 " "$Bb/vm.yaml" &&
        ok "btrfs pool: edit --set memory" || { not_ok "btrfs edit"; echo "$err" | diag; }
    run_qvm resize bravo disk0 +0.5
    [ "$rc" = 0 ] && [ "$(stat -c %s "$Bb/disk0/disk.raw")" = $((640 * MIB)) ] &&
        [ "$(vmjson "$Bb" 'd["disk"]["size"]')" = $((640 * MIB)) ] && grep -q "^  size: 0.625$" "$Bb/vm.yaml" &&
        ok "btrfs pool: resize +0.5 (GiB) grows disk.raw in the disk's subvolume to 640 MiB" ||
        { not_ok "btrfs resize"; echo "$out$err" | diag; }
    run_qvm rm rho bravo
fi

# --- live: a running VM grows through QMP block_resize -----------------------------------------
qmp_disk_size() {  # what QEMU says the size of its drive disk0 is (query-block)
    python3 - "$QVM_ROOT/run/qvm/vms/$1/qmp.sock" <<'PY'
import json, socket, sys
s = socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f = s.makefile("rw")
f.readline()
def cmd(c):
    f.write(json.dumps({"execute": c}) + "\n"); f.flush()
    while True:
        m = json.loads(f.readline())
        if "return" in m or "error" in m:
            return m
cmd("qmp_capabilities")
print([d for d in cmd("query-block")["return"] if d["device"] == "disk0"][0]["inserted"]["image"]["virtual-size"])
PY
}
if command -v qemu-system-x86_64 >/dev/null; then
    run_qvm start alpha
    pid=$(cat "$QVM_ROOT/run/qvm/vms/alpha/qemu.pid" 2>/dev/null)
    [ "$rc" = 0 ] && [ "$(qmp_disk_size alpha)" = $((320 * MIB)) ] || { not_ok "setup: start alpha"; echo "$err" | diag; }
    run_qvm resize alpha disk0 +192M
    [ "$rc" = 0 ] && grep -q "live, QMP block_resize" <<<"$out" && [ "$(qmp_disk_size alpha)" = $((512 * MIB)) ] &&
        [ "$(vmjson "$A" 'd["disk"]["size"]')" = $((512 * MIB)) ] && [ "$(disk_size "$A")" = $((512 * MIB)) ] &&
        ok "running VM: resize +192M through QMP block_resize; query-block, the image and vm.json say 512 MiB" ||
        { not_ok "live resize"; echo "$out$err" | diag; }
    run_qvm edit alpha --set memory=256
    [ "$rc" = 0 ] && grep -q "is running: the new settings apply at its next start (qvm restart alpha)" <<<"$out" &&
        [ "$(cat "$QVM_ROOT/run/qvm/vms/alpha/qemu.pid")" = "$pid" ] && [ "$(vmjson "$A" 'd["memory_mib"]')" = 256 ] &&
        ok "editing a running VM: recorded, applies at the next start (said so), QEMU untouched" ||
        { not_ok "edit running"; echo "$out$err" | diag; }
    run_qvm stop --force alpha
else
    skip "live resize: qemu-system-x86_64 is not installed"
fi

# --- autostart -----------------------------------------------------------------------------
vmfile "$T/b.yaml" beta "autostart: true"
vmfile "$T/g.yaml" gamma "autostart: yes"
run_qvm up --no-start "$T/b.yaml"
run_qvm up --no-start "$T/g.yaml"
Bt=$QVM_ROOT/var/lib/qvm/pools/default/vms/beta
[ "$(vmjson "$Bt" 'd["autostart"]')" = True ] && [ "$(vmjson "$A" 'd["autostart"]')" = False ] &&
    ok "autostart: true in the qvm file is stored in vm.json; a VM without it is false" || not_ok "autostart in vm.json"
run_qvm autostart --json
python3 - "$T/out" <<'PY' && ok "autostart --json lists every VM with its flag and state" || { not_ok "autostart list"; diag <"$T/out"; }
import json, sys
v = {x["name"]: (x["autostart"], x["state"]) for x in json.load(open(sys.argv[1]))}
assert v == {"alpha": (False, "stopped"), "beta": (True, "stopped"), "gamma": (True, "stopped")}, v
PY
if command -v qemu-system-x86_64 >/dev/null; then
    mkdir -p "$QVM_ROOT/run/qvm/vms/gamma/console.sock"     # gamma's QEMU cannot start
    run_qvm autostart --boot
    [ "$rc" = 1 ] && grep -q "^Error starting virtual machine 'gamma': QEMU could not start VM 'gamma'" <<<"$err" &&
        qemu_procs | grep -q "vms/beta/" && ! qemu_procs | grep -q "vms/alpha/" && ! qemu_procs | grep -q "vms/gamma/" &&
        ok "--boot starts beta, not alpha (unmarked); gamma fails, is reported, and the boot goes on; exit 1" ||
        { not_ok "--boot"; echo "$out$err" | diag; qemu_procs | diag; }
    rm -rf "$QVM_ROOT/run/qvm/vms/gamma"
    run_qvm autostart gamma off
    [ "$rc" = 0 ] && grep -q "^autostart: false$" "$QVM_ROOT/var/lib/qvm/pools/default/vms/gamma/vm.yaml" &&
        [ "$(vmjson "$QVM_ROOT/var/lib/qvm/pools/default/vms/gamma" 'd["autostart"]')" = False ] &&
        ok "autostart gamma off: vm.yaml (in place) and vm.json" || { not_ok "autostart off"; echo "$err" | diag; }
    run_qvm autostart alpha on
    [ "$rc" = 0 ] && grep -q "^autostart: true$" "$A/vm.yaml" && [ "$(vmjson "$A" 'd["autostart"]')" = True ] &&
        ok "autostart alpha on: the key added to vm.yaml, and vm.json" || { not_ok "autostart on"; echo "$err" | diag; }
    run_qvm autostart --boot
    [ "$rc" = 0 ] && grep -q "VM 'beta' (autostart) is already running" <<<"$out" && qemu_procs | grep -q "vms/alpha/" &&
        ! qemu_procs | grep -q "vms/gamma/" && ok "--boot again: alpha started, beta already running, exit 0" ||
        { not_ok "--boot again"; echo "$out$err" | diag; }
    t0=$(date +%s)
    run_qvm autostart --shutdown --timeout 3
    t=$(($(date +%s) - t0))
    # No OS answers the ACPI button: each waits its 3 s, then QEMU quits.
    [ "$rc" = 0 ] && [ -z "$(qemu_procs)" ] && [ "$t" -lt 6 ] &&
        ok "--shutdown stops alpha and beta at once (${t} s for two 3 s ACPI waits)" ||
        { not_ok "--shutdown (${t} s)"; echo "$out$err" | diag; qemu_procs | diag; }
else
    skip "autostart --boot: qemu-system-x86_64 is not installed"
fi

# --- the systemd unit ---------------------------------------------------------------------
unit=$top/contrib/systemd/qvm-autostart.service
grep -qx "Type=oneshot" "$unit" && grep -qx "RemainAfterExit=yes" "$unit" &&
    grep -q "^After=.*network-online.target" "$unit" && grep -q "^After=.*local-fs.target" "$unit" &&
    grep -qx "ExecStart=/usr/local/bin/qvm autostart --boot" "$unit" &&
    grep -q "^ExecStop=/usr/local/bin/qvm autostart --shutdown" "$unit" &&
    ok "the unit: oneshot, RemainAfterExit, after network-online and local-fs, qvm autostart --boot / --shutdown" ||
    not_ok "unit contents"
if command -v systemd-analyze >/dev/null; then
    # verify checks that ExecStart exists: point it at this build's qvm.
    mkdir -p "$T/unit"
    sed "s|/usr/local/bin/qvm|$QVM|" "$unit" >"$T/unit/qvm-autostart.service"
    systemd-analyze verify "$T/unit/qvm-autostart.service" >"$T/verify.out" 2>&1
    [ $? = 0 ] && [ ! -s "$T/verify.out" ] && ok "systemd-analyze verify: no errors, no warnings" ||
        { not_ok "systemd-analyze verify"; diag <"$T/verify.out"; }
else
    skip "systemd-analyze is not installed: the unit is not verified"
fi
meson introspect --installed "$QVM_BUILD" 2>/dev/null | python3 -c '
import json, sys
inst = json.load(sys.stdin)
assert any(k.endswith("contrib/systemd/qvm-autostart.service") and v.endswith("/lib/systemd/system/qvm-autostart.service") for k, v in inst.items()), inst' &&
    ok "meson installs the unit into PREFIX/lib/systemd/system" || not_ok "meson install rule for the unit"

# --- a ZFS dataset disk (zfs-fuse) ---------------------------------------------------------
if make_zfs_pool tank 512; then
    ok "zfs pool 'tank' (zfs-fuse or kernel ZFS)"
    run_qvm image import --pool tank tiny "$raw"
    vmfile "$T/z.yaml" zeta
    run_qvm up --no-start --pool tank "$T/z.yaml"
    Z=$ZFS_MNT/vms/zeta
    [ "$rc" = 0 ] || { not_ok "setup: zfs VM"; echo "$err" | diag; }
    run_qvm resize zeta disk0 0.5G
    [ "$rc" = 0 ] && [ "$(stat -c %s "$Z/disk0/disk.raw")" = $((512 * MIB)) ] &&
        [ "$(vmjson "$Z" 'd["disk"]["size"]')" = $((512 * MIB)) ] && grep -q "^  size: 0.5$" "$Z/vm.yaml" &&
        ok "zfs pool (dataset): resize grows the clone's disk.raw to 512 MiB" || { not_ok "zfs resize"; echo "$err" | diag; }
    run_qvm edit zeta --set vcpus=2 --set autostart=on
    [ "$rc" = 0 ] && [ "$(vmjson "$Z" 'd["vcpus"], d["autostart"]')" = "(2, True)" ] &&
        ok "zfs pool: edit --set vcpus=2 --set autostart=on" || { not_ok "zfs edit"; echo "$err" | diag; }
    run_qvm rm zeta
fi

run_qvm doctor
[ "$rc" = 0 ] && grep -q "No problems found" <<<"$out" && ok "doctor finds nothing left behind" || { not_ok "doctor"; echo "$out$err" | diag; }
done_testing
