#!/bin/sh
# Runs inside the guest checkpointed by COLO (scripts/colo/run.sh): brings up the igbvf VF of
# `hac serve`, checks the peer 10.99.0.2 answers, prints "HAC-COLO-READY", then streams TCP to
# the peer's echo (port 7) for ever and prints a heartbeat every second:
#   HAC-COLO-HB <n> rx=<VF rx packets> tx=<VF tx packets> echoed=<lines echoed back>
# and revives a dead VF (below). The host reads the secondary's serial log after failover.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin
PEER=10.99.0.2

say() { echo "hac-colo: $*"; }

modprobe igbvf || say "modprobe igbvf failed"
IF=""
for _ in $(seq 100); do
    for d in /sys/class/net/*; do
        case "$(readlink "$d/device/driver" 2>/dev/null)" in */igbvf) IF=$(basename "$d") ;; esac
    done
    [ -n "$IF" ] && break
    sleep 0.1
done
[ -n "$IF" ] || { echo "FAIL colo-guest: no igbvf netdev"; exit 1; }
ip link set "$IF" up
ip addr add 10.99.0.1/24 dev "$IF"
for _ in $(seq 100); do [ "$(cat "/sys/class/net/$IF/carrier" 2>/dev/null)" = 1 ] && break; sleep 0.1; done
ping -c 3 -W 2 $PEER >/tmp/ping0 2>&1 || { echo "FAIL colo-guest: no answer from $PEER"; cat /tmp/ping0; exit 1; }
echo "HAC-COLO-MAC $(cat "/sys/class/net/$IF/address")"
echo "HAC-COLO-READY"

# The stream: a line every 20 ms to the echo, the echoed lines counted.
(
    i=0
    while :; do
        echo "hac-colo-stream $i"
        i=$((i + 1))
        usleep 20000
    done
) | nc $PEER 7 >/tmp/echoed 2>/tmp/nc.err &

# The watchdog: the stream's echo stalled for 3 s (the VF behind the NIC is dead, as after a
# COLO failover: QEMU carried none of its state) → remove the VF and rescan the bus, so the
# kernel re-programs its config and igbvf probes it again (same MAC: the backup's daemon
# numbers its VFs' MACs like the primary's), and put the address back. The TCP connection is
# the same socket throughout; it resumes by retransmission.
find_if() {
    IF=""
    for d in /sys/class/net/*; do
        case "$(readlink "$d/device/driver" 2>/dev/null)" in */igbvf) IF=$(basename "$d") ;; esac
    done
    [ -n "$IF" ]
}
revive() {
    bdf=$(basename "$(readlink "/sys/class/net/$IF/device")")
    echo "HAC-COLO-REVIVE $bdf at HB $n"
    echo 1 >"/sys/bus/pci/devices/$bdf/remove"
    echo 1 >/sys/bus/pci/rescan
    for _ in $(seq 50); do find_if && break; sleep 0.1; done
    if [ -n "$IF" ]; then
        ip link set "$IF" up
        ip addr add 10.99.0.1/24 dev "$IF"
        echo "HAC-COLO-REVIVED $IF $(cat "/sys/class/net/$IF/address") at HB $n"
    else
        echo "HAC-COLO-REVIVE-FAILED no igbvf netdev after the rescan"
        IF=none
    fi
}

n=0
last=0
stalled=0
while :; do
    sleep 1
    n=$((n + 1))
    echoed=$(wc -l </tmp/echoed)
    echo "HAC-COLO-HB $n rx=$(cat "/sys/class/net/$IF/statistics/rx_packets" 2>/dev/null) tx=$(cat "/sys/class/net/$IF/statistics/tx_packets" 2>/dev/null) echoed=$echoed"
    if [ "$echoed" -gt 0 ] && [ "$echoed" = "$last" ]; then
        stalled=$((stalled + 1))
    else
        stalled=0
    fi
    last=$echoed
    if [ "$stalled" -ge 3 ] && [ "$IF" != none ]; then
        revive
        stalled=-10
    fi
done
