#!/bin/sh
# Runs inside the QEMU guest (busybox sh), started by the initramfs /init with the case name
# from the kernel command line (hac.case=NAME). Prints "PASS <name>" or "FAIL <name>: <reason>"
# on the console. See docs/qemu.md.
export PATH=/sbin:/bin:/usr/sbin:/usr/bin

CASE="$1"
PF_DEV_ID=0x10c9          # 82576 PF (QEMU igb)
MAC0=52:54:00:12:00:10    # VF 0
MAC1=52:54:00:12:00:11    # VF 1
VF0=0000:01:10.0
VF1=0000:01:10.2
N=${HAC_COUNT:-16}

# fd 3 is the console even inside $(...), for the marker below.
exec 3>&1

say() { echo "hac-guest: $*"; }

# Every case runs our code only through these two functions: hac (the product binary) and
# hac_lab (the lab binary hac-lab: vf-traffic, pf-switch, vf-hac-check, vf-smoltcp, vf-mailbox).
# The first call of either prints "HAC-CASE-RUN <case>" on the console: everything before it
# (modprobe, ip, sysfs) is the guest kernel and the harness, not our code, and run.sh retries a
# case once only when the guest kernel stalled before this line (docs/qemu.md, "Flakiness").
case_run() {
    if [ ! -e /tmp/hac-case-run ]; then
        : >/tmp/hac-case-run
        echo "HAC-CASE-RUN $CASE" >&3
    fi
}
hac() {
    case_run
    /bin/hac "$@"
}
hac_lab() {
    case_run
    /bin/hac-lab "$@"
}
pass() { echo "PASS $CASE"; }
fail() {
    echo "FAIL $CASE: $*"
    say "--- dmesg (last 40 lines) ---"
    dmesg | tail -n 40 | sed 's/^/hac-dmesg: /'
}
die() { fail "$*"; exit 1; }

# Waits up to $1 tenths of a second for the command "$2 ..." to succeed.
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

find_pf() {
    for d in /sys/bus/pci/devices/*; do
        [ "$(cat "$d/vendor")" = 0x8086 ] && [ "$(cat "$d/device")" = "$PF_DEV_ID" ] && {
            basename "$d"
            return 0
        }
    done
    return 1
}

netdev_of() { ls "/sys/bus/pci/devices/$1/net" 2>/dev/null | head -n1; }
carrier_up() { [ "$(cat "/sys/class/net/$1/carrier" 2>/dev/null)" = 1 ]; }

# PF on igb, up (igb keeps the VFs in reset while the PF is down), with $1 VFs that no driver
# claims automatically.
setup_pf() {
    modprobe igb || die "modprobe igb failed"
    wait_for 50 find_pf >/dev/null || die "no 8086:$PF_DEV_ID PF found"
    PF=$(find_pf)
    wait_for 50 netdev_of "$PF" >/dev/null || die "PF $PF has no netdev"
    PFIF=$(netdev_of "$PF")
    ipc link set "$PFIF" up
    wait_for 100 carrier_up "$PFIF" || say "warning: PF $PFIF has no carrier"
    echo 0 >"/sys/bus/pci/devices/$PF/sriov_drivers_autoprobe"
    echo "$1" >"/sys/bus/pci/devices/$PF/sriov_numvfs" || die "sriov_numvfs=$1 failed"
    for vf in $VF0 $VF1; do
        [ -e "/sys/bus/pci/devices/$vf" ] || die "VF $vf missing after sriov_numvfs=$1 ($(ls /sys/bus/pci/devices | tr '\n' ' '))"
    done
    say "PF $PF ($PFIF) up, VFs $VF0 (group $(basename "$(readlink /sys/bus/pci/devices/$VF0/iommu_group)")), $VF1 (group $(basename "$(readlink /sys/bus/pci/devices/$VF1/iommu_group)"))"
}

# vfio-pci and the type1 IOMMU backend. The kernel asks for vfio_iommu_type1 itself only when
# /sbin/modprobe works, and without it VFIO_CHECK_EXTENSION(TYPE1v2) answers 0.
load_vfio() {
    modprobe vfio_iommu_type1 || die "modprobe vfio_iommu_type1 failed"
    modprobe vfio-pci || die "modprobe vfio-pci failed"
}

# Binds $1 to driver $2 with driver_override.
bind() {
    dev=/sys/bus/pci/devices/$1
    echo "$2" >"$dev/driver_override"
    [ -e "$dev/driver" ] && echo "$1" >"$dev/driver/unbind"
    echo "$1" >/sys/bus/pci/drivers_probe
    [ "$(basename "$(readlink "$dev/driver")")" = "$2" ] || die "$1 did not bind to $2"
}

# iproute2's ip (busybox's ip cannot set VF MACs). Called by path: Debian's busybox-static
# prefers its own applets over $PATH.
IP=/sbin/ip

# Runs iproute2's ip, failing the case with its error message.
ipc() {
    msg=$($IP "$@" 2>&1) || die "ip $*: $msg"
}

json_has() { echo "$1" | grep -q "$2"; }

case_vf_probe_pf_mac() {
    setup_pf 2
    ipc link set "$PFIF" vf 0 mac $MAC0
    ipc link set "$PFIF" vf 1 mac $MAC1
    load_vfio
    bind $VF1 vfio-pci
    out=$(hac vf-probe --pci $VF1)
    rc=$?
    echo "$out" | sed 's/^/hac-out: /'
    if [ $rc != 0 ]; then
        err=$(echo "$out" | sed -n 's/.*"error": "\(.*\)".*/\1/p')
        pf=$(dmesg | grep -m1 "attempted to override administratively set MAC" | sed 's/^\[[^]]*\] //')
        die "hac vf-probe exited $rc: $err${pf:+ (PF: $pf)}"
    fi
    json_has "$out" '"ok": true' || die "not ok"
    json_has "$out" "\"mac\": \"$MAC1\"" || die "mac is not $MAC1"
    json_has "$out" '"mac_source": "pf"' || die "mac_source is not pf"
    json_has "$out" '"device_id": "0x10ca"' || die "device_id is not 0x10ca"
    pass
}

# (a) with "trust on": Linux igb then accepts SET_MAC_ADDR from a VF with an administrative MAC.
case_vf_probe_pf_mac_trusted() {
    setup_pf 2
    ipc link set "$PFIF" vf 1 mac $MAC1
    ipc link set "$PFIF" vf 1 trust on
    load_vfio
    bind $VF1 vfio-pci
    out=$(hac vf-probe --pci $VF1)
    rc=$?
    echo "$out" | sed 's/^/hac-out: /'
    [ $rc = 0 ] || die "hac vf-probe exited $rc: $(echo "$out" | sed -n 's/.*"error": "\(.*\)".*/\1/p')"
    json_has "$out" "\"mac\": \"$MAC1\"" || die "mac is not $MAC1"
    json_has "$out" '"mac_source": "pf"' || die "mac_source is not pf"
    pass
}

case_vf_probe_nack() {
    setup_pf 2
    ipc link set "$PFIF" vf 0 mac $MAC0
    load_vfio
    bind $VF1 vfio-pci
    out=$(hac vf-probe --pci $VF1)
    rc=$?
    echo "$out" | sed 's/^/hac-out: /'
    [ $rc = 0 ] || die "hac vf-probe exited $rc: $(echo "$out" | sed -n 's/.*"error": "\(.*\)".*/\1/p')"
    json_has "$out" '"ok": true' || die "not ok"
    json_has "$out" '"mac_source": "driver' || die "mac_source is not driver (expected the NACK path)"
    mac=$(echo "$out" | sed -n 's/.*"mac": "\([0-9a-f:]*\)".*/\1/p')
    [ -n "$mac" ] || die "no mac in the report"
    # "ok" means the PF ACKed SET_MAC_ADDR. The PF no longer lists the MAC afterwards: closing
    # the device makes vfio-pci reset the VF (FLR), and igb forgets a MAC it did not assign.
    $IP link show "$PFIF" | sed 's/^/hac-ip: /'
    dmesg | grep -q "VF 1 attempted to override" && die "the PF refused a MAC change of VF 1"
    pass
}

setup_traffic() {
    [ -d /proc/sys/net/ipv6 ] && sysctl -qw net.ipv6.conf.all.disable_ipv6=1 net.ipv6.conf.default.disable_ipv6=1
    setup_pf 2
    ipc link set "$PFIF" vf 0 mac $MAC0
    # No administrative MAC for VF1: Linux igb NACKs every SET_MAC_ADDR from a VF whose MAC
    # the administrator set, and the driver sends one at init (docs/qemu.md). hac proposes
    # MAC1 itself after the PF's NACK to VF_RESET.
    modprobe igbvf || die "modprobe igbvf failed"
    load_vfio
    bind $VF0 igbvf
    bind $VF1 vfio-pci
    wait_for 50 netdev_of $VF0 >/dev/null || die "VF0 has no netdev"
    VIF=$(netdev_of $VF0)
    ipc link set "$VIF" up
    ipc addr add 10.77.0.1/24 dev "$VIF"
    wait_for 100 carrier_up "$VIF" || die "$VIF (igbvf) has no carrier"
    st=/sys/class/net/$VIF/statistics
    rx0=$(cat $st/rx_packets)
    tx0=$(cat $st/tx_packets)
    say "kernel VF $VIF ($VF0, $(cat /sys/class/net/$VIF/address)) up; rx_packets=$rx0 tx_packets=$tx0"

}

case_vf_traffic() {
    setup_traffic
    hac_lab vf-traffic --pci $VF1 --dst-mac $MAC0 --mac $MAC1 --count "$N" --expect-rx "$N" --rx-window-ms $((20000 + N * 100)) \
        >/tmp/traffic.json 2>/tmp/traffic.err &
    hacpid=$!
    # igbvf's counters come from the VF's hardware registers, refreshed by its 2 s watchdog.
    got_frames() { [ $(($(cat $st/rx_packets) - rx0)) -ge "$N" ]; }
    if ! wait_for 150 got_frames; then
        kill $hacpid 2>/dev/null
        wait $hacpid
        sed 's/^/hac-out: /' /tmp/traffic.json /tmp/traffic.err
        die "kernel VF received $(($(cat $st/rx_packets) - rx0)) of $N frames from hac"
    fi
    rx1=$(cat $st/rx_packets)
    say "kernel VF rx_packets +$((rx1 - rx0)) after hac sent $N frames"
    # Kernel → hac: N unicast ICMP echo requests to VF1's MAC (static neighbour, no ARP).
    ipc neigh replace 10.77.0.2 lladdr $MAC1 dev "$VIF" nud permanent
    ping -c "$N" -i 0.05 -W 1 10.77.0.2 >/tmp/ping.out 2>&1 || true
    wait $hacpid
    rc=$?
    sed 's/^/hac-out: /' /tmp/traffic.json /tmp/traffic.err
    sleep 2.2 # one igbvf watchdog period, so tx_packets is current
    tx1=$(cat $st/tx_packets)
    say "kernel VF tx_packets +$((tx1 - tx0)); ping: $(tail -n 2 /tmp/ping.out | tr '\n' ' ')"
    [ $rc = 0 ] || die "hac-lab vf-traffic exited $rc: $(grep '"error"' /tmp/traffic.json)"
    out=$(cat /tmp/traffic.json)
    json_has "$out" "\"sent\": $N," || die "hac did not send $N frames"
    json_has "$out" '"tx_completed": true' || die "TX not completed"
    un=$(echo "$out" | sed -n 's/.*"received_from_peer_unicast": \([0-9]*\).*/\1/p')
    [ "${un:-0}" -ge "$N" ] || die "hac received ${un:-0} of $N unicast frames from the kernel VF"
    [ $((tx1 - tx0)) -ge "$N" ] || die "kernel VF tx_packets +$((tx1 - tx0)) < $N"
    pass
}

snmp() { awk -v k="$1" -v f="$2" '$1 == k ":" { if (!n) { for (i = 2; i <= NF; i++) h[$i] = i; n = 1 } else print $(h[f]) }' /proc/net/snmp; }

# hac → kernel IPv4: N ICMP echo requests carrying the recognisable payload; the kernel's IP
# stack must count them (Icmp InEchos) and echo each payload back intact to hac's MAC.
case_vf_ping() {
    setup_traffic
    ipc neigh replace 10.77.0.2 lladdr $MAC1 dev "$VIF" nud permanent
    in0=$(snmp Icmp InEchos)
    rep0=$(snmp Icmp OutEchoReps)
    out=$(hac_lab vf-traffic --pci $VF1 --dst-mac $MAC0 --mac $MAC1 --ip 10.77.0.2 --peer-ip 10.77.0.1 \
        --count "$N" --expect-rx "$N" --rx-window-ms 10000 2>&1)
    rc=$?
    echo "$out" | sed 's/^/hac-out: /'
    in1=$(snmp Icmp InEchos)
    rep1=$(snmp Icmp OutEchoReps)
    say "kernel Icmp InEchos +$((in1 - in0)) OutEchoReps +$((rep1 - rep0))"
    [ $rc = 0 ] || die "hac-lab vf-traffic exited $rc: $(echo "$out" | grep '"error"')"
    [ $((in1 - in0)) -eq "$N" ] || die "kernel InEchos +$((in1 - in0)), expected $N"
    json_has "$out" "\"echo_replies\": $N," || die "not all $N echo replies came back intact"
    json_has "$out" '"echo_replies_bad": 0,' || die "corrupted echo replies"
    pass
}

# Case 3: the PF itself on vfio-pci (enable_sriov=1), driven by hac's PF agent; both VFs on
# vfio-pci, opened with the VF token hac sets when it opens the PF; frames both ways through
# the adapter's internal switch. No kernel igb at all: nobody else answers the VF mailbox.
# The PF and both VFs on vfio-pci (enable_sriov=1), VF drivers not autoprobed; sets PF and a
# fresh VF token in TOKEN.
setup_vfio_pf() {
    modprobe vfio_iommu_type1 || die "modprobe vfio_iommu_type1 failed"
    modprobe vfio-pci enable_sriov=1 || die "modprobe vfio-pci enable_sriov=1 failed"
    [ "$(cat /sys/module/vfio_pci/parameters/enable_sriov)" = Y ] || die "vfio-pci has enable_sriov off"
    wait_for 50 find_pf >/dev/null || die "no 8086:$PF_DEV_ID PF found"
    PF=$(find_pf)
    bind "$PF" vfio-pci
    echo 0 >"/sys/bus/pci/devices/$PF/sriov_drivers_autoprobe"
    echo 2 >"/sys/bus/pci/devices/$PF/sriov_numvfs" || die "sriov_numvfs=2 on the vfio-pci PF failed"
    for vf in $VF0 $VF1; do
        [ -e "/sys/bus/pci/devices/$vf" ] || die "VF $vf missing after sriov_numvfs=2"
        bind $vf vfio-pci
    done
    TOKEN=$(cat /proc/sys/kernel/random/uuid)
}

case_pf_switch() {
    setup_vfio_pf
    say "PF $PF on vfio-pci, VFs $VF0 $VF1 on vfio-pci, VF token $TOKEN"
    out=$(hac_lab pf-switch --pf "$PF" --vf $VF0 --vf $VF1 --vf-token "$TOKEN" --count "$N" 2>&1)
    rc=$?
    echo "$out" | sed 's/^/hac-out: /'
    [ $rc = 0 ] || die "hac-lab pf-switch exited $rc: $(echo "$out" | sed -n 's/.*"error": "\(.*\)".*/\1/p')"
    json_has "$out" '"ok": true' || die "not ok"
    [ "$(echo "$out" | grep -c "\"intact\": $N,")" = 2 ] || die "not $N intact frames each way"
    # The kernel's side of the token: a VF of a vfio-pci PF opens only with the PF's token.
    wrong=$(cat /proc/sys/kernel/random/uuid)
    out=$(hac vf-probe --pci $VF0 --vf-token "$wrong" 2>&1)
    echo "$out" | sed 's/^/hac-out: /'
    json_has "$out" "rejected the VF token" || die "a wrong VF token was not rejected by the kernel"
    pass
}

# Case 3b: the same PF setup, but the PF is served by the control daemon (`hac serve --pci`),
# and the VFs are opened by separate hac processes, as VMs would: the daemon answers their
# mailboxes with the MACs it assigns, reports the PF's view of their counters, and refuses the
# HAC requests (QEMU's igb, like the 82576, has no HAC block).
case_serve_pf() {
    setup_vfio_pf
    SOCK=/tmp/hac.sock
    hac serve --pci "$PF" --vf-token "$TOKEN" --vfs 2 --socket $SOCK 2>/tmp/serve.err &
    servepid=$!
    up() { [ -S $SOCK ]; }
    wait_for 100 up || { sed 's/^/hac-out: /' /tmp/serve.err; die "hac serve did not start"; }
    out=$(hac ctl --socket $SOCK hello 2>&1)
    echo "$out" | sed 's/^/hac-out: /'
    json_has "$out" '"backend": "vfio"' || die "hello: not the vfio backend"
    # A VF user opens VF 0 with the token; the daemon's PF agent gives it 02:1b:21:c1:00:00.
    out=$(hac vf-probe --pci $VF0 --vf-token "$TOKEN" 2>&1)
    rc=$?
    echo "$out" | sed 's/^/hac-out: /'
    [ $rc = 0 ] || die "hac vf-probe through the daemon exited $rc"
    json_has "$out" '"mac": "02:1b:21:c1:00:00"' || die "VF 0 did not get the daemon's MAC"
    json_has "$out" '"mac_source": "pf"' || die "VF 0's MAC did not come from the PF"
    # VF 1 sends frames to VF 0's MAC through the switch.
    out=$(hac_lab vf-traffic --pci $VF1 --vf-token "$TOKEN" --dst-mac 02:1b:21:c1:00:00 --count "$N" \
        --rx-window-ms 0 2>&1)
    rc=$?
    echo "$out" | sed 's/^/hac-out: /'
    [ $rc = 0 ] || die "hac-lab vf-traffic through the daemon exited $rc"
    out=$(hac stats --socket $SOCK 2>&1)
    echo "$out" | sed 's/^/hac-out: /'
    vf0=$(echo "$out" | sed -n '/^VF 0 /,/^VF 1 /p')
    vf1=$(echo "$out" | sed -n '/^VF 1 /,$p')
    echo "$vf0" | grep -q "vf_resets: [1-9]" || die "stats: no VF_RESET handshake counted for VF 0"
    echo "$vf1" | grep -q "mbx_messages: [1-9]" || die "stats: no mailbox messages counted for VF 1"
    echo "$vf1" | grep -q "tx_packets: $N\$" || die "stats: the PF does not count VF 1's $N frames (PVFGPTC)"
    # The HAC requests are refused with a one-line error and exit status 2.
    hac ctl --socket $SOCK tag 0 >/tmp/tag.out 2>&1
    rc=$?
    sed 's/^/hac-out: /' /tmp/tag.out
    [ $rc = 2 ] || die "hac ctl tag on a PF without HAC block exited $rc, expected 2"
    grep -q "^error: unsupported:" /tmp/tag.out || die "tag was not refused as unsupported"
    hac ctl --socket $SOCK shutdown >/dev/null || die "shutdown refused"
    wait $servepid || die "hac serve exited non-zero"
    [ -e $SOCK ] && die "hac serve left its socket behind"
    pass
}

# Case 4: HAC semantics in the driver (SoftHac) on VF 1, observed by the kernel igbvf peer on
# VF 0: its rx_packets and the IP stack's Icmp InEchos do not move while frames are held, grow
# by exactly the committed frames, not by the aborted ones; echo replies come back in order.
case_vf_hac() {
    setup_traffic
    ipc neigh replace 10.77.0.2 lladdr $MAC1 dev "$VIF" nud permanent
    in0=$(snmp Icmp InEchos)
    out=$(hac_lab vf-hac-check --pci $VF1 --mac $MAC1 --peer-mac $MAC0 --ip 10.77.0.2 --peer-ip 10.77.0.1 \
        --count "$N" --settle-ms 2200 --peer-netdev "$VIF" --peer-snmp /proc/net/snmp 2>&1)
    rc=$?
    echo "$out" | sed 's/^/hac-out: /'
    in1=$(snmp Icmp InEchos)
    say "kernel Icmp InEchos +$((in1 - in0)) (expected $((2 * N)): epochs 1 and 3 committed, 2 aborted)"
    [ $rc = 0 ] || die "hac-lab vf-hac-check exited $rc: $(echo "$out" | sed -n 's/.*"error": "\(.*\)".*/\1/p')"
    [ $((in1 - in0)) -eq $((2 * N)) ] || die "kernel InEchos +$((in1 - in0)), expected $((2 * N))"
    pass
}

# Case 5: smoltcp on VF 1 (hac-lab vf-smoltcp) answers the kernel peer's ping (ARP resolved by
# smoltcp, no static neighbour) and echoes a TCP stream sent with busybox nc.
case_vf_smoltcp() {
    setup_traffic
    hac_lab vf-smoltcp --pci $VF1 --mac $MAC1 --ip 10.77.0.2/24 --echo-port 7 --duration-ms 60000 \
        --connections 1 >/tmp/smol.json 2>/tmp/smol.err &
    hacpid=$!
    listening() { grep -q listening /tmp/smol.err; }
    wait_for 100 listening || {
        kill $hacpid 2>/dev/null
        sed 's/^/hac-out: /' /tmp/smol.json /tmp/smol.err
        die "hac-lab vf-smoltcp did not start"
    }
    rep0=$(snmp Icmp InEchoReps)
    ping -c "$N" -i 0.05 -W 2 10.77.0.2 >/tmp/ping.out 2>&1
    rep1=$(snmp Icmp InEchoReps)
    say "ping: $(tail -n 2 /tmp/ping.out | tr '\n' ' '); Icmp InEchoReps +$((rep1 - rep0))"
    i=0
    while [ $i -lt 300 ]; do
        echo "HAC-SMOLTCP line $i: the quick brown fox jumps over the lazy dog $((i * 7919))"
        i=$((i + 1))
    done >/tmp/payload
    timeout 30 nc 10.77.0.2 7 </tmp/payload >/tmp/echoed 2>/tmp/nc.err
    ncrc=$?
    wait $hacpid
    rc=$?
    sed 's/^/hac-out: /' /tmp/smol.json /tmp/smol.err
    sent=$(wc -c </tmp/payload)
    got=$(wc -c </tmp/echoed)
    say "nc exited $ncrc; sent $sent bytes, got $got back"
    grep -q "$N packets received" /tmp/ping.out || die "ping: $(tail -n 2 /tmp/ping.out | tr '\n' ' ')"
    [ $((rep1 - rep0)) -ge "$N" ] || die "kernel Icmp InEchoReps +$((rep1 - rep0)) < $N"
    cmp -s /tmp/payload /tmp/echoed || die "TCP echo differs: sent $sent bytes, got $got (nc exit $ncrc: $(cat /tmp/nc.err))"
    [ $rc = 0 ] || die "hac-lab vf-smoltcp exited $rc: $(grep '"error"' /tmp/smol.json)"
    json_has "$(cat /tmp/smol.json)" "\"bytes_echoed\": $sent," || die "hac echoed other than $sent bytes"
    pass
}

# Not a test: VF1 (administrative MAC) on vfio-pci, then /bin/vdiag if given with
# HAC_QEMU_EXTRA_BIN, `hac-lab vf-mailbox` (raw handshake trace) and `hac vf-probe`.
case_debug() {
    setup_pf 2
    ipc link set "$PFIF" vf 1 mac $MAC1
    load_vfio
    bind $VF1 vfio-pci
    grp=$(basename "$(readlink /sys/bus/pci/devices/$VF1/iommu_group)")
    ls -l /dev/vfio
    for t in /bin/vdiag; do [ -x $t ] && $t $VF1 "$grp"; done
    hac_lab vf-mailbox --pci $VF1
    hac vf-probe --pci $VF1
    dmesg | tail -n 20
    pass
}

say "case $CASE on $(uname -r)"
case "$CASE" in
vf-probe-pf-mac) case_vf_probe_pf_mac ;;
vf-probe-pf-mac-trusted) case_vf_probe_pf_mac_trusted ;;
vf-probe-nack) case_vf_probe_nack ;;
vf-traffic) case_vf_traffic ;;
vf-ping) case_vf_ping ;;
pf-switch) case_pf_switch ;;
serve-pf) case_serve_pf ;;
vf-hac) case_vf_hac ;;
vf-smoltcp) case_vf_smoltcp ;;
debug) case_debug ;;
*) CASE=${CASE:-unnamed}; fail "unknown case" ;;
esac
# The kernel's view (PF mailbox warnings, VF probes, IOMMU faults), for the log.
dmesg | grep -E "igb|vfio|DMAR.*(fault|DMA)|Reload the VF" | sed 's/^/hac-kern: /'

