#!/usr/bin/env bash
# Image versions (seed 001's life cycle) and never stranding data (seed 004),
# on the default dir pool with the real qemu-img: states and the
# transitions between them, deprecated and retired versions taking no new
# VMs, removal refused with the names of the VMs that use an image or a
# version, and a retired version's space coming back when its last VM goes.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT

raw=$T/small.raw
truncate -s 64M "$raw"
head -c 1M /dev/urandom | dd of="$raw" conv=notrunc status=none
"$QVM" image import deb "$raw" >/dev/null 2>&1 || not_ok "setup: import"
vmfile() {  # vmfile PATH NAME BASE
    printf 'qvm: vm\nname: %s\nmemory: 128\ndisk:\n  zvol:\n    base: %s\n---\nqvm: user-data\n---\nqvm: meta-data\n' \
        "$2" "$3" >"$1"
}
vmfile "$T/a.yaml" a deb
vmfile "$T/b.yaml" b deb@v1
vmfile "$T/d.yaml" d deb
v1=$QVM_ROOT/var/lib/qvm/pools/default/images/deb/v1.raw
state() { "$QVM" image versions --json deb | python3 -c 'import json,sys; print([v["state"] for v in json.load(sys.stdin) if v["name"]=="v1"][0])'; }

run_qvm image versions deb
[ "$rc" = 0 ] && grep -qE "^v1 +published" <<<"$out" && ok "image versions lists v1 as published" || { not_ok "versions"; echo "$out$err" | diag; }
run_qvm up --no-start "$T/a.yaml"
[ "$rc" = 0 ] && ok "up from the newest published version" || { not_ok "up a"; echo "$err" | diag; }
run_qvm image versions --json deb
python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[0]; assert v["vms"]==["a"], v' "$T/out" &&
    ok "versions --json names the VMs cloned from each version" || { not_ok "versions vms"; cat "$T/out" | diag; }

expect_error "image rm is refused while a VM uses it, naming the VM" "removing image" \
    "deb is used by VM a; remove it first" image rm deb
expect_error "version rm is refused while a VM uses it" "removing image" "deb@v1 is used by VM a" image rm deb@v1
[ -f "$v1" ] && ok "refusals removed nothing" || not_ok "v1 gone after a refusal"

run_qvm image deprecate deb@v1
[ "$rc" = 0 ] && [ "$(state)" = deprecated ] && ok "deprecate" || { not_ok "deprecate"; echo "$err" | diag; }
expect_error "a deprecated version takes no new VMs (pinned)" "provisioning virtual machine" \
    "deb@v1' is deprecated: it takes no new VMs \(existing ones keep running\)" up --no-start "$T/b.yaml"
expect_error "nor unpinned: no published version is left" "provisioning virtual machine" \
    "image 'deb' has no published version" up --no-start "$T/d.yaml"
run_qvm ls --json
grep -q '"name":"a"' "$T/out" && ok "the existing VM is untouched by the deprecation" || not_ok "VM a gone"
run_qvm image publish deb@v1
[ "$(state)" = published ] && ok "a deprecated version can be published again" || not_ok "republish"
run_qvm image unpublish deb@v1
[ "$(state)" = unpublished ] && ok "unpublish" || not_ok "unpublish"
run_qvm up --no-start "$T/b.yaml"
[ "$rc" = 0 ] && ok "an unpublished version can still be pinned" || { not_ok "pinned unpublished"; echo "$err" | diag; }
expect_error "a state change needs a version" "changing image version state" "name a version: deb@vN" \
    image retire deb
run_qvm image retire deb@v1
[ "$rc" = 0 ] && [ "$(state)" = retired ] && [ -f "$v1" ] &&
    ok "retire with VMs left keeps the data" || { not_ok "retire"; echo "$out$err" | diag; }
expect_error "retired is final" "changing image version state" "deb@v1 is retired and cannot become published" \
    image publish deb@v1
"$QVM" rm a >/dev/null 2>&1
[ -f "$v1" ] && ok "the version stays while VM b still uses it" || not_ok "freed too early"
run_qvm rm b
[ ! -e "$v1" ] && grep -q "its space is freed" <<<"$out" &&
    ok "the retired version's space comes back when its last VM goes" || { not_ok "not freed"; echo "$out$err" | diag; }
run_qvm image versions --json deb
python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))[0]; assert v["state"]=="retired" and v["data_removed"], v' "$T/out" &&
    ok "the retired version stays listed (history), marked as freed" || not_ok "history"
run_qvm image rm deb
[ "$rc" = 0 ] && [ ! -e "$QVM_ROOT/var/lib/qvm/pools/default/images/deb" ] && ok "image rm once nothing uses it" ||
    { not_ok "image rm"; echo "$err" | diag; }
expect_error "image rm of a missing image" "removing image" "no image named 'deb'" image rm deb

# a version removed directly
"$QVM" image import deb2 "$raw" >/dev/null 2>&1
run_qvm image rm deb2@v1
[ "$rc" = 0 ] && [ ! -e "$QVM_ROOT/var/lib/qvm/pools/default/images/deb2/v1.raw" ] && ok "version rm when unused" ||
    { not_ok "version rm"; echo "$err" | diag; }
vmfile "$T/c.yaml" c deb2@v1
expect_error "a removed version cannot be used" "provisioning virtual machine" "image 'deb2' has no version v1" \
    up --no-start "$T/c.yaml"
# commit: the administration step makes v2 from a VM's disk
"$QVM" image import base "$raw" >/dev/null 2>&1
vmfile "$T/e.yaml" edit base
"$QVM" up --no-start "$T/e.yaml" >/dev/null 2>&1
# change the VM's disk the way a guest would: through its overlay
qemu-io -f qcow2 -c 'write -P 0xab 8M 1M' "$QVM_ROOT/var/lib/qvm/pools/default/vms/edit/disk0.qcow2" >/dev/null
run_qvm image commit base --from edit
[ "$rc" = 0 ] && grep -q "base@v2 is ready (unpublished)" <<<"$out" && ok "image commit makes v2 from the VM's disk" ||
    { not_ok "commit"; echo "$out$err" | diag; }
b=$QVM_ROOT/var/lib/qvm/pools/default/images/base
qemu-img compare -q -f raw -F qcow2 "$b/v2.raw" "$QVM_ROOT/var/lib/qvm/pools/default/vms/edit/disk0.qcow2" &&
    ok "v2 holds exactly the VM's disk" || not_ok "v2 differs from the VM disk"
cmp -s "$b/v1.raw" "$raw" && ok "v1 is unchanged" || not_ok "v1 changed"
run_qvm image versions --json base
python3 -c '
import json,sys
v = {x["name"]: x for x in json.load(open(sys.argv[1]))}
assert v["v2"]["state"] == "unpublished" and v["v2"]["parent"] == "v1", v' "$T/out" &&
    ok "v2 is unpublished with parent v1" || { not_ok "v2 metadata"; cat "$T/out" | diag; }
vmfile "$T/f.yaml" fresh base
run_qvm up --dry-run "$T/f.yaml"
grep -q "clone base@v1" <<<"$out" && ok "unpinned up still takes the newest published version (v1)" || { not_ok "resolve"; echo "$out" | diag; }
"$QVM" image publish base@v2 >/dev/null 2>&1
run_qvm up --dry-run "$T/f.yaml"
grep -q "clone base@v2" <<<"$out" && ok "after publish, up takes v2" || { not_ok "resolve v2"; echo "$out" | diag; }
"$QVM" start edit >/dev/null 2>&1
expect_error "commit from a running VM is refused" "committing image version" "VM 'edit' is running; stop it first" \
    image commit base --from edit
"$QVM" stop --force edit >/dev/null 2>&1
before=$(state_snapshot)
QVM_FAULT_TRACE=$T/csteps "$QVM" image commit base --from edit >/dev/null 2>&1
"$QVM" image rm base@v3 >/dev/null 2>&1
listing() { "$QVM" image versions base 2>/dev/null | awk '{print $1, $2}'; state_snapshot; }
for step in $(cat "$T/csteps"); do
    before=$(listing)
    QVM_FAULT=$step run_qvm image commit base --from edit
    now=$(listing)
    [ "$rc" = 1 ] && [ "$before" = "$now" ] && ok "commit failing after '$step' leaves no version behind" ||
        { not_ok "commit fault $step"; diff <(echo "$before") <(echo "$now") | diag; }
    (QVM_FAULT=kill:$step exec "$QVM" image commit base --from edit >/dev/null 2>&1)
    now=$(listing)
    [ "$before" = "$now" ] && ok "commit killed at '$step': the next command leaves neither data nor a listed version" ||
        { not_ok "commit kill $step"; diff <(echo "$before") <(echo "$now") | diag; }
done
"$QVM" rm edit >/dev/null 2>&1

# --- image edit: the working VM of the administration step ----------------------
# base has v1 published, v2 published, v3 gone: deprecate v2, so the newest
# usable version for ordinary VMs is v1, and edit still takes v2.
"$QVM" image deprecate base@v2 >/dev/null 2>&1
ssh-keygen -q -t ed25519 -N '' -f "$T/key" -C qvm-test-key >/dev/null
before=$(state_snapshot)
QVM_FAULT=seed-written run_qvm image edit --no-start --no-ssh-keys --ssh-key "$T/key.pub" base
[ "$rc" = 1 ] && [ "$before" = "$(state_snapshot)" ] && ls "$QVM_ROOT/run/qvm/" | grep -vq image-edit &&
    ok "image edit failing mid-way leaves nothing (not even its generated qvm file)" || { not_ok "edit fault"; echo "$err" | diag; }
HOME=$T run_qvm image edit --no-start --ssh-key "$T/key.pub" base
bundle=$QVM_ROOT/var/lib/qvm/pools/default/vms/base-edit
[ "$rc" = 0 ] && [ -f "$bundle/vm.json" ] && ok "image edit base provisions the working VM base-edit" || { not_ok "image edit"; echo "$err" | diag; }
grep -q "qvm image commit base --from base-edit" <<<"$out" && ok "and says how to commit it" || { not_ok "edit hint"; echo "$err" | diag; }
run_qvm ls --json
python3 -c '
import json,sys
v = [x for x in json.load(open(sys.argv[1])) if x["name"] == "base-edit"][0]
assert v["image"] == "base" and v["version"] == "v2", v' "$T/out" &&
    ok "it is cloned from v2, the newest version, though v2 is deprecated" || { not_ok "edit version"; echo "$out" | diag; }
grep -qF "$(cut -d' ' -f2 "$T/key.pub")" "$bundle/vm.yaml" && grep -q "^hostname: base-edit" "$bundle/vm.yaml" &&
    ok "its user-data installs the --ssh-key and names the host base-edit" || { not_ok "edit user-data"; cat "$bundle/vm.yaml" | diag; }
expect_error "image edit of a VM name in use is refused" "provisioning virtual machine" "VM 'base-edit' already exists" \
    image edit --no-start --no-ssh-keys base
expect_error "a retired version cannot be edited" "editing image" "image 'base@v3' is retired|no version v3" \
    image edit --no-start --no-ssh-keys --vm e3 base@v3
echo "not a key" >"$T/bad.pub"
expect_error "a --ssh-key that is not a public key is refused" "editing image" "$T/bad.pub is not one OpenSSH public key line" \
    image edit --no-start --no-ssh-keys --vm e4 --ssh-key "$T/bad.pub" base
disk=$(ls "$bundle"/disk0.*)
qemu-io -f "${disk##*.}" -c 'write -P 0x77 2M 1M' "$disk" >/dev/null
run_qvm image commit base --from base-edit
run_qvm image versions --json base
python3 -c '
import json,sys
v = json.load(open(sys.argv[1]))[-1]
assert v["state"] == "unpublished" and v["parent"] == "v2", v' "$T/out" &&
    ok "commit from the working VM makes the next version, parent v2" || { not_ok "edit commit"; echo "$out$err" | diag; }
"$QVM" rm base-edit >/dev/null 2>&1

run_qvm doctor
[ "$rc" = 0 ] && ok "doctor finds nothing" || { not_ok "doctor"; echo "$out" | diag; }
done_testing
