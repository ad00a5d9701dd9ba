//! Brings two VFs up on the in-process model with the unchanged driver and the PF agent, sends
//! frames from one to the other and to the wire, and prints MACs, link state and counters.
//!
//! `cargo run --release -p hac-driver --example vf_on_model [-- FRAMES]`

use std::process::ExitCode;

use bytes::Bytes;
use hac_driver::model::Model;
use hac_driver::pf::PfConfig;
use hac_driver::vf::VfConfig;
use igb_hw::{MacAddress, VfIndex};
use igb_model::NicConfig;

fn main() -> ExitCode {
    let frames: u64 = match std::env::args().nth(1).map(|a| a.parse()) {
        None => 10_000,
        Some(Ok(n)) if n > 0 => n,
        Some(_) => {
            eprintln!("usage: vf_on_model [FRAMES]   (FRAMES: a positive integer, default 10000)");
            return ExitCode::from(2);
        }
    };
    match run(frames) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(frames: u64) -> Result<(), hac_driver::DriverError> {
    let model = Model::new(NicConfig {
        capture_wire: true,
        ..NicConfig::default()
    });
    // VF 0 gets its MAC from the PF; VF 1 gets none, so its driver picks one and sets it.
    let agent = model.start_pf_agent(
        PfConfig {
            num_vfs: 2,
            ..PfConfig::default()
        },
        &[Some(MacAddress([0x02, 0x1B, 0x21, 0, 0, 0x10])), None],
    )?;
    let vf =
        |n: u8| VfIndex::new(usize::from(n)).ok_or(hac_driver::DriverError::NoSuchVf(n.into()));
    let mut tx = model.vf_driver(vf(0)?, VfConfig::default())?;
    let mut rx = model.vf_driver(vf(1)?, VfConfig::default())?;
    println!(
        "vf0: mac {} ({:?}), link {:?}",
        tx.mac(),
        tx.mac_source(),
        tx.link()
    );
    println!(
        "vf1: mac {} ({:?}), link {:?}",
        rx.mac(),
        rx.mac_source(),
        rx.link()
    );
    let peer = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);
    let start = std::time::Instant::now();
    let (mut sent, mut got) = (0u64, 0u64);
    let mut buf = Vec::with_capacity(64);
    while got < frames {
        let batch: Vec<Bytes> = (sent..frames.min(sent + 32))
            .map(|s| {
                Bytes::from(igb_hw::frame::build(
                    rx.mac(),
                    tx.mac(),
                    0x88B5,
                    &[s as u8; 60],
                ))
            })
            .collect();
        sent += tx.send(&batch)? as u64;
        buf.clear();
        got += rx.recv(&mut buf, 64) as u64;
        model.run_for(2_000);
    }
    let wall = start.elapsed().as_secs_f64();
    // A few frames to the wire as well.
    let out: Vec<Bytes> = (0..4)
        .map(|i| Bytes::from(igb_hw::frame::build(peer, tx.mac(), 0x88B5, &[i; 100])))
        .collect();
    tx.send(&out)?;
    model.run_for(1_000_000);
    let wire = model.nic().take_wire_capture().len();
    let (ts, rs) = (tx.stats(), rx.stats());
    println!(
        "vf0→vf1: {got} frames in {wall:.3} s wall ({:.0} frames/s), {wire} frames on the wire",
        got as f64 / wall
    );
    println!("vf0 counters: {ts:?}");
    println!("vf1 counters: {rs:?}");
    if let Ok(a) = agent.lock() {
        for vf in VfIndex::all(a.num_vfs()) {
            if let Some(i) = a.vf(vf) {
                println!(
                    "pf view of {vf}: mac {:?}, cts {}, max_frame {}, messages {}, nacks {}",
                    i.mac, i.cts, i.max_frame, i.messages, i.nacks
                );
            }
        }
    }
    Ok(())
}
