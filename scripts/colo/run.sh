#!/usr/bin/env bash
# COLO with output commit in the adapter, end to end: a Linux guest owning VF 0 of `hac serve`
# (vfio-user, igbvf) runs on a primary QEMU; a secondary QEMU (same command line, -incoming)
# takes the COLO checkpoints every HAC_COLO_DELAY_MS (default 20 ms); `hac colo-bridge` follows
# the primary's QMP events and drives the primary daemon's epochs (docs/colo.md). The guest
# streams TCP to a Linux peer on the model's wire (a network namespace with the daemon's TAP,
# 10.99.0.2, a busybox echo on port 7), and the namespace captures the wire (dumpcap) and pings
# the guest with and without protection. Then the primary QEMU is killed with SIGKILL and the
# secondary takes over (x-colo-lost-heartbeat). The secondary's VF is VF 0 of the backup's
# daemon (the same MAC), but QEMU never programmed its BARs: the guest's watchdog (guest.sh)
# sees its TCP stream stall, removes the VF and rescans the bus, so igbvf probes it again and
# the guest re-programs its config; the stream must resume on the same connection.
#
# Checks (scripts/colo/verdict.py): COLO ran and checkpoints were committed; no guest frame was
# captured on the wire before the commit that released it was sent (capture timestamps against
# the bridge's log, both host real-time clock); frames captured = frames released; neither
# guest's kernel reported a fault (a report is printed whole); the failover path. Prints the
# pause distribution, the margins, and the RTT with and without protection. Run
# scripts/vfio-user/setup.sh first (root); it shares that tree and kernel.
#
#   scripts/colo/run.sh
#
# Environment:
#   HAC_VU_CACHE, HAC_QEMU_CACHE  as scripts/vfio-user/run.sh (the trixie tree, the kernel)
#   HAC_COLO_DELAY_MS   x-checkpoint-delay (default 20)
#   HAC_COLO_SECONDS    seconds of protected run (default 10)
#   HAC_COLO_MEM        guest RAM (default 256M: the first full migration is shorter)
#   HAC_COLO_REPLUG     1: after failover, device_del + device_add a fresh VF through the
#                       secondary's QMP (QEMU 11.1.3 aborts on the device_del: docs/colo.md);
#                       0 (default): the guest's own watchdog re-enumerates the dead VF
#   HAC_COLO_LOGS       where logs go (default <repo>/target/colo/logs)
#   HAC_COLO_RETRIES    attempts run again after the secondary's guest kernel died (default 0)
#   HAC_COLO_DMA_WRITES how the primary's VF writes guest RAM: client (default: DMA_WRITE
#                       requests QEMU applies and dirty-logs, so checkpoints carry them) or
#                       direct (its own mapping: invisible to QEMU's dirty log), docs/colo.md
#   HAC_QEMU_NO_BUILD=1 reuse the static hac binary; HAC_QEMU_HAC=path: use that one
# Exit 0 when every check passes (or the QEMU has no COLO: a SKIP line), 1 otherwise, 2 when it
# cannot run.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/scripts/colo"
DELAY_MS="${HAC_COLO_DELAY_MS:-20}"
SECONDS_ON="${HAC_COLO_SECONDS:-10}"
MEM="${HAC_COLO_MEM:-256M}"
REPLUG="${HAC_COLO_REPLUG:-0}"
LOGS="${HAC_COLO_LOGS:-$ROOT/target/colo/logs}"
DMA_WRITES="${HAC_COLO_DMA_WRITES:-client}"
export HAC_COLO_DMA_WRITES="$DMA_WRITES"
START=$(date +%s)

die() { echo "colo/run.sh: error: $*" >&2; exit 2; }
log() { echo "colo/run.sh: [$(($(date +%s) - START))s] $*" >&2; }

# Each run of the steps below is an attempt. An attempt exits 3 when the secondary's guest
# kernel died under COLO (its report printed, and the primary's side checked up to then: no
# frame released before its commit): COLO's own secondary failed, not our output commit
# (docs/colo.md, "The secondary's guest died under COLO"). With HAC_COLO_RETRIES=n (default 0:
# such an attempt fails the run) it is run again at most n times, its logs kept in
# <logs>.attempt<k>, and the count printed.
if [ -z "${HAC_COLO_ATTEMPT:-}" ]; then
    attempt=1
    while :; do
        rc=0
        HAC_COLO_ATTEMPT=$attempt "$0" "$@" || rc=$?
        if [ "$rc" = 3 ] && [ "$attempt" -le "${HAC_COLO_RETRIES:-0}" ]; then
            rm -rf "$LOGS.attempt$attempt"
            cp -a "$LOGS" "$LOGS.attempt$attempt"
            echo "colo: attempt $attempt: the secondary's guest kernel died under COLO (above; logs in $LOGS.attempt$attempt): running again"
            attempt=$((attempt + 1))
            continue
        fi
        [ "$rc" = 3 ] && rc=1
        echo "colo: $attempt attempt(s), $((attempt - 1)) run again after the secondary's guest died; wall time $(($(date +%s) - START)) s"
        exit "$rc"
    done
fi
# shellcheck source=../lib/initramfs.sh
. "$ROOT/scripts/lib/initramfs.sh"
# shellcheck source=../lib/vfio-user-tree.sh
. "$ROOT/scripts/lib/vfio-user-tree.sh"

[ "$(id -u)" = 0 ] || die "run as root (QEMU runs with chroot, the peer in a network namespace)"
for t in ip python3 dumpcap tshark; do command -v $t >/dev/null || die "needs $t"; done
vu_tree_init

# 1. The static hac binary (as scripts/vfio-user/run.sh builds it).
vu_static_hac

# 2. The initramfs: busybox, igbvf, iproute2, the guest script.
mkdir -p "$LOGS"
rm -f "$LOGS"/*
IR="$(mktemp -d /tmp/hac-colo-ir.XXXXXX)"
SHARE="$(mktemp -d /tmp/hac-colo.XXXXXX)"
chmod 755 "$SHARE"
initramfs_base "$IR" "$KVER"
initramfs_add_modules "$IR" "$QCACHE/kroot" "$KVER" igbvf
initramfs_add_iproute2 "$IR"
cp "$HERE/init" "$IR/init"
cp "$HERE/guest.sh" "$IR/hac/guest.sh"
chmod +x "$IR/init" "$IR/hac/guest.sh"
(cd "$IR" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$SHARE/initramfs.cpio.gz"
rm -rf "$IR"
cp "$QCACHE/vmlinuz" "$SHARE/vmlinuz"
mkdir -p "$SHARE/P" "$SHARE/S"

NETNS="hacco$$"
TAP=hacco0
PIDS=()
mounted=()
QP="" QS=""
qmp() { python3 "$HERE/qmp.py" "$@"; }
cleanup() {
    local p
    for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
    for p in "$SHARE/qemuP.pid" "$SHARE/qemuS.pid"; do
        [ -f "$p" ] && kill -KILL "$(cat "$p")" 2>/dev/null || true
    done
    for p in "${PIDS[@]}"; do wait "$p" 2>/dev/null || true; done
    ip netns del "$NETNS" 2>/dev/null || true
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
    rm -rf "$SHARE"
}
trap cleanup EXIT
vu_tree_mount "$SHARE"

# 3. The peer: the primary's daemon in a namespace with its TAP; the backup's daemon (its VF
# is what the secondary QEMU attaches; its wire is the same namespace after failover).
ip netns add "$NETNS" || die "cannot create network namespace $NETNS"
ip netns exec "$NETNS" sysctl -q -w net.ipv6.conf.default.disable_ipv6=1 net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1 || true
ip netns exec "$NETNS" "$HAC" serve --socket "$SHARE/ctlP.sock" --vfs 2 --vfio-user "$SHARE/P" \
    --vfio-user-vfs 0 --vfio-user-dma-writes "$DMA_WRITES" --wire-tap "$TAP" >"$LOGS/serveP.log" 2>&1 &
PIDS+=($!)
ip netns exec "$NETNS" "$HAC" serve --socket "$SHARE/ctlS.sock" --vfs 2 --vfio-user "$SHARE/S" \
    --vfio-user-vfs 0 --wire-tap "${TAP}s" >"$LOGS/serveS.log" 2>&1 &
PIDS+=($!)
for _ in $(seq 50); do [ -S "$SHARE/P/vf0.sock" ] && [ -S "$SHARE/S/vf0.sock" ] && break; sleep 0.1; done
[ -S "$SHARE/P/vf0.sock" ] && [ -S "$SHARE/S/vf0.sock" ] || { tail "$LOGS"/serve*.log >&2; die "hac serve did not start"; }
chmod 777 "$SHARE"/P/*.sock "$SHARE"/S/*.sock
# One Linux host on both wires: the TAPs bridged, 10.99.0.2 on the bridge.
ip -n "$NETNS" link add br0 type bridge
ip -n "$NETNS" link set "$TAP" master br0
ip -n "$NETNS" link set "${TAP}s" master br0
ip -n "$NETNS" addr add 10.99.0.2/24 dev br0
for l in "$TAP" "${TAP}s" br0; do ip -n "$NETNS" link set "$l" up; done
ip netns exec "$NETNS" /bin/busybox nc -ll -p 7 -e /bin/cat >"$LOGS/echo.log" 2>&1 &
PIDS+=($!)
ip netns exec "$NETNS" dumpcap -q -i "$TAP" -i "${TAP}s" -w "$LOGS/wire.pcapng" >"$LOGS/dumpcap.log" 2>&1 &
DUMPCAP=$!
PIDS+=($DUMPCAP)

# 4. The two QEMUs (the same command line but -incoming). The guest kernel gets tsc=reliable:
# under TCG its TSC is the host's invariant TSC, and without it the clocksource watchdog may call
# it unstable on a loaded host and flip a static key (sched_clock_cpu's) by patching kernel text
# at run time; COLO's secondary under TCG then once ran a stale translation of that code after a
# checkpoint restored it ("Oops: int3" in sched_clock_cpu, docs/colo.md).
qemu() {
    local side=$1 vf=$2
    shift 2
    chroot "$TREE" /usr/bin/qemu-system-x86_64 -name "$side" -accel tcg -cpu max -smp 1 -m "$MEM" \
        -object memory-backend-memfd,id=mem,size="$MEM",share=on -machine q35,memory-backend=mem \
        -nodefaults -no-user-config -display none -no-reboot -pidfile "/hac-share/qemu$side.pid" \
        -serial "file:/hac-share/serial$side.log" \
        -qmp "unix:/hac-share/qmp$side.sock,server=on,wait=off" \
        -qmp "unix:/hac-share/qmp${side}b.sock,server=on,wait=off" \
        -device pcie-root-port,id=rp1,chassis=1,slot=1,bus=pcie.0,addr=0x4 \
        -device "{\"driver\":\"vfio-user-pci\",\"id\":\"vf0\",\"bus\":\"rp1\",\"socket\":{\"type\":\"unix\",\"path\":\"/hac-share/$side/$vf.sock\"}}" \
        -kernel /hac-share/vmlinuz -initrd /hac-share/initramfs.cpio.gz \
        -append "console=ttyS0 panic=-1 loglevel=5 ipv6.disable=1 tsc=reliable" \
        -msg timestamp=on -trace 'colo_vm_state_change' "$@" </dev/null
}
log "QEMU $QEMU_VERSION: booting the primary ($MEM, serial $LOGS/serialP.log)"
qemu P vf0 >"$LOGS/qemuP.log" 2>&1 &
QP=$!
PIDS+=($QP)
for _ in $(seq 100); do [ -S "$SHARE/qmpP.sock" ] && break; sleep 0.1; done
if ! qmp "$SHARE/qmpP.sock" query-migrate-capabilities | grep -q '"x-colo"'; then
    echo "SKIP colo: QEMU $QEMU_VERSION in $TREE has no COLO (no x-colo migration capability)"
    exit 0
fi
# The secondary attaches the backup's VF 0 (never reached: QEMU carries no vfio-user state).
qemu S vf0 -incoming unix:/hac-share/mig.sock >"$LOGS/qemuS.log" 2>&1 &
QS=$!
PIDS+=($QS)

ready=0
for _ in $(seq 1800); do
    grep -aq '^HAC-COLO-READY' "$SHARE/serialP.log" 2>/dev/null && { ready=1; break; }
    grep -aq '^FAIL' "$SHARE/serialP.log" 2>/dev/null && break
    kill -0 "$QP" 2>/dev/null || break
    sleep 0.1
done
cp "$SHARE/serialP.log" "$LOGS/serialP.log" 2>/dev/null || true
[ "$ready" = 1 ] || { "$HAC" stats --socket "$SHARE/ctlP.sock" >"$LOGS/statsP.txt" 2>&1 || true; tail -n 30 "$LOGS/serialP.log" >&2; tail -n 5 "$LOGS/qemuP.log" >&2; die "the guest did not come up"; }
GUEST_MAC=$(sed -n 's/^HAC-COLO-MAC \([0-9a-f:]*\).*/\1/p' "$SHARE/serialP.log" | tr -d '\r' | head -n1)
log "guest up (MAC $GUEST_MAC); plain RTT"
ip netns exec "$NETNS" /bin/busybox ping -c 100 -i 0.05 -W 2 10.99.0.1 >"$LOGS/ping-plain.txt" 2>&1 || true

# 5. The bridge, then COLO.
# --max-late 100: on a loaded 2-core CI host runs of 10 late checkpoints happen (each is safe:
# not committed, covered by the next commit); only 2 s of nothing but late ones stops it.
"$HAC" colo-bridge --qmp "$SHARE/qmpPb.sock" --socket "$SHARE/ctlP.sock" --vf 0 --max-late 100 \
    --log "$LOGS/bridge.log" >"$LOGS/bridge.json" 2>"$LOGS/bridge.err" &
BRIDGE=$!
PIDS+=($BRIDGE)
for _ in $(seq 50); do [ -s "$LOGS/bridge.log" ] && break; sleep 0.1; done
caps='{"execute":"migrate-set-capabilities","arguments":{"capabilities":[{"capability":"return-path","state":true},{"capability":"x-colo","state":true},{"capability":"events","state":true}]}}'
qmp "$SHARE/qmpS.sock" "$caps" >>"$LOGS/qmp.log" 2>&1 || die "secondary: $(tail -n1 "$LOGS/qmp.log")"
qmp "$SHARE/qmpP.sock" "$caps" \
    "{\"execute\":\"migrate-set-parameters\",\"arguments\":{\"x-checkpoint-delay\":$DELAY_MS}}" \
    '{"execute":"migrate","arguments":{"uri":"unix:/hac-share/mig.sock"}}' >>"$LOGS/qmp.log" 2>&1 ||
    die "primary: $(tail -n1 "$LOGS/qmp.log")"
log "migrating to the secondary, then COLO every $DELAY_MS ms"
# The secondary must live through COLO: when its guest kernel dies, its QEMU ends (-no-reboot),
# the primary leaves COLO (COLO_EXIT) and the bridge releases what it held (the backup is gone).
# There is nothing to fail over to: the verdict says so and checks what the primary's side did
# until then (exit 3: run.sh runs the harness again, see above).
secondary_gone() { ! qmp "$SHARE/qmpS.sock" query-status >/dev/null 2>&1; }
secondary_died() {
    log "the secondary QEMU is gone ($(tail -n1 "$LOGS/qemuS.log"))"
    kill -KILL "$(cat "$SHARE/qemuP.pid")" 2>/dev/null || true
    wait "$BRIDGE" 2>/dev/null || true
    cp "$SHARE/serialS.log" "$SHARE/serialP.log" "$LOGS/" 2>/dev/null || true
    kill -INT "$DUMPCAP" 2>/dev/null || true
    wait "$DUMPCAP" 2>/dev/null || true
    set +e
    python3 "$HERE/verdict.py" "$LOGS" "$GUEST_MAC" "$DELAY_MS" --secondary-died
    rc=$?
    set -e
    echo "colo: wall time $(($(date +%s) - START)) s"
    exit $rc
}
if ! qmp "$SHARE/qmpP.sock" --wait-status colo 180 >"$LOGS/colo-start.json" 2>>"$LOGS/qmp.log"; then
    # It may have died at the first checkpoints, before the status was seen.
    if secondary_gone; then secondary_died; fi
    tail -n 5 "$LOGS/qemuP.log" "$LOGS/qemuS.log" >&2
    die "COLO did not start: $(tail -n1 "$LOGS/qmp.log")"
fi
log "COLO running ($(cat "$LOGS/colo-start.json")); protected RTT for ${SECONDS_ON}s"
ip netns exec "$NETNS" /bin/busybox ping -c $((SECONDS_ON * 20)) -i 0.05 -W 2 10.99.0.1 >"$LOGS/ping-colo.txt" 2>&1 || true
qmp "$SHARE/qmpP.sock" query-colo-status >>"$LOGS/qmp.log" 2>&1 || true
if secondary_gone; then secondary_died; fi

# 6. Failover: SIGKILL the primary QEMU; the secondary takes over. The primary's counters are
# read first: what is in flight at the kill is dropped with it, which says nothing of COLO.
"$HAC" stats --socket "$SHARE/ctlP.sock" >"$LOGS/statsP-before-kill.txt" 2>&1 || true
log "SIGKILL of the primary QEMU"
KILL_US=$(date +%s%6N)
kill -KILL "$(cat "$SHARE/qemuP.pid")"
wait "$BRIDGE" 2>/dev/null || true
{
    echo "kill_us $KILL_US"
    qmp "$SHARE/qmpS.sock" x-colo-lost-heartbeat query-colo-status query-status 2>&1 || true
    echo "takeover_us $(date +%s%6N)"
} >"$LOGS/failover.txt"
if [ "$REPLUG" = 1 ]; then
    # The dead VF out, a fresh one of the backup's daemon in, on the same hot-plug port.
    {
        qmp "$SHARE/qmpS.sock" '{"execute":"device_del","arguments":{"id":"vf0"}}' 2>&1 || true
        for _ in $(seq 100); do
            qmp "$SHARE/qmpS.sock" '{"execute":"qom-list","arguments":{"path":"/machine/peripheral"}}' 2>/dev/null | grep -q '"vf0"' || break
            sleep 0.1
        done
        echo "unplugged_us $(date +%s%6N)"
        qmp "$SHARE/qmpS.sock" '{"execute":"device_add","arguments":{"driver":"vfio-user-pci","id":"vf0b","bus":"rp1","socket":{"type":"unix","path":"/hac-share/S/vf0.sock"}}}' 2>&1 || true
        echo "plugged_us $(date +%s%6N)"
    } >>"$LOGS/failover.txt"
fi
# The guest's watchdog needs ~3 s to see the stall, then TCP's retransmission back-off decides
# when the stream resumes (9-14 s measured): wait for the first heartbeat after the
# re-enumeration whose echo count grew, at most 45 s.
log "watching the secondary's guest (until its stream resumes, at most 45 s)"
resumed() {
    tr -d '\r' <"$SHARE/serialS.log" 2>/dev/null | awk '/^HAC-COLO-REVIVED/ { r = 1; next }
        r && /^HAC-COLO-HB/ { split($NF, a, "="); if (base == "") base = a[2] + 0; else if (a[2] + 0 > base) ok = 1 }
        END { exit !ok }'
}
for _ in $(seq 450); do
    resumed && break
    sleep 0.1
done
sleep 2
ip netns exec "$NETNS" /bin/busybox ping -c 20 -i 0.1 -W 1 10.99.0.1 >"$LOGS/ping-after.txt" 2>&1 || true
cp "$SHARE/serialS.log" "$LOGS/serialS.log" 2>/dev/null || true
cp "$SHARE/serialP.log" "$LOGS/serialP.log" 2>/dev/null || true
"$HAC" stats --socket "$SHARE/ctlS.sock" >"$LOGS/statsS.txt" 2>&1 || true
"$HAC" stats --socket "$SHARE/ctlP.sock" >"$LOGS/statsP.txt" 2>&1 || true
qmp "$SHARE/qmpS.sock" quit >/dev/null 2>&1 || true
kill -INT "$DUMPCAP" 2>/dev/null || true
wait "$DUMPCAP" 2>/dev/null || true
log "verdict"
set +e
python3 "$HERE/verdict.py" "$LOGS" "$GUEST_MAC" "$DELAY_MS"
rc=$?
set -e
echo "colo: wall time $(($(date +%s) - START)) s"
exit $rc
