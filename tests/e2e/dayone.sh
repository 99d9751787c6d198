#!/usr/bin/env bash
# dayone.sh - the day-one control verbs against ONE real cloud-image boot on
# a dir pool: qvm wait (its exit status: cloud-init failed, then, after a
# restart, succeeded), qvm exec passing stdout, stderr and the exit status
# through, qvm info showing the guest's address from its agent, qvm ssh
# logging in with a key the qvm file installed (a throwaway key, HOME
# pointed at the test's directory), pause/resume with the guest answering
# again afterwards, and restart (ACPI power-off, start) applying an edited
# definition inside the guest.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
py() { python3 -c "$@"; }

img=$(cloud_image)
if [ -z "$img" ]; then
    skip "no cloud image: tests/image/build-cloud-image.sh failed (needs root, mmdebstrap and a Debian mirror): $(tail -1 "$T/image-build.log" 2>/dev/null)"
    done_testing; exit
fi
if ! command -v qemu-system-x86_64 >/dev/null; then
    skip "qemu-system-x86_64 is not installed"; done_testing; exit
fi
if ! command -v ssh >/dev/null || ! command -v ssh-keygen >/dev/null; then
    skip "the OpenSSH client (ssh, ssh-keygen) is not installed"; done_testing; exit
fi

run_qvm image import debian12 "$img"
[ "$rc" = 0 ] && ok "image import of the cloud image" || { not_ok "image import"; echo "$err" | diag; }
before=$(state_snapshot)

mkdir -p "$T/home/.ssh"
ssh-keygen -q -t ed25519 -N '' -C dayone-test -f "$T/home/.ssh/id_ed25519"
cat >"$T/dayone.yaml" <<EOF
qvm: vm
name: dayone
memory: 1024
vcpus: 1
os-variant: debian12
graphics: none
network: user
disk:
  size: 4
  zvol:
    base: debian12
---
qvm: user-data
hostname: dayone
users:
  - default
  - name: tester
    shell: /bin/bash
    lock_passwd: true
    ssh_authorized_keys:
      - $(cat "$T/home/.ssh/id_ed25519.pub")
# Fails on purpose, once (runcmd is per instance): the first qvm wait must
# say cloud-init failed, the one after restart that it succeeded.
runcmd:
  - [sh, -c, "echo dayone-runcmd-fails; exit 7"]
---
qvm: meta-data
instance-id: dayone-1
EOF
rundir=$QVM_ROOT/run/qvm/vms/dayone
bundle=$QVM_ROOT/var/lib/qvm/pools/default/vms/dayone

run_qvm up "$T/dayone.yaml"
[ "$rc" = 0 ] && ok "qvm up dayone" || { not_ok "up"; echo "$out$err" | diag; }
run_qvm wait dayone --timeout 600
[ "$rc" = 1 ] && grep -qE "^Error waiting for guest: cloud-init in VM 'dayone' reported errors .*status: error" <<<"$err" &&
    ok "qvm wait: cloud-init finished with the failing runcmd: exit 1, its status in the error" ||
    { not_ok "qvm wait (failing runcmd)"; echo "rc=$rc $out$err" | diag; }
run_qvm exec dayone -- cloud-init status
[ "$rc" != 0 ] && grep -q "status: error" <<<"$out" && ok "... as cloud-init itself says in the guest" || { not_ok "cloud-init status"; echo "rc=$rc $out" | diag; }

# --- exec: stdout, stderr and exit status, each on its own channel -------------------
run_qvm exec dayone -- sh -c 'echo to-stdout; echo to-stderr >&2; exit 3'
[ "$rc" = 3 ] && [ "$out" = "to-stdout" ] && [ "$err" = "to-stderr" ] &&
    ok "exec: stdout, stderr and exit status 3 passed through" || { not_ok "exec"; echo "rc=$rc out=$out err=$err" | diag; }
run_qvm exec dayone -- sh -c 'kill -TERM $$'
[ "$rc" = 143 ] && ok "exec: a command ended by SIGTERM gives 128+15" || not_ok "exec signal status ($rc)"
run_qvm exec dayone -- /nonexistent
[ "$rc" = 1 ] && grep -q "^Error running command in guest: " <<<"$err" && ok "exec of a missing program: qvm's error, exit 1" ||
    { not_ok "exec missing"; echo "rc=$rc $err" | diag; }

# --- info: the guest's address from its agent --------------------------------------------
run_qvm info dayone
grep -qE "^address: *10\.0\.2\.15/24 \(eth0\)$" <<<"$out" && grep -qx "state: *running" <<<"$out" &&
    ok "info shows the guest's address 10.0.2.15/24 (eth0) from its agent" || { not_ok "info address"; echo "$out$err" | diag; }
run_qvm info --json dayone
guest_ip=$("$QVM" exec dayone -- ip -4 -o addr show dev eth0 | awk '{print $4}')
python3 - "$T/out" "$guest_ip" <<'PY' && ok "info --json: guest_addresses match 'ip addr' in the guest ($guest_ip)" || { not_ok "info json addresses"; cat "$T/out" | diag; }
import json, sys
v = json.load(open(sys.argv[1]))
a = [f'{x["address"]}/{x["prefix"]}' for x in v["network"]["guest_addresses"] if x["family"] == "ipv4"]
assert a == [sys.argv[2]], (a, sys.argv[2])
assert v["network"]["guest_agent_note"] is None and v["running_vcpus"] == 1
PY

# --- ssh with the key the qvm file installed ---------------------------------------------
sshq() { HOME=$T/home run_qvm ssh dayone -- -n -o BatchMode=yes -o ConnectTimeout=30 "$@"; }
sshq 'echo "$(whoami)@$(hostname)"'
[ "$rc" = 0 ] && [ "$out" = "tester@dayone" ] && ok "qvm ssh logs in as tester with the throwaway key" ||
    { not_ok "qvm ssh"; echo "rc=$rc out=$out err=$err" | diag; HOME=$T/home "$QVM" ssh --print dayone | diag; }
sshq 'exit 5'
[ "$rc" = 5 ] && ok "qvm ssh passes the remote exit status through" || not_ok "ssh exit status ($rc)"
[ -s "$rundir/known_hosts" ] && [ ! -e "$T/home/.ssh/known_hosts" ] &&
    ok "the VM's host key went to its runtime directory, not ~/.ssh/known_hosts" || not_ok "known_hosts placement"

# --- pause / resume ----------------------------------------------------------------------
boot_id=$("$QVM" exec dayone -- cat /proc/sys/kernel/random/boot_id)
run_qvm pause dayone
grep -qx "state: *paused" <<<"$("$QVM" info dayone)" && [ "$rc" = 0 ] && ok "pause: info says paused" || not_ok "pause"
timeout 8 "$QVM" exec dayone -- true >/dev/null 2>&1; prc=$?
timeout 8 bash -c "exec 3<>/dev/tcp/127.0.0.1/$(py 'import json,sys; print(json.load(sys.stdin)["network"]["forwards"][0]["host_port"])' < <("$QVM" info --json dayone)); read -t 5 line <&3; [ -n \"\$line\" ]"; brc=$?
[ "$prc" = 1 ] && [ "$brc" != 0 ] && ok "paused: the agent is refused and sshd sends no banner" || not_ok "paused guest still answered (exec $prc, banner $brc)"
run_qvm resume dayone
run_qvm exec dayone -- cat /proc/sys/kernel/random/boot_id
[ "$rc" = 0 ] && [ "$out" = "$boot_id" ] && ok "resume: the same boot answers through the agent again" || { not_ok "after resume"; echo "$out$err" | diag; }
sshq true
[ "$rc" = 0 ] && ok "resume: and over ssh" || { not_ok "ssh after resume"; echo "$err" | diag; }

# --- restart: ACPI power-off, start, an edited definition applies -------------------------
mem_before=$("$QVM" exec dayone -- awk '/MemTotal/ {print $2}' /proc/meminfo)
py 'import json,sys; p=sys.argv[1]; d=json.load(open(p)); d["memory_mib"]=768; json.dump(d,open(p,"w"))' "$bundle/vm.json"
run_qvm restart dayone --timeout 120
[ "$rc" = 0 ] && ! grep -q "did not power off" <<<"$out" && ok "restart: the guest powered off on the ACPI request" ||
    { not_ok "restart"; echo "$out$err" | diag; }
run_qvm wait dayone --timeout 300
[ "$rc" = 0 ] && grep -q "status: done" <<<"$out" && ok "qvm wait after restart: cloud-init succeeded (runcmd is once per instance): exit 0" ||
    { not_ok "qvm wait after restart"; echo "rc=$rc $out$err" | diag; }
run_qvm exec dayone -- cat /proc/sys/kernel/random/boot_id
[ "$rc" = 0 ] && [ -n "$out" ] && [ "$out" != "$boot_id" ] && ok "restart: a new boot of the guest" || not_ok "restart boot id ($out)"
mem_after=$("$QVM" exec dayone -- awk '/MemTotal/ {print $2}' /proc/meminfo)
[ -n "$mem_after" ] && [ -n "$mem_before" ] && [ "$mem_after" -lt $((mem_before - 200000)) ] &&
    ok "restart applied the edited memory: MemTotal $mem_before -> $mem_after KiB" || not_ok "memory after restart ($mem_before -> $mem_after)"

run_qvm stop dayone --timeout 120
[ "$rc" = 0 ] && [ -z "$(qemu_procs)" ] && ok "stop" || { not_ok "stop"; echo "$out$err" | diag; }
run_qvm rm dayone
after=$(state_snapshot)
[ "$rc" = 0 ] && [ "$before" = "$after" ] && ok "rm: state exactly as before up" || { not_ok "rm"; diff <(echo "$before") <(echo "$after") | diag; }
done_testing
