#!/usr/bin/env bash
# Image streams between two ZFS pools (two zpools on sparse files, through
# zfs-fuse when the kernel has no ZFS), with the real zfs send and recv:
# v1 imported, v2 committed from a VM's disk; v1 sent whole and v2 as the
# changes since v1, both received into the other pool, where they hold the
# sender's bytes (v1 read through a clone, v2 through a VM made from it).
# The received versions are snapshots with their virtual size set, v2
# received onto v1 and sharing its blocks (the commit wrote only what the
# VM changed, so its stream is small); the image's live dataset holds the
# receiver's image.json and the newest version's disk.raw. An incremental
# stream without its base, a full stream onto versions, cut-short streams
# (whole and incremental), a damaged one, a failure injected right after
# the driver received and receives killed with SIGKILL each leave
# `zfs list -t all -r`, the files and qvm's state as before.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
source "$top/tests/pools/zfs.sh"

make_zfs_pool src 512 || { done_testing; exit; }
S=$ZFS_MNT SDS=$ZFS_DATASET
make_zfs_pool dst 512 || { done_testing; exit; }
D=$ZFS_MNT DDS=$ZFS_DATASET DZP=$ZFS_POOL
DROOT=$(zfs get -H -o value mountpoint "$DZP")
ok "two zpools are qvm pools 'src' ($SDS) and 'dst' ($DDS)"

zdestroy() { _zfs_retry zfs destroy "$@" >/dev/null 2>&1; }
dlist() { zfs list -H -t all -r -o name "$DDS" | sed "s|^$DDS/||;s|^$DDS\$|.|" | tr '\n' ' '; }
# Everything: qvm's state tree, every dataset, snapshot, origin and file of
# both zpools, and what the received image's metadata says.
snap_all() {
    state_snapshot; zfs_pool_state
    md5sum "$D"/images/*/image.json 2>/dev/null
}
same_state() {  # same_state DESC REFERENCE
    local now; now=$(snap_all)
    if [ "$2" = "$now" ]; then ok "$1"; else not_ok "$1"; diff <(echo "$2") <(echo "$now") | diag; fi
}
# The file of a snapshot (zfs-fuse has no .zfs/snapshot): a clone of it.
snap_file() {
    zdestroy "$DZP/check"
    zfs clone "$1" "$DZP/check" && echo "$DROOT/check/disk.raw"
}

# --- the sending side: v1 imported, v2 committed from a VM's disk ----------------
raw=$T/src.raw
truncate -s 256M "$raw"
for off in 0 100 200; do head -c 2M /dev/urandom | dd of="$raw" bs=1M seek=$off conv=notrunc status=none; done
run_qvm image import --pool src deb "$raw"
[ "$rc" = 0 ] || { not_ok "setup: import"; echo "$err" | diag; }
printf 'qvm: vm\nname: e\nmemory: 128\ndisk:\n  zvol:\n    base: deb\n---\nqvm: user-data\n---\nqvm: meta-data\n' >"$T/e.yaml"
run_qvm up --no-start --pool src "$T/e.yaml"
[ "$rc" = 0 ] || { not_ok "setup: up"; echo "$err" | diag; }
head -c 1M /dev/urandom | dd of="$S/vms/e/disk0/disk.raw" bs=1M seek=150 conv=notrunc status=none
run_qvm image commit deb --from e
[ "$rc" = 0 ] && [ -n "$(zfs list -H -o name "$SDS/images/deb@v2" 2>/dev/null)" ] &&
    ok "v2 of deb committed from VM e's disk (snapshot $SDS/images/deb@v2)" || { not_ok "setup: commit"; echo "$err" | diag; }

"$QVM" image send --pool src deb@v1 >"$T/f1" 2>"$T/err"
[ $? = 0 ] && ok "send v1 (full)" || { not_ok "send v1"; diag <"$T/err"; }
"$QVM" image send --pool src --from v1 deb@v2 >"$T/f2" 2>"$T/err"
[ $? = 0 ] && ok "send v2 --from v1 (incremental)" || { not_ok "send v2"; diag <"$T/err"; }
"$QVM" image send --pool src deb@v2 >"$T/f2full" 2>"$T/err"
[ $? = 0 ] && ok "send v2 (full)" || { not_ok "send v2 full"; diag <"$T/err"; }
sed -n 2p "$T/f1" | grep -q '"driver":"zfs","format":"zfs-send-1"' &&
    ok "the stream header names the zfs driver and its format" || { not_ok "header"; sed -n 2p "$T/f1" | diag; }
full=$(stat -c %s "$T/f1") inc=$(stat -c %s "$T/f2")
[ "$full" -gt $((6 << 20)) ] && [ "$full" -lt $((8 << 20)) ] &&
    ok "the full stream carries the data, not the holes ($((full >> 10)) KiB for a 256 MiB disk with 6 MiB of data)" ||
    not_ok "full stream is $full bytes"
[ "$inc" -lt $((2 << 20)) ] && [ $((inc * 4)) -lt "$full" ] &&
    ok "the incremental stream carries only the change ($((inc >> 10)) KiB)" || not_ok "incremental stream is $inc bytes"
"$QVM" image send --pool src --from v9 deb@v2 >"$T/none" 2>"$T/err"
[ $? = 1 ] && grep -q "no version v9" "$T/err" && ok "send from a missing base is refused" ||
    { not_ok "send --from v9"; diag <"$T/err"; }

# --- refusals on the receiving side leave nothing ------------------------------------
before=$(snap_all)
zbefore=$(dlist)
"$QVM" image receive --pool dst <"$T/f2" >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -q "no image 'deb': receive the full stream of v1 first" "$T/err" &&
    ok "an incremental stream without its base is refused" || { not_ok "no base"; diag <"$T/err"; }
same_state "... and leaves nothing" "$before"
head -c $((full / 2)) "$T/f1" | "$QVM" image receive --pool dst >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -q "cut short" "$T/err" && ok "a cut-short full stream is refused" || { not_ok "cut full stream"; diag <"$T/err"; }
[ "$(dlist)" = "$zbefore" ] && ok "... zfs list -t all -r is unchanged: no image, staging dataset or snapshot ($zbefore)" ||
    not_ok "cut full stream left: $(dlist)"
same_state "... and no file, image, version or journal" "$before"

# Killed with everything it started while zfs recv makes the staging
# dataset: the next command rolls the receive back.
mkfifo "$T/fifo"
setsid "$QVM" image receive --pool dst <"$T/fifo" >/dev/null 2>&1 &
qpid=$!
exec 7>"$T/fifo"
head -c $((full / 2)) "$T/f1" >&7
for _ in $(seq 100); do zfs list -H "$DDS/images/deb:recv" >/dev/null 2>&1 && break; sleep 0.1; done
staged=$(dlist)
kill -9 -- -"$qpid" 2>/dev/null
exec 7>&-
wait "$qpid" 2>/dev/null
[ "$staged" = ". images images/deb images/deb:recv vms " ] &&
    ok "zfs recv makes the full stream's dataset as images/deb:recv, beside the new image's empty dataset" ||
    not_ok "staging: $staged"
run_qvm image ls
grep -q "'image receive deb' was interrupted; rolled it back" <<<"$err" && ok "the next command rolls the killed receive back" ||
    { not_ok "no rollback"; echo "$err" | diag; }
for _ in $(seq 50); do [ "$(dlist)" = "$zbefore" ] && break; sleep 0.1; done
same_state "... leaving no image, staging dataset or snapshot" "$before"

# A failure right after the driver received (and a SIGKILL there): the
# journal's undo removes the version and the new image again.
QVM_FAULT=version-received run_qvm image receive --pool dst <"$T/f1"
[ "$rc" = 1 ] && grep -q "injected failure after step 'version-received'" <<<"$err" &&
    ok "full receive, failure after the driver received: exit 1" || { not_ok "fault version-received"; echo "$err" | diag; }
same_state "... the received image and its snapshot are destroyed again" "$before"
(QVM_FAULT=kill:version-received exec "$QVM" image receive --pool dst <"$T/f1" >/dev/null 2>&1)
[ $? = 137 ] && ok "full receive, SIGKILL after the driver received" || not_ok "SIGKILL at version-received did not kill"
run_qvm image ls
grep -q "was interrupted; rolled it back" <<<"$err" && ok "... rolled back by the next command" || { not_ok "no rollback"; echo "$err" | diag; }
same_state "... leaving nothing" "$before"

# --- v1 ---------------------------------------------------------------------------
"$QVM" image receive --pool dst <"$T/f1" >"$T/out" 2>"$T/err" && ok "receive v1" || { not_ok "receive v1"; diag <"$T/err"; }
[ "$(dlist)" = ". images images/deb images/deb@v1 vms " ] &&
    ok "zfs list: images/deb and its snapshot v1; no staging dataset left" || not_ok "after v1: $(dlist)"
[ "$(zfs get -Hp -o value qvm:virtual-size "$DDS/images/deb@v1")" = 268435456 ] &&
    ok "the received snapshot has its virtual size (qvm:virtual-size=268435456)" ||
    not_ok "qvm:virtual-size of v1: $(zfs get -Hp -o value,source qvm:virtual-size "$DDS/images/deb@v1")"
[ "$(ls -A "$D/images/deb" | tr '\n' ' ')" = "disk.raw image.json " ] && [ "$(ls -A "$D/images")" = deb ] &&
    [ "$(zfs get -Hp -o value used "$DDS/images/deb@v1")" -lt $((1 << 20)) ] &&
    ok "the live dataset holds the receiver's image.json and v1's disk.raw, sharing every block with the snapshot" ||
    { not_ok "live dataset"; ls -la "$D/images" "$D/images/deb" | diag; zfs get used "$DDS/images/deb@v1" | diag; }
f=$(snap_file "$DDS/images/deb@v1")
cmp -s "$raw" "$f" && ok "v1 is byte-equal to the imported image after the round trip" || not_ok "v1 differs"
zdestroy "$DZP/check"

# --- refusals with v1 in place ------------------------------------------------------------
before=$(snap_all)
zbefore=$(dlist)
"$QVM" image receive --pool dst <"$T/f2full" >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -q "has versions in this pool already (v1): a full stream cannot be received onto them; send deb@v2 incrementally" "$T/err" &&
    ok "a full stream onto an image with versions is refused" || { not_ok "full onto versions"; diag <"$T/err"; }
same_state "... and leaves nothing" "$before"
head -c $((inc / 2)) "$T/f2" | "$QVM" image receive --pool dst >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -q "cut short" "$T/err" && [ "$(dlist)" = "$zbefore" ] &&
    ok "a cut-short incremental stream is refused; zfs list -t all -r unchanged" || { not_ok "cut incremental"; diag <"$T/err"; dlist | diag; }
same_state "... and image.json, files and state as before" "$before"
python3 - "$T/f2" "$T/bad" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[len(d) // 2] ^= 0xff          # one flipped byte in the payload
open(sys.argv[2], "wb").write(d)
PY
"$QVM" image receive --pool dst <"$T/bad" >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -qE "checksum does not match|checksum mismatch" "$T/err" && ok "a damaged stream is refused" ||
    { not_ok "damaged"; diag <"$T/err"; }
same_state "... and leaves nothing" "$before"
QVM_FAULT=version-received run_qvm image receive --pool dst <"$T/f2"
[ "$rc" = 1 ] && grep -q "injected failure after step 'version-received'" <<<"$err" &&
    ok "incremental receive, failure after the driver received: exit 1" || { not_ok "fault incremental"; echo "$err" | diag; }
# The live disk.raw held v1, then v2 after zfs recv -F: it goes with v2.
same_state "... v2 is destroyed again (with the live disk.raw that held it); image.json is the receiver's, not the one zfs recv -F brought" \
    "$(grep -v "^$D/images/deb/disk.raw\$" <<<"$before")"
before=$(snap_all)
setsid "$QVM" image receive --pool dst <"$T/fifo" >/dev/null 2>&1 &
qpid=$!
exec 7>"$T/fifo"
head -c $((inc / 2)) "$T/f2" >&7
sleep 1
kill -9 -- -"$qpid" 2>/dev/null
exec 7>&-
wait "$qpid" 2>/dev/null
run_qvm image ls
grep -q "'image receive deb' was interrupted; rolled it back" <<<"$err" && ok "an incremental receive killed mid-stream is rolled back" ||
    { not_ok "no rollback of the incremental"; echo "$err" | diag; }
for _ in $(seq 50); do [ "$(dlist)" = "$zbefore" ] && break; sleep 0.1; done
same_state "... leaving v1 and image.json untouched" "$before"

# --- v2 ---------------------------------------------------------------------------
"$QVM" image receive --pool dst <"$T/f2" >"$T/out" 2>"$T/err" && ok "receive v2 onto v1" || { not_ok "receive v2"; diag <"$T/err"; }
[ "$(dlist)" = ". images images/deb images/deb@v1 images/deb@v2 vms " ] &&
    ok "zfs list: v2 is a snapshot of images/deb after v1" || not_ok "after v2: $(dlist)"
[ "$(zfs get -Hp -o value qvm:virtual-size "$DDS/images/deb@v2")" = 268435456 ] &&
    [ "$(ls -A "$D/images/deb" | tr '\n' ' ')" = "disk.raw image.json " ] && cmp -s "$S/vms/e/disk0/disk.raw" "$D/images/deb/disk.raw" &&
    ok "v2 has its virtual size; the live dataset holds image.json and v2's disk.raw" || { not_ok "v2 size/live"; ls -la "$D/images/deb" | diag; }
used=$(zfs get -Hp -o value used "$DDS/images/deb")
[ "$used" -lt $((9 << 20)) ] && ok "v2 shares v1's blocks (the image uses $((used >> 10)) KiB for both)" || not_ok "image uses $used bytes"
run_qvm image versions --json --pool dst deb
python3 - "$T/out" "$S/images/deb/image.json" <<'PY' && ok "uuid, parent and state travel with the versions" || not_ok "metadata"
import json, sys
b = {v["name"]: v for v in json.load(open(sys.argv[1]))}
a = {v["name"]: v for v in json.load(open(sys.argv[2]))["versions"]}
for n in ("v1", "v2"):
    assert a[n]["uuid"] == b[n]["uuid"] and a[n]["parent"] == b[n]["parent"] and a[n]["state"] == b[n]["state"], n
PY
"$QVM" image receive --pool dst <"$T/f1" >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -q "already has deb@v1" "$T/err" && ok "receiving a version twice is refused" || { not_ok "twice"; diag <"$T/err"; }

# --- the received version in use ----------------------------------------------------
printf 'qvm: vm\nname: r\nmemory: 128\ndisk:\n  zvol:\n    base: deb@v2\n---\nqvm: user-data\n---\nqvm: meta-data\n' >"$T/r.yaml"
run_qvm up --no-start --pool dst "$T/r.yaml"
[ "$rc" = 0 ] && [ "$(zfs get -Hp -o value origin "$DDS/vms/r/disk0")" = "$DDS/images/deb@v2" ] &&
    ok "a VM provisions from the received v2 (its disk a clone of it)" || { not_ok "up from received"; echo "$err" | diag; }
cmp -s "$S/vms/e/disk0/disk.raw" "$D/vms/r/disk0/disk.raw" &&
    ok "its disk is byte-equal to the sending VM's disk that v2 was committed from" || not_ok "v2 differs from e's disk"
"$QVM" image send --pool dst --from v1 deb@v2 >"$T/f3" 2>"$T/err"
[ $? = 0 ] && [ "$(stat -c %s "$T/f3")" -lt $((2 << 20)) ] && ok "the received v2 can be sent on, incrementally" ||
    { not_ok "send from dst"; diag <"$T/err"; }
run_qvm rm r
run_qvm image rm --pool dst deb@v2
[ "$rc" = 0 ] && [ "$(dlist)" = ". images images/deb images/deb@v1 vms " ] && [ "$(ls -A "$D/images/deb")" = image.json ] &&
    ok "image rm deb@v2 destroys the received snapshot (and the live disk.raw that held it)" ||
    { not_ok "rm v2"; echo "$err" | diag; dlist | diag; }
run_qvm doctor
[ "$rc" = 0 ] && ok "doctor finds nothing" || { not_ok "doctor"; echo "$out$err" | diag; }
[ -z "$(zfs list -H -t all -r -o name "$SDS" "$DDS" | grep ':recv')" ] && ok "no staging dataset anywhere" ||
    not_ok "staging left: $(zfs list -H -t all -r -o name "$SDS" "$DDS" | grep ':recv')"
done_testing
