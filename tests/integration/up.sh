#!/usr/bin/env bash
# qvm up and the VM life cycle against the real dir pool, qemu-img and QEMU
# (TCG; the guest need not boot for these): every error state of seed 000
# 7.2.2 and 7.2.3, dry-run, --no-start, a real QEMU start failure, an
# injected failure after every journaled step and a SIGKILL at every step,
# each leaving the state tree and the process table exactly as before; then
# start, ls, stop, rm; and two racing `qvm up` of one name.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
TF="importing qvm file"
TP="provisioning virtual machine"

raw=$T/small.raw
truncate -s 64M "$raw"
head -c 1M /dev/urandom | dd of="$raw" conv=notrunc status=none
"$QVM" image import tiny "$raw" >/dev/null 2>&1 || not_ok "setup: image import"

vmfile() {  # vmfile PATH NAME [extra vm lines...]
    local path=$1 name=$2; shift 2
    {
        echo "qvm: vm"; echo "name: $name"; echo "memory: 128"; echo "vcpus: 1"
        echo "graphics: none"; echo "network: user"
        echo "disk:"; echo "  bus: virtio"; echo "  zvol:"; echo "    base: tiny"
        for l in "$@"; do echo "$l"; done
        echo "---"; echo "qvm: user-data"; echo "runcmd:"; echo "  - [true]"
        echo "---"; echo "qvm: meta-data"; echo "instance-id: $name-1"
    } >"$path"
}
vmfile "$T/a.yaml" alpha
before=$(state_snapshot)
same_state() {
    local now; now=$(state_snapshot)
    if [ "$before" = "$now" ] && [ -z "$(qemu_procs)" ]; then ok "$1"; else
        not_ok "$1"; diff <(echo "$before") <(echo "$now") | diag; qemu_procs | diag; fi
}

# --- seed 7.2.2: errors importing the qvm file ------------------------------
expect_error "qvm file not found" "$TF" "cannot open $T/none.yaml: No such file" up "$T/none.yaml"
printf 'qvm: vm\nname: x\ndisk:\n  zvol:\n    base: tiny\n---\nqvm: meta-data\n' >"$T/nouser.yaml"
expect_error "missing user-data document is named" "$TF" "$T/nouser.yaml.*user-data" up "$T/nouser.yaml"
printf 'qvm: user-data\n---\nqvm: meta-data\n' >"$T/novm.yaml"
expect_error "missing vm document is named" "$TF" "$T/novm.yaml.*vm" up "$T/novm.yaml"
printf 'qvm: vm\nname: x\n---\nqvm: user-data\n---\nqvm: meta-data\n' >"$T/nodisk.yaml"
expect_error "vm without a disk mapping" "$TF" "$T/nodisk.yaml:[0-9]+:[0-9]+: .*disk" up "$T/nodisk.yaml"
printf 'qvm: vm\nname: x\ndisk:\n  bus: virtio\n---\nqvm: user-data\n---\nqvm: meta-data\n' >"$T/nozvol.yaml"
expect_error "disk without a zvol mapping" "$TF" "$T/nozvol.yaml:[0-9]+:[0-9]+: .*zvol" up "$T/nozvol.yaml"
printf 'qvm: vm\nname: x\ndisk:\n  zvol:\n    name: d\n---\nqvm: user-data\n---\nqvm: meta-data\n' >"$T/nobase.yaml"
expect_error "zvol without a base" "$TF" "$T/nobase.yaml:[0-9]+:[0-9]+: .*base" up "$T/nobase.yaml"
vmfile "$T/rng.yaml" beta "rng: /dev/urandom"
expect_error "an unsupported virt-install option is named" "$TF" "$T/rng.yaml:[0-9]+:[0-9]+: .*'rng'" up "$T/rng.yaml"
printf 'qvm: vm\nname: [unclosed\n' >"$T/syntax.yaml"
expect_error "a YAML syntax error carries line and column" "$TF" "$T/syntax.yaml:[0-9]+:[0-9]+" up "$T/syntax.yaml"
same_state "file errors change nothing"

# --- seed 7.2.3: errors provisioning -----------------------------------------
sed 's/base: tiny/base: nosuch/' "$T/a.yaml" >"$T/noimg.yaml"
expect_error "a missing image is named" "$TP" "no image named 'nosuch'" up "$T/noimg.yaml"
sed 's/base: tiny/base: tiny@v9/' "$T/a.yaml" >"$T/nover.yaml"
expect_error "a missing version is named" "$TP" "image 'tiny' has no version v9" up "$T/nover.yaml"
vmfile "$T/small.yaml" gamma "  size: 0.01"
sed -i 's/^  size: 0.01$//' "$T/small.yaml"
same_state "provisioning validation errors change nothing"

run_qvm up --dry-run "$T/a.yaml"
[ "$rc" = 0 ] && grep -q "Dry run" <<<"$out" && grep -q "start QEMU: qemu-system-x86_64" <<<"$out" &&
    ok "--dry-run validates and prints the plan and the QEMU command line" || { not_ok "dry-run"; echo "$out$err" | diag; }
same_state "--dry-run changes nothing"

# A real QEMU start failure: an obstacle where QEMU must bind its console socket.
mkdir -p "$QVM_ROOT/run/qvm/vms/alpha/console.sock"
run_qvm up "$T/a.yaml"
[ "$rc" = 1 ] && grep -qE "^Error $TP: QEMU could not start VM 'alpha'" <<<"$err" &&
    ok "QEMU failing to start is reported with QEMU's reason" || { not_ok "qemu start failure"; echo "$err" | diag; }
rm -rf "$QVM_ROOT/run/qvm/vms/alpha"
same_state "QEMU start failure: everything rolled back"

# --- every journaled step ----------------------------------------------------
QVM_FAULT_TRACE=$T/steps "$QVM" up "$T/a.yaml" >/dev/null 2>&1
"$QVM" rm alpha >/dev/null 2>&1
steps=$(cat "$T/steps")
[ "$(echo "$steps" | wc -l)" -ge 5 ] && ok "up reports its journaled steps: $(echo $steps)" || not_ok "step trace: $steps"
same_state "up then rm leaves the state as before"
for step in $steps; do
    QVM_FAULT=$step run_qvm up "$T/a.yaml"
    [ "$rc" = 1 ] && grep -q "^Error $TP: injected failure after step '$step'" <<<"$err" &&
        ok "failure after '$step': exit 1, seed error format" || { not_ok "failure after $step"; echo "$err" | diag; }
    same_state "failure after '$step': storage and processes as before"
    (QVM_FAULT=kill:$step exec "$QVM" up "$T/a.yaml" >/dev/null 2>&1)
    [ $? = 137 ] && ok "SIGKILL at '$step'" || not_ok "SIGKILL at '$step' did not kill"
    run_qvm ls
    grep -q "'up alpha' was interrupted; rolled it back" <<<"$err" &&
        ok "next command rolls back the up killed at '$step'" || { not_ok "no rollback after kill at $step"; echo "$err" | diag; }
    same_state "SIGKILL at '$step': storage and processes as before"
done

# --- life cycle ----------------------------------------------------------------
run_qvm up --no-start "$T/a.yaml"
[ "$rc" = 0 ] && [ -z "$(qemu_procs)" ] && ok "--no-start provisions without starting QEMU" || { not_ok "--no-start"; echo "$err" | diag; }
bundle=$QVM_ROOT/var/lib/qvm/pools/default/vms/alpha
[ -f "$bundle/vm.json" ] && [ -f "$bundle/vm.yaml" ] && [ -f "$bundle/seed.iso" ] && [ -f "$bundle/disk0.qcow2" ] &&
    ok "the bundle holds vm.json, the qvm file, the seed and the disk" || { not_ok "bundle contents"; ls -la "$bundle" | diag; }
[ "$(blkid -o value -s LABEL "$bundle/seed.iso")" = cidata ] && ok "the seed is an ISO labelled cidata" || not_ok "seed label"
backing=$(qemu-img info --output=json "$bundle/disk0.qcow2" | python3 -c 'import json,sys; print(json.load(sys.stdin).get("backing-filename",""))')
[ "$backing" = "$QVM_ROOT/var/lib/qvm/pools/default/images/tiny/v1.raw" ] && ok "the disk is a CoW overlay of tiny@v1" || not_ok "backing file: $backing"
expect_error "a second up of the same name is refused" "$TP" "VM 'alpha' already exists" up "$T/a.yaml"
run_qvm start alpha
[ "$rc" = 0 ] && [ -n "$(qemu_procs)" ] && ok "qvm start runs QEMU" || { not_ok "start"; echo "$err" | diag; }
run_qvm ls --json
python3 - "$T/out" <<'PY' && ok "ls --json: running, pid, ssh port, image version" || { not_ok "ls --json"; cat "$T/out" | diag; }
import json, sys
v = [x for x in json.load(open(sys.argv[1])) if x["name"] == "alpha"][0]
assert v["state"] == "running" and v["pid"] > 0 and 1024 <= v["ssh_port"] <= 65535
assert v["image"] == "tiny" and v["version"] == "v1" and v["memory_mib"] == 128
PY
run_qvm stop --force alpha
[ "$rc" = 0 ] && [ -z "$(qemu_procs)" ] && ok "stop --force ends QEMU" || { not_ok "stop --force"; echo "$err" | diag; }
run_qvm start alpha
pid=$(pgrep -f -- "-pidfile $QVM_ROOT/" | head -1)
kill -9 "$pid"; sleep 0.3
run_qvm ls --json
python3 -c 'import json,sys; assert [x for x in json.load(open(sys.argv[1])) if x["name"]=="alpha"][0]["state"]=="stopped"' "$T/out" && ok "a QEMU killed under a VM shows as stopped" || not_ok "dead QEMU not detected"
run_qvm doctor
[ "$rc" = 1 ] && grep -q "stale pid file" <<<"$out" && ok "doctor finds the stale pid file" || { not_ok "doctor stale pid"; echo "$out" | diag; }
run_qvm doctor --repair
run_qvm doctor
[ "$rc" = 0 ] && ok "doctor --repair fixes it" || { not_ok "doctor repair"; echo "$out" | diag; }
run_qvm start alpha
run_qvm rm alpha
[ "$rc" = 0 ] && ok "rm of a running VM" || { not_ok "rm running"; echo "$err" | diag; }
same_state "after rm: storage and processes exactly as before"
expect_error "rm of a missing VM" "removing virtual machine" "no VM named 'alpha'" rm alpha

# --- two racing ups of one name: exactly one wins ----------------------------
"$QVM" up --no-start "$T/a.yaml" >"$T/r1" 2>&1 & p1=$!
"$QVM" up --no-start "$T/a.yaml" >"$T/r2" 2>&1 & p2=$!
wait $p1; r1=$?; wait $p2; r2=$?
[ $((r1 + r2)) = 1 ] && ok "two racing ups of one name: exactly one wins" || { not_ok "race: $r1 $r2"; cat "$T/r1" "$T/r2" | diag; }
grep -qhE "^Error $TP: .*(busy|already exists)" "$T/r1" "$T/r2" && ok "the loser fails cleanly with the reason" || not_ok "race loser message"
"$QVM" rm alpha >/dev/null 2>&1
same_state "after the race and rm: as before"

# --- usage errors (seed 7.2.4) ------------------------------------------------
run_qvm
[ "$rc" = 1 ] && grep -q "Usage: qvm" <<<"$err" && ok "no command: usage on stderr, exit 1" || not_ok "no command"
run_qvm up
[ "$rc" = 1 ] && grep -q "Usage: qvm up" <<<"$err" && ok "qvm up without FILE: usage on stderr" || not_ok "up usage"
run_qvm up a b
[ "$rc" = 1 ] && grep -q "too many arguments" <<<"$err" && ok "too many arguments: usage on stderr" || not_ok "too many"
run_qvm frobnicate
[ "$rc" = 1 ] && grep -q "unknown command 'frobnicate'" <<<"$err" && ok "unknown command" || not_ok "unknown command"
run_qvm up --help
[ "$rc" = 0 ] && grep -q "Usage: qvm up" <<<"$out" && grep -q "Examples:" <<<"$out" && ok "up --help prints the manual" || not_ok "help"
# Commands with only the common options share one parser: each names its own misuse.
for args in "pool ls extra|qvm pool: ls takes no arguments" "net ls extra|qvm net: net ls takes no arguments" \
            "info --frob x|qvm info: unknown option" "info|qvm info: expected one VM name" \
            "ls --json extra|Usage: qvm ls" "resize a b|qvm resize: expected a VM name"; do
    run_qvm ${args%%|*}
    [ "$rc" = 1 ] && grep -q "${args#*|}" <<<"$err" && [ -z "$out" ] && ok "qvm ${args%%|*}: usage error, exit 1" ||
        { not_ok "qvm ${args%%|*}"; echo "$err" | diag; }
done
expect_error "an invalid VM name is refused at the edge" "stopping virtual machine" "invalid VM name '../etc'" stop ../etc
done_testing
