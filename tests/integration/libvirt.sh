#!/usr/bin/env bash
# The libvirt runtime against a real libvirtd (tests/libvirt-env.sh starts one
# if none runs), domain type qemu, on dir pools, with the small test image (no
# guest boots): the golden domain XMLs pass virt-xml-validate; up with runtime
# libvirt chosen by vm.runtime, --runtime and the pool; `virsh list --all` and
# `virsh dumpxml` against what qvm says; start, pause, resume, stop, ls, rm;
# an injected failure and a SIGKILL at every journaled step of up leaving no
# domain defined, and of rm leaving it defined; qvm adopt (refusals, every
# step failed, success); virt-install mode provisioning the seed-format
# example and passing an option qvm does not model.
source "$(dirname "$0")/../lib.sh"
source "$top/tests/libvirt-env.sh"
new_root
trap 'libvirt_down; cleanup_root' EXIT
TP="provisioning virtual machine"
TA="adopting libvirt domain"

# --- the golden domain XMLs against libvirt's schema (no daemon needed) -----
if command -v virt-xml-validate >/dev/null && command -v xmllint >/dev/null; then
    for g in "$top"/tests/unit/golden/domain-*.xml; do
        check "golden $(basename "$g") passes virt-xml-validate (libvirt's domain schema)" \
            virt-xml-validate "$g" domain
    done
else
    skip "virt-xml-validate or xmllint missing (libvirt-clients, libxml2-utils)"
fi

if ! libvirt_up; then
    skip "libvirt: $lv_skip"
    done_testing; exit
fi

raw=$T/small.raw
truncate -s 64M "$raw"
head -c 1M /dev/urandom | dd of="$raw" conv=notrunc status=none
"$QVM" image import tiny "$raw" >/dev/null 2>&1 || not_ok "setup: image import"
P=$QVM_ROOT/var/lib/qvm/pools/default

vmfile() {  # vmfile PATH NAME [extra vm lines...]
    local path=$1 name=$2; shift 2
    {
        echo "qvm: vm"; echo "name: $name"; echo "memory: 128"; echo "vcpus: 1"
        echo "graphics: none"
        echo "disk:"; echo "  bus: virtio"; echo "  zvol:"; echo "    base: ${base:-tiny}"
        for l in "$@"; do echo "$l"; done
        echo "---"; echo "qvm: user-data"; echo "runcmd:"; echo "  - [true]"
        echo "---"; echo "qvm: meta-data"; echo "instance-id: $name-1"
    } >"$path"
}
A=${lv_prefix}a
vmfile "$T/a.yaml" "$A" "runtime: libvirt" "network: user"
before=$(state_snapshot)
defined() { virsh_ dominfo "$1" >/dev/null 2>&1; }
domstate() { virsh_ domstate "$1" 2>/dev/null | head -1; }
same_state() {
    local now; now=$(state_snapshot)
    if [ "$before" = "$now" ] && [ -z "$(lv_domains)" ]; then ok "$1"; else
        not_ok "$1"; diff <(echo "$before") <(echo "$now") | diag; lv_domains | diag; fi
}
json_get() {  # json_get FILE EXPR: a Python expression over v
    python3 -c "import json,sys; v=json.load(open(sys.argv[1])); print($2)" "$1" 2>/dev/null
}
# The facts of a domain XML that qvm decides, one "key=value" per line.
xml_facts() {
    python3 - "$1" <<'EOF'
import sys, xml.etree.ElementTree as ET
d = ET.fromstring(open(sys.argv[1]).read())
ns = {"q": "urn:qvm:domain:1", "qemu": "http://libvirt.org/schemas/domain/qemu/1.0"}
print("type=" + d.get("type"))
print("uuid=" + d.findtext("uuid"))
print("memory_kib=" + d.findtext("memory"))
print("vcpus=" + d.findtext("vcpu"))
disks = [x.find("source").get("file") or x.find("source").get("dev")
         for x in d.findall("devices/disk") if x.find("source") is not None]
print("disk=" + disks[0])
print("seed=" + (disks[1] if len(disks) > 1 else ""))
print("seed_readonly=" + str(d.find("devices/disk[2]/readonly") is not None))
print("pool=" + (d.findtext("metadata/q:vm/q:pool", namespaces=ns) or ""))
print("qvm_uuid=" + (d.findtext("metadata/q:vm/q:uuid", namespaces=ns) or ""))
args = [a.get("value") for a in d.findall("qemu:commandline/qemu:arg", ns)]
fwd = [a for a in args if "hostfwd=" in a]
print("hostfwd=" + (fwd[0].split("hostfwd=")[1] if fwd else ""))
macs = [m.get("address") for m in d.findall("devices/interface/mac")]
macs += [a.split('"mac":"')[1].split('"')[0] for a in args if '"mac"' in a]
print("mac=" + (macs[0] if macs else ""))
iface = d.find("devices/interface")
print("iface=" + ("" if iface is None else iface.get("type") + ":" +
      (iface.find("source").get("network") or iface.find("source").get("bridge") or "")
      if iface is not None and iface.find("source") is not None else
      ("" if iface is None else iface.get("type") + ":")))
print("agent=" + str(any(t.get("name") == "org.qemu.guest_agent.0"
                         for t in d.findall("devices/channel/target"))))
print("serial_log=" + (d.find("devices/serial/log").get("file")
                       if d.find("devices/serial/log") is not None else ""))
print("title=" + (d.findtext("title") or ""))
EOF
}

# --- up with vm.runtime: libvirt, --no-start --------------------------------
run_qvm up --no-start "$T/a.yaml"
if [ "$rc" = 0 ] && grep -q "Defining libvirt domain '$A' at qemu:///system (type qemu)" <<<"$out"; then
    ok "up --no-start with vm.runtime libvirt defines a domain of type qemu"
else
    not_ok "up --no-start (runtime libvirt)"; { echo "$out"; echo "$err"; } | diag
fi
vj=$P/vms/$A/vm.json
[ "$(json_get "$vj" 'v["runtime"]+" "+v["runtime_uri"]')" = "libvirt qemu:///system" ] &&
    ok "vm.json records runtime libvirt and the URI qemu:///system" || not_ok "vm.json runtime"
virsh_ list --all | grep -qE "^ *- +$A +shut off" &&
    ok "virsh list --all shows '$A' shut off" || { not_ok "virsh list --all"; virsh_ list --all | diag; }
run_qvm ls --json
[ "$(json_get "$T/out" '[x["state"] for x in v if x["name"]=="'"$A"'"][0]')" = stopped ] &&
    ok "qvm ls says stopped too" || not_ok "qvm ls state"
port=$(json_get "$T/out" '[x["ssh_port"] for x in v if x["name"]=="'"$A"'"][0]')
virsh_ dumpxml --inactive "$A" >"$T/a.xml"
xml_facts "$T/a.xml" >"$T/a.facts"
uuid=$(json_get "$vj" 'v["uuid"]'); mac=$(json_get "$vj" 'v["network"]["mac"]')
{
    echo "type=qemu"; echo "uuid=$uuid"; echo "memory_kib=131072"; echo "vcpus=1"
    echo "disk=$P/vms/$A/disk0.qcow2"; echo "seed=$P/vms/$A/seed.iso"; echo "seed_readonly=True"
    echo "pool=default"; echo "qvm_uuid=$uuid"; echo "hostfwd=tcp:127.0.0.1:$port-:22"
    echo "mac=$mac"; echo "iface="; echo "agent=True"; echo "serial_log=$P/vms/$A/console.log"
    echo "title="
} >"$T/a.want"
if [ -n "$port" ] && diff "$T/a.want" "$T/a.facts" >"$T/a.diff"; then
    ok "virsh dumpxml matches qvm: UUID, memory, vCPUs, disk, read-only seed, pool, SSH port $port, MAC, agent channel, console log"
else
    not_ok "virsh dumpxml differs from what qvm says"; diag <"$T/a.diff"
fi
run_qvm exec "$A" -- true
[ "$rc" = 1 ] && grep -q "VM '$A' is not running" <<<"$err" &&
    ok "exec on a stopped libvirt VM: 'is not running'" || { not_ok "exec stopped"; echo "$err" | diag; }

# --- start, pause, resume, stop ----------------------------------------------
run_qvm start "$A"
if [ "$rc" = 0 ] && [ "$(domstate "$A")" = running ]; then
    ok "qvm start: virsh domstate says running"
else
    not_ok "qvm start"; { echo "$out"; echo "$err"; } | diag
fi
run_qvm ls --json
pid=$(json_get "$T/out" '[x["pid"] for x in v if x["name"]=="'"$A"'"][0]')
st=$(json_get "$T/out" '[x["state"] for x in v if x["name"]=="'"$A"'"][0]')
if [ "$st" = running ] && [ -n "$pid" ] && tr '\0' ' ' </proc/"$pid"/cmdline | grep -q -- "-uuid $uuid"; then
    ok "qvm ls: running, pid $pid is libvirt's QEMU for this UUID"
else
    not_ok "qvm ls of a running libvirt VM (state $st pid $pid)"
fi
run_qvm start "$A"
[ "$rc" = 0 ] && grep -q "already running" <<<"$out" && ok "start of a running VM says so" || not_ok "start twice"
run_qvm pause "$A"
[ "$rc" = 0 ] && [ "$(domstate "$A")" = paused ] && ok "qvm pause: virsh says paused" || { not_ok "pause"; echo "$err" | diag; }
run_qvm ls --json
[ "$(json_get "$T/out" '[x["state"] for x in v if x["name"]=="'"$A"'"][0]')" = paused ] &&
    ok "qvm ls says paused" || not_ok "ls paused"
run_qvm resume "$A"
[ "$rc" = 0 ] && [ "$(domstate "$A")" = running ] && ok "qvm resume: running again" || not_ok "resume"
run_qvm stop --timeout 1 "$A"
if [ "$rc" = 0 ] && grep -q "did not power off in 1 s; stopping it" <<<"$out" && [ "$(domstate "$A")" = "shut off" ]; then
    ok "qvm stop: ACPI first, then off (no guest OS to answer); virsh says shut off"
else
    not_ok "qvm stop"; { echo "$out"; echo "$err"; } | diag
fi
[ -z "$(pgrep -f -- "-uuid $uuid")" ] && ok "no QEMU left for the domain" || not_ok "QEMU left after stop"

# --- rm: a failure or a kill after each step keeps the domain ----------------
"$QVM" start "$A" >/dev/null 2>&1
QVM_FAULT=definition-detached QVM_FAULT_TRACE=$T/rmsteps "$QVM" rm "$A" >/dev/null 2>&1
rmsteps=$(cat "$T/rmsteps" 2>/dev/null)
grep -q domain-undefined <<<"$rmsteps" && ok "rm reports its steps: $(echo $rmsteps)" || not_ok "rm steps: $rmsteps"
for step in $rmsteps; do
    QVM_FAULT=$step run_qvm rm "$A"
    [ "$rc" = 1 ] && defined "$A" && [ -f "$vj" ] &&
        ok "rm failing after '$step': domain defined again, VM kept" || { not_ok "rm fault $step"; echo "$err" | diag; }
    (QVM_FAULT=kill:$step exec "$QVM" rm "$A" >/dev/null 2>&1)
    run_qvm ls
    grep -q "'rm $A' was interrupted; rolled it back" <<<"$err" && defined "$A" && [ -f "$vj" ] &&
        ok "rm killed at '$step': the next command defines the domain again" || { not_ok "rm kill $step"; echo "$err" | diag; }
done
virsh_ dumpxml --inactive "$A" | grep -q "urn:qvm:domain:1" && ok "the domain defined again is qvm's (metadata kept)" ||
    not_ok "redefined domain lost its metadata"
run_qvm rm "$A"
if [ "$rc" = 0 ] && ! defined "$A" && [ ! -e "$P/vms/$A" ]; then
    ok "qvm rm (of a VM that had been running): domain undefined, bundle and disks gone"
else
    not_ok "qvm rm"; { echo "$out"; echo "$err"; } | diag
fi
same_state "after rm: state as before, no domain left"

# --- up: a failure or a kill after each step leaves no domain ----------------
QVM_FAULT_TRACE=$T/steps "$QVM" up "$T/a.yaml" >/dev/null 2>&1
"$QVM" rm "$A" >/dev/null 2>&1
steps=$(cat "$T/steps")
grep -q domain-defined <<<"$steps" && grep -q domain-started <<<"$steps" &&
    ok "up (libvirt) reports its journaled steps: $(echo $steps)" || not_ok "up steps: $steps"
for step in $steps; do
    QVM_FAULT=$step run_qvm up "$T/a.yaml"
    [ "$rc" = 1 ] && grep -q "^Error $TP: injected failure after step '$step'" <<<"$err" &&
        ok "failure after '$step': exit 1" || { not_ok "failure after $step"; echo "$err" | diag; }
    same_state "failure after '$step': no domain defined, storage as before"
    (QVM_FAULT=kill:$step exec "$QVM" up "$T/a.yaml" >/dev/null 2>&1)
    run_qvm ls
    grep -q "'up $A' was interrupted; rolled it back" <<<"$err" &&
        ok "up killed at '$step': the next command rolls it back" || { not_ok "no rollback after kill at $step"; echo "$err" | diag; }
    same_state "SIGKILL at '$step': no domain defined, storage as before"
done
[ -z "$(pgrep -f -- "guest=$A,")" ] && ok "no QEMU left running for '$A'" || not_ok "QEMU left running"

# --- --runtime, the pool's runtime, networks, refusals -----------------------
B=${lv_prefix}b
vmfile "$T/b.yaml" "$B" "network: none"
run_qvm up --no-start --runtime libvirt "$T/b.yaml"
[ "$rc" = 0 ] && defined "$B" && ok "up --runtime libvirt on a file without runtime defines a domain" ||
    { not_ok "--runtime libvirt"; echo "$err" | diag; }
run_qvm up --no-start --runtime libvirt "$T/b.yaml"
[ "$rc" = 1 ] && grep -q "already exists" <<<"$err" && ok "a second up of the same VM is refused" || not_ok "dup up"
"$QVM" rm "$B" >/dev/null 2>&1
virsh_ define "$T/a.xml" >/dev/null 2>&1      # a foreign domain named like the VM
before_foreign=$(state_snapshot)
expect_error "a domain of the VM's name is refused, pointing to qvm adopt" "$TP" \
    "already has a domain named '$A'; take it over with: qvm adopt $A" up "$T/a.yaml"
[ "$before_foreign" = "$(state_snapshot)" ] && defined "$A" && ok "... and nothing is changed" || not_ok "foreign domain refusal changed state"
virsh_ undefine "$A" >/dev/null 2>&1
vmfile "$T/n.yaml" "$B" "network: network=default"
expect_error "network=NAME on the qemu runtime must name a qvm network" "$TP" "no qvm network 'default' \\(create it with qvm net create default.*or use runtime: libvirt" \
    up --no-start "$T/n.yaml"
run_qvm up --no-start --runtime libvirt "$T/n.yaml"
virsh_ dumpxml --inactive "$B" >"$T/n.xml" 2>/dev/null
[ "$rc" = 0 ] && grep -qx "iface=network:default" <(xml_facts "$T/n.xml") && grep -qx "hostfwd=" <(xml_facts "$T/n.xml") &&
    ok "network=default: an interface on libvirt network 'default', no forwarded port" || { not_ok "network=default"; echo "$err" | diag; }
"$QVM" rm "$B" >/dev/null 2>&1
vmfile "$T/br.yaml" "$B" "network:" "  bridge: qvmbr0" "runtime: libvirt"
run_qvm up --no-start "$T/br.yaml"
virsh_ dumpxml --inactive "$B" >"$T/br.xml" 2>/dev/null
[ "$rc" = 0 ] && grep -qx "iface=bridge:qvmbr0" <(xml_facts "$T/br.xml") &&
    ok "bridge: qvmbr0: an interface on host bridge qvmbr0" || { not_ok "bridge"; echo "$err" | diag; }
"$QVM" rm "$B" >/dev/null 2>&1
vmfile "$T/u.yaml" "$B" "runtime: libvirt" "runtime-uri: qemu+unix:///system?socket=/nonexistent/sock"
expect_error "an unreachable libvirt is named" "$TP" "cannot connect to libvirt at qemu\+unix:///system\?socket=/nonexistent/sock" \
    up --no-start "$T/u.yaml"
same_state "refusals and removals leave the state as before"

# --- day two on a libvirt VM: snapshot, revert, clone, a domain undefined by hand
run_qvm up --runtime libvirt "$T/b.yaml"
[ "$rc" = 0 ] && [ "$(domstate "$B")" = running ] && ok "up --runtime libvirt (started)" || { not_ok "up B"; echo "$err" | diag; }
run_qvm snapshot "$B" s1
if [ "$rc" = 0 ] && grep -q "Paused VM '$B'" <<<"$out" && grep -q "Resumed VM '$B'" <<<"$out" &&
   [ "$(domstate "$B")" = running ]; then
    ok "snapshot of a running libvirt VM: paused through libvirt (no agent in this guest), resumed"
else
    not_ok "snapshot of a running libvirt VM"; { echo "$out"; echo "$err"; } | diag
fi
run_qvm revert "$B" s1
[ "$rc" = 1 ] && grep -qi "running\|stop" <<<"$err" && ok "revert refuses while the libvirt VM runs" ||
    { not_ok "revert of a running VM"; echo "rc=$rc $err" | diag; }
C=${lv_prefix}c
run_qvm clone "$B" "$C"
[ "$rc" = 0 ] && [ "$(domstate "$C")" = running ] && [ "$(json_get "$P/vms/$C/vm.json" 'v["runtime"]')" = libvirt ] &&
    ok "clone of a libvirt VM: a libvirt VM whose domain is defined and started" || { not_ok "clone"; { echo "$out"; echo "$err"; } | diag; }
[ "$(virsh_ domuuid "$C" 2>/dev/null)" = "$(json_get "$P/vms/$C/vm.json" 'v["uuid"]')" ] &&
    ok "... with the clone's own UUID" || not_ok "clone UUID"
"$QVM" rm "$C" >/dev/null 2>&1
"$QVM" stop --force "$B" >/dev/null 2>&1
run_qvm revert "$B" s1
[ "$rc" = 0 ] && ok "revert of the stopped libvirt VM" || { not_ok "revert"; echo "$err" | diag; }
virsh_ undefine "$B" >/dev/null
run_qvm ls --json
[ "$(json_get "$T/out" '[x["state"] for x in v if x["name"]=="'"$B"'"][0]')" = missing ] &&
    ok "qvm ls says 'missing' for a VM whose domain was undefined by hand" || not_ok "ls missing"
run_qvm start "$B"
[ "$rc" = 0 ] && grep -q "from the VM's definition" <<<"$out" && [ "$(domstate "$B")" = running ] &&
    ok "qvm start defines the missing domain again from the bundle, and starts it" || { not_ok "start missing"; echo "$err" | diag; }
run_qvm rm "$B"
[ "$rc" = 0 ] && ! defined "$B" && ok "rm of the running VM with a snapshot" || { not_ok "rm B"; echo "$err" | diag; }

mkdir -p "$T/lvpool"
run_qvm pool add lvpool --driver dir --path "$T/lvpool" --runtime libvirt
[ "$rc" = 0 ] && ok "pool add --runtime libvirt" || { not_ok "pool add"; echo "$err" | diag; }
"$QVM" image import --pool lvpool tiny2 "$raw" >/dev/null 2>&1
base=tiny2 vmfile "$T/p.yaml" "$B" "network: none"
run_qvm up --no-start "$T/p.yaml"
[ "$rc" = 0 ] && defined "$B" && [ "$(json_get "$T/lvpool/vms/$B/vm.json" 'v["runtime"]')" = libvirt ] &&
    ok "a VM in a pool with runtime libvirt is a libvirt domain" || { not_ok "pool runtime"; echo "$err" | diag; }
"$QVM" rm "$B" >/dev/null 2>&1
run_qvm up --no-start --runtime qemu "$T/p.yaml"
[ "$rc" = 0 ] && ! defined "$B" && ok "--runtime qemu overrides the pool's libvirt" || { not_ok "--runtime qemu"; echo "$err" | diag; }
"$QVM" rm "$B" >/dev/null 2>&1
before=$(state_snapshot)

# --- qvm adopt -----------------------------------------------------------------
L=${lv_prefix}legacy
domxml() {  # domxml NAME DISK
    cat <<EOF
<domain type='qemu'>
  <name>$1</name>
  <memory unit='MiB'>96</memory>
  <vcpu>1</vcpu>
  <os><type arch='x86_64' machine='q35'>hvm</type></os>
  <devices>
    <disk type='file' device='disk'>
      <driver name='qemu' type='qcow2'/>
      <source file='$2'/>
      <target dev='vda' bus='virtio'/>
    </disk>
    <disk type='file' device='cdrom'>
      <target dev='sda' bus='sata'/>
      <readonly/>
    </disk>
    <interface type='user'><mac address='52:54:00:aa:bb:cc'/><model type='virtio'/></interface>
  </devices>
</domain>
EOF
}
qemu-img create -q -f qcow2 "$T/outside.qcow2" 32M
domxml "$L" "$T/outside.qcow2" >"$T/outside.xml"
virsh_ define "$T/outside.xml" >/dev/null
expect_error "adopt refuses a domain whose disk is outside qvm's pools, naming it" "$TA" \
    "disks outside qvm's dir pools: $T/outside.qcow2 \(file disk\)" adopt "$L"
virsh_ undefine "$L" >/dev/null
qemu-img create -q -f qcow2 "$P/legacy.qcow2" 32M
domxml "$L" "$P/legacy.qcow2" >"$T/legacy.xml"
virsh_ define "$T/legacy.xml" >/dev/null
before=$(state_snapshot)
orig=$(virsh_ dumpxml --inactive "$L")
expect_error "adopt refuses a name that is not a qvm name" "$TA" "needs a qvm name" adopt "Bad_Name"
run_qvm adopt --dry-run "$L"
[ "$rc" = 0 ] && grep -q "move $P/legacy.qcow2" <<<"$out" && [ "$before" = "$(state_snapshot)" ] &&
    ok "adopt --dry-run says what it would do and changes nothing" || { not_ok "adopt --dry-run"; echo "$err" | diag; }
# The steps, from a real adoption; then the domain and its disk are put back.
echo "$orig" >"$T/orig.xml"
QVM_FAULT_TRACE=$T/asteps "$QVM" adopt "$L" >/dev/null 2>&1
astep=$(cat "$T/asteps")
"$QVM" rm "$L" >/dev/null 2>&1
qemu-img create -q -f qcow2 "$P/legacy.qcow2" 32M
virsh_ define "$T/orig.xml" >/dev/null
grep -q disk-moved <<<"$astep" && grep -q domain-redefined <<<"$astep" &&
    ok "adopt reports its journaled steps: $(echo $astep)" || not_ok "adopt steps: $astep"
for step in $astep; do
    QVM_FAULT=$step run_qvm adopt "$L"
    now=$(virsh_ dumpxml --inactive "$L")
    [ "$rc" = 1 ] && [ "$now" = "$orig" ] && [ "$before" = "$(state_snapshot)" ] &&
        ok "adopt failing after '$step': the domain's definition, its disk and qvm's state as before" ||
        { not_ok "adopt fault $step"; echo "$err" | diag; diff <(echo "$orig") <(echo "$now") | diag; }
done
run_qvm adopt "$L"
ad=$P/vms/$L
if [ "$rc" = 0 ] && [ -f "$ad/vm.json" ] && [ -f "$ad/disk0.qcow2" ] && [ ! -e "$P/legacy.qcow2" ]; then
    ok "adopt: a bundle with vm.json, the disk moved into it"
else
    not_ok "adopt"; { echo "$out"; echo "$err"; } | diag
fi
virsh_ dumpxml --inactive "$L" >"$T/l.xml"
xml_facts "$T/l.xml" >"$T/l.facts"
grep -qx "disk=$ad/disk0.qcow2" "$T/l.facts" && grep -qx "pool=default" "$T/l.facts" &&
    grep -qx "uuid=$(json_get "$ad/vm.json" 'v["uuid"]')" "$T/l.facts" && grep -qx "mac=52:54:00:aa:bb:cc" "$T/l.facts" &&
    ok "the domain is kept (same UUID, MAC), now with the bundle's disk and qvm's metadata" ||
    { not_ok "adopted domain XML"; diag <"$T/l.facts"; }
run_qvm ls --json
[ "$(json_get "$T/out" '[x["memory_mib"] for x in v if x["name"]=="'"$L"'"][0]')" = 96 ] &&
    ok "qvm ls lists the adopted VM with the domain's memory" || not_ok "ls adopted"
run_qvm start "$L"
[ "$rc" = 0 ] && [ "$(domstate "$L")" = running ] && ok "qvm start of the adopted VM" || { not_ok "start adopted"; echo "$err" | diag; }
run_qvm rm "$L"
[ "$rc" = 0 ] && ! defined "$L" && [ ! -e "$ad" ] && ok "qvm rm of the adopted VM: undefined, disk removed" ||
    { not_ok "rm adopted"; echo "$err" | diag; }
before=$(state_snapshot)

# --- virt-install mode -------------------------------------------------------------
if ! command -v virt-install >/dev/null; then
    skip "virt-install is not installed (virtinst): virt-install mode not tested"
    done_testing; exit
fi
"$QVM" image import debian12 "$raw" >/dev/null 2>&1
before=$(state_snapshot)
S=${lv_prefix}seed
sed "s/seed-vm/$S/g" "$top/examples/seed-format.yaml" >"$T/seed.yaml"
run_qvm up --runtime virt-install "$T/seed.yaml"
if [ "$rc" = 0 ] && grep -q "Checking the options with virt-install --dry-run" <<<"$out" &&
   grep -q "Running virt-install" <<<"$out" && [ "$(domstate "$S")" = running ]; then
    ok "virt-install mode provisions the seed-format example: --dry-run, then the real run; the domain runs"
else
    not_ok "virt-install mode, seed-format example"; { echo "$out"; echo "$err"; } | diag
fi
virsh_ dumpxml --inactive "$S" >"$T/s.xml" 2>/dev/null
xml_facts "$T/s.xml" >"$T/s.facts"
sv=$P/vms/$S/vm.json
grep -qx "disk=$P/vms/$S/disk0.qcow2" "$T/s.facts" && grep -qx "seed=$P/vms/$S/seed.iso" "$T/s.facts" &&
    grep -qx "uuid=$(json_get "$sv" 'v["uuid"]')" "$T/s.facts" && grep -qx "qvm_uuid=$(json_get "$sv" 'v["uuid"]')" "$T/s.facts" &&
    grep -qx "memory_kib=1048576" "$T/s.facts" && grep -qx "vcpus=2" "$T/s.facts" && grep -qx "agent=True" "$T/s.facts" &&
    ok "virsh dumpxml: qvm's disk and seed, the VM's UUID and metadata, the file's memory and vCPUs, the agent channel" ||
    { not_ok "virt-install domain XML"; diag <"$T/s.facts"; }
run_qvm rm "$S"
[ "$rc" = 0 ] && ! defined "$S" && ok "rm of the virt-install VM undefines it" || not_ok "rm virt-install VM"
vmfile "$T/vi.yaml" "$B" "runtime: virt-install" "network: none" "metadata:" "  title: qvm-passthrough"
run_qvm up --no-start "$T/vi.yaml"
virsh_ dumpxml --inactive "$B" >"$T/vi.xml" 2>/dev/null
[ "$rc" = 0 ] && grep -qx "title=qvm-passthrough" <(xml_facts "$T/vi.xml") && [ "$(domstate "$B")" = "shut off" ] &&
    ok "an option qvm does not model (metadata: {title}) reaches virt-install; --no-start defines without starting" ||
    { not_ok "virt-install passthrough"; { echo "$out"; echo "$err"; } | diag; }
"$QVM" rm "$B" >/dev/null 2>&1
vmfile "$T/bad.yaml" "$B" "runtime: virt-install" "network: none" "frobnicate: yes"
expect_error "an option virt-install does not know fails its --dry-run, before any domain" "$TP" \
    "virt-install --dry-run failed: .*frobnicate" up "$T/bad.yaml"
vmfile "$T/rng.yaml" "$B" "network: none" "rng: /dev/urandom"
expect_error "outside virt-install mode the same option stays an error naming it" "importing qvm file" "'rng'" up "$T/rng.yaml"
same_state "virt-install mode: state as before, no domain left"
done_testing
