#!/usr/bin/env bash
# A bundle carries a VM's data across drivers, and the copy boots: the real
# Debian cloud image provisioned on the dir pool and booted; a file written
# in the guest through the agent; the VM stopped and exported; the bundle
# imported into a Btrfs pool (not started), exported from there, and
# imported into a ZFS pool (zfs-fuse) under a new name, which boots with
# its own host name and instance-id (cloud-init ran again) and holds the
# file. One VM runs at a time; nothing is left at the end.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
source "$top/tests/pools/btrfs.sh"
source "$top/tests/pools/zfs.sh"

img=$(cloud_image)
if [ -z "$img" ]; then
    skip "no cloud image: tests/image/build-cloud-image.sh failed: $(tail -1 "$T/image-build.log" 2>/dev/null)"
    done_testing; exit
fi
command -v qemu-system-x86_64 >/dev/null || { skip "qemu-system-x86_64 is not installed"; done_testing; exit; }
run_qvm image import --pool default debian12 "$img"
[ "$rc" = 0 ] && ok "image import of the cloud image into the dir pool" || { not_ok "image import"; echo "$err" | diag; }
make_btrfs_pool bt 4096 || { done_testing; exit; }
make_zfs_pool zp 4096 || { done_testing; exit; }
before=$(state_snapshot; btrfs_pool_state; zfs_pool_state)

cat >"$T/b1.yaml" <<'YAML'
qvm: vm
name: b1
memory: 768
vcpus: 1
disk:
  size: 3
  zvol:
    base: debian12
---
qvm: user-data
preserve_hostname: false
hostname: b1-qvm
fqdn: b1-qvm.localdomain
---
qvm: meta-data
instance-id: b1-1
YAML
run_qvm up --pool default "$T/b1.yaml"
[ "$rc" = 0 ] && ok "b1 up on the dir pool" || { not_ok "up b1"; echo "$out$err" | diag; }
run_qvm wait b1 --timeout 600
[ "$rc" = 0 ] && ok "b1: cloud-init done" || { not_ok "wait b1"; echo "$out$err" | diag; }
run_qvm exec b1 -- sh -c 'echo "data from b1 $(cat /proc/sys/kernel/random/uuid)" > /var/tmp/marker && sync && cat /var/tmp/marker'
marker=$out
[ "$rc" = 0 ] && [ -n "$marker" ] && ok "a file written in b1's guest: $marker" || { not_ok "write marker"; echo "$out$err" | diag; }
run_qvm stop b1 --timeout 120
[ "$rc" = 0 ] && [ -z "$(qemu_procs)" ] && ok "b1 stopped" || { not_ok "stop b1"; echo "$out$err" | diag; }

start=$(date +%s)
"$QVM" export b1 >"$T/b1.qvmb" 2>"$T/err" && ok "export b1 ($(( $(stat -c %s "$T/b1.qvmb") >> 20 )) MiB, $(( $(date +%s) - start )) s)" ||
    { not_ok "export b1"; diag <"$T/err"; }
run_qvm import --pool bt --name b2 --no-start --file "$T/b1.qvmb"
[ "$rc" = 0 ] && ok "imported into the btrfs pool as b2" || { not_ok "import b2"; echo "$err" | diag; }
"$QVM" export b2 >"$T/b2.qvmb" 2>"$T/err" && ok "export b2 from btrfs" || { not_ok "export b2"; diag <"$T/err"; }
run_qvm import --pool zp --name b3 --file "$T/b2.qvmb"
[ "$rc" = 0 ] && grep -q "VM 'b3' imported and running" <<<"$out" && ok "imported into the zfs pool as b3 and started" ||
    { not_ok "import b3"; echo "$out$err" | diag; }
run_qvm wait b3 --timeout 600
[ "$rc" = 0 ] && ok "b3: cloud-init done" || { not_ok "wait b3"; echo "$out$err" | diag; }
run_qvm exec b3 -- cat /var/tmp/marker
[ "$rc" = 0 ] && [ "$out" = "$marker" ] && ok "b3 holds the file b1's guest wrote" || { not_ok "marker in b3"; echo "rc=$rc out=$out err=$err" | diag; }
run_qvm exec b3 -- hostname
[ "$out" = b3 ] && ok "b3's host name is b3 (user-data's hostname was renamed)" || not_ok "hostname ($out)"
run_qvm exec b3 -- cat /var/lib/cloud/data/instance-id
case $out in b3-*) ok "cloud-init sees a new instance ($out)" ;; *) not_ok "instance-id ($out)" ;; esac
run_qvm stop b3 --timeout 120
[ "$rc" = 0 ] && [ -z "$(qemu_procs)" ] && ok "b3 stopped" || { not_ok "stop b3"; echo "$out$err" | diag; }

run_qvm rm b1 b2 b3
[ "$rc" = 0 ] && ok "rm b1 b2 b3" || { not_ok "rm"; echo "$err" | diag; }
after=$(state_snapshot; btrfs_pool_state; zfs_pool_state)
[ "$before" = "$after" ] && ok "pools and state as before" || { not_ok "state differs"; diff <(echo "$before") <(echo "$after") | diag; }
run_qvm doctor
[ "$rc" = 0 ] && ok "qvm doctor finds nothing" || { not_ok "doctor"; echo "$out" | diag; }
done_testing
