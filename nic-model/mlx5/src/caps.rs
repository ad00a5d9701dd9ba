//! The capability pages the model advertises: a minimal but honest ConnectX-6 Dx class
//! function (the values of the minimal-model table: Linux `mlx5_ifc.h` `cmd_hca_cap` and
//! `per_protocol_networking_offload_caps`, read as `mlx5_core` `main.c` `handle_hca_cap`,
//! `fw.c` `mlx5_query_hca_caps` and `dev.c` `mlx5_eth_supported` use them).
//!
//! Not advertised: striding RQ, CQE compression, LRO, RoCE, atomics, ODP, tunnels, DCT,
//! BlueFlame, PTP clock (`device_frequency_khz` 0), signature checking (`cmdif_checksum` 0),
//! the general-2 page. `nic_flow_table` is advertised with the NIC RX flow table page
//! ([`flow_table`]). The Ethernet page carries the offload set of the datapath (checksum,
//! VLAN strip/insert, LSO, RSS, inline mode "not required").
//!
//! SET_HCA_CAP may change only [`settable_general`] fields, each at most to the maximum page's
//! value; any other difference from the current page is refused (BAD_PARAM).

use mlx5_hw::caps::{CAP_LEN, CapInlineMode, CmdifChecksum, EthernetCaps, GeneralCaps, PortType};

/// The maximum general page of a function (`is_vf`: a VF is no vport group manager).
pub fn general_max(is_vf: bool) -> Vec<u8> {
    let mut page = vec![0u8; CAP_LEN];
    if let Ok(mut g) = GeneralCaps::new_checked(&mut page[..]) {
        g.set_log_max_qp(0x10);
        g.set_log_max_cq_sz(0x10);
        g.set_log_max_cq(0x10);
        g.set_log_max_eq_sz(0x12);
        g.set_log_max_mkey(0x10);
        g.set_log_max_eq(4);
        g.set_vport_group_manager(!is_vf);
        g.set_port_type(PortType::from_raw_value(1));
        g.set_num_ports(1);
        g.set_cqe_version(1);
        g.set_drain_sigerr(true);
        g.set_cmdif_checksum(CmdifChecksum::from_raw_value(0));
        g.set_eth_net_offloads(true);
        g.set_cq_moderation(true);
        g.set_log_pg_sz(12);
        g.set_driver_version(true);
        g.set_log_bf_reg_size(9);
        g.set_max_wqe_sz_sq(1024);
        g.set_max_wqe_sz_rq(512);
        g.set_log_max_transport_domain(8);
        g.set_log_max_pd(8);
        g.set_log_max_rq(0x10);
        g.set_log_max_sq(0x10);
        g.set_log_max_tir(0x10);
        g.set_log_max_tis(0x10);
        g.set_basic_cyclic_rcv_wqe(true);
        g.set_log_max_rqt(8);
        g.set_log_max_rqt_size(8);
        g.set_log_max_wq_sz(0xF);
        g.set_log_max_vlan_list(6);
        g.set_log_max_current_mc_list(8);
        g.set_log_max_current_uc_list(4);
        g.set_max_num_eqs(16);
        g.set_num_of_uars_per_page(1);
        g.set_nic_flow_table(true);
        g.set_qos(!is_vf);
        g.set_max_qp_cnt(MAX_Q_COUNTERS);
    }
    page
}

/// Queue counter sets a function may allocate (`max_qp_cnt`; set 0 is "none"). mlx5e uses 2.
pub const MAX_Q_COUNTERS: u16 = 8;

/// Deepest NIC RX table level (Linux needs at least `FT_KERNEL_MIN_LEVEL` for its kernel
/// steering priority).
pub const MAX_FT_LEVEL: u8 = 63;
/// log2 of the entries of one NIC RX table.
pub const LOG_MAX_FT_SIZE: u8 = 16;
/// log2 of the NIC RX tables of a function.
pub const LOG_MAX_FT_NUM: u8 = 8;

/// The NIC flow table page (capability type 7): NIC receive tables with flow tags,
/// SET_FLOW_TABLE_ROOT and the outer fields `crate::packet` compares; one destination per
/// entry, no flow counters, no entry or table modification, no NIC transmit tables.
pub fn flow_table() -> Vec<u8> {
    use mlx5_hw::caps::{FlowTableCaps, FlowTablePropertiesRepr};
    let mut page = vec![0u8; CAP_LEN];
    let rx = FlowTablePropertiesRepr {
        ft_support: true,
        flow_tag: true,
        modify_root: true,
        log_max_ft_size: LOG_MAX_FT_SIZE,
        max_ft_level: MAX_FT_LEVEL,
        log_max_ft_num: LOG_MAX_FT_NUM,
        log_max_destination: 0,
        log_max_flow: LOG_MAX_FT_SIZE,
        outer_dmac: true,
        outer_smac: true,
        outer_ether_type: true,
        outer_ip_version: true,
        outer_first_vid: true,
        outer_ip_protocol: true,
        ..FlowTablePropertiesRepr::default()
    };
    if let Ok(mut v) = FlowTableCaps::new_checked(&mut page[..]) {
        rx.emit(&mut v.nic_rx_mut());
    }
    page
}

/// The QoS page (capability type 0xC, the PF only; max and current are the same): E-Switch
/// scheduling with rate limits and bandwidth shares, one root DWRR TSAR with VPORT elements
/// below it (`log_esw_max_sched_depth` 0: no group TSARs), `bw_share` up to
/// [`MAX_TSAR_BW_SHARE`](crate::qos::MAX_TSAR_BW_SHARE). No packet pacing, no NIC (SQ)
/// scheduling.
pub fn qos() -> Vec<u8> {
    use mlx5_hw::caps::QosCaps;
    use mlx5_hw::commands::eswitch::{element_type, tsar_type};
    let mut page = vec![0u8; CAP_LEN];
    if let Ok(mut q) = QosCaps::new_checked(&mut page[..]) {
        q.set_esw_scheduling(true);
        q.set_esw_bw_share(true);
        q.set_esw_rate_limit(true);
        q.set_esw_element_type((1 << element_type::TSAR) | (1 << element_type::VPORT));
        q.set_esw_tsar_type(1 << tsar_type::DWRR);
        q.set_max_tsar_bw_share(crate::qos::MAX_TSAR_BW_SHARE);
    }
    page
}

/// The Ethernet offloads page (max and current are the same: nothing in it is settable).
pub fn ethernet() -> Vec<u8> {
    let mut page = vec![0u8; CAP_LEN];
    if let Ok(mut e) = EthernetCaps::new_checked(&mut page[..]) {
        e.set_csum_cap(true);
        e.set_vlan_cap(true);
        e.set_wqe_vlan_insert(true);
        e.set_self_lb_en_modifiable(true);
        e.set_max_lso_cap(16);
        e.set_wqe_inline_mode(CapInlineMode::NotRequired);
        e.set_rss_ind_tbl_cap(8);
    }
    page
}

/// Checks a SET_HCA_CAP general page `req` against the `current` and `max` pages: `Ok` with
/// the new current page, or `Err(field name)` for the first field refused.
pub fn settable_general(req: &[u8], current: &[u8], max: &[u8]) -> Result<Vec<u8>, &'static str> {
    let mut expected = current.to_vec();
    apply_settable(req, max, &mut expected)?;
    if expected.get(..) != req.get(..CAP_LEN) {
        return Err("read-only field");
    }
    Ok(expected)
}

/// Copies the settable fields of `req` into `expected`, each checked against `max`.
fn apply_settable(req: &[u8], max: &[u8], expected: &mut [u8]) -> Result<(), &'static str> {
    let (Ok(r), Ok(m), Ok(mut e)) = (
        GeneralCaps::new_checked(req),
        GeneralCaps::new_checked(max),
        GeneralCaps::new_checked(expected),
    ) else {
        return Err("page");
    };
    macro_rules! settable {
        ($($get:ident / $set:ident),* $(,)?) => {$(
            if r.$get() > m.$get() {
                return Err(stringify!($get));
            }
            e.$set(r.$get());
        )*};
    }
    settable!(
        pkey_table_size / set_pkey_table_size,
        log_uar_page_sz / set_log_uar_page_sz,
        log_max_qp / set_log_max_qp,
        drain_sigerr / set_drain_sigerr,
        uar_4k / set_uar_4k,
        dct / set_dct,
        release_all_pages / set_release_all_pages,
        mkey_by_name / set_mkey_by_name,
        roce / set_roce,
        log_max_current_uc_list / set_log_max_current_uc_list,
    );
    if r.cmdif_checksum().raw_value() > m.cmdif_checksum().raw_value() {
        return Err("cmdif_checksum");
    }
    e.set_cmdif_checksum(r.cmdif_checksum());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_advertised_set_is_minimal() {
        let p = general_max(true);
        let g = GeneralCaps::new_checked(&p[..]).unwrap();
        assert!(!g.striding_rq() && !g.cqe_compression() && !g.roce() && !g.vport_group_manager());
        assert_eq!(g.cmdif_checksum().raw_value(), 0);
        assert!(g.eth_net_offloads());
        let e = ethernet();
        let e = EthernetCaps::new_checked(&e[..]).unwrap();
        assert!(!e.lro_cap() && !e.tunnel_stateless_vxlan() && e.csum_cap());
        assert!(!g.qos(), "a VF schedules nothing");
        let p = general_max(false);
        assert!(GeneralCaps::new_checked(&p[..]).unwrap().qos());
    }

    #[test]
    fn the_qos_page_offers_what_the_e_switch_does() {
        use mlx5_hw::caps::QosCaps;
        let p = qos();
        let q = QosCaps::new_checked(&p[..]).unwrap();
        assert!(q.esw_scheduling() && q.esw_bw_share() && q.esw_rate_limit());
        assert!(!q.packet_pacing() && !q.nic_sq_scheduling());
        assert_eq!((q.esw_element_type(), q.esw_tsar_type()), (0b11, 0b1));
        assert_eq!(q.log_esw_max_sched_depth(), 0);
        assert_eq!(q.max_tsar_bw_share(), 100);
    }

    #[test]
    fn set_accepts_what_max_allows_and_nothing_read_only() {
        let max = general_max(true);
        let cur = max.clone();
        let mut req = cur.clone();
        {
            let mut g = GeneralCaps::new_checked(&mut req[..]).unwrap();
            g.set_log_max_qp(4);
            g.set_pkey_table_size(0);
        }
        assert!(settable_general(&req, &cur, &max).is_ok());
        let mut bad = cur.clone();
        GeneralCaps::new_checked(&mut bad[..])
            .unwrap()
            .set_roce(true);
        assert_eq!(settable_general(&bad, &cur, &max), Err("roce"));
        let mut ro = cur.clone();
        GeneralCaps::new_checked(&mut ro[..])
            .unwrap()
            .set_striding_rq(true);
        assert_eq!(settable_general(&ro, &cur, &max), Err("read-only field"));
    }
}
