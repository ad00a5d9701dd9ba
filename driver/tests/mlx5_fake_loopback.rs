//! The mlx5 driver's datapath against a small fake device that loops every frame an SQ sends
//! back into the same function's RQ, so the ring logic (WQE indices, NOP padding at the ring
//! end, owner bits, doorbell records, RQ reposting, TX completion of a batch by its last WQE)
//! is exercised before the real model's datapath merges. The fake answers every command OK
//! with fresh object numbers and reads WQEs, data segments and doorbell records as a device
//! would, from the driver's DMA memory.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::HashMap;
use std::sync::{Arc, Mutex};

use hac_driver::backend::{Clock, DmaAllocator, DmaError, DmaRegion, RegisterIo};
use hac_driver::mlx5::{EthConfig, Mlx5Config, Mlx5Device, Mlx5Error};
use hw_common::{Iova, MacAddress};
use igb_hw::RegisterOffset;
use mlx5_hw::caps::{CAP_LEN, CAP_MESSAGE_OFFSET, CapInlineMode, EthernetCaps, GeneralCaps};
use mlx5_hw::cmd::{
    ENTRY_LEN, INLINE_LEN, InputHeader, MAILBOX_BLOCK_LEN, MAILBOX_DATA_LEN, MailboxBlock, Opcode,
    QueueEntry,
};
use mlx5_hw::commands::queues::{CreateCqIn, CreateRqIn, CreateSqIn};
use mlx5_hw::commands::vport::QueryNicVportContextOut;
use mlx5_hw::cqe::{CQE_LEN, Cqe, CqeOpcode, CqeRepr, owner_bit};
use mlx5_hw::init_seg::Register;
use mlx5_hw::uar::{BF_OFFSET, RCV_DBR_OFFSET, SND_DBR_OFFSET, UAR_PAGE_LEN};
use mlx5_hw::wqe::{
    CqUpdate, DS_LEN, DataSeg, DataSegRepr, EthInsert, InlineMode, SendDataSeg, SendOpcode,
    SendWqeRepr, WQEBB_LEN,
};

const MAC: MacAddress = MacAddress([0x02, 0, 0, 0, 0, 0x42]);

type Mem = Arc<Mutex<Vec<(u64, Vec<u8>)>>>;

fn mem_access(mem: &Mem, iova: u64, len: usize, f: impl FnOnce(&mut [u8])) {
    for (base, bytes) in mem.lock().unwrap().iter_mut() {
        let base = *base;
        if iova >= base && iova + len as u64 <= base + bytes.len() as u64 {
            let at = (iova - base) as usize;
            f(&mut bytes[at..at + len]);
            return;
        }
    }
    panic!("device access outside host memory at {iova:#x}+{len}");
}

fn read(mem: &Mem, iova: u64, len: usize) -> Vec<u8> {
    let mut out = vec![0u8; len];
    mem_access(mem, iova, len, |b| out.copy_from_slice(b));
    out
}

fn write(mem: &Mem, iova: u64, data: &[u8]) {
    mem_access(mem, iova, data.len(), |b| b.copy_from_slice(data));
}

#[derive(Clone)]
struct FakeDma {
    mem: Mem,
    next: Arc<Mutex<u64>>,
}

struct FakeRegion {
    mem: Mem,
    iova: u64,
    len: usize,
}

impl DmaAllocator for FakeDma {
    type Region = FakeRegion;
    fn allocate(&self, len: usize) -> Result<FakeRegion, DmaError> {
        let len = len.div_ceil(4096) * 4096;
        let mut next = self.next.lock().unwrap();
        let iova = *next;
        *next += len as u64;
        self.mem.lock().unwrap().push((iova, vec![0; len]));
        Ok(FakeRegion {
            mem: self.mem.clone(),
            iova,
            len,
        })
    }
}

impl DmaRegion for FakeRegion {
    fn iova(&self) -> Iova {
        Iova(self.iova)
    }
    fn len(&self) -> usize {
        self.len
    }
    fn read(&self, offset: usize, buf: &mut [u8]) {
        buf.copy_from_slice(&read(&self.mem, self.iova + offset as u64, buf.len()));
    }
    fn write(&self, offset: usize, data: &[u8]) {
        write(&self.mem, self.iova + offset as u64, data);
    }
}

struct Ring {
    base: u64,
    log: u8,
    dbr: u64,
    cqn: u32,
    counter: u32,
}

#[derive(Default)]
struct State {
    cmdq: u64,
    next_id: u32,
    cqs: HashMap<u32, Ring>,
    sq: Option<Ring>,
    rq: Option<Ring>,
    heartbeat: u32,
    frames_looped: u64,
    frames_dropped: u64,
    tx_cqes: u64,
    nops: u64,
}

/// The fake device: every command OK; SEND WQEs looped back into the RQ.
#[derive(Clone)]
struct FakeNic {
    mem: Mem,
    state: Arc<Mutex<State>>,
    inline: CapInlineMode,
    vport_inline: InlineMode,
}

impl FakeNic {
    fn chain_data(&self, mut ptr: u64) -> Vec<u8> {
        let mut data = Vec::new();
        while ptr != 0 {
            let b = read(&self.mem, ptr, MAILBOX_BLOCK_LEN);
            let m = MailboxBlock::new_checked(&b[..]).unwrap();
            data.extend_from_slice(m.data());
            ptr = m.next();
        }
        data
    }

    fn answer(&self, input: &[u8], out: &mut [u8]) {
        let op = InputHeader::parse(input).unwrap().opcode;
        let mut st = self.state.lock().unwrap();
        st.next_id += 1;
        let id = st.next_id;
        match op {
            Opcode::QueryIssi => out[0x6C..0x70].copy_from_slice(&3u32.to_be_bytes()),
            Opcode::QueryHcaCap => {
                let op_mod = InputHeader::parse(input).unwrap().op_mod;
                let cap = &mut out[CAP_MESSAGE_OFFSET..CAP_MESSAGE_OFFSET + CAP_LEN];
                if op_mod >> 1 == 0 {
                    let mut g = GeneralCaps::new_checked(&mut cap[..]).unwrap();
                    g.set_log_max_cq_sz(16);
                    g.set_log_max_eq_sz(16);
                    g.set_log_max_wq_sz(16);
                    g.set_eth_net_offloads(true);
                } else {
                    let mut e = EthernetCaps::new_checked(&mut cap[..]).unwrap();
                    e.set_wqe_inline_mode(self.inline);
                }
            }
            Opcode::QueryNicVportContext => {
                let mut o = QueryNicVportContextOut::new_checked(&mut out[..]).unwrap();
                let mut c = o.nic_vport_context_mut();
                c.set_permanent_address(MAC);
                c.set_min_wqe_inline_mode(self.vport_inline);
            }
            Opcode::CreateCq => {
                let i = CreateCqIn::new_checked(input).unwrap();
                let c = i.cq_context();
                let ring = Ring {
                    base: i.pa(0).unwrap(),
                    log: c.log_cq_size(),
                    dbr: c.dbr_addr(),
                    cqn: id,
                    counter: 0,
                };
                st.cqs.insert(id, ring);
            }
            Opcode::CreateSq => {
                let i = CreateSqIn::new_checked(input).unwrap();
                let s = i.sq_context();
                st.sq = Some(Ring {
                    base: i.pa(0).unwrap(),
                    log: s.wq().log_wq_sz(),
                    dbr: s.wq().dbr_addr(),
                    cqn: s.cqn(),
                    counter: 0,
                });
            }
            Opcode::CreateRq => {
                let i = CreateRqIn::new_checked(input).unwrap();
                let r = i.rq_context();
                assert_eq!(r.wq().log_wq_stride(), 4);
                st.rq = Some(Ring {
                    base: i.pa(0).unwrap(),
                    log: r.wq().log_wq_sz(),
                    dbr: r.wq().dbr_addr(),
                    cqn: r.cqn(),
                    counter: 0,
                });
            }
            _ => {}
        }
        // Every object number sits in the low bits of dword 2.
        if out.len() >= 0x0C && op != Opcode::QueryIssi {
            out[0x08..0x0C].copy_from_slice(&(id & 0xFF).to_be_bytes());
        }
    }

    fn command(&self) {
        let at = self.state.lock().unwrap().cmdq;
        let mut raw = read(&self.mem, at, ENTRY_LEN);
        let mut e = QueueEntry::new_checked(&mut raw[..]).unwrap();
        let mut input = e.inline_input().to_vec();
        input.extend(self.chain_data(e.input_mailbox()));
        input.truncate(e.input_length() as usize);
        let mut out = vec![0u8; e.output_length() as usize];
        self.answer(&input, &mut out);
        let n = out.len().min(INLINE_LEN);
        e.set_inline_output(&out[..n]);
        let mut ptr = e.output_mailbox();
        for chunk in out[n..].chunks(MAILBOX_DATA_LEN) {
            write(&self.mem, ptr, chunk);
            let b = read(&self.mem, ptr, MAILBOX_BLOCK_LEN);
            ptr = MailboxBlock::new_checked(&b[..]).unwrap().next();
        }
        e.set_owned_by_hw(false);
        write(&self.mem, at, &raw);
    }

    fn post_cqe(&self, st: &mut State, cqn: u32, opcode: CqeOpcode, counter: u16, len: u32) {
        let cq = st.cqs.get_mut(&cqn).expect("a CQ");
        let idx = cq.counter & ((1 << cq.log) - 1);
        let ci = u32::from_be_bytes(read(&self.mem, cq.dbr, 4).try_into().unwrap()) & 0xFF_FFFF;
        assert!(
            cq.counter.wrapping_sub(ci) < (1 << cq.log),
            "CQ overflow: the driver did not consume"
        );
        let repr = CqeRepr {
            opcode,
            wqe_counter: counter,
            byte_cnt: len,
            owner: owner_bit(cq.counter, cq.log),
            ..CqeRepr::default()
        };
        let mut b = [0u8; CQE_LEN];
        repr.emit(&mut Cqe::new_checked(&mut b[..]).unwrap());
        write(&self.mem, cq.base + u64::from(idx) * CQE_LEN as u64, &b);
        cq.counter += 1;
    }

    fn send_doorbell(&self) {
        let mut st = self.state.lock().unwrap();
        let (base, log, dbr, cqn, mut ci) = {
            let sq = st.sq.as_ref().unwrap();
            (sq.base, sq.log, sq.dbr, sq.cqn, sq.counter)
        };
        let pc = u32::from_be_bytes(
            read(&self.mem, dbr + SND_DBR_OFFSET as u64, 4)
                .try_into()
                .unwrap(),
        ) & 0xFFFF;
        while ci & 0xFFFF != pc {
            let idx = u64::from(ci & ((1 << log) - 1));
            let ctrl = read(&self.mem, base + idx * WQEBB_LEN as u64, DS_LEN);
            let ds = usize::from(ctrl[7] & 0x3F);
            let bytes = read(&self.mem, base + idx * WQEBB_LEN as u64, ds * DS_LEN);
            let w = SendWqeRepr::parse(&bytes).unwrap();
            assert_eq!(w.ctrl.wqe_index, ci as u16, "WQE index = producer counter");
            let wqebbs = w.wqebb_count() as u32;
            if w.ctrl.opcode == SendOpcode::Send {
                let mut frame = match &w.eth.as_ref().unwrap().insert {
                    EthInsert::InlineHeader(h) => h.clone(),
                    other => panic!("{other:?}"),
                };
                for d in &w.data {
                    match d {
                        SendDataSeg::Pointer(p) => {
                            frame.extend(read(&self.mem, p.addr.0, p.len() as usize))
                        }
                        SendDataSeg::Inline(b) => frame.extend_from_slice(b),
                    }
                }
                self.loop_back(&mut st, &frame);
            } else {
                assert_eq!(w.ctrl.opcode, SendOpcode::Nop);
                st.nops += 1;
                assert_eq!(
                    idx as u32 + wqebbs,
                    1 << log,
                    "NOPs only pad to the ring end"
                );
            }
            if w.ctrl.ce == CqUpdate::Always {
                st.tx_cqes += 1;
                self.post_cqe(&mut st, cqn, CqeOpcode::Req, ci as u16, 0);
            }
            ci = ci.wrapping_add(wqebbs);
        }
        st.sq.as_mut().unwrap().counter = ci;
    }

    fn loop_back(&self, st: &mut State, frame: &[u8]) {
        let (base, log, dbr, cqn, ci) = {
            let rq = st.rq.as_ref().unwrap();
            (rq.base, rq.log, rq.dbr, rq.cqn, rq.counter)
        };
        let pc = u32::from_be_bytes(
            read(&self.mem, dbr + RCV_DBR_OFFSET as u64, 4)
                .try_into()
                .unwrap(),
        ) & 0xFFFF;
        if ci & 0xFFFF == pc {
            st.frames_dropped += 1;
            return;
        }
        let idx = u64::from(ci & ((1 << log) - 1));
        let seg = read(&self.mem, base + idx * DS_LEN as u64, DS_LEN);
        let d = DataSegRepr::parse(&DataSeg::new_checked(&seg[..]).unwrap());
        assert!(d.len() as usize >= frame.len());
        write(&self.mem, d.addr.0, frame);
        st.rq.as_mut().unwrap().counter = ci + 1;
        st.frames_looped += 1;
        self.post_cqe(st, cqn, CqeOpcode::RespSend, ci as u16, frame.len() as u32);
    }
}

impl RegisterIo for FakeNic {
    fn read32(&self, offset: RegisterOffset) -> u32 {
        let v = match offset.0 {
            o if o == Register::CmdqAddrLSz.offset() => 0x56,
            o if o == Register::CmdifRevFwSub.offset() => 5 << 16,
            o if o == Register::HealthCounter.offset() => {
                let mut st = self.state.lock().unwrap();
                st.heartbeat += 1;
                st.heartbeat
            }
            _ => 0,
        };
        v.swap_bytes()
    }
    fn write32(&self, offset: RegisterOffset, value: u32) {
        let value = value.swap_bytes();
        match offset.0 {
            o if o == Register::CmdqAddrH.offset() => {
                self.state.lock().unwrap().cmdq = u64::from(value) << 32;
            }
            o if o == Register::CmdqAddrLSz.offset() => {
                self.state.lock().unwrap().cmdq |= u64::from(value & 0xFFFF_F000);
            }
            o if o == Register::CmdDbell.offset() => self.command(),
            _ => {}
        }
    }
    fn write64(&self, offset: RegisterOffset, _value: u64) {
        if u64::from(offset.0) % UAR_PAGE_LEN == u64::from(BF_OFFSET) {
            self.send_doorbell();
        }
    }
}

struct NoTime;
impl Clock for NoTime {
    fn now_ns(&self) -> u64 {
        0
    }
    fn delay_ns(&self, _ns: u64) {}
}

fn device(
    inline: CapInlineMode,
    vport_inline: InlineMode,
) -> (FakeNic, Mlx5Device<FakeNic, FakeDma, NoTime>) {
    let mem: Mem = Arc::new(Mutex::new(Vec::new()));
    let nic = FakeNic {
        mem: mem.clone(),
        state: Arc::new(Mutex::new(State::default())),
        inline,
        vport_inline,
    };
    let dma = FakeDma {
        mem,
        next: Arc::new(Mutex::new(0x1_0000_0000)),
    };
    let dev = Mlx5Device::new(nic.clone(), dma, NoTime, Mlx5Config::default()).unwrap();
    (nic, dev)
}

/// An IPv4/TCP frame of `len` bytes (20-byte IP header, 32-byte TCP header) tagged `tag`.
fn tcp_frame(len: usize, tag: u8) -> Vec<u8> {
    let mut f: Vec<u8> = (0..len).map(|i| (i as u8) ^ tag).collect();
    f[..6].copy_from_slice(&MAC.0);
    f[12..14].copy_from_slice(&[0x08, 0x00]);
    f[14] = 0x45;
    f[14 + 9] = 6;
    f[34 + 12] = 8 << 4;
    f
}

/// A frame that is not IP (its inline header is the L2 minimum whatever the mode).
fn other_frame(len: usize, tag: u8) -> Vec<u8> {
    let mut f = tcp_frame(len, tag);
    f[12..14].copy_from_slice(&[0x88, 0xB5]);
    f
}

fn run_loopback(inline: CapInlineMode, vport_inline: InlineMode) -> u64 {
    let (nic, mut dev) = device(inline, vport_inline);
    dev.open_eth(EthConfig {
        log_sq_size: 3,
        log_rq_size: 3,
    })
    .unwrap();
    assert_eq!(dev.mac(), Some(MAC));
    let mut sent = Vec::new();
    let mut got = Vec::new();
    // 20 batches of 1..=3 frames through an 8-entry SQ and RQ: both rings wrap several times.
    for batch in 0..20u8 {
        // Mixed sizes: with headers inlined up to TCP a TCP frame takes two WQEBBs and the
        // other frames one, so WQEs start at odd indices and some meet the ring end.
        let frames: Vec<Vec<u8>> = (0..=(batch % 3))
            .map(|k| {
                let len = 70 + usize::from(batch) * 40 + usize::from(k);
                if (batch + k) % 3 == 0 {
                    other_frame(len, batch ^ k)
                } else {
                    tcp_frame(len, batch ^ k)
                }
            })
            .collect();
        let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        let n = dev.send(&refs).unwrap();
        assert_eq!(n, frames.len(), "room for every batch");
        sent.extend(frames);
        dev.recv(&mut got, 64).unwrap();
    }
    assert_eq!(got, sent);
    let s = dev.eth_stats();
    assert_eq!(
        (s.tx_frames, s.rx_frames),
        (sent.len() as u64, sent.len() as u64)
    );
    assert_eq!(
        (s.tx_error_cqes, s.rx_error_cqes, s.tx_ring_full),
        (0, 0, 0)
    );
    dev.reclaim_tx().unwrap();
    assert_eq!(dev.eth_stats().tx_completions, 20);
    let st = nic.state.lock().unwrap();
    assert_eq!(st.frames_dropped, 0);
    assert_eq!(st.tx_cqes, 20, "one TX CQE per doorbell batch");
    let nops = st.nops;
    drop(st);
    assert_eq!(
        dev.tx_free(),
        8,
        "every WQEBB back after the last completion"
    );
    dev.shutdown().unwrap();
    nops
}

#[test]
fn frames_loop_back_through_wrapping_rings_with_the_l2_inline_header() {
    assert_eq!(run_loopback(CapInlineMode::L2, InlineMode::None), 0);
}

#[test]
fn two_wqebb_wqes_are_padded_with_nops_at_the_ring_end() {
    // Headers up to TCP inline: 66 bytes, two WQEBBs per WQE.
    assert!(run_loopback(CapInlineMode::VportContext, InlineMode::TcpUdp) > 0);
}

#[test]
fn a_full_sq_sends_what_fits_and_counts_the_rest() {
    let (_nic, mut dev) = device(CapInlineMode::L2, InlineMode::None);
    dev.open_eth(EthConfig {
        log_sq_size: 2,
        log_rq_size: 4,
    })
    .unwrap();
    let frames: Vec<Vec<u8>> = (0..6).map(|k| tcp_frame(100, k)).collect();
    let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
    // The fake completes synchronously, so the SQ is free again by the next call; within one
    // batch only 4 WQEBBs fit.
    assert_eq!(dev.send(&refs).unwrap(), 4);
    assert_eq!(dev.eth_stats().tx_ring_full, 2);
    let mut got = Vec::new();
    dev.recv(&mut got, 16).unwrap();
    assert_eq!(got.len(), 4);
    assert!(matches!(
        dev.send(&[&[0u8; 4000][..]]),
        Err(Mlx5Error::FrameTooLarge { len: 4000, .. })
    ));
    assert!(matches!(
        dev.send(&[&[0u8; 10][..]]),
        Err(Mlx5Error::FrameTooShort { len: 10, .. })
    ));
}
