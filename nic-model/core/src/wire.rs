//! The wire port: frames leave in virtual time at line rate with real Ethernet framing overhead,
//! so drain times are physical; sinks observe every frame that leaves.

use std::io::Write;

use crate::clock::SimTime;

/// Preamble (7) + start-of-frame delimiter (1).
pub const PREAMBLE_BYTES: u64 = 8;
/// Minimum inter-frame gap.
pub const IFG_BYTES: u64 = 12;
/// Frame check sequence.
pub const FCS_BYTES: u64 = 4;
/// Smallest frame on the wire including FCS.
pub const MIN_WIRE_FRAME: u64 = 64;

/// Port speed in bits per second.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct LineRate(u64);

impl LineRate {
    /// 1 Gb/s (the 82576's own speed).
    pub const G1: LineRate = LineRate(1_000_000_000);
    /// 10 Gb/s (the model's default).
    pub const G10: LineRate = LineRate(10_000_000_000);
    /// 25 Gb/s.
    pub const G25: LineRate = LineRate(25_000_000_000);
    /// 100 Gb/s.
    pub const G100: LineRate = LineRate(100_000_000_000);

    /// A custom rate; `None` for zero.
    pub const fn from_bits_per_sec(bps: u64) -> Option<LineRate> {
        if bps == 0 { None } else { Some(LineRate(bps)) }
    }

    /// Bits per second.
    pub const fn bits_per_sec(self) -> u64 {
        self.0
    }

    /// Nanoseconds the port is busy with a frame of `len` bytes (without FCS): preamble + SFD,
    /// the frame padded to 64 bytes with FCS, and the inter-frame gap. Rounded up.
    pub fn frame_time_ns(self, len: usize) -> u64 {
        let bytes = wire_bytes(len);
        let ns = (u128::from(bytes) * 8 * 1_000_000_000).div_ceil(u128::from(self.0));
        ns as u64
    }
}

/// Bytes a frame of `len` bytes (without FCS) occupies on the wire: preamble + SFD, the frame
/// padded to 64 bytes with FCS, and the inter-frame gap.
pub const fn wire_bytes(len: usize) -> u64 {
    let framed = len as u64 + FCS_BYTES;
    let framed = if framed < MIN_WIRE_FRAME {
        MIN_WIRE_FRAME
    } else {
        framed
    };
    PREAMBLE_BYTES + framed + IFG_BYTES
}

impl Default for LineRate {
    fn default() -> Self {
        LineRate::G10
    }
}

impl core::fmt::Display for LineRate {
    /// `1G`, `10G`, … for whole gigabits (what [`FromStr`](core::str::FromStr) accepts), else
    /// bits per second.
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        if self.0.is_multiple_of(1_000_000_000) {
            write!(f, "{}G", self.0 / 1_000_000_000)
        } else {
            write!(f, "{} b/s", self.0)
        }
    }
}

impl core::str::FromStr for LineRate {
    type Err = String;
    /// Accepts `1G`, `10G`, `25G`, `100G` (case-insensitive, optional `bps`/`b/s`).
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let t = s.trim().to_ascii_lowercase();
        let t = t.trim_end_matches("b/s").trim_end_matches("bps");
        match t {
            "1g" => Ok(LineRate::G1),
            "10g" => Ok(LineRate::G10),
            "25g" => Ok(LineRate::G25),
            "100g" => Ok(LineRate::G100),
            _ => Err(format!("unknown line rate {s:?}: use 1G, 10G, 25G or 100G")),
        }
    }
}

/// Something that observes frames leaving the wire port.
pub trait WireSink: Send {
    /// `frame` (without FCS) started transmission at `at`.
    fn on_frame(&mut self, at: SimTime, frame: &[u8]) -> std::io::Result<()>;
    /// Flushes buffered output.
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// A frame that left the wire, as recorded by the port's optional capture.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct WireRecord {
    /// Start of transmission.
    pub at: SimTime,
    /// The frame without FCS.
    pub data: bytes::Bytes,
}

/// Writes frames as a nanosecond-resolution pcap file (link type Ethernet), readable by
/// tcpdump/tshark. Timestamps are virtual time.
pub struct PcapSink<W: Write + Send> {
    out: W,
}

/// pcap magic for nanosecond timestamps.
pub const PCAP_MAGIC_NANOS: u32 = 0xA1B2_3C4D;
/// pcap link type Ethernet.
pub const PCAP_LINKTYPE_ETHERNET: u32 = 1;

impl<W: Write + Send> PcapSink<W> {
    /// Writes the pcap global header to `out`.
    pub fn new(mut out: W) -> std::io::Result<PcapSink<W>> {
        let mut h = Vec::with_capacity(24);
        h.extend_from_slice(&PCAP_MAGIC_NANOS.to_le_bytes());
        h.extend_from_slice(&2u16.to_le_bytes());
        h.extend_from_slice(&4u16.to_le_bytes());
        h.extend_from_slice(&0i32.to_le_bytes());
        h.extend_from_slice(&0u32.to_le_bytes());
        h.extend_from_slice(&65_535u32.to_le_bytes());
        h.extend_from_slice(&PCAP_LINKTYPE_ETHERNET.to_le_bytes());
        out.write_all(&h)?;
        Ok(PcapSink { out })
    }

    /// The underlying writer.
    pub fn into_inner(self) -> W {
        self.out
    }
}

impl<W: Write + Send> WireSink for PcapSink<W> {
    fn on_frame(&mut self, at: SimTime, frame: &[u8]) -> std::io::Result<()> {
        let ns = at.as_nanos();
        let len = frame.len().min(65_535) as u32;
        let mut rec = Vec::with_capacity(16);
        rec.extend_from_slice(&((ns / 1_000_000_000) as u32).to_le_bytes());
        rec.extend_from_slice(&((ns % 1_000_000_000) as u32).to_le_bytes());
        rec.extend_from_slice(&len.to_le_bytes());
        rec.extend_from_slice(&(frame.len() as u32).to_le_bytes());
        self.out.write_all(&rec)?;
        self.out.write_all(&frame[..len as usize])
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.out.flush()
    }
}

/// The port's transmit side.
pub struct WirePort {
    rate: LineRate,
    busy_until: SimTime,
    sinks: Vec<Box<dyn WireSink>>,
    capture: Option<Vec<WireRecord>>,
    /// Frames sent.
    pub frames: u64,
    /// Bytes sent (without FCS and framing).
    pub bytes: u64,
    /// Nanoseconds the port spent transmitting.
    pub busy_ns: u64,
}

impl WirePort {
    /// A port at `rate`; `capture` keeps every frame in memory too.
    pub fn new(rate: LineRate, capture: bool) -> WirePort {
        WirePort {
            rate,
            busy_until: SimTime::ZERO,
            sinks: Vec::new(),
            capture: capture.then(Vec::new),
            frames: 0,
            bytes: 0,
            busy_ns: 0,
        }
    }

    /// The line rate.
    pub fn rate(&self) -> LineRate {
        self.rate
    }

    /// When the port finishes its current frame.
    pub fn busy_until(&self) -> SimTime {
        self.busy_until
    }

    /// Adds a sink.
    pub fn add_sink(&mut self, sink: Box<dyn WireSink>) {
        self.sinks.push(sink);
    }

    /// Transmits `data` starting at `start` (≥ `busy_until`); returns how many sinks failed.
    pub fn transmit(&mut self, start: SimTime, data: bytes::Bytes) -> u64 {
        let errors = self.transmit_slice(start, &data);
        if let Some(c) = &mut self.capture {
            c.push(WireRecord { at: start, data });
        }
        errors
    }

    /// Whether the port keeps every frame in memory ([`WirePort::take_capture`]): then a frame
    /// must be handed over as an owned `Bytes` ([`WirePort::transmit`]).
    pub fn capturing(&self) -> bool {
        self.capture.is_some()
    }

    /// [`WirePort::transmit`] of borrowed bytes, without the capture: timing, counters and
    /// sinks. Returns how many sinks failed.
    pub fn transmit_slice(&mut self, start: SimTime, data: &[u8]) -> u64 {
        let dur = self.rate.frame_time_ns(data.len());
        self.busy_until = start + dur;
        self.busy_ns += dur;
        self.frames += 1;
        self.bytes += data.len() as u64;
        let mut errors = 0;
        for s in &mut self.sinks {
            if s.on_frame(start, data).is_err() {
                errors += 1;
            }
        }
        errors
    }

    /// Takes the captured frames (empty if capture is off). The capture goes on in a vector of
    /// the same capacity, so a caller taking it every step does not regrow it every step.
    pub fn take_capture(&mut self) -> Vec<WireRecord> {
        self.capture
            .as_mut()
            .map(|c| std::mem::replace(c, Vec::with_capacity(c.capacity())))
            .unwrap_or_default()
    }

    /// Flushes every sink; returns how many failed.
    pub fn flush(&mut self) -> u64 {
        self.sinks
            .iter_mut()
            .map(|s| u64::from(s.flush().is_err()))
            .sum()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frame_times_are_physical() {
        // 64-byte frame (60 + FCS) at 10 Gb/s: (8 + 64 + 12) · 8 bits / 10 Gb/s = 67.2 ns.
        assert_eq!(LineRate::G10.frame_time_ns(60), 68);
        // 1514 + FCS at 1 Gb/s: (8 + 1518 + 12) · 8 = 12304 ns.
        assert_eq!(LineRate::G1.frame_time_ns(1514), 12_304);
        // Short frames are padded to the minimum.
        assert_eq!(
            LineRate::G1.frame_time_ns(20),
            LineRate::G1.frame_time_ns(60)
        );
        assert_eq!("25G".parse::<LineRate>(), Ok(LineRate::G25));
        assert!("3G".parse::<LineRate>().is_err());
    }

    #[test]
    fn pcap_layout() {
        let mut s = PcapSink::new(Vec::new()).unwrap();
        s.on_frame(SimTime(1_500_000_123), &[0xAA; 60]).unwrap();
        let b = s.into_inner();
        assert_eq!(&b[..4], &PCAP_MAGIC_NANOS.to_le_bytes());
        assert_eq!(b.len(), 24 + 16 + 60);
        assert_eq!(u32::from_le_bytes([b[24], b[25], b[26], b[27]]), 1);
        assert_eq!(
            u32::from_le_bytes([b[28], b[29], b[30], b[31]]),
            500_000_123
        );
    }
}
