#!/usr/bin/env bash
# qmp.sh - the QMP client (src/lib/runtime/qmp.c) against a real QEMU, driven
# through tests/unit/qmp_probe. TAP output.
#
#   QVM_BUILD=/work/main/build bash tests/integration/qmp.sh
#
# Needs qemu-system-x86_64 (TCG only, no KVM) and the qmp_probe binary.
set -u

build=${QVM_BUILD:-/work/main/build}
probe=$build/tests/unit/qmp_probe
qemu=${QVM_QEMU:-qemu-system-x86_64}

n=0
failed=0
ok() { n=$((n + 1)); echo "ok $n - $*"; }
not_ok() { n=$((n + 1)); failed=$((failed + 1)); echo "not ok $n - $*"; }
skip() { n=$((n + 1)); echo "ok $n # SKIP $*"; }
done_testing() { echo "1..$n"; [ "$failed" -eq 0 ]; exit $?; }

# check DESC GOT WANT: GOT must equal WANT exactly
check_eq() {
    if [ "$2" = "$3" ]; then ok "$1"; else not_ok "$1"; echo "#   got:  '$2'"; echo "#   want: '$3'"; fi
}
# check_has DESC HAYSTACK NEEDLE
check_has() {
    case $2 in
        *"$3"*) ok "$1" ;;
        *) not_ok "$1"; echo "#   '$2'"; echo "#   does not contain '$3'" ;;
    esac
}
# line KEY FILE: the value after "KEY: " in the probe's output
line() { sed -n "s/^$1: //p" "$2" | head -n1; }

if ! command -v "$qemu" >/dev/null 2>&1; then
    skip "$qemu is not installed"
    # --- 5. a scripted fake QEMU / guest agent: stream framing and limits that a
# real QEMU does not produce on demand.
out=$trash/fake-split.out
timeout 30 "$probe" "$trash/fake.sock" fake split >"$out" 2>&1
sed 's/^/#   probe: /' "$out"
check_eq "greeting sent byte by byte, no newlines between messages" "$(line connect "$out")" ok
check_eq "reply split over three writes, after a stale reply with another id" \
    "$(line split-status "$out")" "status=running running=true"
check_eq "event sent right after the capabilities reply was queued" "$(line split-queued-early "$out")" ok
check_eq "event sent between stale reply and reply was queued" "$(line split-queued-resume "$out")" ok
check_eq "error reply with the id first and a unicode escape" "$(line split-error "$out")" \
    "rc=-5 msg=QMP command 'query-x' failed: boom é (GenericError)"
check_eq "connection dropped in the middle of a reply: -ECONNRESET" "$(line split-eof "$out")" \
    "rc=-104 msg=QEMU closed the monitor connection (is it still running?)"

out=$trash/fake-oversize.out
timeout 30 "$probe" "$trash/fake.sock" fake oversize >"$out" 2>&1
check_eq "a 17 MiB message is refused at the 16 MiB cap" "$(line oversize "$out")" \
    "rc=-90 msg=message from QEMU exceeds the limit of 16777216 bytes"
check_eq "and the connection stays failed" "$(line then "$out")" \
    "rc=-90 msg=message from QEMU exceeds the limit of 16777216 bytes"

out=$trash/fake-garbage.out
timeout 30 "$probe" "$trash/fake.sock" fake garbage >"$out" 2>&1
check_eq "malformed JSON: -EPROTO" "$(line garbage "$out")" \
    "rc=-71 msg=malformed message from QEMU: unexpected character"

out=$trash/fake-qga.out
timeout 30 "$probe" "$trash/fake.sock" fake qga >"$out" 2>&1
sed 's/^/#   probe: /' "$out"
check_eq "guest-sync-delimited skips stale data up to the 0xFF sentinel" "$(line qga-connect "$out")" ok
check_eq "guest-exec with guest-exec-status polling" "$(line qga-exec "$out")" ok
check_eq "exit code" "$(line qga-exit "$out")" 7
check_eq "path, args and base64 input-data sent; out-data decoded" "$(line qga-out "$out")" \
    'path=/bin/sh arg=["-c","echo \"$0\"","x y"] input-b64=aW5wdXQK'
check_eq "err-data decoded, NUL byte kept" "$(line qga-err "$out")" 'err\x00bytes'
ms=$(line qga-polled-ms "$out")
if [ "${ms:-0}" -ge 180 ] && [ "${ms:-0}" -lt 1000 ]; then ok "status polled every 100 ms (3 polls in ${ms} ms)"; else not_ok "status polled every 100 ms (${ms:-?} ms)"; fi

done_testing
fi
if [ ! -x "$probe" ]; then
    not_ok "qmp_probe is built ($probe; run ninja -C $build)"
    # --- 5. a scripted fake QEMU / guest agent: stream framing and limits that a
# real QEMU does not produce on demand.
out=$trash/fake-split.out
timeout 30 "$probe" "$trash/fake.sock" fake split >"$out" 2>&1
sed 's/^/#   probe: /' "$out"
check_eq "greeting sent byte by byte, no newlines between messages" "$(line connect "$out")" ok
check_eq "reply split over three writes, after a stale reply with another id" \
    "$(line split-status "$out")" "status=running running=true"
check_eq "event sent right after the capabilities reply was queued" "$(line split-queued-early "$out")" ok
check_eq "event sent between stale reply and reply was queued" "$(line split-queued-resume "$out")" ok
check_eq "error reply with the id first and a unicode escape" "$(line split-error "$out")" \
    "rc=-5 msg=QMP command 'query-x' failed: boom é (GenericError)"
check_eq "connection dropped in the middle of a reply: -ECONNRESET" "$(line split-eof "$out")" \
    "rc=-104 msg=QEMU closed the monitor connection (is it still running?)"

out=$trash/fake-oversize.out
timeout 30 "$probe" "$trash/fake.sock" fake oversize >"$out" 2>&1
check_eq "a 17 MiB message is refused at the 16 MiB cap" "$(line oversize "$out")" \
    "rc=-90 msg=message from QEMU exceeds the limit of 16777216 bytes"
check_eq "and the connection stays failed" "$(line then "$out")" \
    "rc=-90 msg=message from QEMU exceeds the limit of 16777216 bytes"

out=$trash/fake-garbage.out
timeout 30 "$probe" "$trash/fake.sock" fake garbage >"$out" 2>&1
check_eq "malformed JSON: -EPROTO" "$(line garbage "$out")" \
    "rc=-71 msg=malformed message from QEMU: unexpected character"

out=$trash/fake-qga.out
timeout 30 "$probe" "$trash/fake.sock" fake qga >"$out" 2>&1
sed 's/^/#   probe: /' "$out"
check_eq "guest-sync-delimited skips stale data up to the 0xFF sentinel" "$(line qga-connect "$out")" ok
check_eq "guest-exec with guest-exec-status polling" "$(line qga-exec "$out")" ok
check_eq "exit code" "$(line qga-exit "$out")" 7
check_eq "path, args and base64 input-data sent; out-data decoded" "$(line qga-out "$out")" \
    'path=/bin/sh arg=["-c","echo \"$0\"","x y"] input-b64=aW5wdXQK'
check_eq "err-data decoded, NUL byte kept" "$(line qga-err "$out")" 'err\x00bytes'
ms=$(line qga-polled-ms "$out")
if [ "${ms:-0}" -ge 180 ] && [ "${ms:-0}" -lt 1000 ]; then ok "status polled every 100 ms (3 polls in ${ms} ms)"; else not_ok "status polled every 100 ms (${ms:-?} ms)"; fi

done_testing
fi

trash=$(mktemp -d /tmp/qvm-qmp.XXXXXX)
cleanup() {
    for p in "$trash"/*.pid; do
        [ -s "$p" ] && kill -9 "$(cat "$p")" 2>/dev/null
    done
    rm -rf "$trash"
}
trap cleanup EXIT

# start_qemu NAME: a stopped (-S) TCG machine with a QMP socket, daemonized.
start_qemu() {
    "$qemu" -name "$1" -accel tcg -machine q35 -m 64 -nodefaults -no-user-config \
        -display none -S -qmp "unix:$trash/$1.sock,server=on,wait=off" \
        -daemonize -pidfile "$trash/$1.pid" 2>"$trash/$1.err"
}

# wait_for PATTERN FILE SECONDS
wait_for() {
    local i
    for ((i = 0; i < $3 * 10; i++)); do
        grep -q "$1" "$2" 2>/dev/null && return 0
        sleep 0.1
    done
    return 1
}

gone() {   # PID is no longer running, waiting up to 5 s
    local i
    for ((i = 0; i < 50; i++)); do
        kill -0 "$1" 2>/dev/null || return 0
        sleep 0.1
    done
    return 1
}

# --- 1. the whole conversation; the probe starts before QEMU and must retry.
out=$trash/basic.out
timeout 60 "$probe" "$trash/vm1.sock" basic 10000 >"$out" 2>&1 &
probe_pid=$!
sleep 0.5
if start_qemu vm1; then ok "qemu starts (TCG, -S, QMP socket)"; else not_ok "qemu starts"; sed 's/^/#   /' "$trash/vm1.err"; fi
qemu_pid=$(cat "$trash/vm1.pid" 2>/dev/null)
wait "$probe_pid"
check_eq "probe ran to the end" "$?" 0
sed 's/^/#   probe: /' "$out"

check_eq "connect retried until the socket appeared, read the greeting, negotiated capabilities" \
    "$(line connect "$out")" ok
ms=$(line connect-ms "$out")
if [ "${ms:-0}" -ge 300 ]; then ok "connect waited for QEMU (${ms} ms)"; else not_ok "connect waited for QEMU (${ms:-?} ms)"; fi
check_has "query-version answers 7.x or later" "$(line version "$out")" "."
check_eq "query-status before cont" "$(line status-before "$out")" "status=prelaunch running=false"
check_eq "cont" "$(line cont "$out")" ok
check_eq "RESUME event, which came with the reply to cont, was queued" "$(line event-resume "$out")" ok
check_eq "query-status after cont" "$(line status-after "$out")" "status=running running=true"
check_has "arguments are passed (human-monitor-command 'info name')" "$(line hmp-info-name "$out")" vm1
check_eq "unknown command: -EIO with QEMU's description and class" "$(line unknown-command "$out")" \
    "rc=-5 msg=QMP command 'no-such-command' failed: The command no-such-command has not been found (CommandNotFound)"
check_has "bad argument: -EIO with QEMU's description" "$(line bad-argument "$out")" \
    "rc=-5 msg=QMP command 'device_del' failed: Device 'nonexistent0' not found (DeviceNotFound)"
check_eq "the connection is still usable after error replies" "$(line status-after-errors "$out")" \
    "status=running running=true"
check_eq "waiting for an event that never comes times out" "$(line event-timeout "$out")" \
    "rc=-110 msg=no NO_SUCH_EVENT event from QEMU within 300 ms"
check_eq "system_powerdown" "$(line powerdown "$out")" ok
check_eq "POWERDOWN event" "$(line event-powerdown "$out")" ok
check_eq "quit" "$(line quit "$out")" ok
check_eq "SHUTDOWN event after quit" "$(line event-shutdown "$out")" ok
check_eq "a command after quit: -ECONNRESET, clear message" "$(line status-after-quit "$out")" \
    "rc=-104 msg=QEMU closed the monitor connection (is it still running?)"
ms=$(line status-after-quit-ms "$out")
if [ "${ms:-99999}" -lt 1000 ]; then ok "and at once (${ms} ms)"; else not_ok "and at once (${ms:-?} ms)"; fi
check_eq "waiting for an event after quit: -ECONNRESET" "$(line event-after-quit "$out")" \
    "rc=-104 msg=QEMU closed the monitor connection (is it still running?)"
if [ -n "$qemu_pid" ] && gone "$qemu_pid"; then ok "QEMU exited after quit"; else not_ok "QEMU exited after quit"; fi

# --- 2. QEMU killed under a connected client: a command fails, it does not hang.
if start_qemu vm2; then ok "second qemu starts"; else not_ok "second qemu starts"; fi
qemu_pid=$(cat "$trash/vm2.pid" 2>/dev/null)
out=$trash/dead.out
mkfifo "$trash/go"
timeout 60 "$probe" "$trash/vm2.sock" dead 10000 <"$trash/go" >"$out" 2>&1 &
probe_pid=$!
exec 7>"$trash/go"
if wait_for "^connect: ok" "$out" 10; then ok "probe connected to the second qemu"; else not_ok "probe connected"; fi
kill -9 "$qemu_pid"
if gone "$qemu_pid"; then ok "qemu killed with SIGKILL"; else not_ok "qemu killed with SIGKILL"; fi
echo go >&7
exec 7>&-
wait "$probe_pid"
check_eq "probe returned (no hang)" "$?" 0
sed 's/^/#   probe: /' "$out"
check_eq "query-status on a dead QEMU: -ECONNRESET, clear message" "$(line status-after-kill "$out")" \
    "rc=-104 msg=QEMU closed the monitor connection (is it still running?)"
ms=$(line status-after-kill-ms "$out")
if [ "${ms:-99999}" -lt 2000 ]; then ok "detected at once, not after the 5 s timeout (${ms} ms)"; else not_ok "detected at once (${ms:-?} ms)"; fi
check_eq "later calls fail the same way" "$(line status-again "$out")" \
    "rc=-104 msg=QEMU closed the monitor connection (is it still running?)"

# --- 3. no socket at all: connect gives up after its timeout with the reason.
out=$trash/nosock.out
timeout 30 "$probe" "$trash/nonexistent.sock" connect 500 >"$out" 2>&1
check_eq "connect to a missing socket fails" "$?" 1
check_eq "with ENOENT, the path and the time waited" "$(line connect "$out")" \
    "rc=-2 msg=cannot connect to QMP socket $trash/nonexistent.sock within 500 ms: No such file or directory"
ms=$(line connect-ms "$out")
if [ "${ms:-0}" -ge 450 ] && [ "${ms:-0}" -lt 3000 ]; then ok "after about 500 ms (${ms} ms)"; else not_ok "after about 500 ms (${ms:-?} ms)"; fi

# --- 4. QEMU serves one QMP client at a time: a second one gets no greeting.
if start_qemu vm3; then ok "third qemu starts"; else not_ok "third qemu starts"; fi
out=$trash/holder.out
rm -f "$trash/go"
mkfifo "$trash/go"
timeout 60 "$probe" "$trash/vm3.sock" dead 10000 <"$trash/go" >"$out" 2>&1 &
probe_pid=$!
exec 7>"$trash/go"
wait_for "^connect: ok" "$out" 10 || not_ok "first client connected"
out2=$trash/second.out
timeout 30 "$probe" "$trash/vm3.sock" connect 1000 >"$out2" 2>&1
check_eq "a second client times out waiting for the greeting" "$(line connect "$out2")" \
    "rc=-110 msg=cannot talk to QEMU on $trash/vm3.sock: no QMP greeting within 1000 ms (is another client connected?)"
echo go >&7
exec 7>&-
wait "$probe_pid"
check_eq "the first client is unaffected" "$(line status-after-kill "$out")" "status=prelaunch running=false"

# --- 5. a scripted fake QEMU / guest agent: stream framing and limits that a
# real QEMU does not produce on demand.
out=$trash/fake-split.out
timeout 30 "$probe" "$trash/fake.sock" fake split >"$out" 2>&1
sed 's/^/#   probe: /' "$out"
check_eq "greeting sent byte by byte, no newlines between messages" "$(line connect "$out")" ok
check_eq "reply split over three writes, after a stale reply with another id" \
    "$(line split-status "$out")" "status=running running=true"
check_eq "event sent right after the capabilities reply was queued" "$(line split-queued-early "$out")" ok
check_eq "event sent between stale reply and reply was queued" "$(line split-queued-resume "$out")" ok
check_eq "error reply with the id first and a unicode escape" "$(line split-error "$out")" \
    "rc=-5 msg=QMP command 'query-x' failed: boom é (GenericError)"
check_eq "connection dropped in the middle of a reply: -ECONNRESET" "$(line split-eof "$out")" \
    "rc=-104 msg=QEMU closed the monitor connection (is it still running?)"

out=$trash/fake-oversize.out
timeout 30 "$probe" "$trash/fake.sock" fake oversize >"$out" 2>&1
check_eq "a 17 MiB message is refused at the 16 MiB cap" "$(line oversize "$out")" \
    "rc=-90 msg=message from QEMU exceeds the limit of 16777216 bytes"
check_eq "and the connection stays failed" "$(line then "$out")" \
    "rc=-90 msg=message from QEMU exceeds the limit of 16777216 bytes"

out=$trash/fake-garbage.out
timeout 30 "$probe" "$trash/fake.sock" fake garbage >"$out" 2>&1
check_eq "malformed JSON: -EPROTO" "$(line garbage "$out")" \
    "rc=-71 msg=malformed message from QEMU: unexpected character"

out=$trash/fake-qga.out
timeout 30 "$probe" "$trash/fake.sock" fake qga >"$out" 2>&1
sed 's/^/#   probe: /' "$out"
check_eq "guest-sync-delimited skips stale data up to the 0xFF sentinel" "$(line qga-connect "$out")" ok
check_eq "guest-exec with guest-exec-status polling" "$(line qga-exec "$out")" ok
check_eq "exit code" "$(line qga-exit "$out")" 7
check_eq "path, args and base64 input-data sent; out-data decoded" "$(line qga-out "$out")" \
    'path=/bin/sh arg=["-c","echo \"$0\"","x y"] input-b64=aW5wdXQK'
check_eq "err-data decoded, NUL byte kept" "$(line qga-err "$out")" 'err\x00bytes'
ms=$(line qga-polled-ms "$out")
if [ "${ms:-0}" -ge 180 ] && [ "${ms:-0}" -lt 1000 ]; then ok "status polled every 100 ms (3 polls in ${ms} ms)"; else not_ok "status polled every 100 ms (${ms:-?} ms)"; fi

done_testing
