//! The wire pcap the model writes is read back by a real independent reader (tshark), with the
//! same frames and nanosecond virtual timestamps.
#![allow(clippy::unwrap_used)]

use std::process::Command;

use igb_hw::MacAddress;
use igb_model::testing::{VfRings, bring_up, udp_frame, vf_mac};
use igb_model::{LineRate, NicConfig, PcapSink};

fn tshark_available() -> bool {
    Command::new("tshark")
        .arg("--version")
        .output()
        .is_ok_and(|o| o.status.success())
}

#[test]
fn tshark_reads_the_wire_pcap() {
    if !tshark_available() {
        // .ci/run installs tshark; on CI its absence is a failure, elsewhere a skip.
        assert!(std::env::var_os("CI").is_none(), "tshark missing on CI");
        eprintln!("SKIP: tshark not installed");
        return;
    }
    let dir = std::env::temp_dir().join(format!("hac-tshark-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("wire.pcap");
    let cfg = NicConfig {
        line_rate: LineRate::G1,
        ..NicConfig::default()
    };
    let mut nic = bring_up(1, cfg);
    let file = std::io::BufWriter::new(std::fs::File::create(&path).unwrap());
    nic.add_wire_sink(Box::new(PcapSink::new(file).unwrap()));
    let mut r = VfRings::new(&mut nic, 0, 64, 8);
    let peer = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);
    let lens = [60usize, 1514, 200, 64, 1000];
    for (i, &len) in lens.iter().enumerate() {
        r.queue(&udp_frame(peer, vf_mac(0), i as u32, len));
    }
    r.doorbell(&mut nic);
    nic.drain();
    nic.flush_wire_sinks();
    let out = Command::new("tshark")
        .args([
            "-r",
            path.to_str().unwrap(),
            "-T",
            "fields",
            "-e",
            "frame.len",
            "-e",
            "frame.time_epoch",
            "-e",
            "eth.src",
            "-e",
            "udp.dstport",
        ])
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).ok();
    assert!(
        out.status.success(),
        "tshark failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    let rows: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    assert_eq!(rows.len(), lens.len());
    let mut t = 0u64;
    for (row, &len) in rows.iter().zip(&lens) {
        assert_eq!(row[0].parse::<usize>().unwrap(), len);
        // Nanosecond timestamps: virtual start of each frame at 1 Gb/s.
        let (s, ns) = row[1].split_once('.').unwrap();
        assert_eq!(s, "0");
        assert_eq!(ns.parse::<u64>().unwrap(), t, "row {row:?}");
        t += LineRate::G1.frame_time_ns(len);
        assert_eq!(row[2], "02:00:00:00:00:10");
        assert_eq!(row[3], "12345");
    }
}
