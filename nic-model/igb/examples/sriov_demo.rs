//! The model on its own: a PF with 4 VFs brought up as Linux igb would, VF↔VF traffic through the
//! internal switch, VF→wire traffic at line rate, wire→VF traffic, for a stretch of virtual time.
//! Writes `wire.pcap` (nanosecond timestamps = virtual time) and `summary.txt` to `--out`.
//!
//! Usage: `cargo demo [--out DIR] [--duration-ms N] [--rate 1G|10G|25G|100G] [--seed N]`

use std::io::{IsTerminal, Write};
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::Instant;

use igb_model::adapter_core::rng::XorShift64Star;
use igb_model::igb_hw::MacAddress;
use igb_model::igb_hw::regs::VfReg;
use igb_model::testing::{VfRings, bring_up, udp_frame, vf, vf_mac};
use igb_model::{LineRate, NicConfig, PcapSink, SimTime};

struct Args {
    out: PathBuf,
    duration_ms: u64,
    rate: LineRate,
    seed: u64,
}

const USAGE: &str =
    "usage: cargo demo [--out DIR] [--duration-ms N] [--rate 1G|10G|25G|100G] [--seed N]
Runs the 82576 model with 4 VFs for N ms of virtual time (default 20) and writes
DIR/wire.pcap and DIR/summary.txt (default DIR: out/demo).";

fn parse_args() -> Result<Option<Args>, String> {
    let mut a = Args {
        out: PathBuf::from("out/demo"),
        duration_ms: 20,
        rate: LineRate::G10,
        seed: 1,
    };
    let mut it = std::env::args().skip(1);
    while let Some(flag) = it.next() {
        let mut value = |name: &str| it.next().ok_or_else(|| format!("{name} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--out" => a.out = PathBuf::from(value("--out")?),
            "--duration-ms" => {
                let v = value("--duration-ms")?;
                a.duration_ms = v
                    .parse()
                    .ok()
                    .filter(|&d| d > 0 && d <= 60_000)
                    .ok_or_else(|| format!("--duration-ms {v:?}: expected 1..=60000"))?;
            }
            "--rate" => a.rate = value("--rate")?.parse()?,
            "--seed" => {
                let v = value("--seed")?;
                a.seed = v
                    .parse()
                    .map_err(|_| format!("--seed {v:?}: expected an integer"))?;
            }
            other => return Err(format!("unknown argument {other:?}")),
        }
    }
    Ok(Some(a))
}

fn main() -> ExitCode {
    let args = match parse_args() {
        Ok(Some(a)) => a,
        Ok(None) => {
            println!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Err(e) => {
            eprintln!("error: {e}\n{USAGE}");
            return ExitCode::from(2);
        }
    };
    match run(&args) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::FAILURE
        }
    }
}

fn run(args: &Args) -> Result<(), String> {
    std::fs::create_dir_all(&args.out)
        .map_err(|e| format!("cannot create {}: {e}", args.out.display()))?;
    let pcap_path = args.out.join("wire.pcap");
    let file = std::fs::File::create(&pcap_path)
        .map_err(|e| format!("cannot create {}: {e}", pcap_path.display()))?;
    let cfg = NicConfig {
        line_rate: args.rate,
        ..NicConfig::default()
    };
    let mut nic = bring_up(4, cfg);
    let sink = PcapSink::new(std::io::BufWriter::new(file)).map_err(|e| e.to_string())?;
    nic.add_wire_sink(Box::new(sink));
    let mut rings: Vec<VfRings> = (0..4)
        .map(|n| VfRings::new(&mut nic, n, 512, 512))
        .collect();
    let peer = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);
    let mut rng = XorShift64Star::new(args.seed.max(1));

    let end = SimTime::from_millis(args.duration_ms);
    let step_ns = 10_000u64;
    let mut seq = [0u32; 4];
    let mut received = [0u64; 4];
    let mut injected = 0u64;
    let wall = Instant::now();
    let mut last_pct = u64::MAX;
    let tty = std::io::stderr().is_terminal();
    // Offered load per 10 µs step: VF0→VF1 loopback 4 frames, VF2→wire ~4 × 1514 B (≈ 5 Gb/s),
    // VF3→wire a burst of 64 B frames every 100 µs, wire→VF3 1 frame per step.
    while nic.now() < end {
        let t = nic.now();
        let mut push = |r: &mut VfRings, n: usize, dst: MacAddress, len: usize| {
            // A driver never fills the last free slot.
            let free = (r.tx_clean + r.tx_count - r.tx_tail - 1) % r.tx_count;
            if free > 0 {
                r.queue(&udp_frame(dst, vf_mac(n), seq[n], len));
                seq[n] += 1;
            }
        };
        for _ in 0..4 {
            let len = 64 + (rng.next_u64() % 1400) as usize;
            push(&mut rings[0], 0, vf_mac(1), len);
            push(&mut rings[2], 2, peer, 1514);
        }
        if (t.as_nanos() / step_ns).is_multiple_of(10) {
            for _ in 0..32 {
                push(&mut rings[3], 3, peer, 60);
            }
        }
        for r in rings.iter_mut() {
            r.doorbell(&mut nic);
        }
        nic.inject_from_wire(&udp_frame(vf_mac(3), peer, injected as u32, 128));
        injected += 1;
        nic.advance_to(t + step_ns);
        for (n, r) in rings.iter_mut().enumerate() {
            received[n] += r.recv(&mut nic).len() as u64;
            // Reclaim completed TX descriptors (DD set) as a driver would.
            while r.tx_clean != r.tx_tail && r.tx_done(r.tx_clean) {
                r.tx_clean = (r.tx_clean + 1) % r.tx_count;
            }
        }
        let pct = nic.now().as_nanos() * 100 / end.as_nanos();
        if pct != last_pct && pct.is_multiple_of(5) {
            let bar = format!(
                "[{:<20}] {pct:3}%  virtual {}",
                "#".repeat((pct / 5) as usize),
                nic.now()
            );
            if tty {
                eprint!("\r{bar}");
            } else if pct.is_multiple_of(25) {
                eprintln!("{bar}");
            }
            last_pct = pct;
        }
    }
    nic.drain();
    nic.flush_wire_sinks();
    if tty {
        eprintln!();
    }
    let elapsed = wall.elapsed().as_secs_f64();
    let (wire_frames, wire_bytes, busy_ns) = nic.wire_totals();
    let mut s = String::new();
    let virt = nic.now();
    s += &format!(
        "82576 model, 4 VFs, {} Gb/s wire, {} ms virtual time, seed {}\n",
        args.rate.bits_per_sec() / 1_000_000_000,
        args.duration_ms,
        args.seed
    );
    s += "vf  mac                tx_frames  tx_bytes     rx_frames  loopback_tx  loopback_rx\n";
    let mut total_tx = 0u64;
    for (n, rx) in received.iter().enumerate() {
        let v = vf(n);
        let tx = u64::from(nic.vf_read(v, VfReg::VFGPTC));
        total_tx += tx;
        s += &format!(
            "{n:<3} {:<18} {tx:<10} {:<12} {:<10} {:<12} {}\n",
            vf_mac(n).to_string(),
            nic.vf_read(v, VfReg::VFGOTC),
            rx,
            nic.vf_read(v, VfReg::VFGPTLBC),
            nic.vf_read(v, VfReg::VFGPRLBC),
        );
    }
    s += &format!(
        "wire: {wire_frames} frames, {wire_bytes} bytes, busy {:.1}% of {virt}\n",
        busy_ns as f64 * 100.0 / virt.as_nanos().max(1) as f64
    );
    s += &format!("wire→VF3 injected: {injected}\n");
    let c = nic.counters();
    s += &format!(
        "model: backpressure stalls {}, rx no-descriptor drops {}, dma faults {}, spoofed {}\n",
        c.tx_backpressure_stalls, c.rx_no_descriptor_drops, c.dma_faults, c.tx_spoofed_frames
    );
    s += &format!(
        "speed: {:.2} s wall, {:.0} frames/s (TX frames through the model per wall second)\n",
        elapsed,
        total_tx as f64 / elapsed.max(1e-9)
    );
    s += &format!("pcap: {}\n", pcap_path.display());
    print!("{s}");
    let summary = args.out.join("summary.txt");
    std::fs::File::create(&summary)
        .and_then(|mut f| f.write_all(s.as_bytes()))
        .map_err(|e| format!("cannot write {}: {e}", summary.display()))?;
    if c.sink_errors > 0 {
        return Err(format!("{} pcap write errors", c.sink_errors));
    }
    Ok(())
}
