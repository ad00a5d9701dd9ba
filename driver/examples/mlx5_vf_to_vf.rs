//! Frames per second between two VFs of the in-process models, both families in the same run:
//! the mlx5 driver on two VFs of the ConnectX model (send WQEs, the E-Switch, receive WQEs,
//! CQEs) and the igbvf driver on two VFs of the 82576 model, each as a ratio to a bound
//! measured in the same run (copying every frame twice — into the TX buffer and out of the RX
//! buffer — which any datapath must do at least once each way).
//!
//! `cargo run --release -p hac-driver --example mlx5_vf_to_vf [-- FRAMES [LEN]]`
//! (default 200000 frames of 512 bytes)

use std::process::ExitCode;
use std::time::Instant;

use bytes::Bytes;
use hac_driver::mlx5::model::Mlx5Model;
use hac_driver::mlx5::{EthConfig, Mlx5Config};
use hac_driver::model::Model;
use hac_driver::pf::PfConfig;
use hac_driver::vf::VfConfig;
use hw_common::MacAddress;
use igb_hw::VfIndex;

const A: MacAddress = MacAddress([0x02, 0, 0, 0, 0x77, 1]);
const B: MacAddress = MacAddress([0x02, 0, 0, 0, 0x77, 2]);
const BATCH: usize = 32;

fn frame(len: usize, seq: u64) -> Vec<u8> {
    let mut f = vec![0u8; len];
    f[..6].copy_from_slice(&B.0);
    f[6..12].copy_from_slice(&A.0);
    f[12..14].copy_from_slice(&0x88B5u16.to_be_bytes());
    f[14..22].copy_from_slice(&seq.to_be_bytes());
    f
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1).map(|a| a.parse::<u64>());
    let frames = match args.next() {
        None => 200_000,
        Some(Ok(n)) if n > 0 => n,
        _ => return usage(),
    };
    let len = match args.next() {
        None => 512,
        Some(Ok(n)) if (60..=1514).contains(&n) => n as usize,
        _ => return usage(),
    };
    match run(frames, len) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn usage() -> ExitCode {
    eprintln!(
        "usage: mlx5_vf_to_vf [FRAMES [LEN]]   (FRAMES > 0, default 200000; LEN 60..=1514, default 512)"
    );
    ExitCode::from(2)
}

fn run(frames: u64, len: usize) -> Result<(), Box<dyn std::error::Error>> {
    let bound = copy_bound(frames, len);
    let mlx5 = mlx5(frames, len)?;
    let igb = igb(frames, len)?;
    println!("{frames} frames of {len} bytes, VF to VF on the in-process model (release build)");
    println!("copy bound (2 copies/frame): {bound:>12.0} frames/s");
    for (name, fps) in [("mlx5", mlx5), ("igb (82576)", igb)] {
        println!(
            "{name:<12} {fps:>12.0} frames/s  {:>7.2} Gb/s  {:.3} of the bound",
            fps * len as f64 * 8.0 / 1e9,
            fps / bound
        );
    }
    println!("mlx5 / igb: {:.2}", mlx5 / igb);
    Ok(())
}

/// Two copies of every frame through buffers of ring size, with a checksum so nothing is elided.
fn copy_bound(frames: u64, len: usize) -> f64 {
    let src: Vec<Vec<u8>> = (0..BATCH as u64).map(|s| frame(len, s)).collect();
    let mut tx = vec![0u8; len * 256];
    let mut rx = vec![0u8; len * 256];
    let mut sum = 0u64;
    let t = Instant::now();
    for i in 0..frames as usize {
        let slot = (i % 256) * len;
        tx[slot..slot + len].copy_from_slice(&src[i % BATCH]);
        rx[slot..slot + len].copy_from_slice(&tx[slot..slot + len]);
        sum = sum.wrapping_add(u64::from(rx[slot + 14]));
    }
    let secs = t.elapsed().as_secs_f64();
    std::hint::black_box(sum);
    frames as f64 / secs
}

fn mlx5(frames: u64, len: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let m = Mlx5Model::new(mlx5_model::Mlx5Config::default());
    let (mut pf, mut vfs) = m.start(2, Mlx5Config::default())?;
    pf.set_vf_mac(0, A)?;
    pf.set_vf_mac(1, B)?;
    let mut b = vfs.pop().ok_or("no VF 1")?;
    let mut a = vfs.pop().ok_or("no VF 0")?;
    a.open_eth(EthConfig::default())?;
    b.open_eth(EthConfig::default())?;
    let batch: Vec<Vec<u8>> = (0..BATCH as u64).map(|s| frame(len, s)).collect();
    let refs: Vec<&[u8]> = batch.iter().map(|f| &f[..]).collect();
    let (mut sent, mut got) = (0u64, 0u64);
    let mut out = Vec::with_capacity(64);
    let t = Instant::now();
    while got < frames {
        a.reclaim_tx()?;
        let n = refs.len().min((frames - sent) as usize);
        sent += a.send(&refs[..n])? as u64;
        m.run_for(2_000);
        out.clear();
        got += b.recv(&mut out, 64)? as u64;
    }
    Ok(frames as f64 / t.elapsed().as_secs_f64())
}

fn igb(frames: u64, len: usize) -> Result<f64, Box<dyn std::error::Error>> {
    let model = Model::new(igb_model::NicConfig::default());
    let _pf = model.start_pf_agent(
        PfConfig {
            num_vfs: 2,
            ..PfConfig::default()
        },
        &[Some(A), Some(B)],
    )?;
    let vf = |n| VfIndex::new(n).ok_or("no such VF");
    let mut a = model.vf_driver(vf(0)?, VfConfig::default())?;
    let mut b = model.vf_driver(vf(1)?, VfConfig::default())?;
    let batch: Vec<Bytes> = (0..BATCH as u64)
        .map(|s| Bytes::from(frame(len, s)))
        .collect();
    let (mut sent, mut got) = (0u64, 0u64);
    let mut out = Vec::with_capacity(64);
    let t = Instant::now();
    while got < frames {
        let n = batch.len().min((frames - sent) as usize);
        sent += a.send(&batch[..n])? as u64;
        model.run_for(2_000);
        out.clear();
        got += b.recv(&mut out, 64) as u64;
    }
    Ok(frames as f64 / t.elapsed().as_secs_f64())
}
