#!/usr/bin/env bash
# End to end on qvm networks, in network namespaces of the test's own: a
# "host" namespace where qvm, its bridges, dnsmasq and QEMU run, and an
# "outside" one behind a veth pair standing for the rest of the world. The
# real cloud image boots with two NICs on two qvm networks; each NIC gets
# its static lease over real DHCP; the host resolves the VM by name
# through libnss_qvm (ping and ssh by name), the guest resolves it through
# dnsmasq, and the guest reaches the outside through NAT (the outside sees
# the host's address, never the guest's). The VM also has two disks on two
# pools (its image disk on the dir pool, a data disk on a Btrfs pool), so
# one boot shows all four devices. Tear-down leaves no bridge, tap, dnsmasq
# or nftables rule.
source "$(dirname "$0")/../lib.sh"
new_root
chmod 755 "$T"     # dnsmasq drops to its own user, which must reach the leases
img=$(cloud_image)
if [ -z "$img" ]; then
    skip "no cloud image: tests/image/build-cloud-image.sh failed: $(tail -1 "$T/image-build.log" 2>/dev/null)"
    done_testing; exit
fi
for tool in qemu-system-x86_64 ip nft dnsmasq ssh ssh-keygen python3 ping; do
    command -v "$tool" >/dev/null || { skip "$tool is not installed (scripts/install-deps.sh)"; done_testing; exit; }
done
NS=qvmh$$ OUT=qvmo$$
ip netns add "$NS" && ip netns add "$OUT" || { not_ok "setup: ip netns add"; done_testing; exit; }
srv_pid=
cleanup() {
    [ -n "$srv_pid" ] && kill "$srv_pid" 2>/dev/null
    for p in $(pgrep -f -- "$QVM_ROOT/" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    ip netns del "$NS" 2>/dev/null; ip netns del "$OUT" 2>/dev/null
    rm -rf "/etc/netns/$NS"
    cleanup_root
}
trap cleanup EXIT
source "$top/tests/pools/btrfs.sh"
make_btrfs_pool data 512 || { done_testing; exit; }
ip -n "$NS" link set lo up
ip -n "$OUT" link set lo up
ip link add "vh$$" netns "$NS" type veth peer name "vo$$" netns "$OUT"
ip -n "$NS" addr add 192.0.2.1/24 dev "vh$$"
ip -n "$OUT" addr add 192.0.2.2/24 dev "vo$$"
ip -n "$NS" link set "vh$$" up
ip -n "$OUT" link set "vo$$" up
ip -n "$NS" route add default via 192.0.2.2
REAL_QVM=$QVM
QVM=$T/qvm-ns
printf '#!/bin/sh\nexec ip netns exec %s %s "$@"\n' "$NS" "$REAL_QVM" >"$QVM"
chmod +x "$QVM"
inns() { ip netns exec "$NS" "$@"; }
# The host resolves VM names through libnss_qvm: the namespace gets its own
# nsswitch.conf (ip netns exec binds /etc/netns/NS/* over /etc), and the
# built module is found on the library path, as it would be once installed.
nss_dir=$QVM_BUILD/src/nss
have_nss=0
if [ -e "$nss_dir/libnss_qvm.so.2" ]; then
    have_nss=1
    mkdir -p "/etc/netns/$NS"
    sed 's/^hosts:.*/hosts: files qvm dns/' /etc/nsswitch.conf >"/etc/netns/$NS/nsswitch.conf"
fi
# An ASan build's module needs the sanitizer runtimes loaded first in the
# programs that load it (getent, ping, ssh), and their own leaks are not ours.
nss_preload=
if [ "$have_nss" = 1 ] && readelf -d "$nss_dir/libnss_qvm.so.2" | grep -q libasan; then
    nss_preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
fi
byname() {
    LD_LIBRARY_PATH=$nss_dir LD_PRELOAD=$nss_preload ASAN_OPTIONS=detect_leaks=0 \
        ip netns exec "$NS" "$@"
}
net_state() {
    ip -n "$NS" -br link | awk '{print $1}' | grep -v -e '^lo$' -e "^vh$$" | sort
    inns nft list ruleset
    pgrep -af -- "$QVM_ROOT/var/lib/qvm/networks/" | grep -v pgrep | sed 's/^[0-9]* //'
    echo "ip_forward=$(inns cat /proc/sys/net/ipv4/ip_forward)"
}
before_net=$(net_state)

run_qvm image import debian12 "$img"
[ "$rc" = 0 ] && ok "image import of the cloud image" || { not_ok "image import"; echo "$err" | diag; }
run_qvm net create lan --subnet 10.77.0.0/24
[ "$rc" = 0 ] && ok "net create lan (10.77.0.0/24)" || { not_ok "net create lan"; echo "$err" | diag; }
run_qvm net create lan2 --subnet 10.78.0.0/24
[ "$rc" = 0 ] && ok "net create lan2 (10.78.0.0/24)" || { not_ok "net create lan2"; echo "$err" | diag; }

mkdir -p "$T/home/.ssh"
ssh-keygen -q -t ed25519 -N '' -C net-test -f "$T/home/.ssh/id_ed25519"
vm_doc() {
    cat <<EOF
qvm: vm
name: web1
memory: 1024
vcpus: 1
graphics: none
network:
  - network=lan
  - network: lan2
disk:
  - size: 4
    zvol:
      base: debian12
  - size: 1
    pool: data
---
qvm: user-data
hostname: web1
users:
  - name: tester
    shell: /bin/bash
    lock_passwd: true
    ssh_authorized_keys:
      - $(cat "$T/home/.ssh/id_ed25519.pub")
---
qvm: meta-data
instance-id: web1-1
EOF
}
vm_doc >"$T/web1.yaml"
# The MACs qvm derives (from the dry run's QEMU command line) go into the
# network-config, so that both NICs ask for DHCP.
run_qvm up --dry-run "$T/web1.yaml"
macs=($(grep -o 'mac=[0-9a-f:]*' <<<"$out" | cut -d= -f2))
[ "${#macs[@]}" = 2 ] && [ "${macs[0]}" != "${macs[1]}" ] && ok "dry run: two NICs, two derived MACs (${macs[*]})" ||
    { not_ok "dry-run MACs"; echo "$out$err" | diag; }
{
    vm_doc
    cat <<EOF
---
qvm: network-config
version: 1
config:
  - type: physical
    name: eth0
    mac_address: "${macs[0]}"
    subnets: [{type: dhcp}]
  - type: physical
    name: eth1
    mac_address: "${macs[1]}"
    subnets: [{type: dhcp}]
EOF
} >"$T/web1.yaml"

run_qvm up "$T/web1.yaml"
[ "$rc" = 0 ] && ok "qvm up web1 on lan and lan2" || { not_ok "up"; echo "$out$err" | diag; }
run_qvm wait web1 --timeout 900
[ "$rc" = 0 ] && ok "cloud-init finished in web1" || { not_ok "wait"; echo "$out$err" | diag; tail -30 "$QVM_ROOT/var/lib/qvm/pools/default/vms/web1/console.log" | diag; }

run_qvm exec web1 -- lsblk -b -d -n -o NAME,SIZE
sizes=$(sort <<<"$out" | awk '{print $1 "=" $2}' | tr '\n' ' ')
grep -q "vda=4294967296 " <<<"$sizes" && grep -q "vdb=1073741824 " <<<"$sizes" &&
    ok "the guest sees both disks: vda 4 GiB (dir pool), vdb 1 GiB (Btrfs pool)" || { not_ok "guest disks: $sizes"; echo "$err" | diag; }
[ -f "$BTRFS_MNT/vms/web1/disk1/disk.raw" ] && ok "the data disk lives in the Btrfs pool" || { not_ok "data disk placement"; find "$BTRFS_MNT" | diag; }
run_qvm exec web1 -- sh -c 'ls /sys/class/net | grep -v lo | while read i; do echo "$i $(cat /sys/class/net/$i/address)"; done'
nics=$(sort <<<"$out" | tr '\n' ' ')
grep -q "eth0 ${macs[0]} " <<<"$nics" && grep -q "eth1 ${macs[1]} " <<<"$nics" &&
    ok "the guest sees both NICs with their MACs: $nics" || { not_ok "guest NICs: $nics"; echo "$err" | diag; }
ip1=$(awk '$1 == "web1" {print $3}' "$QVM_ROOT/var/lib/qvm/networks/lan/leases")
ip2=$(awk '$1 == "web1" {print $3}' "$QVM_ROOT/var/lib/qvm/networks/lan2/leases")
guest=$("$QVM" exec web1 -- ip -4 -o addr show 2>&1)
grep -q "eth0 *inet $ip1/24" <<<"$guest" && grep -q "eth1 *inet $ip2/24" <<<"$guest" &&
    ok "the guest got its static leases over DHCP: eth0 $ip1, eth1 $ip2" || { not_ok "guest addresses ($ip1, $ip2)"; echo "$guest" | diag; }
grep -q "DHCPACK(qvm-lan) $ip1 ${macs[0]} web1" "$QVM_ROOT/var/lib/qvm/networks/lan/dnsmasq.log" &&
    ok "dnsmasq's log shows the lease it gave" || { not_ok "dnsmasq log"; tail -20 "$QVM_ROOT/var/lib/qvm/networks/lan/dnsmasq.log" | diag; }
run_qvm exec web1 -- getent hosts web1.qvm
# Each network's dnsmasq names the VM by its address there; the guest asks
# the one its last DHCP answer named.
grep -qE "^($ip1|$ip2) +web1.qvm" <<<"$out" && ok "the guest resolves web1.qvm through dnsmasq" || { not_ok "guest DNS"; echo "$out$err" | diag; }

if [ "$have_nss" = 1 ]; then
    # On two networks, web1 has two addresses, in network-name order.
    got=$(byname getent ahostsv4 web1 | awk '$2 == "STREAM" {print $1}' | tr '\n' ' ')
    [ "$got" = "$ip1 $ip2 " ] && ok "the host resolves web1 through libnss_qvm ($got)" || not_ok "getent ahostsv4 web1: '$got'"
    byname ping -c 1 -W 5 web1 >"$T/ping" 2>&1 && grep -qE "from (web1 \()?$ip1" "$T/ping" &&
        ok "ping web1 (by name) answers from $ip1" || { not_ok "ping web1"; diag <"$T/ping"; }
    byname ping -c 1 -W 5 web1.qvm >/dev/null 2>&1 && ok "ping web1.qvm" || not_ok "ping web1.qvm"
    out=$(byname ssh -n -o BatchMode=yes -o ConnectTimeout=30 -o StrictHostKeyChecking=no \
          -o UserKnownHostsFile=/dev/null -i "$T/home/.ssh/id_ed25519" tester@web1 'echo "$(whoami)@$(hostname)"' 2>"$T/ssh.err")
    [ "$out" = "tester@web1" ] && ok "ssh tester@web1 (by name) logs in" || { not_ok "ssh by name: '$out'"; diag <"$T/ssh.err"; }
else
    skip "libnss_qvm was not built ($nss_dir/libnss_qvm.so.2): names through NSS not checked"
fi
HOME=$T/home run_qvm ssh web1 -- -n -o BatchMode=yes -o ConnectTimeout=30 hostname
[ "$rc" = 0 ] && [ "$out" = web1 ] && ok "qvm ssh reaches the VM at its leased address" || { not_ok "qvm ssh"; echo "$out$err" | diag; }
inns ping -c 1 -W 5 "$ip2" >/dev/null 2>&1 && ok "the second NIC answers on lan2 ($ip2)" || not_ok "ping $ip2"

# NAT: the outside has no route to 10.77.0.0/24 and must see the host's address.
ip netns exec "$OUT" python3 -u -m http.server 8080 --bind 192.0.2.2 >"$T/http.log" 2>&1 &
srv_pid=$!
sleep 1
run_qvm exec web1 -- python3 -c "import urllib.request; print(urllib.request.urlopen('http://192.0.2.2:8080/nat-probe', timeout=20).status)"
[ "$rc" = 0 ] || [ "$rc" = 1 ]
grep -q '^192.0.2.1 .*"GET /nat-probe' "$T/http.log" && ! grep -q "^10\.7" "$T/http.log" &&
    ok "the guest reaches the outside through NAT, which sees the host's 192.0.2.1" || { not_ok "NAT"; { echo "exec rc=$rc $out $err"; cat "$T/http.log"; } | diag; }
kill "$srv_pid" 2>/dev/null; wait "$srv_pid" 2>/dev/null; srv_pid=

expect_error "net rm of a network in use names the VM" "removing network" "in use by VM web1" net rm lan
run_qvm net ls
grep -qE "^lan .* up .*web1 \($ip1\)" <<<"$out" && grep -qE "^lan2 .* up .*web1 \($ip2\)" <<<"$out" &&
    ok "net ls: both networks up, web1 on each with its address" || { not_ok "net ls"; echo "$out" | diag; }

# --- tear-down ---------------------------------------------------------------------
run_qvm stop web1
[ "$rc" = 0 ] && ok "qvm stop web1" || { not_ok "stop"; echo "$err" | diag; }
[ -z "$(ip -n "$NS" -br link | grep '^qvm[0-9a-f]\{8\}n')" ] && ok "no tap is left once QEMU is gone" || { not_ok "taps left"; ip -n "$NS" link | diag; }
run_qvm rm web1
[ ! -e "$BTRFS_MNT/vms/web1" ] && ok "rm removed the data disk from the Btrfs pool" || { not_ok "data disk left"; find "$BTRFS_MNT/vms" | diag; }
run_qvm net rm lan lan2
[ "$rc" = 0 ] && ok "net rm lan lan2" || { not_ok "net rm"; echo "$err" | diag; }
now_net=$(net_state)
[ "$now_net" = "$before_net" ] && ok "tear-down leaves no bridge, tap, dnsmasq or nftables rule; forwarding as before" ||
    { not_ok "left behind"; diff <(echo "$before_net") <(echo "$now_net") | diag; }
done_testing
