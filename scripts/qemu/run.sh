#!/usr/bin/env bash
# End-to-end test of hac-driver on a real Linux vfio-pci stack: boots a Debian kernel under
# QEMU (TCG) with an emulated Intel 82576 (igb) behind a vIOMMU, and runs the guest test cases
# (scripts/qemu/guest-tests.sh), one boot per case. Run scripts/qemu/setup.sh first.
#
#   scripts/qemu/run.sh [CASE...]     # default: all nine cases (docs/qemu.md); "debug" traces
#
# Environment:
#   HAC_QEMU_CACHE          setup.sh's cache (default <repo>/target/qemu)
#   HAC_QEMU_TIMEOUT        seconds per boot (default 180)
#   HAC_QEMU_BOOT_TIMEOUT   seconds until the case must have started (default 45; one retry)
#   HAC_QEMU_SMP            vCPUs (default 2)
#   HAC_QEMU_ACCEL          QEMU's -accel (default tcg,thread=single: both vCPUs on one thread)
#   HAC_QEMU_NO_BUILD=1     reuse the static hac and hac-lab binaries
#   HAC_QEMU_HAC=path       use that static hac binary (e.g. built from a patched tree)
#   HAC_QEMU_LAB=path       use that static hac-lab binary (default: hac-lab beside HAC_QEMU_HAC)
#   HAC_COUNT               frames in vf-traffic / vf-ping (default 16)
#   HAC_QEMU_EXTRA_BIN      static tools copied to the guest's /bin (for the debug case)
# Serial logs: $HAC_QEMU_CACHE/logs/<case>.log, classified by verdict.sh. A case is booted once
# more (once) only when its guest never reached /init, its kernel stalled before our code ran, or
# its kernel reported a timer not delivered on an idle vCPU (a QEMU TCG fault, at any time); any
# other failure after the guest's "HAC-CASE-RUN" line is never retried. See docs/qemu.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
HERE="$ROOT/scripts/qemu"
CACHE="${HAC_QEMU_CACHE:-$ROOT/target/qemu}"
TIMEOUT="${HAC_QEMU_TIMEOUT:-180}"
BOOT_TIMEOUT="${HAC_QEMU_BOOT_TIMEOUT:-45}"
SMP="${HAC_QEMU_SMP:-2}"
# One host thread runs both vCPUs in turn (docs/qemu.md, "Flakiness"): with a thread per vCPU
# (QEMU 10.0's default for x86 TCG), a vCPU sometimes halted with its timer interrupt left in
# service in its local APIC, or QEMU aborted in iotlb_to_section, in ~1 boot in 8 under load.
ACCEL="${HAC_QEMU_ACCEL:-tcg,thread=single}"
TARGET=x86_64-unknown-linux-gnu
CASES=("$@")
[ ${#CASES[@]} -gt 0 ] || CASES=(vf-probe-pf-mac vf-probe-pf-mac-trusted vf-probe-nack vf-traffic vf-ping pf-switch serve-pf vf-hac vf-smoltcp)
MODULES=(dca i2c-algo-bit igb igbvf irqbypass vfio vfio_iommu_type1 vfio-pci-core vfio-pci)

die() { echo "run.sh: error: $*" >&2; exit 2; }
# shellcheck source=../lib/initramfs.sh
. "$ROOT/scripts/lib/initramfs.sh"
# shellcheck source=machine.sh
. "$HERE/machine.sh"
log() { echo "run.sh: $*" >&2; }

[ -f "$CACHE/kernel.ok" ] || die "no guest kernel in $CACHE: run scripts/qemu/setup.sh first"
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 missing: run scripts/qemu/setup.sh"
[ -x /bin/busybox ] || die "/bin/busybox missing: run scripts/qemu/setup.sh"
KVER="$(cat "$CACHE/kver")"

# 1. The static binaries: hac (the product: vf-probe, serve, ctl, stats) and hac-lab (the
# referee's tools: vf-traffic, pf-switch, vf-hac-check, vf-smoltcp, vf-mailbox).
HAC="${HAC_QEMU_HAC:-$ROOT/target/$TARGET/release/hac}"
LAB="${HAC_QEMU_LAB:-$(dirname "$HAC")/hac-lab}"
if [ -n "${HAC_QEMU_HAC:-}" ]; then
    [ -x "$HAC" ] || die "HAC_QEMU_HAC=$HAC is not an executable"
    [ -x "$LAB" ] || die "$LAB is not an executable (set HAC_QEMU_LAB to the static hac-lab)"
elif [ "${HAC_QEMU_NO_BUILD:-0}" != 1 ] || [ ! -x "$HAC" ] || [ ! -x "$LAB" ]; then
    log "building static hac and hac-lab"
    # Release code without the profile's LTO and debug info: the guest needs speed, not the last
    # few percent, and CI builds this from scratch (a separate target directory).
    (cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_LTO=false \
        CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=0 \
        cargo build --release --quiet -p hac-utility -p hac-lab --target $TARGET) ||
        die "cargo build failed"
fi
[ -x "$LAB" ] || die "$LAB is not an executable (set HAC_QEMU_LAB to the static hac-lab)"
for bin in "$HAC" "$LAB"; do
    file_out="$(file -b "$bin" 2>/dev/null || true)"
    case "$file_out" in *dynamically*) die "$bin is dynamically linked" ;; esac
done

# 2. The initramfs.
IR="$CACHE/initramfs"
rm -rf "$IR"
mkdir -p "$IR"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,hac,lib/modules/"$KVER"}
cp /bin/busybox "$IR/bin/busybox"
for a in $(/bin/busybox --list); do
    # iproute2's ip (below) replaces busybox ip, which cannot set VF MACs.
    case "$a" in busybox | ip) continue ;; esac
    ln -sf busybox "$IR/bin/$a"
done
initramfs_add_iproute2 "$IR"
# Modules and their dependencies, at their paths, with a modules.dep for busybox modprobe.
initramfs_add_modules "$IR" "$CACHE/kroot" "$KVER" "${MODULES[@]}"
cp "$HAC" "$IR/bin/hac"
cp "$LAB" "$IR/bin/hac-lab"
# Extra static tools for debugging (HAC_QEMU_EXTRA_BIN="file ..." → /bin).
for f in ${HAC_QEMU_EXTRA_BIN:-}; do cp "$f" "$IR/bin/"; done
cp "$HERE/init" "$IR/init"
cp "$HERE/guest-tests.sh" "$IR/hac/guest-tests.sh"
chmod +x "$IR/init" "$IR/hac/guest-tests.sh"
(cd "$IR" && find . -print0 | cpio --null -o -H newc --quiet | gzip -1) >"$CACHE/initramfs.cpio.gz"
log "initramfs: $(du -h "$CACHE/initramfs.cpio.gz" | cut -f1), kernel $KVER"

# 3. One boot per case (the machine and command line: machine.sh).
qemu_machine "$CACHE" "$ACCEL" "$SMP" "$CACHE/initramfs.cpio.gz"
mkdir -p "$CACHE/logs"
passed=0
failed=0
summary=()
for c in "${CASES[@]}"; do
    logf="$CACHE/logs/$c.log"
    cmdline=$(qemu_cmdline "$c")
    attempt=1
    retried=""
    while :; do
        log "case $c: booting (attempt $attempt, timeout ${TIMEOUT}s, log $logf)"
        t0=$(date +%s.%N)
        # stdin is /dev/null; the serial console goes to a file (CRs stripped afterwards).
        : >"$logf.raw"
        timeout -k 5 "$TIMEOUT" qemu-system-x86_64 "${QEMU_ARGV[@]}" \
            -append "$cmdline" </dev/null >"$logf.raw" 2>&1 &
        qpid=$!
        # Watch the console: stop the guest (timeout passes the signal on) if it has not reached
        # /init within BOOT_TIMEOUT seconds, or if its kernel reports a stall before our code
        # ran (verdict.sh "guest-stall"); either is retried once below.
        started=0
        ran=0
        stall_seen=0
        lost_seen=0
        ended=0
        while kill -0 $qpid 2>/dev/null; do
            if [ $started = 0 ]; then
                if grep -aq "^HAC-QEMU-BEGIN" "$logf.raw" 2>/dev/null; then
                    started=1
                elif [ "$(awk -v a="$t0" -v b="$(date +%s.%N)" -v m="$BOOT_TIMEOUT" 'BEGIN {print (b - a > m)}')" = 1 ]; then
                    kill -TERM $qpid 2>/dev/null || true
                    break
                fi
            elif [ $ran = 0 ]; then
                if grep -aq "HAC-CASE-RUN" "$logf.raw" 2>/dev/null; then
                    ran=1
                elif [ $stall_seen -gt 0 ]; then
                    # The rest of the kernel's report (its backtraces) first, ~3 s.
                    stall_seen=$((stall_seen + 1))
                    if [ $stall_seen -gt 6 ]; then
                        kill -TERM $qpid 2>/dev/null || true
                        break
                    fi
                elif [ "$("$HERE/verdict.sh" "$logf.raw" "$c" | cut -d' ' -f1)" = guest-stall ]; then
                    stall_seen=1
                fi
            elif [ $lost_seen -gt 0 ]; then
                # A timer lost on an idle vCPU after our code started (verdict.sh
                # "guest-timer-lost"): the rest of the report first, ~3 s, then stop; the case
                # is retried once below.
                lost_seen=$((lost_seen + 1))
                if [ $lost_seen -gt 6 ]; then
                    kill -TERM $qpid 2>/dev/null || true
                    break
                fi
            elif grep -aq "Possible timer handling issue" "$logf.raw" 2>/dev/null &&
                [ "$("$HERE/verdict.sh" "$logf.raw" "$c" | cut -d' ' -f1)" = guest-timer-lost ]; then
                lost_seen=1
            elif [ $ended -gt 0 ] || grep -aq "^HAC-QEMU-END" "$logf.raw" 2>/dev/null; then
                # The case is over; a guest that has not powered off 15 s later (a stalled vCPU
                # at the end, seen once) is stopped instead of running into the timeout.
                ended=$((ended + 1))
                if [ $ended -gt 30 ]; then
                    kill -TERM $qpid 2>/dev/null || true
                    break
                fi
            fi
            sleep 0.5
        done
        set +e
        wait $qpid
        qrc=$?
        set -e
        tr -d '\r' <"$logf.raw" >"$logf"
        rm -f "$logf.raw"
        t1=$(date +%s.%N)
        wall=$(awk -v a="$t0" -v b="$t1" 'BEGIN {printf "%.1f", b - a}')
        verdict=$("$HERE/verdict.sh" "$logf" "$c")
        kind=${verdict%% *}
        reason=${verdict#"$kind"}
        reason=${reason# }
        if [ $attempt -lt 2 ] && { [ "$kind" = no-boot ] || [ "$kind" = guest-stall ] ||
            [ "$kind" = guest-timer-lost ]; }; then
            # Only the guest platform is at fault here: our code had not run, or a vCPU sat
            # idle with its timer not delivered. Never for "fail".
            case $kind in
            no-boot) retried="retried: $reason within ${BOOT_TIMEOUT}s" ;;
            guest-timer-lost) retried="retried: $reason" ;;
            *) retried="retried: $reason; our code had not run" ;;
            esac
            echo "RETRY $c: $retried (${wall}s, log $logf.stalled); booting once more"
            cp "$logf" "$logf.stalled"
            attempt=$((attempt + 1))
            continue
        fi
        break
    done
    # The case's verdict lines, then the classification of the log.
    grep -aE "^(PASS|FAIL) " "$logf" || true
    note="${retried:+, attempt 2, $retried}"
    if [ "$kind" = pass ]; then
        passed=$((passed + 1))
        summary+=("PASS $c (${wall}s$note)")
    else
        failed=$((failed + 1))
        case $kind in
        no-boot) why="guest did not start the case within ${BOOT_TIMEOUT}s ($attempt attempts; qemu exit $qrc)" ;;
        guest-stall | guest-timer-lost) why="$reason ($attempt attempts; qemu exit $qrc)" ;;
        *) why="$reason" ;;
        esac
        if grep -aq "^HAC-QEMU-END $c" "$logf"; then
            grep -aE "^(hac-out|hac-guest|hac-dmesg|hac-ip): " "$logf" | sed 's/^/  | /'
        else
            [ "$kind" = fail ] && why="$why (qemu exit $qrc; 124 = timeout)"
            echo "FAIL $c: $why"
            tail -n 30 "$logf" | sed 's/^/  | /'
        fi
        summary+=("FAIL $c (${wall}s$note): $why")
    fi
    log "case $c: ${wall}s wall"
done
echo "---"
printf '%s\n' "${summary[@]}"
echo "$passed passed, $failed failed"
[ "$failed" = 0 ]
