//! The `mlx5_core` bring-up order on a VF (and the PF) of the model, every output checked;
//! the initialization segment as the driver reads it; teardown; FLR.
#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

use adapter_core::SimTime;
use mlx5_hw::caps::{EthernetCaps, GeneralCaps};
use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_hw::commands::lifecycle::PSID;
use mlx5_hw::init_seg::Register;
use mlx5_model::commands::{BOARD_ID, BOOT_PAGES, FIRST_UAR, INIT_PAGES};
use mlx5_model::testing::{CmdDriver, MEM_IOVA, device, host_endianness, input, put_dword};
use mlx5_model::{FunctionId, HcaState, Mlx5Config, Mlx5Nic};

const VF0: FunctionId = FunctionId::Vf(0);

#[test]
fn init_segment_reads_as_the_lab_saw_it() {
    let mut nic = device(2);
    assert_eq!(
        nic.read32be(VF0, 0x004),
        0x0005_03EA,
        "cmdif 5, fw sub 1002"
    );
    assert_eq!(nic.read32be(VF0, 0x000), 0x0027_0016, "fw 22.39");
    assert_eq!(nic.read32be(VF0, 0x1FC), 0, "not initializing");
    assert_eq!(nic.read32be(VF0, 0x014), 0x56, "log size 5, log stride 6");
    nic.write32be(VF0, 0x010, 0);
    nic.write32be(VF0, 0x014, 0x0428_A000);
    assert_eq!(
        nic.read32be(VF0, 0x014),
        0x0428_A056,
        "geometry bits read-only"
    );
    assert_eq!(nic.cmdq_address(VF0), Some(0x0428_A000));
    assert_eq!(
        nic.read32be(VF0, 0xFFC),
        0,
        "timeouts not reported: no DTOR read"
    );
    assert_eq!(nic.read32be(VF0, 0x230), 0, "health fw_ver not 0xffffffff");
    let mut b = [0u8; 1];
    nic.bar_read(VF0, 0, 0x23D, &mut b);
    assert_eq!(b, [0], "health syndrome byte");
    // The health counter ticks with virtual time only.
    let c0 = nic.read32be(VF0, Register::HealthCounter.offset());
    assert_eq!(nic.read32be(VF0, Register::HealthCounter.offset()), c0);
    for k in 1..=3 {
        nic.advance_to(nic.now() + 2_000_000_000);
        assert_eq!(
            nic.read32be(VF0, Register::HealthCounter.offset()),
            c0 + 20 * k
        );
    }
    assert_ne!(nic.read32be(VF0, Register::InternalTimerL.offset()), 0);
    // Writes to read-only registers are ignored and counted.
    nic.write32be(VF0, 0x000, 0xDEAD_BEEF);
    assert_eq!(nic.read32be(VF0, 0x000), 0x0027_0016);
    assert_eq!(nic.counters().read_only_writes, 1);
}

#[test]
fn vf_bring_up_in_mlx5_core_order_to_init_hca_and_first_resources() {
    let mut nic = device(2);
    let mut d = CmdDriver::attach(&mut nic, VF0);
    let up = d.bring_up(&mut nic);
    assert_eq!(up.supported_issi, 0b11);
    assert_eq!(up.boot_pages, BOOT_PAGES as i32);
    assert_eq!(up.init_pages, INIT_PAGES as i32);
    let g = GeneralCaps::new_checked(&up.general_max[..]).unwrap();
    assert_eq!(g.port_type().raw_value(), 1, "Ethernet");
    assert!(g.eth_net_offloads() && !g.striding_rq() && !g.cqe_compression());
    assert!(!g.roce() && !g.vport_group_manager() && g.max_wqe_sz_sq() >= 1024);

    let st = nic.function_state(VF0).unwrap();
    assert_eq!(st.hca, HcaState::Initialized);
    assert_eq!(st.issi, 1);
    assert_eq!(st.pages.len(), (BOOT_PAGES + INIT_PAGES) as usize);
    assert!(st.pages.iter().all(|p| *p >= MEM_IOVA && p % 4096 == 0));

    // After INIT_HCA, as mlx5_core continues.
    let mut v = input(Opcode::SetDriverVersion, 0, 0x50);
    v[0x10..0x10 + 20].copy_from_slice(b"Linux,mlx5_core,6.12");
    d.ok(&mut nic, &v, 0x10);
    assert_eq!(
        nic.function_state(VF0).unwrap().driver_version,
        b"Linux,mlx5_core,6.12"
    );
    let eth = d.query_cap(&mut nic, 3);
    let e = EthernetCaps::new_checked(&eth[..]).unwrap();
    assert!(e.csum_cap() && !e.lro_cap() && !e.tunnel_stateless_vxlan());
    let cur = d.query_cap(&mut nic, 1);
    assert_eq!(
        GeneralCaps::new_checked(&cur[..])
            .unwrap()
            .pkey_table_size(),
        0
    );
    let a = d.ok(&mut nic, &input(Opcode::QueryAdapter, 0, 0x10), 0x110);
    assert_eq!(PSID.get(&a.bytes).unwrap(), BOARD_ID);
    let uar = d.ok(&mut nic, &input(Opcode::AllocUar, 0, 0x10), 0x10);
    assert_eq!(uar.dword(0x08), FIRST_UAR);
    let uar2 = d.ok(&mut nic, &input(Opcode::AllocUar, 0, 0x10), 0x10);
    assert_eq!(uar2.dword(0x08), FIRST_UAR + 1);
    let pd = d.ok(&mut nic, &input(Opcode::AllocPd, 0, 0x10), 0x10);
    assert_eq!(pd.dword(0x08), 1);
    let td = d.ok(
        &mut nic,
        &input(Opcode::AllocTransportDomain, 0, 0x10),
        0x10,
    );
    assert_eq!(td.dword(0x08), 1);
    let mut free = input(Opcode::DeallocUar, 0, 0x10);
    put_dword(&mut free, 0x08, FIRST_UAR);
    d.ok(&mut nic, &free, 0x10);
    let mut free = input(Opcode::DeallocPd, 0, 0x10);
    put_dword(&mut free, 0x08, 1);
    d.ok(&mut nic, &free, 0x10);
    let st = nic.function_state(VF0).unwrap();
    assert_eq!(st.uars.iter().copied().collect::<Vec<_>>(), [FIRST_UAR + 1]);
    assert!(st.pds.is_empty());
    assert_eq!(st.transport_domains.len(), 1);

    let c = nic.counters();
    assert_eq!(c.command_errors.total(), 0);
    // 11 commands of the bring-up, 10 after it.
    assert_eq!(c.commands_ok, 21);
    assert_eq!(c.delivery, Default::default());
}

#[test]
fn teardown_returns_every_page_and_disable_resets_the_function() {
    let mut nic = device(1);
    let mut d = CmdDriver::attach(&mut nic, VF0);
    d.bring_up(&mut nic);
    // While initialized the device keeps what it asked for.
    let mut take = input(Opcode::ManagePages, 2, 0x10);
    put_dword(&mut take, 0x0C, 64);
    let o = d.ok(&mut nic, &take, 0x10 + 8 * 64);
    assert_eq!(o.dword(0x08), 0);
    let mut td = input(Opcode::TeardownHca, 0, 0x10);
    put_dword(&mut td, 0x08, 0);
    d.ok(&mut nic, &td, 0x10);
    let o = d.ok(&mut nic, &take, 0x10 + 8 * 64);
    let n = o.dword(0x08) as usize;
    assert_eq!(n, (BOOT_PAGES + INIT_PAGES) as usize);
    let returned: Vec<u64> = (0..n)
        .map(|k| {
            let at = 0x10 + 8 * k;
            u64::from_be_bytes(o.bytes[at..at + 8].try_into().unwrap())
        })
        .collect();
    assert!(returned.iter().all(|p| *p >= MEM_IOVA));
    assert!(nic.function_state(VF0).unwrap().pages.is_empty());
    d.ok(&mut nic, &input(Opcode::DisableHca, 0, 0x10), 0x0C);
    assert_eq!(nic.function_state(VF0).unwrap().hca, HcaState::Disabled);
    assert_eq!(nic.counters().pages_released_on_reset, 0);
    // And it can come up again.
    d.bring_up(&mut nic);
}

#[test]
fn the_pf_brings_up_the_same_way() {
    let mut nic = device(0);
    let mut d = CmdDriver::attach(&mut nic, FunctionId::Pf);
    let up = d.bring_up(&mut nic);
    let g = GeneralCaps::new_checked(&up.general_max[..]).unwrap();
    assert!(g.vport_group_manager());
    let st = nic.function_state(FunctionId::Pf).unwrap();
    assert_eq!(st.hca, HcaState::Initialized);
    assert_eq!(st.host_big_endian, Some(false), "set_hca_ctrl");
}

#[test]
fn host_endianness_is_written_and_read_back_as_rdma_core_does_on_a_vf() {
    let mut nic = device(1);
    let mut d = CmdDriver::attach(&mut nic, VF0);
    d.ok(&mut nic, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
    d.ok(&mut nic, &host_endianness(0, true), 0x20);
    let o = d.ok(&mut nic, &host_endianness(1, false), 0x20);
    assert_eq!(o.bytes[0x10], 0x80);
    assert_eq!(nic.function_state(VF0).unwrap().host_big_endian, Some(true));
}

#[test]
fn the_initializing_bit_holds_doorbells_until_the_boot_time_passed() {
    let mut nic = Mlx5Nic::new(Mlx5Config {
        boot_time_ns: 5_000_000,
        ..Mlx5Config::default()
    });
    nic.enable_sriov(1);
    assert_eq!(nic.read32be(VF0, 0x1FC) >> 31, 1);
    let mut d = CmdDriver::attach(&mut nic, VF0);
    let p = d.post(0, &input(Opcode::EnableHca, 0, 0x10), 0x0C);
    d.ring(&mut nic, 1);
    assert_eq!(nic.counters().doorbell_while_initializing, 1);
    assert!(d.complete(&p).is_err(), "not processed");
    nic.advance_to(SimTime::from_millis(5));
    assert_eq!(nic.read32be(VF0, 0x1FC) >> 31, 0);
    d.ring(&mut nic, 1);
    assert_eq!(d.complete(&p).unwrap().status, CommandStatus::Ok);
}

#[test]
fn flr_and_vf_disable_reset_the_function() {
    let mut nic = device(2);
    let mut d = CmdDriver::attach(&mut nic, VF0);
    d.bring_up(&mut nic);
    let resets = nic.counters().function_resets;
    // PCI Express Device Control, Initiate FLR (bit 15).
    let devctl = (mlx5_hw::pci::layout::PCIE + 8) as u16;
    nic.config_write(VF0, devctl, &0x8000u16.to_le_bytes());
    assert_eq!(nic.function_state(VF0).unwrap().hca, HcaState::Disabled);
    assert_eq!(nic.cmdq_address(VF0), None);
    assert_eq!(nic.counters().pages_released_on_reset, 6);
    assert_eq!(nic.counters().function_resets, resets + 1);
    // The IOMMU is the host's: the driver can start over at once.
    d.set_cmdq(&mut nic);
    d.bring_up(&mut nic);
    // Disabling SR-IOV resets every VF; re-enabled VFs start from scratch.
    nic.enable_sriov(2);
    assert_eq!(nic.function_state(VF0).unwrap().hca, HcaState::Disabled);
}

#[test]
fn the_device_can_move_to_another_thread() {
    fn send<T: Send>() {}
    send::<Mlx5Nic>();
}
