#!/usr/bin/env bash
# End-to-end test of the vfio-user front end: `hac serve --vfio-user` exports VFs of the model,
# QEMU (>= 10.1, from the trixie tree of setup.sh, run with chroot) attaches them with
# vfio-user-pci, and the guest's own Linux igbvf (HAC_VU_FAMILY=mlx5: mlx5_core) drives them. The guest checks MAC, link, ping
# and TCP with a peer on the model's wire, then the same with the VF checkpointing (20 ms
# epochs driven by `hac ctl epochs`), then with aborted epochs. Run setup.sh first (root).
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
#   HAC_QEMU_NO_BUILD=1 reuse the static hac binary; HAC_QEMU_HAC=path: use that one
# Logs: $HAC_VU_CACHE/logs/{serial,serve,epochs-*}.log. See docs/vfio-user.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/scripts/vfio-user"
CACHE="${HAC_VU_CACHE:-$ROOT/target/vfio-user}"
QCACHE="${HAC_QEMU_CACHE:-$ROOT/target/qemu}"
TREE="$CACHE/trixie"
TIMEOUT="${HAC_VU_TIMEOUT:-300}"
VFS="${HAC_VU_VFS:-0,1}"
EPOCH_MS="${HAC_VU_EPOCH_MS:-20}"
FAMILY="${HAC_VU_FAMILY:-igb}"
TARGET=x86_64-unknown-linux-gnu
case "$FAMILY" in
igb) MODULES=(igbvf) ;;
mlx5) MODULES=(mlx5_core) ;; # with mlxfw and pci-hyperv-intf, its dependencies
*) echo "vfio-user/run.sh: error: HAC_VU_FAMILY must be igb or mlx5, not '$FAMILY'" >&2; exit 2 ;;
esac
LOGS="$CACHE/logs"

die() { echo "vfio-user/run.sh: error: $*" >&2; exit 2; }
# shellcheck source=../lib/initramfs.sh
. "$ROOT/scripts/lib/initramfs.sh"
log() { echo "vfio-user/run.sh: $*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (QEMU runs with chroot)"
[ -f "$CACHE/trixie.ok" ] || die "no QEMU tree in $TREE: run scripts/vfio-user/setup.sh first"
[ -f "$QCACHE/kernel.ok" ] || die "no guest kernel in $QCACHE: run scripts/vfio-user/setup.sh first"
KVER="$(cat "$QCACHE/kver")"

# 1. The static hac binary (as scripts/qemu/run.sh builds it).
HAC="${HAC_QEMU_HAC:-$ROOT/target/$TARGET/release/hac}"
if [ -z "${HAC_QEMU_HAC:-}" ] && { [ "${HAC_QEMU_NO_BUILD:-0}" != 1 ] || [ ! -x "$HAC" ]; }; then
    log "building static hac"
    (cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=0 \
        cargo build --release --quiet -p hac-utility --target $TARGET) || die "cargo build failed"
fi
[ -x "$HAC" ] || die "$HAC is not an executable"

# 2. The initramfs: busybox, igbvf, the guest script.
IR="$CACHE/initramfs"
rm -rf "$IR"
mkdir -p "$IR"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,hac,lib/modules/"$KVER"}
cp /bin/busybox "$IR/bin/busybox"
for a in $(/bin/busybox --list); do
    [ "$a" = busybox ] || ln -sf busybox "$IR/bin/$a"
done
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
rm -f "$LOGS"/*.log "$LOGS"/*.json "$LOGS"/*.err "$LOGS"/*.txt # no verdict from an earlier run

SERVE_PID=""
QEMU_PID=""
EPOCHS_PID=""
mounted=()
cleanup() {
    [ -n "$EPOCHS_PID" ] && kill "$EPOCHS_PID" 2>/dev/null || true
    [ -n "$QEMU_PID" ] && kill "$QEMU_PID" 2>/dev/null || true
    if [ -n "$SERVE_PID" ]; then
        "$HAC" ctl --socket "$SHARE/hac.sock" shutdown >/dev/null 2>&1 || kill "$SERVE_PID" 2>/dev/null || true
        wait "$SERVE_PID" 2>/dev/null || true
    fi
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
    rm -rf "$SHARE"
}
trap cleanup EXIT

# 4. The daemon: VFs exported, a peer on the wire.
"$HAC" serve --family "$FAMILY" --socket "$SHARE/hac.sock" --vfs 2 --vfio-user "$SHARE" --vfio-user-vfs "$VFS" \
    --wire-peer 10.99.0.2/24 >"$LOGS/serve.log" 2>&1 &
SERVE_PID=$!
for _ in $(seq 50); do [ -S "$SHARE/vf0.sock" ] && break; sleep 0.1; done
[ -S "$SHARE/vf0.sock" ] || { cat "$LOGS/serve.log" >&2; die "hac serve did not create $SHARE/vf0.sock"; }
chmod 777 "$SHARE"/*.sock

# 5. QEMU in the tree.
for d in proc sys dev; do
    mount --bind "/$d" "$TREE/$d" && mounted+=("$TREE/$d")
done
mkdir -p "$TREE/hac-share"
mount --bind "$SHARE" "$TREE/hac-share" && mounted+=("$TREE/hac-share")
devices=()
IFS=',' read -r -a vflist <<<"$VFS"
for n in "${vflist[@]}"; do
    devices+=(-device "{\"driver\":\"vfio-user-pci\",\"socket\":{\"type\":\"unix\",\"path\":\"/hac-share/vf$n.sock\"}}")
done
SERIAL="$LOGS/serial.log"
: >"$SERIAL"
t0=$(date +%s.%N)
log "booting the guest with $FAMILY VF(s) $VFS (timeout ${TIMEOUT}s, serial log $SERIAL)"
timeout -k 5 "$TIMEOUT" chroot "$TREE" /usr/bin/qemu-system-x86_64 \
    -machine q35,memory-backend=mem -accel tcg -cpu max -m 1G -smp 1 \
    -object memory-backend-memfd,id=mem,size=1G,share=on \
    -nodefaults -display none -serial stdio -no-reboot \
    "${devices[@]}" \
    -kernel /hac-share/vmlinuz -initrd /hac-share/initramfs.cpio.gz \
    -append "console=ttyS0 panic=-1 loglevel=4 hac.epoch_ms=$EPOCH_MS hac.family=$FAMILY" </dev/null >"$SERIAL" 2>&1 &
QEMU_PID=$!

# 6. Follow the guest's requests for the epoch driver.
handled=0
phase=""
start_epochs() {
    phase=$1
    "$HAC" ctl --socket "$SHARE/hac.sock" epochs 0 --period-ms "$EPOCH_MS" "${@:2}" \
        >"$LOGS/epochs-$phase.json" 2>"$LOGS/epochs-$phase.err" &
    EPOCHS_PID=$!
    log "epoch driver ($phase) started"
}
stop_epochs() {
    if [ -n "$EPOCHS_PID" ]; then
        kill -INT "$EPOCHS_PID" 2>/dev/null || true
        wait "$EPOCHS_PID" 2>/dev/null || log "epoch driver ($phase) failed: $(cat "$LOGS/epochs-$phase.err")"
        EPOCHS_PID=""
        log "epoch driver ($phase) stopped: $(cat "$LOGS/epochs-$phase.json")"
    fi
}
while kill -0 "$QEMU_PID" 2>/dev/null; do
    # Whole requests only: the serial log grows a character at a time, and a line read half
    # written ("HAC-VU-REQ epochs-ab") must not be taken (and skipped) as a request.
    mapfile -t reqs < <(tr -d '\r' <"$SERIAL" | grep -aE '^HAC-VU-REQ (epochs-commit|epochs-abort|epochs-stop)$' || true)
    while [ "$handled" -lt "${#reqs[@]}" ]; do
        r="${reqs[$handled]#HAC-VU-REQ }"
        handled=$((handled + 1))
        case "$r" in
        epochs-commit) start_epochs commit ;;
        epochs-abort) start_epochs abort --abort-every 5 ;;
        epochs-stop) stop_epochs ;;
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
t1=$(date +%s.%N)
wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
tr -d '\r' <"$SERIAL" >"$SERIAL.txt" && mv "$SERIAL.txt" "$SERIAL"
"$HAC" stats --socket "$SHARE/hac.sock" --vf 0 >"$LOGS/stats.txt" 2>&1 || true
"$HAC" ctl --socket "$SHARE/hac.sock" stats >"$LOGS/stats.json" 2>&1 || true

# 7. Verdicts: the guest's, then the host's view of the aborted epochs.
results=()
while IFS= read -r l; do results+=("$l"); done < <(grep -aE '^(PASS|FAIL) ' "$SERIAL" || true)
num() { sed -n "s/.*\"$2\":\\([0-9]*\\).*/\\1/p" "$LOGS/epochs-$1.json" 2>/dev/null || true; }
for p in commit abort; do
    rel=$(num $p released) dis=$(num $p discarded) wire=$(num $p wire_frames) ab=$(num $p aborts)
    if [ -z "$rel" ]; then
        results+=("FAIL epochs-$p: no summary from the epoch driver ($(tail -n1 "$LOGS/epochs-$p.err" 2>/dev/null || echo "not started"))")
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
# The guest's `ip -s link` of VF 0 (taken when its traffic is over) against the model's
# counters of that VF: mlx5e counts in its SQ/RQ completions, the model at its E-Switch, so
# they agree exactly. (igbvf's figures come from statistics registers its watchdog reads
# every 2 s: printed, not compared.)
guest_ip=$(grep -a -A1 -E '^hac-ip: +(RX|TX):' "$SERIAL" | awk '/^hac-ip: +RX:/ {r = 1; next} /^hac-ip: +TX:/ {t = 1; next} r == 1 {rb = $2; rp = $3; r = 0} t == 1 {tb = $2; tp = $3; t = 0} END {if (tp != "") print tp, tb, rp, rb}')
model_ip=$(python3 -c 'import json,sys; v=json.load(open(sys.argv[1]))["vfs"][0]; print(v["tx_packets"], v["tx_bytes"], v["rx_packets"], v["rx_bytes"])' "$LOGS/stats.json" 2>/dev/null || true)
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

passed=0
failed=0
for r in "${results[@]}"; do
    case "$r" in PASS*) passed=$((passed + 1)) ;; *) failed=$((failed + 1)) ;; esac
done
if [ "$failed" -gt 0 ]; then
    grep -aE '^(hac-guest|hac-kern|hac-ip|FAIL)' "$SERIAL" | sed 's/^/  | /' || true
    tail -n 30 "$SERIAL" | sed 's/^/  serial| /'
    tail -n 20 "$LOGS/serve.log" | sed 's/^/  serve| /'
fi
echo "--- vfio-user $FAMILY (${wall}s boot, QEMU $(chroot "$TREE" /usr/bin/qemu-system-x86_64 --version | head -n1 | awk '{print $4}'))"
grep -aE '^(hac-guest: rtt|HAC-VU-RTT)' "$SERIAL" || true
grep -aE '^hac-cmd: ' "$SERIAL" >"$LOGS/commands.txt" || true
grep -aE '^hac-ip: ' "$SERIAL" || true
for p in commit abort; do echo "epochs-$p: $(cat "$LOGS/epochs-$p.json" 2>/dev/null)"; done
printf '%s\n' "${results[@]}"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
