#!/usr/bin/env bash
# End to end with the libvirt runtime: the real Debian cloud image, imported,
# examples/hello.yaml provisioned as a libvirt domain (domain type qemu under
# TCG here; a real libvirtd, tests/libvirt-env.sh), ONE boot; `qvm wait`
# and `qvm exec` go through libvirt's guest-agent passthrough and check each
# effect of the user-data inside the guest; the serial console through
# libvirt; virsh sees the running domain; ACPI stop and rm leave nothing.
source "$(dirname "$0")/../lib.sh"
source "$top/tests/libvirt-env.sh"
new_root
trap 'libvirt_down; cleanup_root' EXIT

img=$(cloud_image)
if [ -z "$img" ]; then
    skip "no cloud image: tests/image/build-cloud-image.sh failed (needs root, mmdebstrap and a Debian mirror): $(tail -1 "$T/image-build.log" 2>/dev/null)"
    done_testing; exit
fi
if ! libvirt_up; then
    skip "libvirt: $lv_skip"
    done_testing; exit
fi

run_qvm image import debian12 "$img"
[ "$rc" = 0 ] && ok "image import of the cloud image" || { not_ok "image import"; echo "$err" | diag; }
before=$(state_snapshot)

# hello.yaml under a name of its own on this host's libvirt, with 1 vCPU
# (2 cores shared); the user-data and meta-data are the example's.
H=${lv_prefix}hello
sed -e "s/^name: hello$/name: $H/" -e "s/^vcpus: 2 .*/vcpus: 1/" "$top/examples/hello.yaml" >"$T/hello.yaml"
start=$(date +%s%N)
run_qvm up --runtime libvirt "$T/hello.yaml"
t_up=$(( ($(date +%s%N) - start) / 1000000 ))
if [ "$rc" = 0 ] && grep -q "VM '$H' is running" <<<"$out"; then
    ok "qvm up --runtime libvirt returns with the domain running (${t_up} ms)"
else
    not_ok "qvm up --runtime libvirt"; { echo "$out"; echo "$err"; } | diag
fi
[ "$(virsh_ domstate "$H" 2>/dev/null | head -1)" = running ] && ok "virsh domstate: running" ||
    not_ok "virsh does not see it running"

run_qvm wait "$H" --timeout 600
if [ "$rc" = 0 ] && grep -q "status: done" <<<"$out"; then
    ok "cloud-init finished without errors (qvm wait, agent through libvirt)"
else
    not_ok "qvm wait"; { echo "$out"; echo "$err"; } | diag
fi
run_qvm exec "$H" -- hostname
[ "$rc" = 0 ] && [ "$out" = "hello-qvm" ] && ok "user-data set the hostname (hello-qvm)" ||
    { not_ok "hostname"; echo "rc=$rc out=$out err=$err" | diag; }
run_qvm exec "$H" -- cat /var/lib/qvm-hello/greeting.txt
[ "$out" = "hello from qvm user-data" ] && ok "user-data write_files wrote the greeting" ||
    { not_ok "write_files"; echo "rc=$rc out=$out err=$err" | diag; }
run_qvm exec "$H" -- uname -r
kernel=$out
run_qvm exec "$H" -- cat /var/lib/qvm-hello/runcmd.txt
[ -n "$kernel" ] && [ "$out" = "$kernel" ] && ok "user-data runcmd ran (wrote uname -r: $kernel)" ||
    { not_ok "runcmd"; echo "kernel=$kernel out=$out err=$err" | diag; }
run_qvm exec "$H" -- cat /var/lib/cloud/data/instance-id
[ "$out" = "hello-1" ] && ok "meta-data instance-id reached cloud-init" || not_ok "instance-id ($out)"
run_qvm exec "$H" -- sh -c 'exit 7'
[ "$rc" = 7 ] && ok "qvm exec passes the guest exit status through" || not_ok "exec exit status ($rc)"

# The SSH port qvm forwards (QEMU's hostfwd on the domain's command line)
# reaches the guest's sshd.
port=$("$QVM" ls --json | python3 -c 'import json,sys; print([x["ssh_port"] for x in json.load(sys.stdin) if x["name"]=="'"$H"'"][0] or "")')
banner=$(timeout 10 bash -c "exec 3<>/dev/tcp/127.0.0.1/$port && head -c 7 <&3" 2>/dev/null)
[ "$banner" = "SSH-2.0" ] && ok "the forwarded port $port answers with the guest's SSH banner" ||
    not_ok "no SSH banner on forwarded port '$port' ($banner)"

log=$QVM_ROOT/var/lib/qvm/pools/default/vms/$H/console.log
grep -qE "Cloud-init v\. .* finished" "$log" && ok "serial log (libvirt's log file) shows cloud-init finished" ||
    not_ok "serial console log lacks cloud-init's final message"
(sleep 2; printf '\n'; sleep 3) | timeout 20 "$QVM" console "$H" >"$T/console.out" 2>&1
grep -qa "hello-qvm login:" "$T/console.out" && ok "qvm console reaches the guest's serial getty through libvirt" ||
    { not_ok "qvm console"; tail -5 "$T/console.out" | diag; }

run_qvm stop "$H" --timeout 120
if [ "$rc" = 0 ] && ! grep -q "did not power off" <<<"$out" &&
   [ "$(virsh_ domstate "$H" 2>/dev/null | head -1)" = "shut off" ]; then
    ok "qvm stop: the guest powered off on the ACPI request; virsh says shut off"
else
    not_ok "ACPI stop"; { echo "$out"; echo "$err"; } | diag
fi
run_qvm rm "$H"
[ "$rc" = 0 ] && ! virsh_ dominfo "$H" >/dev/null 2>&1 && ok "qvm rm: the domain is undefined" ||
    { not_ok "rm"; echo "$err" | diag; }
after=$(state_snapshot)
if [ "$before" = "$after" ]; then ok "state after rm is exactly as before up"; else
    not_ok "state differs after rm"; diff <(echo "$before") <(echo "$after") | diag; fi
done_testing
