//! One mlx5 function (VF or PF) brought up the way Linux `mlx5_core` and rdma-core's
//! `mlx5_vfio` do it, up to the resources every Ethernet queue needs; teardown in reverse with
//! every page taken back; events (page requests, port changes, queue errors); health; the
//! PF-side vport commands.
//!
//! Bring-up ([`Mlx5Device::new`]), each step one command unless said otherwise:
//!
//! 1. wait for `initializing` (bit 31) to clear; check `cmdif_rev` 5 and the queue geometry;
//!    hand the device the command queue page (`cmdq_addr_h`, `cmdq_addr_l_sz`); wait again;
//! 2. ENABLE_HCA; QUERY_ISSI; SET_ISSI 1 (ISSI 1 is required, as rdma-core requires it);
//! 3. QUERY_PAGES boot, MANAGE_PAGES give;
//! 4. QUERY_HCA_CAP general current and maximum; SET_HCA_CAP general (pkey table 0, command
//!    checksums off, `drain_sigerr` if allowed, 4 KiB UAR pages);
//! 5. QUERY_PAGES init, MANAGE_PAGES give; INIT_HCA;
//! 6. SET_DRIVER_VERSION (if `driver_version`); QUERY_HCA_CAP general current again, Ethernet
//!    offloads (if `eth_net_offloads`) and flow tables (if `nic_flow_table`);
//! 7. ALLOC_UAR; (event mode: CREATE_EQ command EQ, vector 0); CREATE_EQ async (port change, CQ and work-queue errors, page requests; MSI-X
//!    vector 0) and CREATE_EQ completions (vector 1), both armed;
//! 8. ALLOC_PD; ALLOC_TRANSPORT_DOMAIN.
//!
//! Commands complete by ownership polling, or — with [`Mlx5Config::command_events`], as Linux
//! runs — by command EQEs once a command EQ (created right after ALLOC_UAR, subscribed to the
//! command event only) exists; teardown switches back to polling before destroying it.

use hw_common::MacAddress;
use mlx5_hw::caps::{
    CAP_LEN, CAP_MESSAGE_OFFSET, CapMode, CapOpMod, CapType, CmdifChecksum, EthernetCaps,
    GeneralCaps,
};
use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_hw::commands::OUT_LEN_16;
use mlx5_hw::commands::lifecycle::{
    DisableHcaIn, EnableHcaIn, ISSI_1, InitHcaIn, ManagePagesIn, ManagePagesOp, ManagePagesOut,
    PagesKind, QueryHcaCapIn, QueryIssiIn, QueryIssiOut, QueryPagesIn, QueryPagesOut,
    SetDriverVersionIn, SetHcaCapIn, SetIssiIn, TeardownHcaIn, manage_pages_in_len,
    teardown_profile,
};
use mlx5_hw::commands::queues::{
    CreateCqIn, CreateCqOut, CreateEqIn, CreateEqOut, DestroyCqIn, DestroyEqIn, create_in_len,
};
use mlx5_hw::commands::resources::{
    AllocPdIn, AllocPdOut, AllocTransportDomainIn, AllocTransportDomainOut, AllocUarIn,
    AllocUarOut, DeallocPdIn, DeallocTransportDomainIn, DeallocUarIn,
};
use mlx5_hw::commands::vport::{
    ModifyNicVportContextIn, ModifyVportStateIn, QueryNicVportContextIn, QueryNicVportContextOut,
    QueryVportStateIn, QueryVportStateOut, VportState, field_select, vport_state_op,
};
use mlx5_hw::eqe::{EventData, EventType};
use mlx5_hw::init_seg::{CMDIF_REV, Register};

use super::cmd::{COMMAND_SLOT, CommandQueue};
use super::error::{HealthReport, Mlx5Error};
use super::eth::EthQueues;
use super::iseg::Mlx5Bar;
use super::pages::PageBook;
use super::queues::{CompletionQueue, EventQueue, page_list};
use crate::backend::{Clock, DmaAllocator, RegisterIo};

/// Builds a command input of `len` bytes with the header of `$ty` and `op_mod`, then lets
/// `$body` fill the view `$v`.
macro_rules! input {
    ($ty:ident, $len:expr, $op_mod:expr, |$v:ident| $body:block) => {{
        let mut m = vec![0u8; $len];
        if let Ok(mut $v) = $ty::new_checked(&mut m[..]) {
            $v.set_header($op_mod);
            $body
        }
        m
    }};
    ($ty:ident, $op_mod:expr) => {
        input!($ty, $ty::<&[u8]>::LEN, $op_mod, |_v| {})
    };
}
pub(crate) use input;

/// A view of an output, or [`Mlx5Error::MalformedOutput`].
macro_rules! output {
    ($ty:ident, $bytes:expr) => {
        $ty::new_checked(&$bytes[..]).map_err(|source| Mlx5Error::MalformedOutput {
            opcode: Opcode::Unknown(0),
            source,
        })
    };
}
pub(crate) use output;

/// How the driver runs.
#[derive(Clone, Debug)]
pub struct Mlx5Config {
    /// Command timeout (Linux: 60 s).
    pub command_timeout_ns: u64,
    /// How long to wait for `initializing` to clear (Linux: 120 s).
    pub init_timeout_ns: u64,
    /// The string SET_DRIVER_VERSION sends.
    pub driver_version: String,
    /// log2 of the async EQ size.
    pub log_async_eq_size: u8,
    /// log2 of the completion EQ size.
    pub log_comp_eq_size: u8,
    /// Health polls with an unchanged counter before the device counts as compromised
    /// (Linux and rdma-core: 3).
    pub health_miss_limit: u32,
    /// Complete commands by command EQEs once the command EQ exists (as Linux does); off:
    /// ownership polling throughout.
    pub command_events: bool,
}

impl Default for Mlx5Config {
    fn default() -> Self {
        Mlx5Config {
            command_timeout_ns: 60_000_000_000,
            init_timeout_ns: 120_000_000_000,
            driver_version: concat!("hac-nic,hac-driver-mlx5,", env!("CARGO_PKG_VERSION"))
                .to_string(),
            log_async_eq_size: 6,
            log_comp_eq_size: 7,
            health_miss_limit: 3,
            command_events: false,
        }
    }
}

/// Pages per MANAGE_PAGES command (keeps the message inside one slot's mailboxes).
const PAGES_PER_COMMAND: usize = 256;
/// Interval of the `initializing` poll (Linux: 2 ms).
const INIT_POLL_NS: u64 = 2_000_000;

/// Event counters.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EventCounters {
    /// EQEs consumed.
    pub eqes: u64,
    /// Page requests answered with pages.
    pub page_requests_given: u64,
    /// Page requests answered by returning pages.
    pub page_requests_taken: u64,
    /// Page requests the driver could not satisfy (MANAGE_PAGES cannot-give sent).
    pub page_requests_failed: u64,
    /// Port change events.
    pub port_changes: u64,
    /// CQ error events.
    pub cq_errors: u64,
    /// Work queue error events.
    pub wq_errors: u64,
    /// Completion events.
    pub completions: u64,
    /// Events of other types (counted, otherwise ignored).
    pub other: u64,
}

/// What the device reported at bring-up.
#[derive(Clone, Debug)]
pub struct DeviceInfo {
    /// Firmware major, minor, sub-minor.
    pub fw_rev: (u16, u16, u16),
    /// `supported_issi_dw0` of QUERY_ISSI.
    pub supported_issi: u32,
    /// Pages QUERY_PAGES boot asked for.
    pub boot_pages: i32,
    /// Pages QUERY_PAGES init asked for.
    pub init_pages: i32,
}

/// Capability pages as the device answered them (current values after INIT_HCA).
#[derive(Clone, Debug)]
pub struct DeviceCaps {
    /// General capabilities.
    pub general: Vec<u8>,
    /// Ethernet offloads (when `eth_net_offloads`).
    pub ethernet: Option<Vec<u8>>,
    /// NIC flow tables (when `nic_flow_table`).
    pub flow_table: Option<Vec<u8>>,
}

impl DeviceCaps {
    /// The general page as a view.
    pub fn general(&self) -> Option<GeneralCaps<&[u8]>> {
        GeneralCaps::new_checked(&self.general[..]).ok()
    }
    /// The Ethernet page as a view.
    pub fn ethernet(&self) -> Option<EthernetCaps<&[u8]>> {
        self.ethernet
            .as_ref()
            .and_then(|e| EthernetCaps::new_checked(&e[..]).ok())
    }
}

/// An mlx5 function with its command interface up and HCA initialized.
pub struct Mlx5Device<R: RegisterIo, D: DmaAllocator, C: Clock> {
    pub(crate) bar: Mlx5Bar<R>,
    pub(crate) dma: D,
    pub(crate) clock: C,
    pub(crate) config: Mlx5Config,
    pub(crate) cmd: CommandQueue<D::Region>,
    pub(crate) pages: PageBook<D::Region>,
    pub(crate) info: DeviceInfo,
    pub(crate) caps: DeviceCaps,
    pub(crate) uar: u32,
    pub(crate) pd: u32,
    pub(crate) td: u32,
    pub(crate) cmd_eq: Option<EventQueue<D::Region>>,
    pub(crate) async_eq: Option<EventQueue<D::Region>>,
    pub(crate) comp_eq: Option<EventQueue<D::Region>>,
    pub(crate) cqs: Vec<CompletionQueue<D::Region>>,
    pub(crate) eth: Option<EthQueues<D::Region>>,
    pub(crate) events: EventCounters,
    health_last: Option<u32>,
    health_misses: u32,
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> Mlx5Device<R, D, C> {
    /// Brings the function up (module docs list the steps).
    pub fn new(regs: R, dma: D, clock: C, config: Mlx5Config) -> Result<Self, Mlx5Error> {
        let bar = Mlx5Bar::new(regs);
        wait_initializing(&bar, &clock, config.init_timeout_ns)?;
        let cmdif = (bar.read(Register::CmdifRevFwSub) >> 16) as u16;
        if cmdif != CMDIF_REV {
            return Err(Mlx5Error::CmdifRevision {
                found: cmdif,
                expected: CMDIF_REV,
            });
        }
        let fw = bar.read(Register::FwRev);
        let sub = bar.read(Register::CmdifRevFwSub) & 0xFFFF;
        let fw_rev = ((fw & 0xFFFF) as u16, (fw >> 16) as u16, sub as u16);
        let cmd = CommandQueue::new(&bar, &dma, config.command_timeout_ns)?;
        wait_initializing(&bar, &clock, config.init_timeout_ns)?;
        let mut dev = Mlx5Device {
            bar,
            dma,
            clock,
            config,
            cmd,
            pages: PageBook::default(),
            info: DeviceInfo {
                fw_rev,
                supported_issi: 0,
                boot_pages: 0,
                init_pages: 0,
            },
            caps: DeviceCaps {
                general: Vec::new(),
                ethernet: None,
                flow_table: None,
            },
            uar: 0,
            pd: 0,
            td: 0,
            cmd_eq: None,
            async_eq: None,
            comp_eq: None,
            cqs: Vec::new(),
            eth: None,
            events: EventCounters::default(),
            health_last: None,
            health_misses: 0,
        };
        dev.bring_up()?;
        Ok(dev)
    }

    fn bring_up(&mut self) -> Result<(), Mlx5Error> {
        self.exec(&input!(EnableHcaIn, 0), OUT_LEN_16)?;
        let o = self.exec(&input!(QueryIssiIn, 0), QueryIssiOut::<&[u8]>::LEN)?;
        let supported = output!(QueryIssiOut, o)?.supported_issi_dw0();
        self.info.supported_issi = supported;
        if supported & (1 << ISSI_1) == 0 {
            return Err(Mlx5Error::IssiUnsupported(supported));
        }
        self.exec(
            &input!(SetIssiIn, SetIssiIn::<&[u8]>::LEN, 0, |v| {
                v.set_current_issi(ISSI_1);
            }),
            OUT_LEN_16,
        )?;
        self.info.boot_pages = self.satisfy_pages(PagesKind::Boot)?;

        let mut cur = self.query_cap(CapType::General, CapMode::Current)?;
        let max = self.query_cap(CapType::General, CapMode::Max)?;
        if let (Ok(mut g), Ok(m)) = (
            GeneralCaps::new_checked(&mut cur[..]),
            GeneralCaps::new_checked(&max[..]),
        ) {
            g.set_pkey_table_size(0);
            g.set_cmdif_checksum(CmdifChecksum::Disabled);
            g.set_drain_sigerr(m.drain_sigerr());
            g.set_log_uar_page_sz(0);
        }
        let set = input!(
            SetHcaCapIn,
            SetHcaCapIn::<&[u8]>::LEN,
            CapType::General.set_op_mod(),
            |v| {
                v.capability_mut().copy_from_slice(&cur[..CAP_LEN]);
            }
        );
        self.exec(&set, OUT_LEN_16)?;
        self.info.init_pages = self.satisfy_pages(PagesKind::Init)?;
        self.exec(&input!(InitHcaIn, 0), OUT_LEN_16)?;

        self.caps.general = self.query_cap(CapType::General, CapMode::Current)?;
        let (driver_version, eth, ft) = GeneralCaps::new_checked(&self.caps.general[..])
            .map_or((false, false, false), |g| {
                (g.driver_version(), g.eth_net_offloads(), g.nic_flow_table())
            });
        if driver_version {
            let name = self.config.driver_version.clone();
            let m = input!(
                SetDriverVersionIn,
                SetDriverVersionIn::<&[u8]>::LEN,
                0,
                |v| {
                    let n = name.len().min(63);
                    let _fits = v.set_driver_version(&name.as_bytes()[..n]);
                }
            );
            self.exec(&m, OUT_LEN_16)?;
        }
        if eth {
            self.caps.ethernet = Some(self.query_cap(CapType::EthernetOffloads, CapMode::Current)?);
        }
        if ft {
            self.caps.flow_table = Some(self.query_cap(CapType::FlowTable, CapMode::Current)?);
        }

        let o = self.exec(&input!(AllocUarIn, 0), OUT_LEN_16)?;
        self.uar = output!(AllocUarOut, o)?.uar();
        if self.config.command_events {
            // The command EQ first: its own CREATE_EQ completes by polling, every later
            // command by its EQE (`mlx5_cmd_use_events`).
            let eq = self.create_eq(self.config.log_async_eq_size, 0, &[EventType::Cmd])?;
            self.cmd_eq = Some(eq);
        }
        let events = [
            EventType::PortChange,
            EventType::CqError,
            EventType::WqCatasError,
            EventType::WqInvalReqError,
            EventType::WqAccessError,
            EventType::PageRequest,
        ];
        let async_eq = self.create_eq(self.config.log_async_eq_size, 0, &events)?;
        self.async_eq = Some(async_eq);
        let comp_eq = self.create_eq(self.config.log_comp_eq_size, 1, &[])?;
        self.comp_eq = Some(comp_eq);
        let o = self.exec(&input!(AllocPdIn, 0), OUT_LEN_16)?;
        self.pd = output!(AllocPdOut, o)?.pd();
        let o = self.exec(&input!(AllocTransportDomainIn, 0), OUT_LEN_16)?;
        self.td = output!(AllocTransportDomainOut, o)?.transport_domain();
        Ok(())
    }

    /// Runs one command in the command slot: its output, or the typed error.
    pub fn exec(&mut self, input: &[u8], out_len: usize) -> Result<Vec<u8>, Mlx5Error> {
        self.exec_in(COMMAND_SLOT, input, out_len)
    }

    /// Runs one command in slot `slot`, by the command EQ in event mode, else by polling.
    fn exec_in(&mut self, slot: u8, input: &[u8], out_len: usize) -> Result<Vec<u8>, Mlx5Error> {
        self.cmd.exec(
            &self.bar,
            &self.clock,
            slot,
            input,
            out_len,
            self.cmd_eq.as_mut(),
        )
    }

    pub(crate) fn query_cap(
        &mut self,
        cap_type: CapType,
        mode: CapMode,
    ) -> Result<Vec<u8>, Mlx5Error> {
        let op_mod = CapOpMod::new(cap_type, mode).query_op_mod();
        let o = self.exec(&input!(QueryHcaCapIn, op_mod), CAP_MESSAGE_OFFSET + CAP_LEN)?;
        Ok(o[CAP_MESSAGE_OFFSET..].to_vec())
    }

    /// QUERY_PAGES of `kind`, then gives what it asks for (negative counts are the device
    /// offering pages back: taken). Returns the count asked.
    fn satisfy_pages(&mut self, kind: PagesKind) -> Result<i32, Mlx5Error> {
        let o = self.exec(&input!(QueryPagesIn, u16::from(kind)), OUT_LEN_16)?;
        let n = output!(QueryPagesOut, o)?.num_pages();
        if n > 0 {
            self.give_pages(n as usize, COMMAND_SLOT)?;
        } else if n < 0 {
            self.take_pages(n.unsigned_abs() as usize, COMMAND_SLOT)?;
        }
        Ok(n)
    }

    /// MANAGE_PAGES give of `n` fresh pages, in batches, from slot `slot`.
    fn give_pages(&mut self, n: usize, slot: u8) -> Result<(), Mlx5Error> {
        let mut left = n;
        while left > 0 {
            let k = left.min(PAGES_PER_COMMAND);
            let addrs = self.pages.allocate(&self.dma, k)?;
            let len = manage_pages_in_len(k).unwrap_or(0);
            let m = input!(ManagePagesIn, len, u16::from(ManagePagesOp::Give), |v| {
                v.set_input_num_entries(k as u32);
                for (i, a) in addrs.iter().enumerate() {
                    let _fits = v.set_pa(i, *a);
                }
            });
            if let Err(e) = self.exec_in(slot, &m, OUT_LEN_16) {
                // Refused (or not delivered): the device does not hold them.
                self.pages.returned(&addrs);
                return Err(e);
            }
            left -= k;
        }
        Ok(())
    }

    /// MANAGE_PAGES take of up to `n` pages; returns how many came back.
    fn take_pages(&mut self, n: usize, slot: u8) -> Result<usize, Mlx5Error> {
        let mut got = 0;
        while got < n {
            let k = (n - got).min(PAGES_PER_COMMAND);
            let m = input!(
                ManagePagesIn,
                ManagePagesIn::<&[u8]>::LEN,
                u16::from(ManagePagesOp::Take),
                |v| {
                    v.set_input_num_entries(k as u32);
                }
            );
            let out_len = manage_pages_in_len(k).unwrap_or(OUT_LEN_16);
            let o = self.exec_in(slot, &m, out_len)?;
            let out = output!(ManagePagesOut, o)?;
            let returned = (out.output_num_entries() as usize).min(k);
            let addrs: Vec<u64> = (0..returned).filter_map(|i| out.pa(i)).collect();
            self.pages.returned(&addrs);
            got += addrs.len();
            if addrs.is_empty() {
                break;
            }
        }
        Ok(got)
    }

    fn create_eq(
        &mut self,
        log_size: u8,
        vector: u16,
        events: &[EventType],
    ) -> Result<EventQueue<D::Region>, Mlx5Error> {
        let max = self.caps.general().map_or(0, |g| g.log_max_eq_sz()).min(22);
        if log_size == 0 || log_size > max {
            return Err(Mlx5Error::QueueSize {
                what: "EQ",
                log: log_size,
                min: 1,
                max,
            });
        }
        let region = self.dma.allocate(mlx5_hw::eqe::EQE_LEN << log_size)?;
        let mut eq = EventQueue::prepare(region, log_size, self.uar);
        let pas = page_list(&eq.region, eq.ring_len());
        let len = create_in_len(pas.len()).unwrap_or(0);
        let uar = self.uar;
        let m = input!(CreateEqIn, len, 0, |v| {
            {
                let mut c = v.eq_context_mut();
                c.set_log_eq_size(log_size);
                c.set_uar_page(uar);
                c.set_intr(vector);
                c.set_log_page_size(0);
            }
            for (k, pa) in pas.iter().enumerate() {
                let _fits = v.set_pa(k, *pa);
            }
            for e in events {
                v.subscribe(*e);
            }
        });
        let o = self.exec(&m, OUT_LEN_16)?;
        eq.eqn = output!(CreateEqOut, o)?.eq_number();
        eq.doorbell(&self.bar, true);
        Ok(eq)
    }

    /// Creates a CQ of 2^`log_size` CQEs whose events go to the completion EQ; returns its
    /// index among the device's CQs ([`Mlx5Device::cq`]); shutdown destroys it.
    pub fn create_cq(&mut self, log_size: u8) -> Result<usize, Mlx5Error> {
        let cq = self.new_cq(log_size)?;
        self.cqs.push(cq);
        Ok(self.cqs.len() - 1)
    }

    /// CREATE_CQ of 2^`log_size` CQEs on the completion EQ; the caller owns the CQ.
    pub(crate) fn new_cq(&mut self, log_size: u8) -> Result<CompletionQueue<D::Region>, Mlx5Error> {
        let max = self.caps.general().map_or(0, |g| g.log_max_cq_sz()).min(23);
        if log_size == 0 || log_size > max {
            return Err(Mlx5Error::QueueSize {
                what: "CQ",
                log: log_size,
                min: 1,
                max,
            });
        }
        let eqn = self.comp_eq.as_ref().map_or(0, |e| e.eqn);
        let region = self
            .dma
            .allocate(CompletionQueue::<D::Region>::region_len(log_size))?;
        let mut cq = CompletionQueue::prepare(region, log_size, self.uar);
        let pas = page_list(&cq.region, cq.ring_len());
        let len = create_in_len(pas.len()).unwrap_or(0);
        let (uar, dbr) = (self.uar, cq.dbr_addr());
        let m = input!(CreateCqIn, len, 0, |v| {
            {
                let mut c = v.cq_context_mut();
                c.set_log_cq_size(log_size);
                c.set_uar_page(uar);
                c.set_c_eqn(u32::from(eqn));
                c.set_log_page_size(0);
                c.set_dbr_addr(dbr);
            }
            for (k, pa) in pas.iter().enumerate() {
                let _fits = v.set_pa(k, *pa);
            }
        });
        let o = self.exec(&m, OUT_LEN_16)?;
        cq.cqn = output!(CreateCqOut, o)?.cqn();
        Ok(cq)
    }

    /// CQ `index` (as [`Mlx5Device::create_cq`] returned it).
    pub fn cq(&mut self, index: usize) -> Option<&mut CompletionQueue<D::Region>> {
        self.cqs.get_mut(index)
    }

    /// Arms CQ `index` for a completion event on its next CQE.
    pub fn arm_cq(&mut self, index: usize) {
        if let Some(cq) = self.cqs.get_mut(index) {
            cq.arm(&self.bar);
        }
    }

    fn destroy_cqs(&mut self) -> Result<(), Mlx5Error> {
        while let Some(cq) = self.cqs.pop() {
            let cqn = cq.cqn;
            self.exec(
                &input!(DestroyCqIn, DestroyCqIn::<&[u8]>::LEN, 0, |v| {
                    v.set_cqn(cqn);
                }),
                OUT_LEN_16,
            )?;
        }
        Ok(())
    }

    /// Consumes every new EQE of both EQs: answers page requests (slot kept for them),
    /// counts port changes and queue errors, re-arms the EQs. Returns the EQEs seen.
    pub fn poll_events(&mut self) -> Result<usize, Mlx5Error> {
        let mut seen = 0;
        let mut requests = Vec::new();
        if let Some(eq) = self.async_eq.as_mut() {
            while let Some(e) = eq.next_eqe() {
                seen += 1;
                match e.data {
                    EventData::PageRequest { num_pages, .. } => requests.push(num_pages),
                    EventData::PortChange { .. } => self.events.port_changes += 1,
                    EventData::CqError { .. } => self.events.cq_errors += 1,
                    EventData::WorkQueue { .. } => self.events.wq_errors += 1,
                    _ => self.events.other += 1,
                }
            }
            eq.doorbell(&self.bar, true);
        }
        if let Some(eq) = self.comp_eq.as_mut() {
            while let Some(e) = eq.next_eqe() {
                seen += 1;
                match e.event_type {
                    EventType::Completion => self.events.completions += 1,
                    _ => self.events.other += 1,
                }
            }
            eq.doorbell(&self.bar, true);
        }
        self.events.eqes += seen as u64;
        let slot = self.cmd.page_slot();
        for n in requests {
            if n > 0 {
                match self.give_pages(n as usize, slot) {
                    Ok(()) => self.events.page_requests_given += 1,
                    Err(e @ Mlx5Error::Dma(_)) => {
                        self.events.page_requests_failed += 1;
                        let m = input!(
                            ManagePagesIn,
                            ManagePagesIn::<&[u8]>::LEN,
                            u16::from(ManagePagesOp::CannotGive),
                            |_v| {}
                        );
                        self.exec_in(slot, &m, OUT_LEN_16)?;
                        return Err(e);
                    }
                    Err(e) => return Err(e),
                }
            } else if n < 0 {
                self.take_pages(n.unsigned_abs() as usize, slot)?;
                self.events.page_requests_taken += 1;
            }
        }
        Ok(seen)
    }

    /// Reads the health buffer and counter, as the health poller does every couple of
    /// seconds: a fatal state is [`Mlx5Error::DeviceFatal`]; a counter unchanged for
    /// `health_miss_limit` polls in a row is [`Mlx5Error::HealthCompromised`].
    pub fn check_health(&mut self) -> Result<HealthReport, Mlx5Error> {
        let h = self.bar.health();
        if h.fatal {
            return Err(Mlx5Error::DeviceFatal(h));
        }
        if self.health_last == Some(h.counter) {
            self.health_misses += 1;
            if self.health_misses >= self.config.health_miss_limit {
                return Err(Mlx5Error::HealthCompromised {
                    counter: h.counter,
                    misses: self.health_misses,
                });
            }
        } else {
            self.health_misses = 0;
        }
        self.health_last = Some(h.counter);
        Ok(h)
    }

    /// Brings the command interface back after a command timeout: refuses a fatal device,
    /// waits for `initializing`, takes back the stuck entries, hands the device the queue
    /// again and proves it with QUERY_ISSI (any answer, even a refusal, proves it).
    pub fn recover_command_interface(&mut self) -> Result<(), Mlx5Error> {
        let h = self.bar.health();
        if h.fatal {
            return Err(Mlx5Error::DeviceFatal(h));
        }
        wait_initializing(&self.bar, &self.clock, self.config.init_timeout_ns)?;
        self.cmd.recover(&self.bar);
        match self.exec(&input!(QueryIssiIn, 0), QueryIssiOut::<&[u8]>::LEN) {
            Ok(_) | Err(Mlx5Error::Command { .. }) => Ok(()),
            Err(e) => Err(e),
        }
    }

    /// Tears the function down in reverse: the Ethernet objects, CQs, PD, transport domain,
    /// EQs, UAR; TEARDOWN_HCA (graceful); MANAGE_PAGES take until every page is back;
    /// DISABLE_HCA. Pages the device keeps are [`Mlx5Error::Pages`]. Returns every command
    /// the driver sent in its life, in order.
    pub fn shutdown(mut self) -> Result<Vec<super::cmd::CommandRecord>, Mlx5Error> {
        self.close_eth()?;
        self.destroy_cqs()?;
        let td = self.td;
        self.exec(
            &input!(
                DeallocTransportDomainIn,
                DeallocTransportDomainIn::<&[u8]>::LEN,
                0,
                |v| {
                    v.set_transport_domain(td);
                }
            ),
            OUT_LEN_16,
        )?;
        let pd = self.pd;
        self.exec(
            &input!(DeallocPdIn, DeallocPdIn::<&[u8]>::LEN, 0, |v| {
                v.set_pd(pd);
            }),
            OUT_LEN_16,
        )?;
        for eq in [self.comp_eq.take(), self.async_eq.take()]
            .into_iter()
            .flatten()
        {
            let eqn = eq.eqn;
            self.exec(
                &input!(DestroyEqIn, DestroyEqIn::<&[u8]>::LEN, 0, |v| {
                    v.set_eq_number(eqn);
                }),
                OUT_LEN_16,
            )?;
        }
        // Back to polling (`mlx5_cmd_use_polling`), then the command EQ goes too.
        if let Some(eq) = self.cmd_eq.take() {
            let eqn = eq.eqn;
            self.exec(
                &input!(DestroyEqIn, DestroyEqIn::<&[u8]>::LEN, 0, |v| {
                    v.set_eq_number(eqn);
                }),
                OUT_LEN_16,
            )?;
        }
        let uar = self.uar;
        self.exec(
            &input!(DeallocUarIn, DeallocUarIn::<&[u8]>::LEN, 0, |v| {
                v.set_uar(uar);
            }),
            OUT_LEN_16,
        )?;
        self.exec(
            &input!(TeardownHcaIn, TeardownHcaIn::<&[u8]>::LEN, 0, |v| {
                v.set_profile(teardown_profile::GRACEFUL_CLOSE);
            }),
            OUT_LEN_16,
        )?;
        while self.pages.outstanding() > 0 {
            let want = self.pages.outstanding();
            if self.take_pages(want, COMMAND_SLOT)? == 0 {
                break;
            }
        }
        self.exec(&input!(DisableHcaIn, 0), OUT_LEN_16)?;
        if self.pages.outstanding() > 0 {
            return Err(Mlx5Error::Pages("the device kept pages after teardown"));
        }
        Ok(self.cmd.trace().to_vec())
    }

    /// QUERY_VPORT_STATE of the function's own vport: the operational state.
    pub fn vport_state(&mut self) -> Result<VportState, Mlx5Error> {
        let o = self.exec(
            &input!(QueryVportStateIn, vport_state_op::VNIC_VPORT),
            OUT_LEN_16,
        )?;
        Ok(output!(QueryVportStateOut, o)?.state())
    }

    /// QUERY_NIC_VPORT_CONTEXT of the function's own vport: the permanent MAC (zero when the
    /// PF assigned none) and the MTU.
    pub fn own_vport_context(&mut self) -> Result<(MacAddress, u16, u8), Mlx5Error> {
        let o = self.exec(
            &input!(QueryNicVportContextIn, 0),
            QueryNicVportContextOut::<&[u8]>::LEN,
        )?;
        let out = output!(QueryNicVportContextOut, o)?;
        let c = out.nic_vport_context();
        Ok((
            c.permanent_address(),
            c.mtu(),
            u8::from(c.min_wqe_inline_mode()),
        ))
    }

    /// PF side: gives VF `vf` (0-based; its vport is `vf + 1`) the MAC `mac`
    /// (MODIFY_NIC_VPORT_CONTEXT, `other_vport`, field select permanent address), as
    /// `ip link set PF vf N mac M` does.
    pub fn set_vf_mac(&mut self, vf: u16, mac: MacAddress) -> Result<(), Mlx5Error> {
        let m = input!(
            ModifyNicVportContextIn,
            ModifyNicVportContextIn::<&[u8]>::LEN,
            0,
            |v| {
                v.set_other_vport(true);
                v.set_vport_number(vf.saturating_add(1));
                v.set_field_select(field_select::PERMANENT_ADDRESS);
                v.nic_vport_context_mut().set_permanent_address(mac);
            }
        );
        self.exec(&m, OUT_LEN_16).map(|_| ())
    }

    /// PF side: sets VF `vf`'s administrative link state (MODIFY_VPORT_STATE, E-Switch
    /// vport, `other_vport`), as `ip link set PF vf N state up|down|auto` does.
    pub fn set_vf_link_state(&mut self, vf: u16, state: VportState) -> Result<(), Mlx5Error> {
        let m = input!(
            ModifyVportStateIn,
            ModifyVportStateIn::<&[u8]>::LEN,
            vport_state_op::ESW_VPORT,
            |v| {
                v.set_other_vport(true);
                v.set_vport_number(vf.saturating_add(1));
                v.set_raw_admin_state(u8::from(state));
            }
        );
        self.exec(&m, OUT_LEN_16).map(|_| ())
    }

    /// What the device reported at bring-up.
    pub fn info(&self) -> &DeviceInfo {
        &self.info
    }
    /// The capability pages in force.
    pub fn caps(&self) -> &DeviceCaps {
        &self.caps
    }
    /// Every command sent so far, in order, with its status.
    pub fn command_trace(&self) -> &[super::cmd::CommandRecord] {
        self.cmd.trace()
    }
    /// Command interface counters.
    pub fn command_counters(&self) -> super::cmd::CommandCounters {
        self.cmd.counters()
    }
    /// Event counters.
    pub fn event_counters(&self) -> EventCounters {
        self.events
    }
    /// Pages the device holds.
    pub fn pages_outstanding(&self) -> usize {
        self.pages.outstanding()
    }
    /// The UAR page index.
    pub fn uar(&self) -> u32 {
        self.uar
    }
    /// The protection domain.
    pub fn pd(&self) -> u32 {
        self.pd
    }
    /// The transport domain.
    pub fn transport_domain(&self) -> u32 {
        self.td
    }
    /// The command EQ number (event mode only).
    pub fn cmd_eq_number(&self) -> Option<u8> {
        self.cmd_eq.as_ref().map(|e| e.eqn)
    }
    /// The async and completion EQ numbers.
    pub fn eq_numbers(&self) -> (Option<u8>, Option<u8>) {
        (
            self.async_eq.as_ref().map(|e| e.eqn),
            self.comp_eq.as_ref().map(|e| e.eqn),
        )
    }
    /// The BAR.
    pub fn bar(&self) -> &Mlx5Bar<R> {
        &self.bar
    }
    /// The clock.
    pub fn clock(&self) -> &C {
        &self.clock
    }
    /// The DMA allocator.
    pub fn dma(&self) -> &D {
        &self.dma
    }
}

/// Waits for the `initializing` bit to clear (`wait_fw_init`: 2 ms steps).
fn wait_initializing<R: RegisterIo, C: Clock>(
    bar: &Mlx5Bar<R>,
    clock: &C,
    timeout_ns: u64,
) -> Result<(), Mlx5Error> {
    let start = clock.now_ns();
    loop {
        if bar.read(Register::Initializing) & (1 << 31) == 0 {
            return Ok(());
        }
        let waited = clock.now_ns().saturating_sub(start);
        if waited >= timeout_ns {
            return Err(Mlx5Error::FirmwareInitTimeout {
                waited_ms: waited / 1_000_000,
            });
        }
        clock.delay_ns(INIT_POLL_NS);
    }
}

/// True when `e` is the device refusing an opcode it does not implement.
pub fn is_bad_op(e: &Mlx5Error) -> bool {
    matches!(
        e,
        Mlx5Error::Command {
            status: CommandStatus::BadOp,
            ..
        }
    )
}
