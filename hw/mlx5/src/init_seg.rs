//! The initialization segment: the registers at the start of BAR0 through which a driver finds
//! the firmware revision, hands the device its command queue, rings the command doorbell and
//! watches the device's health (Linux `device.h` `struct mlx5_init_seg` and `struct
//! health_buffer`; `main.c` `wait_fw_init`, `cmd.c` `mlx5_cmd_enable`, `health.c`,
//! `lib/tout.c`; rdma-core `mlx5_vfio.c`).
//!
//! **Every register is big-endian**: the driver accesses them with `ioread32be`/`iowrite32be`,
//! so the bytes of a 32-bit register at offset `o` are `value.to_be_bytes()` at `o..o + 4`. The
//! model keeps the segment as big-endian bytes and [`InitSegment`] reads and writes it through
//! [`Field`]s; [`Register`] names each register for a bus device's dispatch.
//!
//! `cmdq_addr_l_sz` is half read-only: the driver writes the queue's page address (bits 31:12)
//! and the NIC interface mode (bits 10:8); the queue geometry (bits 7:0) is the device's and
//! must read back whatever was written (see [`CMDQ_ADDR_L_SZ_WRITABLE`]).

use crate::field::{Field, FieldValue};
use crate::layout::{field_enum, layout, nested};

/// Bytes of the segment the model serves: up to the end of `real_time_l`. (The struct formally
/// runs to 0x200F; its last fields overlap the MSI-X table and are not used by Linux.)
pub const INIT_SEG_LEN: usize = 0x1048;

/// A register of the initialization segment.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum Register {
    /// Firmware revision: minor (31:16), major (15:0).
    FwRev,
    /// Command interface revision (31:16), firmware sub-minor (15:0).
    CmdifRevFwSub,
    /// High 32 bits of the command queue's page address.
    CmdqAddrH,
    /// Low address bits (31:12), NIC interface (10:8), log queue size (7:4) and stride (3:0).
    CmdqAddrLSz,
    /// Command doorbell: the driver writes a bitmask of the queue entries it posted.
    CmdDbell,
    /// Firmware initializing (bit 31), firmware reset supported (30), embedded CPU (23).
    Initializing,
    /// A dword of the 64-byte health buffer (0x200–0x23F): `HealthBuffer(n)` is dword `n`.
    HealthBuffer(u8),
    /// Command execution timeout.
    CmdExecTo,
    /// Command-queue initialization timeout (0: the device does not report timeouts).
    CmdQInitTo,
    /// Free-running device clock, high dword.
    InternalTimerH,
    /// Free-running device clock, low dword.
    InternalTimerL,
    /// Health heartbeat: must keep changing.
    HealthCounter,
    /// Real-time clock, high dword.
    RealTimeH,
    /// Real-time clock, low dword.
    RealTimeL,
}

/// How software may access a register.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read only: writes are ignored.
    ReadOnly,
    /// Read/write (for `cmdq_addr_l_sz`: only [`CMDQ_ADDR_L_SZ_WRITABLE`] bits).
    ReadWrite,
    /// Write only: a write is an event (the doorbell); reads return 0.
    WriteOnly,
}

impl Register {
    /// Every register (health buffer dwords included), in offset order.
    pub const ALL: [Register; 29] = {
        let mut all = [Register::FwRev; 29];
        all[1] = Register::CmdifRevFwSub;
        all[2] = Register::CmdqAddrH;
        all[3] = Register::CmdqAddrLSz;
        all[4] = Register::CmdDbell;
        all[5] = Register::Initializing;
        let mut i = 0;
        while i < 16 {
            all[6 + i] = Register::HealthBuffer(i as u8);
            i += 1;
        }
        all[22] = Register::CmdExecTo;
        all[23] = Register::CmdQInitTo;
        all[24] = Register::InternalTimerH;
        all[25] = Register::InternalTimerL;
        all[26] = Register::HealthCounter;
        all[27] = Register::RealTimeH;
        all[28] = Register::RealTimeL;
        all
    };

    /// Byte offset in BAR0.
    pub const fn offset(self) -> u32 {
        match self {
            Register::FwRev => 0x000,
            Register::CmdifRevFwSub => 0x004,
            Register::CmdqAddrH => 0x010,
            Register::CmdqAddrLSz => 0x014,
            Register::CmdDbell => 0x018,
            Register::Initializing => 0x1FC,
            Register::HealthBuffer(n) => HEALTH_BUFFER_OFFSET as u32 + 4 * (n as u32 % 16),
            Register::CmdExecTo => 0xFF8,
            Register::CmdQInitTo => 0xFFC,
            Register::InternalTimerH => 0x1000,
            Register::InternalTimerL => 0x1004,
            Register::HealthCounter => 0x1010,
            Register::RealTimeH => 0x1040,
            Register::RealTimeL => 0x1044,
        }
    }

    /// The register holding the dword at `offset` (any byte inside it), if any.
    pub fn decode(offset: u32) -> Option<Register> {
        let dword = offset & !3;
        Register::ALL.into_iter().find(|r| r.offset() == dword)
    }

    /// How the driver may access it.
    pub const fn access(self) -> Access {
        match self {
            Register::CmdqAddrH | Register::CmdqAddrLSz => Access::ReadWrite,
            Register::CmdDbell => Access::WriteOnly,
            _ => Access::ReadOnly,
        }
    }

    /// The Linux `mlx5_init_seg` field name.
    pub const fn name(self) -> &'static str {
        match self {
            Register::FwRev => "fw_rev",
            Register::CmdifRevFwSub => "cmdif_rev_fw_sub",
            Register::CmdqAddrH => "cmdq_addr_h",
            Register::CmdqAddrLSz => "cmdq_addr_l_sz",
            Register::CmdDbell => "cmd_dbell",
            Register::Initializing => "initializing",
            Register::HealthBuffer(_) => "health",
            Register::CmdExecTo => "cmd_exec_to",
            Register::CmdQInitTo => "cmd_q_init_to",
            Register::InternalTimerH => "internal_timer_h",
            Register::InternalTimerL => "internal_timer_l",
            Register::HealthCounter => "health_counter",
            Register::RealTimeH => "real_time_h",
            Register::RealTimeL => "real_time_l",
        }
    }
}

/// Fields of the segment (offsets from BAR0).
pub mod field {
    use crate::field::Field;

    /// `fw_rev` minor.
    pub const FW_REV_MINOR: Field = Field::at(0x000, 31, 16);
    /// `fw_rev` major.
    pub const FW_REV_MAJOR: Field = Field::at(0x000, 15, 0);
    /// Command interface revision: must be [`CMDIF_REV`](super::CMDIF_REV).
    pub const CMDIF_REV: Field = Field::at(0x004, 31, 16);
    /// Firmware sub-minor revision.
    pub const FW_REV_SUBMINOR: Field = Field::at(0x004, 15, 0);
    /// High 32 bits of the command queue address.
    pub const CMDQ_ADDR_H: Field = Field::dword(0x010);
    /// Bits 31:12 of the command queue address (page aligned).
    pub const CMDQ_ADDR_L: Field = Field::at(0x014, 31, 12);
    /// NIC interface mode ([`NicInterface`](super::NicInterface)).
    pub const NIC_INTERFACE: Field = Field::at(0x014, 10, 8);
    /// log2 of the number of queue entries (read only).
    pub const LOG_CMDQ_SIZE: Field = Field::at(0x014, 7, 4);
    /// log2 of the entry stride in bytes (read only).
    pub const LOG_CMDQ_STRIDE: Field = Field::at(0x014, 3, 0);
    /// Command doorbell: bitmask of posted entries.
    pub const CMD_DBELL: Field = Field::dword(0x018);
    /// Firmware still initializing: the driver waits for 0.
    pub const INITIALIZING: Field = Field::at(0x1FC, 31, 31);
    /// Firmware reset supported.
    pub const FW_RESET_SUPPORTED: Field = Field::at(0x1FC, 30, 30);
    /// The function belongs to an embedded CPU (BlueField ECPF); repeated in ENABLE_HCA.
    pub const EMBEDDED_CPU: Field = Field::at(0x1FC, 23, 23);
    /// Command execution timeout ([`Timeout`](super::Timeout)).
    pub const CMD_EXEC_TO: Field = Field::dword(0xFF8);
    /// Command-queue initialization timeout; 0: timeouts not reported.
    pub const CMD_Q_INIT_TO: Field = Field::dword(0xFFC);
    /// Free-running device clock (64 bits, high dword first).
    pub const INTERNAL_TIMER: Field = Field::qword(0x1000);
    /// Health heartbeat.
    pub const HEALTH_COUNTER: Field = Field::dword(0x1010);
    /// Real-time clock (64 bits).
    pub const REAL_TIME: Field = Field::qword(0x1040);
}

/// The only command interface revision drivers accept.
pub const CMDIF_REV: u16 = 5;
/// Offset of the health buffer.
pub const HEALTH_BUFFER_OFFSET: usize = 0x200;
/// `cmdq_addr_l_sz` bits the driver writes (address and NIC interface); the rest read back
/// the device's values.
pub const CMDQ_ADDR_L_SZ_WRITABLE: u32 = 0xFFFF_F700;
/// The model's queue geometry: 32 entries (log 5) of 64 bytes (log 6), one 4 KiB page.
pub const LOG_CMDQ_SIZE: u8 = 5;
/// See [`LOG_CMDQ_SIZE`].
pub const LOG_CMDQ_STRIDE: u8 = 6;
/// Largest queue drivers accept: 2^5 entries.
pub const MAX_LOG_CMDQ_SIZE: u8 = 5;
/// Drivers require `log_size + log_stride` ≤ 12 (the queue fits one 4 KiB page).
pub const MAX_LOG_CMDQ_BYTES: u8 = 12;

/// The new value of `cmdq_addr_l_sz` after the driver writes `written` to it: the writable
/// bits from the write, the read-only geometry bits from `current`.
pub const fn cmdq_addr_l_sz_after_write(current: u32, written: u32) -> u32 {
    (written & CMDQ_ADDR_L_SZ_WRITABLE) | (current & !CMDQ_ADDR_L_SZ_WRITABLE)
}

field_enum! {
    /// NIC interface mode (`cmdq_addr_l_sz` bits 10:8).
    pub enum NicInterface: u8 {
        /// 0: full driver.
        FullDriver = 0,
        /// 1: disabled (the health poller treats it as fatal).
        Disabled = 1,
        /// 2: NIC without DRAM.
        NoDramNic = 2,
        /// 7: software reset (fatal for the health poller).
        SwReset = 7,
    }
}

/// A timeout register (`cmd_exec_to`, `cmd_q_init_to`): unit in bits 31:29, value in 19:0.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Timeout {
    /// Unit: 0 ms, 1 s, 2 min, 3 h; others are reserved.
    pub unit: u8,
    /// Count of units (20 bits).
    pub value: u32,
}

impl Timeout {
    /// Unit code for milliseconds.
    pub const UNIT_MS: u8 = 0;
    /// Unit code for seconds.
    pub const UNIT_S: u8 = 1;
    /// Unit code for minutes.
    pub const UNIT_MIN: u8 = 2;
    /// Unit code for hours.
    pub const UNIT_H: u8 = 3;

    /// Decodes a register value.
    pub const fn from_register(raw: u32) -> Timeout {
        Timeout {
            unit: (raw >> 29) as u8,
            value: raw & 0xF_FFFF,
        }
    }

    /// The register value.
    pub const fn to_register(self) -> u32 {
        ((self.unit as u32 & 7) << 29) | (self.value & 0xF_FFFF)
    }

    /// A timeout of `ms` milliseconds (saturating at the 20-bit value).
    pub const fn millis(ms: u32) -> Timeout {
        Timeout {
            unit: Timeout::UNIT_MS,
            value: if ms > 0xF_FFFF { 0xF_FFFF } else { ms },
        }
    }

    /// The timeout in milliseconds, `None` for a reserved unit.
    pub const fn as_millis(self) -> Option<u64> {
        let per = match self.unit {
            0 => 1,
            1 => 1000,
            2 => 60_000,
            3 => 3_600_000,
            _ => return None,
        };
        Some(self.value as u64 * per)
    }
}

/// A timeout register as a field value.
impl FieldValue for Timeout {
    fn from_raw(raw: u64) -> Timeout {
        Timeout::from_register(raw as u32)
    }
    fn into_raw(self) -> u64 {
        u64::from(self.to_register())
    }
}

layout! {
    /// A view of the initialization segment's bytes (at least [`INIT_SEG_LEN`]).
    pub struct InitSegment(INIT_SEG_LEN, "initialization segment") {
        /// Firmware major revision.
        fw_rev_major, set_fw_rev_major: u16 = field::FW_REV_MAJOR;
        /// Firmware minor revision.
        fw_rev_minor, set_fw_rev_minor: u16 = field::FW_REV_MINOR;
        /// Firmware sub-minor revision.
        fw_rev_subminor, set_fw_rev_subminor: u16 = field::FW_REV_SUBMINOR;
        /// Command interface revision.
        cmdif_rev, set_cmdif_rev: u16 = field::CMDIF_REV;
        /// High 32 bits of the command queue address.
        cmdq_addr_h, set_cmdq_addr_h: u32 = field::CMDQ_ADDR_H;
        /// Bits 31:12 of the command queue address.
        cmdq_addr_l, set_cmdq_addr_l: u32 = field::CMDQ_ADDR_L;
        /// NIC interface mode.
        nic_interface, set_nic_interface: NicInterface = field::NIC_INTERFACE;
        /// log2 of the number of queue entries.
        log_cmdq_size, set_log_cmdq_size: u8 = field::LOG_CMDQ_SIZE;
        /// log2 of the entry stride.
        log_cmdq_stride, set_log_cmdq_stride: u8 = field::LOG_CMDQ_STRIDE;
        /// Command doorbell: bitmask of posted entries.
        cmd_dbell, set_cmd_dbell: u32 = field::CMD_DBELL;
        /// Firmware still initializing.
        initializing, set_initializing: bool = field::INITIALIZING;
        /// Firmware reset supported.
        fw_reset_supported, set_fw_reset_supported: bool = field::FW_RESET_SUPPORTED;
        /// Embedded-CPU function bit.
        embedded_cpu, set_embedded_cpu: bool = field::EMBEDDED_CPU;
        /// Command execution timeout.
        cmd_exec_to, set_cmd_exec_to: Timeout = field::CMD_EXEC_TO;
        /// Command-queue initialization timeout (register 0: not reported).
        cmd_q_init_to, set_cmd_q_init_to: Timeout = field::CMD_Q_INIT_TO;
        /// The free-running device clock.
        internal_timer, set_internal_timer: u64 = field::INTERNAL_TIMER;
        /// The health heartbeat.
        health_counter, set_health_counter: u32 = field::HEALTH_COUNTER;
        /// The real-time clock.
        real_time, set_real_time: u64 = field::REAL_TIME;
    }
}

nested!(
    InitSegment,
    health,
    health_mut,
    HealthBuffer,
    HEALTH_BUFFER_OFFSET
);

impl<T: AsRef<[u8]>> InitSegment<T> {
    /// The 32-bit register value of `reg` (big-endian bytes decoded).
    pub fn register(&self, reg: Register) -> u32 {
        Field::dword(reg.offset() as usize).read(self.as_bytes())
    }
    /// Firmware revision `(major, minor, sub-minor)`.
    pub fn fw_rev(&self) -> (u16, u16, u16) {
        (
            self.fw_rev_major(),
            self.fw_rev_minor(),
            self.fw_rev_subminor(),
        )
    }
    /// The command queue's page address as the driver wrote it.
    pub fn cmdq_addr(&self) -> u64 {
        (u64::from(self.cmdq_addr_h()) << 32) | (u64::from(self.cmdq_addr_l()) << 12)
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> InitSegment<T> {
    /// Sets the 32-bit register value of `reg` as stored (no access rules applied).
    pub fn set_register(&mut self, reg: Register, value: u32) {
        // Cannot fail: every register lies below INIT_SEG_LEN, which `new_checked` checked.
        let _inside = Field::dword(reg.offset() as usize).write(self.as_bytes_mut(), value);
    }
    /// Sets the firmware revision.
    pub fn set_fw_rev(&mut self, major: u16, minor: u16, subminor: u16) {
        self.set_fw_rev_major(major);
        self.set_fw_rev_minor(minor);
        self.set_fw_rev_subminor(subminor);
    }
    /// Sets the queue geometry (the read-only bits of `cmdq_addr_l_sz`).
    pub fn set_cmdq_geometry(&mut self, log_size: u8, log_stride: u8) {
        self.set_log_cmdq_size(log_size);
        self.set_log_cmdq_stride(log_stride);
    }
}

/// Bytes in the health buffer.
pub const HEALTH_BUFFER_LEN: usize = 0x40;

/// Fields of the health buffer (offsets from its start, BAR0 + 0x200).
pub mod health {
    use crate::field::Field;

    /// `assert_var[n]` is the dword at `4·n`, n < 6.
    pub const ASSERT_VAR_COUNT: usize = 6;
    /// Address of the failed assertion.
    pub const ASSERT_EXIT_PTR: Field = Field::dword(0x20);
    /// Return address of the failed assertion.
    pub const ASSERT_CALLRA: Field = Field::dword(0x24);
    /// Firmware time of the event.
    pub const TIME: Field = Field::dword(0x2C);
    /// Firmware version; 0xFFFFFFFF means the device is gone from the bus (fatal).
    pub const FW_VER: Field = Field::dword(0x30);
    /// Hardware id.
    pub const HW_ID: Field = Field::dword(0x34);
    /// Reset request (RFR): with a non-zero syndrome the health poller declares the device dead.
    pub const RFR: Field = Field::at(0x38, 31, 31);
    /// CRR bit.
    pub const CRR: Field = Field::at(0x38, 30, 30);
    /// Severity valid.
    pub const SEVERITY_VALID: Field = Field::at(0x38, 27, 27);
    /// Severity (2:0 of the `rfr_severity` byte).
    pub const SEVERITY: Field = Field::at(0x38, 26, 24);
    /// Which internal RISC reported.
    pub const IRISC_INDEX: Field = Field::at(0x3C, 31, 24);
    /// Health syndrome ([`HealthSyndrome`](super::HealthSyndrome)).
    pub const SYND: Field = Field::at(0x3C, 23, 16);
    /// Extended syndrome.
    pub const EXT_SYND: Field = Field::at(0x3C, 15, 0);
}

field_enum! {
    /// The health syndrome (`health.synd`).
    pub enum HealthSyndrome: u8 {
        /// 0: healthy.
        None = 0x0,
        /// 0x1: firmware internal error.
        FwInternal = 0x1,
        /// 0x7: dead internal RISC.
        DeadIrisc = 0x7,
        /// 0x8: unrecoverable hardware error.
        HwUnrecoverable = 0x8,
        /// 0x9: firmware CRC error.
        FwCrc = 0x9,
        /// 0xA: ICM fetch PCI error.
        IcmFetchPci = 0xA,
        /// 0xB: hardware fatal error.
        HwFatal = 0xB,
        /// 0xC: async EQ overrun.
        AsyncEqOverrun = 0xC,
        /// 0xD: EQ error.
        EqError = 0xD,
        /// 0xE: invalid EQ referenced.
        EqInvalid = 0xE,
        /// 0xF: FFSER error.
        Ffser = 0xF,
        /// 0x10: high temperature.
        HighTemperature = 0x10,
    }
}

layout! {
    /// A view of the 64-byte health buffer.
    pub struct HealthBuffer(HEALTH_BUFFER_LEN, "health buffer") {
        /// Address of the failed assertion.
        assert_exit_ptr, set_assert_exit_ptr: u32 = health::ASSERT_EXIT_PTR;
        /// Return address of the failed assertion.
        assert_callra, set_assert_callra: u32 = health::ASSERT_CALLRA;
        /// Firmware time of the event.
        time, set_time: u32 = health::TIME;
        /// Firmware version as the health buffer reports it.
        fw_ver, set_fw_ver: u32 = health::FW_VER;
        /// Hardware id.
        hw_id, set_hw_id: u32 = health::HW_ID;
        /// Reset-request bit.
        rfr, set_rfr: bool = health::RFR;
        /// CRR bit.
        crr, set_crr: bool = health::CRR;
        /// Severity valid.
        severity_valid, set_severity_valid: bool = health::SEVERITY_VALID;
        /// Severity.
        severity, set_severity: u8 = health::SEVERITY;
        /// Which internal RISC reported.
        irisc_index, set_irisc_index: u8 = health::IRISC_INDEX;
        /// The syndrome.
        synd, set_synd: HealthSyndrome = health::SYND;
        /// The extended syndrome.
        ext_synd, set_ext_synd: u16 = health::EXT_SYND;
    }
}

impl<T: AsRef<[u8]>> HealthBuffer<T> {
    /// `assert_var[n]`, 0 for `n` ≥ 6.
    pub fn assert_var(&self, n: usize) -> u32 {
        if n >= health::ASSERT_VAR_COUNT {
            return 0;
        }
        Field::dword(4 * n).read(self.as_bytes())
    }
    /// The `rfr_severity` byte.
    pub fn rfr_severity(&self) -> u8 {
        Field::at(0x38, 31, 24).read(self.as_bytes())
    }
    /// True when a driver's health poller would declare the device dead from this buffer
    /// alone: the device is gone (`fw_ver` all ones) or it requests a reset with a syndrome.
    pub fn is_fatal(&self) -> bool {
        self.fw_ver() == u32::MAX || (self.rfr() && self.synd() != HealthSyndrome::None)
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The segment a Linux 6.12 guest probed in the lab: FW 22.39.1002, cmdif 5, geometry 0x56.
    fn lab_segment() -> Vec<u8> {
        let mut b = vec![0u8; INIT_SEG_LEN];
        b[0..4].copy_from_slice(&0x0027_0016u32.to_be_bytes());
        b[4..8].copy_from_slice(&0x0005_03EAu32.to_be_bytes());
        b[0x14..0x18].copy_from_slice(&0x0000_0056u32.to_be_bytes());
        b
    }

    #[test]
    fn lab_values_decode() {
        let b = lab_segment();
        let s = InitSegment::new_checked(&b[..]).unwrap();
        assert_eq!(s.fw_rev(), (22, 39, 1002));
        assert_eq!(s.cmdif_rev(), CMDIF_REV);
        assert_eq!(
            (s.log_cmdq_size(), s.log_cmdq_stride()),
            (LOG_CMDQ_SIZE, LOG_CMDQ_STRIDE)
        );
        assert_eq!(s.nic_interface(), NicInterface::FullDriver);
        assert!(!s.initializing());
        assert_eq!(s.register(Register::CmdqAddrLSz), 0x56);
    }

    #[test]
    fn setters_produce_the_lab_bytes() {
        let mut b = vec![0u8; INIT_SEG_LEN];
        let mut s = InitSegment::new_checked(&mut b[..]).unwrap();
        s.set_fw_rev(22, 39, 1002);
        s.set_cmdif_rev(5);
        s.set_cmdq_geometry(LOG_CMDQ_SIZE, LOG_CMDQ_STRIDE);
        assert_eq!(b, lab_segment());
    }

    #[test]
    fn cmdq_addr_l_sz_keeps_its_read_only_bits() {
        // The lab driver wrote 0x0428a000; the register then read 0x0428a056.
        let after = cmdq_addr_l_sz_after_write(0x56, 0x0428_A000);
        assert_eq!(after, 0x0428_A056);
        // A write that tries to change the geometry does not.
        assert_eq!(cmdq_addr_l_sz_after_write(0x56, 0x0428_A0FF), 0x0428_A056);
        // nic_interface is writable.
        assert_eq!(cmdq_addr_l_sz_after_write(0x56, 0x0000_0700) & 0x700, 0x700);
        let mut b = lab_segment();
        b[0x10..0x14].copy_from_slice(&1u32.to_be_bytes());
        b[0x14..0x18].copy_from_slice(&after.to_be_bytes());
        let s = InitSegment::new_checked(&b[..]).unwrap();
        assert_eq!(s.cmdq_addr(), 0x1_0428_A000);
    }

    #[test]
    fn register_offsets_and_decode() {
        let pinned = [
            (Register::FwRev, 0x000),
            (Register::CmdifRevFwSub, 0x004),
            (Register::CmdqAddrH, 0x010),
            (Register::CmdqAddrLSz, 0x014),
            (Register::CmdDbell, 0x018),
            (Register::Initializing, 0x1FC),
            (Register::HealthBuffer(0), 0x200),
            (Register::HealthBuffer(12), 0x230),
            (Register::HealthBuffer(15), 0x23C),
            (Register::CmdExecTo, 0xFF8),
            (Register::CmdQInitTo, 0xFFC),
            (Register::InternalTimerH, 0x1000),
            (Register::InternalTimerL, 0x1004),
            (Register::HealthCounter, 0x1010),
            (Register::RealTimeH, 0x1040),
            (Register::RealTimeL, 0x1044),
        ];
        for (r, off) in pinned {
            assert_eq!(r.offset(), off, "{}", r.name());
            assert_eq!(Register::decode(off), Some(r));
        }
        // A byte access inside a register (the health poller reads synd with a byte read).
        assert_eq!(Register::decode(0x23D), Some(Register::HealthBuffer(15)));
        assert_eq!(Register::decode(0x008), None);
        assert_eq!(Register::decode(0x1008), None);
        assert!(
            Register::ALL
                .windows(2)
                .all(|w| w[0].offset() < w[1].offset())
        );
        assert!(
            Register::ALL
                .iter()
                .all(|r| r.offset() as usize + 4 <= INIT_SEG_LEN)
        );
        assert_eq!(Register::CmdDbell.access(), Access::WriteOnly);
    }

    #[test]
    fn timeouts() {
        // The lab's 5 s command timeout and 2 s init timeout, in milliseconds.
        assert_eq!(Timeout::from_register(0x1388).as_millis(), Some(5000));
        assert_eq!(Timeout::from_register(0x7D0).as_millis(), Some(2000));
        assert_eq!(
            Timeout::from_register(0x2000_003C).as_millis(),
            Some(60_000)
        );
        assert_eq!(Timeout::from_register(0xE000_0001).as_millis(), None);
        assert_eq!(Timeout::millis(5000).to_register(), 0x1388);
        assert_eq!(
            Timeout::from_register(0x6000_0002).to_register(),
            0x6000_0002
        );
    }

    #[test]
    fn health_buffer_offsets() {
        let mut b = lab_segment();
        {
            let mut s = InitSegment::new_checked(&mut b[..]).unwrap();
            s.set_health_counter(7);
            let mut h = s.health_mut();
            h.set_synd(HealthSyndrome::HwFatal);
            h.set_ext_synd(0x1234);
            h.set_rfr(true);
            h.set_fw_ver(0x1627_03EA);
        }
        assert_eq!(b[0x23D], 0x0B, "synd byte");
        assert_eq!(&b[0x23E..0x240], &[0x12, 0x34], "ext_synd BE16");
        assert_eq!(b[0x238], 0x80, "RFR bit of rfr_severity");
        assert_eq!(&b[0x230..0x234], &0x1627_03EAu32.to_be_bytes());
        assert_eq!(&b[0x1010..0x1014], &[0, 0, 0, 7]);
        let s = InitSegment::new_checked(&b[..]).unwrap();
        assert!(s.health().is_fatal());
        assert_eq!(s.health().synd(), HealthSyndrome::HwFatal);
        assert_eq!(s.health().rfr_severity(), 0x80);
        assert_eq!(HealthSyndrome::from(0x42), HealthSyndrome::Unknown(0x42));
        assert_eq!(u8::from(HealthSyndrome::Unknown(0x42)), 0x42);
        for v in 0..=255u8 {
            assert_eq!(u8::from(HealthSyndrome::from(v)), v);
            assert_eq!(u8::from(NicInterface::from(v)), v);
        }
    }

    #[test]
    fn short_buffers_are_refused() {
        assert!(InitSegment::new_checked(&[0u8; 0x100][..]).is_err());
        assert!(HealthBuffer::new_checked(&[0u8; 0x3F][..]).is_err());
    }
}
