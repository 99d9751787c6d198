#!/usr/bin/env bash
# Concurrency and failures around running VMs, with the real QEMU (TCG; the
# guest need not boot) on the default dir pool and on a tiny real ext4:
# 20 concurrent `qvm up`s (all run, distinct pids and ports), two racing
# `qvm rm` of one VM, parallel rm of the rest; kill -9 of QEMU under a
# running VM; what `qvm doctor` finds and repairs (stale pid files and
# sockets, a QEMU no pid file names, a VM without its disk, temp files of
# interrupted writes); a full pool during import and during clone. After
# each, everything is as before and doctor reports nothing.
source "$(dirname "$0")/../lib.sh"
new_root
trap cleanup_root EXIT
TP="provisioning virtual machine"
# These guests never boot, so they never fill a TCG translation cache: do
# not let memory admission budget one for each of the 20 VMs.
mkdir -p "$QVM_ROOT/etc/qvm"
printf 'host:\n  tcg-overhead: 0\n' >"$QVM_ROOT/etc/qvm/qvm.conf"

raw=$T/small.raw
truncate -s 64M "$raw"
head -c 1M /dev/urandom | dd of="$raw" conv=notrunc status=none
"$QVM" image import tiny "$raw" >/dev/null 2>&1 || not_ok "setup: image import"

vmfile() {  # vmfile PATH NAME [BASE]
    printf 'qvm: vm\nname: %s\nmemory: 64\nvcpus: 1\ngraphics: none\nnetwork: user\ndisk:\n  zvol:\n    base: %s\n---\nqvm: user-data\n---\nqvm: meta-data\n' \
        "$2" "${3:-tiny}" >"$1"
}
doctor_clean() {  # doctor_clean DESC
    run_qvm doctor
    if [ "$rc" = 0 ] && grep -q "No problems found" <<<"$out"; then ok "$1"; else
        not_ok "$1"; echo "$out$err" | diag; fi
}
before=$(state_snapshot)
same_state() {
    local now; now=$(state_snapshot)
    if [ "$before" = "$now" ] && [ -z "$(qemu_procs)" ]; then ok "$1"; else
        not_ok "$1"; diff <(echo "$before") <(echo "$now") | diag; qemu_procs | diag; fi
}
vm_field() {  # vm_field NAME FIELD: from qvm ls --json
    "$QVM" ls --json 2>/dev/null | python3 -c '
import json,sys
for v in json.load(sys.stdin):
    if v["name"] == sys.argv[1]: print(v.get(sys.argv[2], ""))' "$1" "$2"
}

# --- 20 concurrent qvm up ---------------------------------------------------------
for i in $(seq -w 1 20); do vmfile "$T/c$i.yaml" "c$i"; done
for i in $(seq -w 1 20); do
    ( "$QVM" up "$T/c$i.yaml" >"$T/c$i.out" 2>&1; echo $? >"$T/c$i.rc" ) &
done
wait
n_ok=0
for i in $(seq -w 1 20); do
    if [ "$(cat "$T/c$i.rc")" = 0 ]; then n_ok=$((n_ok + 1)); else diag <"$T/c$i.out"; fi
done
[ "$n_ok" = 20 ] && ok "20 concurrent qvm up: all 20 succeed" || not_ok "20 concurrent qvm up: $n_ok succeeded"
"$QVM" ls --json >"$T/ls.json" 2>/dev/null
python3 - "$T/ls.json" <<'EOF' && ok "all 20 run, with 20 distinct QEMU pids and 20 distinct ssh ports" || not_ok "ls after concurrent up"
import json, sys
v = [x for x in json.load(open(sys.argv[1])) if x["name"].startswith("c")]
assert len(v) == 20, len(v)
assert all(x["state"] == "running" for x in v), [x["state"] for x in v]
assert len({x["pid"] for x in v}) == 20 and len({x["ssh_port"] for x in v}) == 20
EOF
[ "$(qemu_procs | wc -l)" = 20 ] && ok "exactly 20 QEMU processes" || { not_ok "QEMU count"; qemu_procs | diag; }
doctor_clean "doctor finds nothing after the concurrent ups"

# --- two racing qvm rm of one VM ----------------------------------------------------
( "$QVM" rm c01 >"$T/rm1.out" 2>&1; echo $? >"$T/rm1.rc" ) &
( "$QVM" rm c01 >"$T/rm2.out" 2>&1; echo $? >"$T/rm2.rc" ) &
wait
r1=$(cat "$T/rm1.rc") r2=$(cat "$T/rm2.rc")
gone_or_busy="no VM named 'c01'|another qvm command is working on it"
if [ "$r1$r2" = 00 ] || { [ "$r1$r2" = 01 ] && grep -qE "$gone_or_busy" "$T/rm2.out"; } ||
   { [ "$r1$r2" = 10 ] && grep -qE "$gone_or_busy" "$T/rm1.out"; }; then
    ok "two racing rm of c01: one removes it; the other succeeds, or fails saying it is gone or busy ($r1/$r2)"
else
    not_ok "racing rm: $r1/$r2"; cat "$T/rm1.out" "$T/rm2.out" | diag
fi
[ -z "$(vm_field c01 name)" ] && ! qemu_procs | grep -q "vms/c01/" && [ ! -e "$QVM_ROOT/var/lib/qvm/pools/default/vms/c01" ] &&
    ok "c01 is gone: no definition, no bundle, no QEMU" || not_ok "c01 remains"

# --- parallel rm of the other 19 -----------------------------------------------------
for i in $(seq -w 2 20); do ( "$QVM" rm "c$i" >"$T/rm$i.out" 2>&1; echo $? >"$T/rm$i.rc" ) & done
wait
n_ok=0
for i in $(seq -w 2 20); do [ "$(cat "$T/rm$i.rc")" = 0 ] && n_ok=$((n_ok + 1)) || diag <"$T/rm$i.out"; done
[ "$n_ok" = 19 ] && ok "19 parallel rm all succeed" || not_ok "parallel rm: $n_ok of 19"
same_state "after all the removals: as before the ups, no QEMU"
doctor_clean "doctor finds nothing after the removals"

# --- kill -9 of QEMU under a running VM ---------------------------------------------
vmfile "$T/k.yaml" k
run_qvm up "$T/k.yaml"
pid=$(vm_field k pid)
[ "$rc" = 0 ] && [ -n "$pid" ] && [ "$pid" -gt 0 ] && ok "k runs (pid $pid)" || { not_ok "up k"; echo "$err" | diag; }
kill -9 "$pid"
for _ in 1 2 3 4 5 6 7 8 9 10; do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
[ "$(vm_field k state)" = stopped ] && ok "after kill -9 of its QEMU, ls shows k stopped" || { not_ok "state after kill"; "$QVM" ls | diag; }
s=$(date +%s%N)
run_qvm stop k
e=$(( ($(date +%s%N) - s) / 1000000 ))
[ "$e" -lt 5000 ] && ok "stop of the dead VM returns at once (${e} ms, exit $rc), not after a timeout" || not_ok "stop of a dead VM took ${e} ms"
run_qvm doctor
[ "$rc" = 0 ] || grep -qE "stale (pid file|socket)" <<<"$out" && ok "doctor: nothing, or the stale pid file and sockets the dead QEMU left" ||
    { not_ok "doctor after kill -9"; echo "$out" | diag; }
run_qvm doctor --repair
doctor_clean "after doctor --repair, doctor finds nothing"
run_qvm start k
[ "$rc" = 0 ] && [ "$(vm_field k state)" = running ] && ok "k starts again" || { not_ok "start after kill"; echo "$err" | diag; }
run_qvm rm k
same_state "rm k: as before"

# --- what doctor finds -----------------------------------------------------------------
# gone PID: no such process, or a zombie (killed; its reaper is not qvm)
gone() { ! kill -0 "$1" 2>/dev/null || [ "$(awk '{print $3}' "/proc/$1/stat" 2>/dev/null)" = Z ]; }
hand_qemu() {  # hand_qemu PIDFILE: a QEMU started by hand, as qvm would for that VM
    qemu-system-x86_64 -machine none -display none -nodefaults -daemonize -pidfile "$1" 2>>"$T/hand.err"
    cat "$1" 2>/dev/null
}
# A QEMU for a VM that does not exist (its pid file deleted by hand, too).
mkdir -p "$QVM_ROOT/run/qvm/vms/ghost"
gpid=$(hand_qemu "$QVM_ROOT/run/qvm/vms/ghost/qemu.pid")
rm -f "$QVM_ROOT/run/qvm/vms/ghost/qemu.pid"
run_qvm doctor
[ "$rc" = 1 ] && grep -q "QEMU process $gpid runs for VM 'ghost', which does not exist" <<<"$out" &&
    ok "doctor finds a QEMU whose VM does not exist, by its command line" || { not_ok "orphan qemu"; echo "$out$err" | diag; diag <"$T/hand.err"; }
run_qvm doctor --repair
gone "$gpid" && [ ! -e "$QVM_ROOT/run/qvm/vms/ghost" ] && ok "doctor --repair stops it and removes its runtime directory" ||
    { not_ok "ghost still runs"; kill -9 "$gpid"; }
# Two QEMUs for one VM (the first one's pid file was deleted, so the file
# names only the second): the first is unknown.
vmfile "$T/g.yaml" g
"$QVM" up --no-start "$T/g.yaml" >/dev/null 2>&1
mkdir -p "$QVM_ROOT/run/qvm/vms/g"
p1=$(hand_qemu "$QVM_ROOT/run/qvm/vms/g/qemu.pid")
rm -f "$QVM_ROOT/run/qvm/vms/g/qemu.pid"
p2=$(hand_qemu "$QVM_ROOT/run/qvm/vms/g/qemu.pid")
run_qvm doctor
[ "$rc" = 1 ] && grep -q "QEMU process $p1 runs as VM 'g', but no pid file names it" <<<"$out" && ! grep -q "process $p2" <<<"$out" &&
    ok "doctor finds the QEMU that VM g's pid file does not name, and only that one" || { not_ok "unknown qemu"; echo "$out$err" | diag; }
run_qvm doctor --repair
gone "$p1" && ! gone "$p2" && ok "doctor --repair stops it; g's own QEMU runs on" || not_ok "repair of the duplicate"
run_qvm rm g
gone "$p2" && ok "rm g stops g's QEMU" || { not_ok "rm g"; kill -9 "$p2"; }

# A VM without its disk.
vmfile "$T/m.yaml" m
"$QVM" up --no-start "$T/m.yaml" >/dev/null 2>&1
rm -f "$QVM_ROOT"/var/lib/qvm/pools/default/vms/m/disk0.*
run_qvm doctor --repair
grep -q "VM 'm' has no disk: .* is missing (remove the VM with qvm rm m" <<<"$out" && [ "$rc" = 1 ] &&
    ok "doctor reports a VM without its disk, and how to remove it (never 'repaired')" || { not_ok "missing disk"; echo "$out" | diag; }
run_qvm rm m
[ "$rc" = 0 ] && ok "rm of a VM without its disk works" || { not_ok "rm m"; echo "$err" | diag; }

# Temp files of atomic writes whose writer died.
vmfile "$T/t.yaml" t
"$QVM" up --no-start "$T/t.yaml" >/dev/null 2>&1
bundle=$QVM_ROOT/var/lib/qvm/pools/default/vms/t
dead=$(sh -c 'echo $$')    # a pid whose process has exited
echo '{' >"$bundle/vm.json.tmp.$dead"
run_qvm doctor --repair
grep -q "repaired .*vm.json.tmp.$dead was left by an interrupted write" <<<"$out" && [ ! -e "$bundle/vm.json.tmp.$dead" ] &&
    ok "doctor --repair removes a dead writer's temp file" || { not_ok "temp file"; echo "$out" | diag; }
echo '{' >"$bundle/vm.json.tmp.$$"
run_qvm doctor
[ -e "$bundle/vm.json.tmp.$$" ] && ! grep -q "tmp.$$" <<<"$out" && ok "a live writer's temp file is left alone" || not_ok "live temp"
rm -f "$bundle/vm.json.tmp.$$"
run_qvm rm t
same_state "after the doctor cases: as before"
doctor_clean "doctor finds nothing"

# --- a full pool: during import and during clone -----------------------------------------
if [ "$(id -u)" = 0 ] && command -v mkfs.ext4 >/dev/null; then
    truncate -s 48M "$T/full.img"
    mkfs.ext4 -q -F -m 0 "$T/full.img" >/dev/null 2>&1
    mkdir -p "$T/full"
    if mount -o loop "$T/full.img" "$T/full" 2>/dev/null; then
        trap 'for p in $(pgrep -f -- "-pidfile $QVM_ROOT/"); do kill -9 $p; done 2>/dev/null; umount "$T/full" 2>/dev/null || umount -l "$T/full"; cleanup_root' EXIT
        run_qvm pool add full --driver dir --path "$T/full/qvm"
        [ "$rc" = 0 ] || { not_ok "pool add full"; echo "$err" | diag; }
        head -c 80M /dev/urandom >"$T/big.raw"
        before=$(state_snapshot; find "$T/full" -path '*/.overlays' -prune -o -print | sort)
        same_full() {
            local now; now=$(state_snapshot; find "$T/full" -path '*/.overlays' -prune -o -print | sort)
            if [ "$before" = "$now" ] && [ -z "$(qemu_procs)" ]; then ok "$1"; else
                not_ok "$1"; diff <(echo "$before") <(echo "$now") | diag; fi
        }
        expect_error "import of 80 MiB into a 48 MiB pool fails with the file system's error" "importing cloud image" \
            "No space left on device" image import --pool full big "$T/big.raw"
        same_full "the failed import leaves nothing in the pool (no image, no partial copy)"
        "$QVM" image import --pool full small "$raw" >/dev/null 2>&1 || not_ok "import small into full"
        vmfile "$T/f.yaml" f small
        before=$(state_snapshot; find "$T/full" -path '*/.overlays' -prune -o -print | sort)
        avail=$(df --output=avail -B1 "$T/full" | tail -1 | tr -d ' ')
        fallocate -l $((avail - 64 * 1024)) "$T/full/filler" && sync
        before=$(state_snapshot; find "$T/full" -path '*/.overlays' -prune -o -print | sort)
        expect_error "up on a full pool fails with the file system's error" "$TP" "No space left on device" \
            up --no-start --pool full "$T/f.yaml"
        same_full "the failed clone leaves nothing behind"
        rm -f "$T/full/filler"
        run_qvm up --no-start --pool full "$T/f.yaml"
        [ "$rc" = 0 ] && ok "with space again, the same up works" || { not_ok "up after space"; echo "$err" | diag; }
        run_qvm rm f
        doctor_clean "doctor finds nothing after the full-pool failures"
    else
        skip "full pool: cannot loop-mount ext4 here"
    fi
else
    skip "full pool: needs root and mkfs.ext4 to make a small file system"
fi
done_testing
