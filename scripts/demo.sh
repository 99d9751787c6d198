#!/usr/bin/env bash
# The main job, end to end, on a fresh Debian 12 machine (as root):
#   sudo scripts/demo.sh
# Installs what is needed, builds qvm, builds (or reuses) a real Debian cloud
# image, imports it, provisions examples/hello.yaml on the default dir pool
# with QEMU, waits until cloud-init has finished, and prints the evidence
# that the user-data ran. The VM is left running; remove it with
#   QVM_ROOT=/var/tmp/qvm-demo build/src/cli/qvm rm hello
#
#   QVM_ROOT   where qvm keeps its state (default /var/tmp/qvm-demo)
set -euo pipefail
top=$(cd "$(dirname "$0")/.." && pwd)
cd "$top"
export QVM_ROOT=${QVM_ROOT:-/var/tmp/qvm-demo}

step() { printf '\n== %s\n' "$*"; }
step "installing dependencies"
bash scripts/install-deps.sh
step "building qvm"
[ -f build/build.ninja ] || meson setup build >/dev/null
ninja -C build >/dev/null
qvm=$top/build/src/cli/qvm
step "building (or reusing) the Debian 12 cloud image"
img=$(bash tests/image/build-cloud-image.sh)
echo "$img"
mkdir -p "$QVM_ROOT"
if "$qvm" ls --json | grep -q '"name":"hello"'; then
    step "removing the hello VM of an earlier run"
    "$qvm" rm hello
fi
if ! "$qvm" image ls --json | grep -q '"name":"debian12"'; then
    step "qvm image import debian12"
    "$qvm" image import debian12 "$img"
fi
step "qvm up examples/hello.yaml"
time "$qvm" up examples/hello.yaml
step "qvm wait hello (cloud-init's first boot; about a minute under TCG)"
"$qvm" wait hello --timeout 900
step "evidence that the user-data ran, read through the guest agent"
echo "hostname:            $("$qvm" exec hello -- hostname)"
echo "write_files result:  $("$qvm" exec hello -- cat /var/lib/qvm-hello/greeting.txt)"
echo "runcmd result:       $("$qvm" exec hello -- cat /var/lib/qvm-hello/runcmd.txt)"
echo "cloud-init says:     $(grep -aE 'Cloud-init v\. .* finished' "$QVM_ROOT"/var/lib/qvm/pools/default/vms/hello/console.log | tail -1 | tr -d '\r')"
step "qvm ls"
"$qvm" ls
echo
echo "Done. Attach to its console with: QVM_ROOT=$QVM_ROOT $qvm console hello"
echo "Remove it with:                   QVM_ROOT=$QVM_ROOT $qvm rm hello"
