#!/usr/bin/env bash
# VM bundles (qvm export, import, scan) with the real qemu-img, and real
# Btrfs and ZFS pools (loop-mounted Btrfs, zfs-fuse) where this machine has
# them; no VM boots (import --no-start, except the fault runs, whose QEMU
# sits in its BIOS for a moment). A VM on a dir pool is exported and
# imported on a second host (its own QVM_ROOT) byte-equal, with the same
# identity and seed; imported under a new name with a new uuid, MAC,
# instance-id, host name and seed; carried across drivers dir -> btrfs ->
# zfs -> dir with the disk byte-equal and sparse at every hop; a
# cut-short stream, a flipped byte, a wrong magic, a tampered header, a
# full pool (a tiny loop-mounted ext4) and an existing name or uuid are
# refused and leave nothing; an injected failure and a SIGKILL at every
# enumerated step of import and export leave nothing; scan registers a
# bundle copied in from elsewhere and refuses duplicates, touching neither.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
TE="exporting virtual machine"
TI="importing virtual machine"
A=$QVM_ROOT B=$T/b
mkdir -p "$B"
PA=$A/var/lib/qvm/pools/default PB=$B/var/lib/qvm/pools/default

# --- a VM with data on a dir pool ------------------------------------------------
raw=$T/src.raw
truncate -s 96M "$raw"
for off in 0 30 60; do head -c 1M /dev/urandom | dd of="$raw" bs=1M seek=$off conv=notrunc status=none; done
run_qvm image import deb "$raw"
[ "$rc" = 0 ] || { not_ok "setup: image import"; echo "$err" | diag; }
cat >"$T/e.yaml" <<'EOF'
qvm: vm
name: e
memory: 128
disk:
  zvol:
    base: deb
---
qvm: user-data
hostname: e        # user-data's own host name: a renamed copy must not keep it
runcmd: [echo hi]
---
qvm: meta-data
instance-id: e-fixed-1
EOF
run_qvm up --no-start "$T/e.yaml"
[ "$rc" = 0 ] || { not_ok "setup: up"; echo "$err" | diag; }
edisk=$(ls "$PA"/vms/e/disk0.*)
efmt=${edisk##*.}
# Data the image does not have: the disk is more than a clone.
if [ "$efmt" = qcow2 ]; then
    qemu-io -f qcow2 -c 'write -P 0xab 45M 2M' -c 'write -z 30M 1M' "$edisk" >/dev/null
else
    printf '\xab%.0s' $(seq 2097152) | dd of="$edisk" bs=1M seek=45 conv=notrunc status=none
fi
ok "setup: VM e on the dir pool ($efmt disk) with data of its own"
seed_iid() { grep -ao 'instance-id: *"\?[A-Za-z0-9_.:-]*' "$1" | head -1 | sed 's/.*: *"\?//'; }
jq_() { python3 -c 'import json,sys; d=json.load(open(sys.argv[1])); print(eval(sys.argv[2]))' "$@"; }

# --- export ------------------------------------------------------------------------
before_a=$(state_snapshot)
"$QVM" export e >"$T/e.qvmb" 2>"$T/err"
[ $? = 0 ] && ok "export e > FILE" || { not_ok "export"; diag <"$T/err"; }
[ "$(head -c 12 "$T/e.qvmb")" = "QVMBUNDLE 1" ] && sed -n 2p "$T/e.qvmb" | grep -q '"compression":"zstd"' &&
    ok "the bundle starts with its magic and a header naming zstd" || { not_ok "magic"; head -c 200 "$T/e.qvmb" | diag; }
size=$(stat -c %s "$T/e.qvmb")
[ "$size" -lt $((6 << 20)) ] && ok "holes and zeroes stay out: $((size >> 10)) KiB for a 96 MiB disk with 5 MiB of data" ||
    not_ok "bundle is $size bytes"
[ "$(state_snapshot)" = "$before_a" ] && ok "export changes nothing (its temporary raw copy is gone)" ||
    { not_ok "export left something"; diff <(echo "$before_a") <(state_snapshot) | diag; }
run_qvm export --output "$T/e2.qvmb" e
[ "$rc" = 0 ] && [ ! -e "$T/e2.qvmb.part" ] && [ "$(head -c 12 "$T/e2.qvmb")" = "QVMBUNDLE 1" ] &&
    ok "export --output FILE writes the file" || { not_ok "export --output"; echo "$err" | diag; }
expect_error "export of a missing VM" "$TE" "no VM named 'nope'" export nope
run_qvm export --from s1 e
[ "$rc" = 1 ] && grep -q -- "--from SNAP2 needs --snapshot" <<<"$err" && ok "--from without --snapshot is refused" ||
    { not_ok "--from alone"; echo "$err" | diag; }

# --- import on another host: the same VM -------------------------------------------
QVM_ROOT=$B run_qvm import --no-start <"$T/e.qvmb"
[ "$rc" = 0 ] && ok "import on a second host" || { not_ok "import B"; echo "$err" | diag; }
bdisk=$(ls "$PB"/vms/e/disk0.* 2>/dev/null)
qemu-img compare -q "$edisk" "$bdisk" && ok "the imported disk is byte-equal to the exported one" ||
    not_ok "disk differs ($edisk vs $bdisk)"
cmp -s "$PA/vms/e/seed.iso" "$PB/vms/e/seed.iso" && cmp -s "$PA/vms/e/vm.yaml" "$PB/vms/e/vm.yaml" &&
    ok "the seed and the qvm file travel unchanged (cloud-init sees the same instance)" || not_ok "seed or vm.yaml differ"
[ "$(jq_ "$PA/vms/e/vm.json" 'd["uuid"], d["network"]["mac"], d["instance_id"]')" = \
  "$(jq_ "$PB/vms/e/vm.json" 'd["uuid"], d["network"]["mac"], d["instance_id"]')" ] &&
    ok "uuid, MAC and instance-id are the VM's own" || not_ok "identity changed"
[ "$(jq_ "$PB/vms/e/vm.json" 'd.get("image"), d["origin"]["image"], d["origin"]["vm"]')" = "(None, 'deb', 'e')" ] &&
    ok "the imported disk depends on no image; vm.json says where it came from" ||
    { not_ok "origin"; cat "$PB/vms/e/vm.json" | diag; }
QVM_ROOT=$B run_qvm image ls --json
[ "$(echo "$out" | python3 -c 'import json,sys; print(len(json.load(sys.stdin)))')" = 0 ] &&
    ok "the second host needs no image for it" || { not_ok "images on B"; echo "$out" | diag; }
before_b=$(QVM_ROOT=$B state_snapshot)
QVM_ROOT=$B expect_error "importing over an existing name is refused" "$TI" "VM 'e' already exists" import --no-start --file "$T/e.qvmb"
# The same VM under another name (its bundle renamed by hand): still the same uuid.
mv "$PB/vms/e" "$PB/vms/e9" && sed -i 's/"name":"e",/"name":"e9",/' "$PB/vms/e9/vm.json"
QVM_ROOT=$B expect_error "the same VM (uuid) under another name is refused without --name" "$TI" \
    "VM 'e9' on this host is the same VM" import --no-start --file "$T/e.qvmb"
sed -i 's/"name":"e9",/"name":"e",/' "$PB/vms/e9/vm.json" && mv "$PB/vms/e9" "$PB/vms/e"
[ "$(QVM_ROOT=$B state_snapshot)" = "$before_b" ] && ok "refused imports change nothing" || not_ok "refusal left something"

# --- import under a new name: a new machine ----------------------------------------
run_qvm import --name f --no-start --file "$T/e.qvmb"
[ "$rc" = 0 ] && ok "import --name f beside e" || { not_ok "import --name"; echo "$err" | diag; }
fdisk=$(ls "$PA"/vms/f/disk0.* 2>/dev/null)
qemu-img compare -q "$edisk" "$fdisk" && ok "f's disk is byte-equal to e's" || not_ok "f disk differs"
python3 - "$PA/vms/e/vm.json" "$PA/vms/f/vm.json" <<'PY' && ok "f has its own uuid, MAC, instance-id and host name" || not_ok "f identity"
import json, sys
e, f = (json.load(open(p)) for p in sys.argv[1:])
assert f["name"] == "f" and f["uuid"] != e["uuid"] and f["network"]["mac"] != e["network"]["mac"]
assert f["instance_id"].startswith("f-") and f["instance_id"] != e["instance_id"] and f["hostname"] == "f"
PY
iid=$(seed_iid "$PA/vms/f/seed.iso")
[ "$iid" = "$(jq_ "$PA/vms/f/vm.json" 'd["instance_id"]')" ] && grep -aq 'local-hostname: "f"' "$PA/vms/f/seed.iso" &&
    grep -aq 'hostname: "f"' "$PA/vms/f/seed.iso" && ! grep -aq 'hostname: e' "$PA/vms/f/seed.iso" &&
    ok "f's seed: new instance-id ($iid), meta-data and user-data host name f" || { not_ok "f seed"; strings "$PA/vms/f/seed.iso" | grep -a -e instance -e hostname | diag; }
grep -q '^name: "f"' "$PA/vms/f/vm.yaml" && grep -q '# user-data.s own host name' "$PA/vms/f/vm.yaml" &&
    ok "f's qvm file names f, every other byte as written" || { not_ok "f vm.yaml"; diag <"$PA/vms/f/vm.yaml"; }
run_qvm ls --json
[ "$(echo "$out" | python3 -c 'import json,sys; print(sorted(v["name"] for v in json.load(sys.stdin)))')" = "['e', 'f']" ] &&
    ok "qvm ls lists e and f" || { not_ok "ls"; echo "$out" | diag; }

# --- damaged streams leave nothing ---------------------------------------------------
before_b=$(QVM_ROOT=$B state_snapshot)
refused() {  # refused DESC PATTERN FILE
    QVM_ROOT=$B run_qvm import --name g --no-start --file "$3"
    if [ "$rc" = 1 ] && grep -qE "^Error $TI: .*$2" <<<"$err" && [ "$(QVM_ROOT=$B state_snapshot)" = "$before_b" ]; then
        ok "$1"
    else
        not_ok "$1"; { echo "rc=$rc"; echo "$err"; diff <(echo "$before_b") <(QVM_ROOT=$B state_snapshot); } | diag
    fi
}
head -c $((size / 2)) "$T/e.qvmb" >"$T/cut.qvmb"
refused "a cut-short stream is refused and leaves nothing" "cut short" "$T/cut.qvmb"
head -c $((size - 10)) "$T/e.qvmb" >"$T/cut2.qvmb"
refused "a stream missing its checksum's last bytes is refused" "cut short" "$T/cut2.qvmb"
python3 - "$T/e.qvmb" "$T/flip.qvmb" <<'PY'
import sys
d = bytearray(open(sys.argv[1], "rb").read())
d[len(d) * 3 // 4] ^= 0x01         # one flipped bit in the disk's data
open(sys.argv[2], "wb").write(d)
PY
refused "a flipped byte is refused and leaves nothing" "damaged|checksum" "$T/flip.qvmb"
sed '1s/QVMBUNDLE 1/QVMBUNDLE 9/' "$T/e.qvmb" >"$T/magic.qvmb"
refused "a wrong magic is refused" "not a qvm VM bundle" "$T/magic.qvmb"
sed '2s/"name":"e"/"name":"x"/' "$T/e.qvmb" >"$T/hdr.qvmb"
refused "a header that disagrees with the checked manifest is refused" "disagree on 'name'" "$T/hdr.qvmb"
"$QVM" image send deb@v1 >"$T/img.qs" 2>/dev/null
refused "an image stream is not a bundle" "not a qvm VM bundle" "$T/img.qs"
[ -z "$(ls -A "$B/var/lib/qvm/journal")" ] && ok "no journal left by the refusals" || not_ok "journal left"

# --- a full pool -----------------------------------------------------------------------
if [ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null; then
    truncate -s 16M "$T/tiny.img"
    mkfs.ext4 -q -F "$T/tiny.img" >/dev/null 2>&1
    mkdir -p "$T/tiny"
    if mount -o loop "$T/tiny.img" "$T/tiny" 2>"$T/mnt.err"; then
        QVM_ROOT=$B "$QVM" -q pool add tiny --driver dir --path "$T/tiny/pool" >/dev/null 2>&1
        # 20 MiB of data that does not compress, in a 16 MiB file system.
        head -c 20M /dev/urandom | dd of="$raw" bs=1M seek=70 conv=notrunc status=none
        QVM_ROOT=$T/c "$QVM" -q image import big "$raw" && printf 'qvm: vm\nname: big\nmemory: 128\ndisk:\n  zvol:\n    base: big\n---\nqvm: user-data\n---\nqvm: meta-data\n' >"$T/big.yaml" &&
            QVM_ROOT=$T/c "$QVM" -q up --no-start "$T/big.yaml" && QVM_ROOT=$T/c "$QVM" export big >"$T/big.qvmb" 2>/dev/null
        tiny_before=$(find "$T/tiny/pool" | sort)
        QVM_ROOT=$B run_qvm import --pool tiny --no-start --file "$T/big.qvmb"
        [ "$rc" = 1 ] && grep -q "No space left on device" <<<"$err" && [ "$(find "$T/tiny/pool" | sort)" = "$tiny_before" ] &&
            [ -z "$(ls -A "$B/var/lib/qvm/journal")" ] &&
            ok "importing into a full pool fails with ENOSPC and leaves the pool as it was" ||
            { not_ok "full pool"; { echo "$err"; find "$T/tiny/pool"; } | diag; }
        QVM_ROOT=$B "$QVM" -q pool rm tiny >/dev/null 2>&1
        umount "$T/tiny"
    else
        skip "full pool: cannot loop-mount ext4 here: $(tail -1 "$T/mnt.err")"
    fi
else
    skip "full pool: needs root and mkfs.ext4"
fi

# --- every step of import and export, failed and killed ------------------------------
before_a=$(state_snapshot)
QVM_FAULT_TRACE=$T/isteps "$QVM" import --name t --file "$T/e.qvmb" >/dev/null 2>"$T/err" ||
    { not_ok "traced import"; diag <"$T/err"; }
"$QVM" rm t >/dev/null 2>&1
isteps=$(cat "$T/isteps" 2>/dev/null)
[ "$(echo "$isteps" | wc -l)" -ge 5 ] && ok "import reports its journaled steps: $(echo $isteps)" || not_ok "import steps: $isteps"
same_a() {
    local now; now=$(state_snapshot)
    if [ "$now" = "$before_a" ] && [ -z "$(qemu_procs)" ]; then ok "$1"; else
        not_ok "$1"; { diff <(echo "$before_a") <(echo "$now"); qemu_procs; } | diag; fi
}
for step in $isteps; do
    QVM_FAULT=$step run_qvm import --name t --file "$T/e.qvmb"
    [ "$rc" = 1 ] && grep -q "^Error $TI: injected failure after step '$step'" <<<"$err" &&
        ok "import, failure after '$step': exit 1" || { not_ok "import, failure after $step"; echo "$err" | diag; }
    same_a "import, failure after '$step': nothing left"
    (QVM_FAULT=kill:$step exec "$QVM" import --name t --file "$T/e.qvmb" >/dev/null 2>&1)
    [ $? = 137 ] || not_ok "import, SIGKILL at '$step' did not kill"
    run_qvm ls
    grep -q "'import t' was interrupted; rolled it back" <<<"$err" &&
        ok "the next command rolls back the import killed at '$step'" || { not_ok "no rollback after kill at $step"; echo "$err" | diag; }
    same_a "import, SIGKILL at '$step': nothing left"
done
QVM_FAULT_TRACE=$T/esteps "$QVM" export --output "$T/t.qvmb" e >/dev/null 2>"$T/err" || { not_ok "traced export"; diag <"$T/err"; }
rm -f "$T/t.qvmb"
esteps=$(cat "$T/esteps" 2>/dev/null)
[ -n "$esteps" ] && ok "export reports its steps: $(echo $esteps)" || not_ok "no export steps"
for step in $esteps; do
    QVM_FAULT=$step run_qvm export --output "$T/t.qvmb" e
    [ "$rc" = 1 ] && [ ! -e "$T/t.qvmb" ] && [ ! -e "$T/t.qvmb.part" ] &&
        ok "export, failure after '$step': no file" || { not_ok "export, failure after $step"; echo "$err" | diag; }
    same_a "export, failure after '$step': nothing left"
    (QVM_FAULT=kill:$step exec "$QVM" export --output "$T/t.qvmb" e >/dev/null 2>&1)
    run_qvm ls
    grep -q "'export e' was interrupted; rolled it back" <<<"$err" && [ ! -e "$T/t.qvmb" ] && [ ! -e "$T/t.qvmb.part" ] &&
        ok "the next command removes what the export killed at '$step' wrote" || { not_ok "export kill at $step"; echo "$err" | diag; ls "$T" | diag; }
    same_a "export, SIGKILL at '$step': nothing left"
done

# --- scan ---------------------------------------------------------------------------
mkdir -p "$T/p2"
QVM_ROOT=$B "$QVM" -q pool add p2 --driver dir --path "$T/p2"
# f's bundle arrives on B by a copy of its directory (its disk stands alone).
mkdir -p "$T/p2/vms" && cp -a --sparse=always "$PA/vms/f" "$T/p2/vms/f"
QVM_ROOT=$B run_qvm scan --json
python3 - <<PY && ok "scan registers the copied bundle: its vm.json now names pool p2" || { not_ok "scan register"; echo "$out$err" | diag; }
import json
s = {v["name"]: v for v in json.loads('''$out''')}
assert s["f"]["status"] == "registered" and "pool 'default' -> 'p2'" in s["f"]["detail"], s
assert s["e"]["status"] == "ok", s
assert json.load(open("$T/p2/vms/f/vm.json"))["pool"] == "p2"
PY
QVM_ROOT=$B run_qvm scan
[ "$rc" = 0 ] && grep -q "^p2 *f *ok" <<<"$out" && ok "a second scan finds it registered" || { not_ok "rescan"; echo "$out$err" | diag; }
# The same VM twice: e copied into p2 under the name e2 (same uuid), and f
# copied into the default pool (same name).
cp -a --sparse=always "$PB/vms/e" "$T/p2/vms/e2"
sed -i 's/"name":"e"/"name":"e2"/' "$T/p2/vms/e2/vm.json"
cp -a --sparse=always "$T/p2/vms/f" "$PB/vms/f"
sums=$(md5sum "$PB/vms/e/vm.json" "$T/p2/vms/e2/vm.json" "$T/p2/vms/f/vm.json" "$PB/vms/f/vm.json")
QVM_ROOT=$B run_qvm scan --json
python3 - <<PY && ok "scan reports the same uuid and the same name in two pools" || { not_ok "duplicates"; echo "$out$err" | diag; }
import json
s = {(v["pool"], v["name"]): v for v in json.loads('''$out''')}
for k in (("default", "e"), ("p2", "e2"), ("default", "f"), ("p2", "f")):
    assert s[k]["status"] == "duplicate", (k, s)
assert "same VM" in s[("p2", "e2")]["detail"] and "pools" in s[("p2", "f")]["detail"]
PY
[ "$rc" = 1 ] && grep -q "^Error scanning pools: 4 bundles were not registered" <<<"$err" && ok "scan exits 1 naming the refusals" ||
    { not_ok "scan exit"; echo "$err" | diag; }
[ "$(md5sum "$PB/vms/e/vm.json" "$T/p2/vms/e2/vm.json" "$T/p2/vms/f/vm.json" "$PB/vms/f/vm.json")" = "$sums" ] &&
    ok "neither copy of a duplicate is touched" || not_ok "a duplicate was changed"
rm -rf "$T/p2/vms/e2" "$PB/vms/f"
rm "$T/p2/vms/f/seed.iso"
QVM_ROOT=$B run_qvm scan --pool p2
[ "$rc" = 1 ] && grep -q "seed .* is missing" <<<"$out" && ok "a bundle without its seed is reported invalid" ||
    { not_ok "invalid"; echo "$out$err" | diag; }
rm -rf "$T/p2/vms/f"

# --- snapshots, full and incremental ---------------------------------------------------
if "$QVM" snapshot --help >/dev/null 2>&1; then
    C=$T/c2
    mkdir -p "$C"
    PC=$C/var/lib/qvm/pools/default
    run_qvm snapshot e s1
    [ "$rc" = 0 ] || { not_ok "setup: snapshot s1"; echo "$err" | diag; }
    head -c 1M /dev/urandom >"$T/change"
    if [ "$efmt" = qcow2 ]; then qemu-io -f qcow2 -c "write -s $T/change 50M 1M" -c 'write -z 45M 64k' "$edisk" >/dev/null
    else dd if="$T/change" of="$edisk" bs=1M seek=50 conv=notrunc status=none
         dd if=/dev/zero of="$edisk" bs=64k seek=720 count=1 conv=notrunc status=none; fi
    run_qvm snapshot e s2
    [ "$rc" = 0 ] || { not_ok "setup: snapshot s2"; echo "$err" | diag; }
    cp --sparse=always "$edisk" "$T/e-s2.$efmt"
    "$QVM" export --snapshot s1 e >"$T/s1.qvmb" 2>"$T/err" && ok "export --snapshot s1" || { not_ok "export s1"; diag <"$T/err"; }
    "$QVM" export --snapshot s2 --from s1 e >"$T/s2.qvmb" 2>"$T/err" && ok "export --snapshot s2 --from s1" ||
        { not_ok "export s2 --from s1"; diag <"$T/err"; }
    inc=$(stat -c %s "$T/s2.qvmb") full=$(stat -c %s "$T/s1.qvmb")
    [ "$inc" -gt $((1 << 20)) ] && [ "$inc" -lt $((1200 << 10)) ] && [ "$full" -gt $((2 << 20)) ] &&
        ok "the incremental bundle carries only the 1 MiB change ($((inc >> 10)) KiB; s1 whole: $((full >> 10)) KiB)" ||
        not_ok "incremental bundle is $inc bytes, full $full"
    QVM_ROOT=$C run_qvm import --no-start --file "$T/s2.qvmb"
    [ "$rc" = 1 ] && grep -q "import the bundle of 's1' first" <<<"$err" && [ ! -e "$PC/vms/e" ] &&
        ok "an incremental bundle without its base VM is refused" || { not_ok "no base"; echo "$err" | diag; }
    QVM_ROOT=$C run_qvm import --no-start --file "$T/s1.qvmb"
    [ "$rc" = 0 ] && QVM_ROOT=$C "$QVM" snapshot ls e 2>/dev/null | grep -qw s1 &&
        ok "the full bundle of s1 makes VM e with snapshot s1" || { not_ok "import s1"; echo "$err" | diag; }
    before_c=$(QVM_ROOT=$C state_snapshot)
    QVM_FAULT_TRACE=$T/incsteps QVM_ROOT=$C run_qvm import --no-start --file "$T/s2.qvmb"
    [ "$rc" = 0 ] && ok "the incremental bundle applies onto it" || { not_ok "import s2"; echo "$err" | diag; }
    cdisk=$(ls "$PC"/vms/e/disk0.*)
    qemu-img compare -q "$T/e-s2.$efmt" "$cdisk" && ok "e's disk is now byte-equal to snapshot s2 of the source" ||
        not_ok "incremental result differs"
    QVM_ROOT=$C "$QVM" snapshot ls e 2>/dev/null | grep -qw s2 && ok "and e has snapshot s2" || not_ok "no s2 after import"
    QVM_ROOT=$C run_qvm import --no-start --file "$T/s2.qvmb"
    [ "$rc" = 1 ] && grep -q "already has snapshot 's2'" <<<"$err" && ok "applying it twice is refused" ||
        { not_ok "twice"; echo "$err" | diag; }
    # Every step of the incremental import, failed and killed, from s1 again.
    QVM_ROOT=$C "$QVM" -q rm e
    QVM_ROOT=$C "$QVM" -q import --no-start --file "$T/s1.qvmb"
    before_c=$(QVM_ROOT=$C state_snapshot)
    s1_sum=$(md5sum <"$(ls "$PC"/vms/e/disk0.*)")
    for step in $(cat "$T/incsteps" 2>/dev/null); do
        QVM_FAULT=$step QVM_ROOT=$C run_qvm import --no-start --file "$T/s2.qvmb"
        (QVM_FAULT=kill:$step QVM_ROOT=$C exec "$QVM" import --no-start --file "$T/s2.qvmb" >/dev/null 2>&1)
        QVM_ROOT=$C run_qvm ls
        now=$(QVM_ROOT=$C state_snapshot)
        [ "$now" = "$before_c" ] && [ "$(md5sum <"$(ls "$PC"/vms/e/disk0.*)")" = "$s1_sum" ] &&
            ok "incremental import failed and killed at '$step': e is still at s1, nothing left" ||
            { not_ok "incremental fault at $step"; diff <(echo "$before_c") <(echo "$now") | diag; }
    done
    [ -s "$T/incsteps" ] || not_ok "the incremental import reported no steps"
else
    skip "snapshots: this build has no 'qvm snapshot' verb yet"
fi

# --- across drivers: dir -> btrfs -> zfs -> dir -------------------------------------
source "$top/tests/pools/btrfs.sh"
source "$top/tests/pools/zfs.sh"
hop() {  # hop DESC FROM_VM TO_VM POOL: export FROM_VM, import it as TO_VM into POOL
    "$QVM" export "$2" >"$T/hop.qvmb" 2>"$T/err" || { not_ok "$1: export"; diag <"$T/err"; return 1; }
    run_qvm import --name "$3" --pool "$4" --no-start --file "$T/hop.qvmb"
    [ "$rc" = 0 ] && ok "$1" || { not_ok "$1"; echo "$err" | diag; return 1; }
}
if make_btrfs_pool bt 256; then
    hop "dir -> btrfs: import --pool bt" e g bt
    gdisk=$BTRFS_MNT/vms/g/disk0/disk.raw
    [ "$(stat -c %i "$BTRFS_MNT/vms/g/disk0")" = 256 ] && ok "g's disk0 is a subvolume, as the btrfs driver keeps disks" ||
        not_ok "disk0 not a subvolume"
    qemu-img compare -q "$edisk" "$gdisk" && ok "g's disk is byte-equal to e's" || not_ok "g disk differs"
    [ $(( $(stat -c %b "$gdisk") * 512 )) -lt $((8 << 20)) ] && ok "g's disk is sparse on btrfs" || not_ok "g not sparse"
    if [ -s "$T/s2.qvmb" ]; then
        # A copy made from s1 on btrfs takes the changes s1 -> s2 of its origin.
        run_qvm import --pool bt --name eb --no-start --file "$T/s1.qvmb"
        [ "$rc" = 0 ] || { not_ok "import s1 into btrfs"; echo "$err" | diag; }
        run_qvm import --name eb --no-start --file "$T/s2.qvmb"
        [ "$rc" = 0 ] && qemu-img compare -q "$T/e-s2.$efmt" "$BTRFS_MNT/vms/eb/disk0/disk.raw" &&
            ok "dir -> btrfs incremental: a copy of e made from s1 takes s1 -> s2 and equals s2" ||
            { not_ok "btrfs incremental"; echo "$err" | diag; }
        "$QVM" rm eb >/dev/null 2>&1
    fi
    if make_zfs_pool zp 256; then
        hop "btrfs -> zfs: import --pool zp" g h zp
        hdisk=$ZFS_MNT/vms/h/disk0/disk.raw
        zfs list -H -o name "$ZFS_DATASET/vms/h/disk0" >/dev/null 2>&1 && ok "h's disk0 is a zfs dataset" || not_ok "no disk dataset"
        qemu-img compare -q "$edisk" "$hdisk" && ok "h's disk is byte-equal to e's" || not_ok "h disk differs"
        hop "zfs -> dir: import --pool default" h k default
        qemu-img compare -q "$edisk" "$(ls "$PA"/vms/k/disk0.*)" && ok "k, back on dir, is byte-equal to e" || not_ok "k differs"
        zbefore=$(zfs_pool_state)
        (QVM_FAULT=kill:disk-written exec "$QVM" import --name z --pool zp --no-start --file "$T/e.qvmb" >/dev/null 2>&1)
        run_qvm ls
        [ "$(zfs_pool_state)" = "$zbefore" ] && ok "an import into zfs killed after its disk was written leaves no dataset" ||
            { not_ok "zfs kill"; diff <(echo "$zbefore") <(zfs_pool_state) | diag; }
        for v in h; do "$QVM" rm "$v" >/dev/null 2>&1; done
    fi
    bbefore=$(btrfs_pool_state)
    QVM_FAULT=disk-written run_qvm import --name z --pool bt --no-start --file "$T/e.qvmb"
    [ "$(btrfs_pool_state)" = "$bbefore" ] && ok "a failed import into btrfs leaves no subvolume" ||
        { not_ok "btrfs fail"; diff <(echo "$bbefore") <(btrfs_pool_state) | diag; }
    "$QVM" rm g k >/dev/null 2>&1
fi

run_qvm doctor
[ "$rc" = 0 ] && ok "doctor finds nothing on the first host" || { not_ok "doctor A"; echo "$out" | diag; }
QVM_ROOT=$B run_qvm doctor
[ "$rc" = 0 ] && ok "doctor finds nothing on the second host" || { not_ok "doctor B"; echo "$out" | diag; }
done_testing
