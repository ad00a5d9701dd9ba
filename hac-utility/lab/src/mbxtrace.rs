//! `hac-lab vf-mailbox`: a step-by-step trace of the VF init handshake (reset, VF_RESET,
//! SET_MAC_ADDR) with the raw mailbox words, for debugging a VF against a real PF driver.

use hac_driver::backend::{Bar, Clock, RegisterIo, WallClock};
use hac_driver::mailbox::{MailboxConfig, VfMailbox};
use igb_hw::mailbox::{Flags, Message};
use igb_hw::regs::{CTRL, MAILBOX_WORDS, VfReg, vf};

fn words(w: &[u32]) -> String {
    w.iter()
        .map(|x| format!("{x:08x}"))
        .collect::<Vec<_>>()
        .join(" ")
}

/// Runs the trace on a VF's BAR 0; returns the lines and whether every step succeeded.
pub fn trace<R: RegisterIo>(regs: R, set_mac: Option<igb_hw::MacAddress>) -> (Vec<String>, bool) {
    let bar: Bar<R, VfReg> = Bar::new(regs);
    let clock = WallClock::default();
    let mut log = Vec::new();
    let mut mbx = VfMailbox::new(MailboxConfig::default());
    let status = |bar: &Bar<R, VfReg>| bar.get(VfReg::VFMAILBOX);
    log.push(format!(
        "start: CTRL={:08x} STATUS={:08x} VFMAILBOX={:08x}",
        bar.get(VfReg::CTRL),
        bar.get(VfReg::STATUS),
        status(&bar)
    ));
    bar.write(vf::CTRL, CTRL::RST::SET);
    let t0 = clock.now_ns();
    while bar.read(vf::CTRL).is_set(CTRL::RST) && clock.now_ns() - t0 < 100_000_000 {
        clock.delay_ns(5_000);
    }
    log.push(format!(
        "CTRL.RST cleared after {} us: CTRL={:08x} VFMAILBOX={:08x} (RSTD=bit7, RSTI=bit6)",
        (clock.now_ns() - t0) / 1000,
        bar.get(VfReg::CTRL),
        status(&bar)
    ));
    let t0 = clock.now_ns();
    while status(&bar) & (1 << 6) != 0 && clock.now_ns() - t0 < 1_000_000_000 {
        clock.delay_ns(100_000);
    }
    log.push(format!(
        "after RSTI wait ({} us): VFMAILBOX={:08x}",
        (clock.now_ns() - t0) / 1000,
        status(&bar)
    ));
    let mut ok = true;
    let mut exchange = |log: &mut Vec<String>, m: &Message| -> Option<[u32; MAILBOX_WORDS]> {
        let mut w = [0u32; MAILBOX_WORDS];
        let n = m.emit(Flags::default(), &mut w);
        log.push(format!("send {:?}: {}", m, words(&w[..n])));
        if let Err(e) = mbx.write_posted(&bar, &clock, &w[..n]) {
            log.push(format!(
                "  write failed: {e}; VFMAILBOX={:08x}",
                status(&bar)
            ));
            return None;
        }
        match mbx.read_posted(&bar, &clock) {
            Ok(r) => {
                log.push(format!("  reply: {}", words(&r[..4])));
                log.push(format!("  parsed: {:?}", Message::parse(&r)));
                Some(r)
            }
            Err(e) => {
                log.push(format!(
                    "  read failed: {e}; VFMAILBOX={:08x}",
                    status(&bar)
                ));
                None
            }
        }
    };
    let reply = exchange(
        &mut log,
        &Message::Reset {
            mac: igb_hw::MacAddress::default(),
        },
    );
    let mac = match reply.as_ref().map(|r| Message::parse(r)) {
        Some(Ok(env)) => match env.message {
            Message::Reset { mac } if env.flags.ack => mac,
            _ => set_mac.unwrap_or(igb_hw::MacAddress([0x02, 0, 0, 0, 0, 0x42])),
        },
        _ => {
            ok = false;
            set_mac.unwrap_or(igb_hw::MacAddress([0x02, 0, 0, 0, 0, 0x42]))
        }
    };
    let mac = set_mac.unwrap_or(mac);
    match exchange(&mut log, &Message::SetMacAddr { subcommand: 0, mac }) {
        Some(r) => ok &= Message::parse(&r).map(|e| e.flags.ack).unwrap_or(false),
        None => ok = false,
    }
    log.push(format!("end: VFMAILBOX={:08x}", status(&bar)));
    (log, ok)
}
