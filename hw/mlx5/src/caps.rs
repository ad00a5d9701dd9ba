//! HCA capabilities: the pages QUERY_HCA_CAP returns and SET_HCA_CAP takes.
//!
//! A capability page is 4 KiB ([`CAP_LEN`], the message body at offset 0x10 of the
//! QUERY_HCA_CAP output and of the SET_HCA_CAP input). Which page a command means is in its
//! `op_mod`: the capability type ([`CapType`]) shifted left by one, with bit 0 choosing the
//! maximum the device supports ([`CapMode::Max`]) or the value currently in force
//! ([`CapMode::Current`], what SET_HCA_CAP changed). [`CapOpMod`] converts.
//!
//! The layouts here cover what Linux mlx5_core and mlx5e read on a VF, and what a PF needs
//! as E-Switch manager: the general device capabilities ([`GeneralCaps`], type 0), the
//! Ethernet offloads ([`EthernetCaps`], type 1), the NIC flow tables ([`FlowTableCaps`] with
//! its receive and transmit [`FlowTableProperties`], type 7), the E-Switch flow tables
//! ([`EswitchFlowTableCaps`], type 8), the E-Switch ([`EswitchCaps`], type 9) and QoS
//! ([`QosCaps`], type 0xc). [`CapPageRepr`] holds any of them as values.
//! Each field is declared once, by its bit offset from the start of its capability structure
//! (the PRM's and Linux `mlx5_ifc.h`'s numbering, bit 0 = MSB of the first dword); the view
//! and the `Repr` are derived from that one list. Fields not declared stay whatever the
//! buffer holds (zero in a fresh page): "not supported".
//!
//! Sources: Linux `include/linux/mlx5/mlx5_ifc.h` (`cmd_hca_cap`,
//! `per_protocol_networking_offload_caps`, `flow_table_nic_cap`, `flow_table_eswitch_cap`,
//! `flow_table_prop_layout`, `e_switch_cap`, `qos_cap`), `device.h` (capability types, op_mod), `drivers/net/ethernet/mellanox/mlx5/core`
//! `main.c`, `fw.c`, `dev.c` (what is read and written); rdma-core `providers/mlx5/mlx5_ifc.h`
//! as a cross-check.

use crate::Field;
use crate::field::Truncated;
use crate::layout::{field_enum, layout, nested};

/// Bytes of one capability page (the `hca_cap_union` body of QUERY_HCA_CAP / SET_HCA_CAP).
pub const CAP_LEN: usize = 0x1000;
/// Offset of the capability page in the QUERY_HCA_CAP output and the SET_HCA_CAP input
/// ([`QueryHcaCapOut`](crate::commands::lifecycle::QueryHcaCapOut) and
/// [`SetHcaCapIn`](crate::commands::lifecycle::SetHcaCapIn), whose `capability()` is the page).
pub const CAP_MESSAGE_OFFSET: usize = 0x10;

field_enum! {
    /// The capability type: which page an `op_mod` names.
    pub enum CapType: u16 {
        /// General device capabilities (`cmd_hca_cap`).
        General = 0x00,
        /// Ethernet offloads (`per_protocol_networking_offload_caps`).
        EthernetOffloads = 0x01,
        /// On-demand paging.
        Odp = 0x02,
        /// Atomic operations.
        Atomic = 0x03,
        /// RoCE.
        Roce = 0x04,
        /// IPoIB offloads.
        IpoibOffloads = 0x05,
        /// IPoIB enhanced offloads.
        IpoibEnhancedOffloads = 0x06,
        /// NIC flow tables (`flow_table_nic_cap`).
        FlowTable = 0x07,
        /// E-Switch flow tables.
        EswitchFlowTable = 0x08,
        /// E-Switch.
        Eswitch = 0x09,
        /// QoS (scheduling elements, rate limits).
        Qos = 0x0c,
        /// Debug.
        Debug = 0x0d,
        /// Device memory.
        DeviceMemory = 0x0f,
        /// TLS offload.
        Tls = 0x11,
        /// Device events.
        DeviceEvents = 0x14,
        /// IPsec offload.
        Ipsec = 0x15,
        /// Crypto.
        Crypto = 0x1a,
        /// MACsec offload.
        Macsec = 0x1f,
        /// General capabilities, second page.
        General2 = 0x20,
        /// Port selection (LAG).
        PortSelection = 0x25,
        /// Advanced virtualization.
        AdvVirtualization = 0x26,
    }
}

field_enum! {
    /// Which values of a capability page: bit 0 of the QUERY_HCA_CAP `op_mod`.
    pub enum CapMode: u8 {
        /// The maximum the device supports.
        Max = 0,
        /// The values in force (after SET_HCA_CAP).
        Current = 1,
    }
}

/// The `op_mod` of QUERY_HCA_CAP: `(cap_type << 1) | mode`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub struct CapOpMod {
    /// The page.
    pub cap_type: CapType,
    /// Maximum or current values.
    pub mode: CapMode,
}

impl CapOpMod {
    /// The QUERY_HCA_CAP `op_mod` asking for `cap_type` in `mode`.
    pub const fn new(cap_type: CapType, mode: CapMode) -> Self {
        CapOpMod { cap_type, mode }
    }

    /// Splits a QUERY_HCA_CAP `op_mod` (every value splits; unknown types survive).
    pub const fn from_query(op_mod: u16) -> Self {
        CapOpMod {
            cap_type: CapType::from_raw_value(op_mod >> 1),
            mode: CapMode::from_raw_value((op_mod & 1) as u8),
        }
    }

    /// The QUERY_HCA_CAP `op_mod`.
    pub const fn query_op_mod(self) -> u16 {
        (self.cap_type.raw_value() << 1) | (self.mode.raw_value() as u16 & 1)
    }
}

impl CapType {
    /// The SET_HCA_CAP `op_mod` writing this page: `cap_type << 1` (bit 0 is zero: only
    /// current values can be set).
    pub const fn set_op_mod(self) -> u16 {
        self.raw_value() << 1
    }

    /// The page a SET_HCA_CAP `op_mod` writes; `None` when bit 0 is set (no such encoding).
    pub const fn from_set_op_mod(op_mod: u16) -> Option<CapType> {
        if op_mod & 1 != 0 {
            None
        } else {
            Some(CapType::from_raw_value(op_mod >> 1))
        }
    }
}

field_enum! {
    /// `port_type` of the general capabilities.
    pub enum PortType: u8 {
        /// InfiniBand.
        Infiniband = 0,
        /// Ethernet (what mlx5e needs).
        Ethernet = 1,
    }
}

field_enum! {
    /// `cmdif_checksum` of the general capabilities: whether command and mailbox signatures
    /// are checked.
    pub enum CmdifChecksum: u8 {
        /// Signatures are ignored (what mlx5_core sets).
        Disabled = 0,
        /// Initial state of the command interface.
        InitialState = 1,
        /// Signatures are checked.
        Enabled = 3,
    }
}

field_enum! {
    /// `wqe_inline_mode` of the Ethernet offloads: which headers a send WQE must inline.
    pub enum CapInlineMode: u8 {
        /// At least the L2 header.
        L2 = 0,
        /// As the vport context's `min_wqe_inline_mode` says.
        VportContext = 1,
        /// No headers need to be inlined.
        NotRequired = 2,
    }
}

field_enum! {
    /// `sq_ts_format` / `rq_ts_format`: timestamp formats the queues support.
    pub enum TimestampFormatCap: u8 {
        /// Free-running (internal timer) only.
        FreeRunning = 0,
        /// Real time only.
        RealTime = 1,
        /// Both.
        FreeRunningAndRealTime = 2,
    }
}

/// Bytes of the general capability structure that carry fields (`cmd_hca_cap` is 256 bytes;
/// the rest of the page is reserved).
pub const GENERAL_CAPS_LEN: usize = 0x100;

/// A field at bit `bit` (PRM numbering from the start of the structure), `width` bits wide.
const fn f(bit: usize, width: u32) -> Field {
    Field::new(bit, width)
}

layout! {
    /// The general device capabilities (`cmd_hca_cap`, capability type 0) over a page.
    pub struct GeneralCaps(GENERAL_CAPS_LEN, "general HCA capabilities") {
        /// Page requests (event 0x0B) are never raised; no pages EQ.
        page_request_disable, set_page_request_disable: bool = f(0x006, 1);
        /// The general-2 page (type 0x20) exists.
        hca_cap_2, set_hca_cap_2: bool = f(0x020, 1);
        /// The event capability (subscribable event bitmaps).
        event_cap, set_event_cap: bool = f(0x090, 1);
        /// log2 of the number of QPs.
        log_max_qp, set_log_max_qp: u8 = f(0x09b, 5);
        /// log2 of the CQEs of one CQ.
        log_max_cq_sz, set_log_max_cq_sz: u8 = f(0x0c8, 8);
        /// log2 of the number of CQs.
        log_max_cq, set_log_max_cq: u8 = f(0x0db, 5);
        /// log2 of the EQEs of one EQ.
        log_max_eq_sz, set_log_max_eq_sz: u8 = f(0x0e0, 8);
        /// Relaxed ordering for device writes.
        relaxed_ordering_write, set_relaxed_ordering_write: bool = f(0x0e8, 1);
        /// Relaxed ordering for device reads, as the PCI configuration allows.
        relaxed_ordering_read_pci_enabled, set_relaxed_ordering_read_pci_enabled: bool = f(0x0e9, 1);
        /// log2 of the number of memory keys.
        log_max_mkey, set_log_max_mkey: u8 = f(0x0ea, 6);
        /// QUERY_SPECIAL_CONTEXTS returns a terminate-scatter-list mkey.
        terminate_scatter_list_mkey, set_terminate_scatter_list_mkey: bool = f(0x0f6, 1);
        /// QUERY_SPECIAL_CONTEXTS returns a dump-fill mkey.
        dump_fill_mkey, set_dump_fill_mkey: bool = f(0x0f8, 1);
        /// Fast teardown (TEARDOWN_HCA profile 2).
        fast_teardown, set_fast_teardown: bool = f(0x0fb, 1);
        /// log2 of the number of EQs.
        log_max_eq, set_log_max_eq: u8 = f(0x0fc, 4);
        /// Force teardown (TEARDOWN_HCA profile 1).
        force_teardown, set_force_teardown: bool = f(0x110, 1);
        /// MANAGE_PAGES take may return every page at once.
        release_all_pages, set_release_all_pages: bool = f(0x145, 1);
        /// The QCAM register exists.
        qcam_reg, set_qcam_reg: bool = f(0x16f, 1);
        /// QUERY_VPORT_COUNTER.
        vport_counters, set_vport_counters: bool = f(0x181, 1);
        /// Number of queue counters (ALLOC_Q_COUNTER).
        max_qp_cnt, set_max_qp_cnt: u16 = f(0x186, 10);
        /// P_Key table size (InfiniBand; mlx5_core writes 0).
        pkey_table_size, set_pkey_table_size: u16 = f(0x190, 16);
        /// The function manages the vports of its group (a PF in legacy SR-IOV).
        vport_group_manager, set_vport_group_manager: bool = f(0x1a0, 1);
        /// Enhanced transmission selection.
        ets, set_ets: bool = f(0x1a5, 1);
        /// NIC flow tables (page 7) exist.
        nic_flow_table, set_nic_flow_table: bool = f(0x1a6, 1);
        /// The function is the E-Switch manager.
        eswitch_manager, set_eswitch_manager: bool = f(0x1a7, 1);
        /// Device memory.
        device_memory, set_device_memory: bool = f(0x1a8, 1);
        /// The MCAM register exists.
        mcam_reg, set_mcam_reg: bool = f(0x1a9, 1);
        /// The PCAM register exists.
        pcam_reg, set_pcam_reg: bool = f(0x1aa, 1);
        /// Ports check (PCMR register).
        ports_check, set_ports_check: bool = f(0x1b2, 1);
        /// INIT_HCA may leave the link down (`disable_link_up`).
        disable_link_up, set_disable_link_up: bool = f(0x1b4, 1);
        /// Link layer of the ports.
        port_type, set_port_type: PortType = f(0x1b6, 2);
        /// Number of ports.
        num_ports, set_num_ports: u8 = f(0x1b8, 8);
        /// Number of traffic classes (0: the driver assumes 8).
        max_tc, set_max_tc: u8 = f(0x1cc, 4);
        /// Temperature warning events.
        temp_warn_event, set_temp_warn_event: bool = f(0x1d0, 1);
        /// DCBX (data center bridging exchange) registers.
        dcbx, set_dcbx: bool = f(0x1d1, 1);
        /// General notification events.
        general_notification_event, set_general_notification_event: bool = f(0x1d2, 1);
        /// CQE format version (1: user index in CQEs).
        cqe_version, set_cqe_version: u8 = f(0x1fc, 4);
        /// Striding (multi-packet) Ethernet RQs.
        striding_rq, set_striding_rq: bool = f(0x201, 1);
        /// Drain on signature error (mlx5_core sets it in SET_HCA_CAP).
        drain_sigerr, set_drain_sigerr: bool = f(0x20f, 1);
        /// Command interface signature checking.
        cmdif_checksum, set_cmdif_checksum: CmdifChecksum = f(0x210, 2);
        /// Dynamically connected transport.
        dct, set_dct: bool = f(0x21a, 1);
        /// QoS page (type 0xc) exists.
        qos, set_qos: bool = f(0x21b, 1);
        /// Ethernet offloads page (type 1) exists.
        eth_net_offloads, set_eth_net_offloads: bool = f(0x21c, 1);
        /// RoCE.
        roce, set_roce: bool = f(0x21d, 1);
        /// Atomic operations.
        atomic, set_atomic: bool = f(0x21e, 1);
        /// CQ moderation (cq_period / cq_max_count).
        cq_moderation, set_cq_moderation: bool = f(0x222, 1);
        /// MODIFY_CQ may change the moderation period mode.
        cq_period_mode_modify, set_cq_period_mode_modify: bool = f(0x223, 1);
        /// On-demand paging.
        pg, set_pg: bool = f(0x227, 1);
        /// UMR pointer with remote lkey.
        umr_ptr_rlky, set_umr_ptr_rlky: bool = f(0x230, 1);
        /// UARs are 4 KiB regardless of the system page size.
        uar_4k, set_uar_4k: bool = f(0x240, 1);
        /// Port selection page (type 0x25) exists.
        port_selection_cap, set_port_selection_cap: bool = f(0x250, 1);
        /// Objects may be created with uid 0 user memory (rdma-core's VFIO provider needs it).
        umem_uid_0, set_umem_uid_0: bool = f(0x252, 1);
        /// log2 of the device page size.
        log_pg_sz, set_log_pg_sz: u8 = f(0x258, 8);
        /// BlueFlame registers.
        bf, set_bf: bool = f(0x260, 1);
        /// SET_DRIVER_VERSION is supported.
        driver_version, set_driver_version: bool = f(0x261, 1);
        /// Memory keys may be created by name.
        mkey_by_name, set_mkey_by_name: bool = f(0x266, 1);
        /// log2 of the bytes of one BlueFlame register (both buffers).
        log_bf_reg_size, set_log_bf_reg_size: u8 = f(0x26b, 5);
        /// Largest send WQE in bytes.
        max_wqe_sz_sq, set_max_wqe_sz_sq: u16 = f(0x290, 16);
        /// Largest receive WQE in bytes.
        max_wqe_sz_rq, set_max_wqe_sz_rq: u16 = f(0x2b0, 16);
        /// Header-data split (SHAMPO).
        shampo, set_shampo: bool = f(0x2ab, 1);
        /// log2 of the number of transport domains.
        log_max_transport_domain, set_log_max_transport_domain: u8 = f(0x323, 5);
        /// log2 of the number of protection domains.
        log_max_pd, set_log_max_pd: u8 = f(0x32b, 5);
        /// log2 of the number of RQs.
        log_max_rq, set_log_max_rq: u8 = f(0x363, 5);
        /// log2 of the number of SQs.
        log_max_sq, set_log_max_sq: u8 = f(0x36b, 5);
        /// log2 of the number of TIRs.
        log_max_tir, set_log_max_tir: u8 = f(0x373, 5);
        /// log2 of the number of TISes.
        log_max_tis, set_log_max_tis: u8 = f(0x37b, 5);
        /// Cyclic receive WQEs (no "next" segment).
        basic_cyclic_rcv_wqe, set_basic_cyclic_rcv_wqe: bool = f(0x380, 1);
        /// log2 of the number of RQ tables.
        log_max_rqt, set_log_max_rqt: u8 = f(0x38b, 5);
        /// log2 of the entries of one RQ table.
        log_max_rqt_size, set_log_max_rqt_size: u8 = f(0x393, 5);
        /// RoCE read/write without full RoCE.
        roce_rw_supported, set_roce_rw_supported: bool = f(0x3a1, 1);
        /// Hairpin queues.
        hairpin, set_hairpin: bool = f(0x3c0, 1);
        /// log2 of the WQEs of one work queue.
        log_max_wq_sz, set_log_max_wq_sz: u8 = f(0x3db, 5);
        /// NIC vport change events (0x0D).
        nic_vport_change_event, set_nic_vport_change_event: bool = f(0x3e0, 1);
        /// Unicast local loopback can be disabled in the vport context.
        disable_local_lb_uc, set_disable_local_lb_uc: bool = f(0x3e1, 1);
        /// Multicast local loopback can be disabled in the vport context.
        disable_local_lb_mc, set_disable_local_lb_mc: bool = f(0x3e2, 1);
        /// vHCA state events.
        vhca_state, set_vhca_state: bool = f(0x3ea, 1);
        /// log2 of the VLAN list of a vport context.
        log_max_vlan_list, set_log_max_vlan_list: u8 = f(0x3eb, 5);
        /// log2 of the multicast address list of a vport context.
        log_max_current_mc_list, set_log_max_current_mc_list: u8 = f(0x3f3, 5);
        /// log2 of the unicast address list of a vport context.
        log_max_current_uc_list, set_log_max_current_uc_list: u8 = f(0x3fb, 5);
        /// Bitmap of general object types.
        general_obj_types, set_general_obj_types: u64 = f(0x400, 64);
        /// SQ timestamp formats.
        sq_ts_format, set_sq_ts_format: TimestampFormatCap = f(0x440, 2);
        /// RQ timestamp formats.
        rq_ts_format, set_rq_ts_format: TimestampFormatCap = f(0x442, 2);
        /// Crypto.
        crypto, set_crypto: bool = f(0x469, 1);
        /// IPsec offload.
        ipsec_offload, set_ipsec_offload: bool = f(0x46a, 1);
        /// Number of EQs (when non-zero, instead of 2^log_max_eq).
        max_num_eqs, set_max_num_eqs: u16 = f(0x470, 16);
        /// TLS transmit offload.
        tls_tx, set_tls_tx: bool = f(0x481, 1);
        /// TLS receive offload.
        tls_rx, set_tls_rx: bool = f(0x482, 1);
        /// log2 of the UAR page size in 4 KiB units (mlx5_core writes 0).
        log_uar_page_sz, set_log_uar_page_sz: u16 = f(0x490, 16);
        /// Internal timer frequency in kHz (0: no PTP clock).
        device_frequency_khz, set_device_frequency_khz: u32 = f(0x4e0, 32);
        /// UARs per system page (with `uar_4k`).
        num_of_uars_per_page, set_num_of_uars_per_page: u32 = f(0x520, 32);
        /// Advanced virtualization page exists.
        adv_virtualization, set_adv_virtualization: bool = f(0x579, 1);
        /// Enhanced CQE compression.
        enhanced_cqe_compression, set_enhanced_cqe_compression: bool = f(0x5b0, 1);
        /// Mini-CQEs carry the stride index.
        mini_cqe_resp_stride_index, set_mini_cqe_resp_stride_index: bool = f(0x5bc, 1);
        /// CQEs are always 128 bytes.
        cqe_128_always, set_cqe_128_always: bool = f(0x5bd, 1);
        /// CQE compression.
        cqe_compression, set_cqe_compression: bool = f(0x5bf, 1);
        /// INIT_HCA carries a software owner id.
        sw_owner_id, set_sw_owner_id: bool = f(0x61e, 1);
        /// Monitor counters.
        max_num_of_monitor_counters, set_max_num_of_monitor_counters: u16 = f(0x620, 16);
        /// Scalable functions.
        sf, set_sf: bool = f(0x680, 1);
        /// Live migration commands.
        migration, set_migration: bool = f(0x68d, 1);
        /// PF: MSI-X vectors it may distribute among its VFs (0: no dynamic VF MSI-X).
        num_total_dynamic_vf_msix, set_num_total_dynamic_vf_msix: u32 = f(0x708, 24);
        /// PF: smallest VF MSI-X table it may set.
        min_dynamic_vf_msix_table_size, set_min_dynamic_vf_msix_table_size: u8 = f(0x74c, 4);
        /// PF: largest VF MSI-X table it may set.
        max_dynamic_vf_msix_table_size, set_max_dynamic_vf_msix_table_size: u16 = f(0x754, 12);
    }
    /// The general device capabilities this crate names, as values.
    repr GeneralCapsRepr;
}

layout! {
    /// The Ethernet offload capabilities (`per_protocol_networking_offload_caps`, capability
    /// type 1) over a page.
    pub struct EthernetCaps(0x100, "Ethernet offload capabilities") {
        /// IPv4 header and TCP/UDP checksum offload (send `cs_flags`, receive checksum).
        csum_cap, set_csum_cap: bool = f(0x00, 1);
        /// VLAN stripping on receive.
        vlan_cap, set_vlan_cap: bool = f(0x01, 1);
        /// Large receive offload.
        lro_cap, set_lro_cap: bool = f(0x02, 1);
        /// The Ethernet segment may insert a VLAN tag.
        wqe_vlan_insert, set_wqe_vlan_insert: bool = f(0x07, 1);
        /// TIR `self_lb_block` can be modified.
        self_lb_en_modifiable, set_self_lb_en_modifiable: bool = f(0x08, 1);
        /// log2 of the largest LSO message (0: no LSO).
        max_lso_cap, set_max_lso_cap: u8 = f(0x0b, 5);
        /// Multi-packet send WQE.
        multi_pkt_send_wqe, set_multi_pkt_send_wqe: u8 = f(0x10, 2);
        /// Which headers send WQEs must inline.
        wqe_inline_mode, set_wqe_inline_mode: CapInlineMode = f(0x12, 2);
        /// log2-encoded RSS indirection table capability (0: no RSS).
        rss_ind_tbl_cap, set_rss_ind_tbl_cap: u8 = f(0x14, 4);
        /// UMR on regular SQs.
        reg_umr_sq, set_reg_umr_sq: bool = f(0x18, 1);
        /// The FCS can be scattered to receive buffers.
        scatter_fcs, set_scatter_fcs: bool = f(0x19, 1);
        /// Enhanced multi-packet send WQE (opcode 0x29).
        enhanced_multi_pkt_send_wqe, set_enhanced_multi_pkt_send_wqe: bool = f(0x1a, 1);
        /// Tunnel LSO keeps the outer IP id constant.
        tunnel_lso_const_out_ip_id, set_tunnel_lso_const_out_ip_id: bool = f(0x1b, 1);
        /// LRO over GRE.
        tunnel_lro_gre, set_tunnel_lro_gre: bool = f(0x1c, 1);
        /// LRO over VXLAN.
        tunnel_lro_vxlan, set_tunnel_lro_vxlan: bool = f(0x1d, 1);
        /// Stateless GRE offloads.
        tunnel_stateless_gre, set_tunnel_stateless_gre: bool = f(0x1e, 1);
        /// Stateless VXLAN offloads.
        tunnel_stateless_vxlan, set_tunnel_stateless_vxlan: bool = f(0x1f, 1);
        /// Software parser offsets in the Ethernet segment.
        swp, set_swp: bool = f(0x20, 1);
        /// Checksums by software parser offsets.
        swp_csum, set_swp_csum: bool = f(0x21, 1);
        /// LSO by software parser offsets.
        swp_lso, set_swp_lso: bool = f(0x22, 1);
        /// The CQE checksum covers everything after the Ethernet header.
        cqe_checksum_full, set_cqe_checksum_full: bool = f(0x23, 1);
        /// Largest number of VXLAN UDP ports.
        max_vxlan_udp_ports, set_max_vxlan_udp_ports: u8 = f(0x30, 8);
        /// Stateless GENEVE receive offloads.
        tunnel_stateless_geneve_rx, set_tunnel_stateless_geneve_rx: bool = f(0x3f, 1);
        /// Smallest MSS LRO aggregates.
        lro_min_mss_size, set_lro_min_mss_size: u16 = f(0x50, 16);
    }
    /// The Ethernet offload capabilities this crate names, as values.
    repr EthernetCapsRepr;
}

/// Byte offset of the NIC receive flow table properties in the flow table page.
pub const FT_NIC_RX_OFFSET: usize = 0x40;
/// Byte offset of the NIC transmit flow table properties in the flow table page.
pub const FT_NIC_TX_OFFSET: usize = 0x100;
/// Bytes of one `flow_table_prop_layout` block.
pub const FT_PROPERTIES_LEN: usize = 0x40;
/// The lowest `max_ft_level` with which Linux creates its KERNEL steering priority.
pub const FT_KERNEL_MIN_LEVEL: u8 = 12;

layout! {
    /// One flow table property block (`flow_table_prop_layout`, 64 bytes).
    pub struct FlowTableProperties(FT_PROPERTIES_LEN, "flow table properties") {
        /// Flow tables of this kind exist.
        ft_support, set_ft_support: bool = f(0x00, 1);
        /// Flow tags in flow contexts.
        flow_tag, set_flow_tag: bool = f(0x01, 1);
        /// Flow counters.
        flow_counter, set_flow_counter: bool = f(0x02, 1);
        /// Flow entries can be modified.
        flow_modify_en, set_flow_modify_en: bool = f(0x03, 1);
        /// SET_FLOW_TABLE_ROOT.
        modify_root, set_modify_root: bool = f(0x04, 1);
        /// Table miss to an identified table.
        identified_miss_table_mode, set_identified_miss_table_mode: bool = f(0x05, 1);
        /// MODIFY_FLOW_TABLE.
        flow_table_modify, set_flow_table_modify: bool = f(0x06, 1);
        /// log2 of the entries of one table.
        log_max_ft_size, set_log_max_ft_size: u8 = f(0x22, 6);
        /// Deepest table level.
        max_ft_level, set_max_ft_level: u8 = f(0x38, 8);
        /// log2 of the number of tables.
        log_max_ft_num, set_log_max_ft_num: u8 = f(0x78, 8);
        /// log2 of the destinations of one entry.
        log_max_destination, set_log_max_destination: u8 = f(0x98, 8);
        /// log2 of the number of entries.
        log_max_flow, set_log_max_flow: u8 = f(0xb8, 8);
        /// Match on outer destination MAC.
        outer_dmac, set_outer_dmac: bool = f(0x100, 1);
        /// Match on outer source MAC.
        outer_smac, set_outer_smac: bool = f(0x101, 1);
        /// Match on outer EtherType.
        outer_ether_type, set_outer_ether_type: bool = f(0x102, 1);
        /// Match on outer IP version.
        outer_ip_version, set_outer_ip_version: bool = f(0x103, 1);
        /// Match on the first VLAN id.
        outer_first_vid, set_outer_first_vid: bool = f(0x106, 1);
        /// Match on the IP protocol.
        outer_ip_protocol, set_outer_ip_protocol: bool = f(0x10f, 1);
    }
    /// The flow table properties this crate names, as values.
    repr FlowTablePropertiesRepr;
}

/// Declares a capability page made of flow table property blocks at fixed offsets: its view
/// (a `layout!` without fields of its own, a `nested!` [`FlowTableProperties`] per block) and
/// its `Repr`.
macro_rules! prop_page {
    (
        $(#[$vm:meta])*
        pub struct $view:ident($len:expr, $what:literal) {
            $( $(#[$bm:meta])* $name:ident, $name_mut:ident @ $off:expr; )*
        }
        $(#[$rm:meta])* repr $repr:ident;
    ) => {
        layout! {
            $(#[$vm])*
            pub struct $view($len, $what) {}
        }

        $( nested!($view, $name, $name_mut, FlowTableProperties, $off); )*

        $(#[$rm])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
        pub struct $repr {
            $( $(#[$bm])* pub $name: FlowTablePropertiesRepr, )*
        }

        impl $repr {
            /// Reads every block.
            pub fn parse<T: AsRef<[u8]>>(view: &$view<T>) -> Self {
                $repr { $( $name: FlowTablePropertiesRepr::parse(&view.$name()), )* }
            }

            /// Writes every block.
            pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, view: &mut $view<T>) {
                $( self.$name.emit(&mut view.$name_mut()); )*
            }
        }
    };
}

prop_page! {
    /// The NIC flow table capabilities (`flow_table_nic_cap`, capability type 7) over a page:
    /// the receive and transmit property blocks.
    pub struct FlowTableCaps(FT_NIC_TX_OFFSET + FT_PROPERTIES_LEN, "flow table capabilities") {
        /// NIC receive tables.
        nic_rx, nic_rx_mut @ FT_NIC_RX_OFFSET;
        /// NIC transmit tables.
        nic_tx, nic_tx_mut @ FT_NIC_TX_OFFSET;
    }
    /// The NIC flow table capabilities as values.
    repr FlowTableCapsRepr;
}

/// Byte offset of the FDB flow table properties in the E-Switch flow table page.
pub const FT_ESW_FDB_OFFSET: usize = 0x40;
/// Byte offset of the ingress ACL flow table properties in the E-Switch flow table page.
pub const FT_ESW_ACL_INGRESS_OFFSET: usize = 0x80;
/// Byte offset of the egress ACL flow table properties in the E-Switch flow table page.
pub const FT_ESW_ACL_EGRESS_OFFSET: usize = 0xc0;

prop_page! {
    /// The E-Switch flow table capabilities (`flow_table_eswitch_cap`, capability type 8) over
    /// a page: the FDB and the per-vport ingress and egress ACL property blocks (what a PF in
    /// legacy SR-IOV mode uses for MAC anti-spoofing).
    pub struct EswitchFlowTableCaps(
        FT_ESW_ACL_EGRESS_OFFSET + FT_PROPERTIES_LEN,
        "E-Switch flow table capabilities"
    ) {
        /// The forwarding database.
        fdb, fdb_mut @ FT_ESW_FDB_OFFSET;
        /// Vport ingress ACLs.
        acl_ingress, acl_ingress_mut @ FT_ESW_ACL_INGRESS_OFFSET;
        /// Vport egress ACLs.
        acl_egress, acl_egress_mut @ FT_ESW_ACL_EGRESS_OFFSET;
    }
    /// The E-Switch flow table capabilities as values.
    repr EswitchFlowTableCapsRepr;
}

layout! {
    /// The E-Switch capabilities (`e_switch_cap`, capability type 9) over a page.
    pub struct EswitchCaps(0x10, "E-Switch capabilities") {
        /// Vport S-VLAN strip.
        vport_svlan_strip, set_vport_svlan_strip: bool = f(0x00, 1);
        /// Vport C-VLAN strip.
        vport_cvlan_strip, set_vport_cvlan_strip: bool = f(0x01, 1);
        /// Vport S-VLAN insert.
        vport_svlan_insert, set_vport_svlan_insert: bool = f(0x02, 1);
        /// Vport C-VLAN insert unless a tag exists.
        vport_cvlan_insert_if_not_exist, set_vport_cvlan_insert_if_not_exist: bool = f(0x03, 1);
        /// Vport C-VLAN insert overwriting a tag.
        vport_cvlan_insert_overwrite, set_vport_cvlan_insert_overwrite: bool = f(0x04, 1);
        /// Vport C-VLAN insert always.
        vport_cvlan_insert_always, set_vport_cvlan_insert_always: bool = f(0x06, 1);
        /// Shared ingress ACL.
        esw_shared_ingress_acl, set_esw_shared_ingress_acl: bool = f(0x07, 1);
        /// Uplink ingress ACL.
        esw_uplink_ingress_acl, set_esw_uplink_ingress_acl: bool = f(0x08, 1);
        /// E-Switch functions changed events.
        esw_functions_changed, set_esw_functions_changed: bool = f(0x19, 1);
        /// An ECPF vport exists.
        ecpf_vport_exists, set_ecpf_vport_exists: bool = f(0x1b, 1);
        /// Merged E-Switch.
        merged_eswitch, set_merged_eswitch: bool = f(0x1d, 1);
        /// MODIFY_NIC_VPORT_CONTEXT may set another vport's node GUID.
        nic_vport_node_guid_modify, set_nic_vport_node_guid_modify: bool = f(0x1e, 1);
        /// MODIFY_NIC_VPORT_CONTEXT may set another vport's port GUID.
        nic_vport_port_guid_modify, set_nic_vport_port_guid_modify: bool = f(0x1f, 1);
    }
    /// The E-Switch capabilities this crate names, as values.
    repr EswitchCapsRepr;
}

layout! {
    /// The QoS capabilities (`qos_cap`, capability type 0xc) over a page: what a PF's
    /// E-Switch scheduling offers its vports.
    pub struct QosCaps(0x20, "QoS capabilities") {
        /// Packet pacing (per-SQ rate limits).
        packet_pacing, set_packet_pacing: bool = f(0x00, 1);
        /// E-Switch scheduling elements.
        esw_scheduling, set_esw_scheduling: bool = f(0x01, 1);
        /// E-Switch bandwidth shares (`bw_share`).
        esw_bw_share, set_esw_bw_share: bool = f(0x02, 1);
        /// E-Switch rate limits (`max_average_bw`).
        esw_rate_limit, set_esw_rate_limit: bool = f(0x03, 1);
        /// NIC SQ scheduling.
        nic_sq_scheduling, set_nic_sq_scheduling: bool = f(0x08, 1);
        /// NIC bandwidth shares.
        nic_bw_share, set_nic_bw_share: bool = f(0x09, 1);
        /// NIC rate limits.
        nic_rate_limit, set_nic_rate_limit: bool = f(0x0a, 1);
        /// log2 of the depth of the E-Switch scheduling hierarchy.
        log_esw_max_sched_depth, set_log_esw_max_sched_depth: u8 = f(0x0c, 4);
        /// Highest packet pacing rate.
        packet_pacing_max_rate, set_packet_pacing_max_rate: u32 = f(0x40, 32);
        /// Lowest packet pacing rate.
        packet_pacing_min_rate, set_packet_pacing_min_rate: u32 = f(0x60, 32);
        /// log2 of the highest E-Switch rate limit.
        log_esw_max_rate_limit, set_log_esw_max_rate_limit: u8 = f(0x8b, 5);
        /// Entries of the packet pacing rate table.
        packet_pacing_rate_table_size, set_packet_pacing_rate_table_size: u16 = f(0x90, 16);
        /// Bitmap of E-Switch scheduling element types (bit t = type t).
        esw_element_type, set_esw_element_type: u16 = f(0xa0, 16);
        /// Bitmap of E-Switch TSAR types (bit t = type t).
        esw_tsar_type, set_esw_tsar_type: u16 = f(0xb0, 16);
        /// QoS parameters per vport.
        max_qos_para_vport, set_max_qos_para_vport: u16 = f(0xd0, 16);
        /// Largest `bw_share` of an element under a TSAR.
        max_tsar_bw_share, set_max_tsar_bw_share: u32 = f(0xe0, 32);
    }
    /// The QoS capabilities this crate names, as values.
    repr QosCapsRepr;
}

/// A whole capability page as values, as QUERY_HCA_CAP answers it for one [`CapType`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CapPageRepr {
    /// Type 0.
    General(GeneralCapsRepr),
    /// Type 1.
    Ethernet(EthernetCapsRepr),
    /// Type 7.
    FlowTable(FlowTableCapsRepr),
    /// Type 8.
    EswitchFlowTable(EswitchFlowTableCapsRepr),
    /// Type 9.
    Eswitch(EswitchCapsRepr),
    /// Type 0xc.
    Qos(QosCapsRepr),
}

impl CapPageRepr {
    /// The page's capability type.
    pub fn cap_type(&self) -> CapType {
        match self {
            CapPageRepr::General(_) => CapType::General,
            CapPageRepr::Ethernet(_) => CapType::EthernetOffloads,
            CapPageRepr::FlowTable(_) => CapType::FlowTable,
            CapPageRepr::EswitchFlowTable(_) => CapType::EswitchFlowTable,
            CapPageRepr::Eswitch(_) => CapType::Eswitch,
            CapPageRepr::Qos(_) => CapType::Qos,
        }
    }

    /// Reads page `cap_type` from `page`; `Ok(None)` for a type this crate does not lay out.
    pub fn parse(cap_type: CapType, page: &[u8]) -> Result<Option<Self>, Truncated> {
        Ok(Some(match cap_type {
            CapType::General => {
                CapPageRepr::General(GeneralCapsRepr::parse(&GeneralCaps::new_checked(page)?))
            }
            CapType::EthernetOffloads => {
                CapPageRepr::Ethernet(EthernetCapsRepr::parse(&EthernetCaps::new_checked(page)?))
            }
            CapType::FlowTable => {
                CapPageRepr::FlowTable(FlowTableCapsRepr::parse(&FlowTableCaps::new_checked(page)?))
            }
            CapType::EswitchFlowTable => CapPageRepr::EswitchFlowTable(
                EswitchFlowTableCapsRepr::parse(&EswitchFlowTableCaps::new_checked(page)?),
            ),
            CapType::Eswitch => {
                CapPageRepr::Eswitch(EswitchCapsRepr::parse(&EswitchCaps::new_checked(page)?))
            }
            CapType::Qos => CapPageRepr::Qos(QosCapsRepr::parse(&QosCaps::new_checked(page)?)),
            _ => return Ok(None),
        }))
    }

    /// Writes the page into `page` (normally [`CAP_LEN`] zeroed bytes); bytes outside the
    /// declared fields are left as they are.
    pub fn emit(&self, page: &mut [u8]) -> Result<(), Truncated> {
        match self {
            CapPageRepr::General(r) => r.emit(&mut GeneralCaps::new_checked(page)?),
            CapPageRepr::Ethernet(r) => r.emit(&mut EthernetCaps::new_checked(page)?),
            CapPageRepr::FlowTable(r) => r.emit(&mut FlowTableCaps::new_checked(page)?),
            CapPageRepr::EswitchFlowTable(r) => {
                r.emit(&mut EswitchFlowTableCaps::new_checked(page)?)
            }
            CapPageRepr::Eswitch(r) => r.emit(&mut EswitchCaps::new_checked(page)?),
            CapPageRepr::Qos(r) => r.emit(&mut QosCaps::new_checked(page)?),
        }
        Ok(())
    }

    /// The page as a fresh [`CAP_LEN`]-byte buffer.
    pub fn to_page(&self) -> [u8; CAP_LEN] {
        let mut page = [0u8; CAP_LEN];
        // CAP_LEN is longer than every layout, so this cannot be truncated.
        let _ = self.emit(&mut page);
        page
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    /// The general capabilities a minimal Ethernet VF model advertises (values from the
    /// bring-up notes of this issue).
    fn minimal_general() -> GeneralCapsRepr {
        GeneralCapsRepr {
            log_max_qp: 0x10,
            log_max_cq_sz: 0x10,
            log_max_cq: 0x10,
            log_max_eq_sz: 0x12,
            log_max_mkey: 0x10,
            log_max_eq: 4,
            nic_flow_table: true,
            port_type: PortType::Ethernet,
            num_ports: 1,
            cqe_version: 1,
            cmdif_checksum: CmdifChecksum::Enabled,
            eth_net_offloads: true,
            cq_moderation: true,
            umem_uid_0: true,
            log_pg_sz: 12,
            bf: true,
            log_bf_reg_size: 9,
            max_wqe_sz_sq: 1024,
            max_wqe_sz_rq: 512,
            log_max_transport_domain: 8,
            log_max_pd: 8,
            log_max_rq: 0x10,
            log_max_sq: 0x10,
            log_max_tir: 0x10,
            log_max_tis: 0x10,
            basic_cyclic_rcv_wqe: true,
            log_max_rqt: 8,
            log_max_rqt_size: 8,
            log_max_wq_sz: 0xf,
            log_max_vlan_list: 6,
            log_max_current_mc_list: 8,
            log_max_current_uc_list: 4,
            max_num_eqs: 16,
            num_of_uars_per_page: 1,
            ..GeneralCapsRepr::default()
        }
    }

    #[test]
    fn op_mod_numbering() {
        use CapMode::*;
        let q = |t, m| CapOpMod::new(t, m).query_op_mod();
        assert_eq!(q(CapType::General, Max), 0x0);
        assert_eq!(q(CapType::General, Current), 0x1);
        assert_eq!(q(CapType::EthernetOffloads, Current), 0x3);
        assert_eq!(q(CapType::FlowTable, Current), 0xf);
        assert_eq!(q(CapType::EswitchFlowTable, Current), 0x11);
        assert_eq!(q(CapType::Eswitch, Current), 0x13);
        assert_eq!(q(CapType::Qos, Current), 0x19);
        assert_eq!(q(CapType::General2, Current), 0x41);
        assert_eq!(q(CapType::PortSelection, Current), 0x4b);
        assert_eq!(q(CapType::AdvVirtualization, Current), 0x4d);
        assert_eq!(
            CapOpMod::from_query(0x0d),
            CapOpMod::new(CapType::IpoibEnhancedOffloads, Current)
        );
        assert_eq!(
            CapOpMod::from_query(0x7e),
            CapOpMod::new(CapType::Unknown(0x3f), Max)
        );
        assert_eq!(CapOpMod::from_query(0x7e).query_op_mod(), 0x7e);
        assert_eq!(CapType::General.set_op_mod(), 0);
        assert_eq!(CapType::EthernetOffloads.set_op_mod(), 2);
        assert_eq!(CapType::from_set_op_mod(0x40), Some(CapType::General2));
        assert_eq!(CapType::from_set_op_mod(0x3), None);
    }

    #[test]
    fn general_caps_bytes_are_pinned() {
        let mut r = minimal_general();
        r.general_obj_types = 0x0102_0304_0506_0708;
        r.log_uar_page_sz = 0x0203;
        r.device_frequency_khz = 0x000f_4240;
        let page = CapPageRepr::General(r).to_page();
        // Expected bytes from the field table: byte = bit / 8, MSB first.
        let mut want = [0u8; CAP_LEN];
        want[0x13] = 0x10; // log_max_qp, bit 0x09b w5
        want[0x19] = 0x10; // log_max_cq_sz, bit 0x0c8 w8
        want[0x1b] = 0x10; // log_max_cq, bit 0x0db w5
        want[0x1c] = 0x12; // log_max_eq_sz, bit 0x0e0 w8
        want[0x1d] = 0x10; // log_max_mkey, bit 0x0ea w6
        want[0x1f] = 0x04; // log_max_eq, bit 0x0fc w4
        want[0x34] = 0x02; // nic_flow_table, bit 0x1a6
        want[0x36] = 0x01; // port_type = 1, bit 0x1b6 w2
        want[0x37] = 0x01; // num_ports, bit 0x1b8 w8
        want[0x3f] = 0x01; // cqe_version, bit 0x1fc w4
        want[0x42] = 0xc0; // cmdif_checksum = 3, bit 0x210 w2
        want[0x43] = 0x08; // eth_net_offloads, bit 0x21c
        want[0x44] = 0x20; // cq_moderation, bit 0x222
        want[0x4a] = 0x20; // umem_uid_0, bit 0x252
        want[0x4b] = 0x0c; // log_pg_sz, bit 0x258 w8
        want[0x4c] = 0x80; // bf, bit 0x260
        want[0x4d] = 0x09; // log_bf_reg_size, bit 0x26b w5
        want[0x52..0x54].copy_from_slice(&[0x04, 0x00]); // max_wqe_sz_sq 1024, bit 0x290
        want[0x56..0x58].copy_from_slice(&[0x02, 0x00]); // max_wqe_sz_rq 512, bit 0x2b0
        want[0x64] = 0x08; // log_max_transport_domain, bit 0x323 w5
        want[0x65] = 0x08; // log_max_pd, bit 0x32b w5
        want[0x6c..0x70].copy_from_slice(&[0x10; 4]); // log_max_rq/sq/tir/tis
        want[0x70] = 0x80; // basic_cyclic_rcv_wqe, bit 0x380
        want[0x71] = 0x08; // log_max_rqt, bit 0x38b w5
        want[0x72] = 0x08; // log_max_rqt_size, bit 0x393 w5
        want[0x7b] = 0x0f; // log_max_wq_sz, bit 0x3db w5
        want[0x7d] = 0x06; // log_max_vlan_list, bit 0x3eb w5
        want[0x7e] = 0x08; // log_max_current_mc_list, bit 0x3f3 w5
        want[0x7f] = 0x04; // log_max_current_uc_list, bit 0x3fb w5
        want[0x80..0x88].copy_from_slice(&[1, 2, 3, 4, 5, 6, 7, 8]); // general_obj_types
        want[0x8e..0x90].copy_from_slice(&[0x00, 0x10]); // max_num_eqs, bit 0x470 w16
        want[0x92..0x94].copy_from_slice(&[0x02, 0x03]); // log_uar_page_sz, bit 0x490 w16
        want[0x9c..0xa0].copy_from_slice(&[0x00, 0x0f, 0x42, 0x40]); // device_frequency_khz
        want[0xa7] = 0x01; // num_of_uars_per_page, bit 0x520 w32
        assert_eq!(page[..0x100], want[..0x100]);
        assert!(page[0x100..].iter().all(|&b| b == 0));
        assert_eq!(
            CapPageRepr::parse(CapType::General, &page).unwrap(),
            Some(CapPageRepr::General(r))
        );
    }

    #[test]
    fn single_bit_general_caps_land_where_the_table_says() {
        // (setter, bit offset) pairs: each flag alone sets exactly its bit.
        type Setter = fn(&mut GeneralCaps<&mut [u8]>);
        let cases: [(Setter, usize); 23] = [
            (|v| v.set_page_request_disable(true), 0x006),
            (|v| v.set_hca_cap_2(true), 0x020),
            (|v| v.set_terminate_scatter_list_mkey(true), 0x0f6),
            (|v| v.set_force_teardown(true), 0x110),
            (|v| v.set_vport_group_manager(true), 0x1a0),
            (|v| v.set_eswitch_manager(true), 0x1a7),
            (|v| v.set_striding_rq(true), 0x201),
            (|v| v.set_drain_sigerr(true), 0x20f),
            (|v| v.set_roce(true), 0x21d),
            (|v| v.set_driver_version(true), 0x261),
            (|v| v.set_cqe_compression(true), 0x5bf),
            (|v| v.set_sw_owner_id(true), 0x61e),
            (|v| v.set_fast_teardown(true), 0x0fb),
            (|v| v.set_release_all_pages(true), 0x145),
            (|v| v.set_relaxed_ordering_read_pci_enabled(true), 0x0e9),
            (|v| v.set_qcam_reg(true), 0x16f),
            (|v| v.set_vport_counters(true), 0x181),
            (|v| v.set_disable_link_up(true), 0x1b4),
            (|v| v.set_port_selection_cap(true), 0x250),
            (|v| v.set_mkey_by_name(true), 0x266),
            (|v| v.set_vhca_state(true), 0x3ea),
            (|v| v.set_roce_rw_supported(true), 0x3a1),
            (|v| v.set_migration(true), 0x68d),
        ];
        for (set, bit) in cases {
            let mut page = [0u8; CAP_LEN];
            set(&mut GeneralCaps::new_checked(&mut page[..]).unwrap());
            let mut want = [0u8; CAP_LEN];
            want[bit / 8] = 0x80 >> (bit % 8);
            assert_eq!(page[..], want[..], "bit {bit:#x}");
        }
    }

    #[test]
    fn multi_bit_general_caps_land_where_the_table_says() {
        let mut page = [0u8; CAP_LEN];
        let mut v = GeneralCaps::new_checked(&mut page[..]).unwrap();
        v.set_pkey_table_size(0x0102); // bit 0x190 w16
        v.set_max_qp_cnt(0x3ff); // bit 0x186 w10
        v.set_max_tc(8); // bit 0x1cc w4
        v.set_num_total_dynamic_vf_msix(0x00ab_cdef); // bit 0x708 w24
        v.set_min_dynamic_vf_msix_table_size(2); // bit 0x74c w4
        v.set_max_dynamic_vf_msix_table_size(0x7ff); // bit 0x754 w12
        v.set_max_num_of_monitor_counters(0x0304); // bit 0x620 w16
        let mut want = [0u8; CAP_LEN];
        want[0x30..0x34].copy_from_slice(&[0x03, 0xff, 0x01, 0x02]);
        want[0x39] = 0x08;
        want[0xc4..0xc6].copy_from_slice(&[0x03, 0x04]);
        want[0xe1..0xe4].copy_from_slice(&[0xab, 0xcd, 0xef]);
        want[0xe9] = 0x02;
        want[0xea..0xec].copy_from_slice(&[0x07, 0xff]);
        assert_eq!(page[..], want[..]);
    }

    #[test]
    fn eswitch_caps_bytes_are_pinned() {
        let ft = EswitchFlowTableCapsRepr {
            fdb: FlowTablePropertiesRepr {
                ft_support: true,
                max_ft_level: 4,
                ..FlowTablePropertiesRepr::default()
            },
            acl_ingress: FlowTablePropertiesRepr {
                ft_support: true,
                outer_smac: true,
                ..FlowTablePropertiesRepr::default()
            },
            acl_egress: FlowTablePropertiesRepr {
                flow_counter: true,
                ..FlowTablePropertiesRepr::default()
            },
        };
        let page = CapPageRepr::EswitchFlowTable(ft).to_page();
        let mut want = [0u8; CAP_LEN];
        want[0x40] = 0x80;
        want[0x47] = 4;
        want[0x80] = 0x80;
        want[0xa0] = 0x40;
        want[0xc0] = 0x20;
        assert_eq!(page[..], want[..]);
        assert_eq!(
            CapPageRepr::parse(CapType::EswitchFlowTable, &page).unwrap(),
            Some(CapPageRepr::EswitchFlowTable(ft))
        );

        let esw = EswitchCapsRepr {
            vport_cvlan_strip: true,
            vport_cvlan_insert_if_not_exist: true,
            nic_vport_node_guid_modify: true,
            nic_vport_port_guid_modify: true,
            ..EswitchCapsRepr::default()
        };
        let page = CapPageRepr::Eswitch(esw).to_page();
        assert_eq!(page[..4], [0x50, 0x00, 0x00, 0x03]);
        assert!(page[4..].iter().all(|&b| b == 0));
        assert_eq!(CapPageRepr::Eswitch(esw).cap_type(), CapType::Eswitch);
    }

    #[test]
    fn ethernet_caps_bytes_are_pinned() {
        let r = EthernetCapsRepr {
            csum_cap: true,
            vlan_cap: true,
            wqe_vlan_insert: true,
            self_lb_en_modifiable: true,
            max_lso_cap: 16,
            wqe_inline_mode: CapInlineMode::NotRequired,
            rss_ind_tbl_cap: 4,
            cqe_checksum_full: true,
            lro_min_mss_size: 0x0102,
            ..EthernetCapsRepr::default()
        };
        let page = CapPageRepr::Ethernet(r).to_page();
        let mut want = [0u8; 0x100];
        want[0] = 0xc1; // csum_cap (bit 0), vlan_cap (1), wqe_vlan_insert (7)
        want[1] = 0x90; // self_lb_en_modifiable (bit 8), max_lso_cap 16 (bits 0x0b..0x10)
        want[2] = 0x24; // wqe_inline_mode 2 (bits 0x12..0x14), rss_ind_tbl_cap 4 (0x14..0x18)
        want[4] = 0x10; // cqe_checksum_full (bit 0x23)
        want[0x0a..0x0c].copy_from_slice(&[0x01, 0x02]); // lro_min_mss_size (bit 0x50)
        assert_eq!(page[..0x100], want[..]);
        assert_eq!(
            CapPageRepr::parse(CapType::EthernetOffloads, &page).unwrap(),
            Some(CapPageRepr::Ethernet(r))
        );
    }

    #[test]
    fn flow_table_caps_bytes_are_pinned() {
        let rx = FlowTablePropertiesRepr {
            ft_support: true,
            modify_root: true,
            log_max_ft_size: 16,
            max_ft_level: 63,
            log_max_ft_num: 8,
            log_max_destination: 4,
            log_max_flow: 16,
            outer_dmac: true,
            outer_ip_protocol: true,
            ..FlowTablePropertiesRepr::default()
        };
        let tx = FlowTablePropertiesRepr {
            ft_support: true,
            ..FlowTablePropertiesRepr::default()
        };
        let r = FlowTableCapsRepr {
            nic_rx: rx,
            nic_tx: tx,
        };
        let page = CapPageRepr::FlowTable(r).to_page();
        let mut want = [0u8; CAP_LEN];
        want[0x40] = 0x88; // ft_support (bit 7), modify_root (bit 3)
        want[0x44] = 0x10; // log_max_ft_size
        want[0x47] = 63; // max_ft_level
        want[0x4f] = 8; // log_max_ft_num
        want[0x53] = 4; // log_max_destination
        want[0x57] = 16; // log_max_flow
        want[0x60] = 0x80; // ft_field_support: outer_dmac
        want[0x61] = 0x01; // ft_field_support: ip_protocol
        want[0x100] = 0x80; // NIC TX ft_support
        assert_eq!(page[..], want[..]);
        assert_eq!(
            CapPageRepr::parse(CapType::FlowTable, &page).unwrap(),
            Some(CapPageRepr::FlowTable(r))
        );
        assert!(rx.max_ft_level >= FT_KERNEL_MIN_LEVEL);
    }

    #[test]
    fn qos_caps_bytes_are_pinned() {
        let r = QosCapsRepr {
            packet_pacing: true,
            log_esw_max_sched_depth: 3,
            max_qos_para_vport: 0x0506,
            esw_scheduling: true,
            esw_bw_share: true,
            esw_rate_limit: true,
            esw_element_type: 0x0003,
            esw_tsar_type: 0x0001,
            max_tsar_bw_share: 100,
            ..QosCapsRepr::default()
        };
        let page = CapPageRepr::Qos(r).to_page();
        let mut want = [0u8; 0x20];
        want[0] = 0xf0;
        want[1] = 0x03;
        want[0x1a..0x1c].copy_from_slice(&[0x05, 0x06]);
        want[0x14..0x18].copy_from_slice(&[0x00, 0x03, 0x00, 0x01]);
        want[0x1c..0x20].copy_from_slice(&[0, 0, 0, 100]);
        assert_eq!(page[..0x20], want[..]);
        assert_eq!(
            CapPageRepr::parse(CapType::Qos, &page).unwrap(),
            Some(CapPageRepr::Qos(r))
        );
    }

    #[test]
    fn short_pages_and_unknown_types() {
        let e = GeneralCaps::new_checked(&[0u8; 10][..]).unwrap_err();
        assert_eq!((e.needed, e.got), (GENERAL_CAPS_LEN, 10));
        assert!(CapPageRepr::parse(CapType::FlowTable, &[0u8; 0x100]).is_err());
        assert_eq!(CapPageRepr::parse(CapType::Roce, &[0u8; CAP_LEN]), Ok(None));
        assert!(
            CapPageRepr::General(minimal_general())
                .emit(&mut [0u8; 8])
                .is_err()
        );
        // Unknown encodings survive.
        let mut page = [0u8; CAP_LEN];
        page[0x36] = 0x03; // port_type 3
        page[0x42] = 0x80; // cmdif_checksum 2
        let g = GeneralCapsRepr::parse(&GeneralCaps::new_checked(&page[..]).unwrap());
        assert_eq!(g.port_type, PortType::Unknown(3));
        assert_eq!(g.cmdif_checksum, CmdifChecksum::Unknown(2));
        let mut again = [0u8; CAP_LEN];
        g.emit(&mut GeneralCaps::new_checked(&mut again[..]).unwrap());
        assert_eq!(again, page);
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_pages_parse_and_reemit_their_fields(
            bytes in proptest::collection::vec(proptest::prelude::any::<u8>(), 0..0x180),
            raw_type in 0u16..0x40,
        ) {
            let cap_type = CapType::from_raw_value(raw_type);
            if let Ok(Some(repr)) = CapPageRepr::parse(cap_type, &bytes) {
                // Emitting onto the bytes it came from changes nothing.
                let mut copy = bytes.clone();
                repr.emit(&mut copy).unwrap();
                proptest::prop_assert_eq!(&copy, &bytes);
                // And onto a fresh page gives the same values back.
                let page = repr.to_page();
                proptest::prop_assert_eq!(CapPageRepr::parse(cap_type, &page).unwrap(), Some(repr));
            }
        }
    }
}
