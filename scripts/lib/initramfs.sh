# Helpers the QEMU harnesses (scripts/qemu, scripts/vfio-user) share to build a guest's
# initramfs. Sourced; `die` is the caller's.

# initramfs_add_modules IR MODROOT KVER MODULE...: copies each module and everything it
# depends on (as modprobe resolves it in MODROOT) to its path under IR, with the index files,
# and runs depmod so busybox modprobe finds them in the guest.
initramfs_add_modules() {
    local ir=$1 modroot=$2 kver=$3 m ko rel
    shift 3
    for m in "$@"; do
        for ko in $(/sbin/modprobe -d "$modroot" -S "$kver" --show-depends "$m" | awk '$1 == "insmod" {print $2}'); do
            rel="${ko#"$modroot"}"
            mkdir -p "$ir$(dirname "$rel")"
            cp "$ko" "$ir$rel"
        done
    done
    cp "$modroot/lib/modules/$kver"/modules.{order,builtin,builtin.modinfo} "$ir/lib/modules/$kver/"
    /sbin/depmod -b "$ir" "$kver" || die "depmod on the initramfs failed"
}
