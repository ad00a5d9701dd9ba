# Helpers the harnesses that run QEMU from the Debian trixie tree of scripts/vfio-user/setup.sh
# share (scripts/vfio-user/run.sh, scripts/colo/run.sh). Sourced after ROOT, `die` and `log` are
# defined.

# vu_tree_init: CACHE (HAC_VU_CACHE: the tree), QCACHE (HAC_QEMU_CACHE: the guest kernel), TREE,
# TARGET and KVER; dies unless setup.sh made both.
vu_tree_init() {
    CACHE="${HAC_VU_CACHE:-$ROOT/target/vfio-user}"
    QCACHE="${HAC_QEMU_CACHE:-$ROOT/target/qemu}"
    TREE="$CACHE/trixie"
    TARGET=x86_64-unknown-linux-gnu
    [ -f "$CACHE/trixie.ok" ] || die "no QEMU tree in $TREE: run scripts/vfio-user/setup.sh first"
    [ -f "$QCACHE/kernel.ok" ] || die "no guest kernel in $QCACHE: run scripts/vfio-user/setup.sh first"
    KVER="$(cat "$QCACHE/kver")"
}

# vu_static_hac: HAC, the static hac binary: HAC_QEMU_HAC if set, else the workspace's, built
# (as scripts/qemu/run.sh builds it) unless HAC_QEMU_NO_BUILD=1 and it is there already.
vu_static_hac() {
    HAC="${HAC_QEMU_HAC:-$ROOT/target/$TARGET/release/hac}"
    if [ -z "${HAC_QEMU_HAC:-}" ] && { [ "${HAC_QEMU_NO_BUILD:-0}" != 1 ] || [ ! -x "$HAC" ]; }; then
        log "building static hac"
        (cd "$ROOT" && RUSTFLAGS="-C target-feature=+crt-static" CARGO_PROFILE_RELEASE_LTO=false \
            CARGO_PROFILE_RELEASE_CODEGEN_UNITS=16 CARGO_PROFILE_RELEASE_DEBUG=0 \
            cargo build --release --quiet -p hac-utility --target $TARGET) || die "cargo build failed"
    fi
    [ -x "$HAC" ] || die "$HAC is not an executable"
}

# vu_tree_mount SHARE: QEMU runs in the tree with chroot: binds /proc, /sys, /dev and SHARE (as
# /hac-share) into it, each appended to the caller's `mounted` array (its cleanup unmounts them
# in reverse); sets QEMU_VERSION.
vu_tree_mount() {
    local d
    for d in proc sys dev; do
        mount --bind "/$d" "$TREE/$d" && mounted+=("$TREE/$d")
    done
    mkdir -p "$TREE/hac-share"
    mount --bind "$1" "$TREE/hac-share" && mounted+=("$TREE/hac-share")
    QEMU_VERSION=$(chroot "$TREE" /usr/bin/qemu-system-x86_64 --version | head -n1 | awk '{print $4}')
}
