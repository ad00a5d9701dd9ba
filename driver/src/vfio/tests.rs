//! Tests of the VFIO logic on the fakes of [`super::testing`]: no device needed.
#![allow(clippy::single_range_in_vec_init)] // one-window IOMMUs are the common case

use std::io;
use std::path::PathBuf;
use std::time::{Duration, Instant};

use hac_sys::mmio::check_bar_offset;
use hac_sys::{OpenFailure, OpenStep};
use igb_hw::pci::{command, header};
use igb_hw::{Iova, RegisterOffset};

use super::error::check_vf_token;
use super::testing::{DeviceEvent, FakeDevice, FakeDeviceConfig, FakeWindow, IommuEvent};
use super::*;
use crate::backend::{DmaAllocator, DmaError, DmaRegion, RegisterIo};
use crate::iova::IovaError;

fn bdf() -> Bdf {
    Bdf::parse("0000:01:10.0").unwrap()
}

fn open(config: FakeDeviceConfig) -> VfioDevice<FakeDevice> {
    VfioDevice::from_access(bdf(), FakeDevice::new(config)).unwrap()
}

#[test]
fn thread_safety_is_as_documented() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<VfioDevice>();
    send_sync::<VfioBar>();
    send_sync::<VfioDma>();
    send_sync::<MsixInterrupts>();
    // Regions move between threads but are not shared: one accessor at a time.
    send::<VfioDmaRegion>();
    send_sync::<VfioDevice<FakeDevice>>();
    send::<VfioDmaRegion<testing::FakeIommu>>();
}

#[test]
fn bdf_round_trips_and_normalises() {
    assert_eq!(
        Bdf::parse("0000:01:10.0").unwrap().to_string(),
        "0000:01:10.0"
    );
    assert_eq!(Bdf::parse("01:10.1").unwrap().to_string(), "0000:01:10.1");
    assert_eq!(
        Bdf::parse("ABCD:Ef:1F.7").unwrap().to_string(),
        "abcd:ef:1f.7"
    );
    assert_eq!(
        Bdf::parse("10000:00:02.0").unwrap().to_string(),
        "10000:00:02.0"
    );
    let b = Bdf::parse("0:1:2.3").unwrap();
    assert_eq!(
        (b.domain(), b.bus(), b.device(), b.function()),
        (0, 1, 2, 3)
    );
    assert_eq!(Bdf::new(0, 1, 32, 0), None);
    assert_eq!(Bdf::new(0, 1, 31, 8), None);
    assert_eq!(
        "0000:01:10.0".parse::<Bdf>().unwrap(),
        Bdf::new(0, 1, 0x10, 0).unwrap()
    );
}

#[test]
fn bad_bdfs_name_the_input_and_the_reason() {
    for (input, reason) in [
        ("", "expected two or three ':'-separated fields"),
        ("0000:01:10", "missing '.F'"),
        ("0000:01:20.0", "device number above 0x1f"),
        ("0000:01:10.8", "function number above 7"),
        ("0000:01:10.10", "function is not one digit"),
        ("0000:+1:10.0", "bus is not 1 or 2 hex digits"),
        ("0000:001:10.0", "bus is not 1 or 2 hex digits"),
        ("x:01:10.0", "domain is not 1 to 8 hex digits"),
        (" 0000:01:10.0", "domain is not 1 to 8 hex digits"),
        (
            "0000:01:10.0:0",
            "expected two or three ':'-separated fields",
        ),
        ("0000:01:.0", "device is not 1 or 2 hex digits"),
    ] {
        let e = Bdf::parse(input).unwrap_err();
        assert_eq!(e.input, input);
        assert_eq!(e.reason, reason, "{input:?}");
        assert!(e.to_string().contains(&format!("{input:?}")));
    }
}

#[test]
fn vf_tokens_must_be_uuids_and_are_not_echoed() {
    assert!(check_vf_token("2ab74924-c335-45f4-9b16-8569e5b08258").is_ok());
    assert!(check_vf_token("2AB74924-C335-45F4-9B16-8569E5B08258").is_ok());
    for bad in [
        "",
        "2ab74924c33545f49b168569e5b08258",
        "2ab74924-c335-45f4-9b16-8569e5b0825g",
        "2ab74924-c335-45f4-9b16_8569e5b08258",
        "2ab74924-c335-45f4-9b16-8569e5b082580",
    ] {
        let e = check_vf_token(bad).unwrap_err();
        assert!(matches!(e, VfioError::InvalidVfToken { .. }));
        if !bad.is_empty() {
            assert!(!e.to_string().contains(bad));
        }
    }
}

#[test]
fn open_sets_memory_and_bus_master_and_keeps_intx_disable() {
    let dev = open(FakeDeviceConfig::igbvf_82576());
    let cmd = dev.access().command();
    assert_eq!(
        cmd,
        command::INTX_DISABLE | command::MEMORY | command::BUS_MASTER
    );
    assert_eq!(
        dev.access().events(),
        vec![DeviceEvent::ConfigWrite {
            offset: header::COMMAND as u64,
            data: cmd.to_le_bytes().to_vec()
        }]
    );
    // Idempotent: no second write when already set.
    dev.enable_memory_and_bus_master().unwrap();
    assert_eq!(dev.access().events().len(), 1);
    assert_eq!(
        dev.ids().unwrap(),
        PciIds {
            vendor: 0x8086,
            device: 0x10CA
        }
    );
    assert!(dev.ids().unwrap().is_igb_vf());
    assert_eq!(dev.ids().unwrap().to_string(), "8086:10ca");
}

#[test]
fn bus_master_that_does_not_stick_is_an_error() {
    let config = FakeDeviceConfig {
        command_writable: 0,
        ..FakeDeviceConfig::igbvf_82576()
    };
    let err = VfioDevice::from_access(bdf(), FakeDevice::new(config)).unwrap_err();
    assert!(matches!(
        err,
        VfioError::CommandNotAccepted {
            wrote: 0x0406,
            read: 0x0400
        }
    ));
}

#[test]
fn config_reads_are_bounds_checked() {
    let dev = open(FakeDeviceConfig::igbvf_82576());
    assert_eq!(dev.read_config(0, 4).unwrap(), vec![0x86, 0x80, 0xCA, 0x10]);
    assert_eq!(dev.read_config(4092, 4).unwrap().len(), 4);
    assert!(matches!(
        dev.read_config(4093, 4),
        Err(VfioError::ConfigOutOfRange {
            offset: 4093,
            len: 4,
            size: 4096
        })
    ));
    assert!(matches!(
        dev.read_config(0xFFFF, usize::MAX),
        Err(VfioError::ConfigOutOfRange { .. })
    ));
}

#[test]
fn bar_accesses_are_checked_counted_and_never_panic() {
    let dev = open(FakeDeviceConfig::igbvf_82576());
    let bar = dev.bar0().unwrap();
    assert_eq!(bar.len(), 16 << 10);
    bar.write32(RegisterOffset(0x0008), 0x1234_5678);
    assert_eq!(bar.read32(RegisterOffset(0x0008)), 0x1234_5678);
    assert_eq!(dev.access().bar(0).unwrap().peek(8), Some(0x1234_5678));
    dev.access().bar(0).unwrap().poke(0x3FFC, 7);
    assert_eq!(bar.read32(RegisterOffset(0x3FFC)), 7);
    for bad in [0x4000, 0x3FFE, 0x0002, 0x0001, u32::MAX, u32::MAX - 3] {
        assert_eq!(bar.read32(RegisterOffset(bad)), BAD_READ);
        bar.write32(RegisterOffset(bad), 0xDEAD);
    }
    assert_eq!(bar.bad_reads(), 6);
    assert_eq!(bar.bad_writes(), 6);
    assert_eq!(
        bar.try_read32(RegisterOffset(0x4000)),
        Err(BarAccessError::OutOfRange {
            offset: 0x4000,
            len: 0x4000
        })
    );
    assert_eq!(
        bar.try_write32(RegisterOffset(0x2), 0),
        Err(BarAccessError::Misaligned { offset: 2 })
    );
    assert!(matches!(
        dev.map_bar(1),
        Err(VfioError::BarMissing { index: 1 })
    ));
    assert!(matches!(
        dev.map_bar(6),
        Err(VfioError::BarMissing { index: 6 })
    ));
    assert_eq!(dev.map_bar(3).unwrap().index(), 3);
}

#[test]
fn check_bar_offset_edges() {
    assert_eq!(check_bar_offset(0, 4), Ok(()));
    assert!(check_bar_offset(0, 3).is_err());
    assert!(check_bar_offset(0, 0).is_err());
    assert!(check_bar_offset(usize::MAX - 3, usize::MAX).is_err());
    assert!(check_bar_offset(usize::MAX & !3, usize::MAX).is_err());
    let w = FakeWindow::new(6);
    assert_eq!(w.peek(0), Some(0));
    assert_eq!(w.peek(4), None);
}

#[test]
fn dma_regions_are_mapped_disjoint_and_unmapped_on_drop() {
    let dev = open(FakeDeviceConfig::igbvf_82576());
    let dma = dev.dma();
    let iommu = dev.access().fake_iommu();
    let a = dma.allocate(100).unwrap();
    let b = dma.allocate(4096 * 3 + 1).unwrap();
    assert_eq!(a.len(), 4096);
    assert_eq!(b.len(), 4096 * 4);
    assert_eq!(a.iova(), Iova(0x1000), "page 0 is never used");
    assert_eq!(b.iova(), Iova(0x2000));
    assert_eq!(
        iommu.mappings(),
        vec![(Iova(0x1000), 4096), (Iova(0x2000), 4096 * 4)]
    );
    assert_eq!(dma.stats().live_regions, 2);
    assert_eq!(dma.stats().mapped_bytes, 5 * 4096);
    let a_iova = a.iova();
    drop(a);
    assert_eq!(iommu.mappings(), vec![(Iova(0x2000), 4096 * 4)]);
    assert_eq!(
        iommu.events(),
        vec![
            IommuEvent::Map {
                iova: Iova(0x1000),
                len: 4096
            },
            IommuEvent::Map {
                iova: Iova(0x2000),
                len: 4 * 4096
            },
            IommuEvent::Unmap {
                iova: Iova(0x1000),
                len: 4096
            },
        ]
    );
    // The freed IOVA is reused first.
    let c = dma.allocate(1).unwrap();
    assert_eq!(c.iova(), a_iova);
    drop((b, c));
    assert!(iommu.mappings().is_empty());
    let stats = dma.stats();
    assert_eq!(
        (stats.live_regions, stats.mapped_bytes, stats.leaked_regions),
        (0, 0, 0)
    );
}

#[test]
fn dma_data_is_what_the_device_sees() {
    let dev = open(FakeDeviceConfig::igbvf_82576());
    let iommu = dev.access().fake_iommu();
    let r = dev.dma().allocate(8192).unwrap();
    r.write(4090, &[1, 2, 3, 4, 5, 6, 7, 8]);
    let mut seen = [0u8; 8];
    iommu
        .device_read(Iova(r.iova().0 + 4090), &mut seen)
        .unwrap();
    assert_eq!(seen, [1, 2, 3, 4, 5, 6, 7, 8]);
    iommu
        .device_write(Iova(r.iova().0 + 16), &0xCAFE_F00Du32.to_le_bytes())
        .unwrap();
    assert_eq!(r.read_u32(16), 0xCAFE_F00D);
    let end = Iova(r.iova().0 + 8192);
    drop(r);
    assert!(
        iommu.device_read(Iova(end.0 - 8192), &mut seen).is_err(),
        "unmapped after drop"
    );
}

#[test]
fn out_of_range_region_accesses_are_clamped_and_counted() {
    let dev = open(FakeDeviceConfig::igbvf_82576());
    let dma = dev.dma();
    let r = dma.allocate(4096).unwrap();
    r.write(4094, &[0xAA, 0xBB, 0xCC, 0xDD]);
    let mut buf = [0xFFu8; 4];
    r.read(4094, &mut buf);
    assert_eq!(buf, [0xAA, 0xBB, 0, 0]);
    r.read(usize::MAX, &mut buf);
    assert_eq!(buf, [0; 4]);
    r.write(usize::MAX - 1, &[1, 2, 3]);
    r.read(4096, &mut []);
    assert_eq!(dma.stats().clamped_accesses, 4);
}

#[test]
fn failed_map_frees_the_iova_and_reports_the_memlock_hint() {
    let dev = open(FakeDeviceConfig::igbvf_82576());
    let dma = dev.dma();
    let iommu = dev.access().fake_iommu();
    iommu.fail_next_map(libc::ENOMEM);
    match dma.allocate(4096) {
        Err(DmaError::Map { iova, len, reason }) => {
            assert_eq!((iova, len), (Iova(0x1000), 4096));
            assert!(reason.contains("ulimit -l"), "{reason}");
        }
        other => panic!("expected a map error, got {other:?}"),
    }
    assert_eq!(dma.stats().live_regions, 0);
    assert_eq!(dma.allocate(4096).unwrap().iova(), Iova(0x1000));
}

#[test]
fn failed_unmap_leaks_instead_of_reusing() {
    let dev = open(FakeDeviceConfig::igbvf_82576());
    let dma = dev.dma();
    let iommu = dev.access().fake_iommu();
    let r = dma.allocate(4096).unwrap();
    let iova = r.iova();
    iommu.fail_next_unmap(libc::EIO);
    drop(r);
    let stats = dma.stats();
    assert_eq!(
        (stats.leaked_regions, stats.live_regions, stats.mapped_bytes),
        (1, 1, 0)
    );
    assert_eq!(iommu.mappings(), vec![(iova, 4096)]);
    assert_ne!(
        dma.allocate(4096).unwrap().iova(),
        iova,
        "a leaked IOVA is never reused"
    );
}

#[test]
fn dma_errors_zero_host_exhaustion_and_mapping_limit() {
    let config = FakeDeviceConfig {
        iova_ranges: vec![0..0x5000],
        max_mappings: Some(3),
        ..FakeDeviceConfig::igbvf_82576()
    };
    let dev = open(config);
    let dma = dev.dma();
    assert!(matches!(dma.allocate(0), Err(DmaError::ZeroLength)));
    assert!(matches!(
        dma.allocate(usize::MAX),
        Err(DmaError::Host { .. })
    ));
    assert!(matches!(
        dma.allocate(0x5000),
        Err(DmaError::IovaExhausted(0x5000))
    ));
    let keep: Vec<_> = (0..3).map(|_| dma.allocate(1).unwrap()).collect();
    match dma.allocate(1) {
        Err(DmaError::Map { reason, .. }) => assert!(reason.contains("dma_entry_limit")),
        other => panic!("expected the mapping limit, got {other:?}"),
    }
    drop(keep);
    let r = dma.allocate(0x4000).unwrap();
    assert_eq!(r.iova(), Iova(0x1000));
    assert!(matches!(
        dma.allocate(1),
        Err(DmaError::IovaExhausted(4096))
    ));
}

#[test]
fn an_iommu_without_usable_iova_space_is_refused() {
    let config = FakeDeviceConfig {
        iova_ranges: vec![0..0x1000],
        ..Default::default()
    };
    let err = VfioDevice::from_access(bdf(), FakeDevice::new(config)).unwrap_err();
    assert!(matches!(
        err,
        VfioError::Iova(IovaError::NoUsableWindow { .. })
    ));
}

#[test]
fn dma_regions_outlive_the_device() {
    let dev = open(FakeDeviceConfig::igbvf_82576());
    let iommu = dev.access().fake_iommu();
    let dma = dev.dma();
    let r = dma.allocate(4096).unwrap();
    drop(dev);
    r.write_u32(0, 5);
    assert_eq!(r.read_u32(0), 5);
    drop(r);
    assert!(iommu.mappings().is_empty());
}

#[test]
fn msix_vectors_fire_and_wait_times_out() {
    let dev = open(FakeDeviceConfig::igbvf_82576());
    assert_eq!(dev.msix_vectors(), 3);
    let irqs = dev.enable_msix(3).unwrap();
    assert_eq!(irqs.len(), 3);
    assert_eq!(dev.access().msix_enabled_vectors(), 3);
    assert!(irqs.fd(2).is_some() && irqs.fd(3).is_none());

    let start = Instant::now();
    assert!(irqs.wait(Duration::from_millis(15)).unwrap().is_empty());
    assert!(start.elapsed() >= Duration::from_millis(15));

    assert!(dev.access().fire_msix(1).unwrap());
    assert!(dev.access().fire_msix(2).unwrap());
    assert!(dev.access().fire_msix(2).unwrap());
    assert!(!dev.access().fire_msix(3).unwrap());
    let fired = irqs.wait(Duration::from_secs(5)).unwrap();
    assert_eq!(fired.iter().collect::<Vec<_>>(), vec![1, 2]);
    assert!(fired.contains(1) && !fired.contains(0) && !fired.contains(64));
    assert_eq!(fired.bits(), 0b110);
    assert!(irqs.poll().unwrap().is_empty(), "counts were consumed");

    // A waiter on another thread is woken.
    let device = dev.access().clone();
    let t = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(10));
        device.fire_msix(0).unwrap();
    });
    let fired = irqs.wait(Duration::from_secs(5)).unwrap();
    t.join().unwrap();
    assert!(fired.contains(0));
}

#[test]
fn msix_count_and_exclusivity_are_enforced_and_drop_disables() {
    let dev = open(FakeDeviceConfig::igbvf_82576());
    assert!(matches!(
        dev.enable_msix(0),
        Err(VfioError::InvalidVectorCount {
            requested: 0,
            max: 3
        })
    ));
    assert!(matches!(
        dev.enable_msix(4),
        Err(VfioError::InvalidVectorCount {
            requested: 4,
            max: 3
        })
    ));
    let irqs = dev.enable_msix(2).unwrap();
    assert!(matches!(
        dev.enable_msix(1),
        Err(VfioError::MsixAlreadyEnabled)
    ));
    drop(irqs);
    assert_eq!(dev.access().msix_enabled_vectors(), 0);
    assert_eq!(
        dev.access().events().last(),
        Some(&DeviceEvent::MsixDisabled)
    );
    let irqs = dev.enable_msix(1).unwrap();
    irqs.disable().unwrap();
    assert!(dev.enable_msix(3).is_ok());
}

#[test]
fn reset_reenables_bus_mastering() {
    let dev = open(FakeDeviceConfig::igbvf_82576());
    dev.reset().unwrap();
    assert_eq!(dev.access().resets(), 1);
    assert_eq!(
        dev.command().unwrap() & command::BUS_MASTER,
        command::BUS_MASTER
    );
    assert!(dev.access().events().contains(&DeviceEvent::Reset));
}

#[test]
fn host_probe_on_a_missing_device() {
    let paths = HostPaths {
        sysfs: PathBuf::from("/nonexistent-sysfs"),
        dev: PathBuf::from("/nonexistent-dev"),
    };
    let err = paths.probe(&bdf(), false).unwrap_err();
    assert!(matches!(err, VfioError::DeviceNotFound { .. }));
    assert!(err.to_string().contains("0000:01:10.0"));
    assert!(paths.group_blockers(1).is_empty());
}

#[test]
fn open_failures_are_classified() {
    let paths = HostPaths::default();
    let probe = HostProbe {
        group: 7,
        group_node: PathBuf::from("/dev/vfio/7"),
        driver: "vfio-pci".into(),
        role: SriovRole::Vf {
            pf: "0000:01:00.0".into(),
            pf_driver: Some("vfio-pci".into()),
        },
    };
    let fail = |step, errno| OpenFailure {
        step,
        source: io::Error::from_raw_os_error(errno),
    };
    let classify = |step, errno, token| paths.classify(&bdf(), &probe, token, fail(step, errno));
    assert!(matches!(
        classify(OpenStep::OpenGroup, libc::EBUSY, false),
        VfioError::GroupBusy { group: 7, .. }
    ));
    assert!(matches!(
        classify(OpenStep::PciDriver, libc::EBUSY, false),
        VfioError::GroupBusy { .. }
    ));
    assert!(matches!(
        classify(OpenStep::OpenGroup, libc::EACCES, false),
        VfioError::PermissionDenied { .. }
    ));
    assert!(matches!(
        classify(OpenStep::OpenContainer, libc::ENOENT, false),
        VfioError::VfioNodeMissing { .. }
    ));
    assert!(matches!(
        classify(OpenStep::GetDeviceFd, libc::EACCES, true),
        VfioError::VfTokenRejected { .. }
    ));
    match classify(OpenStep::GetDeviceFd, libc::EACCES, false) {
        VfioError::VfTokenRequired { reason, .. } => assert!(reason.contains("0000:01:00.0")),
        other => panic!("{other:?}"),
    }
    let pf_probe = HostProbe {
        role: SriovRole::Pf,
        ..probe.clone()
    };
    let failure = fail(OpenStep::PciDriver, libc::EACCES);
    match paths.classify(&bdf(), &pf_probe, false, failure) {
        VfioError::VfTokenRequired { reason, .. } => assert!(reason.contains("/dev/vfio/7")),
        other => panic!("{other:?}"),
    }
    assert!(matches!(
        classify(OpenStep::GetDeviceFd, libc::EINVAL, true),
        VfioError::VfTokenUnexpected { .. }
    ));
    assert!(matches!(
        classify(OpenStep::GroupNotViable, libc::EINVAL, false),
        VfioError::GroupNotViable { group: 7, .. }
    ));
    let not_viable = OpenFailure {
        step: OpenStep::PciDriver,
        source: io::Error::other("Group is not viable; are all devices ..."),
    };
    assert!(matches!(
        paths.classify(&bdf(), &probe, false, not_viable),
        VfioError::GroupNotViable { .. }
    ));
    match classify(OpenStep::SetIommu, libc::ENODEV, false) {
        VfioError::Open { step, .. } => assert_eq!(step, "VFIO_SET_IOMMU"),
        other => panic!("{other:?}"),
    }
}
