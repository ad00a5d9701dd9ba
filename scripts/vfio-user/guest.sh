#!/bin/sh
# Runs inside the guest (busybox sh), whose PCI functions are VFs of the HAC model served by
# `hac serve --vfio-user`: 8086:10CA driven by Linux igbvf, or with HAC_FAMILY=mlx5 (kernel
# argument hac.family=mlx5) 15b3:101E driven by Linux mlx5_core. Prints "PASS <check>" or "FAIL <check>: <reason>" for each
# check; "HAC-VU-REQ <what>" lines ask the host (run.sh) to start or stop the epoch driver, or
# (linux-ping-*) to ping this guest from the Linux peer's namespace when the peer is Linux (the
# smoltcp boot ignores them). The peer at 10.99.0.2 is the daemon's smoltcp host or Linux.
# See docs/vfio-user.md.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

PEER=10.99.0.2
ME=10.99.0.1
MAC_PREFIX=02:1b:21:c1:00
EPOCH_MS=${HAC_EPOCH_MS:-20}
case "${HAC_FAMILY:-igb}" in
mlx5) DRIVER=mlx5_core DEVID=0x101e ;;
*) DRIVER=igbvf DEVID=0x10ca ;;
esac

say() { echo "hac-guest: $*"; }
pass() { echo "PASS $1"; }
fail() { c=$1; shift; echo "FAIL $c: $*"; }
request() { echo "HAC-VU-REQ $*"; }

wait_for() {
    n=$1
    shift
    while [ "$n" -gt 0 ]; do
        "$@" && return 0
        sleep 0.1
        n=$((n - 1))
    done
    return 1
}

vf_netdevs() {
    for n in /sys/class/net/*; do
        drv=$(readlink "$n/device/driver" 2>/dev/null) || continue
        case "$drv" in */$DRIVER) basename "$n" ;; esac
    done
}
count_netdevs() { [ "$(vf_netdevs | wc -l)" -ge "$1" ]; }
carrier_up() { [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ]; }

# busybox ping summary "round-trip min/avg/max = a/b/c ms" → "a b c"; loss percentage.
rtt_of() { sed -n 's#.*min/avg/max = \([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\) ms.*#\1 \2 \3#p' "$1"; }
loss_of() { sed -n 's/.* \([0-9]*\)% packet loss.*/\1/p' "$1"; }
# The median of a ping log's per-packet times (robust to the outliers a loaded TCG host makes).
median_of() {
    sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' "$1" | sort -n |
        awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'
}

# TCP through the peer's echo: $1 = check name, $2 = bytes.
tcp_echo() {
    dd if=/dev/urandom of=/tmp/payload bs=1024 count=$(($2 / 1024)) 2>/dev/null
    t0=$(date +%s)
    timeout 90 nc $PEER 7 </tmp/payload >/tmp/echoed 2>/tmp/nc.err
    rc=$?
    t1=$(date +%s)
    sent=$(wc -c </tmp/payload)
    got=$(wc -c </tmp/echoed)
    say "$1: nc exit $rc, sent $sent bytes, got $got back in $((t1 - t0)) s"
    if cmp -s /tmp/payload /tmp/echoed; then
        pass "$1"
    else
        fail "$1" "echo differs: sent $sent bytes, got $got (nc exit $rc $(cat /tmp/nc.err))"
    fi
}

# mlx5_core's own command statistics (debugfs): "hac-cmd: <bdf> <command> <n> <failed>".
mlx5_commands() {
    [ "$DRIVER" = mlx5_core ] || return 0
    [ -d /sys/kernel/debug/dynamic_debug ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
    for c in /sys/kernel/debug/mlx5/*/commands/*; do
        [ -f "$c/n" ] || continue
        n=$(cat "$c/n")
        [ "$n" != 0 ] || continue
        bdf=${c#/sys/kernel/debug/mlx5/}
        echo "hac-cmd: ${bdf%%/*} $(basename "$c") $n $(cat "$c/failed" 2>/dev/null || echo ?)"
    done
}

say "kernel $(uname -r)"
NVF=$(ls -d /sys/bus/pci/devices/* | while read -r d; do
    [ "$(cat "$d/device")" = $DEVID ] && echo "$d"
done | wc -l)
say "$NVF function(s) with device id $DEVID"
modprobe $DRIVER || { fail probe "modprobe $DRIVER failed"; dmesg | tail -n 40 | sed 's/^/hac-kern: /'; exit 1; }
# The netdevs may come a while after modprobe returns (mlx5e under TCG): allow 60 s.
if wait_for 600 count_netdevs "$NVF" && [ "$NVF" -ge 1 ]; then
    pass probe
else
    fail probe "$DRIVER gave $(vf_netdevs | wc -l) netdev(s) for $NVF VF(s): $(dmesg | grep -E "$DRIVER.*(fail|error|timeout)" | head -n1)"
    dmesg | grep -i -E "$DRIVER|vfio|mlx5" | tail -n 60 | sed 's/^/hac-kern: /'
    mlx5_commands
    exit 1
fi
# mlx5_core: no failed command, timeout or health complaint on the way to the netdev.
if [ "$DRIVER" = mlx5_core ]; then
    bad=$(dmesg | grep -E "$DRIVER" | grep -i -E "fail|error|timeout|compromised|syndrome" | head -n1)
    if [ -n "$bad" ]; then fail probe-clean "$bad"; else pass probe-clean; fi
fi
dmesg | grep -i -E "$DRIVER|mlx5" | sed 's/^/hac-kern: /'

# 1. MACs: each VF has the MAC our PF agent assigned (02:1b:21:c1:00:<n>), no random fallback.
bad=""
IF0=""
for i in $(vf_netdevs); do
    mac=$(cat /sys/class/net/$i/address)
    say "$i: $mac"
    case "$mac" in
    "$MAC_PREFIX:00") IF0=$i ;;
    "$MAC_PREFIX":0[0-7]) ;;
    *) bad="$bad $i=$mac" ;;
    esac
done
if dmesg | grep -qi "random MAC"; then
    fail mac "$DRIVER fell back to a random MAC: $(dmesg | grep -i 'random MAC' | head -n1)"
elif [ -n "$bad" ] || [ -z "$IF0" ]; then
    fail mac "unexpected MACs:$bad (VF 0 found: ${IF0:-no})"
else
    pass mac
fi
[ -n "$IF0" ] || IF0=$(vf_netdevs | head -n1)

# 2. Link up on every VF. IPv6 off: no router solicitations or MLD reports, so every frame on
# the wire is one the checks sent (the host compares wire frames with released frames).
echo 1 >/proc/sys/net/ipv6/conf/all/disable_ipv6 2>/dev/null
echo 1 >/proc/sys/net/ipv6/conf/default/disable_ipv6 2>/dev/null
for i in $(vf_netdevs); do echo 1 >/proc/sys/net/ipv6/conf/$i/disable_ipv6 2>/dev/null; done
for i in $(vf_netdevs); do ip link set "$i" up; done
down=""
for i in $(vf_netdevs); do wait_for 100 carrier_up "$i" || down="$down $i"; done
if [ -z "$down" ]; then pass link; else fail link "no carrier on$down"; fi
# mlx5_core without link: bring VF 0 up once more with the driver's debug messages on, show
# what it said and its command statistics, and stop (nothing further can pass).
if [ -n "$down" ] && [ "$DRIVER" = mlx5_core ]; then
    [ -d /sys/kernel/debug/dynamic_debug ] || mount -t debugfs debugfs /sys/kernel/debug 2>/dev/null
    echo 'module mlx5_core +p' >/sys/kernel/debug/dynamic_debug/control 2>/dev/null
    dmesg -c >/dev/null
    ip link set "$IF0" up 2>&1 | sed 's/^/hac-guest: ip link set up: /'
    dmesg | tail -n 80 | sed 's/^/hac-kern: /'
    echo 'module mlx5_core -p' >/sys/kernel/debug/dynamic_debug/control 2>/dev/null
    mlx5_commands
    exit 1
fi

# 3. Ping the peer on the model's wire (through the switch and the egress stage).
ip addr add $ME/24 dev "$IF0"
request linux-ping-plain
ping -c 20 -i 0.2 -W 2 $PEER >/tmp/ping0 2>&1
cat /tmp/ping0 | tail -n 2 | sed 's/^/hac-guest: /'
set -- $(rtt_of /tmp/ping0)
PLAIN_AVG=$2
PLAIN_MED=$(median_of /tmp/ping0)
if [ "$(loss_of /tmp/ping0)" = 0 ]; then
    pass ping
else
    fail ping "loss $(loss_of /tmp/ping0)% ($(tail -n 2 /tmp/ping0 | tr '\n' ' '))"
fi

# 4. TCP transfer through busybox nc, echoed by the peer.
tcp_echo tcp 65536

# 5. Checkpointing with EPOCH_MS epochs: every packet waits for its epoch's commit.
request epochs-commit
sleep 3
request linux-ping-ckpt
# Every 108 ms, not a multiple of the epoch: successive requests land 8 ms further into
# their epoch (0, 8, 16, 4, 12 ms, ...), so their waits spread over the epoch instead of all
# sharing one phase of a clock that ticks in step with the epochs.
ping -c 40 -i 0.108 -W 2 $PEER >/tmp/ping1 2>&1
tail -n 2 /tmp/ping1 | sed 's/^/hac-guest: /'
set -- $(rtt_of /tmp/ping1)
CP_MIN=$1 CP_AVG=$2 CP_MAX=$3
CP_MED=$(median_of /tmp/ping1)
say "rtt plain avg ${PLAIN_AVG:-?} ms (median ${PLAIN_MED:-?}); checkpointing min/avg/max ${CP_MIN:-?}/${CP_AVG:-?}/${CP_MAX:-?} ms (median ${CP_MED:-?}; epoch $EPOCH_MS ms)"
# A request waits for its epoch's commit (uniform over [0, epoch]: median and mean ½ epoch);
# medians, because a loaded host's outliers move a 20-sample mean by several ms.
if [ -z "$CP_MED" ] || [ -z "$PLAIN_MED" ] || [ -z "$CP_MAX" ]; then
    fail ckpt-rtt "no RTT figures (loss $(loss_of /tmp/ping1)%)"
elif awk -v p="$PLAIN_MED" -v a="$CP_MED" -v m="$CP_MAX" -v e="$EPOCH_MS" \
    'BEGIN { exit !((a - p) >= e / 4 && (a - p) <= 3 * e && m >= e / 2) }'; then
    pass ckpt-rtt
else
    fail ckpt-rtt "median RTT grew from $PLAIN_MED to $CP_MED ms (avg $PLAIN_AVG to $CP_AVG, max $CP_MAX): expected about half an epoch of $EPOCH_MS ms"
fi
if [ "$(loss_of /tmp/ping1)" = 0 ]; then pass ckpt-ping; else fail ckpt-ping "loss $(loss_of /tmp/ping1)% with commits only"; fi
tcp_echo ckpt-tcp 65536
request epochs-stop
sleep 2

# 6. Aborted epochs: their packets never leave; TCP retransmits and the connection survives.
request epochs-abort
sleep 3
ping -c 50 -i 0.1 -W 2 $PEER >/tmp/ping2 2>&1
tail -n 2 /tmp/ping2 | sed 's/^/hac-guest: /'
loss=$(loss_of /tmp/ping2)
if [ -n "$loss" ] && [ "$loss" -gt 0 ] && [ "$loss" -lt 100 ]; then
    pass abort-ping
else
    fail abort-ping "expected some (not all) echo requests lost with aborted epochs, loss ${loss:-?}%"
fi
tcp_echo abort-tcp 32768
request epochs-stop
sleep 2

/sbin/ip -s link show "$IF0" 2>&1 | sed 's/^/hac-ip: /'
mlx5_commands

# 6b. mlx5_core stayed quiet for the whole run: no failed command, timeout or health
# complaint (the health poller reads the init segment's health buffer and counter).
if [ "$DRIVER" = mlx5_core ]; then
    bad=$(dmesg | grep -E "$DRIVER" | grep -i -E "fail|error|timeout|compromised|syndrome|health|assert" | head -n1)
    if [ -n "$bad" ]; then fail quiet "$bad"; else pass quiet; fi
fi

# 7. mlx5_core unloads cleanly: rmmod succeeds and logs no failed command (its teardown is
# logged with dynamic debug on, every command dumped, for the record).
if [ "$DRIVER" = mlx5_core ]; then
    echo 'module mlx5_core +p' >/sys/kernel/debug/dynamic_debug/control 2>/dev/null
    dmesg -c >/dev/null
    rmmod mlx5_core >/tmp/rmmod.err 2>&1
    rc=$?
    dmesg >/tmp/unload
    grep -v -E 'dump_command|cmd\[|^\[ *[0-9.]*\] *$' /tmp/unload | tail -n 40 | sed 's/^/hac-unload: /'
    # Pages the device kept show as "FW pages counter is N after reclaiming all pages" or
    # "FW did not return all pages".
    bad=$(grep -E "mlx5_cmd_out_err|failed|timeout|pages counter|did not return all pages" /tmp/unload | head -n1)
    # The commands (dumped) before the first failure.
    n=$(grep -n -m1 -E "mlx5_cmd_out_err" /tmp/unload | cut -d: -f1)
    [ -n "$n" ] && head -n "$n" /tmp/unload | grep -E "dump command|cmd\[.*: 0[0-9a-f]{2}:" | tail -n 60 | sed 's/^/hac-unload-cmd: /'
    if [ $rc != 0 ]; then
        fail unload "rmmod mlx5_core: $(cat /tmp/rmmod.err)"
    elif [ -n "$bad" ]; then
        fail unload "$bad"
    else
        pass unload
    fi
fi
echo "HAC-VU-RTT plain=${PLAIN_AVG:-?} ckpt=${CP_MIN:-?}/${CP_AVG:-?}/${CP_MAX:-?} median plain=${PLAIN_MED:-?} ckpt=${CP_MED:-?}"
