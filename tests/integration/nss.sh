#!/usr/bin/env bash
# nss.sh - libnss_qvm.so.2 as every program sees it: getent (glibc's own
# lookups, nothing of qvm's) in a private mount namespace whose
# /etc/nsswitch.conf says "hosts: files qvm", the built module on the
# library path, a QVM_ROOT with hosts files in qvm's format. The host's
# nsswitch.conf is never touched.
source "$(dirname "$0")/../lib.sh"

module_dir=$QVM_BUILD/src/nss
if [ "$(id -u)" != 0 ] || ! command -v unshare >/dev/null || ! command -v getent >/dev/null; then
    skip "needs root, unshare and getent"
    done_testing
    exit
fi
if [ ! -f "$module_dir/libnss_qvm.so.2" ]; then
    not_ok "the module is built ($module_dir/libnss_qvm.so.2)"
    done_testing
    exit
fi
new_root
trap cleanup_root EXIT

# An ASan build's module needs the sanitizer runtimes loaded first in getent.
preload=
if readelf -d "$module_dir/libnss_qvm.so.2" | grep -q 'libasan'; then
    preload="$(gcc -print-file-name=libasan.so):$(gcc -print-file-name=libubsan.so)"
fi

nets=$QVM_ROOT/var/lib/qvm/networks
mkdir -p "$nets/lan" "$nets/dmz"
# As core/net.c writes them: a header comment, "IP NAME NAME.qvm", renamed into place.
write_hosts() {  # write_hosts NETWORK LINES...
    local net=$1; shift
    { echo "# qvm network: the VMs' names (read by dnsmasq and libnss_qvm)"; printf '%s\n' "$@"; } \
        >"$nets/$net/.hosts.tmp"
    chmod 0644 "$nets/$net/.hosts.tmp"
    mv "$nets/$net/.hosts.tmp" "$nets/$net/hosts"
}
write_hosts lan "10.10.0.5 web1 web1.qvm" "10.10.0.6 db1 db1.qvm"
write_hosts dmz "10.20.0.9 mail mail.qvm"

sed 's/^hosts:.*/hosts: files qvm/' /etc/nsswitch.conf >"$T/nsswitch.conf"
grep -q '^hosts:' "$T/nsswitch.conf" || echo 'hosts: files qvm' >>"$T/nsswitch.conf"

# in_ns CMD...: CMD with the private nsswitch.conf and the built module.
in_ns() {
    unshare -m -- env LD_LIBRARY_PATH="$module_dir" LD_PRELOAD="$preload" \
        ASAN_OPTIONS=detect_leaks=0 QVM_ROOT="$QVM_ROOT" NSSCONF="$T/nsswitch.conf" \
        sh -c 'mount --bind "$NSSCONF" /etc/nsswitch.conf && exec "$@"' sh "$@"
}

# expect_getent DESC WANT ARGS...: getent ARGS prints exactly WANT (blanks squeezed).
expect_getent() {
    local desc=$1 want=$2; shift 2
    local got
    got=$(in_ns getent "$@" 2>"$T/getent.err" | tr -s ' \t' ' ')
    if [ "$got" = "$want" ]; then ok "$desc"; else
        not_ok "$desc"; { echo "want: $want"; echo "got:  $got"; cat "$T/getent.err"; } | diag; fi
}

expect_getent "getent hosts web1" "10.10.0.5 web1 web1.qvm" hosts web1
expect_getent "getent hosts web1.qvm (gethostbyname2)" "10.10.0.5 web1 web1.qvm" hosts web1.qvm
expect_getent "getent ahostsv4 DB1.QVM (getaddrinfo, any case)" \
    "10.10.0.6 STREAM db1
10.10.0.6 DGRAM 
10.10.0.6 RAW " ahostsv4 DB1.QVM
expect_getent "getent hosts mail: the second network" "10.20.0.9 mail mail.qvm" hosts mail
expect_getent "getent hosts 10.10.0.6: reverse" "10.10.0.6 db1 db1.qvm" hosts 10.10.0.6

in_ns getent hosts nosuch >/dev/null 2>&1
rc=$?
if [ "$rc" = 2 ]; then ok "an unknown name: getent exits 2 (not found)"; else not_ok "unknown name: exit $rc"; fi

# No stale entries: a replaced file is what the next lookup reads.
write_hosts lan "10.10.0.7 web1 web1.qvm"
expect_getent "a VM moved to another address: the next lookup has it" "10.10.0.7 web1 web1.qvm" hosts web1
write_hosts lan "10.10.0.7 web2 web2.qvm"
in_ns getent hosts web1 >/dev/null 2>&1
rc=$?
if [ "$rc" = 2 ]; then ok "a VM gone from the file is gone from lookups"; else not_ok "web1 after removal: exit $rc"; fi
rm -r "$nets"
in_ns getent hosts web2 >/dev/null 2>&1
rc=$?
if [ "$rc" = 2 ]; then ok "no networks directory: not found"; else not_ok "no networks: exit $rc"; fi

done_testing
