//! The mlx5 driver on the in-process mlx5 model: bring-up in `mlx5_core`'s order with each
//! command checked, CQs, page requests, teardown returning every page, typed command errors,
//! a command timeout reported and recovered, health syndromes and a stuck heartbeat.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};

use hac_driver::RegisterIo;
use hac_driver::mlx5::model::{Mlx5Model, Mlx5ModelBar};
use hac_driver::mlx5::{Mlx5Config, Mlx5Device, Mlx5Error};
use igb_hw::RegisterOffset;
use mlx5_hw::cmd::{CommandStatus, Opcode};
use mlx5_hw::cqe::{Cqe, CqeOpcode, CqeRepr};
use mlx5_hw::init_seg::{HEALTH_BUFFER_OFFSET, HealthSyndrome, Register};
use mlx5_model::{FunctionId, HcaState, Mlx5Config as ModelConfig};

const VF0: FunctionId = FunctionId::Vf(0);

fn model(num_vfs: u16) -> Mlx5Model {
    let m = Mlx5Model::new(ModelConfig::default());
    m.enable_vfs(num_vfs);
    m
}

fn opcodes(
    dev: &Mlx5Device<impl RegisterIo, impl hac_driver::DmaAllocator, impl hac_driver::Clock>,
) -> Vec<(Opcode, u16)> {
    dev.command_trace()
        .iter()
        .map(|r| (r.opcode, r.op_mod))
        .collect()
}

/// The bring-up of a VF, as `mlx5_core` + the resources mlx5e allocates first.
const VF_BRING_UP: &[(Opcode, u16)] = &[
    (Opcode::EnableHca, 0),
    (Opcode::QueryIssi, 0),
    (Opcode::SetIssi, 0),
    (Opcode::QueryPages, 1),
    (Opcode::ManagePages, 1),
    (Opcode::QueryHcaCap, 1),
    (Opcode::QueryHcaCap, 0),
    (Opcode::SetHcaCap, 0),
    (Opcode::QueryPages, 2),
    (Opcode::ManagePages, 1),
    (Opcode::InitHca, 0),
    (Opcode::QueryHcaCap, 1),
    (Opcode::SetDriverVersion, 0),
    (Opcode::QueryHcaCap, 3),
    // Flow tables (0xF): the model advertises `nic_flow_table` since its steering merged.
    (Opcode::QueryHcaCap, 15),
    (Opcode::AllocUar, 0),
    (Opcode::CreateEq, 0),
    (Opcode::CreateEq, 0),
    (Opcode::AllocPd, 0),
    (Opcode::AllocTransportDomain, 0),
];

#[test]
fn vf_bring_up_issues_mlx5_core_order_and_every_step_succeeds() {
    let m = model(2);
    let dev = m.device(VF0, Mlx5Config::default()).unwrap();
    assert_eq!(opcodes(&dev), VF_BRING_UP);
    assert!(
        dev.command_trace()
            .iter()
            .all(|r| r.status == Some(CommandStatus::Ok) && r.slot == 0)
    );
    let info = dev.info();
    assert_eq!(info.fw_rev, (22, 39, 1002));
    assert_eq!(info.supported_issi & 0b10, 0b10);
    let nic = m.nic();
    let state = nic.function_state(VF0).unwrap();
    assert_eq!(state.hca, HcaState::Initialized);
    assert_eq!(state.issi, 1);
    // Page accounting: the device holds exactly what the driver gave.
    let asked = (info.boot_pages + info.init_pages) as usize;
    assert_eq!(state.pages.len(), asked);
    assert_eq!(dev.pages_outstanding(), asked);
    assert!(state.uars.contains(&dev.uar()));
    assert!(state.pds.contains(&dev.pd()));
    assert!(state.transport_domains.contains(&dev.transport_domain()));
    assert_eq!(state.driver_version.first(), Some(&b'h'));
    // Checksums off, 4 KiB UAR pages, as SET_HCA_CAP asked.
    let g = dev.caps().general().unwrap();
    assert_eq!(u8::from(g.cmdif_checksum()), 0);
    assert_eq!(g.log_uar_page_sz(), 0);
    assert!(dev.caps().ethernet.is_some());
    let (a, c) = dev.eq_numbers();
    assert!(a.is_some() && c.is_some() && a != c);
    assert_eq!(dev.command_counters().ok, VF_BRING_UP.len() as u64);
}

#[test]
fn start_brings_up_the_pf_and_each_vf() {
    let m = Mlx5Model::new(ModelConfig::default());
    let (pf, vfs) = m.start(3, Mlx5Config::default()).unwrap();
    assert_eq!(vfs.len(), 3);
    let nic = m.nic();
    for f in [
        FunctionId::Pf,
        FunctionId::Vf(0),
        FunctionId::Vf(1),
        FunctionId::Vf(2),
    ] {
        assert_eq!(
            nic.function_state(f).unwrap().hca,
            HcaState::Initialized,
            "{f}"
        );
    }
    drop(nic);
    assert_eq!(opcodes(&pf)[..11], VF_BRING_UP[..11]);
}

#[test]
fn cq_gets_cqes_by_owner_bit_and_arming_raises_a_completion_event() {
    let m = model(1);
    let mut dev = m.device(VF0, Mlx5Config::default()).unwrap();
    let i = dev.create_cq(2).unwrap();
    let cqn = dev.cq(i).unwrap().cqn;
    assert!(m.nic().function_state(VF0).unwrap().cqs.contains_key(&cqn));
    assert!(
        dev.cq(i).unwrap().next_cqe().is_none(),
        "nothing written yet"
    );
    // Across a wrap of the 4-entry ring: the owner bit flips each pass.
    for round in 0..6u16 {
        assert!(m.nic().post_test_cqe(VF0, cqn));
        let cq = dev.cq(i).unwrap();
        let raw = cq.next_cqe().expect("a CQE");
        let c = CqeRepr::parse(&Cqe::new_checked(&raw[..]).unwrap());
        assert_eq!(c.opcode, CqeOpcode::Req);
        assert_eq!(c.wqe_counter, round);
        assert!(cq.next_cqe().is_none());
        cq.update_ci();
    }
    dev.arm_cq(i);
    assert!(m.nic().post_test_cqe(VF0, cqn));
    assert_eq!(dev.poll_events().unwrap(), 1);
    assert_eq!(dev.event_counters().completions, 1);
    assert_eq!(m.nic().counters().cq_doorbell_errors, 0);
    dev.shutdown().unwrap();
}

#[test]
fn teardown_destroys_in_reverse_and_returns_every_page() {
    let m = model(1);
    let mut dev = m.device(VF0, Mlx5Config::default()).unwrap();
    dev.create_cq(3).unwrap();
    let before = dev.command_trace().len();
    let cmds = {
        dev.shutdown().unwrap();
        // The device is gone; what the model saw is the proof.
        let nic = m.nic();
        let state = nic.function_state(VF0).unwrap();
        assert_eq!(state.hca, HcaState::Disabled);
        assert!(state.pages.is_empty(), "every page returned");
        assert!(state.cqs.is_empty() && state.eqs.is_empty());
        nic.counters().commands_ok
    };
    assert!(cmds as usize >= before + 9);
}

#[test]
fn teardown_trace_is_the_bring_up_in_reverse() {
    let m = model(1);
    let dev = m.device(VF0, Mlx5Config::default()).unwrap();
    let trace = dev.shutdown().unwrap();
    let tail: Vec<(Opcode, u16)> = trace[VF_BRING_UP.len()..]
        .iter()
        .map(|r| (r.opcode, r.op_mod))
        .collect();
    assert_eq!(
        tail,
        [
            (Opcode::DeallocTransportDomain, 0),
            (Opcode::DeallocPd, 0),
            (Opcode::DestroyEq, 0),
            (Opcode::DestroyEq, 0),
            (Opcode::DeallocUar, 0),
            (Opcode::TeardownHca, 0),
            (Opcode::ManagePages, 2),
            (Opcode::DisableHca, 0),
        ]
    );
    assert!(trace.iter().all(|r| r.status == Some(CommandStatus::Ok)));
    assert!(m.nic().function_state(VF0).unwrap().pages.is_empty());
}

#[test]
fn a_refused_command_is_a_typed_error_naming_it() {
    let m = model(1);
    let mut dev = m.device(VF0, Mlx5Config::default()).unwrap();
    // DESTROY_CQ of a CQ that does not exist.
    let mut input = vec![0u8; 0x10];
    input[0..2].copy_from_slice(&u16::from(Opcode::DestroyCq).to_be_bytes());
    input[0x08..0x0C].copy_from_slice(&0x00AB_CDEFu32.to_be_bytes());
    let e = dev.exec(&input, 0x10).unwrap_err();
    match &e {
        Mlx5Error::Command {
            opcode,
            status,
            syndrome,
            ..
        } => {
            assert_eq!(*opcode, Opcode::DestroyCq);
            assert_eq!(*status, CommandStatus::BadResource);
            assert_ne!(*syndrome, 0);
        }
        other => panic!("{other:?}"),
    }
    let text = e.to_string();
    assert!(text.contains("DESTROY_CQ(0x401)"), "{text}");
    assert!(text.contains("BadResource"), "{text}");
    assert_eq!(dev.command_counters().failed, 1);
    // The interface carries on.
    dev.create_cq(1).unwrap();
}

#[test]
fn an_unknown_opcode_is_bad_op() {
    let m = model(1);
    let mut dev = m.device(VF0, Mlx5Config::default()).unwrap();
    let mut input = vec![0u8; 0x10];
    input[0..2].copy_from_slice(&0x0FEDu16.to_be_bytes());
    let e = dev.exec(&input, 0x10).unwrap_err();
    assert!(hac_driver::mlx5::device::is_bad_op(&e), "{e}");
}

#[test]
fn create_cq_beyond_the_capability_is_refused_before_sending() {
    let m = model(1);
    let mut dev = m.device(VF0, Mlx5Config::default()).unwrap();
    let n = dev.command_trace().len();
    assert!(matches!(
        dev.create_cq(30),
        Err(Mlx5Error::QueueSize { what: "CQ", .. })
    ));
    assert_eq!(dev.command_trace().len(), n);
}

#[test]
fn page_requests_are_answered_on_the_page_slot() {
    let m = model(1);
    let mut dev = m.device(VF0, Mlx5Config::default()).unwrap();
    let held = m.nic().function_state(VF0).unwrap().pages.len();
    m.nic().request_pages(VF0, 3).unwrap();
    assert_eq!(dev.poll_events().unwrap(), 1);
    let nic = m.nic();
    let state = nic.function_state(VF0).unwrap();
    assert_eq!(state.pages.len(), held + 3);
    assert_eq!(state.pages_owed, 0);
    drop(nic);
    assert_eq!(dev.pages_outstanding(), held + 3);
    assert_eq!(dev.event_counters().page_requests_given, 1);
    let last = dev.command_trace().last().copied().unwrap();
    assert_eq!(
        (last.opcode, last.op_mod, last.slot),
        (Opcode::ManagePages, 1, 31)
    );
    dev.shutdown().unwrap();
    assert!(m.nic().function_state(VF0).unwrap().pages.is_empty());
}

#[test]
fn the_driver_waits_out_firmware_initialization_or_says_it_timed_out() {
    let slow = ModelConfig {
        boot_time_ns: 5_000_000_000,
        ..ModelConfig::default()
    };
    let m = Mlx5Model::new(slow);
    m.enable_vfs(1);
    let impatient = Mlx5Config {
        init_timeout_ns: 1_000_000_000,
        ..Mlx5Config::default()
    };
    match m.device(VF0, impatient) {
        Err(Mlx5Error::FirmwareInitTimeout { waited_ms }) => assert!(waited_ms >= 1000),
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("came up while initializing"),
    }
    // The default waits up to 120 s of (virtual) time.
    m.device(VF0, Mlx5Config::default()).unwrap();
}

/// Register access that can swallow command doorbells (a device that never answers) and
/// override the health buffer and counter (a device reporting trouble).
#[derive(Clone)]
struct Faulty {
    inner: Mlx5ModelBar,
    mute: Arc<AtomicBool>,
    health: Arc<Mutex<Option<[u32; 16]>>>,
    counter: Arc<Mutex<Option<u32>>>,
}

impl Faulty {
    fn new(inner: Mlx5ModelBar) -> Faulty {
        Faulty {
            inner,
            mute: Arc::new(AtomicBool::new(false)),
            health: Arc::new(Mutex::new(None)),
            counter: Arc::new(Mutex::new(None)),
        }
    }
}

/// A big-endian register value as `read32` returns its bus bytes.
fn bus(value: u32) -> u32 {
    u32::from_le_bytes(value.to_be_bytes())
}

impl RegisterIo for Faulty {
    fn read32(&self, offset: RegisterOffset) -> u32 {
        let at = offset.0 as usize;
        if let Some(h) = *self.health.lock().unwrap()
            && (HEALTH_BUFFER_OFFSET..HEALTH_BUFFER_OFFSET + 0x40).contains(&at)
        {
            return bus(h[(at - HEALTH_BUFFER_OFFSET) / 4]);
        }
        if at == Register::HealthCounter.offset() as usize
            && let Some(c) = *self.counter.lock().unwrap()
        {
            return bus(c);
        }
        self.inner.read32(offset)
    }
    fn write32(&self, offset: RegisterOffset, value: u32) {
        if offset.0 == Register::CmdDbell.offset() && self.mute.load(Ordering::SeqCst) {
            return;
        }
        self.inner.write32(offset, value);
    }
    fn write64(&self, offset: RegisterOffset, value: u64) {
        self.inner.write64(offset, value);
    }
}

fn faulty_device(
    m: &Mlx5Model,
    config: Mlx5Config,
) -> (
    Faulty,
    Result<
        Mlx5Device<
            Faulty,
            hac_driver::mlx5::model::Mlx5ModelDma,
            hac_driver::mlx5::model::Mlx5ModelClock,
        >,
        Mlx5Error,
    >,
) {
    let bar = Faulty::new(m.bar0(VF0));
    let dev = Mlx5Device::new(bar.clone(), m.dma(VF0), m.clock(), config);
    (bar, dev)
}

fn short_timeout() -> Mlx5Config {
    Mlx5Config {
        command_timeout_ns: 100_000_000,
        ..Mlx5Config::default()
    }
}

#[test]
fn a_device_that_never_answers_times_out_on_enable_hca() {
    let m = model(1);
    let bar = Faulty::new(m.bar0(VF0));
    bar.mute.store(true, Ordering::SeqCst);
    let t0 = m.nic().now().as_nanos();
    match Mlx5Device::new(bar, m.dma(VF0), m.clock(), short_timeout()) {
        Err(
            e @ Mlx5Error::CommandTimeout {
                opcode,
                waited_ms,
                health,
            },
        ) => {
            assert_eq!(opcode, Opcode::EnableHca);
            assert!(waited_ms >= 100);
            assert!(!health.fatal);
            assert!(e.to_string().contains("ENABLE_HCA(0x104) timed out"), "{e}");
        }
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("a mute device came up"),
    }
    // Virtual time passed, no more than the timeout plus one poll interval.
    let waited = m.nic().now().as_nanos() - t0;
    assert!((100_000_000..102_000_000).contains(&waited), "{waited}");
}

#[test]
fn a_command_timeout_takes_the_interface_down_until_recovered() {
    let m = model(1);
    let (bar, dev) = faulty_device(&m, short_timeout());
    let mut dev = dev.unwrap();
    bar.mute.store(true, Ordering::SeqCst);
    match dev.create_cq(2) {
        Err(Mlx5Error::CommandTimeout { opcode, .. }) => assert_eq!(opcode, Opcode::CreateCq),
        other => panic!("{:?}", other.err()),
    }
    assert_eq!(dev.command_counters().timeouts, 1);
    // Nothing more is sent until the interface is recovered.
    match dev.create_cq(2) {
        Err(Mlx5Error::CommandInterfaceDown { opcode }) => assert_eq!(opcode, Opcode::CreateCq),
        other => panic!("{:?}", other.err()),
    }
    bar.mute.store(false, Ordering::SeqCst);
    dev.recover_command_interface().unwrap();
    assert_eq!(dev.command_counters().recoveries, 1);
    let last = dev.command_trace().last().copied().unwrap();
    assert_eq!(
        (last.opcode, last.status),
        (Opcode::QueryIssi, Some(CommandStatus::Ok))
    );
    dev.create_cq(2).unwrap();
    dev.shutdown().unwrap();
    assert!(m.nic().function_state(VF0).unwrap().pages.is_empty());
}

/// A health buffer with the reset-request bit and `synd`.
fn sick(synd: HealthSyndrome) -> [u32; 16] {
    let mut h = [0u32; 16];
    h[0x38 / 4] = 1 << 31; // rfr
    h[0x3C / 4] = u32::from(u8::from(synd)) << 16 | 0x1234;
    h
}

#[test]
fn a_health_syndrome_is_detected_and_named() {
    let m = model(1);
    let (bar, dev) = faulty_device(&m, Mlx5Config::default());
    let mut dev = dev.unwrap();
    let ok = dev.check_health().unwrap();
    assert!(!ok.fatal && ok.synd == HealthSyndrome::None);
    *bar.health.lock().unwrap() = Some(sick(HealthSyndrome::HwFatal));
    match dev.check_health() {
        Err(e @ Mlx5Error::DeviceFatal(h)) => {
            assert_eq!(h.synd, HealthSyndrome::HwFatal);
            assert_eq!(h.ext_synd, 0x1234);
            assert!(h.rfr && h.fatal);
            assert!(e.to_string().contains("HwFatal"), "{e}");
        }
        other => panic!("{other:?}"),
    }
    // The device gone from the bus reads all ones: fatal too.
    let mut gone = [0u32; 16];
    gone[0x30 / 4] = u32::MAX;
    *bar.health.lock().unwrap() = Some(gone);
    assert!(matches!(dev.check_health(), Err(Mlx5Error::DeviceFatal(h)) if h.fw_ver == u32::MAX));
}

#[test]
fn a_timeout_on_a_dead_device_reports_it_fatal_and_recovery_refuses() {
    let m = model(1);
    let (bar, dev) = faulty_device(&m, short_timeout());
    let mut dev = dev.unwrap();
    bar.mute.store(true, Ordering::SeqCst);
    *bar.health.lock().unwrap() = Some(sick(HealthSyndrome::DeadIrisc));
    match dev.create_cq(1) {
        Err(Mlx5Error::DeviceFatal(h)) => assert_eq!(h.synd, HealthSyndrome::DeadIrisc),
        other => panic!("{:?}", other.err()),
    }
    assert!(matches!(
        dev.recover_command_interface(),
        Err(Mlx5Error::DeviceFatal(_))
    ));
}

#[test]
fn a_stuck_health_counter_is_reported_after_the_miss_limit() {
    let m = model(1);
    let (bar, dev) = faulty_device(&m, Mlx5Config::default());
    let mut dev = dev.unwrap();
    // The model's counter ticks every 100 ms of virtual time.
    for _ in 0..5 {
        dev.check_health().unwrap();
        m.run_for(200_000_000);
    }
    *bar.counter.lock().unwrap() = Some(0x42);
    dev.check_health().unwrap();
    dev.check_health().unwrap();
    dev.check_health().unwrap();
    match dev.check_health() {
        Err(Mlx5Error::HealthCompromised { counter, misses }) => {
            assert_eq!((counter, misses), (0x42, 3));
        }
        other => panic!("{other:?}"),
    }
    *bar.counter.lock().unwrap() = None;
    dev.check_health().unwrap();
}

#[test]
fn the_ethernet_path_fails_cleanly_where_the_device_lacks_it() {
    let m = model(1);
    let mut dev = m.device(VF0, Mlx5Config::default()).unwrap();
    assert!(matches!(
        dev.send(&[&[0u8; 60][..]]),
        Err(Mlx5Error::NotOpen)
    ));
    assert!(matches!(dev.recv_with(1, |_| {}), Err(Mlx5Error::NotOpen)));
    // Today's model has no vport or queue commands: the first one it refuses is named; once
    // the model grows them the path opens. Either way teardown leaves nothing behind.
    match dev.open_eth(hac_driver::mlx5::EthConfig::default()) {
        Ok(()) => assert!(dev.eth_objects().is_some()),
        Err(e @ Mlx5Error::Command { .. }) => {
            assert!(e.to_string().contains("failed, status"), "{e}");
        }
        Err(e) => panic!("{e}"),
    }
    dev.shutdown().unwrap();
    let nic = m.nic();
    let state = nic.function_state(VF0).unwrap();
    assert!(state.pages.is_empty() && state.cqs.is_empty());
}

#[test]
fn ethernet_queue_sizes_are_checked_before_anything_is_sent() {
    let m = model(1);
    let mut dev = m.device(VF0, Mlx5Config::default()).unwrap();
    let n = dev.command_trace().len();
    let bad = hac_driver::mlx5::EthConfig {
        log_sq_size: 0,
        log_rq_size: 4,
    };
    assert!(matches!(
        dev.open_eth(bad),
        Err(Mlx5Error::QueueSize { what: "SQ", .. })
    ));
    assert_eq!(dev.command_trace().len(), n);
}

#[test]
fn after_a_fatal_state_the_host_resets_the_function_and_a_new_driver_comes_up() {
    let m = model(1);
    let (bar, dev) = faulty_device(&m, short_timeout());
    let mut dev = dev.unwrap();
    *bar.health.lock().unwrap() = Some(sick(HealthSyndrome::FwInternal));
    assert!(matches!(dev.check_health(), Err(Mlx5Error::DeviceFatal(_))));
    // The re-init path: drop the driver (its DMA memory is unmapped), FLR the function (the
    // device releases the pages it held), bring the function up from scratch.
    drop(dev);
    m.nic().reset_function(VF0);
    assert!(m.nic().function_state(VF0).unwrap().pages.is_empty());
    let dev = m.device(VF0, Mlx5Config::default()).unwrap();
    assert_eq!(
        m.nic().function_state(VF0).unwrap().hca,
        HcaState::Initialized
    );
    dev.shutdown().unwrap();
}

#[test]
fn an_eq_size_beyond_the_capability_is_refused_before_sending() {
    let m = model(1);
    let huge = Mlx5Config {
        log_async_eq_size: 60,
        ..Mlx5Config::default()
    };
    match m.device(VF0, huge) {
        Err(Mlx5Error::QueueSize {
            what: "EQ",
            log: 60,
            ..
        }) => {}
        Err(e) => panic!("{e}"),
        Ok(_) => panic!("an EQ of 2^60 entries"),
    }
}

#[test]
fn in_event_mode_commands_complete_by_command_eqes() {
    let m = model(1);
    let config = Mlx5Config {
        command_events: true,
        ..Mlx5Config::default()
    };
    let mut dev = m.device(VF0, config).unwrap();
    let cmd_eqn = dev.cmd_eq_number().expect("a command EQ");
    let trace = opcodes(&dev);
    // The command EQ comes right after ALLOC_UAR, then the rest as in polling mode.
    let uar_at = VF_BRING_UP
        .iter()
        .position(|c| c.0 == Opcode::AllocUar)
        .unwrap();
    assert_eq!(trace[..=uar_at], VF_BRING_UP[..=uar_at]);
    assert_eq!(trace[uar_at + 1], (Opcode::CreateEq, 0));
    assert_eq!(trace[uar_at + 2..], VF_BRING_UP[uar_at + 1..]);
    let eqes_before = m.nic().counters().eqes_written;
    dev.create_cq(2).unwrap();
    assert!(
        m.nic().counters().eqes_written > eqes_before,
        "a command EQE"
    );
    // A page request answered on slot 31 completes by its EQE bit too.
    m.nic().request_pages(VF0, 2).unwrap();
    dev.poll_events().unwrap();
    assert_eq!(dev.event_counters().page_requests_given, 1);
    let nic = m.nic();
    let eq = nic.function_state(VF0).unwrap().eqs.get(&cmd_eqn).cloned();
    drop(nic);
    assert!(eq.is_some());
    assert_eq!(dev.command_counters().stray_events, 0);
    let trace = dev.shutdown().unwrap();
    assert!(trace.iter().all(|r| r.status == Some(CommandStatus::Ok)));
    let nic = m.nic();
    let state = nic.function_state(VF0).unwrap();
    assert!(state.pages.is_empty() && state.eqs.is_empty());
}
