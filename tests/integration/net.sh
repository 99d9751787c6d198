#!/usr/bin/env bash
# qvm networks against the real tools, inside a network namespace of the
# test's own (so the host's links and rules are never touched): ip bridges
# and taps, nftables NAT, dnsmasq and its supervisor, real QEMU processes
# (TCG; no guest needs to boot here: the lease and the tap exist once QEMU
# runs). Errors, ls --json, leases and names, dnsmasq restarted after a
# kill, VMs with two NICs and on an existing bridge, rm refused while in
# use, and a failure and a SIGKILL at every step of net create and net rm,
# each leaving the namespace and the state tree as before.
source "$(dirname "$0")/../lib.sh"
new_root
# dnsmasq drops to its own user, which must reach the network's files.
chmod 755 "$T"
for tool in ip nft dnsmasq dig; do
    if ! command -v "$tool" >/dev/null; then
        skip "$tool is not installed (scripts/install-deps.sh installs it)"
        done_testing; exit
    fi
done
NS=qvmn$$
ip netns add "$NS" || { not_ok "setup: ip netns add"; done_testing; exit; }
cleanup() {
    for p in $(pgrep -f -- "$QVM_ROOT/" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null
    cleanup_root
}
trap cleanup EXIT
ip -n "$NS" link set lo up
# Every qvm command of this test runs in the namespace.
REAL_QVM=$QVM
QVM=$T/qvm-ns
printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$NS" "$REAL_QVM" >"$QVM"
chmod +x "$QVM"
inns() { ip netns exec "$NS" "$@"; }
TC="creating network"
TR="removing network"
TP="provisioning virtual machine"

net_state() {   # what a network leaves on the host, besides the state tree
    ip -n "$NS" -br link | awk '{print $1}' | grep -v '^lo$' | sort
    inns nft list ruleset
    pgrep -af -- "$QVM_ROOT/var/lib/qvm/networks/" | grep -v pgrep | sed 's/^[0-9]* //'
    echo "ip_forward=$(inns cat /proc/sys/net/ipv4/ip_forward)"
}
"$QVM" net ls >/dev/null
mkdir -p "$QVM_ROOT/var/lib/qvm/networks"
before=$(state_snapshot; net_state)
same_state() {
    local now; now=$(state_snapshot; net_state)
    if [ "$before" = "$now" ]; then ok "$1"; else not_ok "$1"; diff <(echo "$before") <(echo "$now") | diag; fi
}

# --- errors -----------------------------------------------------------------------
expect_error "an upper-case name is refused" "$TC" "invalid network name 'Lan'" net create Lan
expect_error "a name too long for a bridge is refused" "$TC" "invalid network name 'abcdefghijkl'.*15 bytes" net create abcdefghijkl
expect_error "host bits in the subnet are refused, with the fix" "$TC" "host bits are set \(did you mean 10.77.0.0/24\?\)" net create lan --subnet 10.77.0.5/24
expect_error "a /8 is refused" "$TC" "the prefix must be 16 to 29" net create lan --subnet 10.0.0.0/8
expect_error "garbage is refused" "$TC" "expected A.B.C.D/P" net create lan --subnet nonsense
ip -n "$NS" link add vq0 type veth peer name vq1
ip -n "$NS" addr add 10.50.1.1/24 dev vq0
ip -n "$NS" link set vq0 up
expect_error "a subnet overlapping a host address is refused, naming it" "$TC" "overlaps the host's address 10.50.1.1/24 of vq0" net create lan --subnet 10.50.0.0/16
ip -n "$NS" link del vq0
ip -n "$NS" link add qvm-taken type veth peer name vq1
expect_error "an interface already named qvm-NAME is refused" "$TC" "qvm-taken exists already" net create taken --subnet 10.60.0.0/24
ip -n "$NS" link del qvm-taken
same_state "refused creates change nothing"

# --- create, ls ----------------------------------------------------------------------
run_qvm net create lan --subnet 10.77.0.0/24
[ "$rc" = 0 ] && grep -q "Network 'lan' is up: bridge qvm-lan, 10.77.0.0/24, gateway and DNS 10.77.0.1" <<<"$err$out" &&
    ok "net create lan" || { not_ok "net create"; echo "$out$err" | diag; }
ip -n "$NS" -4 -br addr show dev qvm-lan | grep -q "10.77.0.1/24" && ok "bridge qvm-lan holds 10.77.0.1/24" || { not_ok "bridge address"; ip -n "$NS" addr | diag; }
inns nft list table ip qvm-lan | grep -q "ip saddr 10.77.0.0/24 ip daddr != 10.77.0.0/24 masquerade" &&
    ok "nftables table qvm-lan masquerades the subnet" || { not_ok "nat table"; inns nft list ruleset | diag; }
[ "$(inns cat /proc/sys/net/ipv4/ip_forward)" = 1 ] && ok "IPv4 forwarding is on" || not_ok "ip_forward"
inns ss -lnu | grep -q "10.77.0.1:53 " && inns ss -lnu | grep -q ":67 " &&
    ok "dnsmasq serves DNS on 10.77.0.1 and DHCP" || { not_ok "dnsmasq sockets"; inns ss -lnup | diag; }
inns ss -lnu | grep -qE "(0.0.0.0|127.0.0.1):53 " && { not_ok "dnsmasq listens beyond the bridge"; inns ss -lnu | diag; } ||
    ok "dnsmasq listens on the bridge only"
expect_error "a second network of the same name is refused" "$TC" "network 'lan' exists" net create lan --subnet 10.78.0.0/24
expect_error "an overlapping subnet is refused, naming the network" "$TC" "overlaps network 'lan' \(10.77.0.0/24\)" net create other --subnet 10.77.0.0/16
run_qvm net create auto
[ "$rc" = 0 ] && grep -q "10.200.0.0/24" <<<"$err$out" && ok "without --subnet: the first free 10.200.N.0/24" || { not_ok "auto subnet"; echo "$out$err" | diag; }
run_qvm net ls --json
python3 - "$T/out" <<'PY' && ok "net ls --json: both networks up with dnsmasq pids" || { not_ok "ls --json"; diag <"$T/out"; }
import json, sys
nets = {n["name"]: n for n in json.load(open(sys.argv[1]))}
assert nets["lan"]["subnet"] == "10.77.0.0/24" and nets["lan"]["gateway"] == "10.77.0.1"
assert nets["auto"]["subnet"] == "10.200.0.0/24"
for n in nets.values():
    assert n["state"] == "up" and n["dnsmasq_pid"] > 0 and n["supervisor_pid"] > 0 and n["nat"] and n["bridge_up"], n
PY
# The next pick skips both another network's subnet and one the host uses itself.
inns ip link add qvmtv0 type veth peer name qvmtv1 && inns ip addr add 10.200.1.1/24 dev qvmtv0
run_qvm net create auto2
[ "$rc" = 0 ] && grep -q "10.200.2.0/24" <<<"$err$out" &&
    ok "without --subnet: skips network auto's 10.200.0.0/24 and the host's 10.200.1.0/24" ||
    { not_ok "auto subnet past used ones"; echo "$out$err" | diag; }
run_qvm net rm auto2
[ "$rc" = 0 ] || { not_ok "net rm auto2"; echo "$err" | diag; }
inns ip link del qvmtv0

# --- supervision ---------------------------------------------------------------------
pid1=$("$QVM" net ls --json | python3 -c 'import json,sys; print([n for n in json.load(sys.stdin) if n["name"]=="lan"][0]["dnsmasq_pid"])')
kill -9 "$pid1"
pid2=
for i in $(seq 50); do
    sleep 0.2
    pid2=$("$QVM" net ls --json | python3 -c 'import json,sys; print([n for n in json.load(sys.stdin) if n["name"]=="lan"][0]["dnsmasq_pid"])')
    [ "$pid2" != 0 ] && [ "$pid2" != "$pid1" ] && break
done
[ "$pid2" != 0 ] && [ "$pid2" != "$pid1" ] && ok "a killed dnsmasq is restarted by its supervisor ($pid1 -> $pid2)" ||
    { not_ok "dnsmasq not restarted"; diag <"$QVM_ROOT/var/lib/qvm/networks/lan/dnsmasq.log"; }

# A supervisor killed outright leaves its dnsmasq behind; the next start
# stops that orphan instead of fighting it for the bridge's ports.
sup=$("$QVM" net ls --json | python3 -c 'import json,sys; print([n for n in json.load(sys.stdin) if n["name"]=="lan"][0]["supervisor_pid"])')
orphan=$(cat "$QVM_ROOT/var/lib/qvm/networks/lan/dnsmasq.pid")
kill -9 "$sup"
sleep 0.5
run_qvm net up lan
count=$(pgrep -f -- "$QVM_ROOT/var/lib/qvm/networks/lan/dhcp-hosts" | wc -l)
gone() { [ ! -d "/proc/$1" ] || grep -q '^State:.*Z' "/proc/$1/status"; }   # a zombie is gone too
[ "$rc" = 0 ] && [ "$count" = 1 ] && gone "$orphan" && "$QVM" net ls | grep -qE "^lan .* up " &&
    ok "net up after a killed supervisor: the orphaned dnsmasq is replaced, one dnsmasq runs" ||
    { not_ok "orphaned dnsmasq (rc=$rc, $count dnsmasq)"; { echo "$err"; cat "/proc/$orphan/status" 2>/dev/null | head -3; "$QVM" net ls; } | diag; }

# --- VMs on networks (QEMU runs; no guest boots) ---------------------------------------
raw=$T/small.raw
truncate -s 64M "$raw"
"$QVM" image import tiny "$raw" >/dev/null 2>&1 || not_ok "setup: image import"
vmfile() {  # vmfile PATH NAME NETWORK-LINES...
    local path=$1 name=$2; shift 2
    {
        echo "qvm: vm"; echo "name: $name"; echo "memory: 128"; echo "graphics: none"
        for l in "$@"; do echo "$l"; done
        echo "disk:"; echo "  zvol:"; echo "    base: tiny"
        echo "---"; echo "qvm: user-data"; echo "---"; echo "qvm: meta-data"
    } >"$path"
}
host_cfg=$QVM_ROOT/etc/qvm/qvm.conf
mkdir -p "$(dirname "$host_cfg")"
printf 'host:\n  tcg-overhead: 0\n  reserve: 256M\n' >>"$host_cfg"
vmfile "$T/nosuch.yaml" nosuch "network: network=nosuch"
expect_error "a network that does not exist is named" "$TP" "no qvm network 'nosuch' \(create it with qvm net create nosuch" up "$T/nosuch.yaml"
vmfile "$T/twice.yaml" twice "network: [network=lan, network=lan]"
expect_error "two NICs on one qvm network are refused" "$TP" "NICs 0 and 1 are both on qvm network 'lan'" up "$T/twice.yaml"
vmfile "$T/web1.yaml" web1 "network: network=lan"
run_qvm up "$T/web1.yaml"
[ "$rc" = 0 ] && ok "up of a VM on network lan" || { not_ok "up on lan"; echo "$err" | diag; }
lease=$(grep "^web1 " "$QVM_ROOT/var/lib/qvm/networks/lan/leases")
ip1=$(awk '{print $3}' <<<"$lease"); mac1=$(awk '{print $2}' <<<"$lease")
[[ "$ip1" == 10.77.0.* ]] && [ "$ip1" != 10.77.0.1 ] && ok "web1 has a static lease $ip1 for $mac1" || not_ok "lease: $lease"
pgrep -af -- "-pidfile $QVM_ROOT/" | grep -q "tap,id=net0,fd=3.*mac=$mac1" &&
    ok "QEMU got the tap as fd 3, with the leased MAC" || { not_ok "qemu argv"; qemu_procs | diag; }
tap=$(ip -n "$NS" -br link show master qvm-lan | awk '{print $1}')
[ -n "$tap" ] && [[ "$tap" == qvm*n0 ]] && ok "tap $tap is a port of qvm-lan" || { not_ok "tap on bridge"; ip -n "$NS" link | diag; }
grep -q "^$mac1,$ip1,web1$" "$QVM_ROOT/var/lib/qvm/networks/lan/dhcp-hosts" && ok "dnsmasq's dhcp-hosts has the lease" || not_ok "dhcp-hosts"
answer=$(inns dig +short +time=2 +tries=3 @10.77.0.1 web1.qvm)
[ "$answer" = "$ip1" ] && ok "dnsmasq answers web1.qvm with $ip1" || { not_ok "dns web1.qvm: '$answer'"; tail -5 "$QVM_ROOT/var/lib/qvm/networks/lan/dnsmasq.log" | diag; }
answer=$(inns dig +short +time=2 +tries=3 @10.77.0.1 web1)
[ "$answer" = "$ip1" ] && ok "and web1" || not_ok "dns web1: '$answer'"
expect_error "rm of a network in use is refused, naming the VM" "$TR" "network 'lan' is in use by VM web1" net rm lan
run_qvm net ls
grep -qE "^lan .* up .*web1 \($ip1\)" <<<"$out" && ok "net ls shows web1 and its address" || { not_ok "net ls"; echo "$out" | diag; }
run_qvm stop --force web1
[ -z "$(ip -n "$NS" -br link show master qvm-lan)" ] && ok "the tap is gone with the stopped VM" || { not_ok "tap left"; ip -n "$NS" link | diag; }
# A host reboot takes the host side away: bridge, table, dnsmasq.
reboot_net() {
    local sup
    sup=$("$QVM" net ls --json | python3 -c "import json,sys; print([n for n in json.load(sys.stdin) if n['name']=='$1'][0]['supervisor_pid'])")
    kill "$sup"
    ip -n "$NS" link del "qvm-$1"
    inns nft delete table ip "qvm-$1"
    for i in $(seq 50); do "$QVM" net ls | grep -qE "^$1 .* down " && break; sleep 0.1; done
}
reboot_net lan
"$QVM" net ls | grep -qE "^lan .* down " && ok "net ls shows a network whose host side is gone as down" || { not_ok "down state"; "$QVM" net ls | diag; }
run_qvm start web1
[ "$rc" = 0 ] && "$QVM" net ls | grep -qE "^lan .* up " && ok "starting a VM brings its network back up" || { not_ok "start brings lan up"; echo "$err" | diag; "$QVM" net ls | diag; }
reboot_net auto
run_qvm net up
[ "$rc" = 0 ] && "$QVM" net ls | grep -qE "^auto .* up " && ok "net up brings every network back up" || { not_ok "net up"; echo "$err" | diag; }
reboot_net auto
run_qvm doctor
grep -q "network 'auto' is not fully up (bridge no, NAT no, dnsmasq no)" <<<"$out$err" &&
    ok "doctor finds a network that is down" || { not_ok "doctor network-down"; echo "$out$err" | diag; }
run_qvm doctor --repair
"$QVM" net ls | grep -qE "^auto .* up " && ok "doctor --repair brings it up" || { not_ok "doctor repair network"; echo "$out$err" | diag; }
echo "ghost 52:54:00:00:00:99 10.77.0.250" >>"$QVM_ROOT/var/lib/qvm/networks/lan/leases"
run_qvm doctor
grep -q "network 'lan' holds a lease for VM 'ghost', which does not exist" <<<"$out$err" &&
    ok "doctor finds the lease of a VM that is gone" || { not_ok "doctor stale lease"; echo "$out$err" | diag; }
run_qvm doctor --repair
! grep -q "^ghost " "$QVM_ROOT/var/lib/qvm/networks/lan/leases" && grep -q "^web1 " "$QVM_ROOT/var/lib/qvm/networks/lan/leases" &&
    ok "doctor --repair drops it, keeping web1's" || not_ok "stale lease kept"
grep -q "^web1 $mac1 $ip1$" "$QVM_ROOT/var/lib/qvm/networks/lan/leases" && ok "a restart keeps the lease" || not_ok "lease changed"

# Two NICs on two networks, and one on a bridge qvm does not manage.
ip -n "$NS" link add br-ext type bridge
ip -n "$NS" link set br-ext up
vmfile "$T/two.yaml" two "network:" "  - network=lan" "  - network: auto" "    model: e1000" "  - bridge=br-ext"
run_qvm up "$T/two.yaml"
[ "$rc" = 0 ] && ok "up of a VM with three NICs (two networks, one bridge)" || { not_ok "up two"; echo "$err" | diag; }
cmd=$(pgrep -af -- "-pidfile $QVM_ROOT/.*two" | grep -v pgrep)
macs=$(grep -o 'mac=[0-9a-f:]*' <<<"$cmd" | sort -u | wc -l)
grep -q "tap,id=net0,fd=3" <<<"$cmd" && grep -q "tap,id=net1,fd=4" <<<"$cmd" && grep -q "tap,id=net2,fd=5" <<<"$cmd" &&
    grep -q "e1000,netdev=net1" <<<"$cmd" && [ "$macs" = 3 ] &&
    ok "QEMU has three taps and three distinct MACs" || { not_ok "two argv"; echo "$cmd" | diag; }
[ "$(ip -n "$NS" -br link show master qvm-lan | wc -l)" = 2 ] && [ "$(ip -n "$NS" -br link show master qvm-auto | wc -l)" = 1 ] &&
    [ "$(ip -n "$NS" -br link show master br-ext | wc -l)" = 1 ] &&
    ok "each tap is on its bridge" || { not_ok "bridge ports"; ip -n "$NS" link | diag; }
grep -q "^two " "$QVM_ROOT/var/lib/qvm/networks/lan/leases" && grep -q "^two " "$QVM_ROOT/var/lib/qvm/networks/auto/leases" &&
    ok "a lease on each qvm network" || not_ok "two leases"
run_qvm info --json two
python3 - "$T/out" <<'PY' && ok "info --json: every NIC with its type, source, model, MAC and lease" || { not_ok "info"; diag <"$T/out"; }
import json, sys
v = json.load(open(sys.argv[1]))
n = v["nics"]
assert [x["type"] for x in n] == ["network", "network", "bridge"], n
assert [x["source"] for x in n] == ["lan", "auto", "br-ext"], n
assert n[1]["model"] == "e1000" and len({x["mac"] for x in n}) == 3, n
assert n[0]["lease"].startswith("10.77.0.") and n[1]["lease"].startswith("10.200.0.") and n[2]["lease"] is None, n
assert v["network"]["type"] == "network" and v["network"]["lease"] == n[0]["lease"]
PY
grep -q '"extra_networks"' "$QVM_ROOT/var/lib/qvm/pools/default/vms/two/vm.json" && ok "vm.json lists the extra NICs" || not_ok "extra_networks"

# --- removal -------------------------------------------------------------------------
run_qvm rm web1 two
! grep -q "^web1 \|^two " "$QVM_ROOT/var/lib/qvm/networks/lan/leases" && ! grep -q "web1" "$QVM_ROOT/var/lib/qvm/networks/lan/hosts" &&
    ok "rm drops the VMs' leases and names" || not_ok "leases left"
ip -n "$NS" link del br-ext
"$QVM" image rm tiny >/dev/null 2>&1
run_qvm net rm lan auto
[ "$rc" = 0 ] && ok "net rm lan auto" || { not_ok "net rm"; echo "$err" | diag; }
printf 'host:\n  tcg-overhead: 0\n  reserve: 256M\n' >/dev/null
sed -i '/^host:/,$d' "$host_cfg"
same_state "net rm leaves no bridge, tap, nft rule, dnsmasq or file; forwarding as before"

# --- every step of create and rm ---------------------------------------------------------
rm -f "$T/steps"
QVM_FAULT_TRACE=$T/steps "$QVM" net create lan --subnet 10.77.0.0/24 >/dev/null 2>&1
create_steps=$(cat "$T/steps"); rm -f "$T/steps"
QVM_FAULT_TRACE=$T/steps "$QVM" net rm lan >/dev/null 2>&1
rm_steps=$(cat "$T/steps")
[ "$(echo "$create_steps" | wc -w)" -ge 4 ] && [ "$(echo "$rm_steps" | wc -w)" -ge 2 ] &&
    ok "create and rm report their steps: $(echo $create_steps) / $(echo $rm_steps)" || not_ok "steps: $create_steps / $rm_steps"
same_state "create then rm: as before"
for step in $create_steps; do
    QVM_FAULT=$step run_qvm net create lan --subnet 10.77.0.0/24
    [ "$rc" = 1 ] && grep -q "^Error $TC: injected failure after step '$step'" <<<"$err" &&
        ok "create: failure after '$step' is reported" || { not_ok "create failure $step"; echo "$err" | diag; }
    same_state "create: failure after '$step' leaves nothing"
    (QVM_FAULT=kill:$step exec "$QVM" net create lan --subnet 10.77.0.0/24 >/dev/null 2>&1)
    [ $? = 137 ] || not_ok "SIGKILL at '$step' did not kill"
    run_qvm net ls
    grep -q "'net-create lan' was interrupted; rolled it back" <<<"$err" &&
        ok "create killed at '$step' is rolled back by the next command" || { not_ok "no rollback at $step"; echo "$err" | diag; }
    same_state "create: SIGKILL at '$step' leaves nothing"
done
"$QVM" net create lan --subnet 10.77.0.0/24 >/dev/null 2>&1
up_state=$(state_snapshot; net_state | sed 's/dnsmasq\[[0-9]*\]//')
for step in $rm_steps; do
    QVM_FAULT=$step run_qvm net rm lan
    now=$(state_snapshot; net_state | sed 's/dnsmasq\[[0-9]*\]//')
    [ "$rc" = 1 ] && [ "$now" = "$up_state" ] && "$QVM" net ls | grep -qE "^lan .* up " &&
        ok "rm: failure after '$step' leaves the network up" || { not_ok "rm failure $step"; echo "$err" | diag; diff <(echo "$up_state") <(echo "$now") | diag; }
    (QVM_FAULT=kill:$step exec "$QVM" net rm lan >/dev/null 2>&1)
    "$QVM" net ls >/dev/null 2>&1
    now=$(state_snapshot; net_state | sed 's/dnsmasq\[[0-9]*\]//')
    [ "$now" = "$up_state" ] && "$QVM" net ls | grep -qE "^lan .* up " &&
        ok "rm: SIGKILL at '$step', rolled back: the network is up" || { not_ok "rm kill $step"; diff <(echo "$up_state") <(echo "$now") | diag; }
done
"$QVM" net rm lan >/dev/null 2>&1
same_state "in the end: as before"
done_testing
