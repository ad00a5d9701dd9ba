//! The PF-side rate limit and priority requests (issue 20) in any order, mixed with VF resets,
//! traffic and time. Oracle beyond "no panic": every request gets its defined answer (Ok, or
//! NoSuchVf for a VF the agent does not manage, RateAboveLink above the link), the rates read
//! back through RTTDQSEL/RTTBCNRC always match a reference model (a VF reset keeps the PF's
//! limit), and at the end each limited VF, kept busy, never exceeds its rate on the wire (plus
//! the MMW credit and one frame).
#![no_main]

use bytes::Bytes;
use hac_driver::DriverError;
use hac_driver::model::Model;
use hac_driver::vf::VfConfig;
use igb_model::igb_hw::rate::{LINUX_RTTBCNRM, MMW_UNIT_BYTES};
use igb_model::igb_hw::regs::VfReg;
use igb_model::igb_hw::{MacAddress, VfIndex};
use igb_model::{LineRate, NicConfig};
use libfuzzer_sys::fuzz_target;

const VFS: usize = 3;
const LINK: u32 = 1000;

fn mac(n: usize) -> MacAddress {
    MacAddress([2, 0, 0, 0, 7, n as u8])
}

fuzz_target!(|data: &[u8]| {
    let model = Model::new(NicConfig {
        capture_wire: true,
        line_rate: LineRate::G1,
        ..NicConfig::default()
    });
    let macs: Vec<_> = (0..VFS).map(|n| Some(mac(n))).collect();
    let Ok((pf, mut vfs)) = model.start_vfs(&macs, VfConfig::default()) else {
        return;
    };
    let peer = MacAddress([2, 0xAA, 0, 0, 0, 1]);
    let mut reference = [0u32; VFS];
    for op in data.chunks_exact(4) {
        let vf_n = usize::from(op[1] % 8);
        let Some(vf) = VfIndex::new(vf_n.min(7)) else {
            continue;
        };
        let arg = u16::from_le_bytes([op[2], op[3]]);
        match op[0] % 5 {
            0 => {
                let rate = u32::from(arg % 1200);
                let got = pf.lock().map(|mut a| a.set_vf_rate(vf, rate));
                let Ok(got) = got else { return };
                match got {
                    Ok(()) => {
                        assert!(vf_n < VFS && rate <= LINK, "accepted vf {vf_n} rate {rate}");
                        reference[vf_n] = rate;
                    }
                    Err(DriverError::NoSuchVf(n)) => assert!(vf_n >= VFS && n.get() == vf_n),
                    Err(DriverError::RateAboveLink { rate_mbps, .. }) => {
                        assert!(vf_n < VFS && rate > LINK && rate_mbps == rate)
                    }
                    Err(e) => panic!("unexpected answer {e:?}"),
                }
            }
            1 => {
                let Ok(mut a) = pf.lock() else { return };
                let r = a.set_vf_priority(vf, arg & 1 == 1);
                assert_eq!(r.is_ok(), vf_n < VFS, "{r:?}");
            }
            2 if vf_n < VFS => {
                // The VF resets itself (VF CTRL.RST), racing the PF's requests.
                model.nic().vf_write(vf, VfReg::CTRL, 1 << 26);
            }
            3 if vf_n < VFS => {
                let frames: Vec<Bytes> = (0..(arg % 8))
                    .map(|s| {
                        let mut f = igb_model::igb_hw::frame::build(peer, mac(vf_n), 0x88B5, &[]);
                        f.resize(60 + usize::from(s) * 100, s as u8);
                        Bytes::from(f)
                    })
                    .collect();
                // A reset VF refuses until its driver resets again; either answer is fine.
                if vfs[vf_n].send(&frames).is_err() {
                    let _ = vfs[vf_n].reset();
                }
            }
            _ => model.run_for(u64::from(arg) * 100),
        }
        // Readback through the PF's registers matches the reference after every step.
        let Ok(mut a) = pf.lock() else { return };
        for (n, &want) in reference.iter().enumerate() {
            let Some(v) = VfIndex::new(n) else { continue };
            let back = a.vf_rate(v).unwrap_or_else(|e| panic!("vf {n}: {e}"));
            match (want, back) {
                (0, None) => {}
                (w, Some(b)) if b <= w && w - b <= 1 + w / 4096 => {}
                _ => panic!("vf {n}: reference {want} Mb/s, adapter says {back:?}"),
            }
        }
    }
    // Rate never exceeded: drain, bring every VF back, then keep them busy for 5 ms (the
    // resets take virtual time, so they all happen first and the window is measured).
    model.run_for(200_000_000);
    for vf in vfs.iter_mut() {
        let _ = vf.reset();
    }
    model.run_for(10_000_000);
    let _ = model.nic().take_wire_capture();
    let t0 = model.nic().now().as_nanos();
    for (n, vf) in vfs.iter_mut().enumerate() {
        let frames: Vec<Bytes> = (0..200u32)
            .map(|s| {
                let mut f = igb_model::igb_hw::frame::build(peer, mac(n), 0x88B5, &s.to_be_bytes());
                f.resize(1000, 0);
                Bytes::from(f)
            })
            .collect();
        let _ = vf.send(&frames);
    }
    model.run_for(5_000_000);
    let window_ns = model.nic().now().as_nanos() - t0;
    let wire = model.nic().take_wire_capture();
    for (n, &rate) in reference.iter().enumerate() {
        if rate == 0 {
            continue;
        }
        let sent: u64 = wire
            .iter()
            .filter(|w| w.data.get(6..12) == Some(&mac(n).0[..]))
            .map(|w| w.data.len() as u64 + 24)
            .sum();
        let allowed = u64::from(rate) * window_ns / 8_000
            + u64::from(LINUX_RTTBCNRM) * MMW_UNIT_BYTES
            + 2 * 1024;
        assert!(
            sent <= allowed,
            "vf {n} at {rate} Mb/s sent {sent} B in {window_ns} ns (allowed {allowed})"
        );
    }
});
