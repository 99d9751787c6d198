# tests/libvirt-env.sh - sourced (after lib.sh) by the libvirt runtime's tests:
# a real libvirtd on qemu:///system, started here if none runs, and put back
# as it was at exit.
#
# libvirt_up: uses a running libvirtd as it is; otherwise creates the
# libvirt-qemu user if it is missing, adds user = "root" to
# /etc/libvirt/qemu.conf if no user is set there (this host's test trees
# under /tmp are root's; a copy of the file is kept), and starts virtlogd
# and libvirtd (-d). Returns 1 with the reason in $lv_skip if libvirt
# cannot be had. libvirt_down (call it from the EXIT trap): undefines the
# domains whose names start with $lv_prefix, stops the daemons libvirt_up
# started (by their pid) and restores qemu.conf and the user.
LV_URI=qemu:///system
lv_prefix=${lv_prefix:-lvt$$-}
lv_skip=""
lv_started_libvirtd="" lv_started_virtlogd="" lv_conf_backup="" lv_user_created=0
lv_qemu_conf=/etc/libvirt/qemu.conf

virsh_() { virsh -q -c "$LV_URI" "$@"; }

lv_alive_pidfile() { local p; [ -s "$1" ] && p=$(cat "$1") && kill -0 "$p" 2>/dev/null && echo "$p"; }

libvirt_up() {
    local c p
    for c in libvirtd virtlogd virsh; do
        command -v "$c" >/dev/null || { lv_skip="$c is not installed (libvirt-daemon-system, libvirt-clients)"; return 1; }
    done
    [ "$(id -u)" = 0 ] || { lv_skip="needs root to run libvirtd"; return 1; }
    if ! lv_alive_pidfile /run/libvirtd.pid >/dev/null && [ -z "$(pidof libvirtd)" ]; then
        if ! id libvirt-qemu >/dev/null 2>&1; then
            useradd -r -M -s /usr/sbin/nologin libvirt-qemu || { lv_skip="cannot create the libvirt-qemu user"; return 1; }
            lv_user_created=1
        fi
        if [ -f "$lv_qemu_conf" ] && ! grep -qE '^[[:space:]]*user[[:space:]]*=' "$lv_qemu_conf"; then
            lv_conf_backup=$(mktemp /tmp/qvm-qemu.conf.XXXXXX)
            cp -p "$lv_qemu_conf" "$lv_conf_backup"
            echo 'user = "root"' >>"$lv_qemu_conf"
        fi
        if ! lv_alive_pidfile /run/virtlogd.pid >/dev/null && [ -z "$(pidof virtlogd)" ]; then
            virtlogd -d || { lv_skip="virtlogd -d failed"; return 1; }
            for _ in $(seq 50); do lv_started_virtlogd=$(lv_alive_pidfile /run/virtlogd.pid) && break; sleep 0.1; done
        fi
        libvirtd -d || { lv_skip="libvirtd -d failed"; return 1; }
        for _ in $(seq 100); do lv_started_libvirtd=$(lv_alive_pidfile /run/libvirtd.pid) && break; sleep 0.1; done
    fi
    for _ in $(seq 100); do virsh_ version >/dev/null 2>&1 && break; sleep 0.1; done
    if ! virsh_ version >/dev/null 2>&1; then
        lv_skip="libvirtd does not answer on $LV_URI: $(virsh_ version 2>&1 | head -1)"
        return 1
    fi
    if ! virsh_ capabilities 2>/dev/null | grep -q "<domain type='qemu'"; then
        lv_skip="libvirt on $LV_URI offers no domain type qemu"
        return 1
    fi
    return 0
}

# Our domains, by name prefix.
lv_domains() { virsh_ list --all --name 2>/dev/null | grep "^$lv_prefix" || true; }

libvirt_down() {
    local d p
    if command -v virsh >/dev/null; then
        for d in $(lv_domains); do
            virsh_ destroy "$d" >/dev/null 2>&1
            virsh_ undefine --managed-save --snapshots-metadata --nvram "$d" >/dev/null 2>&1 ||
                virsh_ undefine "$d" >/dev/null 2>&1
        done
    fi
    for p in $lv_started_libvirtd $lv_started_virtlogd; do
        kill "$p" 2>/dev/null
        for _ in $(seq 100); do kill -0 "$p" 2>/dev/null || break; sleep 0.1; done
    done
    if [ -n "$lv_conf_backup" ] && [ -f "$lv_conf_backup" ]; then
        cp -p "$lv_conf_backup" "$lv_qemu_conf" && rm -f "$lv_conf_backup"
    fi
    [ "$lv_user_created" = 1 ] && userdel libvirt-qemu 2>/dev/null
    rm -f /var/log/libvirt/qemu/"$lv_prefix"*.log 2>/dev/null
    return 0
}
