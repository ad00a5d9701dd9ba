#!/usr/bin/env bash
# Prepares the host for scripts/vfio-user/run.sh (idempotent; root for apt and chroot):
#   * the guest kernel and busybox of scripts/qemu/setup.sh (Debian 6.12 kernel, extracted);
#   * debootstrap, then a minimal Debian trixie tree in the cache with qemu-system-x86 from
#     trixie-backports (QEMU >= 10.1 has the vfio-user-pci client). Nothing from trixie is
#     installed on the host: QEMU runs with chroot.
# Cache: $HAC_VU_CACHE (default <repo>/target/vfio-user). See docs/vfio-user.md.
set -euo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)"
CACHE="${HAC_VU_CACHE:-$ROOT/target/vfio-user}"
TREE="$CACHE/trixie"
MIRROR="${HAC_VU_MIRROR:-http://deb.debian.org/debian}"

die() { echo "vfio-user/setup.sh: error: $*" >&2; exit 1; }
log() { echo "vfio-user/setup.sh: $*" >&2; }

[ "$(id -u)" = 0 ] || die "run as root (debootstrap and chroot need it)"

# 1. Guest kernel, modules, busybox (shared with the QEMU igb referee).
"$ROOT/scripts/qemu/setup.sh" || die "scripts/qemu/setup.sh failed"

# 2. debootstrap on the host.
if ! command -v debootstrap >/dev/null; then
    log "installing debootstrap"
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends debootstrap ||
        die "cannot install debootstrap"
fi

# Bind mounts the tree's apt and QEMU need; always undone on the way out.
mounted=()
cleanup() {
    for ((i = ${#mounted[@]} - 1; i >= 0; i--)); do umount -l "${mounted[$i]}" 2>/dev/null || true; done
}
trap cleanup EXIT

# 3. The trixie tree with QEMU from trixie-backports.
if [ ! -f "$CACHE/trixie.ok" ]; then
    rm -rf "$TREE"
    mkdir -p "$CACHE"
    log "debootstrap --variant=minbase trixie $TREE (about 20 s)"
    debootstrap --variant=minbase trixie "$TREE" "$MIRROR" >"$CACHE/debootstrap.log" 2>&1 ||
        { tail -n 20 "$CACHE/debootstrap.log" >&2; die "debootstrap trixie failed (log $CACHE/debootstrap.log)"; }
    cat >"$TREE/etc/apt/sources.list.d/backports.sources" <<SRC
Types: deb
URIs: $MIRROR
Suites: trixie-backports
Components: main
Signed-By: /usr/share/keyrings/debian-archive-keyring.gpg
SRC
    mount -t proc proc "$TREE/proc" && mounted+=("$TREE/proc")
    log "installing qemu-system-x86 from trixie-backports inside the tree"
    chroot "$TREE" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get update -qq ||
        die "apt-get update inside the trixie tree failed"
    chroot "$TREE" /usr/bin/env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq \
        --no-install-recommends -t trixie-backports qemu-system-x86 seabios >"$CACHE/apt.log" 2>&1 ||
        { tail -n 20 "$CACHE/apt.log" >&2; die "cannot install qemu-system-x86 from trixie-backports (log $CACHE/apt.log)"; }
    chroot "$TREE" apt-get clean
    cleanup
    mounted=()
    touch "$CACHE/trixie.ok"
fi

# 4. Check: QEMU >= 10.1 with the vfio-user-pci device.
ver="$(chroot "$TREE" /usr/bin/qemu-system-x86_64 --version | head -n1)" ||
    die "qemu-system-x86_64 does not run in $TREE (remove $CACHE/trixie.ok to rebuild)"
chroot "$TREE" /usr/bin/qemu-system-x86_64 -device help 2>/dev/null | grep -q '"vfio-user-pci"' ||
    die "$ver has no vfio-user-pci device (need QEMU >= 10.1 from trixie-backports)"
log "ok: $ver in $TREE"
