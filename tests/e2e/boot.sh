#!/usr/bin/env bash
# End to end, against the real thing: build (or reuse) a real Debian 12 cloud
# image, import it, provision examples/hello.yaml on the default pool (dir,
# or QVM_E2E_POOL's) with QEMU, wait for cloud-init, check each effect of the
# user-data inside the guest through the guest agent and the serial log, stop
# the VM with an ACPI power-down, remove it, and check that nothing is left
# behind.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
# QVM_E2E_POOL=btrfs|zfs (tests/e2e/boot-NAME.sh): the same run on a fresh
# pool of that driver (tests/pools/NAME.sh), made the default pool; what is
# in it (NAME_pool_state, where the library has one) joins the before/after
# state checks.
pool_state() { :; }
if [ -n "${QVM_E2E_POOL:-}" ]; then
    source "$top/tests/pools/$QVM_E2E_POOL.sh"
    "make_${QVM_E2E_POOL}_pool" e2e 4096 --default || { done_testing; exit; }
    if declare -F "${QVM_E2E_POOL}_pool_state" >/dev/null; then
        pool_state() { "${QVM_E2E_POOL}_pool_state"; }
    fi
fi

img=$(cloud_image)
if [ -z "$img" ]; then
    skip "no cloud image: tests/image/build-cloud-image.sh failed (needs root, mmdebstrap and a Debian mirror): $(tail -1 "$T/image-build.log" 2>/dev/null)"
    done_testing; exit
fi
if ! command -v qemu-system-x86_64 >/dev/null; then
    skip "qemu-system-x86_64 is not installed"
    done_testing; exit
fi

run_qvm image import debian12 "$img"
if [ "$rc" = 0 ]; then ok "image import of the cloud image"; else not_ok "image import"; echo "$err" | diag; fi
before=$(state_snapshot; pool_state)

start=$(date +%s%N)
run_qvm up "$top/examples/hello.yaml"
t_up=$(( ($(date +%s%N) - start) / 1000000 ))
if [ "$rc" = 0 ] && grep -q "VM 'hello' is running" <<<"$out"; then
    ok "qvm up examples/hello.yaml returns with the VM running (${t_up} ms)"
else
    not_ok "qvm up"; { echo "$out"; echo "$err"; } | diag
fi
if [ -e /sys/module/kvm_intel ] || [ -e /sys/module/kvm_amd ]; then
    skip "this host has hardware KVM: no TCG fallback to announce"
elif [ "$(grep -c "using TCG" <<<"$err")" = 1 ]; then
    ok "the fallback to TCG is announced once on a host without usable KVM"
else
    not_ok "accelerator fallback not announced exactly once"; echo "$err" | diag
fi

run_qvm ls --json
pid=$(python3 -c 'import json,sys; v=[x for x in json.load(sys.stdin) if x["name"]=="hello"][0]; print(v["pid"] or "")' <"$T/out" 2>/dev/null)
port=$(python3 -c 'import json,sys; v=[x for x in json.load(sys.stdin) if x["name"]=="hello"][0]; print(v["ssh_port"] or "")' <"$T/out" 2>/dev/null)
[ -n "$pid" ] && [ -d "/proc/$pid" ] && ok "qvm ls --json shows the running QEMU pid $pid" || not_ok "ls --json pid"
[ -n "$port" ] && ok "qvm ls --json shows the forwarded SSH port $port" || not_ok "ls --json ssh port"

run_qvm wait hello --timeout 600
if [ "$rc" = 0 ] && grep -q "status: done" <<<"$out"; then
    ok "cloud-init finished without errors (qvm wait)"
else
    not_ok "qvm wait"; { echo "$out"; echo "$err"; } | diag
fi

run_qvm exec hello -- hostname
[ "$rc" = 0 ] && [ "$out" = "hello-qvm" ] && ok "user-data set the hostname (hello-qvm)" ||
    { not_ok "hostname"; echo "rc=$rc out=$out err=$err" | diag; }
run_qvm exec hello -- cat /var/lib/qvm-hello/greeting.txt
[ "$out" = "hello from qvm user-data" ] && ok "user-data write_files wrote the greeting" ||
    { not_ok "write_files"; echo "rc=$rc out=$out err=$err" | diag; }
run_qvm exec hello -- uname -r
kernel=$out
run_qvm exec hello -- cat /var/lib/qvm-hello/runcmd.txt
[ -n "$kernel" ] && [ "$out" = "$kernel" ] && ok "user-data runcmd ran (wrote uname -r: $kernel)" ||
    { not_ok "runcmd"; echo "kernel=$kernel out=$out err=$err" | diag; }
run_qvm exec hello -- cat /var/lib/cloud/data/instance-id
[ "$out" = "hello-1" ] && ok "meta-data instance-id reached cloud-init" || not_ok "instance-id ($out)"
run_qvm exec hello -- sh -c 'exit 7'
[ "$rc" = 7 ] && ok "qvm exec passes the guest exit status through" || not_ok "exec exit status ($rc)"

pool_dir=$("$QVM" pool ls --json | python3 -c 'import json,sys; print([p["mountpoint"] for p in json.load(sys.stdin) if p["default"]][0])')
log=$pool_dir/vms/hello/console.log
grep -qE "Cloud-init v\. .* finished" "$log" && ok "serial log shows cloud-init finished" ||
    not_ok "serial console log lacks cloud-init's final message"

# The serial console: a newline makes the guest's getty print its prompt.
(sleep 2; printf '\n'; sleep 3) | timeout 20 "$QVM" console hello >"$T/console.out" 2>&1
grep -qa "hello-qvm login:" "$T/console.out" && ok "qvm console reaches the guest's serial getty" ||
    { not_ok "qvm console"; tail -5 "$T/console.out" | diag; }

run_qvm stop hello --timeout 120
if [ "$rc" = 0 ] && ! grep -q "did not power off" <<<"$out"; then
    ok "qvm stop: the guest powered off on the ACPI request"
else
    not_ok "ACPI stop"; { echo "$out"; echo "$err"; } | diag
fi
[ -z "$(qemu_procs)" ] && ok "no QEMU left after stop" || not_ok "QEMU still running after stop"

run_qvm rm hello
[ "$rc" = 0 ] && ok "qvm rm hello" || { not_ok "rm"; echo "$err" | diag; }
after=$(state_snapshot; pool_state)
if [ "$before" = "$after" ]; then ok "state after rm is exactly as before up"; else
    not_ok "state differs after rm"; diff <(echo "$before") <(echo "$after") | diag; fi
[ -z "$(ls -A "$QVM_ROOT/run/qvm/vms" 2>/dev/null)" ] && ok "no runtime files left" || not_ok "runtime files left"
run_qvm doctor
[ "$rc" = 0 ] && ok "qvm doctor finds nothing" || { not_ok "doctor"; echo "$out" | diag; }
done_testing
