#!/usr/bin/env bash
# Image streams on dir pools, with the real qemu-img: send v1 whole and v2
# as the changes since v1, receive both into a second qvm tree, and the
# versions compare byte-equal; an interrupted stream, a damaged one, a
# stream for another driver and an incremental one without its base each
# leave no version behind.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
A=$T/a B=$T/b
mkdir -p "$A" "$B"

raw=$T/src.raw
truncate -s 256M "$raw"
for off in 0 100 200; do head -c 2M /dev/urandom | dd of="$raw" bs=1M seek=$off conv=notrunc status=none; done
QVM_ROOT=$A "$QVM" -q image import deb "$raw" || not_ok "setup: import"
printf 'qvm: vm\nname: e\nmemory: 128\ndisk:\n  zvol:\n    base: deb\n---\nqvm: user-data\n---\nqvm: meta-data\n' >"$T/e.yaml"
QVM_ROOT=$A "$QVM" -q up --no-start "$T/e.yaml"
qemu-io -f qcow2 -c 'write -P 0xcd 150M 1M' "$A/var/lib/qvm/pools/default/vms/e/disk0.qcow2" >/dev/null
QVM_ROOT=$A "$QVM" -q image commit deb --from e || not_ok "setup: commit"

QVM_ROOT=$A "$QVM" image send deb@v1 >"$T/v1.qs" 2>"$T/err"
[ $? = 0 ] && ok "send v1 (full)" || { not_ok "send v1"; diag <"$T/err"; }
QVM_ROOT=$A "$QVM" image send --from v1 deb@v2 >"$T/v2.qs" 2>"$T/err"
[ $? = 0 ] && ok "send v2 --from v1 (incremental)" || { not_ok "send v2"; diag <"$T/err"; }
full=$(stat -c %s "$T/v1.qs") inc=$(stat -c %s "$T/v2.qs")
[ "$full" -lt $((8 << 20)) ] && ok "the full stream carries data, not holes ($((full >> 10)) KiB for a 256 MiB disk with 6 MiB of data)" || not_ok "full stream is $full bytes"
[ "$inc" -lt $((2 << 20)) ] && ok "the incremental stream carries only the change ($((inc >> 10)) KiB)" || not_ok "incremental stream is $inc bytes"

export QVM_ROOT=$B
"$QVM" image receive <"$T/v2.qs" >"$T/out" 2>"$T/err"
[ $? = 1 ] && grep -q "no image 'deb': receive the full stream of v1 first" "$T/err" &&
    ok "an incremental stream without its base is refused" || { not_ok "no base"; diag <"$T/err"; }
head -c $((full / 2)) "$T/v1.qs" | "$QVM" image receive >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -q "cut short" "$T/err" && [ ! -e "$B/var/lib/qvm/pools/default/images/deb" ] &&
    ok "an interrupted stream leaves no image or version behind" || { not_ok "cut stream"; diag <"$T/err"; find "$B/var/lib/qvm/pools" | diag; }
python3 - "$T/v1.qs" "$T/bad.qs" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[len(d) // 2] ^= 0xff          # one flipped byte in the payload
open(sys.argv[2], "wb").write(d)
PY
"$QVM" image receive <"$T/bad.qs" >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -qE "checksum does not match|block stream" "$T/err" && [ ! -e "$B/var/lib/qvm/pools/default/images/deb" ] &&
    ok "a damaged stream is refused and leaves nothing" || { not_ok "damaged"; diag <"$T/err"; }
sed '2s/"driver":"dir"/"driver":"zfs"/' "$T/v1.qs" >"$T/zfs.qs"
"$QVM" image receive <"$T/zfs.qs" >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -q "the stream is from a zfs pool" "$T/err" && ok "a stream for another driver is refused" || { not_ok "driver"; diag <"$T/err"; }
[ -z "$(ls -A "$B/var/lib/qvm/journal")" ] && ok "no journal left by the refusals" || not_ok "journal left"

"$QVM" image receive <"$T/v1.qs" >"$T/out" 2>"$T/err" && ok "receive v1" || { not_ok "receive v1"; diag <"$T/err"; }
"$QVM" image receive <"$T/v2.qs" >"$T/out" 2>"$T/err" && ok "receive v2 onto v1" || { not_ok "receive v2"; diag <"$T/err"; }
for v in v1 v2; do
    cmp -s "$A/var/lib/qvm/pools/default/images/deb/$v.raw" "$B/var/lib/qvm/pools/default/images/deb/$v.raw" &&
        ok "$v is byte-equal after the round trip" || not_ok "$v differs"
done
alloc=$(( $(stat -c %b "$B/var/lib/qvm/pools/default/images/deb/v1.raw") * 512 ))
[ "$alloc" -lt $((16 << 20)) ] && ok "the received version is sparse" || not_ok "received v1 allocates $alloc bytes"
"$QVM" image versions --json deb >"$T/out"
python3 - "$T/out" "$A" <<'PY' && ok "uuid, parent and state travel with the versions" || not_ok "metadata"
import json, sys
b = {v["name"]: v for v in json.load(open(sys.argv[1]))}
a = {v["name"]: v for v in json.load(open(sys.argv[2] + "/var/lib/qvm/pools/default/images/deb/image.json"))["versions"]}
for n in ("v1", "v2"):
    assert a[n]["uuid"] == b[n]["uuid"] and a[n]["parent"] == b[n]["parent"] and a[n]["state"] == b[n]["state"], n
PY
"$QVM" image receive <"$T/v1.qs" >/dev/null 2>"$T/err"
[ $? = 1 ] && grep -q "already has deb@v1" "$T/err" && ok "receiving a version twice is refused" || { not_ok "twice"; diag <"$T/err"; }
printf 'qvm: vm\nname: r\nmemory: 128\ndisk:\n  zvol:\n    base: deb@v2\n---\nqvm: user-data\n---\nqvm: meta-data\n' >"$T/r.yaml"
run_qvm up --no-start "$T/r.yaml"
[ "$rc" = 0 ] && ok "a VM provisions from the received version" || { not_ok "up from received"; echo "$err" | diag; }
run_qvm doctor
[ "$rc" = 0 ] && ok "doctor finds nothing on the receiving side" || { not_ok "doctor"; echo "$out" | diag; }
done_testing
