#!/usr/bin/env bash
# qvm image import against the real dir pool and the real qemu-img: raw and
# qcow2 input, sparseness, immutability, every error state of seed 000
# (7.2.1), a full pool, an injected failure after every journaled step and a
# SIGKILL at every step, each leaving the state tree exactly as before.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT

# A 64 MiB raw disk with data at a few places and holes between.
raw=$T/small.raw
truncate -s 64M "$raw"
for off in 0 7 31 63; do
    head -c 1048576 /dev/urandom | dd of="$raw" bs=1M seek=$off conv=notrunc status=none
done

run_qvm image import small "$raw"
[ "$rc" = 0 ] && ok "import of a raw image" || { not_ok "import raw"; echo "$err" | diag; }
grep -q "Importing" <<<"$out" && grep -q "imported" <<<"$out" && ok "progress and completion messages on stdout" || not_ok "messages"
v1=$QVM_ROOT/var/lib/qvm/pools/default/images/small/v1.raw
cmp -s "$raw" "$v1" && ok "v1 holds the same bytes as the source" || not_ok "v1 differs from the source"
alloc=$(( $(stat -c %b "$v1") * $(stat -c %B "$v1") ))
[ "$alloc" -lt $((16 * 1024 * 1024)) ] && ok "v1 is sparse ($((alloc / 1048576)) MiB allocated of 64)" ||
    not_ok "v1 is not sparse ($alloc bytes allocated)"
[ "$(stat -c %a "$v1")" = 444 ] && ok "v1 is read-only (an immutable version)" || not_ok "v1 mode $(stat -c %a "$v1")"
run_qvm image ls --json
python3 - "$T/out" <<'PY' && ok "image ls --json lists v1, published, 64 MiB, with a uuid" || not_ok "image ls --json"
import json, sys
imgs = json.load(open(sys.argv[1]))
v = imgs[0]["versions"][0]
assert imgs[0]["name"] == "small" and v["name"] == "v1" and v["state"] == "published"
assert v["size"] == 64 << 20 and len(v["uuid"]) == 36
PY

qemu-img convert -f raw -O qcow2 "$raw" "$T/small.qcow2"
run_qvm image import small-q "$T/small.qcow2"
[ "$rc" = 0 ] && qemu-img compare -q -f raw -F raw "$raw" "$QVM_ROOT/var/lib/qvm/pools/default/images/small-q/v1.raw" &&
    ok "import of a qcow2 image gives the same disk" || { not_ok "import qcow2"; echo "$err" | diag; }

before=$(state_snapshot)
same_state() {  # same_state DESC
    local now; now=$(state_snapshot)
    if [ "$before" = "$now" ]; then ok "$1"; else not_ok "$1"; diff <(echo "$before") <(echo "$now") | diag; fi
}
T_IMPORT="importing cloud image"
expect_error "missing file: 'could not be found'" "$T_IMPORT" "image $T/nope.raw could not be found: No such file" \
    image import nope "$T/nope.raw"
printf 'QFI\xfb\x00\x00\x00\x03garbage' >"$T/broken.qcow2"; truncate -s 1M "$T/broken.qcow2"
expect_error "a corrupt qcow2: 'size could not be retrieved'" "$T_IMPORT" "image size of .* could not be retrieved" \
    image import broken "$T/broken.qcow2"
gzip -c "$raw" >"$T/small.raw.gz"
expect_error "a gzip file is refused with a hint" "$T_IMPORT" "gzip-compressed \(run: gunzip\)" \
    image import gz "$T/small.raw.gz"
qemu-img create -q -f qcow2 -F raw -b "$raw" "$T/overlay.qcow2"
expect_error "a qcow2 overlay is refused" "$T_IMPORT" "overlay with a backing file" \
    image import ov "$T/overlay.qcow2"
expect_error "an existing image name is refused" "$T_IMPORT" "image 'small' already exists" \
    image import small "$raw"
expect_error "an invalid name is refused" "$T_IMPORT" "invalid image name 'Bad/Name'" \
    image import Bad/Name "$raw"
expect_error "a directory is not an image" "$T_IMPORT" "is not a regular file" image import d "$T"
same_state "failed imports leave the state tree exactly as before"

# A full pool: the copy fails part-way and everything is removed.
mkdir -p "$T/tiny"
if mount -t tmpfs -o size=8m tmpfs "$T/tiny" 2>/dev/null; then
    QVM_ROOT_SAVED=$QVM_ROOT
    export QVM_ROOT=$T/tiny/root
    head -c 16M /dev/urandom >"$T/dense.raw"
    run_qvm image import big "$T/dense.raw"
    [ "$rc" = 1 ] && grep -qE "^Error $T_IMPORT: .*(No space left|cannot copy)" <<<"$err" &&
        ok "a full pool: the copy fails with a clear error" || { not_ok "full pool error"; echo "$err" | diag; }
    [ -z "$(ls -A "$QVM_ROOT/var/lib/qvm/pools/default/images" 2>/dev/null)" ] &&
        [ -z "$(ls -A "$QVM_ROOT/var/lib/qvm/journal")" ] &&
        ok "a full pool: nothing of the image or its journal remains" || { not_ok "full pool leftovers"; find "$QVM_ROOT" | diag; }
    export QVM_ROOT=$QVM_ROOT_SAVED
    umount "$T/tiny"
else
    skip "cannot mount a tmpfs here to fill a pool"
fi

# Every journaled step: an injected failure, then a SIGKILL, at that step.
QVM_FAULT_TRACE=$T/steps "$QVM" image import traced "$raw" >/dev/null 2>&1
"$QVM" image ls >/dev/null 2>&1
steps=$(cat "$T/steps" 2>/dev/null)
[ "$(echo "$steps" | wc -l)" -ge 3 ] && ok "import reports its journaled steps: $(echo $steps)" || not_ok "no step trace"
rm -rf "$QVM_ROOT/var/lib/qvm/pools/default/images/traced"
before=$(state_snapshot)
for step in $steps; do
    QVM_FAULT=$step run_qvm image import faulty "$raw"
    [ "$rc" = 1 ] && grep -q "injected failure after step '$step'" <<<"$err" &&
        ok "failure after '$step': exit 1 with the error" || { not_ok "failure after $step"; echo "$err" | diag; }
    same_state "failure after '$step': rolled back completely"
    (QVM_FAULT=kill:$step exec "$QVM" image import faulty "$raw" >/dev/null 2>&1)
    krc=$?
    [ "$krc" = 137 ] && ls "$QVM_ROOT"/var/lib/qvm/journal/*.jnl >/dev/null 2>&1 &&
        ok "SIGKILL at '$step' leaves a journal" || not_ok "SIGKILL at $step (status $krc)"
    run_qvm image ls
    grep -q "was interrupted; rolled it back" <<<"$err" && ok "the next command rolls back the import killed at '$step'" ||
        { not_ok "no rollback reported after kill at $step"; echo "$err" | diag; }
    same_state "SIGKILL at '$step': state exactly as before"
done
run_qvm doctor
[ "$rc" = 0 ] && ok "doctor finds nothing after the fault runs" || { not_ok "doctor"; echo "$out" | diag; }
done_testing
