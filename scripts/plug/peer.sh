#!/usr/bin/env bash
# The sch_plug side of `hac-lab bench`: boots User-Mode Linux once and runs every job of JOBS_FILE
# in it (scripts/plug/uml-init.sh; format there). Results in OUT_DIR/<job>/.
# Usage: scripts/plug/peer.sh OUT_DIR JOBS_FILE
# Needs scripts/plug/setup.sh to have run (UML, iproute2, the plugpeer binary).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
out=$(mkdir -p "$1" && cd "$1" && pwd)
jobs=$(cd "$(dirname "$2")" && pwd)/$(basename "$2")
bin=${HACPLUG_BIN:-$here/../../target/plug/plugpeer}
bin=$(cd "$(dirname "$bin")" && pwd)/$(basename "$bin")
uml=$(command -v linux.uml || true)
if [ -z "$uml" ] || [ ! -x "$bin" ]; then
    echo "peer.sh: User-Mode Linux or $bin missing: run scripts/plug/setup.sh" >&2
    exit 2
fi
rm -f "$out/done" "$out/boot-failed"
# hostfs needs absolute paths; the console is this process's stdin/stdout. UML has its own
# /proc, /sys and /run; it writes only into $out.
"$uml" mem=2048M rootfstype=hostfs rootflags=/ rw init="$here/uml-init.sh" \
    con=null con0=fd:0,fd:1 \
    HACPLUG_OUT="$out" HACPLUG_JOBS="$jobs" HACPLUG_BIN="$bin" </dev/null 2>"$out/uml.stderr" \
    | tee "$out/console.log" | grep -E '^(uml:|plugpeer)' || true
if grep -q 'ptrace set fp regs failed' "$out/console.log" 2>/dev/null; then
    echo "peer.sh: user-mode-linux cannot run on this host's CPU (its XSAVE area is too large for UML 6.1: ptrace set fp regs failed); see scripts/plug/setup.sh" >&2
    exit 3
fi
if [ -f "$out/boot-failed" ] || [ ! -f "$out/done" ]; then
    echo "peer.sh: the UML run did not finish: $(cat "$out/boot-failed" 2>/dev/null || echo 'no done marker')" >&2
    exit 1
fi
