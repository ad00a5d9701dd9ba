#!/bin/sh
# PID 1 of the User-Mode Linux machine that runs the sch_plug side of `hac-lab bench` (started by
# scripts/plug/peer.sh; the machine's / is the host's / through hostfs, so this script writes only
# into $HACPLUG_OUT and mounts its own /proc, /sys and /run).
#
# Topology, inside UML:  netns "vm": vif1 (root qdisc plug) -- veth -- wire1 :netns "net"
#                                    vif2 (default qdisc)   -- veth -- wire2 :netns "net"
# Each line of $HACPLUG_JOBS: name size mode rate_fps bg_rate_fps epoch_us ack_us duration_ms
# limit_bytes; the results of a job go to $HACPLUG_OUT/<name>/ (see plugpeer.c), with
# qdisc.json (`tc -s -j qdisc show dev vif1` after the run) and status (0 = ran).
PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin
export PATH
log() { echo "uml: $*"; }
fail() { log "FAILED: $*"; echo "$*" > "$HACPLUG_OUT/boot-failed"; "$HACPLUG_BIN" --poweroff; }

mount -t proc proc /proc
mount -t sysfs sys /sys
mount -t tmpfs tmpfs /run
MODS=/usr/lib/uml/modules/$(uname -r)/kernel
insmod "$MODS/drivers/net/veth.ko" || fail "insmod veth"
insmod "$MODS/net/sched/sch_plug.ko" || fail "insmod sch_plug"
# Released epochs leave the plug in bursts; the receiving side must not be what drops them.
echo 1000000 > /proc/sys/net/core/netdev_max_backlog
ip netns add vm || fail "netns"
ip netns add net || fail "netns"
for i in 1 2; do
    ip link add "vif$i" netns vm type veth peer name "wire$i" netns net || fail "veth"
    ip -n vm link set "vif$i" address "02:1b:21:c0:00:0$((i - 1))" up
    ip -n net link set "wire$i" address "02:aa:00:00:00:0$i" up
done
ip -n vm link set lo up
ip -n net link set lo up
log "kernel $(uname -r), $(grep -c ^processor /proc/cpuinfo) CPU, $(ip netns exec vm tc -V)"

while read -r name size mode rate bg epoch_us ack_us dur limit; do
    case "$name" in ''|'#'*) continue ;; esac
    dir="$HACPLUG_OUT/$name"
    mkdir -p "$dir"
    ip netns exec vm tc qdisc replace dev vif1 root plug limit "$limit" || fail "tc plug"
    ip netns exec vm "$HACPLUG_BIN" --out "$dir" --size "$size" --mode "$mode" --rate "$rate" \
        --bg-rate "$bg" --epoch-us "$epoch_us" --ack-us "$ack_us" --duration-ms "$dur" \
        > "$dir/stdout" 2>&1 </dev/null
    rc=$?
    ip netns exec vm tc -s -j qdisc show dev vif1 > "$dir/qdisc.json"
    ip netns exec vm tc qdisc del dev vif1 root
    cat /proc/net/softnet_stat > "$dir/softnet_stat"
    echo "$rc" > "$dir/status"
    log "$name: status $rc: $(tail -n 1 "$dir/stdout")"
done < "$HACPLUG_JOBS"
echo ok > "$HACPLUG_OUT/done"
"$HACPLUG_BIN" --poweroff
