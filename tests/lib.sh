# tests/lib.sh - sourced by every shell test. TAP output, a fresh QVM_ROOT per
# test file, and helpers to check that nothing is left behind.
#
#   QVM_BUILD   the meson build directory (default: build)
set -u

top=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
QVM_BUILD=${QVM_BUILD:-$top/build}
case $QVM_BUILD in /*) ;; *) QVM_BUILD=$top/$QVM_BUILD ;; esac
QVM=$QVM_BUILD/src/cli/qvm
tap_n=0
tap_failed=0

ok()      { tap_n=$((tap_n + 1)); echo "ok $tap_n - $*"; }
not_ok()  { tap_n=$((tap_n + 1)); tap_failed=$((tap_failed + 1)); echo "not ok $tap_n - $*"; }
skip()    { tap_n=$((tap_n + 1)); echo "ok $tap_n # SKIP $*"; }
diag()    { sed 's/^/#   /'; }
done_testing() { echo "1..$tap_n"; [ "$tap_failed" = 0 ]; }

# check DESC CMD...: passes if CMD exits 0
check() {
    local desc=$1; shift
    if "$@" >"$T/check.out" 2>&1; then ok "$desc"; else not_ok "$desc"; diag <"$T/check.out"; fi
}

# A short temp root: UNIX socket paths must stay under 108 bytes.
new_root() {
    T=$(mktemp -d /tmp/qvmt.XXXXXX)
    export QVM_ROOT=$T/root
    mkdir -p "$QVM_ROOT"
}

# run_qvm ARGS...: runs qvm, leaving stdout, stderr and status in $out,
# $err and $rc.
run_qvm() {
    "$QVM" "$@" >"$T/out" 2>"$T/err"
    rc=$?
    out=$(cat "$T/out")
    err=$(cat "$T/err")
    return 0
}

# expect_error DESC TASK PATTERN ARGS...: qvm exits 1 with one line
# "Error TASK: ..." on stderr matching PATTERN (an extended regex).
expect_error() {
    local desc=$1 task=$2 pattern=$3; shift 3
    run_qvm "$@"
    if [ "$rc" = 1 ] && grep -qE "^Error $task: .*$pattern" <<<"$err"; then
        ok "$desc"
    else
        not_ok "$desc"
        { echo "exit status: $rc"; echo "stderr:"; echo "$err"; } | diag
    fi
}

# A listing of everything under the state tree (not journals' names), for
# "exactly as before" checks.
# images/*/.overlays is a cache of empty qcow2 overlays (storage/dir.c), not
# state, and is left out.
state_snapshot() {
    (cd "$QVM_ROOT" && find var/lib/qvm \( -path '*/journal/*' -o -path '*/.overlays' \) -prune -o -print 2>/dev/null | sort)
    ls "$QVM_ROOT/var/lib/qvm/journal" 2>/dev/null | sed 's/^/journal: /'
}

# QEMU processes started under this test's root.
qemu_procs() {
    pgrep -af -- "-pidfile $QVM_ROOT/" 2>/dev/null | grep -v pgrep || true
}

cleanup_root() {
    local p
    for p in $(pgrep -f -- "-pidfile $QVM_ROOT/" 2>/dev/null); do kill -9 "$p" 2>/dev/null; done
    if [ -n "${T:-}" ] && [ -d "$T" ]; then
        grep -q " $T" /proc/mounts && umount -l $(awk -v t="$T" '$2 ~ "^"t {print $2}' /proc/mounts) 2>/dev/null
        chmod -R u+w "$T" 2>/dev/null
        rm -rf "$T"
    fi
}

# The cloud image built by tests/image/build-cloud-image.sh (cached), or
# empty if it cannot be built here.
cloud_image() {
    local p
    p=$(bash "$top/tests/image/build-cloud-image.sh" --print-path)
    if [ ! -s "$p" ]; then
        bash "$top/tests/image/build-cloud-image.sh" >/dev/null 2>"$T/image-build.log" || true
    fi
    [ -s "$p" ] && echo "$p"
}
