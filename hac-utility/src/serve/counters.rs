//! Counters for `stats`: 64-bit totals of the 32-bit statistics registers that wrap, the
//! counters the model and the vfio-user endpoints keep, as named [`Counter`]s, and the egress
//! stage's HAC timing (port counters and [`Latency`] histograms). The conversions
//! destructure their sources completely, so a counter added there does not compile until it is
//! exported here.

use std::time::Duration;

use adapter_core::egress::HacPortStats;
use adapter_core::latency::{LATENCY_BOUNDS_NS, LatencyHistogram};
use hac_control::{Counter, Latency, PortCounters, VfCounters};

/// How often the per-VF 32-bit statistics registers are read into their 64-bit totals: well
/// within the time the fastest one (octets at the model's top rate, 100 Gb/s) takes to wrap,
/// 2^32 B / 12.5 GB/s = 0.34 s.
pub(super) const COUNTER_SAMPLE: Duration = Duration::from_millis(50);

/// A 32-bit statistics register that wraps (PVFGPTC, PVFGOTC, …), accumulated into 64 bits:
/// each read adds the (wrapping) difference to the previous read, as Linux igbvf does. Correct
/// as long as it is read at least once per wrap period.
#[derive(Clone, Copy, Debug, Default)]
pub(super) struct Counter64 {
    last: u32,
    pub(super) total: u64,
}

impl Counter64 {
    /// Takes a new register value; returns the 64-bit total.
    pub(super) fn update(&mut self, raw: u32) -> u64 {
        self.total += u64::from(raw.wrapping_sub(self.last));
        self.last = raw;
        self.total
    }
}

/// The PF's per-VF good-frame registers, in [`pf_vf_stats`] order, accumulated.
pub(super) type PfVfTotals = [Counter64; 4];

/// PVFGPTC, PVFGOTC, PVFGPRC, PVFGORC of VF `v` (the PF's copies of the VF's good-frame
/// statistics: 32 bits, wrapping, not cleared by reads).
pub(super) fn pf_vf_stats(v: u8) -> [igb_hw::regs::PfReg; 4] {
    use igb_hw::regs::PfReg;
    [
        PfReg::PVFGPTC(v),
        PfReg::PVFGOTC(v),
        PfReg::PVFGPRC(v),
        PfReg::PVFGORC(v),
    ]
}

/// VF `vf`'s counters as far as the PF agent knows them (its MAC, its mailbox work); the
/// others 0.
pub(super) fn agent_view(vf: usize, info: Option<&hac_driver::pf::VfInfo>) -> VfCounters {
    VfCounters {
        vf,
        mac: info
            .and_then(|v| v.mac)
            .map(|m| m.to_string())
            .unwrap_or_default(),
        mbx_messages: info.map_or(0, |v| v.messages),
        mbx_nacks: info.map_or(0, |v| v.nacks),
        vf_resets: info.map_or(0, |v| v.resets),
        ..VfCounters::default()
    }
}

/// The port counters of a model: the wire's totals, the clock, the guard and the egress stage's
/// HAC timing.
pub(super) fn model_port(
    (wire_frames, wire_bytes, wire_busy_ns): (u64, u64, u64),
    device_time_ns: u64,
    guard_bytes: u32,
    hac: &HacPortStats,
) -> PortCounters {
    PortCounters {
        wire_frames,
        wire_bytes,
        wire_busy_ns,
        device_time_ns,
        guard_bytes,
        hac_commits_with_frames: hac.commits_with_frames,
        hac_drained_commits: hac.drained_commits,
        hac_last_commit_to_first_ns: hac.last_commit_to_first_ns,
        hac_max_commit_to_first_ns: hac.max_commit_to_first_ns,
        hac_last_drain_ns: hac.last_drain_ns,
        hac_max_drain_ns: hac.max_drain_ns,
    }
}

/// The egress stage's latency histograms: commit → first frame on the wire, and the delay a
/// frame of each class (checkpoint, plain) waited between its TX engine and the wire.
pub(super) fn latency(hac: &HacPortStats) -> Vec<Latency> {
    let one = |name: &str, help: &str, class: &str, h: &LatencyHistogram| Latency {
        name: name.to_string(),
        help: help.to_string(),
        class: class.to_string(),
        le_ns: LATENCY_BOUNDS_NS.to_vec(),
        buckets: h.buckets.to_vec(),
        count: h.count,
        sum_ns: h.sum_ns,
    };
    let delay = "Time a frame waited between its TX engine and its start on the wire (a checkpoint frame: held until its commit, then queued).";
    vec![
        one(
            "commit_to_first_frame",
            "Time from a commit that released frames to the first of them starting on the wire.",
            "",
            &hac.commit_to_first,
        ),
        one("added_delay", delay, "checkpoint", &hac.delay_checkpoint),
        one("added_delay", delay, "plain", &hac.delay_plain),
    ]
}

/// `(name, help, value)` rows as named counters.
pub(super) fn named(rows: &[(&str, &str, u64)]) -> Vec<Counter> {
    rows.iter()
        .map(|&(name, help, value)| Counter {
            name: name.to_string(),
            help: help.to_string(),
            value,
        })
        .collect()
}

/// What the model counts for the whole adapter (`igb_model::ModelCounters`): accesses and frames
/// it refused, dropped or faulted on.
pub(super) fn model_counters(c: &igb_model::ModelCounters) -> Vec<Counter> {
    let igb_model::ModelCounters {
        unknown_reads,
        unknown_writes,
        misaligned_accesses,
        out_of_range_accesses,
        read_only_writes,
        disabled_function_accesses,
        dma_faults,
        dma_blocked_no_bus_master,
        ring_length_unaligned,
        ring_base_unaligned,
        tail_out_of_range,
        tx_ring_empty_length,
        tx_zero_length_descriptors,
        tx_oversize_frames,
        tx_runt_frames,
        tx_bad_descriptors,
        tx_too_many_fragments,
        tx_offload_errors,
        tx_spoofed_frames,
        tx_local_drops,
        tx_run_budget_stops,
        tx_rate_limited_stops,
        tx_backpressure_stalls,
        rx_queue_disabled_drops,
        rx_no_descriptor_drops,
        rx_oversize_drops,
        rx_runt_frames,
        rx_no_pool_drops,
        rx_unsupported_desctype,
        mailbox_writes_while_locked,
        interrupts_without_msix,
        egress_flushed_on_reset,
        sink_errors,
    } = *c;
    named(&[
        (
            "unknown_reads",
            "Register reads at offsets no register decodes.",
            unknown_reads,
        ),
        (
            "unknown_writes",
            "Register writes at offsets no register decodes.",
            unknown_writes,
        ),
        (
            "misaligned_accesses",
            "BAR or configuration accesses of a wrong size or alignment.",
            misaligned_accesses,
        ),
        (
            "out_of_range_accesses",
            "Accesses beyond the end of a BAR or of the configuration space.",
            out_of_range_accesses,
        ),
        (
            "read_only_writes",
            "Writes to read-only registers (ignored).",
            read_only_writes,
        ),
        (
            "disabled_function_accesses",
            "Accesses to a disabled VF or with memory space disabled (master abort).",
            disabled_function_accesses,
        ),
        (
            "dma_faults",
            "DMA accesses outside the function's IOMMU mappings (the queue is stopped).",
            dma_faults,
        ),
        (
            "dma_blocked_no_bus_master",
            "Queue work skipped because bus mastering is disabled.",
            dma_blocked_no_bus_master,
        ),
        (
            "ring_length_unaligned",
            "TDLEN/RDLEN writes with bits 6:0 set (ignored).",
            ring_length_unaligned,
        ),
        (
            "ring_base_unaligned",
            "TDBAL/RDBAL writes with bits 6:0 set (ignored).",
            ring_base_unaligned,
        ),
        (
            "tail_out_of_range",
            "TDT/RDT written at or beyond the ring size.",
            tail_out_of_range,
        ),
        (
            "tx_ring_empty_length",
            "TX queue kicked with TDLEN = 0.",
            tx_ring_empty_length,
        ),
        (
            "tx_zero_length_descriptors",
            "TX data descriptors with DTALEN = 0.",
            tx_zero_length_descriptors,
        ),
        (
            "tx_oversize_frames",
            "TX frames above the pool's maximum frame size (dropped).",
            tx_oversize_frames,
        ),
        (
            "tx_runt_frames",
            "TX frames shorter than an Ethernet header (dropped).",
            tx_runt_frames,
        ),
        (
            "tx_bad_descriptors",
            "TX descriptors of a legacy or reserved type (packet dropped).",
            tx_bad_descriptors,
        ),
        (
            "tx_too_many_fragments",
            "TX packets gathered from more than 64 buffers (dropped).",
            tx_too_many_fragments,
        ),
        (
            "tx_offload_errors",
            "TX packets whose offload request could not be applied.",
            tx_offload_errors,
        ),
        (
            "tx_spoofed_frames",
            "TX frames dropped by MAC or VLAN anti-spoofing.",
            tx_spoofed_frames,
        ),
        (
            "tx_local_drops",
            "Unicast TX frames for a local address no local pool could take (dropped).",
            tx_local_drops,
        ),
        (
            "tx_run_budget_stops",
            "Times a TX run stopped on its budget with descriptors left.",
            tx_run_budget_stops,
        ),
        (
            "tx_rate_limited_stops",
            "Times a TX queue waited for its rate limiter (RTTBCNRC) before a packet.",
            tx_rate_limited_stops,
        ),
        (
            "tx_backpressure_stalls",
            "Times a TX queue stopped because the egress stage was full.",
            tx_backpressure_stalls,
        ),
        (
            "rx_queue_disabled_drops",
            "Frames received while the target queue or RCTL was disabled.",
            rx_queue_disabled_drops,
        ),
        (
            "rx_no_descriptor_drops",
            "Frames dropped for too few free RX descriptors.",
            rx_no_descriptor_drops,
        ),
        (
            "rx_oversize_drops",
            "Frames larger than the target pool's maximum (dropped).",
            rx_oversize_drops,
        ),
        (
            "rx_runt_frames",
            "Frames from the wire shorter than an Ethernet header.",
            rx_runt_frames,
        ),
        (
            "rx_no_pool_drops",
            "Frames no pool accepted.",
            rx_no_pool_drops,
        ),
        (
            "rx_unsupported_desctype",
            "Frames dropped for an RX descriptor format the model lacks.",
            rx_unsupported_desctype,
        ),
        (
            "mailbox_writes_while_locked",
            "Mailbox memory writes refused because the other side held the lock.",
            mailbox_writes_while_locked,
        ),
        (
            "interrupts_without_msix",
            "Interrupts not delivered because MSI-X was disabled.",
            interrupts_without_msix,
        ),
        (
            "egress_flushed_on_reset",
            "Frames the egress stage dropped on a device reset.",
            egress_flushed_on_reset,
        ),
        (
            "sink_errors",
            "Wire sink write errors (e.g. pcap file I/O).",
            sink_errors,
        ),
    ])
}

/// What a VF's vfio-user front end has seen from its VM (the server's session counters and
/// the endpoint's own).
pub(super) fn endpoint_counters(c: &crate::vfio_user::VfioUserCounters) -> Vec<Counter> {
    let hac_vfio_user::Counters {
        messages,
        errors,
        region_reads,
        region_writes,
        dma_maps,
        dma_maps_without_fd,
        dma_maps_refused,
        dma_unmaps,
        irq_sets,
        irq_fds_refused,
        resets,
    } = c.session;
    let crate::vfio_user::endpoint::EndpointCounters { misaligned } = c.endpoint;
    let mut list = named(&[
        ("messages", "vfio-user messages handled.", messages),
        (
            "errors",
            "vfio-user messages answered with an error.",
            errors,
        ),
        ("region_reads", "Region reads.", region_reads),
        ("region_writes", "Region writes.", region_writes),
        (
            "misaligned",
            "Region accesses refused for size or alignment.",
            misaligned,
        ),
        (
            "dma_maps",
            "DMA windows mapped with a file descriptor.",
            dma_maps,
        ),
        (
            "dma_maps_without_fd",
            "DMA windows announced without one (left unmapped).",
            dma_maps_without_fd,
        ),
        (
            "dma_maps_refused",
            "DMA windows refused (bad file, past its end, over the limits).",
            dma_maps_refused,
        ),
        ("dma_unmaps", "DMA windows removed.", dma_unmaps),
        ("irq_sets", "SET_IRQS handled.", irq_sets),
        (
            "irq_fds_refused",
            "SET_IRQS refused because a descriptor was not an eventfd.",
            irq_fds_refused,
        ),
        ("resets", "Device resets.", resets),
    ]);
    list.extend(client_dma_counters(&c.client_dma));
    list
}

/// A vfio-user VF's writes routed through its client (`--vfio-user-dma-writes client`; all
/// zero in direct mode). Either family.
pub(super) fn client_dma_counters(c: &hac_vfio_user::ClientDmaCounters) -> Vec<Counter> {
    let hac_vfio_user::ClientDmaCounters {
        dma_writes_queued,
        dma_writes_sent,
        dma_write_bytes,
        dma_writes_acked,
        dma_write_error_replies,
        dma_write_unknown_replies,
        dma_write_malformed_replies,
        irqs_deferred,
        irqs_fired,
        irqs_merged,
        irqs_deferred_lost,
        dma_write_overflows,
        dma_writes_dropped,
    } = *c;
    named(&[
        (
            "dma_writes_queued",
            "Device writes to guest RAM queued for the client (client mode).",
            dma_writes_queued,
        ),
        (
            "dma_writes_sent",
            "DMA_WRITE requests sent to the client.",
            dma_writes_sent,
        ),
        (
            "dma_write_bytes",
            "Data bytes in DMA_WRITE requests.",
            dma_write_bytes,
        ),
        (
            "dma_writes_acked",
            "DMA_WRITE requests the client acknowledged.",
            dma_writes_acked,
        ),
        (
            "dma_write_error_replies",
            "DMA_WRITE requests the client refused (error reply).",
            dma_write_error_replies,
        ),
        (
            "dma_write_unknown_replies",
            "Replies matching no DMA_WRITE in flight.",
            dma_write_unknown_replies,
        ),
        (
            "dma_write_malformed_replies",
            "Replies to a DMA_WRITE with another command or too short.",
            dma_write_malformed_replies,
        ),
        (
            "irqs_deferred",
            "Interrupts held until the writes before them were acknowledged.",
            irqs_deferred,
        ),
        (
            "irqs_fired",
            "Held interrupts signalled once the writes before them were acknowledged.",
            irqs_fired,
        ),
        (
            "irqs_merged",
            "Held interrupts merged into the one before them (same eventfd, same writes).",
            irqs_merged,
        ),
        (
            "irqs_deferred_lost",
            "Held interrupts their eventfd did not take.",
            irqs_deferred_lost,
        ),
        (
            "dma_write_overflows",
            "Times the client's write queue overflowed (connection ended, fail closed).",
            dma_write_overflows,
        ),
        (
            "dma_writes_dropped",
            "Writes and interrupts refused after an overflow or left at a disconnect.",
            dma_writes_dropped,
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wrapping_32_bit_register_accumulates_into_64_bits() {
        let mut c = Counter64::default();
        assert_eq!(c.update(1000), 1000);
        assert_eq!(c.update(u32::MAX - 5), u64::from(u32::MAX) - 5);
        // Wraps: 10 more than the last read is 16 bytes on.
        assert_eq!(c.update(10), u64::from(u32::MAX) + 11);
        // Three more wraps, read once per period.
        for _ in 0..3 {
            c.update(u32::MAX / 2);
            c.update(10);
        }
        assert_eq!(c.total, 4 * (1u64 << 32) + 10);
        assert_eq!(c.update(10), 4 * (1u64 << 32) + 10, "no change, no count");
    }

    #[test]
    fn every_model_and_endpoint_counter_is_named_once_with_help() {
        let model = igb_model::ModelCounters::default();
        let endpoint = crate::vfio_user::VfioUserCounters::default();
        for (list, debug) in [
            (model_counters(&model), format!("{model:?}")),
            (endpoint_counters(&endpoint), format!("{endpoint:?}")),
        ] {
            let mut names: Vec<&str> = list.iter().map(|c| c.name.as_str()).collect();
            assert!(list.iter().all(|c| !c.help.is_empty()));
            // Each is exported under its field's name.
            for name in &names {
                assert!(debug.contains(&format!(" {name}: ")), "{name} in {debug}");
            }
            names.sort_unstable();
            names.dedup();
            assert_eq!(names.len(), list.len());
        }
    }
}
