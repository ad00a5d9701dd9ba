//! Named counters for everything the model refuses, drops or faults on.
//!
//! Guest input never panics the model: each malformed case takes the hardware path and bumps one
//! of these counters (in addition to any architectural statistic register), so tests can assert
//! exactly which path was taken.

/// Model-level counters (not visible to software through registers).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ModelCounters {
    /// Register reads at offsets no register decodes.
    pub unknown_reads: u64,
    /// Register writes at offsets no register decodes.
    pub unknown_writes: u64,
    /// BAR accesses that were not 4 or 8 bytes at a 4-byte aligned offset, and configuration
    /// accesses that were not naturally aligned 1-, 2- or 4-byte accesses.
    pub misaligned_accesses: u64,
    /// Accesses beyond the end of a BAR or of the configuration space.
    pub out_of_range_accesses: u64,
    /// Writes to read-only registers (ignored).
    pub read_only_writes: u64,
    /// Accesses to a VF that is not enabled, or with memory space disabled (master abort:
    /// reads return all ones).
    pub disabled_function_accesses: u64,
    /// DMA accesses outside the function's IOMMU mappings (the queue is stopped).
    pub dma_faults: u64,
    /// Queue work skipped because the owning function has bus mastering disabled.
    pub dma_blocked_no_bus_master: u64,
    /// TDLEN/RDLEN writes with bits 6:0 set (ignored by the hardware: rings are multiples of
    /// 128 bytes).
    pub ring_length_unaligned: u64,
    /// TDBAL/RDBAL writes with bits 6:0 set (ignored: rings are 128-byte aligned).
    pub ring_base_unaligned: u64,
    /// TDT/RDT written at or beyond the ring size (the queue does not run until it is fixed).
    pub tail_out_of_range: u64,
    /// TX queue kicked with TDLEN = 0.
    pub tx_ring_empty_length: u64,
    /// TX data descriptors with DTALEN = 0 (consumed, no bytes).
    pub tx_zero_length_descriptors: u64,
    /// TX frames above the pool's negotiated maximum frame size (dropped).
    pub tx_oversize_frames: u64,
    /// TX frames shorter than an Ethernet header (dropped).
    pub tx_runt_frames: u64,
    /// TX descriptors with DEXT clear (legacy) or a reserved DTYP (consumed; the packet is
    /// dropped).
    pub tx_bad_descriptors: u64,
    /// TX packets gathered from more than 64 buffers (dropped).
    pub tx_too_many_fragments: u64,
    /// TX packets whose offload request could not be applied: a failed checksum request is sent
    /// without the checksum, a failed TSO request is dropped.
    pub tx_offload_errors: u64,
    /// TX frames dropped by MAC or VLAN anti-spoofing.
    pub tx_spoofed_frames: u64,
    /// Unicast TX frames whose destination matched a local address exactly but that no local
    /// pool could take (VFRE clear, VLAN filter, the sender's own address without LLE): not sent
    /// to the wire (datasheet 7.10.3.6), dropped.
    pub tx_local_drops: u64,
    /// Times a TX run stopped on its budget (`TX_RUN_DESCRIPTORS` descriptors or `TX_RUN_BYTES`
    /// buffer bytes) with descriptors left; the queue continues as device time advances.
    pub tx_run_budget_stops: u64,
    /// Times a TX queue waited for its rate limiter (RTTBCNRC.RS_ENA) before a packet; it
    /// continues when device time reaches the limiter's next start.
    pub tx_rate_limited_stops: u64,
    /// Times a TX queue stopped fetching because the egress stage was full for its pool.
    pub tx_backpressure_stalls: u64,
    /// Frames received while the target queue or RCTL was disabled.
    pub rx_queue_disabled_drops: u64,
    /// Frames dropped because the ring had too few free descriptors (also counted in RQDPC).
    pub rx_no_descriptor_drops: u64,
    /// Frames larger than the target pool's maximum (dropped).
    pub rx_oversize_drops: u64,
    /// Frames from the wire shorter than an Ethernet header.
    pub rx_runt_frames: u64,
    /// Frames no pool accepted.
    pub rx_no_pool_drops: u64,
    /// Frames dropped because SRRCTL.DESCTYPE selects a format the model does not implement.
    pub rx_unsupported_desctype: u64,
    /// Mailbox memory writes refused because the other side held the lock.
    pub mailbox_writes_while_locked: u64,
    /// Interrupts not delivered because MSI-X was disabled for the function.
    pub interrupts_without_msix: u64,
    /// Frames the egress stage dropped on a device reset.
    pub egress_flushed_on_reset: u64,
    /// Wire sink write errors (e.g. pcap file I/O).
    pub sink_errors: u64,
}

/// Where the internal switch sent the frames of one pool that did not go to the egress stage
/// (simulator counters, not registers; [`crate::Nic::switch_stats`]). Every frame a VF sends
/// (VFGPTC) goes to the egress stage (then the wire, HACDISC or HACBUFF), or is one of these.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct SwitchPoolStats {
    /// Unicast frames to a local address, delivered by loopback only (not to the wire).
    pub looped_only: u64,
    /// Unicast frames to a local address that no local pool could take: dropped (also counted
    /// device-wide in `ModelCounters::tx_local_drops`).
    pub local_drops: u64,
}
