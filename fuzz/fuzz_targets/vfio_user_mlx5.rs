//! A vfio-user client drives an exported mlx5 VF (the `hac serve --family mlx5` endpoint) with
//! arbitrary region accesses (config space and BAR0: init segment, command doorbells, MSI-X,
//! UAR doorbells; any size and alignment), interrupt settings and resets, through the
//! server's session. Nothing may panic; an access is refused exactly when it leaves its region
//! or is not 1, 2, 4 or 8 naturally aligned bytes of BAR0, and the endpoint counts each such
//! refusal; the VF can never change what the PF (the E-Switch manager) set (its permanent MAC)
//! nor touch the other VF or the PF's command queue.
#![no_main]

use std::os::fd::{AsFd, OwnedFd};

use hac_driver::mlx5::model::Mlx5Model;
use hac_utility::vfio_user::mlx5::{Mlx5IrqRoutes, Mlx5VfEndpoint, region};
use hac_vfio_user::wire::{Command, Header, Payload, flags};
use hac_vfio_user::{EventFd, Session};
use libfuzzer_sys::fuzz_target;
use hw_common::MacAddress;
use mlx5_model::{FunctionId, Mlx5Config};

const MAC0: MacAddress = MacAddress([0x02, 0x1B, 0x21, 0xC1, 0x00, 0x00]);
const BAR0_SIZE: u64 = 2 << 20;
const CONFIG_SIZE: u64 = 4096;

fn reply_ok(r: &[u8]) -> bool {
    let h = Header::parse(r).unwrap_or_else(|e| panic!("unparsable reply: {e:?}"));
    h.flags & flags::ERROR == 0
}

fuzz_target!(|data: &[u8]| {
    let model = Mlx5Model::new(Mlx5Config::default());
    model.enable_vfs(2);
    let Ok(mut pf) = model.device(FunctionId::Pf, hac_driver::mlx5::Mlx5Config::default())
    else {
        panic!("PF bring-up");
    };
    assert!(pf.set_vf_mac(0, MAC0).is_ok());
    let pf_cmdq = model.nic().cmdq_address(FunctionId::Pf);
    let vf1 = model.nic().function_state(FunctionId::Vf(1)).cloned();
    let ep = Mlx5VfEndpoint::new(model.clone(), 0, Mlx5IrqRoutes::new(), None);
    let mut s = Session::new("fuzz mlx5 VF 0", ep);
    let evs: Vec<EventFd> = (0..3).filter_map(|_| EventFd::new().ok()).collect();
    let mut refused = 0u64;
    for (i, op) in data.chunks_exact(14).enumerate() {
        let id = i as u16;
        let kind = op[0] % 8;
        let size = [1u32, 2, 4, 8, 3, 6, 16, 0][usize::from(op[1] % 8)];
        let raw = u64::from(u32::from_le_bytes([op[2], op[3], op[4], op[5]]));
        let value = &op[6..14];
        let (index, limit) = if op[1] & 0x80 != 0 {
            (region::CONFIG, CONFIG_SIZE)
        } else {
            (region::BAR0, BAR0_SIZE)
        };
        // Mostly inside the region, sometimes just past its end.
        let offset = raw % (limit + 16);
        let inside = offset + u64::from(size) <= limit;
        let natural = matches!(size, 1 | 2 | 4 | 8) && offset % u64::from(size.max(1)) == 0;
        match kind {
            0..=2 => {
                let body = Payload::default().u64(offset).u32(index).u32(size).0;
                let r = s.handle(&Header::request(id, Command::RegionRead, &body), Vec::new());
                let ok = reply_ok(&r.unwrap_or_else(|| panic!("no reply")));
                let expect = inside && (index == region::CONFIG || natural);
                assert_eq!(ok, expect, "read {size} at {offset:#x} of region {index}");
                if inside && index == region::BAR0 && !natural {
                    refused += 1;
                }
            }
            3..=5 => {
                let len = size as usize;
                let mut bytes = value.to_vec();
                bytes.resize(len, 0);
                let body = Payload::default()
                    .u64(offset)
                    .u32(index)
                    .u32(size)
                    .bytes(&bytes)
                    .0;
                let r = s.handle(&Header::request(id, Command::RegionWrite, &body), Vec::new());
                let ok = reply_ok(&r.unwrap_or_else(|| panic!("no reply")));
                let expect = inside && (index == region::CONFIG || natural);
                assert_eq!(ok, expect, "write {size} at {offset:#x} of region {index}");
                if inside && index == region::BAR0 && !natural {
                    refused += 1;
                }
            }
            6 => {
                // SET_IRQS on MSI-X: eventfds for a few vectors, or disable all.
                let start = u32::from(op[2] % 12);
                let fds: Vec<OwnedFd> = if op[3] & 1 == 0 {
                    evs.iter()
                        .take(usize::from(op[3] % 4).min(12 - start as usize))
                        .filter_map(|e| e.as_fd().try_clone_to_owned().ok())
                        .collect()
                } else {
                    Vec::new()
                };
                let (flags, count) = if fds.is_empty() {
                    ((1 << 0) | (1 << 5), 0)
                } else {
                    ((1 << 2) | (1 << 5), fds.len() as u32)
                };
                let start = if fds.is_empty() { 0 } else { start };
                let body = Payload::default()
                    .u32(20)
                    .u32(flags)
                    .u32(2)
                    .u32(start)
                    .u32(count)
                    .0;
                let _ = s.handle(&Header::request(id, Command::DeviceSetIrqs, &body), fds);
            }
            _ => {
                let _ = s.handle(&Header::request(id, Command::DeviceReset, &[]), Vec::new());
            }
        }
        assert_eq!(s.backend().counters().refused_accesses, refused);
        let nic = model.nic();
        assert_eq!(
            nic.vport_context(FunctionId::Vf(0)).map(|c| c.permanent_address),
            Some(MAC0),
            "a VF changed the MAC its PF set"
        );
        assert_eq!(nic.cmdq_address(FunctionId::Pf), pf_cmdq, "the PF's queue moved");
        assert_eq!(
            nic.function_state(FunctionId::Vf(1)).cloned(),
            vf1,
            "another VF changed"
        );
    }
    s.disconnect();
});
