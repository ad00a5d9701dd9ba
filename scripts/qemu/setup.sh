#!/usr/bin/env bash
# Prepares the host for scripts/qemu/run.sh (idempotent; needs root for apt):
#   * adds Debian bookworm-backports to the apt sources if missing;
#   * installs qemu-system-x86 (from backports), busybox-static, iproute2, kmod, xz-utils;
#   * downloads the backports kernel .deb (linux-image-6.12.*-amd64), extracts it into the
#     cache directory, decompresses the modules the guest needs and runs depmod -b.
# Cache: $HAC_QEMU_CACHE (default: <repo>/target/qemu). See docs/qemu.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${HAC_QEMU_CACHE:-$ROOT/target/qemu}"
SUITE=bookworm-backports
# Guest modules (names as modprobe knows them); their dependencies come in with them
# (mlx5_core: mlxfw and pci-hyperv-intf, for scripts/vfio-user with HAC_VU_FAMILY=mlx5).
MODULES=(dca i2c-algo-bit igb igbvf irqbypass vfio vfio_iommu_type1 vfio-pci-core vfio-pci mlx5_core)

die() { echo "setup.sh: error: $*" >&2; exit 1; }
log() { echo "setup.sh: $*" >&2; }

SUDO=""
if [ "$(id -u)" -ne 0 ]; then
    command -v sudo >/dev/null || die "run as root (apt-get needs it) or install sudo"
    SUDO=sudo
fi

# 1. bookworm-backports in the apt sources.
if ! grep -rqs "$SUITE" /etc/apt/sources.list /etc/apt/sources.list.d/; then
    log "adding $SUITE to /etc/apt/sources.list.d/hac-backports.sources"
    $SUDO tee /etc/apt/sources.list.d/hac-backports.sources >/dev/null <<SRC
Types: deb
URIs: http://deb.debian.org/debian
Suites: $SUITE
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    NEED_UPDATE=1
fi
stamp=/var/lib/apt/lists
if [ "${NEED_UPDATE:-0}" = 1 ] || ! ls $stamp/*"${SUITE}"*Packages* >/dev/null 2>&1; then
    log "apt-get update"
    $SUDO apt-get update -qq || die "apt-get update failed"
fi

# 2. Host packages.
have_qemu() {
    command -v qemu-system-x86_64 >/dev/null &&
        qemu-system-x86_64 -device help 2>/dev/null | grep -q '"igb"'
}
if ! have_qemu; then
    log "installing qemu-system-x86 from $SUITE"
    $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq -t "$SUITE" \
        --no-install-recommends qemu-system-x86 ||
        die "cannot install qemu-system-x86 from $SUITE (need a QEMU with the igb device, >= 8.0)"
    have_qemu || die "qemu-system-x86_64 installed but has no 'igb' device"
fi
for p in busybox-static iproute2 kmod xz-utils cpio; do
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed"; then
        log "installing $p"
        $SUDO env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends "$p" ||
            die "cannot install package $p"
    fi
done
[ -x /bin/busybox ] || die "busybox-static did not provide /bin/busybox"

# 3. Guest kernel from backports, extracted (not installed).
mkdir -p "$CACHE"
if [ ! -f "$CACHE/kernel.ok" ]; then
    # The generic flavour (not -rt, -cloud, -dbg or -unsigned), newest first.
    pkg="$(apt-cache search --names-only '^linux-image-6\.12\.[0-9]+\+deb[0-9]+-amd64$' |
        awk '{print $1}' | sort -V | tail -n1)"
    [ -n "$pkg" ] || die "no linux-image-6.12.*-amd64 in the apt lists (is $SUITE enabled?)"
    log "downloading $pkg"
    rm -rf "$CACHE/deb" "$CACHE/kroot"
    mkdir -p "$CACHE/deb" "$CACHE/kroot"
    # Downloaded in a directory _apt can write to (no "unsandboxed" warning).
    dl="$(mktemp -d)"
    chmod 777 "$dl"
    (cd "$dl" && apt-get download -qq "$pkg") || die "apt-get download $pkg failed"
    mv "$dl"/*.deb "$CACHE/deb/" && rmdir "$dl"
    dpkg -x "$CACHE"/deb/*.deb "$CACHE/kroot" || die "dpkg -x failed"
    kver="$(ls "$CACHE/kroot/lib/modules" | head -n1)"
    [ -n "$kver" ] && [ -f "$CACHE/kroot/boot/vmlinuz-$kver" ] || die "unexpected layout in $pkg"
    log "decompressing modules of $kver"
    find "$CACHE/kroot/lib/modules/$kver" -name '*.ko.xz' -print0 | xargs -0 -r -P"$(nproc)" -n64 xz -d -f
    /sbin/depmod -b "$CACHE/kroot" "$kver" || die "depmod failed"
    echo "$kver" >"$CACHE/kver"
    cp "$CACHE/kroot/boot/vmlinuz-$kver" "$CACHE/vmlinuz"
    rm -rf "$CACHE/deb"
    touch "$CACHE/kernel.ok"
fi
kver="$(cat "$CACHE/kver")"
for m in "${MODULES[@]}"; do
    /sbin/modprobe -d "$CACHE/kroot" -S "$kver" --show-depends "$m" >/dev/null 2>&1 ||
        die "module $m missing from kernel $kver"
done
log "ok: $(qemu-system-x86_64 --version | head -n1); kernel $kver in $CACHE"
