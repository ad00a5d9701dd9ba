//! Command execution and the per-function state machine (layouts: `mlx5_hw::commands`;
//! order and expectations: Linux `mlx5_core` `main.c` `mlx5_function_enable`,
//! `mlx5_function_open`, `handle_hca_cap`, `mlx5_init_once`, `pagealloc.c`, `uar.c`,
//! `en_common.c`; rdma-core `mlx5_vfio.c`).
//!
//! ```text
//!  Disabled ──ENABLE_HCA──► Enabled ──INIT_HCA──► Initialized
//!     ▲                      │  ▲                    │
//!     └──────DISABLE_HCA─────┘  └────TEARDOWN_HCA────┘   (DISABLE_HCA from either state)
//! ```
//!
//! Every command first passes the header checks (uid 0: no user contexts exist, else
//! BAD_PARAM; a known opcode, else BAD_OP), then its state check (BAD_SYS_STATE), its op_mod
//! (BAD_OP), its input and output lengths against the layouts (BAD_INP_LEN / BAD_OUTP_LEN),
//! and its fields (BAD_PARAM, BAD_RES, NO_RES). A refused command changes nothing. The
//! syndromes are the model's own codes ([`syndrome`]), opaque to drivers as firmware's are.
//!
//! Most commands act on the issuing function's state only; the vport commands
//! (`vport_commands.rs`) and OUR HAC vendor commands (`hac_commands.rs`) also get the
//! device-level E-Switch ([`Eswitch`]), where the PF (the E-Switch manager) may act on a VF's
//! vport and a VF only on its own.

use std::collections::BTreeSet;

use mlx5_hw::caps::CAP_LEN;
use mlx5_hw::cmd::{CommandStatus, InputHeader, Opcode, OutputHeader};
use mlx5_hw::commands::lifecycle::{
    DEVICE_PAGE_SIZE, DisableHcaIn, DisableHcaOut, EnableHcaIn, EnableHcaOut, InitHcaIn,
    InitHcaOut, ManagePagesIn, ManagePagesOp, ManagePagesOut, PSID, PagesKind, QueryAdapterIn,
    QueryAdapterOut, QueryHcaCapIn, QueryHcaCapOut, QueryIssiIn, QueryIssiOut, QueryPagesIn,
    QueryPagesOut, REGISTER_DATA_OFFSET, SetDriverVersionIn, SetDriverVersionOut, SetHcaCapIn,
    SetHcaCapOut, SetIssiIn, SetIssiOut, TeardownHcaIn, TeardownHcaOut, teardown_profile,
};
use mlx5_hw::commands::resources::{
    AllocPdIn, AllocPdOut, AllocTransportDomainIn, AllocTransportDomainOut, AllocUarIn,
    AllocUarOut, DeallocPdIn, DeallocPdOut, DeallocTransportDomainIn, DeallocTransportDomainOut,
    DeallocUarIn, DeallocUarOut,
};

use adapter_core::memory::Iommu;
use hw_common::Iova;
use mlx5_hw::uar::UAR_PAGE_SHIFT;

use crate::caps;
use crate::cq::Cqs;
use crate::eq::Eqs;
use crate::mkey::Mkeys;
use crate::steering::NicRxSteering;
use crate::wq::{Rqs, Rqts, Sqs, Tirs, Tises};

mod cq_commands;
mod eq_commands;
mod mkey_commands;
pub mod port_commands;
mod steering_commands;
mod tir_commands;
mod wq_commands;
use crate::eswitch::Eswitch;
use crate::function::FunctionId;

mod hac_commands;
mod qos_commands;
mod vport_commands;
use crate::hw::{CapMode, CapOpMod, CapType};

/// The model's syndromes: which check refused a command.
pub mod syndrome {
    /// The opcode is unknown or not implemented.
    pub const BAD_OPCODE: u32 = 0x4D58_0001;
    /// The op_mod is not one the command has.
    pub const BAD_OP_MOD: u32 = 0x4D58_0002;
    /// The input is shorter than the command's layout.
    pub const INPUT_TOO_SHORT: u32 = 0x4D58_0003;
    /// The output is shorter than the command's layout.
    pub const OUTPUT_TOO_SHORT: u32 = 0x4D58_0004;
    /// A non-zero uid: no user contexts exist.
    pub const BAD_UID: u32 = 0x4D58_0005;
    /// The function is not enabled (before ENABLE_HCA or after DISABLE_HCA).
    pub const NOT_ENABLED: u32 = 0x4D58_0010;
    /// ENABLE_HCA on an enabled function.
    pub const ALREADY_ENABLED: u32 = 0x4D58_0011;
    /// The command needs INIT_HCA first.
    pub const NOT_INITIALIZED: u32 = 0x4D58_0012;
    /// The command is only allowed before INIT_HCA.
    pub const ALREADY_INITIALIZED: u32 = 0x4D58_0013;
    /// function_id / other_function / embedded_cpu_function name another function.
    pub const OTHER_FUNCTION: u32 = 0x4D58_0020;
    /// SET_ISSI with an ISSI the device does not support.
    pub const BAD_ISSI: u32 = 0x4D58_0021;
    /// A capability page the device does not have.
    pub const BAD_CAP_TYPE: u32 = 0x4D58_0022;
    /// SET_HCA_CAP changes a field beyond the maximum or a read-only field.
    pub const BAD_CAP_VALUE: u32 = 0x4D58_0023;
    /// MANAGE_PAGES: a page address that is zero, not 4 KiB aligned, or given twice.
    pub const BAD_PAGE: u32 = 0x4D58_0024;
    /// TEARDOWN_HCA with a profile the caps do not advertise.
    pub const BAD_TEARDOWN_PROFILE: u32 = 0x4D58_0025;
    /// INIT_HCA before the boot and init pages were given.
    pub const PAGES_MISSING: u32 = 0x4D58_0030;
    /// MANAGE_PAGES give beyond the pages a function may hold.
    pub const TOO_MANY_PAGES: u32 = 0x4D58_0031;
    /// Out of UARs, PDs or transport domains.
    pub const NO_OBJECTS: u32 = 0x4D58_0032;
    /// DEALLOC of an object that is not allocated.
    pub const NO_SUCH_OBJECT: u32 = 0x4D58_0040;
    /// MANAGE_PAGES count larger than the input carries.
    pub const PAGE_LIST_SHORT: u32 = 0x4D58_0041;
    /// ACCESS_REG of a register the model does not have.
    pub const UNSUPPORTED_REGISTER: u32 = 0x4D58_0042;
    /// A register field out of range: a local port other than 1, a PAOS status other than
    /// up/down, a PMTU outside its bounds, a PTYS access without Ethernet in `proto_mask`, a
    /// PPCNT group other than IEEE 802.3.
    pub const BAD_REGISTER_FIELD: u32 = 0x4D58_0043;
    /// A write of a register a function may only read (PTYS, PPCNT).
    pub const REGISTER_READ_ONLY: u32 = 0x4D58_0044;
    /// A queue size (log2 entries) of 0 or beyond the capability, or a page size beyond the
    /// model's.
    pub const BAD_QUEUE_SIZE: u32 = 0x4D58_0050;
    /// An interrupt vector beyond the function's MSI-X table.
    pub const BAD_VECTOR: u32 = 0x4D58_0051;
    /// A UAR page the function has not allocated.
    pub const NO_SUCH_UAR: u32 = 0x4D58_0052;
    /// A page address (PAS) not aligned to the queue's page size.
    pub const BAD_PAS: u32 = 0x4D58_0053;
    /// A page list shorter than the queue's buffer.
    pub const PAS_SHORT: u32 = 0x4D58_0054;
    /// The queue's buffer is not reachable through the function's IOMMU (a DMA fault).
    pub const EQ_BUFFER_FAULT: u32 = 0x4D58_0055;
    /// A CQE size other than 64 bytes.
    pub const BAD_CQE_SIZE: u32 = 0x4D58_0056;
    /// A CQ feature the model does not have (collapsed CQ, CQE compression).
    pub const UNSUPPORTED_CQ_FEATURE: u32 = 0x4D58_0057;
    /// An EQ number (`c_eqn`) the function has not created.
    pub const NO_SUCH_EQ: u32 = 0x4D58_0058;
    /// The CQ's buffer is not reachable through the function's IOMMU (a DMA fault).
    pub const CQ_BUFFER_FAULT: u32 = 0x4D58_0059;
    /// The CQ's doorbell record is not 8-byte aligned or not reachable.
    pub const BAD_DBR: u32 = 0x4D58_005A;
    /// MODIFY_CQ field-select bits the model does not know.
    pub const BAD_FIELD_SELECT: u32 = 0x4D58_005B;
    /// DESTROY_EQ of an EQ a CQ still sends its completion events to.
    pub const EQ_IN_USE: u32 = 0x4D58_005C;
    /// A CQ number the function has not created (SQ/RQ contexts).
    pub const NO_SUCH_CQ: u32 = 0x4D58_0060;
    /// A PD the function has not allocated.
    pub const NO_SUCH_PD: u32 = 0x4D58_0061;
    /// A transport domain the function has not allocated.
    pub const NO_SUCH_TD: u32 = 0x4D58_0062;
    /// A TIS the function has not created.
    pub const NO_SUCH_TIS: u32 = 0x4D58_0063;
    /// An RQ the function has not created.
    pub const NO_SUCH_RQ: u32 = 0x4D58_0064;
    /// An RQT the function has not created.
    pub const NO_SUCH_RQT: u32 = 0x4D58_0065;
    /// A TIR the function has not created.
    pub const NO_SUCH_TIR: u32 = 0x4D58_0066;
    /// A flow table the function has not created.
    pub const NO_SUCH_FLOW_TABLE: u32 = 0x4D58_0067;
    /// A flow group the table does not have.
    pub const NO_SUCH_FLOW_GROUP: u32 = 0x4D58_0068;
    /// DESTROY of an object another object still refers to (a CQ an SQ/RQ completes to, a
    /// TIS an SQ sends through, an RQ a TIR/RQT delivers to, a TIR/table a rule forwards to,
    /// an RQT a TIR hashes over, the root table, a table with groups, a group with entries).
    pub const OBJECT_IN_USE: u32 = 0x4D58_0069;
    /// A work queue type other than cyclic (linked list, striding RQ).
    pub const UNSUPPORTED_WQ_TYPE: u32 = 0x4D58_006A;
    /// An SQ stride other than 64 bytes, or an RQ stride outside 16..=`max_wqe_sz_rq`.
    pub const BAD_WQ_STRIDE: u32 = 0x4D58_006B;
    /// A queue feature the model does not implement or advertise (multi-packet WQEs, UMR,
    /// software parser, hairpin, TLS, LRO, scatter FCS, delay drop, RMP, end padding, WQE
    /// signatures, completion-on-demand, a page offset, packet pacing, tunnel offloads).
    pub const UNSUPPORTED_QUEUE_FEATURE: u32 = 0x4D58_006C;
    /// The WQ buffer or doorbell record is not reachable through the function's IOMMU.
    pub const WQ_BUFFER_FAULT: u32 = 0x4D58_006D;
    /// CREATE_SQ/RQ with a state other than RST.
    pub const BAD_INITIAL_STATE: u32 = 0x4D58_006E;
    /// MODIFY_SQ/RQ whose current state is not the queue's state.
    pub const STATE_MISMATCH: u32 = 0x4D58_006F;
    /// MODIFY_SQ/RQ with a transition the PRM does not allow (e.g. RST→ERR).
    pub const BAD_TRANSITION: u32 = 0x4D58_0070;
    /// An SQ context listing more than one TIS (none is an SQ that sends NOPs only).
    pub const BAD_TIS_LIST: u32 = 0x4D58_0071;
    /// A queue counter set the function has not allocated.
    pub const NO_SUCH_COUNTER_SET: u32 = 0x4D58_0072;
    /// A TIR dispatch type other than direct or indirect.
    pub const BAD_DISPATCH: u32 = 0x4D58_0073;
    /// A TIR hash function the PRM does not define (none, inverted XOR8 and Toeplitz are).
    pub const UNSUPPORTED_HASH: u32 = 0x4D58_0074;
    /// An RQT size of 0, beyond its maximum or beyond `log_max_rqt_size`, or a list longer
    /// than the input carries.
    pub const BAD_RQT_SIZE: u32 = 0x4D58_0075;
    /// A flow table type other than NIC RX.
    pub const UNSUPPORTED_TABLE_TYPE: u32 = 0x4D58_0076;
    /// A flow table size or level beyond the capabilities.
    pub const BAD_TABLE_SIZE: u32 = 0x4D58_0077;
    /// A miss or forward target whose level is not above the table's.
    pub const BAD_TABLE_LEVEL: u32 = 0x4D58_0078;
    /// Match criteria the model does not compare (misc/inner parameters, unsupported outer
    /// fields).
    pub const UNSUPPORTED_MATCH: u32 = 0x4D58_0079;
    /// A flow group range outside the table or overlapping another group.
    pub const BAD_FLOW_RANGE: u32 = 0x4D58_007A;
    /// A flow index outside its group, or already holding a rule.
    pub const BAD_FLOW_INDEX: u32 = 0x4D58_007B;
    /// A flow action or destination the model does not implement (count, several or
    /// extended destinations, vport destinations, allow).
    pub const UNSUPPORTED_ACTION: u32 = 0x4D58_007C;
    /// An mkey other than a physical-address key with local rights (MTT/KLM/KSM modes,
    /// remote or atomic access, UMR, on-demand paging, user memory).
    pub const UNSUPPORTED_MKEY: u32 = 0x4D58_007D;
    pub use super::qos_commands::qos_syndrome::*;
    pub use super::vport_commands::esw_syndrome::*;
}

/// Pages a function asks for at boot (QUERY_PAGES op_mod 1).
pub const BOOT_PAGES: u32 = 2;
/// Pages a function asks for before INIT_HCA (QUERY_PAGES op_mod 2).
pub const INIT_PAGES: u32 = 4;
/// Most pages a function may hold; more is NO_RES.
pub const MAX_PAGES: usize = 4096;
/// ISSIs the model supports: 0 and 1 (`supported_issi_dw0` = 0x3, as the lab answered).
pub const SUPPORTED_ISSI: u32 = 0b11;
/// The board id QUERY_ADAPTER returns.
pub const BOARD_ID: &[u8] = b"HACNIC_MLX5_0001";
/// First UAR index ALLOC_UAR hands out: the pages after the init segment, MSI-X table and PBA.
pub const FIRST_UAR: u32 = 4;
/// Protection domains and transport domains per function (2^`log_max_pd`).
pub const MAX_DOMAINS: usize = 256;

/// The HCA state of a function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum HcaState {
    /// Before ENABLE_HCA, after DISABLE_HCA or a reset.
    #[default]
    Disabled,
    /// After ENABLE_HCA: ISSI, pages and capabilities may be set.
    Enabled,
    /// After INIT_HCA: resources may be allocated.
    Initialized,
}

/// Everything the commands have set on one function (compared whole by the isolation tests).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FunctionState {
    /// HCA state.
    pub hca: HcaState,
    /// ISSI in force.
    pub issi: u16,
    /// Pages given by MANAGE_PAGES and still held.
    pub pages: BTreeSet<u64>,
    /// The current general capability page.
    pub general_cur: Vec<u8>,
    /// The driver version string of SET_DRIVER_VERSION.
    pub driver_version: Vec<u8>,
    /// Allocated UAR indices.
    pub uars: BTreeSet<u32>,
    /// Allocated protection domains.
    pub pds: BTreeSet<u32>,
    /// Allocated transport domains.
    pub transport_domains: BTreeSet<u32>,
    /// The HOST_ENDIANNESS register as the driver wrote it (`he`: host big-endian).
    pub host_big_endian: Option<bool>,
    /// Event queues by number.
    pub eqs: Eqs,
    /// Completion queues by number.
    pub cqs: Cqs,
    /// Pages the device asked for by a page-request event and has not been given yet
    /// (QUERY_PAGES op_mod 3).
    pub pages_owed: u32,
    /// Transport interface sends by number.
    pub tises: Tises,
    /// Send queues by number.
    pub sqs: Sqs,
    /// Receive queues by number.
    pub rqs: Rqs,
    /// RQ tables by number.
    pub rqts: Rqts,
    /// Transport interface receives by number.
    pub tirs: Tirs,
    /// NIC receive flow tables and the root.
    pub steering: NicRxSteering,
    /// Memory keys by index.
    pub mkeys: Mkeys,
    /// The port registers (PAOS, PMTU) as the function set them.
    pub port: port_commands::PortRegisters,
    /// Allocated queue counter sets.
    pub q_counters: port_commands::QCounters,
}

impl FunctionState {
    /// The state after a reset of a function (`is_vf`).
    pub fn new(is_vf: bool) -> FunctionState {
        FunctionState {
            hca: HcaState::Disabled,
            issi: 0,
            pages: BTreeSet::new(),
            general_cur: caps::general_max(is_vf),
            driver_version: Vec::new(),
            uars: BTreeSet::new(),
            pds: BTreeSet::new(),
            transport_domains: BTreeSet::new(),
            host_big_endian: None,
            eqs: Eqs::new(),
            cqs: Cqs::new(),
            pages_owed: 0,
            tises: Tises::new(),
            sqs: Sqs::new(),
            rqs: Rqs::new(),
            rqts: Rqts::new(),
            tirs: Tirs::new(),
            steering: NicRxSteering::default(),
            mkeys: Mkeys::new(),
            port: port_commands::PortRegisters::default(),
            q_counters: port_commands::QCounters::new(),
        }
    }

    /// Pages the device needs to keep in the current state.
    fn pages_needed(&self) -> usize {
        match self.hca {
            HcaState::Initialized => (BOOT_PAGES + INIT_PAGES) as usize,
            _ => 0,
        }
    }
}

/// What the executor knows about the function beyond its state.
pub(crate) struct Ctx {
    pub is_vf: bool,
    /// The issuing function (its own vport is `function.slot()`).
    pub function: FunctionId,
    /// VFs enabled now (the VF vports the E-Switch manager may name).
    pub num_vfs: u16,
    /// Virtual time of the doorbell.
    pub now: adapter_core::SimTime,
    /// UAR pages of BAR0 (BAR0 size / 4 KiB).
    pub uar_pages: u32,
    /// Pages a DISABLE_HCA released with the function.
    pub released_pages: core::cell::Cell<usize>,
    /// Vectors of the function's MSI-X table.
    pub msix_vectors: u16,
    /// CREATE_EQs refused because the EQ buffer faulted.
    pub eq_buffer_faults: core::cell::Cell<u64>,
    /// CREATE_CQs refused because the CQ buffer or doorbell record faulted.
    pub cq_buffer_faults: core::cell::Cell<u64>,
    /// CREATE_SQ/RQs refused because the WQ buffer or doorbell record faulted.
    pub wq_buffer_faults: core::cell::Cell<u64>,
}

/// A refusal: status and syndrome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) struct Refusal(CommandStatus, u32);

pub(crate) type Result<T> = core::result::Result<T, Refusal>;

pub(crate) fn refuse<T>(status: CommandStatus, syndrome: u32) -> Result<T> {
    Err(Refusal(status, syndrome))
}

pub(crate) fn short_in<E>(_: E) -> Refusal {
    Refusal(CommandStatus::BadInputLength, syndrome::INPUT_TOO_SHORT)
}

pub(crate) fn short_out<E>(_: E) -> Refusal {
    Refusal(CommandStatus::BadOutputLength, syndrome::OUTPUT_TOO_SHORT)
}

/// Reads one byte at `at` through the function's IOMMU: whether it is reachable.
pub(crate) fn reachable(iommu: &Iommu, at: Option<u64>) -> bool {
    let mut b = [0u8; 1];
    at.is_some_and(|a| iommu.read(Iova(a), &mut b).is_ok())
}

/// Why a queue's page list (PAS) was refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum PasError {
    /// The list is shorter than the buffer (BAD_INP_LEN `PAS_SHORT`).
    Short,
    /// A page address not aligned to the page size (BAD_PARAM `BAD_PAS`).
    Misaligned,
    /// A page the ring uses is not reachable (the caller's syndrome and counter).
    Fault,
}

impl PasError {
    /// The refusal, `fault` being the caller's for an unreachable buffer (it counts it).
    pub(crate) fn refusal(self, fault: impl FnOnce() -> Refusal) -> Refusal {
        match self {
            PasError::Short => Refusal(CommandStatus::BadInputLength, syndrome::PAS_SHORT),
            PasError::Misaligned => Refusal(CommandStatus::BadParam, syndrome::BAD_PAS),
            PasError::Fault => fault(),
        }
    }
}

/// The page list of a queue buffer of `bytes` bytes (from the start of its first page) in
/// pages of 4 KiB << `log_page_size`: the `capacity` entries the input carries are read with
/// `pa`; the list must cover the buffer, each address be aligned to the page size, and the
/// first and last byte of every page the ring uses be reachable through the IOMMU. Shared by
/// CREATE_EQ, CREATE_CQ, CREATE_SQ and CREATE_RQ.
pub(crate) fn ring_pages(
    iommu: &Iommu,
    bytes: u64,
    log_page_size: u8,
    capacity: usize,
    pa: impl Fn(usize) -> Option<u64>,
) -> core::result::Result<Vec<u64>, PasError> {
    let page = 1u64 << (UAR_PAGE_SHIFT + u32::from(log_page_size));
    let pages = usize::try_from(bytes.div_ceil(page)).unwrap_or(usize::MAX);
    if pages > capacity {
        return Err(PasError::Short);
    }
    let pas: Vec<u64> = (0..pages).map(|k| pa(k).unwrap_or(1)).collect();
    if pas.iter().any(|pa| !pa.is_multiple_of(page)) {
        return Err(PasError::Misaligned);
    }
    let mut left = bytes;
    for pa in &pas {
        let used = left.min(page);
        left -= used;
        let last = pa.checked_add(used.saturating_sub(1));
        if !reachable(iommu, Some(*pa)) || !reachable(iommu, last) {
            return Err(PasError::Fault);
        }
    }
    Ok(pas)
}

/// Executes one command: `input` is the whole message (at least the 8-byte header, which the
/// transport checks), the output is `out_len` bytes. Returns the output and its status.
pub(crate) fn execute(
    st: &mut FunctionState,
    ctx: &Ctx,
    iommu: &Iommu,
    esw: &mut Eswitch,
    input: &[u8],
    out_len: usize,
) -> (Vec<u8>, CommandStatus) {
    let mut out = vec![0u8; out_len];
    let result = InputHeader::parse(input)
        .map_err(short_in)
        .and_then(|h| dispatch(st, ctx, iommu, esw, h, input, &mut out));
    let header = match result {
        Ok(()) => OutputHeader::OK,
        Err(Refusal(status, syndrome)) => {
            out.fill(0);
            OutputHeader { status, syndrome }
        }
    };
    // The transport guarantees at least 8 output bytes.
    let _ = header.emit(&mut out);
    (out, header.status)
}

fn dispatch(
    st: &mut FunctionState,
    ctx: &Ctx,
    iommu: &Iommu,
    esw: &mut Eswitch,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    if h.uid != 0 {
        return refuse(CommandStatus::BadParam, syndrome::BAD_UID);
    }
    match h.opcode {
        Opcode::EnableHca => enable_hca(st, h, input, out),
        Opcode::DisableHca => disable_hca(st, ctx, h, input, out),
        Opcode::QueryIssi => query_issi(st, h, input, out),
        Opcode::SetIssi => set_issi(st, h, input, out),
        Opcode::QueryPages => query_pages(st, h, input, out),
        Opcode::ManagePages => manage_pages(st, h, input, out),
        Opcode::QueryHcaCap => query_hca_cap(st, ctx, h, input, out),
        Opcode::SetHcaCap => set_hca_cap(st, ctx, h, input, out),
        Opcode::InitHca => init_hca(st, h, input, out),
        Opcode::TeardownHca => teardown_hca(st, h, input, out),
        Opcode::SetDriverVersion => set_driver_version(st, h, input, out),
        Opcode::QueryAdapter => query_adapter(st, h, input, out),
        Opcode::AccessReg => port_commands::access_reg(st, ctx, esw, h, input, out),
        Opcode::AllocQCounter => port_commands::alloc_q_counter(st, h, input, out),
        Opcode::DeallocQCounter => port_commands::dealloc_q_counter(st, h, input, out),
        Opcode::QueryQCounter => port_commands::query_q_counter(st, h, input, out),
        Opcode::AllocUar => alloc_uar(st, ctx, h, input, out),
        Opcode::DeallocUar => dealloc_uar(st, h, input, out),
        Opcode::AllocPd => alloc_pd(st, h, input, out),
        Opcode::DeallocPd => dealloc_pd(st, h, input, out),
        Opcode::AllocTransportDomain => alloc_td(st, h, input, out),
        Opcode::DeallocTransportDomain => dealloc_td(st, h, input, out),
        Opcode::CreateEq => eq_commands::create_eq(st, ctx, iommu, h, input, out),
        Opcode::DestroyEq => eq_commands::destroy_eq(st, h, input, out),
        Opcode::QueryEq => eq_commands::query_eq(st, h, input, out),
        Opcode::CreateCq => cq_commands::create_cq(st, ctx, iommu, h, input, out),
        Opcode::DestroyCq => cq_commands::destroy_cq(st, h, input, out),
        Opcode::QueryCq => cq_commands::query_cq(st, h, input, out),
        Opcode::ModifyCq => cq_commands::modify_cq(st, h, input, out),
        Opcode::CreateTis => wq_commands::create_tis(st, h, input, out),
        Opcode::ModifyTis => wq_commands::modify_tis(st, h, input, out),
        Opcode::QueryTis => wq_commands::query_tis(st, h, input, out),
        Opcode::DestroyTis => wq_commands::destroy_tis(st, h, input, out),
        Opcode::CreateSq => wq_commands::create_sq(st, ctx, iommu, h, input, out),
        Opcode::ModifySq => wq_commands::modify_sq(st, h, input, out),
        Opcode::QuerySq => wq_commands::query_sq(st, h, input, out),
        Opcode::DestroySq => wq_commands::destroy_sq(st, h, input, out),
        Opcode::CreateRq => wq_commands::create_rq(st, ctx, iommu, h, input, out),
        Opcode::ModifyRq => wq_commands::modify_rq(st, h, input, out),
        Opcode::QueryRq => wq_commands::query_rq(st, h, input, out),
        Opcode::DestroyRq => wq_commands::destroy_rq(st, h, input, out),
        Opcode::CreateTir => tir_commands::create_tir(st, h, input, out),
        Opcode::ModifyTir => tir_commands::modify_tir(st, h, input, out),
        Opcode::DestroyTir => tir_commands::destroy_tir(st, h, input, out),
        Opcode::CreateRqt => tir_commands::create_rqt(st, h, input, out),
        Opcode::ModifyRqt => tir_commands::modify_rqt(st, h, input, out),
        Opcode::DestroyRqt => tir_commands::destroy_rqt(st, h, input, out),
        Opcode::CreateFlowTable => steering_commands::create_flow_table(st, h, input, out),
        Opcode::DestroyFlowTable => steering_commands::destroy_flow_table(st, h, input, out),
        Opcode::CreateFlowGroup => steering_commands::create_flow_group(st, h, input, out),
        Opcode::DestroyFlowGroup => steering_commands::destroy_flow_group(st, h, input, out),
        Opcode::SetFlowTableEntry => steering_commands::set_fte(st, h, input, out),
        Opcode::DeleteFlowTableEntry => steering_commands::delete_fte(st, h, input, out),
        Opcode::SetFlowTableRoot => steering_commands::set_root(st, h, input, out),
        Opcode::QueryVportState => vport_commands::query_vport_state(st, ctx, esw, h, input, out),
        Opcode::ModifyVportState => vport_commands::modify_vport_state(st, ctx, esw, h, input, out),
        Opcode::QueryNicVportContext => {
            vport_commands::query_nic_vport_context(st, ctx, esw, h, input, out)
        }
        Opcode::ModifyNicVportContext => {
            vport_commands::modify_nic_vport_context(st, ctx, esw, h, input, out)
        }
        Opcode::QueryVportCounter => {
            vport_commands::query_vport_counter(st, ctx, esw, h, input, out)
        }
        Opcode::HacSetControl => hac_commands::set_control(st, ctx, esw, h, input, out),
        Opcode::HacSetTagged => hac_commands::set_tagged(st, ctx, esw, h, input, out),
        Opcode::HacOpenEpoch => hac_commands::open_epoch(st, ctx, esw, h, input, out),
        Opcode::HacCommit => hac_commands::commit(st, ctx, esw, h, input, out),
        Opcode::HacAbort => hac_commands::abort(st, ctx, esw, h, input, out),
        Opcode::HacFailover => hac_commands::failover(st, ctx, esw, h, input, out),
        Opcode::HacUnprotect => hac_commands::unprotect(st, ctx, esw, h, input, out),
        Opcode::HacSetLimits => hac_commands::set_limits(st, ctx, esw, h, input, out),
        Opcode::HacQuery => hac_commands::query(st, ctx, esw, h, input, out),
        Opcode::CreateSchedulingElement => qos_commands::create(st, ctx, esw, h, input, out),
        Opcode::ModifySchedulingElement => qos_commands::modify(st, ctx, esw, h, input, out),
        Opcode::QuerySchedulingElement => qos_commands::query(st, ctx, esw, h, input, out),
        Opcode::DestroySchedulingElement => qos_commands::destroy(st, ctx, esw, h, input, out),
        Opcode::CreateMkey => mkey_commands::create_mkey(st, h, input, out),
        Opcode::DestroyMkey => mkey_commands::destroy_mkey(st, h, input, out),
        _ => refuse(CommandStatus::BadOp, syndrome::BAD_OPCODE),
    }
}

fn need_enabled(st: &FunctionState) -> Result<()> {
    if st.hca == HcaState::Disabled {
        return refuse(CommandStatus::BadSysState, syndrome::NOT_ENABLED);
    }
    Ok(())
}

fn need_before_init(st: &FunctionState) -> Result<()> {
    need_enabled(st)?;
    if st.hca == HcaState::Initialized {
        return refuse(CommandStatus::BadSysState, syndrome::ALREADY_INITIALIZED);
    }
    Ok(())
}

pub(crate) fn need_initialized(st: &FunctionState) -> Result<()> {
    need_enabled(st)?;
    if st.hca != HcaState::Initialized {
        return refuse(CommandStatus::BadSysState, syndrome::NOT_INITIALIZED);
    }
    Ok(())
}

pub(crate) fn no_op_mod(h: InputHeader) -> Result<()> {
    if h.op_mod != 0 {
        return refuse(CommandStatus::BadOp, syndrome::BAD_OP_MOD);
    }
    Ok(())
}

fn own_function(function_id: u16, flag: bool) -> Result<()> {
    if function_id != 0 || flag {
        return refuse(CommandStatus::BadParam, syndrome::OTHER_FUNCTION);
    }
    Ok(())
}

fn enable_hca(st: &mut FunctionState, h: InputHeader, input: &[u8], out: &mut [u8]) -> Result<()> {
    let i = EnableHcaIn::new_checked(input).map_err(short_in)?;
    EnableHcaOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    own_function(i.function_id(), i.embedded_cpu_function())?;
    if st.hca != HcaState::Disabled {
        return refuse(CommandStatus::BadSysState, syndrome::ALREADY_ENABLED);
    }
    st.hca = HcaState::Enabled;
    Ok(())
}

fn disable_hca(
    st: &mut FunctionState,
    ctx: &Ctx,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = DisableHcaIn::new_checked(input).map_err(short_in)?;
    DisableHcaOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    own_function(i.function_id(), i.embedded_cpu_function())?;
    need_enabled(st)?;
    // Pages still held are released with the function (a driver reclaims them before;
    // the device counts what it still had).
    ctx.released_pages.set(st.pages.len());
    *st = FunctionState::new(ctx.is_vf);
    Ok(())
}

fn query_issi(st: &mut FunctionState, h: InputHeader, input: &[u8], out: &mut [u8]) -> Result<()> {
    QueryIssiIn::new_checked(input).map_err(short_in)?;
    let mut o = QueryIssiOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_enabled(st)?;
    o.set_current_issi(st.issi);
    o.set_supported_issi_dw0(SUPPORTED_ISSI);
    Ok(())
}

fn set_issi(st: &mut FunctionState, h: InputHeader, input: &[u8], out: &mut [u8]) -> Result<()> {
    let i = SetIssiIn::new_checked(input).map_err(short_in)?;
    SetIssiOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_before_init(st)?;
    let issi = i.current_issi();
    if issi >= 32 || SUPPORTED_ISSI & (1 << issi) == 0 {
        return refuse(CommandStatus::BadParam, syndrome::BAD_ISSI);
    }
    st.issi = issi;
    Ok(())
}

fn query_pages(st: &mut FunctionState, h: InputHeader, input: &[u8], out: &mut [u8]) -> Result<()> {
    let i = QueryPagesIn::new_checked(input).map_err(short_in)?;
    let mut o = QueryPagesOut::new_checked(&mut *out).map_err(short_out)?;
    need_enabled(st)?;
    let given = st.pages.len() as i64;
    let wanted = match PagesKind::from(h.op_mod) {
        PagesKind::Boot => i64::from(BOOT_PAGES) - given,
        PagesKind::Init => i64::from(BOOT_PAGES + INIT_PAGES) - given,
        PagesKind::Regular => i64::from(st.pages_owed),
        PagesKind::Unknown(_) => return refuse(CommandStatus::BadOp, syndrome::BAD_OP_MOD),
    };
    own_function(i.function_id(), i.embedded_cpu_function())?;
    o.set_function_id(0);
    o.set_num_pages(wanted.max(0) as i32);
    Ok(())
}

fn manage_pages(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = ManagePagesIn::new_checked(input).map_err(short_in)?;
    let mut o = ManagePagesOut::new_checked(&mut *out).map_err(short_out)?;
    need_enabled(st)?;
    let op = ManagePagesOp::from(h.op_mod);
    if let ManagePagesOp::Unknown(_) = op {
        return refuse(CommandStatus::BadOp, syndrome::BAD_OP_MOD);
    }
    own_function(i.function_id(), i.embedded_cpu_function())?;
    let n = i.input_num_entries() as usize;
    match op {
        ManagePagesOp::Give => {
            if n > i.pa_capacity() {
                return refuse(CommandStatus::BadInputLength, syndrome::PAGE_LIST_SHORT);
            }
            if st.pages.len() + n > MAX_PAGES {
                return refuse(CommandStatus::NoResources, syndrome::TOO_MANY_PAGES);
            }
            let mut new = BTreeSet::new();
            for k in 0..n {
                let pa = i.pa(k).unwrap_or(0);
                if pa == 0
                    || !pa.is_multiple_of(DEVICE_PAGE_SIZE)
                    || st.pages.contains(&pa)
                    || !new.insert(pa)
                {
                    return refuse(CommandStatus::BadParam, syndrome::BAD_PAGE);
                }
            }
            st.pages.extend(new);
            if st.hca == HcaState::Initialized {
                st.pages_owed = st.pages_owed.saturating_sub(n as u32);
            }
        }
        ManagePagesOp::Take => {
            let spare = st.pages.len().saturating_sub(st.pages_needed());
            let count = n.min(spare);
            if o.pa_capacity() < count {
                return refuse(CommandStatus::BadOutputLength, syndrome::OUTPUT_TOO_SHORT);
            }
            // Highest addresses first: the most recently given pages of a bump allocator.
            let taken: Vec<u64> = st.pages.iter().rev().take(count).copied().collect();
            for (k, pa) in taken.iter().enumerate() {
                st.pages.remove(pa);
                o.set_pa(k, *pa);
            }
            o.set_output_num_entries(count as u32);
        }
        // The driver could not give the pages asked for: nothing changes.
        ManagePagesOp::CannotGive | ManagePagesOp::Unknown(_) => {}
    }
    Ok(())
}

fn cap_page(st: &FunctionState, ctx: &Ctx, t: CapType, mode: CapMode) -> Result<Vec<u8>> {
    match t {
        CapType::General => Ok(match mode {
            CapMode::Current => st.general_cur.clone(),
            _ => caps::general_max(ctx.is_vf),
        }),
        CapType::EthernetOffloads => Ok(caps::ethernet()),
        CapType::FlowTable => Ok(caps::flow_table()),
        CapType::Qos if !ctx.is_vf => Ok(caps::qos()),
        _ => refuse(CommandStatus::BadParam, syndrome::BAD_CAP_TYPE),
    }
}

fn query_hca_cap(
    st: &mut FunctionState,
    ctx: &Ctx,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = QueryHcaCapIn::new_checked(input).map_err(short_in)?;
    let mut o = QueryHcaCapOut::new_checked(&mut *out).map_err(short_out)?;
    need_enabled(st)?;
    own_function(i.function_id(), i.other_function())?;
    let op = CapOpMod::from_query(h.op_mod);
    let page = cap_page(st, ctx, op.cap_type, op.mode)?;
    o.capability_mut().copy_from_slice(&page[..CAP_LEN]);
    Ok(())
}

fn set_hca_cap(
    st: &mut FunctionState,
    ctx: &Ctx,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = SetHcaCapIn::new_checked(input).map_err(short_in)?;
    SetHcaCapOut::new_checked(&mut *out).map_err(short_out)?;
    let Some(t) = CapType::from_set_op_mod(h.op_mod) else {
        return refuse(CommandStatus::BadOp, syndrome::BAD_OP_MOD);
    };
    need_before_init(st)?;
    own_function(i.function_id(), i.other_function())?;
    let req = i.capability();
    match t {
        CapType::General => {
            let max = caps::general_max(ctx.is_vf);
            let new = caps::settable_general(req, &st.general_cur, &max)
                .map_err(|_| Refusal(CommandStatus::BadParam, syndrome::BAD_CAP_VALUE))?;
            st.general_cur = new;
            Ok(())
        }
        CapType::EthernetOffloads if req == &caps::ethernet()[..] => Ok(()),
        CapType::EthernetOffloads => refuse(CommandStatus::BadParam, syndrome::BAD_CAP_VALUE),
        _ => refuse(CommandStatus::BadParam, syndrome::BAD_CAP_TYPE),
    }
}

fn init_hca(st: &mut FunctionState, h: InputHeader, input: &[u8], out: &mut [u8]) -> Result<()> {
    InitHcaIn::new_checked(input).map_err(short_in)?;
    InitHcaOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_before_init(st)?;
    if st.pages.len() < (BOOT_PAGES + INIT_PAGES) as usize {
        return refuse(CommandStatus::NoResources, syndrome::PAGES_MISSING);
    }
    st.hca = HcaState::Initialized;
    Ok(())
}

fn teardown_hca(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = TeardownHcaIn::new_checked(input).map_err(short_in)?;
    TeardownHcaOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    if i.profile() != teardown_profile::GRACEFUL_CLOSE {
        return refuse(CommandStatus::BadParam, syndrome::BAD_TEARDOWN_PROFILE);
    }
    st.hca = HcaState::Enabled;
    st.steering = NicRxSteering::default();
    st.mkeys.clear();
    st.tirs.clear();
    st.rqts.clear();
    st.sqs.clear();
    st.rqs.clear();
    st.tises.clear();
    st.cqs.clear();
    st.eqs.clear();
    st.pages_owed = 0;
    st.uars.clear();
    st.pds.clear();
    st.transport_domains.clear();
    Ok(())
}

fn set_driver_version(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    let i = SetDriverVersionIn::new_checked(input).map_err(short_in)?;
    SetDriverVersionOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_enabled(st)?;
    st.driver_version = i.driver_version().to_vec();
    Ok(())
}

fn query_adapter(
    st: &mut FunctionState,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    QueryAdapterIn::new_checked(input).map_err(short_in)?;
    QueryAdapterOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_enabled(st)?;
    let _fits = PSID.set(out, BOARD_ID);
    Ok(())
}

/// Bytes of an ACCESS_REG message carrying HOST_ENDIANNESS.
pub const HOST_ENDIANNESS_MSG_LEN: usize = REGISTER_DATA_OFFSET + 0x10;

/// The lowest free number in `first..first + max`.
fn allocate(set: &mut BTreeSet<u32>, first: u32, max: usize) -> Result<u32> {
    let end = first.saturating_add(max as u32);
    let n = (first..end)
        .find(|n| !set.contains(n))
        .ok_or(Refusal(CommandStatus::NoResources, syndrome::NO_OBJECTS))?;
    set.insert(n);
    Ok(n)
}

fn release(set: &mut BTreeSet<u32>, n: u32) -> Result<()> {
    if !set.remove(&n) {
        return refuse(CommandStatus::BadResource, syndrome::NO_SUCH_OBJECT);
    }
    Ok(())
}

fn alloc_uar(
    st: &mut FunctionState,
    ctx: &Ctx,
    h: InputHeader,
    input: &[u8],
    out: &mut [u8],
) -> Result<()> {
    AllocUarIn::new_checked(input).map_err(short_in)?;
    let mut o = AllocUarOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    let count = ctx.uar_pages.saturating_sub(FIRST_UAR) as usize;
    o.set_uar(allocate(&mut st.uars, FIRST_UAR, count)?);
    Ok(())
}

fn dealloc_uar(st: &mut FunctionState, h: InputHeader, input: &[u8], out: &mut [u8]) -> Result<()> {
    let i = DeallocUarIn::new_checked(input).map_err(short_in)?;
    DeallocUarOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    release(&mut st.uars, i.uar())
}

fn alloc_pd(st: &mut FunctionState, h: InputHeader, input: &[u8], out: &mut [u8]) -> Result<()> {
    AllocPdIn::new_checked(input).map_err(short_in)?;
    let mut o = AllocPdOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    o.set_pd(allocate(&mut st.pds, 1, MAX_DOMAINS)?);
    Ok(())
}

fn dealloc_pd(st: &mut FunctionState, h: InputHeader, input: &[u8], out: &mut [u8]) -> Result<()> {
    let i = DeallocPdIn::new_checked(input).map_err(short_in)?;
    DeallocPdOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    release(&mut st.pds, i.pd())
}

fn alloc_td(st: &mut FunctionState, h: InputHeader, input: &[u8], out: &mut [u8]) -> Result<()> {
    AllocTransportDomainIn::new_checked(input).map_err(short_in)?;
    let mut o = AllocTransportDomainOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    o.set_transport_domain(allocate(&mut st.transport_domains, 1, MAX_DOMAINS)?);
    Ok(())
}

fn dealloc_td(st: &mut FunctionState, h: InputHeader, input: &[u8], out: &mut [u8]) -> Result<()> {
    let i = DeallocTransportDomainIn::new_checked(input).map_err(short_in)?;
    DeallocTransportDomainOut::new_checked(&mut *out).map_err(short_out)?;
    no_op_mod(h)?;
    need_initialized(st)?;
    release(&mut st.transport_domains, i.transport_domain())
}
