#!/usr/bin/env bash
# End-to-end test of the vfio-user front end: `hac serve --vfio-user` exports VFs of the model,
# QEMU (>= 10.1, from the trixie tree of setup.sh, run with chroot) attaches them with
# vfio-user-pci, and the guest's own Linux igbvf (HAC_VU_FAMILY=mlx5: mlx5_core) drives them. The guest checks MAC, link, ping
# and TCP with a peer on the model's wire, then the same with the VF checkpointing (20 ms
# epochs driven by `hac ctl epochs`), then with aborted epochs. Run setup.sh first (root).
#
# The guest boots once per peer (HAC_VU_PEERS):
#   smoltcp  the daemon's built-in host on the wire (`--wire-peer 10.99.0.2/24`);
#   linux    Linux itself: `hac serve --wire-tap` in a network namespace whose TAP has
#            10.99.0.2/24 and a TCP echo (busybox nc) on port 7; the namespace also pings the
#            guest (10.99.0.1), with and without checkpointing, so output commit is seen from
#            the Linux side (an answer reaches Linux only when its epoch commits).
# Results of the linux boot are named linux/<check>.
#
#   scripts/vfio-user/run.sh
#
# Environment:
#   HAC_VU_CACHE        setup.sh's cache (default <repo>/target/vfio-user)
#   HAC_QEMU_CACHE      the guest kernel's cache (default <repo>/target/qemu)
#   HAC_VU_TIMEOUT      seconds for the whole boot (default 300)
#   HAC_VU_VFS          VFs exported (default "0,1"; the checks use VF 0)
#   HAC_VU_EPOCH_MS     epoch length (default 20)
#   HAC_VU_FAMILY       igb (default: the 82576, igbvf) or mlx5 (the ConnectX model, mlx5_core)
#   HAC_VU_PEERS        peers to boot against, in order (default "smoltcp linux")
#   HAC_QEMU_NO_BUILD=1 reuse the static hac binary; HAC_QEMU_HAC=path: use that one
# Logs: $HAC_VU_CACHE/logs/{serial,serve,epochs-*}.log (linux boot: logs/linux/, with
# linux-ping-{plain,ckpt}.txt). See docs/vfio-user.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/scripts/vfio-user"
TIMEOUT="${HAC_VU_TIMEOUT:-300}"
VFS="${HAC_VU_VFS:-0,1}"
EPOCH_MS="${HAC_VU_EPOCH_MS:-20}"
FAMILY="${HAC_VU_FAMILY:-igb}"
PEERS="${HAC_VU_PEERS:-smoltcp linux}"
case "$FAMILY" in
igb) MODULES=(igbvf) ;;
mlx5) MODULES=(mlx5_core) ;; # with mlxfw and pci-hyperv-intf, its dependencies
*) echo "vfio-user/run.sh: error: HAC_VU_FAMILY must be igb or mlx5, not '$FAMILY'" >&2; exit 2 ;;
esac

die() { echo "vfio-user/run.sh: error: $*" >&2; exit 2; }
# shellcheck source=../lib/initramfs.sh
. "$ROOT/scripts/lib/initramfs.sh"
# shellcheck source=../lib/vfio-user-tree.sh
. "$ROOT/scripts/lib/vfio-user-tree.sh"
log() { echo "vfio-user/run.sh: $*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (QEMU runs with chroot)"
for p in $PEERS; do
    case "$p" in smoltcp | linux) ;; *) die "HAC_VU_PEERS: unknown peer '$p' (smoltcp, linux)" ;; esac
done
case " $PEERS " in *" linux "*) command -v ip >/dev/null || die "the linux peer needs iproute2 (ip)" ;; esac
vu_tree_init
LOGS="$CACHE/logs"

# 1. The static hac binary (as scripts/qemu/run.sh builds it).
vu_static_hac

# 2. The initramfs: busybox, igbvf, the guest script.
IR="$CACHE/initramfs"
rm -rf "$IR"
initramfs_base "$IR" "$KVER"
initramfs_add_modules "$IR" "$QCACHE/kroot" "$KVER" "${MODULES[@]}"
initramfs_add_iproute2 "$IR"
cp "$HERE/init" "$IR/init"
cp "$HERE/guest.sh" "$IR/hac/guest.sh"
chmod +x "$IR/init" "$IR/hac/guest.sh"

# 3. The shared directory (sockets, kernel, initramfs), visible in the tree as /hac-share.
SHARE="$(mktemp -d /tmp/hac-vu.XXXXXX)"
chmod 755 "$SHARE"
(cd "$IR" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$SHARE/initramfs.cpio.gz"
cp "$QCACHE/vmlinuz" "$SHARE/vmlinuz"
mkdir -p "$LOGS"
rm -f "$LOGS"/*.log

SERVE_PID=""
QEMU_PID=""
EPOCHS_PID=""
ECHO_PID=""
LPING_PID=""
NETNS=""
TAP=hacvu0
mounted=()
stop_daemon() {
    if [ -n "$EPOCHS_PID" ]; then kill "$EPOCHS_PID" 2>/dev/null || true; fi
    if [ -n "$QEMU_PID" ]; then kill "$QEMU_PID" 2>/dev/null || true; fi
    if [ -n "$LPING_PID" ]; then kill "$LPING_PID" 2>/dev/null || true; fi
    if [ -n "$ECHO_PID" ]; then kill "$ECHO_PID" 2>/dev/null || true; fi
    if [ -n "$SERVE_PID" ]; then
        "$HAC" ctl --socket "$SHARE/hac.sock" shutdown >/dev/null 2>&1 || kill "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null || true
    fi
    if [ -n "$NETNS" ]; then ip netns del "$NETNS" 2>/dev/null || true; fi
    EPOCHS_PID="" QEMU_PID="" LPING_PID="" ECHO_PID="" SERVE_PID="" NETNS=""
    rm -f "$SHARE"/*.sock
}
cleanup() {
    stop_daemon
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
    rm -rf "$SHARE"
}
trap cleanup EXIT

# QEMU runs in the tree.
vu_tree_mount "$SHARE"

# busybox ping summary "round-trip min/avg/max = a/b/c ms" → "a b c"; loss percentage.
rtt_of() { sed -n 's#.*min/avg/max = \([0-9.]*\)/\([0-9.]*\)/\([0-9.]*\) ms.*#\1 \2 \3#p' "$1" 2>/dev/null; }
loss_of() { sed -n 's/.* \([0-9]*\)% packet loss.*/\1/p' "$1" 2>/dev/null; }
# The median of a ping log's per-packet times (robust to a loaded host's outliers).
median_of() {
    sed -n 's/.*time=\([0-9.]*\) ms.*/\1/p' "$1" 2>/dev/null | sort -n |
        awk '{ a[NR] = $1 } END { if (NR) print (NR % 2 ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2) }'
}

all_results=()

# One boot of the guest against peer $1 (smoltcp or linux); its results go to all_results.
boot() {
    local peer=$1 L="$LOGS" prefix=""
    if [ "$peer" = linux ]; then
        L="$LOGS/linux" prefix="linux/"
    fi
    mkdir -p "$L"
    rm -f "$L"/*.log "$L"/*.json "$L"/*.err "$L"/*.txt

    # 4. The daemon: VFs exported, a peer on the wire.
    local serve=("$HAC" serve --family "$FAMILY" --socket "$SHARE/hac.sock" --vfs 2 --vfio-user "$SHARE"
        --vfio-user-vfs "$VFS")
    if [ "$peer" = smoltcp ]; then
        "${serve[@]}" --wire-peer 10.99.0.2/24 >"$L/serve.log" 2>&1 &
        SERVE_PID=$!
    else
        # The namespace is the Linux host on the wire: the daemon runs in it and creates the
        # TAP there (IPv6 off, so every frame the guest sees is one the checks caused).
        NETNS="hacvu$$"
        ip netns add "$NETNS" || die "cannot create network namespace $NETNS"
        ip netns exec "$NETNS" sysctl -q -w net.ipv6.conf.default.disable_ipv6=1 \
            net.ipv6.conf.all.disable_ipv6=1 >/dev/null 2>&1 || true # no IPv6 at all: fine
        ip netns exec "$NETNS" "${serve[@]}" --wire-tap "$TAP" >"$L/serve.log" 2>&1 &
        SERVE_PID=$!
    fi
    for _ in $(seq 50); do [ -S "$SHARE/vf0.sock" ] && break; sleep 0.1; done
    [ -S "$SHARE/vf0.sock" ] || { cat "$L/serve.log" >&2; die "hac serve did not create $SHARE/vf0.sock"; }
    chmod 777 "$SHARE"/*.sock
    if [ "$peer" = linux ]; then
        ip -n "$NETNS" addr add 10.99.0.2/24 dev "$TAP"
        ip -n "$NETNS" link set "$TAP" up
        ip netns exec "$NETNS" /bin/busybox nc -ll -p 7 -e /bin/cat >"$L/echo.log" 2>&1 &
        ECHO_PID=$!
    fi

    # 5. QEMU in the tree.
    local devices=() vflist n
    IFS=',' read -r -a vflist <<<"$VFS"
    for n in "${vflist[@]}"; do
        devices+=(-device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"type\":\"unix\",\"path\":\"/hac-share/vf$n.sock\"}}")
    done
    local SERIAL="$L/serial.log"
    : >"$SERIAL"
    local t0 t1 wall qrc
    t0=$(date +%s.%N)
    log "booting the guest with $FAMILY VF(s) $VFS, $peer peer (timeout ${TIMEOUT}s, serial log $SERIAL)"
    timeout -k 5 "$TIMEOUT" chroot "$TREE" /usr/bin/qemu-system-x86_64 \
        -machine q35,memory-backend=mem -accel tcg -cpu max -m 1G -smp 1 \
        -object memory-backend-memfd,id=mem,size=1G,share=on \
        -nodefaults -display none -serial stdio -no-reboot \
        "${devices[@]}" \
        -kernel /hac-share/vmlinuz -initrd /hac-share/initramfs.cpio.gz \
        -append "console=ttyS0 panic=-1 loglevel=4 hac.epoch_ms=$EPOCH_MS hac.family=$FAMILY" </dev/null >"$SERIAL" 2>&1 &
    QEMU_PID=$!

    # 6. Follow the guest's requests for the epoch driver (and, with the linux peer, for the
    # namespace's pings of the guest).
    local handled=0 phase="" reqs r
    start_epochs() {
        phase=$1
        "$HAC" ctl --socket "$SHARE/hac.sock" epochs 0 --period-ms "$EPOCH_MS" "${@:2}" \
            >"$L/epochs-$phase.json" 2>"$L/epochs-$phase.err" &
        EPOCHS_PID=$!
        log "epoch driver ($phase) started"
    }
    wait_linux_ping() {
        if [ -n "$LPING_PID" ]; then
            wait "$LPING_PID" 2>/dev/null || true
            LPING_PID=""
        fi
    }
    stop_epochs() {
        # The namespace's ping under checkpointing ends before the epochs do.
        wait_linux_ping
        if [ -n "$EPOCHS_PID" ]; then
            kill -INT "$EPOCHS_PID" 2>/dev/null || true
            wait "$EPOCHS_PID" 2>/dev/null || log "epoch driver ($phase) failed: $(cat "$L/epochs-$phase.err")"
            EPOCHS_PID=""
            log "epoch driver ($phase) stopped: $(cat "$L/epochs-$phase.json")"
        fi
    }
    linux_ping() {
        [ "$peer" = linux ] || return 0
        wait_linux_ping
        # Every 108 ms: off the epoch's phase (see guest.sh).
        ip netns exec "$NETNS" /bin/busybox ping -c 20 -i 0.108 -W 2 10.99.0.1 >"$L/linux-ping-$1.txt" 2>&1 &
        LPING_PID=$!
        log "linux peer pings the guest ($1)"
    }
    while kill -0 "$QEMU_PID" 2>/dev/null; do
        # Whole requests only: the serial log grows a character at a time, and a line read
        # half written ("HAC-VU-REQ epochs-ab") must not be taken (and skipped) as a request.
        mapfile -t reqs < <(tr -d '\r' <"$SERIAL" |
            grep -aE '^HAC-VU-REQ (epochs-commit|epochs-abort|epochs-stop|linux-ping-plain|linux-ping-ckpt)$' || true)
        while [ "$handled" -lt "${#reqs[@]}" ]; do
            r="${reqs[$handled]#HAC-VU-REQ }"
            handled=$((handled + 1))
            case "$r" in
            epochs-commit) start_epochs commit ;;
            epochs-abort) start_epochs abort --abort-every 5 ;;
            epochs-stop) stop_epochs ;;
            linux-ping-plain) linux_ping plain ;;
            linux-ping-ckpt) linux_ping ckpt ;;
            esac
        done
        sleep 0.1
    done
    set +e
    wait "$QEMU_PID"
    qrc=$?
    set -e
    QEMU_PID=""
    stop_epochs
    wait_linux_ping
    t1=$(date +%s.%N)
    wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
    tr -d '\r' <"$SERIAL" >"$SERIAL.txt" && mv "$SERIAL.txt" "$SERIAL"
    "$HAC" stats --socket "$SHARE/hac.sock" --vf 0 >"$L/stats.txt" 2>&1 || true
    "$HAC" ctl --socket "$SHARE/hac.sock" stats >"$L/stats.json" 2>&1 || true
    "$HAC" stats --socket "$SHARE/hac.sock" >"$L/stats-all.txt" 2>&1 || true
    stop_daemon

    # 7. Verdicts: the guest's, then the host's view of the aborted epochs (and, with the linux
    # peer, what Linux saw).
    local results=() l p rel dis wire ab
    while IFS= read -r l; do results+=("$l"); done < <(grep -aE '^(PASS|FAIL) ' "$SERIAL" || true)
    num() { sed -n "s/.*\"$2\":\\([0-9]*\\).*/\\1/p" "$L/epochs-$1.json" 2>/dev/null || true; }
    for p in commit abort; do
        rel=$(num $p released) dis=$(num $p discarded) wire=$(num $p wire_frames) ab=$(num $p aborts)
        if [ -z "$rel" ]; then
            results+=("FAIL epochs-$p: no summary from the epoch driver ($(tail -n1 "$L/epochs-$p.err" 2>/dev/null || echo "not started"))")
        elif [ "$wire" != "$rel" ]; then
            results+=("FAIL epochs-$p: $wire frames left on the wire but $rel were released by commits")
        elif [ $p = abort ] && { [ "${dis:-0}" = 0 ] || [ "${ab:-0}" = 0 ]; }; then
            results+=("FAIL epochs-abort: $ab aborted epochs discarded ${dis:-0} frames (expected some)")
        elif [ $p = commit ] && [ "${dis:-0}" != 0 ]; then
            results+=("FAIL epochs-commit: $dis frames discarded without an abort")
        else
            results+=("PASS epochs-$p")
        fi
    done
    if [ "$peer" = linux ]; then
        # The namespace's pings of the guest: all answered; under checkpointing each answer
        # reaches Linux only when its epoch commits (half to one epoch more on average).
        local plain_avg ckpt_min ckpt_avg ckpt_max plain_med ckpt_med
        # shellcheck disable=SC2046
        set -- $(rtt_of "$L/linux-ping-plain.txt")
        plain_avg=${2:-}
        # shellcheck disable=SC2046
        set -- $(rtt_of "$L/linux-ping-ckpt.txt")
        ckpt_min=${1:-} ckpt_avg=${2:-} ckpt_max=${3:-}
        plain_med=$(median_of "$L/linux-ping-plain.txt") ckpt_med=$(median_of "$L/linux-ping-ckpt.txt")
        LINUX_RTT="linux peer -> guest RTT plain avg ${plain_avg:-?} ms (median ${plain_med:-?}); checkpointing min/avg/max ${ckpt_min:-?}/${ckpt_avg:-?}/${ckpt_max:-?} ms (median ${ckpt_med:-?}; epoch $EPOCH_MS ms)"
        if [ "$(loss_of "$L/linux-ping-plain.txt")" = 0 ]; then
            results+=("PASS linux-ping")
        else
            results+=("FAIL linux-ping: the namespace's ping of the guest: $(tail -n 2 "$L/linux-ping-plain.txt" 2>/dev/null | tr '\n' ' ')")
        fi
        if [ -z "$plain_med" ] || [ -z "$ckpt_med" ] || [ -z "$ckpt_max" ]; then
            results+=("FAIL linux-ckpt-rtt: no RTT figures from the namespace's pings")
        elif [ "$(loss_of "$L/linux-ping-ckpt.txt")" = 0 ] &&
            awk -v p="$plain_med" -v a="$ckpt_med" -v m="$ckpt_max" -v e="$EPOCH_MS" \
                'BEGIN { exit !((a - p) >= e / 4 && (a - p) <= 3 * e && m >= e / 2) }'; then
            results+=("PASS linux-ckpt-rtt")
        else
            results+=("FAIL linux-ckpt-rtt: $LINUX_RTT, loss $(loss_of "$L/linux-ping-ckpt.txt")%: expected about half to one epoch more, nothing lost")
        fi
        # The wire port moved frames both ways and hit no I/O error.
        dev_num() { sed -n "s/^ *$1: *\([0-9]*\)\$/\1/p" "$L/stats-all.txt" | head -n1; }
        local to from errs
        to=$(dev_num wire_port_to_host_frames) from=$(dev_num wire_port_from_host_frames)
        errs=$(dev_num wire_port_io_errors)
        if [ "${to:-0}" -gt 0 ] && [ "${from:-0}" -gt 0 ] && [ "${errs:-1}" = 0 ]; then
            results+=("PASS linux-wire-port")
        else
            results+=("FAIL linux-wire-port: to Linux ${to:-?} frames, from Linux ${from:-?}, I/O errors ${errs:-?} (see $L/stats-all.txt)")
        fi
    fi
    # The guest's `ip -s link` of VF 0 (taken when its traffic is over) against the model's
    # counters of that VF: mlx5e counts in its SQ/RQ completions, the model at its E-Switch, so
    # they agree exactly. (igbvf's figures come from statistics registers its watchdog reads
    # every 2 s: printed, not compared.)
    local guest_ip model_ip
    guest_ip=$(grep -a -A1 -E '^hac-ip: +(RX|TX):' "$SERIAL" | awk '/^hac-ip: +RX:/ {r = 1; next} /^hac-ip: +TX:/ {t = 1; next} r == 1 {rb = $2; rp = $3; r = 0} t == 1 {tb = $2; tp = $3; t = 0} END {if (tp != "") print tp, tb, rp, rb}')
    model_ip=$(python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["vfs"][0]; print(v["tx_packets"], v["tx_bytes"], v["rx_packets"], v["rx_bytes"])' "$L/stats.json" 2>/dev/null || true)
    log "VF 0 counters (tx packets, tx bytes, rx packets, rx bytes): guest ${guest_ip:-?}, model ${model_ip:-?}"
    if [ "$FAMILY" = mlx5 ]; then
        if [ -z "$guest_ip" ] || [ -z "$model_ip" ]; then
            results+=("FAIL counters: no figures (guest '${guest_ip}', model '${model_ip}')")
        elif [ "$guest_ip" != "$model_ip" ]; then
            results+=("FAIL counters: ip -s link says $guest_ip, the model $model_ip (tx packets, tx bytes, rx packets, rx bytes)")
        else
            results+=("PASS counters")
        fi
    fi
    grep -q '^HAC-VU-END' "$SERIAL" || results+=("FAIL guest: did not finish (qemu exit $qrc; 124 = timeout)")

    local failed=0
    for r in "${results[@]}"; do
        case "$r" in PASS*) ;; *) failed=$((failed + 1)) ;; esac
    done
    if [ "$failed" -gt 0 ]; then
        grep -aE '^(hac-guest|hac-kern|hac-ip|FAIL)' "$SERIAL" | sed 's/^/  | /' || true
        tail -n 30 "$SERIAL" | sed 's/^/  serial| /'
        tail -n 20 "$L/serve.log" | sed 's/^/  serve| /'
    fi
    echo "--- vfio-user $FAMILY, $peer peer (${wall}s boot, QEMU $QEMU_VERSION)"
    grep -aE '^(hac-guest: rtt|HAC-VU-RTT)' "$SERIAL" || true
    [ "$peer" = linux ] && echo "$LINUX_RTT"
    grep -aE '^hac-cmd: ' "$SERIAL" >"$L/commands.txt" || true
    grep -aE '^hac-ip: ' "$SERIAL" || true
    for p in commit abort; do echo "epochs-$p: $(cat "$L/epochs-$p.json" 2>/dev/null)"; done
    for r in "${results[@]}"; do
        case "$r" in
        PASS\ * | FAIL\ *) all_results+=("${r%% *} $prefix${r#* }") ;;
        *) all_results+=("$r") ;;
        esac
    done
}

LINUX_RTT=""
for p in $PEERS; do boot "$p"; done

passed=0
failed=0
for r in "${all_results[@]}"; do
    case "$r" in PASS*) passed=$((passed + 1)) ;; *) failed=$((failed + 1)) ;; esac
done
printf '%s\n' "${all_results[@]}"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
