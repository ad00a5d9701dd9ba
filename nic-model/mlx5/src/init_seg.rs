//! The initialization segment of one function, as the model serves it at BAR0 offset 0
//! (layout and field meanings: `mlx5_hw::init_seg`).
//!
//! Stored as the big-endian bytes a driver reads with `ioread32be`. The dynamic registers are
//! refreshed from virtual time before every read: the health counter ticks every
//! [`HEALTH_TICK_NS`] (it starts at 1, never 0: Linux `wait_vital` wants it non-zero and
//! changing), the internal timer counts nanoseconds. The initializing bit is set after a
//! function reset for the configured boot time (0 by default: ready at once, as the lab
//! answered) and refuses doorbells while set.
//!
//! Writes: `cmdq_addr_h`, `cmdq_addr_l_sz` (only the address and NIC-interface bits; the queue
//! geometry bits 7:0 are read-only) and `cmd_dbell`; every other register is read-only.

use adapter_core::SimTime;
use mlx5_hw::init_seg::{
    CMDIF_REV, INIT_SEG_LEN, InitSegment, LOG_CMDQ_SIZE, LOG_CMDQ_STRIDE, Register,
    cmdq_addr_l_sz_after_write,
};

/// Health counter period in virtual time: 100 ms (Linux polls every 2 s and complains after
/// 3 unchanged polls; rdma-core's VFIO provider polls every second).
pub const HEALTH_TICK_NS: u64 = 100_000_000;

/// Firmware revision the model reports (major, minor, sub-minor), as the lab presented it.
pub const FW_REV: (u16, u16, u16) = (22, 39, 1002);

/// One function's segment.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SegmentState {
    bytes: Vec<u8>,
    /// The initializing bit clears at this time.
    ready_at: SimTime,
}

/// What a write to the segment asks of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum SegmentWrite {
    /// Stored, nothing else to do.
    Stored,
    /// The driver wrote `cmdq_addr_l_sz`: the command queue is at this address.
    CommandQueue(u64),
    /// The command doorbell with this bitmask.
    Doorbell(u32),
    /// A read-only register: ignored.
    ReadOnly,
}

impl SegmentState {
    /// The segment after a function reset at `now`, initializing until `now + boot_ns`.
    pub fn new(now: SimTime, boot_ns: u64) -> SegmentState {
        let mut bytes = vec![0u8; INIT_SEG_LEN];
        if let Ok(mut s) = InitSegment::new_checked(&mut bytes[..]) {
            s.set_fw_rev(FW_REV.0, FW_REV.1, FW_REV.2);
            s.set_cmdif_rev(CMDIF_REV);
            s.set_cmdq_geometry(LOG_CMDQ_SIZE, LOG_CMDQ_STRIDE);
        }
        SegmentState {
            bytes,
            ready_at: now + boot_ns,
        }
    }

    /// True while the firmware is still initializing at `now`.
    pub fn initializing(&self, now: SimTime) -> bool {
        now < self.ready_at
    }

    /// The queue address as written (`cmdq_addr_h`, `cmdq_addr_l_sz` bits 31:12).
    pub fn cmdq_addr(&self) -> u64 {
        InitSegment::new_checked(&self.bytes[..]).map_or(0, |s| s.cmdq_addr())
    }

    fn refresh(&mut self, now: SimTime) {
        let initializing = self.initializing(now);
        if let Ok(mut s) = InitSegment::new_checked(&mut self.bytes[..]) {
            let ticks = now.as_nanos() / HEALTH_TICK_NS;
            s.set_health_counter((ticks as u32).wrapping_add(1));
            let ns = now.as_nanos();
            s.set_register(Register::InternalTimerH, (ns >> 32) as u32);
            s.set_register(Register::InternalTimerL, ns as u32);
            let init = s.register(Register::Initializing);
            let bit = 1u32 << 31;
            s.set_register(
                Register::Initializing,
                if initializing {
                    init | bit
                } else {
                    init & !bit
                },
            );
        }
    }

    /// Reads `data.len()` bytes at `offset` (inside the segment) at time `now`.
    pub fn read(&mut self, now: SimTime, offset: usize, data: &mut [u8]) -> bool {
        if offset
            .checked_add(data.len())
            .is_none_or(|end| end > self.bytes.len())
        {
            return false;
        }
        self.refresh(now);
        data.copy_from_slice(&self.bytes[offset..offset + data.len()]);
        // The doorbell is write-only: it reads 0.
        let db = Register::CmdDbell.offset() as usize;
        for (i, b) in data.iter_mut().enumerate() {
            if (db..db + 4).contains(&(offset + i)) {
                *b = 0;
            }
        }
        true
    }

    /// Writes the 32-bit register value `value` at the dword at `offset`.
    pub fn write_dword(&mut self, offset: u32, value: u32) -> SegmentWrite {
        let Some(reg) = Register::decode(offset) else {
            return SegmentWrite::ReadOnly;
        };
        let Ok(mut s) = InitSegment::new_checked(&mut self.bytes[..]) else {
            return SegmentWrite::ReadOnly;
        };
        match reg {
            Register::CmdqAddrH => {
                s.set_register(reg, value);
                SegmentWrite::Stored
            }
            Register::CmdqAddrLSz => {
                let cur = s.register(reg);
                s.set_register(reg, cmdq_addr_l_sz_after_write(cur, value));
                SegmentWrite::CommandQueue(s.cmdq_addr())
            }
            Register::CmdDbell => SegmentWrite::Doorbell(value),
            _ => SegmentWrite::ReadOnly,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read32(s: &mut SegmentState, now: SimTime, off: usize) -> u32 {
        let mut b = [0u8; 4];
        assert!(s.read(now, off, &mut b));
        u32::from_be_bytes(b)
    }

    #[test]
    fn lab_values_and_read_only_geometry() {
        let mut s = SegmentState::new(SimTime::ZERO, 0);
        let t = SimTime::ZERO;
        assert_eq!(read32(&mut s, t, 0x000), 0x0027_0016);
        assert_eq!(read32(&mut s, t, 0x004), 0x0005_03EA);
        assert_eq!(read32(&mut s, t, 0x014), 0x56);
        assert_eq!(
            s.write_dword(0x014, 0x0428_A0FF),
            SegmentWrite::CommandQueue(0x0428_A000)
        );
        assert_eq!(read32(&mut s, t, 0x014), 0x0428_A056);
        assert_eq!(s.write_dword(0x000, 1), SegmentWrite::ReadOnly);
        assert_eq!(s.write_dword(0x018, 3), SegmentWrite::Doorbell(3));
        assert_eq!(read32(&mut s, t, 0x018), 0);
    }

    #[test]
    fn health_counter_and_timer_follow_virtual_time() {
        let mut s = SegmentState::new(SimTime::ZERO, 2_000_000);
        assert_eq!(read32(&mut s, SimTime::ZERO, 0x1FC) >> 31, 1);
        assert_eq!(read32(&mut s, SimTime::from_millis(2), 0x1FC) >> 31, 0);
        let a = read32(&mut s, SimTime::from_millis(50), 0x1010);
        let b = read32(&mut s, SimTime::from_millis(150), 0x1010);
        assert_ne!(a, 0);
        assert_eq!(b, a + 1);
        assert_eq!(
            read32(&mut s, SimTime::from_millis(150), 0x1004),
            150_000_000
        );
        let mut byte = [0u8; 1];
        assert!(s.read(SimTime::ZERO, 0x23D, &mut byte));
        assert_eq!(byte[0], 0, "health syndrome");
    }
}
