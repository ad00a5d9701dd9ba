//! Arbitrary bytes as a stream of vfio-user client messages to a VF endpoint on the model (PF
//! agent running, VFs enabled): the server never panics, answers every message that did not ask
//! for silence with exactly one reply carrying the same id and command, whose size field is its
//! length, and an error reply is a bare header. A region read's reply carries exactly the bytes
//! asked for. The model's PF is untouched by anything the VF's client sends (config space of
//! function 0 compares equal before and after).
#![no_main]

use hac_driver::model::Model;
use hac_driver::pf::PfConfig;
use hac_utility::vfio_user::endpoint::{IrqRoutes, VfEndpoint};
use hac_utility::vfio_user::wire::{Command, HEADER_LEN, Header, flags};
use igb_hw::VfIndex;
use libfuzzer_sys::fuzz_target;
use nic_model::{FunctionId, NicConfig};

fn pf_config(model: &Model) -> Vec<u8> {
    let mut out = vec![0u8; 0x200];
    for (i, c) in out.chunks_mut(4).enumerate() {
        model.nic().config_read(FunctionId::Pf, (4 * i) as u16, c);
    }
    out
}

fuzz_target!(|data: &[u8]| {
    let model = Model::new(NicConfig::default());
    let Ok(agent) = model.start_pf_agent(
        PfConfig {
            num_vfs: 2,
            ..PfConfig::default()
        },
        &[None, None],
    ) else {
        return;
    };
    let routes = IrqRoutes::new();
    routes.install(&model);
    let Some(vf) = VfIndex::new(1) else { return };
    let mut ep = VfEndpoint::new(model.clone(), vf, Some(agent), routes);
    let pf_before = pf_config(&model);
    // The stream is cut into messages by their size fields, as the socket reader does; an
    // impossible size ends the stream (the reader closes the connection).
    let mut rest = data;
    for _ in 0..64 {
        if rest.len() < HEADER_LEN {
            break;
        }
        let size = match Header::parse(rest) {
            Ok(h) => (h.size as usize).min(rest.len()),
            Err(_) => {
                let reply = ep.handle(&rest[..HEADER_LEN], Vec::new()).expect("an error reply");
                let h = Header::parse(&reply).expect("the reply parses");
                assert_eq!(h.flags & flags::ERROR, flags::ERROR);
                break;
            }
        };
        let mut message = rest[..size].to_vec();
        // The reader always hands over whole messages; fix the size field of a cut one.
        message[4..8].copy_from_slice(&(size as u32).to_le_bytes());
        rest = &rest[size..];
        let request = Header::parse(&message).expect("size fixed");
        match ep.handle(&message, Vec::new()) {
            None => assert!(request.no_reply(), "a command without reply: {request:?}"),
            Some(reply) => {
                let h = Header::parse(&reply).expect("the reply parses");
                assert_eq!(h.id, request.id);
                assert_eq!(h.command, request.command);
                assert_eq!(h.size as usize, reply.len());
                assert_eq!(h.flags & flags::TYPE_MASK, flags::TYPE_REPLY);
                if h.flags & flags::ERROR != 0 {
                    assert_eq!(reply.len(), HEADER_LEN);
                    assert_ne!(h.error, 0);
                } else if request.command == Command::RegionRead {
                    let count = u32::from_le_bytes([
                        message[28], message[29], message[30], message[31],
                    ]);
                    assert_eq!(reply.len(), HEADER_LEN + 16 + count as usize);
                }
            }
        }
    }
    ep.disconnect();
    assert_eq!(pf_config(&model), pf_before, "a VF's client changed the PF's config space");
});
