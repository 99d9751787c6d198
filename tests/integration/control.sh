#!/usr/bin/env bash
# control.sh - the control verbs against a real QEMU (TCG) on the real dir
# pool, with a small disk the guest need not boot: info (human and --json),
# pause/resume and the states ls and info show, stop's ACPI timeout and
# --force, restart applying an edited definition, exclusive monitor access
# (a second command waits for the first, or fails naming it), a dead QEMU
# reported at once (killed, or alive with a refusing monitor socket), and
# the ssh command line qvm ssh builds from the qvm file's users and keys.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT

if ! command -v qemu-system-x86_64 >/dev/null; then
    skip "qemu-system-x86_64 is not installed"; done_testing; exit
fi
py() { python3 -c "$@"; }
ms() { echo $(( $(date +%s%N) / 1000000 )); }

raw=$T/small.raw
truncate -s 64M "$raw"
"$QVM" image import tiny "$raw" >/dev/null 2>&1 || not_ok "setup: image import"
mkdir -p "$T/home/.ssh"
ssh-keygen -q -t ed25519 -N '' -C control-test -f "$T/home/.ssh/id_ed25519"
pub=$(cat "$T/home/.ssh/id_ed25519.pub")
ssh-keygen -q -t ed25519 -N '' -C other -f "$T/other"
cat >"$T/a.yaml" <<EOF
qvm: vm
name: alpha
memory: 128
vcpus: 1
graphics: none
network: user
os-variant: debian12
disk:
  zvol:
    base: tiny
---
qvm: user-data
users:
  - default
  - name: tester
    ssh_authorized_keys: ["$pub"]
---
qvm: meta-data
instance-id: alpha-1
EOF
before=$(state_snapshot)
bundle=$QVM_ROOT/var/lib/qvm/pools/default/vms/alpha
rundir=$QVM_ROOT/run/qvm/vms/alpha

run_qvm up "$T/a.yaml"
[ "$rc" = 0 ] && ok "up alpha (QEMU running, nothing to boot)" || { not_ok "up"; echo "$err" | diag; }
qpid=$(cat "$rundir/qemu.pid" 2>/dev/null)

# --- info ----------------------------------------------------------------------
t0=$(ms); run_qvm info alpha; t1=$(ms)
if [ "$rc" = 0 ] && grep -qx "state: *running" <<<"$out" && grep -qx "pid: *$qpid" <<<"$out" &&
   grep -qx "memory: *128M" <<<"$out" && grep -qx "vcpus: *1" <<<"$out"; then
    ok "info: state running, QEMU's pid, memory and vCPUs"
else not_ok "info"; echo "$out$err" | diag; fi
py 'import re,sys
cols={re.match(r"^[a-z ]+: +", l).end() for l in sys.stdin.read().splitlines()}
assert len(cols)==1, cols' <<<"$out" && ok "info: one aligned key: value per line" || { not_ok "info alignment"; echo "$out" | diag; }
[ $((t1 - t0)) -lt 8000 ] && grep -q "^address: *- (the guest agent did not answer within 2 s)" <<<"$out" &&
    ok "info: no guest agent here: said so after ~2 s ($((t1 - t0)) ms), not waited on" ||
    { not_ok "info agent timeout ($((t1 - t0)) ms)"; echo "$out" | diag; }
if [ -e /sys/module/kvm_intel ] || [ -e /sys/module/kvm_amd ]; then want_accel=kvm; else want_accel=tcg; fi
grep -qx "accelerator: *$want_accel" <<<"$out" && ok "info: accelerator $want_accel, as QEMU reports it" ||
    { not_ok "info accelerator"; echo "$out" | diag; }

run_qvm info --json alpha
port=$(py 'import json,sys; print(json.load(open(sys.argv[1]))["network"]["forwards"][0]["host_port"])' "$T/out" 2>/dev/null)
python3 - "$T/out" "$qpid" "$want_accel" <<'PY' && ok "info --json: state, pid, resources, uptime, created, image, no agent addresses" || { not_ok "info --json"; cat "$T/out" | diag; }
import json, sys
v = json.load(open(sys.argv[1]))
assert v["name"] == "alpha" and v["state"] == "running" and v["pid"] == int(sys.argv[2]), v
assert v["accelerator"] == sys.argv[3] and v["exited"] is False
assert v["memory_mib"] == 128 and v["running_memory_mib"] == 128
assert v["vcpus"] == 1 and v["running_vcpus"] == 1
assert v["uptime"] >= 0 and v["created"].endswith("Z") and v["image"] == "tiny" and v["version"] == "v1"
assert v["network"]["guest_addresses"] is None and "did not answer" in v["network"]["guest_agent_note"]
assert v["network"]["mac"].startswith("52:54:00:")
PY
# Sizes checked against the files themselves, not against qvm.
python3 - "$T/out" <<'PY' && ok "info --json: each disk's path, format, virtual size and host allocation match qemu-img and stat" || { not_ok "info disks"; cat "$T/out" | diag; }
import json, os, subprocess, sys
v = json.load(open(sys.argv[1]))
d, seed = v["disks"]
assert d["name"] == "disk0" and not d["read_only"] and os.path.exists(d["path"])
qi = json.loads(subprocess.check_output(["qemu-img", "info", "-U", "--output=json", d["path"]]))
assert d["format"] == qi["format"] and d["virtual_size"] == 64 << 20 == qi["virtual-size"]
assert d["allocated"] == os.stat(d["path"]).st_blocks * 512, (d, os.stat(d["path"]).st_blocks)
assert seed["name"] == "seed" and seed["read_only"] and seed["format"] == "raw"
assert seed["virtual_size"] == os.path.getsize(seed["path"])
PY
run_qvm ls --json
lsport=$(py 'import json,sys; print([x for x in json.load(open(sys.argv[1])) if x["name"]=="alpha"][0]["ssh_port"])' "$T/out")
[ -n "$port" ] && [ "$port" = "$lsport" ] && grep -qx "forward: *tcp 127.0.0.1:$port -> guest port 22 (ssh)" <<<"$("$QVM" info alpha)" &&
    ss -ltn 2>/dev/null | grep -q "127.0.0.1:$port " &&
    ok "info: the forwarded SSH port $port (as ls says, and QEMU listens on it)" || not_ok "forwarded port ($port vs $lsport)"

# --- pause / resume --------------------------------------------------------------
state() { "$QVM" ls --json | py 'import json,sys; print([x["state"] for x in json.load(sys.stdin) if x["name"]=="alpha"][0])'; }
run_qvm pause alpha
[ "$rc" = 0 ] && grep -q "VM 'alpha' is paused" <<<"$out" && [ "$(state)" = paused ] &&
    grep -qx "state: *paused" <<<"$("$QVM" info alpha)" &&
    ok "pause: QEMU reports paused, in ls and info" || { not_ok "pause"; echo "$out$err" | diag; }
# Asked independently of qvm, straight on QEMU's monitor socket.
qmp_status() {
    py 'import json,socket,sys
s=socket.socket(socket.AF_UNIX); s.connect(sys.argv[1]); f=s.makefile("rw")
f.readline(); f.write("{\"execute\":\"qmp_capabilities\"}\n"); f.flush(); f.readline()
f.write("{\"execute\":\"query-status\"}\n"); f.flush()
while True:
    m=json.loads(f.readline())
    if "return" in m: print(m["return"]["status"]); break' "$rundir/qmp.sock"
}
[ "$(qmp_status)" = paused ] && ok "QEMU's own query-status says paused" || not_ok "QMP status after pause: $(qmp_status)"
run_qvm pause alpha
[ "$rc" = 0 ] && grep -q "already paused" <<<"$out" && ok "pause of a paused VM is not an error" || not_ok "pause twice"
t0=$(ms); expect_error "exec refuses a paused VM at once" "running command in guest" \
    "VM 'alpha' is paused.*qvm resume alpha" exec alpha -- true
[ $(( $(ms) - t0 )) -lt 3000 ] && ok "... without waiting for the agent" || not_ok "exec on paused waited"
run_qvm resume alpha
[ "$rc" = 0 ] && [ "$(state)" = running ] && [ "$(qmp_status)" = running ] && ok "resume: running again (ls and QEMU's query-status)" || { not_ok "resume"; echo "$err" | diag; }
run_qvm resume alpha
[ "$rc" = 0 ] && grep -q "not paused" <<<"$out" && ok "resume of a running VM is not an error" || not_ok "resume twice"

# --- stop: ACPI timeout, --force; exclusive access meanwhile ----------------------
# Nothing in this guest answers the power button: stop waits its timeout.
t0=$(ms)
"$QVM" stop alpha --timeout 4 >"$T/stop.out" 2>&1 &
spid=$!
sleep 1
t1=$(ms); QVM_LOCK_TIMEOUT=1 run_qvm pause alpha; t2=$(ms)
[ "$rc" = 1 ] && grep -qE "^Error pausing virtual machine: VM 'alpha' is busy: another qvm command \(pid $spid: .*qvm stop alpha --timeout 4\)" <<<"$err" &&
    [ $((t2 - t1)) -lt 3000 ] &&
    ok "a second command fails after QVM_LOCK_TIMEOUT=1, naming the holder (pid $spid: qvm stop alpha)" ||
    { not_ok "lock holder named"; echo "$err ($((t2 - t1)) ms)" | diag; }
t1=$(ms); run_qvm ls --json; t2=$(ms)
py 'import json,sys; v=[x for x in json.load(open(sys.argv[1])) if x["name"]=="alpha"][0]; assert v["busy"] and v["state"]=="running"' "$T/out" &&
    [ $((t2 - t1)) -lt 3000 ] && ok "ls does not wait for a busy VM: running, busy ($((t2 - t1)) ms)" || { not_ok "ls busy"; cat "$T/out" | diag; }
run_qvm info alpha       # waits for stop (default lock timeout 30 s), then sees its result
t3=$(ms)
wait $spid; src=$?
[ "$src" = 0 ] && grep -q "did not power off in 4 s; stopping it" "$T/stop.out" && [ $((t3 - t0)) -ge 4000 ] &&
    ok "stop --timeout 4: ACPI, waited 4 s, then stopped it" || { not_ok "stop timeout"; diag <"$T/stop.out"; }
[ "$rc" = 0 ] && grep -qx "state: *stopped" <<<"$out" &&
    ok "info waited for the stop to finish and never talked to QEMU in between" || { not_ok "info during stop"; echo "$out$err" | diag; }
[ -z "$(qemu_procs)" ] && [ ! -e "$rundir/qemu.pid" ] && ok "no QEMU and no pid file after stop" || not_ok "after stop"
run_qvm start alpha
t0=$(ms); run_qvm stop --force alpha; t1=$(ms)
[ "$rc" = 0 ] && ! grep -q "ACPI" <<<"$out" && [ -z "$(qemu_procs)" ] && [ $((t1 - t0)) -lt 3000 ] &&
    ok "stop --force: no ACPI wait ($((t1 - t0)) ms)" || { not_ok "stop --force"; echo "$out$err" | diag; }
run_qvm stop alpha
[ "$rc" = 0 ] && grep -q "VM 'alpha' is not running" <<<"$out" && ok "stop of a stopped VM is not an error" || not_ok "stop stopped"
run_qvm stop --timeout abc alpha
[ "$rc" = 1 ] && grep -q "timeout takes seconds" <<<"$err" && ok "stop --timeout abc: usage error" || not_ok "timeout usage"
run_qvm stop --help
grep -q "default 60" <<<"$out" && grep -q "QVM_LOCK_TIMEOUT" <<<"$out" && ok "stop --help gives the default timeout and the lock wait" || not_ok "stop help"

# --- a dead QEMU is reported at once ------------------------------------------------
run_qvm start alpha
qpid=$(cat "$rundir/qemu.pid")
kill -9 "$qpid"; sleep 0.3
for verb in "pause alpha" "resume alpha" "exec alpha -- true" "wait --timeout 60 alpha"; do
    t0=$(ms); run_qvm $verb; t1=$(ms)
    [ "$rc" = 1 ] && grep -q "QEMU of VM 'alpha' is not running (exited)" <<<"$err" && [ $((t1 - t0)) -lt 2000 ] &&
        ok "QEMU killed: '${verb%% *}' says so at once ($((t1 - t0)) ms)" || { not_ok "dead QEMU: $verb"; echo "$err ($((t1 - t0)) ms)" | diag; }
done
run_qvm info --json alpha
py 'import json,sys; v=json.load(open(sys.argv[1])); assert v["state"]=="stopped" and v["exited"] and v["pid"] is None' "$T/out" &&
    ok "info: stopped, exited (a pid file was left)" || { not_ok "info after kill"; cat "$T/out" | diag; }
run_qvm stop alpha
[ "$rc" = 0 ] && grep -q "its QEMU had exited" <<<"$out" && [ ! -e "$rundir/qemu.pid" ] &&
    ok "stop cleans up after a QEMU that died" || { not_ok "stop after kill"; echo "$out$err" | diag; }

# QEMU dies in the middle of a conversation: stop is waiting for the ACPI
# power-off on its monitor connection.
run_qvm start alpha
qpid=$(cat "$rundir/qemu.pid")
"$QVM" stop alpha --timeout 60 >"$T/stop.out" 2>&1 & spid=$!
sleep 1.5; t0=$(ms); kill -9 "$qpid"; wait $spid; src=$?; t1=$(ms)
[ "$src" = 0 ] && [ $((t1 - t0)) -lt 3000 ] && ok "QEMU killed during stop's ACPI wait: stop ends at once ($((t1 - t0)) ms)" ||
    { not_ok "kill during stop"; diag <"$T/stop.out"; }

# Alive but its monitor socket refuses: reported after a short grace, and
# stop falls back to SIGKILL.
run_qvm start alpha
qpid=$(cat "$rundir/qemu.pid")
rm -f "$rundir/qmp.sock"
py 'import socket,sys; s=socket.socket(socket.AF_UNIX); s.bind(sys.argv[1]); s.close()' "$rundir/qmp.sock"
t0=$(ms); run_qvm pause alpha; t1=$(ms)
[ "$rc" = 1 ] && grep -q "QEMU of VM 'alpha' (pid $qpid) refuses connections on its monitor socket" <<<"$err" && [ $((t1 - t0)) -lt 4000 ] &&
    ok "a monitor socket that refuses: reported in $((t1 - t0)) ms" || { not_ok "refusing socket"; echo "$err" | diag; }
run_qvm stop alpha
[ "$rc" = 0 ] && grep -q "refuses connections" <<<"$err" && [ -z "$(qemu_procs)" ] &&
    ok "stop kills a QEMU whose monitor refuses" || { not_ok "stop refusing"; echo "$out$err" | diag; }

# --- restart applies an edited definition --------------------------------------------
run_qvm start alpha
old=$(cat "$rundir/qemu.pid")
# What qvm edit does to the definition (the edit verb is not this test's).
py 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d["memory_mib"]=192; json.dump(d,open(p,"w"))' "$bundle/vm.json"
grep -qx "memory: *128M (192M from the next start)" <<<"$("$QVM" info alpha)" &&
    ok "info: the running memory, and the edited one from the next start" || not_ok "info pending edit"
run_qvm restart alpha --timeout 2
new=$(cat "$rundir/qemu.pid" 2>/dev/null)
run_qvm info --json alpha
[ -n "$new" ] && [ "$new" != "$old" ] && ! kill -0 "$old" 2>/dev/null &&
    py 'import json,sys; v=json.load(open(sys.argv[1])); assert v["state"]=="running" and v["running_memory_mib"]==192' "$T/out" &&
    ok "restart: a new QEMU with the edited memory (192 MiB)" || { not_ok "restart"; cat "$T/out" | diag; }
"$QVM" stop --force alpha >/dev/null 2>&1
run_qvm restart alpha
[ "$rc" = 0 ] && grep -q "not running; starting it" <<<"$out" && [ -n "$(qemu_procs)" ] &&
    ok "restart of a stopped VM starts it" || { not_ok "restart stopped"; echo "$out$err" | diag; }

# --- qvm ssh: the command line from the qvm file -------------------------------------
port=$(py 'import json,sys; print(json.load(sys.stdin)["network"]["forwards"][0]["host_port"])' < <("$QVM" info --json alpha))
HOME=$T/home run_qvm ssh alpha --print -- -o BatchMode=yes true
want="ssh -p $port -l tester -i $T/home/.ssh/id_ed25519 -o IdentitiesOnly=yes -o UserKnownHostsFile=$rundir/known_hosts -o StrictHostKeyChecking=accept-new 127.0.0.1 -o BatchMode=yes true"
[ "$rc" = 0 ] && [ "$out" = "$want" ] && ok "ssh --print: the user whose key matches ~/.ssh/id_ed25519.pub, with that key" ||
    { not_ok "ssh --print"; { echo "got:  $out"; echo "want: $want"; echo "$err"; } | diag; }
HOME=$T/home run_qvm ssh --json --print alpha
py 'import json,sys; v=json.load(open(sys.argv[1])); assert v["user"]=="tester" and v["argv"][0]=="ssh" and v["argv"][-1]=="127.0.0.1"' "$T/out" &&
    ok "ssh --print --json" || { not_ok "ssh json"; cat "$T/out" | diag; }
# The default user: the image's (os-variant debian12), with top-level keys.
cp "$bundle/vm.yaml" "$T/vm.yaml.orig"
sed -i "/^users:/,/^---/{/^---/!d}" "$bundle/vm.yaml"
sed -i "s|^qvm: user-data|qvm: user-data\nssh_authorized_keys: [\"$pub\"]|" "$bundle/vm.yaml"
HOME=$T/home run_qvm ssh --print alpha
grep -q -- "-l debian -i $T/home/.ssh/id_ed25519 " <<<"$out" && ok "ssh: no users list: the image's default user (debian) with the top-level key" ||
    { not_ok "ssh default user"; { cat "$bundle/vm.yaml"; echo "$out$err"; } | diag; }
# No local key matches: ssh's own defaults, and a warning.
cp "$T/vm.yaml.orig" "$bundle/vm.yaml"
mkdir -p "$T/home2/.ssh"; cp "$T/other" "$T/other.pub" "$T/home2/.ssh/"; mv "$T/home2/.ssh/other" "$T/home2/.ssh/id_other"; mv "$T/home2/.ssh/other.pub" "$T/home2/.ssh/id_other.pub"
HOME=$T/home2 run_qvm ssh --print alpha
[ "$rc" = 0 ] && grep -q -- "-l tester -o UserKnownHostsFile" <<<"$out" && grep -q "warning: none of the keys" <<<"$err" &&
    ok "ssh: no matching key: no -i, and a warning" || { not_ok "ssh no key"; echo "$out$err" | diag; }
HOME=$T/home run_qvm ssh --print --user root alpha
grep -q -- "-l root " <<<"$out" && ok "ssh --user overrides the user" || not_ok "ssh --user"
"$QVM" stop --force alpha >/dev/null 2>&1
expect_error "ssh to a stopped VM" "connecting to virtual machine" "VM 'alpha' is not running" ssh alpha

run_qvm rm alpha
[ "$rc" = 0 ] && ok "rm alpha" || { not_ok "rm"; echo "$err" | diag; }
now=$(state_snapshot)
[ "$before" = "$now" ] && [ -z "$(qemu_procs)" ] && ok "state and processes exactly as before" ||
    { not_ok "state after rm"; diff <(echo "$before") <(echo "$now") | diag; }
done_testing
