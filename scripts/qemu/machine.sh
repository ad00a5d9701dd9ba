# The referee's guest machine, shared by run.sh and soak.sh (sourced, not run).
#
#   qemu_machine CACHE ACCEL SMP INITRAMFS   sets QEMU_ARGV: QEMU's arguments but -append
#   qemu_cmdline CASE                        prints the guest kernel's command line
#
# no_timer_check: Linux's boot-time check that the timer interrupt works through the
# interrupt-remapped IO-APIC counts ticks during a TSC busy-wait; under TCG on a loaded host the
# vCPU thread loses the CPU, the ticks coalesce and the kernel panics ("timer doesn't work
# through Interrupt-remapped IO-APIC"). Linux skips the check itself on KVM and Hyper-V.

qemu_machine() {
    QEMU_ARGV=(
        -machine q35 -accel "$2" -cpu max -m 1G -smp "$3"
        -nodefaults -display none -serial stdio -no-reboot
        -device intel-iommu,intremap=on,caching-mode=on
        -device pcie-root-port,id=rp0,chassis=1,slot=1
        -netdev hubport,id=n0,hubid=0 -device igb,netdev=n0,bus=rp0
        -kernel "$1/vmlinuz" -initrd "$4"
    )
}

qemu_cmdline() {
    local c="console=ttyS0 panic=-1 no_timer_check intel_iommu=on iommu=pt loglevel=4 hac.case=$1"
    [ -n "${HAC_COUNT:-}" ] && c="$c hac.count=$HAC_COUNT"
    echo "$c"
}
