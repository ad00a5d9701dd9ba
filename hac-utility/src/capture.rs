//! The report directory's wire capture: `wire.pcap` with a snap length, as `tcpdump -s` keeps.
//!
//! Each record keeps the first [`SnapPcap::snaplen`] bytes of the frame (the headers) and its
//! original length, so tshark decodes the headers and counts every frame, and a 2-second run at
//! 10 Gb/s writes a file a laptop's disk is happy with. `--full-frames` keeps whole frames.
//! Nanosecond timestamps in virtual time, link type Ethernet (the format of
//! [`igb_model::PcapSink`], which writes whole frames).

use std::io::Write;

use adapter_core::wire::{PCAP_LINKTYPE_ETHERNET, PCAP_MAGIC_NANOS};
use igb_model::{SimTime, WireSink};

/// Bytes of each frame the capture keeps by default: the Ethernet (and VLAN) header and the
/// IPv4 + TCP or IPv6 + UDP headers after it; the demo's frames carry their VF and sequence
/// number in bytes 14..19.
pub const DEFAULT_SNAPLEN: u32 = 64;
/// The snap length of a full-frame capture (every frame the model sends is shorter).
pub const FULL_SNAPLEN: u32 = 65_535;

/// A pcap writer that keeps the first `snaplen` bytes of each frame.
pub struct SnapPcap<W: Write + Send> {
    out: W,
    snaplen: u32,
}

impl<W: Write + Send> SnapPcap<W> {
    /// Writes the pcap global header (with `snaplen`) to `out`.
    pub fn new(mut out: W, snaplen: u32) -> std::io::Result<SnapPcap<W>> {
        let mut h = [0u8; 24];
        h[0..4].copy_from_slice(&PCAP_MAGIC_NANOS.to_le_bytes());
        h[4..6].copy_from_slice(&2u16.to_le_bytes());
        h[6..8].copy_from_slice(&4u16.to_le_bytes());
        // Bytes 8..16: time zone and accuracy, both 0.
        h[16..20].copy_from_slice(&snaplen.to_le_bytes());
        h[20..24].copy_from_slice(&PCAP_LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(SnapPcap { out, snaplen })
    }

    /// Bytes kept of each frame.
    pub fn snaplen(&self) -> u32 {
        self.snaplen
    }
}

impl<W: Write + Send> WireSink for SnapPcap<W> {
    fn on_frame(&mut self, at: SimTime, frame: &[u8]) -> std::io::Result<()> {
        let ns = at.as_nanos();
        let kept = frame.len().min(self.snaplen as usize);
        let mut rec = [0u8; 16];
        rec[0..4].copy_from_slice(&((ns / 1_000_000_000) as u32).to_le_bytes());
        rec[4..8].copy_from_slice(&((ns % 1_000_000_000) as u32).to_le_bytes());
        rec[8..12].copy_from_slice(&(kept as u32).to_le_bytes());
        rec[12..16].copy_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(&frame[..kept])
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn records_keep_the_snap_length_and_the_original_length() {
        let mut sink = SnapPcap::new(Vec::new(), 4).unwrap();
        sink.on_frame(SimTime::from_nanos(1_500_000_007), &[1, 2, 3, 4, 5, 6])
            .unwrap();
        sink.on_frame(SimTime::from_nanos(9), &[7, 8]).unwrap();
        let b = sink.out;
        let u32_at = |o: usize| u32::from_le_bytes(b[o..o + 4].try_into().unwrap());
        assert_eq!(u32_at(0), PCAP_MAGIC_NANOS);
        assert_eq!(u32_at(16), 4, "snaplen in the global header");
        assert_eq!(u32_at(20), PCAP_LINKTYPE_ETHERNET);
        // First record: 1 s + 500 000 007 ns, 4 of 6 bytes kept.
        assert_eq!((u32_at(24), u32_at(28)), (1, 500_000_007));
        assert_eq!((u32_at(32), u32_at(36)), (4, 6));
        assert_eq!(&b[40..44], &[1, 2, 3, 4]);
        // Second record: shorter than the snap length, kept whole.
        assert_eq!((u32_at(52), u32_at(56)), (2, 2));
        assert_eq!(&b[60..], &[7, 8]);
    }
}
