#!/usr/bin/env bash
# Boots one case of the QEMU referee over and over, to measure how often the guest platform
# fails (docs/qemu.md, "Flakiness"): no retry, several guests at a time, and when a guest stalls
# (a kernel stall report, or no end after 100 s) QEMU's monitor is asked for the vCPUs' local
# APICs and registers before the guest is stopped. Run scripts/qemu/run.sh once first: this
# reuses its initramfs (copied, so run.sh may rebuild it meanwhile).
#
#   scripts/qemu/soak.sh [-n BOOTS] [-j PARALLEL] CASE      (defaults: 20 boots, 1 at a time)
#
# Environment: HAC_QEMU_CACHE, HAC_QEMU_ACCEL, HAC_QEMU_SMP as for run.sh; HAC_SOAK_OUT (default
# $HAC_QEMU_CACHE/soak/<case>-<time>): one line per boot in results.txt ("<lane> <boot> <verdict>
# <seconds>s"), the log of every boot that did not pass, and <lane>-<boot>.monitor for stalls.
# Load is yours to add (the table in docs/qemu.md ran `stress-ng --cpu 2` beside -j 2).
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/scripts/qemu"
CACHE="${HAC_QEMU_CACHE:-$ROOT/target/qemu}"
ACCEL="${HAC_QEMU_ACCEL:-tcg,thread=single}"
SMP="${HAC_QEMU_SMP:-2}"
die() { echo "soak.sh: error: $*" >&2; exit 2; }
# shellcheck source=machine.sh
. "$HERE/machine.sh"

BOOTS=20
PAR=1
while getopts "n:j:" o; do
    case $o in
    n) BOOTS=$OPTARG ;;
    j) PAR=$OPTARG ;;
    *) die "usage: $0 [-n BOOTS] [-j PARALLEL] CASE" ;;
    esac
done
shift $((OPTIND - 1))
[ $# = 1 ] || die "usage: $0 [-n BOOTS] [-j PARALLEL] CASE"
CASE=$1
[[ "$BOOTS" =~ ^[1-9][0-9]*$ ]] || die "-n $BOOTS: a positive number of boots"
[[ "$PAR" =~ ^[1-9][0-9]*$ ]] || die "-j $PAR: a positive number of guests at a time"
[ -f "$CACHE/initramfs.cpio.gz" ] || die "no $CACHE/initramfs.cpio.gz: run scripts/qemu/run.sh first"
command -v python3 >/dev/null || die "python3 missing (it talks to QEMU's monitor)"
OUT="${HAC_SOAK_OUT:-$CACHE/soak/$CASE-$(date +%Y%m%d-%H%M%S)}"
mkdir -p "$OUT"
cp "$CACHE/initramfs.cpio.gz" "$OUT/initramfs.cpio.gz"
qemu_machine "$CACHE" "$ACCEL" "$SMP" "$OUT/initramfs.cpio.gz"
cmdline=$(qemu_cmdline "$CASE")

# Sends each argument as one monitor command; prints the answers.
monitor() {
    python3 - "$@" <<'PY'
import socket, sys
s = socket.socket(socket.AF_UNIX)
s.settimeout(3)
try:
    s.connect(sys.argv[1])
except OSError as e:
    print(f"monitor: {e}")
    sys.exit(0)
def answer():
    buf = b""
    try:
        while not buf.endswith(b"(qemu) "):
            d = s.recv(65536)
            if not d:
                break
            buf += d
    except socket.timeout:
        pass
    return buf.decode(errors="replace")
answer()
for cmd in sys.argv[2:]:
    s.sendall((cmd + "\n").encode())
    print("### " + cmd)
    print(answer())
PY
}

lane() {
    local l=$1 i t0 log sock qpid v dumped
    for ((i = l; i <= BOOTS; i += PAR)); do
        log="$OUT/$l-$i.log"
        sock="$OUT/$l.sock"
        rm -f "$sock"
        t0=$(date +%s)
        timeout -k 5 150 qemu-system-x86_64 "${QEMU_ARGV[@]}" -monitor "unix:$sock,server,nowait" \
            -append "$cmdline" </dev/null >"$log" 2>&1 &
        qpid=$!
        dumped=0
        while kill -0 $qpid 2>/dev/null; do
            if [ $dumped = 0 ] && { grep -aqE "timer wakeup didn't happen|detected stall|soft lockup" "$log" ||
                [ $(($(date +%s) - t0)) -gt 100 ]; }; then
                sleep 3
                monitor "$sock" "info cpus" "info lapic 0" "info lapic 1" "info registers -a" >"$OUT/$l-$i.monitor"
                dumped=1
                monitor "$sock" quit >/dev/null
            fi
            sleep 1
        done
        wait $qpid || true
        v=$("$HERE/verdict.sh" "$log" "$CASE" | cut -d' ' -f1)
        echo "$l $i $v $(($(date +%s) - t0))s" | tee -a "$OUT/results.txt"
        [ "$v" = pass ] && rm -f "$log"
    done
}

echo "soak.sh: $BOOTS boots of $CASE, $PAR at a time, -accel $ACCEL -smp $SMP; out $OUT" >&2
for ((l = 1; l <= PAR; l++)); do lane $l & done
wait
rm -f "$OUT"/*.sock "$OUT/initramfs.cpio.gz"
echo "---"
awk '{n[$3]++} END {for (v in n) print n[v], v}' "$OUT/results.txt" | sort -rn
