//! Test support (feature `test-utils`): a PF brought up the way Linux igb does for SR-IOV, and a
//! tiny ring driver per VF that writes real descriptors into DMA memory. Used by the model's
//! tests, the fuzz targets and the examples; not a driver (that is the `driver` crate).
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

pub mod bench;

use std::sync::Arc;

use crate::{DmaTarget, FunctionId, Nic, NicConfig, SharedMemory};
use igb_hw::desc::{Descriptor, RxReadRepr, RxWritebackRepr, TxDataRepr};
use igb_hw::pci::{command, header, layout, msix};
use igb_hw::regs::{
    self, CTRL, CTRL_EXT, DTXSWC, IVAR_MISC, IVAR0, MRQC, PfReg, RAH, RCTL, RXDCTL, SRRCTL, TCTL,
    TXDCTL, VMOLR, VfReg,
};
use igb_hw::{Iova, MacAddress, VfIndex};

/// IOVA where each VF's memory is mapped.
pub const IOVA_BASE: u64 = 0x1_0000_0000;
/// Largest ring the helper supports.
pub const MAX_RING: u32 = 512;
pub const TX_RING_OFF: u64 = 0;
pub const RX_RING_OFF: u64 = 0x2000;
pub const TX_BUF_OFF: u64 = 0x4000;
pub const BUF_SIZE: u64 = 2048;
/// Largest amount of DMA memory a VF's [`VfRings`] maps (rings of [`MAX_RING`]); each maps
/// [`VfRings::mem_len`] = its rings and one buffer per descriptor, so small rings are cheap to
/// set up (the fuzz targets build one per input).
pub const MEM_SIZE: usize = (TX_BUF_OFF + 2 * MAX_RING as u64 * BUF_SIZE) as usize;

pub fn vf(n: usize) -> VfIndex {
    VfIndex::new(n).unwrap()
}

pub fn vf_mac(n: usize) -> MacAddress {
    MacAddress([0x02, 0x00, 0x00, 0x00, 0x00, 0x10 + n as u8])
}

/// A device with `num_vfs` VFs enabled and the PF configured as Linux igb does with SR-IOV:
/// link up, PF reset done, VMDq, VM-to-VM loopback, one RAR entry per VF, VFTE/VFRE set.
pub fn bring_up(num_vfs: usize, config: NicConfig) -> Nic {
    let mut nic = Nic::new(config);
    nic.enable_sriov(num_vfs as u16);
    nic.pf_write(PfReg::CTRL, regs::value(CTRL::SLU::SET));
    nic.pf_write(PfReg::CTRL_EXT, regs::value(CTRL_EXT::PFRSTD::SET));
    nic.pf_write(PfReg::MRQC, regs::value(MRQC::MRQE::Vmdq));
    nic.pf_write(PfReg::DTXSWC, regs::value(DTXSWC::VMDQ_LOOPBACK_EN::SET));
    nic.pf_write(
        PfReg::RCTL,
        regs::value(RCTL::EN::SET + RCTL::SECRC::SET + RCTL::BAM::SET),
    );
    nic.pf_write(PfReg::TCTL, regs::value(TCTL::EN::SET + TCTL::PSP::SET));
    for n in 0..num_vfs {
        let (ral, rah) = igb_hw::addr::mac_to_ral_rah(vf_mac(n));
        let (ral_reg, rah_reg) = regs::rar_entry(23 - n).unwrap();
        nic.pf_write(ral_reg, ral);
        nic.pf_write(
            rah_reg,
            rah | regs::value(RAH::AV::SET + RAH::POOLSEL.val(1 << n)),
        );
        nic.pf_write(
            PfReg::VMOLR(n as u8),
            regs::value(
                VMOLR::AUPE::SET + VMOLR::BAM::SET + VMOLR::ROMPE::SET + VMOLR::STRCRC::SET,
            ),
        );
    }
    let bits = (1u32 << num_vfs) - 1;
    nic.pf_write(PfReg::VFTE, bits);
    nic.pf_write(PfReg::VFRE, bits);
    for n in 0..num_vfs {
        let f = FunctionId::Vf(vf(n));
        nic.config_write(
            f,
            header::COMMAND as u16,
            &command::BUS_MASTER.to_le_bytes(),
        );
        nic.config_write(
            f,
            (layout::MSIX + msix::CONTROL) as u16,
            &msix::ENABLE.to_le_bytes(),
        );
        // Unmask the three MSI-X vectors.
        for v in 0..3u64 {
            nic.bar_write(f, 3, v * 16 + 12, &0u32.to_le_bytes());
        }
    }
    nic
}

/// A VF's rings in its own DMA memory.
pub struct VfRings {
    pub vf: VfIndex,
    pub mem: Arc<SharedMemory>,
    pub tx_count: u32,
    pub rx_count: u32,
    pub tx_tail: u32,
    pub tx_clean: u32,
    pub rx_clean: u32,
    /// Offset of the RX buffers: after one TX buffer per TX descriptor.
    pub rx_buf_off: u64,
}

impl VfRings {
    pub fn func(&self) -> FunctionId {
        FunctionId::Vf(self.vf)
    }

    /// Maps memory, programs TX and RX queue 0 and posts every RX buffer but one.
    pub fn new(nic: &mut Nic, n: usize, tx_count: u32, rx_count: u32) -> VfRings {
        assert!(
            tx_count <= MAX_RING && rx_count <= MAX_RING,
            "rings of at most {MAX_RING}"
        );
        let v = vf(n);
        let rx_buf_off = Self::rx_buf_offset(tx_count);
        let len = Self::mem_len(tx_count, rx_count);
        let mem = SharedMemory::new(len);
        nic.dma_map(
            FunctionId::Vf(v),
            Iova(IOVA_BASE),
            len as u64,
            mem.clone(),
            0,
        )
        .unwrap();
        let mut r = VfRings {
            vf: v,
            mem,
            tx_count,
            rx_count,
            tx_tail: 0,
            tx_clean: 0,
            rx_clean: 0,
            rx_buf_off,
        };
        r.program(nic);
        r
    }

    fn rx_buf_offset(tx_count: u32) -> u64 {
        TX_BUF_OFF + u64::from(tx_count) * BUF_SIZE
    }

    /// Bytes of DMA memory mapped for rings of `tx_count` and `rx_count` descriptors: both
    /// rings, then one [`BUF_SIZE`] TX buffer per TX descriptor and one RX buffer per RX one.
    pub fn mem_len(tx_count: u32, rx_count: u32) -> usize {
        (Self::rx_buf_offset(tx_count) + u64::from(rx_count) * BUF_SIZE) as usize
    }

    pub fn program(&mut self, nic: &mut Nic) {
        let v = self.vf;
        let tx = IOVA_BASE + TX_RING_OFF;
        nic.vf_write(v, VfReg::TDBAL(0), tx as u32);
        nic.vf_write(v, VfReg::TDBAH(0), (tx >> 32) as u32);
        nic.vf_write(v, VfReg::TDLEN(0), self.tx_count * 16);
        nic.vf_write(v, VfReg::TDH(0), 0);
        nic.vf_write(v, VfReg::TDT(0), 0);
        nic.vf_write(v, VfReg::TXDCTL(0), regs::value(TXDCTL::ENABLE::SET));
        let rx = IOVA_BASE + RX_RING_OFF;
        nic.vf_write(v, VfReg::RDBAL(0), rx as u32);
        nic.vf_write(v, VfReg::RDBAH(0), (rx >> 32) as u32);
        nic.vf_write(v, VfReg::RDLEN(0), self.rx_count * 16);
        nic.vf_write(
            v,
            VfReg::SRRCTL(0),
            regs::value(
                SRRCTL::BSIZEPACKET.val(2)
                    + SRRCTL::DESCTYPE::AdvancedOneBuffer
                    + SRRCTL::DROP_EN::SET,
            ),
        );
        nic.vf_write(v, VfReg::RDH(0), 0);
        nic.vf_write(v, VfReg::RDT(0), 0);
        nic.vf_write(
            v,
            VfReg::RXDCTL(0),
            regs::value(RXDCTL::ENABLE::SET + RXDCTL::WTHRESH.val(1)),
        );
        // TX q0 → vector 0, RX q0 → vector 1, mailbox → vector 2 (as igbvf).
        nic.vf_write(
            v,
            VfReg::IVAR0,
            regs::value(
                IVAR0::TX0.val(0)
                    + IVAR0::TX0_VALID::SET
                    + IVAR0::RX0.val(1)
                    + IVAR0::RX0_VALID::SET,
            ),
        );
        nic.vf_write(
            v,
            VfReg::IVAR_MISC,
            regs::value(IVAR_MISC::VECTOR.val(2) + IVAR_MISC::VALID::SET),
        );
        self.tx_tail = 0;
        self.tx_clean = 0;
        self.rx_clean = 0;
        for i in 0..self.rx_count {
            self.post_rx(i);
        }
        nic.vf_write(v, VfReg::RDT(0), self.rx_count - 1);
    }

    pub fn post_rx(&self, i: u32) {
        let mut d = Descriptor::from_array([0u8; 16]);
        RxReadRepr {
            packet_buffer: IOVA_BASE + self.rx_buf_off + u64::from(i) * BUF_SIZE,
            header_buffer: 0,
        }
        .emit(&mut d);
        self.mem
            .write(RX_RING_OFF + u64::from(i) * 16, &d.into_inner());
    }

    /// Writes one single-descriptor packet (EOP|IFCS|RS) and rings the doorbell.
    pub fn send(&mut self, nic: &mut Nic, frame: &[u8]) {
        self.queue(frame);
        self.doorbell(nic);
    }

    /// Writes a packet without the doorbell.
    pub fn queue(&mut self, frame: &[u8]) {
        let i = self.tx_tail;
        let buf = TX_BUF_OFF + u64::from(i) * BUF_SIZE;
        self.mem.write(buf, frame);
        self.write_tx_desc(
            i,
            &TxDataRepr {
                buffer: IOVA_BASE + buf,
                length: frame.len() as u16,
                eop: true,
                ifcs: true,
                rs: true,
                paylen: frame.len() as u32,
                ..Default::default()
            },
        );
        self.tx_tail = (i + 1) % self.tx_count;
    }

    pub fn write_tx_desc(&self, i: u32, repr: &TxDataRepr) {
        let mut d = Descriptor::from_array([0u8; 16]);
        repr.emit(&mut d);
        self.mem
            .write(TX_RING_OFF + u64::from(i) * 16, &d.into_inner());
    }

    /// Fills the first `n` TX descriptors with TSO packets of `len` bytes and no context
    /// descriptor (each is read whole, then dropped: the worst case for the TX run budget) and
    /// moves the software tail past them; the doorbell is the caller's.
    pub fn fill_tx_with_failing_tso(&mut self, n: u32, len: u16) {
        for i in 0..n {
            self.write_tx_desc(
                i,
                &TxDataRepr {
                    buffer: IOVA_BASE + TX_BUF_OFF,
                    length: len,
                    eop: true,
                    rs: true,
                    tse: true,
                    paylen: u32::from(len),
                    ..Default::default()
                },
            );
        }
        self.tx_tail = n;
    }

    pub fn write_raw_tx_desc(&self, i: u32, raw: [u8; 16]) {
        self.mem.write(TX_RING_OFF + u64::from(i) * 16, &raw);
    }

    pub fn doorbell(&mut self, nic: &mut Nic) {
        SharedMemory::publish();
        nic.vf_write(self.vf, VfReg::TDT(0), self.tx_tail);
    }

    /// DD of TX descriptor `i`.
    pub fn tx_done(&self, i: u32) -> bool {
        let mut b = [0u8; 4];
        self.mem.read(TX_RING_OFF + u64::from(i) * 16 + 12, &mut b);
        u32::from_le_bytes(b) & 1 != 0
    }

    /// Collects received frames (with their write-back), refills and advances RDT.
    pub fn recv(&mut self, nic: &mut Nic) -> Vec<(Vec<u8>, RxWritebackRepr)> {
        let mut out = Vec::new();
        loop {
            let i = self.rx_clean;
            let mut raw = [0u8; 16];
            self.mem.read(RX_RING_OFF + u64::from(i) * 16, &mut raw);
            let wb = RxWritebackRepr::parse(&Descriptor::from_array(raw));
            if !wb.done() {
                break;
            }
            let mut data = vec![0u8; usize::from(wb.length)];
            self.mem
                .read(self.rx_buf_off + u64::from(i) * BUF_SIZE, &mut data);
            out.push((data, wb));
            self.post_rx(i);
            nic.vf_write(self.vf, VfReg::RDT(0), i);
            self.rx_clean = (i + 1) % self.rx_count;
        }
        out
    }
}

/// An IPv4/UDP frame from `src` to `dst` with `len` total bytes and a sequence number.
pub fn udp_frame(dst: MacAddress, src: MacAddress, seq: u32, len: usize) -> Vec<u8> {
    let mut f = igb_hw::frame::build(dst, src, 0x0800, &[]);
    let ip_len = (len - 14) as u16;
    let mut ip = vec![
        0x45, 0, 0, 0, 0, 0, 0x40, 0, 64, 17, 0, 0, 192, 0, 2, 1, 192, 0, 2, 2,
    ];
    ip[2..4].copy_from_slice(&ip_len.to_be_bytes());
    f.extend_from_slice(&ip);
    let udp_len = ip_len - 20;
    f.extend_from_slice(&[0x30, 0x39, 0x30, 0x39]);
    f.extend_from_slice(&udp_len.to_be_bytes());
    f.extend_from_slice(&[0, 0]);
    f.extend_from_slice(&seq.to_be_bytes());
    while f.len() < len {
        f.push((f.len() as u8).wrapping_mul(7));
    }
    f
}
