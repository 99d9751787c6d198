#!/usr/bin/env bash
# The whole test suite, as the README gives it and CI runs it:
#   sudo tests/run-all.sh
# Installs dependencies, builds, runs unit tests (also under valgrind), the
# fuzz corpus, the integration and end-to-end tests, then everything again
# in an ASan+UBSan build. Prints "N passed, N failed, N skipped" last.
#
#   QVM_SKIP_DEPS=1   do not run scripts/install-deps.sh
#   QVM_QUICK=1       skip the ASan+UBSan pass and valgrind
#   QVM_ONLY=PATTERN  run only test files whose path matches PATTERN
set -uo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"

if [ "${QVM_SKIP_DEPS:-0}" != 1 ]; then
    bash scripts/install-deps.sh || { echo "install-deps failed"; echo "0 passed, 1 failed"; exit 1; }
fi

passed=0 failed=0 skipped=0
logdir=$(mktemp -d /tmp/qvm-tests.XXXXXX)

# run_tap NAME CMD...: runs a TAP producer, counts its results.
run_tap() {
    local name=$1; shift
    local log="$logdir/$(echo "$name" | tr '/ ' '__').log"
    local start=$SECONDS
    "$@" >"$log" 2>&1
    local rc=$?
    local p f s
    p=$(grep -cE '^ok [0-9]+' "$log" | tr -d ' ')
    s=$(grep -cE '^ok [0-9]+ # SKIP' "$log" | tr -d ' ')
    f=$(grep -cE '^not ok [0-9]+' "$log" | tr -d ' ')
    p=$((p - s))
    if [ "$rc" != 0 ] && [ "$f" = 0 ]; then
        f=1   # crashed or exited non-zero without reporting a failure
        echo "not ok - $name exited with status $rc" >>"$log"
    fi
    passed=$((passed + p)); failed=$((failed + f)); skipped=$((skipped + s))
    printf '%-44s %3d passed %3d failed %3d skipped  (%ds)\n' "$name" "$p" "$f" "$s" $((SECONDS - start))
    if [ "$f" != 0 ]; then
        grep -E -A15 '^not ok' "$log" | head -60 | sed 's/^/    /'
    fi
}

build() {  # build DIR [meson options]
    local dir=$1; shift
    if [ ! -f "$dir/build.ninja" ]; then
        meson setup "$dir" "$@" >"$logdir/setup-$dir.log" 2>&1 || { cat "$logdir/setup-$dir.log"; return 1; }
    else
        meson setup --reconfigure "$dir" "$@" >"$logdir/setup-$dir.log" 2>&1 || true
    fi
    ninja -C "$dir" >"$logdir/ninja-$dir.log" 2>&1 || { tail -40 "$logdir/ninja-$dir.log"; return 1; }
}

suite() {  # suite BUILD_DIR LABEL [valgrind]
    local dir=$1 label=$2 vg=${3:-}
    export QVM_BUILD=$top/$dir
    for t in "$dir"/tests/unit/test_*; do
        [ -x "$t" ] || continue
        case "$t" in *.p) continue ;; esac
        [ -n "${QVM_ONLY:-}" ] && [[ "$t" != *$QVM_ONLY* ]] && continue
        run_tap "$label unit/$(basename "$t")" "$t"
        if [ -n "$vg" ]; then
            run_tap "$label valgrind/$(basename "$t")" \
                bash -c "valgrind -q --leak-check=full --errors-for-leak-kinds=definite,indirect --error-exitcode=99 '$t' >/dev/null 2>'$logdir/vg.txt'; rc=\$?; if [ \$rc = 99 ]; then echo 'not ok 1 - valgrind clean'; sed 's/^/# /' '$logdir/vg.txt'; else echo 'ok 1 - valgrind clean'; fi; echo 1..1"
        fi
    done
    if [ -x "$dir/tests/fuzz/fuzz-spec-replay" ]; then
        run_tap "$label fuzz corpus replay" bash -c \
            "'$dir/tests/fuzz/fuzz-spec-replay' tests/fuzz/corpus/spec && echo 'ok 1 - corpus replays cleanly' || echo 'not ok 1 - corpus replay'; echo 1..1"
    fi
    for t in tests/integration/*.sh tests/e2e/*.sh; do
        [ -f "$t" ] || continue
        [ -n "${QVM_ONLY:-}" ] && [[ "$t" != *$QVM_ONLY* ]] && continue
        run_tap "$label $t" bash "$t"
    done
}

echo "== build =="
if ! build build; then echo "0 passed, 1 failed"; exit 1; fi
echo "== tests (normal build) =="
if [ "${QVM_QUICK:-0}" = 1 ]; then suite build normal; else suite build normal valgrind; fi

if [ "${QVM_QUICK:-0}" != 1 ]; then
    echo "== tests (ASan+UBSan build) =="
    if build build-asan -Db_sanitize=address,undefined -Db_lundef=false; then
        export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
        export UBSAN_OPTIONS=halt_on_error=1:print_stacktrace=1
        suite build-asan asan
    else
        failed=$((failed + 1))
    fi
fi

# The libFuzzer target, for a bounded time, where clang has libFuzzer.
if [ "${QVM_QUICK:-0}" != 1 ] && command -v clang >/dev/null; then
    echo "== fuzzing (libFuzzer, ${QVM_FUZZ_SECONDS:-60} s) =="
    if CC=clang build build-fuzz -Dfuzz=true -Db_sanitize=address,undefined -Db_lundef=false \
        && [ -x build-fuzz/tests/fuzz/fuzz-spec ]; then
        mkdir -p "$logdir/corpus"
        run_tap "libFuzzer fuzz-spec" bash -c "build-fuzz/tests/fuzz/fuzz-spec -max_total_time=${QVM_FUZZ_SECONDS:-60} \
            -max_len=65536 '$logdir/corpus' tests/fuzz/corpus/spec >'$logdir/fuzz.txt' 2>&1 \
            && echo 'ok 1 - no crash in ${QVM_FUZZ_SECONDS:-60} s of fuzzing' \
            || { echo 'not ok 1 - the fuzzer found a crash'; tail -30 '$logdir/fuzz.txt' | sed 's/^/# /'; }; echo 1..1"
    else
        run_tap "libFuzzer fuzz-spec" bash -c "echo 'ok 1 # SKIP clang cannot build the libFuzzer target here'; echo 1..1"
    fi
fi

echo "logs: $logdir"
echo "$passed passed, $failed failed, $skipped skipped"
[ "$failed" = 0 ]
