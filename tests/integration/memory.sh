#!/usr/bin/env bash
# Memory admission and ZFS ARC balancing (issue 5, seed 003's memory
# provisioner) with real QEMU processes and the real /proc/meminfo: a host
# reserve computed here from MemTotal so that exactly N VMs of S MiB fit;
# start VMs until the budget is exhausted, the refusal with its numbers, a
# stop makes room, --force overrides, two concurrent starts for the last
# slot admit exactly one. The ARC runs against a fake sysfs tree
# (QVM_SYSFS_ROOT; this host has no kernel ZFS): zfs_arc_max is checked
# after every start and stop and comes back to the administrator's value
# after the last stop. The guests need not boot: the tiny raw image of up.sh.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
TS="starting virtual machine"
TP="provisioning virtual machine"
MiB=$((1 << 20)); GiB=$((1 << 30))

raw=$T/small.raw
truncate -s 64M "$raw"
"$QVM" image import tiny "$raw" >/dev/null 2>&1 || not_ok "setup: image import"

S=256     # MiB per VM
N=3       # VMs that fit
vmfile() {  # vmfile NAME
    {
        echo "qvm: vm"; echo "name: $1"; echo "memory: $S"; echo "vcpus: 1"
        echo "graphics: none"; echo "network: user"
        echo "disk:"; echo "  zvol:"; echo "    base: tiny"
        echo "---"; echo "qvm: user-data"; echo "runcmd:"; echo "  - [true]"
        echo "---"; echo "qvm: meta-data"; echo "instance-id: $1-1"
    } >"$T/$1.yaml"
}
# As qvm_memory_format: MiB below 1 GiB, else GiB to a tenth, rounded down.
fmt() {
    local b=$1 t
    if [ "$b" -lt $GiB ]; then echo "$((b / MiB)) MiB"; return; fi
    t=$((b * 10 / GiB))
    if [ $((t % 10)) = 0 ]; then echo "$((t / 10)) GiB"; else echo "$((t / 10)).$((t % 10)) GiB"; fi
}
jget() {  # jget FILE EXPR: a Python expression over j, the JSON in FILE
    python3 -c 'import json,sys; j=json.load(open(sys.argv[1])); v=eval(sys.argv[2]); print("null" if v is None else v)' "$1" "$2"
}

# --- the numbers, from the real /proc/meminfo ---------------------------------
total_kb=$(awk '/^MemTotal:/ {print $2}' /proc/meminfo)
total=$((total_kb * 1024))
run_qvm host --json
[ "$rc" = 0 ] && [ "$(jget "$T/out" 'j["memory"]["total"]')" = "$total" ] &&
    [ "$(jget "$T/out" 'j["memory"]["reserve"]')" = "$GiB" ] &&
    [ "$(jget "$T/out" 'j["memory"]["committed"]')" = 0 ] &&
    [ "$(jget "$T/out" 'j["memory"]["free"]')" = $((total - GiB)) ] &&
    [ "$(jget "$T/out" 'j["arc"]["present"]')" = False ] &&
    grep -qE '^(kvm|tcg)$' <<<"$(jget "$T/out" 'j["accelerator"]["name"]')" &&
    ok "host --json: MemTotal of /proc/meminfo, default 1 GiB reserve, nothing committed, no ZFS, accelerator" ||
    { not_ok "host --json defaults"; cat "$T/out" "$T/err" | diag; }
# QEMU's overhead per VM, and the TCG translation cache where the VMs will
# run TCG (this host: a paravirtual KVM that cannot run them).
O=$(( $(jget "$T/out" 'j["memory"]["vm_overhead"]') / MiB ))
accel=$(jget "$T/out" 'j["accelerator"]["name"]')
tcg_mib=$(( $(jget "$T/out" 'j["memory"]["tcg_overhead"]') / MiB ))
[ "$accel" = tcg ] && O=$((O + tcg_mib))
with_tcg=""; [ "$accel" = tcg ] && with_tcg=" with TCG"
[ "$O" -gt 0 ] && [ "$tcg_mib" = $(( total_kb / 8 / 1024 < 1024 ? (total_kb / 8 + 1023) / 1024 : 1024 )) ] &&
    ok "a per-VM QEMU overhead is accounted ($O MiB$with_tcg)" || not_ok "overhead: $O, tcg $tcg_mib"
run_qvm host
[ "$rc" = 0 ] && grep -q "no ZFS module (/sys/module/zfs/parameters/zfs_arc_max absent)" <<<"$out" &&
    grep -q "^Accelerator" <<<"$out" && ok "qvm host says there is no ZFS module here" ||
    { not_ok "host text"; echo "$out$err" | diag; }

# Exactly N VMs of S MiB (plus overhead) fit, with S/2 MiB to spare.
reserve_mib=$((total_kb / 1024 - N * (S + O) - S / 2))
reserve=$((reserve_mib * MiB))
share=2    # small, so both terms of the ARC target are exercised below
mkdir -p "$QVM_ROOT/etc/qvm"
printf 'host:\n  reserve: %dM\n  arc-share: %d%%\n' "$reserve_mib" "$share" >"$QVM_ROOT/etc/qvm/qvm.conf"

# The fake sysfs and procfs of a ZFS host: the administrator left zfs_arc_max at 0.
export QVM_SYSFS_ROOT=$T/sysfs
param=$QVM_SYSFS_ROOT/sys/module/zfs/parameters/zfs_arc_max
mkdir -p "$(dirname "$param")" "$QVM_SYSFS_ROOT/proc/spl/kstat/zfs"
echo 0 >"$param"
c_min=$((256 * MiB))
printf '13 1 0x01 123 33456 1234 5678\nname type data\nc_min 4 %d\nc_max 4 %d\n' \
    "$c_min" $((12 * GiB)) >"$QVM_SYSFS_ROOT/proc/spl/kstat/zfs/arcstats"
state=$QVM_ROOT/var/lib/qvm/arc.json

# zfs_arc_max for K running VMs, as arc.h documents it.
expect_arc() {
    local k=$1 admin=${2:-0} avail give keep t floor cap
    avail=$((total - k * (S + O) * MiB))
    give=$((avail - reserve)); [ $give -lt 0 ] && give=0
    keep=$((avail * share / 100))
    give=$((give / MiB * MiB)); keep=$((keep / MiB * MiB))
    t=$((give > keep ? give : keep))
    cap=$((total / MiB * MiB - MiB)); [ $t -gt $cap ] && t=$cap
    floor=$((64 * MiB)); [ $c_min -ge $floor ] && floor=$(((c_min / MiB + 1) * MiB))
    [ $t -lt $floor ] && t=$floor
    [ "$admin" != 0 ] && [ "$admin" -lt $t ] && t=$admin
    echo $t
}
check_arc() {  # check_arc DESC K [ADMIN]
    local want; want=$(expect_arc "$2" "${3:-0}")
    if [ "$(cat "$param")" = "$want" ]; then ok "$1: zfs_arc_max $want"; else
        not_ok "$1: zfs_arc_max $(cat "$param"), want $want"; fi
}
nqemu() { qemu_procs | wc -l; }

for v in v1 v2 v3 v4 v5; do vmfile $v; done
for v in v2 v3 v4; do "$QVM" up --no-start "$T/$v.yaml" >/dev/null 2>&1 || not_ok "setup: up --no-start $v"; done

# --- start until the budget is exhausted ---------------------------------------
run_qvm up "$T/v1.yaml"
[ "$rc" = 0 ] && [ "$(nqemu)" = 1 ] && ok "up admits the first VM" || { not_ok "up v1"; echo "$err" | diag; }
[ -f "$state" ] && [ "$(jget "$state" 'j["admin"]')" = 0 ] && ok "the administrator's zfs_arc_max (0) is remembered" ||
    { not_ok "arc state"; cat "$state" | diag; }
check_arc "1 VM: total - VMs - reserve" 1
run_qvm start v2
[ "$rc" = 0 ] && [ "$(nqemu)" = 2 ] && ok "start admits the second VM" || { not_ok "start v2"; echo "$err" | diag; }
check_arc "2 VMs" 2
run_qvm start v3
[ "$rc" = 0 ] && [ "$(nqemu)" = 3 ] && ok "start admits the third VM" || { not_ok "start v3"; echo "$err" | diag; }
check_arc "3 VMs: the ARC keeps its $share% share" 3
[ "$(expect_arc 1)" -gt "$(expect_arc 3)" ] && ok "the ARC limit went down as VMs started" || not_ok "ARC did not shrink"

want="cannot start 'v4' ($S MiB + $(fmt $((O * MiB))) QEMU overhead$with_tcg): host has $(fmt $total), reserve $(fmt $reserve), running VMs use $(fmt $((N * (S + O) * MiB))) (v1, v2, v3); $(fmt $((total - reserve - N * (S + O) * MiB))) free (--force starts it anyway)"
run_qvm start v4
[ "$rc" = 1 ] && [ "$err" = "Error $TS: $want" ] && ok "the fourth is refused with the numbers" ||
    { not_ok "refusal"; { echo "got:  $err"; echo "want: Error $TS: $want"; } | diag; }
grep -q "; $((S / 2)) MiB free" <<<"$err" && ok "free memory in the refusal is the spare S/2 = $((S / 2)) MiB" || not_ok "free figure"
[ "$(nqemu)" = 3 ] && ok "no QEMU was started for it" || not_ok "QEMU count $(nqemu)"
check_arc "after the refusal, unchanged" 3

before=$(state_snapshot)
run_qvm up "$T/v5.yaml"
[ "$rc" = 1 ] && grep -qE "^Error $TP: cannot start 'v5' \($S MiB .* \(v1, v2, v3\); $((S / 2)) MiB free" <<<"$err" &&
    ok "up is refused with the numbers too" || { not_ok "up refusal"; echo "$err" | diag; }
[ "$before" = "$(state_snapshot)" ] && [ "$(nqemu)" = 3 ] && ok "the refused up is rolled back" ||
    { not_ok "up refusal left state"; diff <(echo "$before") <(state_snapshot) | diag; }

# --- stop one, start succeeds ----------------------------------------------------
run_qvm stop --force v3
[ "$rc" = 0 ] && [ "$(nqemu)" = 2 ] && ok "stop v3" || { not_ok "stop v3"; echo "$err" | diag; }
check_arc "a stop raises the limit again" 2
run_qvm start v4
[ "$rc" = 0 ] && [ "$(nqemu)" = 3 ] && ok "after a stop, the fourth VM starts" || { not_ok "start v4"; echo "$err" | diag; }
check_arc "3 VMs again" 3

# --- --force -------------------------------------------------------------------------
run_qvm start v3
[ "$rc" = 1 ] && grep -q "cannot start 'v3'" <<<"$err" && ok "full again: v3 refused" || { not_ok "v3 refused"; echo "$err" | diag; }
run_qvm start --force v3
[ "$rc" = 0 ] && [ "$(nqemu)" = 4 ] && grep -q "memory admission overridden (--force): cannot start 'v3'" <<<"$err" &&
    ok "start --force overrides, with a warning that gives the numbers" || { not_ok "start --force"; echo "$out$err" | diag; }
check_arc "4 VMs (over budget)" 4
run_qvm up --force "$T/v5.yaml"
[ "$rc" = 0 ] && [ "$(nqemu)" = 5 ] && ok "up --force overrides too" || { not_ok "up --force"; echo "$err" | diag; }
check_arc "5 VMs" 5
run_qvm host --json
[ "$(jget "$T/out" 'j["memory"]["free"]')" = 0 ] && ok "host --json: over budget shows 0 free, not a wrapped number" ||
    { not_ok "free when overcommitted"; cat "$T/out" | diag; }

# --- two concurrent starts for the last slot -----------------------------------------
for v in v3 v4 v5; do "$QVM" stop --force $v >/dev/null 2>&1; done
[ "$(nqemu)" = 2 ] && ok "back to 2 running VMs" || not_ok "QEMU count $(nqemu)"
check_arc "2 VMs" 2
"$QVM" start v3 >"$T/r3" 2>&1 & p3=$!
"$QVM" start v4 >"$T/r4" 2>&1 & p4=$!
wait $p3; r3=$?; wait $p4; r4=$?
[ $((r3 + r4)) = 1 ] && [ "$(nqemu)" = 3 ] && ok "two concurrent starts for the last slot: exactly one admitted" ||
    { not_ok "race: $r3 $r4, $(nqemu) QEMUs"; cat "$T/r3" "$T/r4" | diag; }
grep -qhE "^Error $TS: cannot start 'v[34]' .*$((S / 2)) MiB free" "$T/r3" "$T/r4" &&
    ok "the other is refused with the numbers" || { not_ok "race loser message"; cat "$T/r3" "$T/r4" | diag; }
check_arc "3 VMs after the race" 3

# --- qvm host --json while VMs run -----------------------------------------------------
running=$(for v in v1 v2 v3 v4; do [ -n "$(pgrep -f -- "-pidfile $QVM_ROOT/run/qvm/vms/$v/")" ] && echo $v; done | paste -sd,)
run_qvm host --json
f=$T/out
[ "$(jget $f 'j["memory"]["committed"]')" = $((N * (S + O) * MiB)) ] &&
    [ "$(jget $f '",".join(v["name"] for v in j["memory"]["vms"])')" = "$running" ] &&
    [ "$(jget $f 'j["memory"]["vms"][0]["memory_mib"]')" = $S ] &&
    [ "$(jget $f 'j["memory"]["vms"][0]["bytes"]')" = $(((S + O) * MiB)) ] &&
    [ "$(jget $f 'j["memory"]["vms"][0]["accel"]')" = "$accel" ] &&
    [ "$(jget $f 'j["memory"]["free"]')" = $((total - reserve - N * (S + O) * MiB)) ] &&
    ok "host --json: committed memory by VM ($running) and what is free" || { not_ok "host --json memory"; cat $f | diag; }
[ "$(jget $f 'j["arc"]["present"]')" = True ] && [ "$(jget $f 'j["arc"]["current"]')" = "$(expect_arc 3)" ] &&
    [ "$(jget $f 'j["arc"]["admin"]')" = 0 ] && [ "$(jget $f 'j["arc"]["managed"]')" = True ] &&
    [ "$(jget $f 'j["arc"]["target"]')" = "$(expect_arc 3)" ] && [ "$(jget $f 'j["arc"]["share_pct"]')" = $share ] &&
    ok "host --json: ARC current, administrator's and qvm's target" || { not_ok "host --json arc"; cat $f | diag; }
run_qvm host
grep -q "set by qvm" <<<"$out" && grep -q "administrator  0 (ZFS's default)" <<<"$out" &&
    ok "qvm host shows the ARC limit qvm set and the administrator's" || { not_ok "host text arc"; echo "$out" | diag; }

# --- a QEMU that dies on its own: host --settle -----------------------------------------
victim=$(tr , '\n' <<<"$running" | grep -v '^v1$' | tail -1)
vpid=$(cat "$QVM_ROOT/run/qvm/vms/$victim/qemu.pid")
kill -9 "$vpid"; sleep 0.5
check_arc "$victim killed behind qvm's back: the limit is still for 3 VMs" 3
run_qvm host --settle
[ "$rc" = 0 ] && grep -q "set to .* for 2 running VMs" <<<"$out" && ok "host --settle sets it for the VMs running now" ||
    { not_ok "host --settle"; echo "$out$err" | diag; }
check_arc "after --settle" 2

# --- the last stop restores the administrator's value ----------------------------------
for v in $(tr , ' ' <<<"$running"); do
    [ "$v" = v1 ] && continue
    "$QVM" stop --force $v >/dev/null 2>&1
done
check_arc "1 VM" 1
run_qvm rm v1
[ "$rc" = 0 ] && [ "$(nqemu)" = 0 ] && ok "rm of the last running VM" || { not_ok "rm v1"; echo "$err" | diag; }
[ "$(cat "$param")" = 0 ] && [ ! -e "$state" ] && grep -q "restored to the administrator's 0 (ZFS's default)" <<<"$out" &&
    ok "no VM runs: the administrator's 0 is back and the state file is gone" ||
    { not_ok "restore: $(cat "$param")"; echo "$out" | diag; ls -la "$state" 2>&1 | diag; }

# The administrator's own lower limit stays, and comes back after the stop.
admin=$((300 * MiB))
echo $admin >"$param"
run_qvm start v2
check_arc "the administrator's lower limit (300 MiB) is kept" 1 $admin
echo $((8 * GiB)) >"$param"
run_qvm stop --force v2
[ "$(cat "$param")" = $((8 * GiB)) ] && [ ! -e "$state" ] &&
    ok "a value the administrator wrote while VMs ran is what stays after the last stop" ||
    not_ok "admin's new value: $(cat "$param")"

# --- configuration -----------------------------------------------------------------------
"$QVM" pool add extra --driver dir --path "$T/extra" >/dev/null 2>&1
grep -q "reserve: ${reserve_mib}M" "$QVM_ROOT/etc/qvm/qvm.conf" && grep -q "arc-share: $share%" "$QVM_ROOT/etc/qvm/qvm.conf" &&
    ok "pool add keeps the host section of qvm.conf" || { not_ok "pool add lost host"; cat "$QVM_ROOT/etc/qvm/qvm.conf" | diag; }
cp "$QVM_ROOT/etc/qvm/qvm.conf" "$T/conf.good"
printf 'host:\n  reserve: 2X\n' >"$QVM_ROOT/etc/qvm/qvm.conf"
expect_error "a bad reserve is named with file, line and column" "reading the host's memory budget" \
    "qvm.conf:2:3: host.reserve: invalid size '2X'" host
printf 'host:\n  arc-share: 120%%\n' >"$QVM_ROOT/etc/qvm/qvm.conf"
expect_error "a share above 100% is refused" "reading the host's memory budget" "host.arc-share: share '120%' is more than 100%" host
printf 'host:\n  swap: 1G\n' >"$QVM_ROOT/etc/qvm/qvm.conf"
expect_error "an unknown host key is named" "reading the host's memory budget" "unknown host key 'swap'" host
cp "$T/conf.good" "$QVM_ROOT/etc/qvm/qvm.conf"

unset QVM_SYSFS_ROOT
for v in v2 v3 v4 v5; do "$QVM" rm $v >/dev/null 2>&1; done
[ "$(nqemu)" = 0 ] && ok "everything removed" || not_ok "QEMUs left: $(nqemu)"
done_testing
