//! BAR0 register maps of the 82576 physical function and virtual functions.
//!
//! Each map is declared once with `register_map!`: the enum variant is the datasheet mnemonic,
//! with its offset and [`Access`] kind. From that one table come
//! `offset()`, `decode()` (offset → register, used by the model's dispatch), `name()` and `ALL`
//! (used by the docs and the tests). Bitfields are declared with `tock-registers`, and
//! [`Register`] binds a register of one map to its bitfield type, so the driver writes
//! `VFMAILBOX` values built only from `VFMAILBOX::*` fields and only to a VF BAR.
//!
//! VF offsets: datasheet 8.26 (VF register map), cross-checked with Linux `igbvf/regs.h`.
//! PF offsets: datasheet 8.x as mirrored by DPDK `e1000_regs.h` and QEMU `igb_regs.h`.

use core::marker::PhantomData;

use crate::addr::RegisterOffset;
pub use tock_registers::{
    LocalRegisterCopy, RegisterLongName,
    fields::{Field, FieldValue},
};

/// How software may access a register (datasheet "RW", "RO", "RC", "W1C", "WO").
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Read/write.
    ReadWrite,
    /// Read only: writes are ignored.
    ReadOnly,
    /// Write only: reads return 0.
    WriteOnly,
    /// Read to clear (statistics, cause registers).
    ReadClear,
    /// Write one to clear.
    WriteOneClear,
    /// Read to clear and write one to clear (EICR).
    ReadClearWriteOneClear,
}

impl Access {
    /// The datasheet abbreviation.
    pub const fn mnemonic(self) -> &'static str {
        match self {
            Access::ReadWrite => "RW",
            Access::ReadOnly => "RO",
            Access::WriteOnly => "WO",
            Access::ReadClear => "RC",
            Access::WriteOneClear => "W1C",
            Access::ReadClearWriteOneClear => "RC/W1C",
        }
    }
}

/// The offset of an array register element past the end of its array: beyond every BAR, so an
/// access through it is an out-of-range access (counted by the model, refused by the VFIO
/// backend) instead of reaching whatever register follows the array.
pub const OUTSIDE_BAR: u32 = 0xFFFF_FFFC;
const _: () = assert!(OUTSIDE_BAR >= PF_BAR0_SIZE && OUTSIDE_BAR >= VF_BAR0_SIZE);

/// A register map: an enum whose variants are the registers of one BAR.
pub trait RegisterMap: Copy + Sized + 'static {
    /// Byte offset of this register.
    fn offset(self) -> RegisterOffset;
    /// The register at `offset`, if any.
    fn decode(offset: RegisterOffset) -> Option<Self>;
}

macro_rules! register_map {
    (
        $(#[$meta:meta])*
        pub enum $name:ident {
            $( $(#[$vmeta:meta])* $reg:ident = $off:literal, $acc:ident; )*
        }
        arrays {
            $( $(#[$ameta:meta])* $areg:ident = $aoff:literal + $stride:literal * $count:literal, $aacc:ident; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        pub enum $name {
            $( $(#[$vmeta])* $reg, )*
            $( $(#[$ameta])* $areg(u8), )*
        }

        impl $name {
            /// Every single register, and every array with its element count.
            pub const ALL: &'static [(&'static str, u32, u32, u32, Access)] = &[
                $( (stringify!($reg), $off, 0, 1, Access::$acc), )*
                $( (stringify!($areg), $aoff, $stride, $count, Access::$aacc), )*
            ];

            /// Byte offset in the BAR. An array element past the array's end (which the enum
            /// cannot rule out) is [`OUTSIDE_BAR`], never another register's offset.
            #[inline]
            pub const fn offset(self) -> RegisterOffset {
                RegisterOffset(match self {
                    $( Self::$reg => $off, )*
                    $( Self::$areg(i) => if (i as u32) < $count {
                        $aoff + $stride * (i as u32)
                    } else {
                        OUTSIDE_BAR
                    }, )*
                })
            }

            /// The register at `offset` (a 4-byte aligned offset), if the map has one.
            pub fn decode(offset: RegisterOffset) -> Option<Self> {
                let o = offset.0;
                match o {
                    $( $off => return Some(Self::$reg), )*
                    _ => {}
                }
                $(
                    if ($aoff..$aoff + $stride * $count).contains(&o) && (o - $aoff) % $stride == 0 {
                        return Some(Self::$areg(((o - $aoff) / $stride) as u8));
                    }
                )*
                None
            }

            /// Software access kind.
            pub const fn access(self) -> Access {
                match self {
                    $( Self::$reg => Access::$acc, )*
                    $( Self::$areg(_) => Access::$aacc, )*
                }
            }

            /// Datasheet mnemonic (without the array index).
            pub const fn name(self) -> &'static str {
                match self {
                    $( Self::$reg => stringify!($reg), )*
                    $( Self::$areg(_) => stringify!($areg), )*
                }
            }
        }

        impl RegisterMap for $name {
            fn offset(self) -> RegisterOffset {
                $name::offset(self)
            }
            fn decode(offset: RegisterOffset) -> Option<Self> {
                $name::decode(offset)
            }
        }
    };
}

register_map! {
    /// Registers of a virtual function's BAR0 (16 KiB). Datasheet 8.26; Linux `igbvf/regs.h`.
    #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
    pub enum VfReg {
        /// Device control; only RST (bit 26) has an effect: VF software reset.
        CTRL = 0x0000, ReadWrite;
        /// Alias of CTRL.
        CTRL_DUP = 0x0004, ReadWrite;
        /// Device status (the port's link state as seen by the VF).
        STATUS = 0x0008, ReadOnly;
        /// VF-to-PF mailbox control (REQ/ACK/VFU/PFU/PFSTS/PFACK/RSTI/RSTD).
        VFMAILBOX = 0x0C40, ReadWrite;
        /// MSI-X pending bit clear.
        PBACL = 0x0F04, WriteOneClear;
        /// Packet split receive type.
        PSRTYPE = 0x0F0C, ReadWrite;
        /// Good packets received count (free running).
        VFGPRC = 0x0F10, ReadOnly;
        /// Good packets transmitted count.
        VFGPTC = 0x0F14, ReadOnly;
        /// Good octets received count.
        VFGORC = 0x0F18, ReadOnly;
        /// Good octets transmitted count.
        VFGOTC = 0x0F34, ReadOnly;
        /// Multicast packets received count.
        VFMPRC = 0x0F3C, ReadOnly;
        /// Good RX packets loopback count.
        VFGPRLBC = 0x0F40, ReadOnly;
        /// Good TX packets loopback count.
        VFGPTLBC = 0x0F44, ReadOnly;
        /// Good RX octets loopback count.
        VFGORLBC = 0x0F48, ReadOnly;
        /// Good TX octets loopback count.
        VFGOTLBC = 0x0F50, ReadOnly;
        /// Free-running timer (µs).
        FRTIMER = 0x1048, ReadOnly;
        /// Extended interrupt cause set.
        EICS = 0x1520, WriteOnly;
        /// Extended interrupt mask set/read.
        EIMS = 0x1524, ReadWrite;
        /// Extended interrupt mask clear.
        EIMC = 0x1528, WriteOnly;
        /// Extended interrupt auto clear.
        EIAC = 0x152C, ReadWrite;
        /// Extended interrupt auto mask.
        EIAM = 0x1530, ReadWrite;
        /// Extended interrupt cause.
        EICR = 0x1580, ReadClearWriteOneClear;
        /// Interrupt vector allocation for the VF's queues.
        IVAR0 = 0x1700, ReadWrite;
        /// Interrupt vector allocation for the mailbox ("other") cause.
        IVAR_MISC = 0x1740, ReadWrite;
        /// RX packet buffer wrap-around counter.
        PBRWAC = 0x24E8, ReadOnly;
        /// TX packet buffer wrap-around counter.
        PBTWAC = 0x34E8, ReadOnly;
    }
    arrays {
        /// Mailbox memory shared with the PF, 16 dwords.
        VMBMEM = 0x0800 + 4 * 16, ReadWrite;
        /// Interrupt throttle per MSI-X vector.
        EITR = 0x1680 + 4 * 3, ReadWrite;
        /// RX descriptor base low (VF queue 0, 1).
        RDBAL = 0x2800 + 0x100 * 2, ReadWrite;
        /// RX descriptor base high.
        RDBAH = 0x2804 + 0x100 * 2, ReadWrite;
        /// RX descriptor ring length in bytes.
        RDLEN = 0x2808 + 0x100 * 2, ReadWrite;
        /// Split and replication receive control.
        SRRCTL = 0x280C + 0x100 * 2, ReadWrite;
        /// RX descriptor head.
        RDH = 0x2810 + 0x100 * 2, ReadWrite;
        /// RX DCA control.
        RXCTL = 0x2814 + 0x100 * 2, ReadWrite;
        /// RX descriptor tail.
        RDT = 0x2818 + 0x100 * 2, ReadWrite;
        /// RX descriptor control.
        RXDCTL = 0x2828 + 0x100 * 2, ReadWrite;
        /// RX queue drop packet count.
        RQDPC = 0x2830 + 0x100 * 2, ReadClear;
        /// TX descriptor base low.
        TDBAL = 0x3800 + 0x100 * 2, ReadWrite;
        /// TX descriptor base high.
        TDBAH = 0x3804 + 0x100 * 2, ReadWrite;
        /// TX descriptor ring length in bytes.
        TDLEN = 0x3808 + 0x100 * 2, ReadWrite;
        /// TX descriptor head.
        TDH = 0x3810 + 0x100 * 2, ReadWrite;
        /// TX DCA control.
        TXCTL = 0x3814 + 0x100 * 2, ReadWrite;
        /// TX descriptor tail.
        TDT = 0x3818 + 0x100 * 2, ReadWrite;
        /// TX descriptor control.
        TXDCTL = 0x3828 + 0x100 * 2, ReadWrite;
        /// TX descriptor completion write-back address low (bit 0: enable).
        TDWBAL = 0x3838 + 0x100 * 2, ReadWrite;
        /// TX descriptor completion write-back address high.
        TDWBAH = 0x383C + 0x100 * 2, ReadWrite;
    }
}

register_map! {
    /// Registers of the physical function's BAR0 (128 KiB) that the model implements.
    /// Datasheet chapter 8; DPDK `e1000_regs.h`; QEMU `igb_regs.h`.
    #[allow(non_camel_case_types, clippy::upper_case_acronyms)]
    pub enum PfReg {
        /// Device control: SLU (bit 6), RST (bit 26).
        CTRL = 0x0000, ReadWrite;
        /// Device status.
        STATUS = 0x0008, ReadOnly;
        /// Extended device control: PFRSTD (bit 14).
        CTRL_EXT = 0x0018, ReadWrite;
        /// MDI control: the PF's window on the internal PHY's registers (datasheet 8.2.4).
        MDIC = 0x0020, ReadWrite;
        /// Interrupt cause read (read to clear).
        ICR = 0x00C0, ReadClearWriteOneClear;
        /// Interrupt cause set.
        ICS = 0x00C8, WriteOnly;
        /// Interrupt mask set/read.
        IMS = 0x00D0, ReadWrite;
        /// Interrupt mask clear.
        IMC = 0x00D8, WriteOnly;
        /// Receive control.
        RCTL = 0x0100, ReadWrite;
        /// Transmit control.
        TCTL = 0x0400, ReadWrite;
        /// Free-running timer (µs).
        FRTIMER = 0x1048, ReadOnly;
        /// General purpose interrupt enable.
        GPIE = 0x1514, ReadWrite;
        /// Extended interrupt cause set.
        EICS = 0x1520, WriteOnly;
        /// Extended interrupt mask set/read.
        EIMS = 0x1524, ReadWrite;
        /// Extended interrupt mask clear.
        EIMC = 0x1528, WriteOnly;
        /// Extended interrupt auto clear.
        EIAC = 0x152C, ReadWrite;
        /// Extended interrupt auto mask.
        EIAM = 0x1530, ReadWrite;
        /// Extended interrupt cause.
        EICR = 0x1580, ReadClearWriteOneClear;
        /// Interrupt vector allocation, miscellaneous causes.
        IVAR_MISC = 0x1740, ReadWrite;
        /// Mailbox VF interrupt cause: VFREQ 7:0, VFACK 23:16.
        MBVFICR = 0x0C80, WriteOneClear;
        /// Mailbox VF interrupt mask (1 = enabled).
        MBVFIMR = 0x0C84, ReadWrite;
        /// VF level reset event, one bit per VF.
        VFLRE = 0x0C88, WriteOneClear;
        /// VF receive enable, one bit per pool.
        VFRE = 0x0C8C, ReadWrite;
        /// VF transmit enable, one bit per pool.
        VFTE = 0x0C90, ReadWrite;
        /// Queue drop enable.
        QDE = 0x2408, ReadWrite;
        /// DMA TX switch control: MAC/VLAN anti-spoof, local loopback, VMDq loopback enable.
        DTXSWC = 0x3500, ReadWrite;
        /// Last VM misbehaviour cause.
        LVMMC = 0x3548, ReadOnly;
        /// Wrong VM behaviour: anti-spoof events per pool (read to clear).
        WVBR = 0x3554, ReadClear;
        /// DMA TX control.
        DTXCTL = 0x3590, ReadWrite;
        /// TX rate scheduler: the queue whose RTTBCNRC the next access reaches (indirect).
        RTTDQSEL = 0x3604, ReadWrite;
        /// TX rate scheduler: MMW size (rate compensation window), global.
        RTTBCNRM = 0x3690, ReadWrite;
        /// TX rate scheduler config of the queue RTTDQSEL selects: RS_ENA and the rate factor.
        RTTBCNRC = 0x36B0, ReadWrite;
        /// Missed packets count.
        MPC = 0x4010, ReadClear;
        /// Good packets received count.
        GPRC = 0x4074, ReadClear;
        /// Broadcast packets received count.
        BPRC = 0x4078, ReadClear;
        /// Multicast packets received count.
        MPRC = 0x407C, ReadClear;
        /// Good packets transmitted count.
        GPTC = 0x4080, ReadClear;
        /// Good octets received count, low.
        GORCL = 0x4088, ReadClear;
        /// Good octets received count, high.
        GORCH = 0x408C, ReadClear;
        /// Good octets transmitted count, low.
        GOTCL = 0x4090, ReadClear;
        /// Good octets transmitted count, high.
        GOTCH = 0x4094, ReadClear;
        /// Total packets received.
        TPR = 0x40D0, ReadClear;
        /// Total packets transmitted.
        TPT = 0x40D4, ReadClear;
        /// Receive checksum control.
        RXCSUM = 0x5000, ReadWrite;
        /// Multiple receive queues command (VMDq mode).
        MRQC = 0x5818, ReadWrite;
        /// Virtualization control: default pool, replication.
        VT_CTL = 0x581C, ReadWrite;
        /// Replication offload control.
        RPLOLR = 0x5AF0, ReadWrite;
        /// IOV control.
        IOVCTL = 0x5BBC, ReadWrite;
        /// HAC extension: control (ENABLE bit 0). See docs/hac.md.
        HACCTL = 0x17000, ReadWrite;
        /// HAC extension: starvation guard, high-priority bytes sent back to back while
        /// low-priority frames wait before one low-priority frame goes (0 = strict priority).
        HACGUARD = 0x17004, ReadWrite;
        /// HAC extension: checkpoint tagging, bit n = VF n is checkpointing.
        HACTAG = 0x17008, ReadWrite;
        /// HAC extension: epoch argument of the next command.
        HACARG = 0x1700C, ReadWrite;
        /// HAC extension: command (OP 3:0, VF 10:8); executes on write.
        HACCMD = 0x17010, WriteOnly;
        /// HAC extension: status of the last command.
        HACSTS = 0x17014, ReadOnly;
        /// HAC extension: commit-to-first-frame time of the last commit that released frames, ns.
        HACC2F = 0x17018, ReadOnly;
        /// HAC extension: drain time (commit to the end of its last frame) of the last fully
        /// drained commit, ns.
        HACDRAIN = 0x1701C, ReadOnly;
    }
    arrays {
        /// Mailbox memory, 16 dwords for each of the 8 VFs.
        VMBMEM = 0x0800 + 4 * 128, ReadWrite;
        /// PF-to-VF mailbox control, one per VF.
        P2VMAILBOX = 0x0C00 + 4 * 8, ReadWrite;
        /// The VF's own mailbox register, as the PF sees it.
        V2PMAILBOX = 0x0C40 + 4 * 8, ReadOnly;
        /// Interrupt throttle, per vector.
        EITR = 0x1680 + 4 * 25, ReadWrite;
        /// Interrupt vector allocation, per queue pair.
        IVAR0 = 0x1700 + 4 * 8, ReadWrite;
        /// Multicast table array (4096 bits).
        MTA = 0x5200 + 4 * 128, ReadWrite;
        /// Receive address low, entries 0..16.
        RAL = 0x5400 + 8 * 16, ReadWrite;
        /// Receive address high, entries 0..16: AV bit 31, POOLSEL 25:18.
        RAH = 0x5404 + 8 * 16, ReadWrite;
        /// Receive address low, entries 16..24.
        RAL2 = 0x54E0 + 8 * 8, ReadWrite;
        /// Receive address high, entries 16..24.
        RAH2 = 0x54E4 + 8 * 8, ReadWrite;
        /// VLAN filter table array.
        VFTA = 0x5600 + 4 * 128, ReadWrite;
        /// Per-pool default VLAN insertion.
        VMVIR = 0x3700 + 4 * 8, ReadWrite;
        /// Per-pool offload control (VM offload register).
        VMOLR = 0x5AD0 + 4 * 8, ReadWrite;
        /// VLAN VM filter.
        VLVF = 0x5D00 + 4 * 32, ReadWrite;
        /// RX descriptor base low, physical queue 0..16.
        RDBAL = 0xC000 + 0x40 * 16, ReadWrite;
        /// RX descriptor base high.
        RDBAH = 0xC004 + 0x40 * 16, ReadWrite;
        /// RX descriptor ring length.
        RDLEN = 0xC008 + 0x40 * 16, ReadWrite;
        /// Split and replication receive control.
        SRRCTL = 0xC00C + 0x40 * 16, ReadWrite;
        /// RX descriptor head.
        RDH = 0xC010 + 0x40 * 16, ReadWrite;
        /// RX DCA control.
        RXCTL = 0xC014 + 0x40 * 16, ReadWrite;
        /// RX descriptor tail.
        RDT = 0xC018 + 0x40 * 16, ReadWrite;
        /// RX descriptor control.
        RXDCTL = 0xC028 + 0x40 * 16, ReadWrite;
        /// RX queue drop packet count.
        RQDPC = 0xC030 + 0x40 * 16, ReadClear;
        /// DMA VM offload (per pool): STRCRC 31.
        DVMOLR = 0xC038 + 0x40 * 8, ReadWrite;
        /// TX descriptor base low.
        TDBAL = 0xE000 + 0x40 * 16, ReadWrite;
        /// TX descriptor base high.
        TDBAH = 0xE004 + 0x40 * 16, ReadWrite;
        /// TX descriptor ring length.
        TDLEN = 0xE008 + 0x40 * 16, ReadWrite;
        /// TX descriptor head.
        TDH = 0xE010 + 0x40 * 16, ReadWrite;
        /// TX DCA control.
        TXCTL = 0xE014 + 0x40 * 16, ReadWrite;
        /// TX descriptor tail.
        TDT = 0xE018 + 0x40 * 16, ReadWrite;
        /// TX descriptor control.
        TXDCTL = 0xE028 + 0x40 * 16, ReadWrite;
        /// TX head write-back address low.
        TDWBAL = 0xE038 + 0x40 * 16, ReadWrite;
        /// TX head write-back address high.
        TDWBAH = 0xE03C + 0x40 * 16, ReadWrite;
        /// Per-VF good packets received (PF view of VFGPRC).
        PVFGPRC = 0x10010 + 0x100 * 8, ReadOnly;
        /// Per-VF good packets transmitted.
        PVFGPTC = 0x10014 + 0x100 * 8, ReadOnly;
        /// Per-VF good octets received.
        PVFGORC = 0x10018 + 0x100 * 8, ReadOnly;
        /// Per-VF good octets transmitted.
        PVFGOTC = 0x10034 + 0x100 * 8, ReadOnly;
        /// Per-VF multicast packets received (QEMU's offset; DPDK names 0x10038).
        PVFMPRC = 0x1003C + 0x100 * 8, ReadOnly;
        /// Per-VF good RX loopback packets.
        PVFGPRLBC = 0x10040 + 0x100 * 8, ReadOnly;
        /// Per-VF good TX loopback packets.
        PVFGPTLBC = 0x10044 + 0x100 * 8, ReadOnly;
        /// Per-VF good RX loopback octets.
        PVFGORLBC = 0x10048 + 0x100 * 8, ReadOnly;
        /// Per-VF good TX loopback octets.
        PVFGOTLBC = 0x10050 + 0x100 * 8, ReadOnly;
        /// HAC: current open epoch of VF n.
        HACOPEN = 0x17100 + 0x40 * 8, ReadOnly;
        /// HAC: last committed epoch of VF n.
        HACCOMMITTED = 0x17104 + 0x40 * 8, ReadOnly;
        /// HAC: frames buffered now (held and released, not yet on the wire).
        HACBUFF = 0x17108 + 0x40 * 8, ReadOnly;
        /// HAC: bytes buffered now.
        HACBUFB = 0x1710C + 0x40 * 8, ReadOnly;
        /// HAC: highest frames buffered.
        HACMAXF = 0x17110 + 0x40 * 8, ReadOnly;
        /// HAC: highest bytes buffered.
        HACMAXB = 0x17114 + 0x40 * 8, ReadOnly;
        /// HAC: frames released by commits (or unprotect).
        HACREL = 0x17118 + 0x40 * 8, ReadOnly;
        /// HAC: frames discarded by abort or failover.
        HACDISC = 0x1711C + 0x40 * 8, ReadOnly;
        /// HAC: backpressure events (the VF's TX stopped at the buffer limit).
        HACBP = 0x17120 + 0x40 * 8, ReadOnly;
        /// HAC: buffer limit in frames.
        HACLIMF = 0x17124 + 0x40 * 8, ReadWrite;
        /// HAC: buffer limit in bytes.
        HACLIMB = 0x17128 + 0x40 * 8, ReadWrite;
    }
}

/// Size of a VF's BAR0 in bytes.
pub const VF_BAR0_SIZE: u32 = 16 * 1024;
/// Size of the PF's BAR0 in bytes.
pub const PF_BAR0_SIZE: u32 = 128 * 1024;
/// Size of the MSI-X BAR (BAR3) of the PF and of each VF.
pub const MSIX_BAR_SIZE: u32 = 16 * 1024;
/// Offset of the pending-bit array inside the MSI-X BAR.
pub const MSIX_PBA_OFFSET: u32 = 0x2000;
/// MSI-X vectors of a VF (TX, RX, mailbox in Linux igbvf).
pub const VF_MSIX_VECTORS: usize = 3;
/// MSI-X vectors of the PF.
pub const PF_MSIX_VECTORS: usize = 10;
/// Dwords of mailbox memory per VF.
pub const MAILBOX_WORDS: usize = 16;
/// Receive-address (RAR) entries: 16 at RAL/RAH plus 8 at RAL2/RAH2.
pub const RAR_ENTRIES: usize = 24;

/// A register of map `M` whose value has the bitfields `R`.
///
/// Built only from a variant of `M`, so a PF register cannot be passed to a VF BAR accessor, and
/// only `FieldValue<u32, R>` values can be written through it.
pub struct Register<R: RegisterLongName, M: RegisterMap> {
    reg: M,
    _fields: PhantomData<R>,
}

impl<R: RegisterLongName, M: RegisterMap> Clone for Register<R, M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R: RegisterLongName, M: RegisterMap> Copy for Register<R, M> {}

impl<R: RegisterLongName, M: RegisterMap> Register<R, M> {
    /// Binds `reg` to the bitfields `R`.
    pub const fn new(reg: M) -> Self {
        Register {
            reg,
            _fields: PhantomData,
        }
    }
    /// The register in its map.
    pub fn reg(self) -> M {
        self.reg
    }
    /// Its byte offset.
    pub fn offset(self) -> RegisterOffset {
        self.reg.offset()
    }
}

/// A register array of map `M` whose elements have the bitfields `R`.
pub struct RegisterArray<R: RegisterLongName, M: RegisterMap> {
    at: fn(u8) -> M,
    count: u8,
    _fields: PhantomData<R>,
}

impl<R: RegisterLongName, M: RegisterMap> Clone for RegisterArray<R, M> {
    fn clone(&self) -> Self {
        *self
    }
}
impl<R: RegisterLongName, M: RegisterMap> Copy for RegisterArray<R, M> {}

impl<R: RegisterLongName, M: RegisterMap> RegisterArray<R, M> {
    /// Binds the array constructor `at` (a variant of `M`) with `count` elements.
    pub const fn new(at: fn(u8) -> M, count: u8) -> Self {
        RegisterArray {
            at,
            count,
            _fields: PhantomData,
        }
    }
    /// Element `index`, or `None` past the end.
    pub fn get(self, index: usize) -> Option<Register<R, M>> {
        (index < self.count as usize).then(|| Register::new((self.at)(index as u8)))
    }
    /// Element `index` without the bounds check of [`RegisterArray::get`]: past the end of the
    /// map's array it is the map's own out-of-range element, whose offset is [`OUTSIDE_BAR`]
    /// (no register answers it). For an index that is in range by construction, such as a
    /// physical queue index.
    pub fn at(self, index: u8) -> Register<R, M> {
        Register::new((self.at)(index))
    }
    /// Number of elements.
    pub fn len(self) -> usize {
        self.count as usize
    }
    /// True when the array has no elements.
    pub fn is_empty(self) -> bool {
        self.count == 0
    }
}

/// Bitfields of each register (`tock-registers` declarations; the generated enum and `Register`
/// marker items are documented by the field comments).
#[allow(
    missing_docs,
    non_snake_case,
    non_camel_case_types,
    clippy::upper_case_acronyms
)]
mod bitfields {
    use tock_registers::register_bitfields;
    register_bitfields![u32,
        /// CTRL (PF and VF).
        pub CTRL [
            /// Set link up (PF).
            SLU OFFSET(6) NUMBITS(1) [],
            /// Software reset; self-clearing. On a VF: VF reset.
            RST OFFSET(26) NUMBITS(1) []
        ],
        /// STATUS.
        pub STATUS [
            /// Full duplex.
            FD OFFSET(0) NUMBITS(1) [],
            /// Link up.
            LU OFFSET(1) NUMBITS(1) [],
            /// Transmission paused.
            TXOFF OFFSET(4) NUMBITS(1) [],
            /// Link speed.
            SPEED OFFSET(6) NUMBITS(2) [Speed10 = 0, Speed100 = 1, Speed1000 = 2],
            /// Number of VFs enabled (as QEMU reports it).
            NUM_VFS OFFSET(14) NUMBITS(4) [],
            /// SR-IOV mode (VFs enabled).
            IOV_MODE OFFSET(18) NUMBITS(1) []
        ],
        /// CTRL_EXT.
        pub CTRL_EXT [
            /// PF reset done: clears RSTI and sets RSTD in every VFMAILBOX.
            PFRSTD OFFSET(14) NUMBITS(1) []
        ],
        /// MDIC (datasheet 8.2.4).
        pub MDIC [
            /// PHY register data.
            DATA OFFSET(0) NUMBITS(16) [],
            /// PHY register address.
            REGADD OFFSET(16) NUMBITS(5) [],
            /// PHY address (1 for the internal PHY).
            PHYADD OFFSET(21) NUMBITS(5) [],
            /// Opcode.
            OP OFFSET(26) NUMBITS(2) [Write = 1, Read = 2],
            /// Ready: the access completed.
            R OFFSET(28) NUMBITS(1) [],
            /// Error.
            E OFFSET(30) NUMBITS(1) []
        ],
        /// VFMAILBOX (VF BAR) and V2PMAILBOX (PF BAR).
        pub VFMAILBOX [
            /// VF requests the PF to read its message.
            REQ OFFSET(0) NUMBITS(1) [],
            /// VF acknowledges the PF's message.
            ACK OFFSET(1) NUMBITS(1) [],
            /// VF owns the mailbox buffer.
            VFU OFFSET(2) NUMBITS(1) [],
            /// PF owns the mailbox buffer (read only here).
            PFU OFFSET(3) NUMBITS(1) [],
            /// PF wrote a message (read to clear).
            PFSTS OFFSET(4) NUMBITS(1) [],
            /// PF acknowledged the VF's message (read to clear).
            PFACK OFFSET(5) NUMBITS(1) [],
            /// PF reset in progress.
            RSTI OFFSET(6) NUMBITS(1) [],
            /// PF reset done (read to clear).
            RSTD OFFSET(7) NUMBITS(1) []
        ],
        /// P2VMAILBOX (PF BAR), one per VF.
        pub P2VMAILBOX [
            /// PF sends a message to the VF (self-clearing).
            STS OFFSET(0) NUMBITS(1) [],
            /// PF acknowledges the VF's message (self-clearing).
            ACK OFFSET(1) NUMBITS(1) [],
            /// VF owns the buffer (read only mirror).
            VFU OFFSET(2) NUMBITS(1) [],
            /// PF owns the buffer.
            PFU OFFSET(3) NUMBITS(1) [],
            /// Reset VFU (release a stuck VF lock).
            RVFU OFFSET(4) NUMBITS(1) []
        ],
        /// MBVFICR.
        pub MBVFICR [
            /// VF n wrote a message (REQ).
            VFREQ OFFSET(0) NUMBITS(8) [],
            /// VF n acknowledged (ACK).
            VFACK OFFSET(16) NUMBITS(8) []
        ],
        /// ICR / ICS / IMS / IMC (PF).
        pub ICR [
            /// Transmit descriptor written back.
            TXDW OFFSET(0) NUMBITS(1) [],
            /// Link status change.
            LSC OFFSET(2) NUMBITS(1) [],
            /// Receive descriptor minimum threshold.
            RXDMT0 OFFSET(4) NUMBITS(1) [],
            /// Receiver overrun.
            RXO OFFSET(6) NUMBITS(1) [],
            /// Receive timer.
            RXT0 OFFSET(7) NUMBITS(1) [],
            /// VF mailbox message or VF reset event.
            VMMB OFFSET(8) NUMBITS(1) [],
            /// DMA out of sync / malicious driver: an anti-spoof event or a DMA fault.
            DOUTSYNC OFFSET(28) NUMBITS(1) []
        ],
        /// RCTL.
        pub RCTL [
            /// Receiver enable.
            EN OFFSET(1) NUMBITS(1) [],
            /// Store bad packets.
            SBP OFFSET(2) NUMBITS(1) [],
            /// Unicast promiscuous.
            UPE OFFSET(3) NUMBITS(1) [],
            /// Multicast promiscuous.
            MPE OFFSET(4) NUMBITS(1) [],
            /// Long packet enable.
            LPE OFFSET(5) NUMBITS(1) [],
            /// Loopback mode.
            LBM OFFSET(6) NUMBITS(2) [],
            /// Broadcast accept mode.
            BAM OFFSET(15) NUMBITS(1) [],
            /// Receive buffer size (with BSEX).
            BSIZE OFFSET(16) NUMBITS(2) [B2048 = 0, B1024 = 1, B512 = 2, B256 = 3],
            /// VLAN filter enable.
            VFE OFFSET(18) NUMBITS(1) [],
            /// Strip Ethernet CRC.
            SECRC OFFSET(26) NUMBITS(1) []
        ],
        /// TCTL.
        pub TCTL [
            /// Transmit enable.
            EN OFFSET(1) NUMBITS(1) [],
            /// Pad short packets.
            PSP OFFSET(3) NUMBITS(1) []
        ],
        /// TXDCTL.
        pub TXDCTL [
            /// Prefetch threshold.
            PTHRESH OFFSET(0) NUMBITS(6) [],
            /// Host threshold.
            HTHRESH OFFSET(8) NUMBITS(6) [],
            /// Write-back threshold.
            WTHRESH OFFSET(16) NUMBITS(6) [],
            /// Threshold granularity.
            GRAN OFFSET(24) NUMBITS(1) [],
            /// Queue enable.
            ENABLE OFFSET(25) NUMBITS(1) [],
            /// Software flush.
            SWFLSH OFFSET(26) NUMBITS(1) [],
            /// Arbitration priority (1 = high).
            PRIORITY OFFSET(27) NUMBITS(1) []
        ],
        /// RXDCTL.
        pub RXDCTL [
            /// Prefetch threshold.
            PTHRESH OFFSET(0) NUMBITS(5) [],
            /// Host threshold.
            HTHRESH OFFSET(8) NUMBITS(5) [],
            /// Write-back threshold.
            WTHRESH OFFSET(16) NUMBITS(5) [],
            /// Queue enable. Clearing it stops the queue at once in the model, so it reads back 0
        /// immediately (drivers such as DPDK poll for that); a DMA fault also clears it.
            ENABLE OFFSET(25) NUMBITS(1) [],
            /// Software flush.
            SWFLSH OFFSET(26) NUMBITS(1) []
        ],
        /// SRRCTL.
        pub SRRCTL [
            /// Packet buffer size in KiB (0: use RCTL.BSIZE).
            BSIZEPACKET OFFSET(0) NUMBITS(7) [],
            /// Header buffer size in 64-byte units.
            BSIZEHEADER OFFSET(8) NUMBITS(6) [],
            /// Descriptor minimum threshold (units of 16 descriptors).
            RDMTS OFFSET(20) NUMBITS(5) [],
            /// Descriptor type.
            DESCTYPE OFFSET(25) NUMBITS(3) [
                Legacy = 0, AdvancedOneBuffer = 1, HeaderSplit = 2, Replication = 3,
                ReplicationLargePacket = 4, HeaderSplitAlways = 5
            ],
            /// Timestamp received packets.
            TIMESTAMP OFFSET(30) NUMBITS(1) [],
            /// Drop packets when no descriptor is available.
            DROP_EN OFFSET(31) NUMBITS(1) []
        ],
        /// TDWBAL.
        pub TDWBAL [
            /// Head write-back enable.
            ENABLE OFFSET(0) NUMBITS(1) [],
            /// Address bits 31:2.
            ADDR OFFSET(2) NUMBITS(30) []
        ],
        /// IVAR0 of a VF (one byte per queue cause).
        pub IVAR0 [
            /// Vector for RX queue 0.
            RX0 OFFSET(0) NUMBITS(5) [],
            /// RX queue 0 entry valid.
            RX0_VALID OFFSET(7) NUMBITS(1) [],
            /// Vector for TX queue 0.
            TX0 OFFSET(8) NUMBITS(5) [],
            /// TX queue 0 entry valid.
            TX0_VALID OFFSET(15) NUMBITS(1) [],
            /// Vector for RX queue 1.
            RX1 OFFSET(16) NUMBITS(5) [],
            /// RX queue 1 entry valid.
            RX1_VALID OFFSET(23) NUMBITS(1) [],
            /// Vector for TX queue 1.
            TX1 OFFSET(24) NUMBITS(5) [],
            /// TX queue 1 entry valid.
            TX1_VALID OFFSET(31) NUMBITS(1) []
        ],
        /// IVAR_MISC.
        pub IVAR_MISC [
            /// Vector for the mailbox / other cause.
            VECTOR OFFSET(0) NUMBITS(5) [],
            /// Entry valid.
            VALID OFFSET(7) NUMBITS(1) []
        ],
        /// IVAR_MISC of the PF (datasheet 8.8.15): the vectors of the TCP timer and of the
        /// "other" causes (ICR).
        pub IVAR_MISC_PF [
            /// Vector for the TCP timer.
            TCP_TIMER OFFSET(0) NUMBITS(5) [],
            /// TCP timer entry valid.
            TCP_TIMER_VALID OFFSET(7) NUMBITS(1) [],
            /// Vector for the other causes.
            OTHER OFFSET(8) NUMBITS(5) [],
            /// Other-causes entry valid.
            OTHER_VALID OFFSET(15) NUMBITS(1) []
        ],
        /// WVBR: pools whose frames the anti-spoof check dropped (read to clear).
        pub WVBR [
            /// Bit n: pool n sent a frame with a source MAC address it does not own.
            MAC_SPOOF OFFSET(0) NUMBITS(8) [],
            /// Bit n: pool n sent a frame tagged with a VLAN it is not a member of.
            VLAN_SPOOF OFFSET(8) NUMBITS(8) []
        ],
        /// LVMMC: the last queue the device stopped for misbehaviour (a DMA fault), and its
        /// direction.
        pub LVMMC [
            /// Physical queue index.
            QUEUE OFFSET(0) NUMBITS(5) [],
            /// A TX queue stopped.
            TX OFFSET(8) NUMBITS(1) [],
            /// An RX queue stopped.
            RX OFFSET(9) NUMBITS(1) []
        ],
        /// EITR.
        pub EITR [
            /// Interval in 1 µs units (bits 14:2).
            INTERVAL OFFSET(2) NUMBITS(13) [],
            /// Counter ignore.
            CNT_IGNR OFFSET(31) NUMBITS(1) []
        ],
        /// GPIE.
        pub GPIE [
            /// Non selective interrupt clear on read.
            NSICR OFFSET(0) NUMBITS(1) [],
            /// MSI-X mode.
            MSIX_MODE OFFSET(4) NUMBITS(1) [],
            /// Extended interrupt auto mask enable.
            EIAME OFFSET(30) NUMBITS(1) [],
            /// PBA support.
            PBA_SUPPORT OFFSET(31) NUMBITS(1) []
        ],
        /// DTXSWC.
        pub DTXSWC [
            /// MAC anti-spoof enable, one bit per pool.
            MAC_SPOOF OFFSET(0) NUMBITS(8) [],
            /// VLAN anti-spoof enable, one bit per pool.
            VLAN_SPOOF OFFSET(8) NUMBITS(8) [],
            /// Local loopback enable, one bit per pool.
            LLE OFFSET(16) NUMBITS(8) [],
            /// VM-to-VM loopback (internal switching) enable.
            VMDQ_LOOPBACK_EN OFFSET(31) NUMBITS(1) []
        ],
        /// RTTDQSEL: the queue the RTTBCNRC access reaches.
        pub RTTDQSEL [
            /// Physical queue index (0..16).
            TXDQ_IDX OFFSET(0) NUMBITS(4) []
        ],
        /// RTTBCNRM: rate compensation window.
        pub RTTBCNRM [
            /// MMW size: credit a limited queue may bank while it waits, in 512-byte units
            /// (the unit is inferred from Linux's "0x14 for 9728-byte jumbo frames").
            MMW_SIZE OFFSET(0) NUMBITS(10) []
        ],
        /// RTTBCNRC: the selected queue's rate limiter (Linux `igb_set_vf_rate_limit`).
        pub RTTBCNRC [
            /// Rate factor, fractional part (14 bits of a 14.14 fixed-point number).
            RF_DEC OFFSET(0) NUMBITS(14) [],
            /// Rate factor, integer part: link speed / rate.
            RF_INT OFFSET(14) NUMBITS(14) [],
            /// Rate scheduler enable.
            RS_ENA OFFSET(31) NUMBITS(1) []
        ],
        /// DTXCTL.
        pub DTXCTL [
            /// 802.3 length/type handling.
            LL8023 OFFSET(2) NUMBITS(1) [],
            /// VLAN added by the PF driver.
            VLAN_ADDED OFFSET(3) NUMBITS(1) [],
            /// Out of sync enable.
            OOS_ENABLE OFFSET(4) NUMBITS(1) [],
            /// Malicious driver protection.
            MDP_EN OFFSET(5) NUMBITS(1) [],
            /// Raise ICR.DOUTSYNC on a spoof event.
            SPOOF_INT OFFSET(6) NUMBITS(1) []
        ],
        /// VMOLR.
        pub VMOLR [
            /// Receive long packet maximum length.
            RLPML OFFSET(0) NUMBITS(14) [],
            /// Long packet enable.
            LPE OFFSET(16) NUMBITS(1) [],
            /// RSS enable.
            RSSE OFFSET(17) NUMBITS(1) [],
            /// VLAN promiscuous.
            VPE OFFSET(23) NUMBITS(1) [],
            /// Accept untagged packets.
            AUPE OFFSET(24) NUMBITS(1) [],
            /// Accept packets matched by the MTA.
            ROMPE OFFSET(25) NUMBITS(1) [],
            /// Accept packets matched by the UTA.
            ROPE OFFSET(26) NUMBITS(1) [],
            /// Accept broadcast.
            BAM OFFSET(27) NUMBITS(1) [],
            /// Multicast promiscuous.
            MPME OFFSET(28) NUMBITS(1) [],
            /// Unicast promiscuous (I350).
            UPE OFFSET(29) NUMBITS(1) [],
            /// Strip VLAN tag.
            STRVLAN OFFSET(30) NUMBITS(1) [],
            /// Strip CRC.
            STRCRC OFFSET(31) NUMBITS(1) []
        ],
        /// VMVIR.
        pub VMVIR [
            /// Default VLAN tag.
            VLAN OFFSET(0) NUMBITS(16) [],
            /// VLAN action.
            VLANA OFFSET(30) NUMBITS(2) [UseDescriptor = 0, AlwaysDefault = 1, Never = 2]
        ],
        /// VLVF.
        pub VLVF [
            /// VLAN id.
            VID OFFSET(0) NUMBITS(12) [],
            /// Pool select.
            POOLSEL OFFSET(12) NUMBITS(8) [],
            /// Long VLAN (jumbo) enable.
            LVLAN OFFSET(20) NUMBITS(1) [],
            /// Entry enabled.
            VLANID_ENABLE OFFSET(31) NUMBITS(1) []
        ],
        /// RAH / RAH2.
        pub RAH [
            /// Address octets 4..6.
            RAH OFFSET(0) NUMBITS(16) [],
            /// Pool select, one bit per pool.
            POOLSEL OFFSET(18) NUMBITS(8) [],
            /// Address valid.
            AV OFFSET(31) NUMBITS(1) []
        ],
        /// VT_CTL.
        pub VT_CTL [
            /// Default pool.
            DEF_POOL OFFSET(7) NUMBITS(3) [],
            /// Ignore MAC for pool selection.
            IGNORE_MAC OFFSET(28) NUMBITS(1) [],
            /// Disable the default pool.
            DIS_DEF_POOL OFFSET(29) NUMBITS(1) [],
            /// Replication enable.
            VM_REPL_EN OFFSET(30) NUMBITS(1) []
        ],
        /// MRQC.
        pub MRQC [
            /// Multiple receive queues enable (bit 0 set: VMDq).
            MRQE OFFSET(0) NUMBITS(3) [Vmdq = 3, VmdqRss = 5]
        ],
        /// HACCTL (HAC extension).
        pub HACCTL [
            /// The HAC block is active.
            ENABLE OFFSET(0) NUMBITS(1) []
        ],
        /// HACCMD (HAC extension).
        pub HACCMD [
            /// Operation.
            OP OFFSET(0) NUMBITS(4) [
                OpenEpoch = 1, Commit = 2, Abort = 3, Failover = 4, Unprotect = 5
            ],
            /// The VF the command applies to.
            VF OFFSET(8) NUMBITS(3) []
        ],
        /// HACSTS (HAC extension).
        pub HACSTS [
            /// Result of the last command.
            RESULT OFFSET(0) NUMBITS(4) [
                Ok = 0, BadOp = 1, NotTagged = 2, BadEpoch = 3, Disabled = 4
            ],
            /// Commands executed (wraps).
            COUNT OFFSET(16) NUMBITS(16) []
        ],
        /// DVMOLR.
        pub DVMOLR [
            /// Hide VLAN.
            HIDEVLAN OFFSET(29) NUMBITS(1) [],
            /// Strip VLAN.
            STRVLAN OFFSET(30) NUMBITS(1) [],
            /// Strip CRC.
            STRCRC OFFSET(31) NUMBITS(1) []
        ]
    ];
}
pub use bitfields::*;

/// Typed handles of the VF registers the driver uses.
pub mod vf {
    use super::*;

    /// CTRL of a VF.
    pub const CTRL: Register<super::CTRL::Register, VfReg> = Register::new(VfReg::CTRL);
    /// STATUS seen by a VF.
    pub const STATUS: Register<super::STATUS::Register, VfReg> = Register::new(VfReg::STATUS);
    /// VFMAILBOX.
    pub const VFMAILBOX: Register<super::VFMAILBOX::Register, VfReg> =
        Register::new(VfReg::VFMAILBOX);
    /// VMBMEM words.
    pub const VMBMEM: RegisterArray<(), VfReg> = RegisterArray::new(VfReg::VMBMEM, 16);
    /// EICS.
    pub const EICS: Register<(), VfReg> = Register::new(VfReg::EICS);
    /// EIMS.
    pub const EIMS: Register<(), VfReg> = Register::new(VfReg::EIMS);
    /// EIMC.
    pub const EIMC: Register<(), VfReg> = Register::new(VfReg::EIMC);
    /// EIAC.
    pub const EIAC: Register<(), VfReg> = Register::new(VfReg::EIAC);
    /// EIAM.
    pub const EIAM: Register<(), VfReg> = Register::new(VfReg::EIAM);
    /// EICR.
    pub const EICR: Register<(), VfReg> = Register::new(VfReg::EICR);
    /// EITR per vector.
    pub const EITR: RegisterArray<super::EITR::Register, VfReg> =
        RegisterArray::new(VfReg::EITR, 3);
    /// IVAR0.
    pub const IVAR0: Register<super::IVAR0::Register, VfReg> = Register::new(VfReg::IVAR0);
    /// IVAR_MISC.
    pub const IVAR_MISC: Register<super::IVAR_MISC::Register, VfReg> =
        Register::new(VfReg::IVAR_MISC);
    /// RDBAL per VF queue.
    pub const RDBAL: RegisterArray<(), VfReg> = RegisterArray::new(VfReg::RDBAL, 2);
    /// RDBAH per VF queue.
    pub const RDBAH: RegisterArray<(), VfReg> = RegisterArray::new(VfReg::RDBAH, 2);
    /// RDLEN per VF queue.
    pub const RDLEN: RegisterArray<(), VfReg> = RegisterArray::new(VfReg::RDLEN, 2);
    /// SRRCTL per VF queue.
    pub const SRRCTL: RegisterArray<super::SRRCTL::Register, VfReg> =
        RegisterArray::new(VfReg::SRRCTL, 2);
    /// RDH per VF queue.
    pub const RDH: RegisterArray<(), VfReg> = RegisterArray::new(VfReg::RDH, 2);
    /// RDT per VF queue.
    pub const RDT: RegisterArray<(), VfReg> = RegisterArray::new(VfReg::RDT, 2);
    /// RXDCTL per VF queue.
    pub const RXDCTL: RegisterArray<super::RXDCTL::Register, VfReg> =
        RegisterArray::new(VfReg::RXDCTL, 2);
    /// RQDPC per VF queue.
    pub const RQDPC: RegisterArray<(), VfReg> = RegisterArray::new(VfReg::RQDPC, 2);
    /// TDBAL per VF queue.
    pub const TDBAL: RegisterArray<(), VfReg> = RegisterArray::new(VfReg::TDBAL, 2);
    /// TDBAH per VF queue.
    pub const TDBAH: RegisterArray<(), VfReg> = RegisterArray::new(VfReg::TDBAH, 2);
    /// TDLEN per VF queue.
    pub const TDLEN: RegisterArray<(), VfReg> = RegisterArray::new(VfReg::TDLEN, 2);
    /// TDH per VF queue.
    pub const TDH: RegisterArray<(), VfReg> = RegisterArray::new(VfReg::TDH, 2);
    /// TDT per VF queue.
    pub const TDT: RegisterArray<(), VfReg> = RegisterArray::new(VfReg::TDT, 2);
    /// TXDCTL per VF queue.
    pub const TXDCTL: RegisterArray<super::TXDCTL::Register, VfReg> =
        RegisterArray::new(VfReg::TXDCTL, 2);
    /// TDWBAL per VF queue.
    pub const TDWBAL: RegisterArray<super::TDWBAL::Register, VfReg> =
        RegisterArray::new(VfReg::TDWBAL, 2);
    /// TDWBAH per VF queue.
    pub const TDWBAH: RegisterArray<(), VfReg> = RegisterArray::new(VfReg::TDWBAH, 2);
    /// VFGPRC.
    pub const VFGPRC: Register<(), VfReg> = Register::new(VfReg::VFGPRC);
    /// VFGPTC.
    pub const VFGPTC: Register<(), VfReg> = Register::new(VfReg::VFGPTC);
    /// VFGORC.
    pub const VFGORC: Register<(), VfReg> = Register::new(VfReg::VFGORC);
    /// VFGOTC.
    pub const VFGOTC: Register<(), VfReg> = Register::new(VfReg::VFGOTC);
    /// VFMPRC.
    pub const VFMPRC: Register<(), VfReg> = Register::new(VfReg::VFMPRC);
}

/// Typed handles of the PF registers the PF agent uses.
pub mod pf {
    use super::*;

    /// CTRL of the PF.
    pub const CTRL: Register<super::CTRL::Register, PfReg> = Register::new(PfReg::CTRL);
    /// STATUS.
    pub const STATUS: Register<super::STATUS::Register, PfReg> = Register::new(PfReg::STATUS);
    /// CTRL_EXT.
    pub const CTRL_EXT: Register<super::CTRL_EXT::Register, PfReg> = Register::new(PfReg::CTRL_EXT);
    /// MDIC.
    pub const MDIC: Register<super::MDIC::Register, PfReg> = Register::new(PfReg::MDIC);
    /// ICR.
    pub const ICR: Register<super::ICR::Register, PfReg> = Register::new(PfReg::ICR);
    /// IMS.
    pub const IMS: Register<super::ICR::Register, PfReg> = Register::new(PfReg::IMS);
    /// IMC.
    pub const IMC: Register<super::ICR::Register, PfReg> = Register::new(PfReg::IMC);
    /// RCTL.
    pub const RCTL: Register<super::RCTL::Register, PfReg> = Register::new(PfReg::RCTL);
    /// TCTL.
    pub const TCTL: Register<super::TCTL::Register, PfReg> = Register::new(PfReg::TCTL);
    /// P2VMAILBOX per VF.
    pub const P2VMAILBOX: RegisterArray<super::P2VMAILBOX::Register, PfReg> =
        RegisterArray::new(PfReg::P2VMAILBOX, 8);
    /// V2PMAILBOX per VF.
    pub const V2PMAILBOX: RegisterArray<super::VFMAILBOX::Register, PfReg> =
        RegisterArray::new(PfReg::V2PMAILBOX, 8);
    /// VMBMEM (16 words per VF: word w of VF n is element 16·n + w).
    pub const VMBMEM: RegisterArray<(), PfReg> = RegisterArray::new(PfReg::VMBMEM, 128);
    /// MBVFICR.
    pub const MBVFICR: Register<super::MBVFICR::Register, PfReg> = Register::new(PfReg::MBVFICR);
    /// MBVFIMR.
    pub const MBVFIMR: Register<(), PfReg> = Register::new(PfReg::MBVFIMR);
    /// VFLRE.
    pub const VFLRE: Register<(), PfReg> = Register::new(PfReg::VFLRE);
    /// VFRE.
    pub const VFRE: Register<(), PfReg> = Register::new(PfReg::VFRE);
    /// VFTE.
    pub const VFTE: Register<(), PfReg> = Register::new(PfReg::VFTE);
    /// DTXSWC.
    pub const DTXSWC: Register<super::DTXSWC::Register, PfReg> = Register::new(PfReg::DTXSWC);
    /// WVBR.
    pub const WVBR: Register<super::WVBR::Register, PfReg> = Register::new(PfReg::WVBR);
    /// MRQC.
    pub const MRQC: Register<super::MRQC::Register, PfReg> = Register::new(PfReg::MRQC);
    /// VT_CTL.
    pub const VT_CTL: Register<super::VT_CTL::Register, PfReg> = Register::new(PfReg::VT_CTL);
    /// VMOLR per pool.
    pub const VMOLR: RegisterArray<super::VMOLR::Register, PfReg> =
        RegisterArray::new(PfReg::VMOLR, 8);
    /// VMVIR per pool.
    pub const VMVIR: RegisterArray<super::VMVIR::Register, PfReg> =
        RegisterArray::new(PfReg::VMVIR, 8);
    /// VLVF entries.
    pub const VLVF: RegisterArray<super::VLVF::Register, PfReg> =
        RegisterArray::new(PfReg::VLVF, 32);
    /// RAL entries 0..16.
    pub const RAL: RegisterArray<(), PfReg> = RegisterArray::new(PfReg::RAL, 16);
    /// RAH entries 0..16.
    pub const RAH: RegisterArray<super::RAH::Register, PfReg> = RegisterArray::new(PfReg::RAH, 16);
    /// RAL entries 16..24.
    pub const RAL2: RegisterArray<(), PfReg> = RegisterArray::new(PfReg::RAL2, 8);
    /// RAH entries 16..24.
    pub const RAH2: RegisterArray<super::RAH::Register, PfReg> = RegisterArray::new(PfReg::RAH2, 8);
    /// MTA words.
    pub const MTA: RegisterArray<(), PfReg> = RegisterArray::new(PfReg::MTA, 128);
    /// VFTA words.
    pub const VFTA: RegisterArray<(), PfReg> = RegisterArray::new(PfReg::VFTA, 128);
    /// HACCTL (HAC extension).
    pub const HACCTL: Register<super::HACCTL::Register, PfReg> = Register::new(PfReg::HACCTL);
    /// HACCMD (HAC extension).
    pub const HACCMD: Register<super::HACCMD::Register, PfReg> = Register::new(PfReg::HACCMD);
    /// HACSTS (HAC extension).
    pub const HACSTS: Register<super::HACSTS::Register, PfReg> = Register::new(PfReg::HACSTS);
    /// IVAR_MISC (PF layout).
    pub const IVAR_MISC: Register<super::IVAR_MISC_PF::Register, PfReg> =
        Register::new(PfReg::IVAR_MISC);
    /// LVMMC.
    pub const LVMMC: Register<super::LVMMC::Register, PfReg> = Register::new(PfReg::LVMMC);
    /// DTXCTL.
    pub const DTXCTL: Register<super::DTXCTL::Register, PfReg> = Register::new(PfReg::DTXCTL);
    /// RTTDQSEL.
    pub const RTTDQSEL: Register<super::RTTDQSEL::Register, PfReg> = Register::new(PfReg::RTTDQSEL);
    /// RTTBCNRM.
    pub const RTTBCNRM: Register<super::RTTBCNRM::Register, PfReg> = Register::new(PfReg::RTTBCNRM);
    /// RTTBCNRC (of the queue RTTDQSEL selects).
    pub const RTTBCNRC: Register<super::RTTBCNRC::Register, PfReg> = Register::new(PfReg::RTTBCNRC);
    /// TXDCTL of the 16 physical queues.
    pub const TXDCTL: RegisterArray<super::TXDCTL::Register, PfReg> =
        RegisterArray::new(PfReg::TXDCTL, 16);
    /// RXDCTL of the 16 physical queues.
    pub const RXDCTL: RegisterArray<super::RXDCTL::Register, PfReg> =
        RegisterArray::new(PfReg::RXDCTL, 16);
    /// SRRCTL of the 16 physical queues.
    pub const SRRCTL: RegisterArray<super::SRRCTL::Register, PfReg> =
        RegisterArray::new(PfReg::SRRCTL, 16);
    /// TDWBAL of the 16 physical queues.
    pub const TDWBAL: RegisterArray<super::TDWBAL::Register, PfReg> =
        RegisterArray::new(PfReg::TDWBAL, 16);
}

/// RAL/RAH pair of receive-address entry `index` (0..24), spanning RAL/RAH and RAL2/RAH2.
pub fn rar_entry(index: usize) -> Option<(PfReg, PfReg)> {
    match index {
        0..16 => Some((PfReg::RAL(index as u8), PfReg::RAH(index as u8))),
        16..RAR_ENTRIES => Some((PfReg::RAL2(index as u8 - 16), PfReg::RAH2(index as u8 - 16))),
        _ => None,
    }
}

/// The PF register behind a VF's queue register (`PQn = VFn + VQn·8`), for the queue registers
/// that the VF window maps one-to-one onto the PF's queue blocks.
pub fn vf_queue_register(reg: VfReg, vf: crate::VfIndex) -> Option<PfReg> {
    let q = |vq: u8| vf.queue(vq as usize).map(|q| q.get() as u8);
    Some(match reg {
        VfReg::RDBAL(i) => PfReg::RDBAL(q(i)?),
        VfReg::RDBAH(i) => PfReg::RDBAH(q(i)?),
        VfReg::RDLEN(i) => PfReg::RDLEN(q(i)?),
        VfReg::SRRCTL(i) => PfReg::SRRCTL(q(i)?),
        VfReg::RDH(i) => PfReg::RDH(q(i)?),
        VfReg::RXCTL(i) => PfReg::RXCTL(q(i)?),
        VfReg::RDT(i) => PfReg::RDT(q(i)?),
        VfReg::RXDCTL(i) => PfReg::RXDCTL(q(i)?),
        VfReg::RQDPC(i) => PfReg::RQDPC(q(i)?),
        VfReg::TDBAL(i) => PfReg::TDBAL(q(i)?),
        VfReg::TDBAH(i) => PfReg::TDBAH(q(i)?),
        VfReg::TDLEN(i) => PfReg::TDLEN(q(i)?),
        VfReg::TDH(i) => PfReg::TDH(q(i)?),
        VfReg::TXCTL(i) => PfReg::TXCTL(q(i)?),
        VfReg::TDT(i) => PfReg::TDT(q(i)?),
        VfReg::TXDCTL(i) => PfReg::TXDCTL(q(i)?),
        VfReg::TDWBAL(i) => PfReg::TDWBAL(q(i)?),
        VfReg::TDWBAH(i) => PfReg::TDWBAH(q(i)?),
        _ => return None,
    })
}

/// Builds a register value from fields of register `R`.
pub fn value<R: RegisterLongName>(fields: FieldValue<u32, R>) -> u32 {
    fields.value
}

/// Views a raw value as register `R`, to test its fields.
pub fn view<R: RegisterLongName>(raw: u32) -> LocalRegisterCopy<u32, R> {
    LocalRegisterCopy::new(raw)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::VfIndex;

    #[test]
    fn every_declared_offset_decodes_to_itself() {
        for &(name, base, stride, count, _) in VfReg::ALL {
            for i in 0..count {
                let off = RegisterOffset(base + stride * i);
                let reg = VfReg::decode(off).unwrap_or_else(|| panic!("{name} {off}"));
                assert_eq!(reg.offset(), off, "{name}");
                assert_eq!(reg.name(), name);
                assert!(off.0 < VF_BAR0_SIZE);
            }
        }
        for &(name, base, stride, count, _) in PfReg::ALL {
            for i in 0..count {
                let off = RegisterOffset(base + stride * i);
                let reg = PfReg::decode(off).unwrap_or_else(|| panic!("{name} {off}"));
                assert_eq!(reg.offset(), off, "{name}");
                assert!(off.0 < PF_BAR0_SIZE);
            }
        }
    }

    #[test]
    fn array_elements_past_the_end_alias_nothing() {
        // MTA has 128 words and RAL/RAH 16 entries; element 197 of MTA used to be RAH2(6).
        assert_eq!(PfReg::MTA(127).offset().0, 0x53FC);
        assert_eq!(PfReg::MTA(128).offset().0, OUTSIDE_BAR);
        assert_eq!(PfReg::MTA(197).offset().0, OUTSIDE_BAR);
        assert_eq!(PfReg::RAL(16).offset().0, OUTSIDE_BAR);
        assert_eq!(VfReg::TDT(2).offset().0, OUTSIDE_BAR);
        assert_eq!(PfReg::decode(RegisterOffset(OUTSIDE_BAR)), None);
    }

    #[test]
    fn offsets_match_igbvf_headers() {
        assert_eq!(VfReg::VFMAILBOX.offset().0, 0x0C40);
        assert_eq!(VfReg::TDT(1).offset().0, 0x3918);
        assert_eq!(VfReg::RXDCTL(0).offset().0, 0x2828);
        assert_eq!(PfReg::RDBAL(9).offset().0, 0xC240);
        assert_eq!(PfReg::VMOLR(3).offset().0, 0x5ADC);
        assert_eq!(PfReg::RAH2(1).offset().0, 0x54EC);
        assert_eq!(VfReg::decode(RegisterOffset(0x0C44)), None);
        assert_eq!(
            VfReg::decode(RegisterOffset(0x3A18)),
            None,
            "VF queue 2 does not exist"
        );
    }

    #[test]
    fn vf_queue_registers_map_to_physical_queues() {
        let vf = VfIndex::new(2).unwrap();
        assert_eq!(vf_queue_register(VfReg::TDT(0), vf), Some(PfReg::TDT(2)));
        assert_eq!(
            vf_queue_register(VfReg::RDBAL(1), vf),
            Some(PfReg::RDBAL(10))
        );
        assert_eq!(vf_queue_register(VfReg::CTRL, vf), None);
    }

    #[test]
    fn model_side_bitfields_keep_the_words_the_model_writes() {
        assert_eq!(value(LVMMC::QUEUE.val(3) + LVMMC::TX::SET), 0x103);
        assert_eq!(value(LVMMC::QUEUE.val(9) + LVMMC::RX::SET), 0x209);
        assert_eq!(value(WVBR::MAC_SPOOF.val(1 << 2)), 0x4);
        assert_eq!(value(WVBR::VLAN_SPOOF.val(1 << 2)), 0x400);
        assert_eq!(
            value(IVAR_MISC_PF::OTHER.val(5) + IVAR_MISC_PF::OTHER_VALID::SET),
            0x8500
        );
        assert_eq!(value(HACCMD::OP::Commit + HACCMD::VF.val(3)), 0x302);
        assert_eq!(
            value(HACSTS::RESULT::BadEpoch + HACSTS::COUNT.val(7)),
            0x0007_0003
        );
    }

    #[test]
    fn unchecked_array_elements_past_the_end_are_outside_the_bar() {
        assert_eq!(pf::TXDCTL.at(3).reg(), PfReg::TXDCTL(3));
        assert_eq!(
            pf::TXDCTL.get(3).map(|r| r.reg()),
            Some(pf::TXDCTL.at(3).reg())
        );
        assert_eq!(pf::TXDCTL.at(16).offset().0, OUTSIDE_BAR);
        assert!(pf::TXDCTL.get(16).is_none());
    }

    #[test]
    fn bitfields_have_datasheet_values() {
        assert_eq!(value(CTRL::RST::SET), 0x0400_0000);
        assert_eq!(
            value(TXDCTL::ENABLE::SET + TXDCTL::PRIORITY::SET),
            0x0A00_0000
        );
        assert_eq!(value(SRRCTL::DESCTYPE::AdvancedOneBuffer), 0x0200_0000);
        assert_eq!(value(SRRCTL::DESCTYPE::HeaderSplitAlways), 0x0A00_0000);
        assert_eq!(value(ICR::VMMB::SET), 0x100);
        assert_eq!(value(CTRL_EXT::PFRSTD::SET), 0x4000);
        assert_eq!(value(RAH::AV::SET + RAH::POOLSEL.val(1)), 0x8004_0000);
        assert!(view::<VFMAILBOX::Register>(0xB0).is_set(VFMAILBOX::RSTD));
    }
}
