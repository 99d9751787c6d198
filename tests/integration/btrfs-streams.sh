#!/usr/bin/env bash
# Image streams between two Btrfs pools (two loop-mounted file systems in
# one qvm root), with the real btrfs send and receive: v1 imported, v2
# committed from a VM's disk; v1 sent whole and v2 as the changes since v1,
# both received into the other pool, where they compare byte-equal with
# the sender's, are read-only received subvolumes (v2 a snapshot of v1),
# and a VM provisions from v2. An incremental stream without its base, a
# cut-short stream (whole and incremental), a damaged one and a receive
# killed with SIGKILL (the journal's undo then deletes the staging
# subvolume) each leave no subvolume, file or version behind.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
source "$top/tests/pools/btrfs.sh"

make_btrfs_pool src 512 || { done_testing; exit; }
S=$BTRFS_MNT
make_btrfs_pool dst 512 || { done_testing; exit; }
D=$BTRFS_MNT
ok "two loop-mounted Btrfs file systems are pools 'src' and 'dst'"

snap_all() { state_snapshot; btrfs_pool_state; }
same_state() {  # same_state DESC REFERENCE
    local now; now=$(snap_all)
    if [ "$2" = "$now" ]; then ok "$1"; else not_ok "$1"; diff <(echo "$2") <(echo "$now") | diag; fi
}
dsubvols() { btrfs subvolume list "$D" | awk '{print $NF}' | sort | tr '\n' ' '; }
# show_field PATH FIELD: one field of `btrfs subvolume show PATH` (see btrfs.sh).
show_field() {
    btrfs subvolume show "$1" 2>/dev/null | awk -F':[ \t]*' -v f="$2" '$1 ~ "^[ \t]*"f"$" {print $2; exit}'
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
[ "$rc" = 0 ] && [ -d "$S/images/.versions/deb/v2" ] && ok "v2 of deb committed from VM e's disk" ||
    { not_ok "setup: commit"; echo "$err" | diag; }
sv1=$S/images/.versions/deb/v1 sv2=$S/images/.versions/deb/v2
dv1=$D/images/.versions/deb/v1 dv2=$D/images/.versions/deb/v2

"$QVM" image send --pool src deb@v1 >"$T/f1" 2>"$T/err"
[ $? = 0 ] && ok "send v1 (full)" || { not_ok "send v1"; diag <"$T/err"; }
"$QVM" image send --pool src --from v1 deb@v2 >"$T/f2" 2>"$T/err"
[ $? = 0 ] && ok "send v2 --from v1 (incremental)" || { not_ok "send v2"; diag <"$T/err"; }
sed -n 2p "$T/f1" | grep -q '"driver":"btrfs","format":"btrfs-send-1"' &&
    ok "the stream header names the btrfs driver and its format" || { not_ok "header"; sed -n 2p "$T/f1" | diag; }
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
"$QVM" image receive --pool dst <"$T/f2" >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -q "no image 'deb': receive the full stream of v1 first" "$T/err" &&
    ok "an incremental stream without its base is refused" || { not_ok "no base"; diag <"$T/err"; }
same_state "... and leaves nothing" "$before"
head -c $((full / 2)) "$T/f1" | "$QVM" image receive --pool dst >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -q "cut short" "$T/err" && [ -z "$(dsubvols)" ] &&
    ok "a cut-short full stream is refused, no subvolume left (btrfs subvolume list is empty)" ||
    { not_ok "cut full stream"; diag <"$T/err"; dsubvols | diag; }
same_state "... and no image, version, staging directory or journal" "$before"

"$QVM" image receive --pool dst <"$T/f1" >"$T/out" 2>"$T/err" && ok "receive v1" || { not_ok "receive v1"; diag <"$T/err"; }
cmp -s "$sv1/disk.raw" "$dv1/disk.raw" && ok "v1 is byte-equal after the round trip" || not_ok "v1 differs"
[ "$(btrfs property get -ts "$dv1" ro)" = "ro=true" ] && ok "the received v1 is read-only" ||
    not_ok "received v1: $(btrfs property get -ts "$dv1" ro 2>&1)"
[ "$(show_field "$dv1" "Received UUID")" = "$(show_field "$sv1" UUID)" ] &&
    ok "its received UUID is the sender's v1 (incremental streams find their base by it)" ||
    { not_ok "received UUID"; btrfs subvolume show "$dv1" | diag; }
[ "$(dsubvols)" = "images/.versions/deb/v1 images/deb " ] && [ "$(ls -A "$D/images/.versions/deb")" = v1 ] &&
    ok "subvolumes: images/deb and v1; no staging directory left" || { not_ok "after v1: $(dsubvols)"; ls -A "$D/images/.versions/deb" | diag; }

before=$(snap_all)
head -c $((inc / 2)) "$T/f2" | "$QVM" image receive --pool dst >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -q "cut short" "$T/err" && ok "a cut-short incremental stream is refused" || { not_ok "cut incremental"; diag <"$T/err"; }
same_state "... and leaves no subvolume, version or staging directory (v1 untouched)" "$before"
python3 - "$T/f2" "$T/bad" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[len(d) // 2] ^= 0xff          # one flipped byte in the payload
open(sys.argv[2], "wb").write(d)
PY
"$QVM" image receive --pool dst <"$T/bad" >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -qE "checksum does not match|crc32 mismatch" "$T/err" && ok "a damaged stream is refused" ||
    { not_ok "damaged"; diag <"$T/err"; }
same_state "... and leaves nothing" "$before"

# A receive killed with everything it started (qvm, the driver's process,
# btrfs receive) while btrfs receive is making v2: the staging subvolume
# stays until the next qvm command rolls the receive back, and the undo
# (version_destroy) deletes it.
mkfifo "$T/fifo"
setsid "$QVM" image receive --pool dst <"$T/fifo" >/dev/null 2>&1 &
qpid=$!
exec 7>"$T/fifo"
head -c $((inc / 2)) "$T/f2" >&7
for _ in $(seq 100); do [ -d "$D/images/.versions/deb/v2.receiving/v2" ] && break; sleep 0.1; done
staged=$(dsubvols)
kill -9 -- -"$qpid" 2>/dev/null
exec 7>&-
wait "$qpid" 2>/dev/null
[ "$staged" = "images/.versions/deb/v1 images/.versions/deb/v2.receiving/v2 images/deb " ] &&
    ok "btrfs receive makes v2 in its staging directory v2.receiving/" || not_ok "staging: $staged"
[ -d "$D/images/.versions/deb/v2.receiving" ] && ok "SIGKILL mid-receive leaves the staging directory" ||
    not_ok "no staging left by the kill ($(dsubvols))"
run_qvm image ls
grep -q "'image receive deb' was interrupted; rolled it back" <<<"$err" && ok "the next command rolls the receive back" ||
    { not_ok "no rollback"; echo "$err" | diag; }
same_state "... deleting the staging subvolume and directory" "$before"

"$QVM" image receive --pool dst <"$T/f2" >"$T/out" 2>"$T/err" && ok "receive v2 onto v1" || { not_ok "receive v2"; diag <"$T/err"; }
cmp -s "$sv2/disk.raw" "$dv2/disk.raw" && ok "v2 is byte-equal after the round trip" || not_ok "v2 differs"
[ "$(btrfs property get -ts "$dv2" ro)" = "ro=true" ] && [ "$(show_field "$dv2" "Received UUID")" = "$(show_field "$sv2" UUID)" ] &&
    ok "the received v2 is read-only, with the sender's v2 as received UUID" || { not_ok "received v2"; btrfs subvolume show "$dv2" | diag; }
[ "$(show_field "$dv2" "Parent UUID")" = "$(show_field "$dv1" UUID)" ] &&
    ok "the received v2 is a snapshot of the received v1 (it shares v1's blocks)" || { not_ok "v2 parent"; btrfs subvolume show "$dv2" | diag; }
[ "$(dsubvols)" = "images/.versions/deb/v1 images/.versions/deb/v2 images/deb " ] &&
    [ "$(ls -A "$D/images/.versions/deb" | tr '\n' ' ')" = "v1 v2 " ] && ok "subvolumes: images/deb, v1, v2; no staging left" ||
    not_ok "after v2: $(dsubvols)"
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
[ "$rc" = 0 ] && [ "$(show_field "$D/vms/r/disk0" "Parent UUID")" = "$(show_field "$dv2" UUID)" ] &&
    cmp -s "$dv2/disk.raw" "$D/vms/r/disk0/disk.raw" &&
    ok "a VM provisions from the received v2 (its disk a snapshot of it)" || { not_ok "up from received"; echo "$err" | diag; }
# The receiving side can pass it on: its v2 sent as the changes since its v1.
"$QVM" image send --pool dst --from v1 deb@v2 >"$T/f3" 2>"$T/err"
[ $? = 0 ] && [ "$(stat -c %s "$T/f3")" -lt $((2 << 20)) ] && ok "the received v2 can be sent on, incrementally" ||
    { not_ok "send from dst"; diag <"$T/err"; }
run_qvm rm r
run_qvm image rm --pool dst deb@v2
[ "$rc" = 0 ] && [ "$(dsubvols)" = "images/.versions/deb/v1 images/deb " ] && ok "image rm deb@v2 deletes the received subvolume" ||
    { not_ok "rm v2"; echo "$err" | diag; }
run_qvm doctor
[ "$rc" = 0 ] && ok "doctor finds nothing" || { not_ok "doctor"; echo "$out$err" | diag; }
done_testing
