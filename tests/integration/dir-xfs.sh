#!/usr/bin/env bash
# The dir pool on a real XFS (a loop-mounted file made with reflink=1) and on
# ext4 (this test's own directory), with the real qemu-img and QEMU (TCG; no
# boot needed): pool modes auto, reflink and overlay and the refusal of
# reflink where the file system cannot; VM disks as raw reflink copies that
# share every extent with their version and cost no space until written;
# the version untouched by writes to the disk; a bigger disk as a hole at
# the end; QEMU running the raw disk; image commit as a reflink copy; an
# injected failure and a SIGKILL at every journaled step of up, each
# leaving everything as before; and up --reuse, adopting an existing raw or
# qcow2 file by a rename (and renaming it back on every failure).
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
TP="provisioning virtual machine"
TA="adding pool"

if [ "$(id -u)" != 0 ]; then skip "XFS pool: needs root to mount a file system"; done_testing; exit; fi
for t in mkfs.xfs filefrag; do
    command -v $t >/dev/null || { skip "XFS pool: $t not found (install xfsprogs, e2fsprogs)"; done_testing; exit; }
done
X=$T/xfs
truncate -s 1G "$T/xfs.img"
if ! mkfs.xfs -q -m reflink=1 "$T/xfs.img" >"$T/mkfs.log" 2>&1; then
    skip "XFS pool: mkfs.xfs -m reflink=1 failed: $(tail -1 "$T/mkfs.log")"; done_testing; exit
fi
mkdir -p "$X"
if ! mount -o loop "$T/xfs.img" "$X" 2>"$T/mount.log"; then
    skip "XFS pool: cannot loop-mount XFS here: $(tail -1 "$T/mount.log")"; done_testing; exit
fi
trap 'for p in $(pgrep -f -- "-pidfile $QVM_ROOT/"); do kill -9 $p; done 2>/dev/null; sleep 0.2; umount "$X" || umount -l "$X"; cleanup_root' EXIT

# --- pool modes ---------------------------------------------------------------------
mkdir -p "$T/ext"
expect_error "mode reflink on ext4 is refused, naming the file system's limit" "$TA" \
    "cannot make reflink copies \(FICLONE\)" pool add e4 --driver dir --path "$T/ext/p" --mode reflink
expect_error "an unknown dir mode is refused with the known ones" "$TA" \
    "unknown dir mode 'cow' \(modes: auto, reflink, overlay\)" pool add e4 --driver dir --path "$T/ext/p" --mode cow
run_qvm pool add x --driver dir --path "$X/qvm" --mode reflink
[ "$rc" = 0 ] && ok "mode reflink on XFS (reflink=1) is accepted" || { not_ok "pool add x"; echo "$err" | diag; }
run_qvm pool add xa --driver dir --path "$X/auto"
r1=$rc
run_qvm pool add xo --driver dir --path "$X/ovl" --mode overlay
[ "$r1$rc" = 00 ] && ok "pools in mode auto and overlay on the same XFS" || { not_ok "pool add xa/xo"; echo "$err" | diag; }

# An image with 32 MiB of data at its start and holes after, to 256 MiB.
raw=$T/img.raw
head -c 32M /dev/urandom >"$raw"
truncate -s 256M "$raw"
for p in x xa xo; do
    run_qvm image import --pool $p "img$p" "$raw"
    [ "$rc" = 0 ] || { not_ok "import into $p"; echo "$err" | diag; }
done
ok "the image is imported into each pool"

vmfile() {  # vmfile PATH NAME BASE [extra vm lines...]
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
used_kib() { df --output=used -k "$X" | tail -1 | tr -d ' '; }

# --- reflink clones -------------------------------------------------------------------
V1=$X/qvm/images/imgx/v1.raw
sum_v1=$(sha256sum <"$V1")
vmfile "$T/r.yaml" r imgx
sync; u0=$(used_kib)
run_qvm up --no-start "$T/r.yaml"
sync; u1=$(used_kib)
D=$X/qvm/vms/r/disk0.raw
[ "$rc" = 0 ] && [ -f "$D" ] && [ ! -e "$X/qvm/vms/r/disk0.qcow2" ] &&
    ok "up in mode reflink makes a raw disk0.raw, no overlay" || { not_ok "reflink up"; echo "$err" | diag; ls -l "$X/qvm/vms/r" | diag; }
cmp -s "$D" "$V1" && ok "the disk has the version's bytes" || not_ok "disk differs from v1"
filefrag -v "$D" 2>/dev/null | grep -q shared && ok "its extents are shared with the version (filefrag: shared)" ||
    { not_ok "no shared extents"; filefrag -v "$D" 2>&1 | head -8 | diag; }
[ $((u1 - u0)) -lt 4096 ] && ok "the clone of 32 MiB of data took $((u1 - u0)) KiB (< 4 MiB)" ||
    not_ok "the clone took $((u1 - u0)) KiB"
[ "$(stat -c %a "$V1")" = 444 ] && [ "$(stat -c %a "$D")" = 644 ] && ok "version 0444, disk 0644" || not_ok "modes"
run_qvm ls --json
grep -q '"image":"imgx"' <<<"${out// /}" && ok "ls shows the VM from imgx" || { not_ok "ls"; echo "$out" | diag; }

qemu-io -f raw -c 'write -P 0xab 1M 2M' -c 'write -P 0xcd 100M 1M' "$D" >/dev/null
[ "$(sha256sum <"$V1")" = "$sum_v1" ] && ok "writes to the disk leave the version untouched" || not_ok "v1 changed"
qemu-io -f raw -c 'read -P 0xab 1M 2M' -c 'read -P 0xcd 100M 1M' "$D" | grep -q "read 1048576" &&
    ok "the disk reads back what was written" || not_ok "disk readback"

vmfile "$T/big.yaml" big imgx "  size: 0.5"
run_qvm up --no-start "$T/big.yaml"
B=$X/qvm/vms/big/disk0.raw
[ "$rc" = 0 ] && [ "$(stat -c %s "$B")" = $((512 << 20)) ] && cmp -s -n $((256 << 20)) "$B" "$V1" &&
    ok "a 0.5 GiB disk from a 256 MiB version: the version's bytes, then a hole" || { not_ok "bigger disk"; echo "$err" | diag; }
[ "$(stat -c %b "$B")" -lt $(( (40 << 20) / 512 )) ] && ok "the grown disk stays sparse ($(du -k "$B" | cut -f1) KiB allocated)" ||
    not_ok "grown disk not sparse: $(du -k "$B")"
run_qvm rm big

# --- QEMU runs the raw disk -------------------------------------------------------------
run_qvm start r
if [ "$rc" = 0 ] && qemu_procs | grep -q "file=$D,if=none,id=disk0,format=raw"; then ok "QEMU runs r with disk0.raw as format=raw"; else
    not_ok "start r"; { echo "$err"; qemu_procs; } | diag; fi
run_qvm stop --force r
[ -z "$(qemu_procs)" ] && ok "stop --force" || not_ok "stop r"

# --- commit: the next version is a reflink copy of the disk ---------------------------
sync; u0=$(used_kib)
run_qvm image commit imgx --from r
sync; u1=$(used_kib)
V2=$X/qvm/images/imgx/v2.raw
[ "$rc" = 0 ] && cmp -s "$V2" "$D" && [ "$(stat -c %a "$V2")" = 444 ] &&
    ok "image commit makes imgx@v2 with the disk's bytes, read-only" || { not_ok "commit"; echo "$err" | diag; }
filefrag -v "$V2" 2>/dev/null | grep -q shared && [ $((u1 - u0)) -lt 4096 ] &&
    ok "v2 shares the disk's extents ($((u1 - u0)) KiB used)" || not_ok "v2 not a reflink copy ($((u1 - u0)) KiB)"
run_qvm rm r
run_qvm image rm imgx@v2
[ "$rc" = 0 ] && [ ! -e "$V2" ] && [ "$(sha256sum <"$V1")" = "$sum_v1" ] &&
    ok "rm of the VM and of v2 leaves v1 as it was" || { not_ok "rm"; echo "$err" | diag; }

# --- auto and overlay modes ------------------------------------------------------------
vmfile "$T/a.yaml" a imgxa
vmfile "$T/o.yaml" o imgxo
run_qvm up --no-start "$T/a.yaml"; r1=$rc
run_qvm up --no-start "$T/o.yaml"
[ "$r1$rc" = 00 ] && [ -f "$X/auto/vms/a/disk0.raw" ] && [ -f "$X/ovl/vms/o/disk0.qcow2" ] &&
    ok "mode auto on XFS clones by reflink; mode overlay makes a qcow2 overlay" || { not_ok "auto/overlay"; ls -R "$X/auto/vms" "$X/ovl/vms" | diag; }
run_qvm rm a; run_qvm rm o

# --- every journaled step of up, in mode reflink ----------------------------------------
before=$(state_snapshot; find "$X" | sort)
same_state() {
    local now; now=$(state_snapshot; find "$X" | sort)
    if [ "$before" = "$now" ] && [ -z "$(qemu_procs)" ]; then ok "$1"; else
        not_ok "$1"; diff <(echo "$before") <(echo "$now") | diag; qemu_procs | diag; fi
}
QVM_FAULT_TRACE=$T/steps "$QVM" up "$T/r.yaml" >/dev/null 2>&1
"$QVM" rm r >/dev/null 2>&1
steps=$(cat "$T/steps")
[ "$(echo "$steps" | wc -l)" -ge 5 ] && ok "up reports its journaled steps: $(echo $steps)" || not_ok "step trace: $steps"
for step in $steps; do
    QVM_FAULT=$step run_qvm up "$T/r.yaml"
    [ "$rc" = 1 ] && grep -q "injected failure after step '$step'" <<<"$err" || { not_ok "failure after $step"; echo "$err" | diag; }
    same_state "up (reflink), failure after '$step': as before"
    (QVM_FAULT=kill:$step exec "$QVM" up "$T/r.yaml" >/dev/null 2>&1)
    run_qvm ls
    same_state "up (reflink), SIGKILL at '$step', then the next command: as before"
done

# --- up --reuse ----------------------------------------------------------------------------
keep=$X/qvm/kept.qcow2
qemu-img convert -f raw -O qcow2 "$raw" "$keep"
qemu-io -f qcow2 -c 'write -P 0x5e 5M 1M' "$keep" >/dev/null
sum_keep=$(sha256sum <"$keep")
vmfile "$T/u.yaml" u imgx
before=$(state_snapshot; find "$X" | sort)
expect_error "--reuse of a file on another file system is refused" "$TP" "is on another file system than pool 'x'" \
    up --no-start --pool x --reuse "$raw" "$T/u.yaml"
qemu-img create -q -f qcow2 -F raw -b "$V1" "$X/qvm/ov.qcow2"
expect_error "--reuse of an overlay is refused" "$TP" "overlay with a backing file" \
    up --no-start --pool x --reuse "$X/qvm/ov.qcow2" "$T/u.yaml"
rm -f "$X/qvm/ov.qcow2"
expect_error "--reuse of a missing file is refused" "$TP" "--reuse $X/none: No such file" \
    up --no-start --pool x --reuse "$X/none" "$T/u.yaml"
vmfile "$T/us.yaml" u imgx "  size: 1"
expect_error "--reuse with a different disk.size is refused with both sizes" "$TP" "disk.size 1.00 GiB differs from the reused disk" \
    up --no-start --pool x --reuse "$keep" "$T/us.yaml"
same_state "refused --reuse changes nothing"

QVM_FAULT_TRACE=$T/usteps run_qvm up --no-start --pool x --reuse "$keep" "$T/u.yaml"
U=$X/qvm/vms/u/disk0.qcow2
[ "$rc" = 0 ] && [ ! -e "$keep" ] && [ -f "$U" ] && [ "$(sha256sum <"$U")" = "$sum_keep" ] &&
    ok "up --reuse moves the qcow2 file into the bundle unchanged" || { not_ok "reuse"; echo "$err" | diag; }
qemu-io -f qcow2 -c 'read -P 0x5e 5M 1M' "$U" | grep -q "read 1048576" && ok "the adopted disk holds its data" || not_ok "adopted data"
run_qvm ls
grep -qE "^u +stopped .* - " <<<"$out" && ok "ls shows the adopted VM with no image version" || { not_ok "ls reuse"; echo "$out" | diag; }
run_qvm image rm imgx
[ "$rc" = 0 ] && ok "the image its qvm file names is not held by the adopted VM: image rm imgx works" ||
    { not_ok "image rm imgx"; echo "$err" | diag; }
run_qvm rm u
[ ! -e "$U" ] && ok "rm deletes the adopted disk with the VM" || not_ok "rm u"

# every journaled step of up --reuse: the file goes back where it was
mv_steps=$(cat "$T/usteps")
qemu-img convert -f raw -O qcow2 "$raw" "$keep"
sum_keep=$(sha256sum <"$keep")
before=$(state_snapshot; find "$X" | sort)
for step in $mv_steps; do
    QVM_FAULT=$step run_qvm up --no-start --pool x --reuse "$keep" "$T/u.yaml"
    [ "$rc" = 1 ] || not_ok "reuse: failure after $step did not fail"
    (QVM_FAULT=kill:$step exec "$QVM" up --no-start --pool x --reuse "$keep" "$T/u.yaml" >/dev/null 2>&1)
    run_qvm ls
    [ "$(sha256sum <"$keep")" = "$sum_keep" ] || not_ok "reuse: the file changed at $step"
    same_state "up --reuse, failure and SIGKILL at '$step': the file is back, nothing else left"
done

run_qvm doctor
[ "$rc" = 0 ] && ok "doctor finds nothing wrong" || { not_ok "doctor"; echo "$out$err" | diag; }
done_testing
