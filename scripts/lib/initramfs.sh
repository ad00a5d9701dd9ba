# Helpers the QEMU harnesses (scripts/qemu, scripts/vfio-user, scripts/colo) share to build a guest's
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

# initramfs_add_iproute2 IR: the host's iproute2 `ip` at IR/sbin/ip with its shared libraries
# (busybox ip can neither set VF MACs nor print -s statistics); busybox's /bin/ip is removed.
initramfs_add_iproute2() {
    local ir=$1 ip_bin lib
    ip_bin="$(readlink -f "$(command -v ip || echo /usr/sbin/ip)")"
    "$ip_bin" -V 2>&1 | grep -q iproute2 || die "$ip_bin is not iproute2's ip (install iproute2)"
    rm -f "$ir/bin/ip"
    cp "$ip_bin" "$ir/sbin/ip"
    for lib in $(ldd "$ip_bin" | awk '$2 == "=>" {print $3} $1 ~ /^\// {print $1}'); do
        [ -f "$lib" ] || continue
        mkdir -p "$ir$(dirname "$lib")"
        cp -L "$lib" "$ir$lib"
    done
}

# initramfs_base IR KVER: the skeleton of a guest's root in IR (a fresh directory): the usual
# directories, busybox at IR/bin/busybox and a link for each of its applets.
initramfs_base() {
    local ir=$1 kver=$2 a
    mkdir -p "$ir"/{bin,sbin,usr/bin,usr/sbin,proc,sys,dev,tmp,run,etc,hac,lib/modules/"$kver"}
    cp /bin/busybox "$ir/bin/busybox"
    for a in $(/bin/busybox --list); do
        [ "$a" = busybox ] || ln -sf busybox "$ir/bin/$a"
    done
}
