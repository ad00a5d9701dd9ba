//! Hardware-free tests of the VFIO backend's public logic: addresses, host checks, DMA, IOVAs.
//!
//! Host checks run against throw-away sysfs and /dev trees built in the temporary directory;
//! the DMA allocator and the device run on the in-memory twins of `hac_driver::vfio::testing`;
//! the IOVA allocator is checked with property tests.

// Helpers outside #[test] functions build fixtures: a failure there is a test failure.
#![allow(clippy::unwrap_used, clippy::panic)]
// One-window IOMMUs are the common case.
#![allow(clippy::single_range_in_vec_init)]

use std::fs;
use std::ops::Range;
use std::os::unix::fs::symlink;
use std::path::{Path, PathBuf};

use hac_driver::backend::{Bar, DmaAllocator, DmaError, DmaRegion, RegisterIo};
use hac_driver::iova::{IovaAllocator, IovaError, IovaRange};
use hac_driver::vfio::testing::{FakeDevice, FakeDeviceConfig, IommuEvent};
use hac_driver::vfio::{Bdf, HostPaths, SriovRole, VfioDevice, VfioError};
use igb_hw::regs::VfReg;
use igb_hw::{Iova, RegisterOffset};
use proptest::prelude::*;

// ---------------------------------------------------------------------------------------------
// Addresses and opening.
// ---------------------------------------------------------------------------------------------

#[test]
fn open_refuses_malformed_addresses_naming_them() {
    for bad in [
        "",
        "0000:01:10",
        "01:10:0",
        "0000:01:32.0",
        "0000:01:10.9",
        "zz:01:10.0",
        "0000:01:10.0 ",
    ] {
        match VfioDevice::open(bad, None) {
            Err(VfioError::InvalidBdf(e)) => {
                assert_eq!(e.input, bad);
                assert!(e.to_string().contains(&format!("{bad:?}")), "{e}");
            }
            other => panic!("{bad:?}: expected InvalidBdf, got {other:?}"),
        }
    }
}

#[test]
fn open_refuses_malformed_vf_tokens_without_echoing_them() {
    let token = "not-a-uuid-but-a-secret";
    match VfioDevice::open("0000:01:10.0", Some(token)) {
        Err(e @ VfioError::InvalidVfToken { .. }) => assert!(!e.to_string().contains(token)),
        other => panic!("expected InvalidVfToken, got {other:?}"),
    }
}

#[test]
fn opening_a_nonexistent_device_is_a_typed_error() {
    // Bus 0xff, device 0x1f, function 7 does not exist on any test machine.
    match VfioDevice::open("ffff:ff:1f.7", None) {
        Err(VfioError::DeviceNotFound { bdf, path }) => {
            assert_eq!(bdf.to_string(), "ffff:ff:1f.7");
            assert_eq!(path, Path::new("/sys/bus/pci/devices/ffff:ff:1f.7"));
        }
        other => panic!("expected DeviceNotFound, got {other:?}"),
    }
}

/// Whatever PCI devices this machine has, opening one that is not set up for VFIO must give a
/// host-setup error (never a panic, never a generic one).
#[test]
fn opening_real_devices_not_set_up_for_vfio_gives_setup_errors() {
    let Ok(entries) = fs::read_dir("/sys/bus/pci/devices") else {
        return;
    };
    for entry in entries.flatten() {
        let name = entry.file_name().to_string_lossy().into_owned();
        let driver = fs::read_link(entry.path().join("driver")).ok();
        if driver.is_some_and(|d| d.ends_with("vfio-pci")) {
            continue; // might really open: not this test's business
        }
        match VfioDevice::open(&name, None) {
            Err(
                VfioError::NoIommuGroup { .. }
                | VfioError::NotBoundToVfio { .. }
                | VfioError::DeviceNotFound { .. },
            ) => {}
            other => panic!("{name}: expected a host-setup error, got {other:?}"),
        }
    }
}

#[test]
fn bdf_parsing_accepts_short_and_mixed_case_forms() {
    let b: Bdf = "01:10.0".parse().unwrap();
    assert_eq!(b.to_string(), "0000:01:10.0");
    assert_eq!(
        "0000:0A:1f.7".parse::<Bdf>().unwrap().to_string(),
        "0000:0a:1f.7"
    );
    assert_eq!(Bdf::new(0, 1, 0x10, 1).unwrap().to_string(), "0000:01:10.1");
}

// ---------------------------------------------------------------------------------------------
// Host checks on a fake sysfs.
// ---------------------------------------------------------------------------------------------

/// A throw-away `sys` + `dev` tree, removed on drop.
struct FakeHost {
    root: PathBuf,
    paths: HostPaths,
}

impl FakeHost {
    fn new(name: &str) -> FakeHost {
        let root = std::env::temp_dir().join(format!("vfio-logic-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&root);
        let paths = HostPaths {
            sysfs: root.join("sys"),
            dev: root.join("dev"),
        };
        fs::create_dir_all(paths.sysfs.join("bus/pci/devices")).unwrap();
        fs::create_dir_all(paths.sysfs.join("bus/pci/drivers")).unwrap();
        fs::create_dir_all(paths.dev.join("vfio")).unwrap();
        FakeHost { root, paths }
    }

    fn device_dir(&self, bdf: &str) -> PathBuf {
        self.paths.sysfs.join("bus/pci/devices").join(bdf)
    }

    /// Adds a device in `group` (if any) bound to `driver` (if any).
    fn device(&self, bdf: &str, group: Option<u32>, driver: Option<&str>) -> &FakeHost {
        let dir = self.device_dir(bdf);
        fs::create_dir_all(&dir).unwrap();
        if let Some(g) = group {
            let gdir = self
                .paths
                .sysfs
                .join("kernel/iommu_groups")
                .join(g.to_string());
            fs::create_dir_all(gdir.join("devices")).unwrap();
            symlink(&gdir, dir.join("iommu_group")).unwrap();
            symlink(&dir, gdir.join("devices").join(bdf)).unwrap();
        }
        if let Some(d) = driver {
            let ddir = self.paths.sysfs.join("bus/pci/drivers").join(d);
            fs::create_dir_all(&ddir).unwrap();
            symlink(&ddir, dir.join("driver")).unwrap();
        }
        self
    }

    fn vf_of(&self, vf: &str, pf: &str) -> &FakeHost {
        symlink(self.device_dir(pf), self.device_dir(vf).join("physfn")).unwrap();
        self
    }

    fn sriov_pf(&self, pf: &str) -> &FakeHost {
        fs::write(self.device_dir(pf).join("sriov_totalvfs"), "7\n").unwrap();
        self
    }

    fn node(&self, name: &str) -> &FakeHost {
        fs::write(self.paths.dev.join("vfio").join(name), "").unwrap();
        self
    }
}

impl Drop for FakeHost {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.root);
    }
}

const VF: &str = "0000:01:10.0";
const PF: &str = "0000:01:00.0";
const TOKEN_GIVEN: bool = true;

fn vf() -> Bdf {
    VF.parse().unwrap()
}

#[test]
fn probe_finds_a_vf_ready_for_vfio() {
    let host = FakeHost::new("ready");
    host.device(PF, Some(3), Some("igb")).sriov_pf(PF);
    host.device(VF, Some(12), Some("vfio-pci"))
        .vf_of(VF, PF)
        .node("12");
    let probe = host.paths.probe(&vf(), false).unwrap();
    assert_eq!(probe.group, 12);
    assert_eq!(probe.group_node, host.paths.dev.join("vfio/12"));
    assert_eq!(probe.driver, "vfio-pci");
    assert_eq!(
        probe.role,
        SriovRole::Vf {
            pf: PF.to_owned(),
            pf_driver: Some("igb".to_owned())
        }
    );
}

#[test]
fn probe_reports_a_missing_iommu_before_the_driver() {
    let host = FakeHost::new("noiommu-group");
    host.device(VF, None, None);
    let err = host.paths.probe(&vf(), false).unwrap_err();
    assert!(matches!(err, VfioError::NoIommuGroup { .. }), "{err:?}");
    assert!(err.to_string().contains("intel_iommu=on"));
}

#[test]
fn probe_tells_how_to_bind_vfio_pci() {
    let host = FakeHost::new("igbvf");
    host.device(VF, Some(12), Some("igbvf"));
    let err = host.paths.probe(&vf(), false).unwrap_err();
    match &err {
        VfioError::NotBoundToVfio { driver, .. } => assert_eq!(driver.as_deref(), Some("igbvf")),
        other => panic!("{other:?}"),
    }
    let msg = err.to_string();
    assert!(msg.contains("bound to igbvf"), "{msg}");
    assert!(msg.contains("driver_override"), "{msg}");
    assert!(msg.contains(VF), "{msg}");

    let host = FakeHost::new("unbound");
    host.device(VF, Some(12), None);
    let err = host.paths.probe(&vf(), false).unwrap_err();
    assert!(matches!(
        err,
        VfioError::NotBoundToVfio { driver: None, .. }
    ));
    assert!(err.to_string().contains("bound to no driver"));
}

#[test]
fn probe_accepts_vendor_vfio_variants() {
    let host = FakeHost::new("variant");
    host.device(VF, Some(4), Some("mlx5_vfio_pci")).node("4");
    assert_eq!(
        host.paths.probe(&vf(), false).unwrap().driver,
        "mlx5_vfio_pci"
    );
}

#[test]
fn probe_reports_missing_nodes_and_noiommu_mode() {
    let host = FakeHost::new("nonode");
    host.device(VF, Some(12), Some("vfio-pci"));
    let err = host.paths.probe(&vf(), false).unwrap_err();
    match err {
        VfioError::VfioNodeMissing { path } => assert_eq!(path, host.paths.dev.join("vfio/12")),
        other => panic!("{other:?}"),
    }
    host.node("noiommu-12");
    let err = host.paths.probe(&vf(), false).unwrap_err();
    assert!(
        matches!(err, VfioError::NoIommuModeUnsupported { group: 12, .. }),
        "{err:?}"
    );
}

#[test]
fn probe_checks_vf_tokens_against_the_pf_driver() {
    // PF bound to vfio-pci: the VF needs a token.
    let host = FakeHost::new("pf-vfio");
    host.device(PF, Some(3), Some("vfio-pci"))
        .sriov_pf(PF)
        .node("3");
    host.device(VF, Some(12), Some("vfio-pci"))
        .vf_of(VF, PF)
        .node("12");
    match host.paths.probe(&vf(), false).unwrap_err() {
        e @ VfioError::VfTokenRequired { .. } => {
            let msg = e.to_string();
            assert!(msg.contains(PF) && msg.contains("VF token"), "{msg}");
        }
        other => panic!("{other:?}"),
    }
    assert!(host.paths.probe(&vf(), TOKEN_GIVEN).is_ok());
    // The PF itself may be given a token (it sets it) or not.
    let pf: Bdf = PF.parse().unwrap();
    assert_eq!(
        host.paths.probe(&pf, TOKEN_GIVEN).unwrap().role,
        SriovRole::Pf
    );
    assert!(host.paths.probe(&pf, false).is_ok());

    // PF bound to the kernel igb driver: a token would be refused by the kernel.
    let host = FakeHost::new("pf-igb");
    host.device(PF, Some(3), Some("igb")).sriov_pf(PF);
    host.device(VF, Some(12), Some("vfio-pci"))
        .vf_of(VF, PF)
        .node("12");
    let err = host.paths.probe(&vf(), TOKEN_GIVEN).unwrap_err();
    assert!(
        matches!(err, VfioError::VfTokenUnexpected { .. }),
        "{err:?}"
    );
    assert!(err.to_string().contains("bound to igb"));

    // Not an SR-IOV function at all.
    let host = FakeHost::new("plain");
    host.device(VF, Some(12), Some("vfio-pci")).node("12");
    let err = host.paths.probe(&vf(), TOKEN_GIVEN).unwrap_err();
    assert!(
        matches!(err, VfioError::VfTokenUnexpected { .. }),
        "{err:?}"
    );
}

#[test]
fn group_blockers_name_devices_bound_to_host_drivers() {
    let host = FakeHost::new("blockers");
    host.device(VF, Some(12), Some("vfio-pci"));
    host.device("0000:01:10.2", Some(12), Some("igbvf"));
    host.device("0000:00:1c.0", Some(12), Some("pcieport"));
    host.device("0000:01:10.4", Some(12), Some("pci-stub"));
    host.device("0000:01:10.6", Some(12), None);
    assert_eq!(
        host.paths.group_blockers(12),
        vec!["0000:01:10.2 (igbvf)".to_owned()]
    );
    assert!(host.paths.group_blockers(99).is_empty());
}

// ---------------------------------------------------------------------------------------------
// The device and DMA on the in-memory twins.
// ---------------------------------------------------------------------------------------------

#[test]
fn the_driver_traits_work_over_a_fake_vf() {
    let dev = VfioDevice::from_access(vf(), FakeDevice::igbvf()).unwrap();
    assert!(dev.ids().unwrap().is_igb_vf());
    dev.access().bar(0).unwrap().poke(0x0008, 0x0000_0083);
    let bar: Bar<_, VfReg> = Bar::new(dev.bar0().unwrap());
    assert_eq!(bar.get(VfReg::STATUS), 0x83);
    // A bad offset through the raw access: all ones, counted, no panic.
    assert_eq!(bar.io().read32(RegisterOffset(0x4000)), 0xFFFF_FFFF);
    assert_eq!(bar.io().bad_reads(), 1);

    let dma = dev.dma();
    let ring = dma.allocate(256 * 16).unwrap();
    assert_eq!(ring.len(), 4096);
    ring.write_u32(12, 0x0000_0001);
    let mut desc = [0u8; 16];
    dev.access()
        .fake_iommu()
        .device_read(ring.iova(), &mut desc)
        .unwrap();
    assert_eq!(desc[12], 1);
}

#[test]
fn dma_map_unmap_log_matches_region_lifetimes() {
    let dev = VfioDevice::from_access(vf(), FakeDevice::igbvf()).unwrap();
    let dma = dev.dma();
    let iommu = dev.access().fake_iommu();
    let regions: Vec<_> = (1..=4)
        .map(|pages| dma.allocate(pages * 4096).unwrap())
        .collect();
    let spans: Vec<(u64, u64)> = regions
        .iter()
        .map(|r| (r.iova().0, r.len() as u64))
        .collect();
    for w in spans.windows(2) {
        assert!(w[0].0 + w[0].1 <= w[1].0, "regions overlap: {spans:x?}");
    }
    drop(regions);
    let events = iommu.events();
    assert_eq!(events.len(), 8);
    for (i, &(iova, len)) in spans.iter().enumerate() {
        assert_eq!(
            events[i],
            IommuEvent::Map {
                iova: Iova(iova),
                len
            }
        );
        assert_eq!(
            events[4 + i],
            IommuEvent::Unmap {
                iova: Iova(iova),
                len
            }
        );
    }
    assert!(iommu.mappings().is_empty());
    assert_eq!(dma.stats().live_regions, 0);
}

#[test]
fn dma_exhaustion_is_reported_as_such() {
    let config = FakeDeviceConfig {
        iova_ranges: vec![0x10_0000..0x10_4000],
        ..Default::default()
    };
    let dev = VfioDevice::from_access(vf(), FakeDevice::new(config)).unwrap();
    let dma = dev.dma();
    let all = dma.allocate(0x4000).unwrap();
    assert!(matches!(
        dma.allocate(1),
        Err(DmaError::IovaExhausted(0x1000))
    ));
    drop(all);
    assert!(dma.allocate(0x4000).is_ok());
}

// ---------------------------------------------------------------------------------------------
// IOVA allocator properties.
// ---------------------------------------------------------------------------------------------

const PAGE: u64 = 0x1000;

#[derive(Clone, Debug)]
enum Op {
    Alloc(u64),
    AllocAligned(u64, u32),
    Free(usize),
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        4 => (1u64..0x2_0000).prop_map(Op::Alloc),
        1 => (1u64..0x8000, 12u32..22).prop_map(|(len, shift)| Op::AllocAligned(len, shift)),
        3 => any::<usize>().prop_map(Op::Free),
    ]
}

/// Up to four disjoint windows, some touching, below 2^40, any alignment.
fn windows() -> impl Strategy<Value = Vec<Range<u64>>> {
    prop::collection::vec((0u64..1 << 20, 1u64..0x40_0000), 1..5).prop_map(|pieces| {
        let mut start = 0u64;
        pieces
            .into_iter()
            .map(|(gap, len)| {
                let s = start + gap;
                start = s + len;
                s..s + len
            })
            .collect()
    })
}

/// The input windows with touching ones merged (they form one valid span).
fn merged(windows: &[Range<u64>]) -> Vec<Range<u64>> {
    let mut sorted = windows.to_vec();
    sorted.sort_by_key(|w| w.start);
    let mut out: Vec<Range<u64>> = Vec::new();
    for w in sorted {
        match out.last_mut() {
            Some(last) if last.end == w.start => last.end = w.end,
            _ => out.push(w),
        }
    }
    out
}

fn check_invariants(a: &IovaAllocator, windows: &[Range<u64>], live: &[IovaRange]) {
    let valid = merged(windows);
    let mut sorted = live.to_vec();
    sorted.sort();
    for r in &sorted {
        assert!(
            !r.is_empty() && r.start().0 % PAGE == 0 && r.len() % PAGE == 0,
            "{r}"
        );
        assert!(r.start().0 >= PAGE, "page 0 handed out: {r}");
        assert!(
            valid
                .iter()
                .any(|w| w.start <= r.start().0 && r.end() <= w.end),
            "{r} is outside every valid window {windows:x?}"
        );
    }
    for pair in sorted.windows(2) {
        assert!(
            !pair[0].overlaps(&pair[1]),
            "{} overlaps {}",
            pair[0],
            pair[1]
        );
    }
    assert_eq!(a.allocation_count(), live.len());
    assert_eq!(
        a.allocated_bytes(),
        live.iter().map(IovaRange::len).sum::<u64>()
    );
    let total: u64 = a.windows().iter().map(|w| w.end - w.start).sum();
    assert_eq!(a.free_bytes() + a.allocated_bytes(), total);
    let free: Vec<Range<u64>> = a.free_ranges().collect();
    for pair in free.windows(2) {
        assert!(
            pair[0].end < pair[1].start,
            "free ranges not coalesced: {free:x?}"
        );
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 256, ..ProptestConfig::default() })]

    /// Any sequence of allocations and frees keeps ranges aligned, inside the windows,
    /// disjoint and accounted; freeing everything restores the initial free space exactly.
    #[test]
    fn allocator_invariants_hold(windows in windows(), ops in prop::collection::vec(op(), 1..200)) {
        let Ok(mut a) = IovaAllocator::new(&windows, PAGE) else {
            // Only windows with no whole page besides page 0 may be refused.
            let no_whole_page = windows.iter().all(|w| {
                let start = w.start.max(1).div_ceil(PAGE) * PAGE;
                start + PAGE > w.end
            });
            prop_assert!(no_whole_page);
            return Ok(());
        };
        let initial: Vec<Range<u64>> = a.free_ranges().collect();
        let mut live: Vec<IovaRange> = Vec::new();
        for op in ops {
            match op {
                Op::Alloc(len) => match a.allocate(len) {
                    Ok(r) => {
                        prop_assert!(r.len() >= len && r.len() - len < PAGE);
                        live.push(r);
                    }
                    Err(IovaError::Exhausted { largest_free, .. }) => {
                        prop_assert!(largest_free < len.div_ceil(PAGE) * PAGE);
                    }
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                },
                Op::AllocAligned(len, shift) => match a.allocate_aligned(len, 1 << shift) {
                    Ok(r) => {
                        prop_assert_eq!(r.start().0 % (1 << shift), 0);
                        live.push(r);
                    }
                    Err(IovaError::Exhausted { .. }) => {}
                    Err(e) => prop_assert!(false, "unexpected {e}"),
                },
                Op::Free(i) => {
                    if !live.is_empty() {
                        let r = live.swap_remove(i % live.len());
                        prop_assert_eq!(a.free(r.start()), Ok(r));
                        prop_assert_eq!(a.free(r.start()), Err(IovaError::NotAllocated(r.start())));
                    }
                }
            }
            check_invariants(&a, &windows, &live);
        }
        for r in live.drain(..) {
            prop_assert!(a.free(r.start()).is_ok());
        }
        prop_assert_eq!(a.free_ranges().collect::<Vec<_>>(), initial);
    }

    /// First fit: an allocation that succeeds starts at the lowest address where it fits.
    #[test]
    fn allocation_is_first_fit(lens in prop::collection::vec(1u64..0x4000, 1..40), frees in prop::collection::vec(any::<bool>(), 40), len in 1u64..0x8000) {
        let mut a = IovaAllocator::new(&[0..0x100_0000], PAGE).unwrap();
        let ranges: Vec<IovaRange> = lens.iter().map(|&l| a.allocate(l).unwrap()).collect();
        for (r, free) in ranges.iter().zip(frees) {
            if free {
                a.free(r.start()).unwrap();
            }
        }
        let size = len.div_ceil(PAGE) * PAGE;
        let expected = a.free_ranges().find(|f| f.end - f.start >= size).map(|f| f.start);
        let got = a.allocate(len).ok().map(|r| r.start().0);
        prop_assert_eq!(got, expected);
    }

    /// Arbitrary lengths and alignments near the top of the address space never panic or
    /// overflow; they succeed inside the window or fail with a typed error.
    #[test]
    fn extreme_lengths_and_alignments_never_panic(len in any::<u64>(), shift in 0u32..64, top in 0u64..0x10_0000) {
        let start = u64::MAX - 0x100_0000 - top;
        let mut a = IovaAllocator::new(&[start..u64::MAX], PAGE).unwrap();
        match a.allocate_aligned(len, 1 << shift) {
            Ok(r) => {
                prop_assert!(r.start().0 >= start && r.end() < u64::MAX);
                prop_assert!(r.len() >= len);
            }
            Err(IovaError::ZeroLength) => prop_assert_eq!(len, 0),
            Err(IovaError::TooLarge { .. } | IovaError::Exhausted { .. }) => {}
            Err(e) => prop_assert!(false, "unexpected {e}"),
        }
    }
}
