//! The QEMU referee's retry rule (docs/qemu.md, "Flakiness"): `scripts/qemu/verdict.sh`
//! classifies captured serial logs (`scripts/qemu/testdata/`), and only a guest that never
//! reached `/init`, whose kernel stalled before the case's first `hac` command, or whose kernel
//! reported a timer not delivered on an idle vCPU, may be retried.
#![allow(clippy::unwrap_used)]

use std::path::{Path, PathBuf};
use std::process::Command;

const CASE: &str = "vf-probe-pf-mac-trusted";

fn qemu_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../scripts/qemu")
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(qemu_dir().join("testdata").join(name)).unwrap()
}

/// Runs verdict.sh on `log` (written to a temporary file) and returns its one line.
fn verdict(name: &str, log: &str, case: &str) -> String {
    let dir = std::env::temp_dir().join(format!("hac-verdict-{}-{name}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let path = dir.join("serial.log");
    std::fs::write(&path, log).unwrap();
    let out = Command::new("bash")
        .arg(qemu_dir().join("verdict.sh"))
        .arg(&path)
        .arg(case)
        .output()
        .unwrap();
    std::fs::remove_dir_all(&dir).unwrap();
    assert!(
        out.status.success(),
        "verdict.sh failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = String::from_utf8(out.stdout).unwrap();
    assert_eq!(text.lines().count(), 1, "one line expected: {text:?}");
    text.trim_end().to_owned()
}

fn kind(line: &str) -> &str {
    line.split(' ').next().unwrap()
}

/// The serial console as QEMU writes it (CR LF), as run.sh sees it while the guest runs.
fn crlf(log: &str) -> String {
    log.replace('\n', "\r\n")
}

/// `log` cut just before the first line starting with `marker` (the guest stopped there).
fn cut_before(log: &str, marker: &str) -> String {
    let at = log.find(&format!("\n{marker}")).unwrap();
    log[..=at].to_owned()
}

/// The report line of issue 13's stall (a soft lockup in `sh` while the setup ran `ip link set
/// eth0 vf 1 …`), in the kernel's format; that log was not kept.
const SOFT_LOCKUP: &str =
    "[   48.132071] watchdog: BUG: soft lockup - CPU#0 stuck for 26s! [sh:96]\n";

#[test]
fn a_passing_log_passes() {
    let log = fixture("pass.log");
    assert_eq!(verdict("pass", &log, CASE), "pass");
    assert_eq!(verdict("pass-crlf", &crlf(&log), CASE), "pass");
    // The same log read for another case is not that case's pass.
    assert_eq!(
        kind(&verdict("pass-other", &log, "vf-probe-nack")),
        "no-boot"
    );
}

#[test]
fn a_guest_that_never_reached_init_is_no_boot() {
    for name in ["no-boot-timer-panic.log", "no-boot-rcu-stall.log"] {
        let log = fixture(name);
        let v = verdict(name, &log, CASE);
        assert_eq!(kind(&v), "no-boot", "{name}: {v}");
        assert_eq!(kind(&verdict(name, &crlf(&log), CASE)), "no-boot");
    }
}

#[test]
fn a_kernel_stall_before_our_code_ran_is_a_guest_stall() {
    // The guest got through the PF setup and then stalled: no HAC-CASE-RUN, no verdict.
    let setup = cut_before(&fixture("pass.log"), "HAC-CASE-RUN");
    let log = format!("{setup}{SOFT_LOCKUP}");
    let v = verdict("stall-soft", &log, CASE);
    assert_eq!(
        v,
        "guest-stall the guest kernel reported \"watchdog: BUG: soft lockup - CPU#0 stuck\" \
         before the case's first hac command"
    );
    assert_eq!(verdict("stall-soft-crlf", &crlf(&log), CASE), v);
    // Captured: vCPU 1's thread frozen on the host after "PF … up"; CPU 0 (modprobe) waits in
    // a TLB flush for CPU 1 and the kernel reports an RCU stall with both backtraces.
    let log = fixture("guest-stall-vcpu1-frozen.log");
    let v = verdict("stall-rcu", &log, CASE);
    assert_eq!(
        v,
        "guest-stall the guest kernel reported \"rcu: INFO: rcu_preempt self-detected stall\" \
         before the case's first hac command"
    );
    assert_eq!(verdict("stall-rcu-crlf", &crlf(&log), CASE), v);
    // A setup step that then failed (e.g. no carrier after the stall) is still the guest's fault.
    let log = format!("{setup}{SOFT_LOCKUP}FAIL {CASE}: ip link set eth0 vf 1 trust on: timeout\n");
    assert_eq!(kind(&verdict("stall-then-fail", &log, CASE)), "guest-stall");
}

#[test]
fn once_our_code_ran_nothing_is_a_guest_stall() {
    let pass = fixture("pass.log");
    // A stall after HAC-CASE-RUN and no verdict: a timeout that could be ours.
    let running = cut_before(&pass, "hac-out:");
    let v = verdict("stall-after", &format!("{running}{SOFT_LOCKUP}"), CASE);
    assert_eq!(v, "fail guest did not finish");
    // The same with a kernel message written in front of the marker on its line.
    let setup = cut_before(&pass, "HAC-CASE-RUN");
    let mixed = format!(
        "{setup}[    9.120301] igb 0000:01:00.0 eth0: Reset adapter{}",
        &running[setup.len()..]
    );
    let v = verdict("stall-after-mixed", &format!("{mixed}{SOFT_LOCKUP}"), CASE);
    assert_eq!(v, "fail guest did not finish");
    assert!(mixed.contains(&format!("Reset adapterHAC-CASE-RUN {CASE}\n")));
    // The captured RCU stall of a busy CPU 0 (modprobe waiting for CPU 1), had it come after
    // our code started, without the report that CPU 1 sat idle with its timer due.
    let frozen = fixture("guest-stall-vcpu1-frozen.log");
    let at = frozen.find("[   28.675455] rcu: INFO").unwrap();
    let busy: String = frozen[at..]
        .lines()
        .filter(|l| !l.contains("Possible timer handling issue"))
        .map(|l| format!("{l}\n"))
        .collect();
    let log = format!("{}HAC-CASE-RUN {CASE}\n{busy}", &frozen[..at]);
    assert_eq!(
        verdict("rcu-after", &log, CASE),
        "fail guest did not finish"
    );
    // A stall before HAC-CASE-RUN, then our code ran and failed: a failure of our code.
    let rest = &pass[setup.len()..];
    let failed = rest.replace(
        &format!("PASS {CASE}\n"),
        &format!("FAIL {CASE}: hac vf-probe exited 1: mailbox timeout\n"),
    );
    assert_ne!(failed, rest);
    let v = verdict(
        "stall-then-ours",
        &format!("{setup}{SOFT_LOCKUP}{failed}"),
        CASE,
    );
    assert_eq!(v, "fail hac vf-probe exited 1: mailbox timeout");
    // A PASS line without the end marker is not a pass.
    let v = verdict("no-end", &cut_before(&pass, "HAC-QEMU-END"), CASE);
    assert_eq!(v, "fail guest did not finish");
    // Our code failed without any stall.
    let v = verdict("ours", &pass.replace(&format!("PASS {CASE}\n"), ""), CASE);
    assert_eq!(v, "fail no PASS line");
}

#[test]
fn a_guest_that_stopped_without_a_stall_report_is_a_failure() {
    // The setup stopped with no kernel report at all: nothing says the guest is at fault.
    let setup = cut_before(&fixture("pass.log"), "HAC-CASE-RUN");
    assert_eq!(verdict("silent", &setup, CASE), "fail guest did not finish");
}

/// Captured in a loop of `pf-switch` boots (QEMU 10.0.2, 2 vCPUs, `stress-ng --cpu 2` beside
/// it): after our code started, vCPU 1 sat idle and its timer was not delivered for 21 s.
const LOST: &str = "timer-lost-after-case-run.log";

#[test]
fn a_timer_lost_on_an_idle_vcpu_is_the_platforms_fault_even_after_our_code_ran() {
    let log = fixture(LOST);
    assert!(log.contains("HAC-CASE-RUN pf-switch\n"));
    let v = verdict("lost", &log, "pf-switch");
    assert_eq!(
        v,
        "guest-timer-lost the guest kernel reported a timer on idle CPU 1 not delivered \
         (\"Possible timer handling issue on cpu=1\")"
    );
    assert_eq!(verdict("lost-crlf", &crlf(&log), "pf-switch"), v);
    // Either sign that CPU 1 was idle is enough: its idle task in the dump, or RCU's line.
    let no_dump = log.replace("Comm: swapper/1", "Comm: hac-lab");
    assert_eq!(
        kind(&verdict("lost-rcu-line", &no_dump, "pf-switch")),
        "guest-timer-lost"
    );
    let no_rcu_line = log.replace("idle=db40/0/0x0", "idle=db40/1/0x4000000000000000");
    assert_eq!(
        kind(&verdict("lost-dump", &no_rcu_line, "pf-switch")),
        "guest-timer-lost"
    );
    // A FAIL line printed while the guest stood still does not make it ours.
    let failed = log.replace(
        "HAC-CASE-RUN pf-switch\n",
        "HAC-CASE-RUN pf-switch\nFAIL pf-switch: hac-lab pf-switch exited 1: mailbox timeout\n",
    );
    assert_eq!(
        kind(&verdict("lost-fail", &failed, "pf-switch")),
        "guest-timer-lost"
    );
    // Nor does the vCPU-1-frozen capture (CPU 1 idle in the dump) after HAC-CASE-RUN.
    let frozen = fixture("guest-stall-vcpu1-frozen.log");
    let at = frozen.find("[   28.675455] rcu: INFO").unwrap();
    let after = format!("{}HAC-CASE-RUN {CASE}\n{}", &frozen[..at], &frozen[at..]);
    assert_eq!(
        kind(&verdict("frozen-after", &after, CASE)),
        "guest-timer-lost"
    );
}

#[test]
fn a_timer_report_for_a_busy_cpu_stays_a_failure() {
    // The same report, but CPU 1 was running a task (neither its idle task in the dump nor
    // idle in RCU's line): a CPU busy with interrupts off could be code the case started.
    let log = fixture(LOST)
        .replace("Comm: swapper/1", "Comm: hac-lab")
        .replace("idle=db40/0/0x0", "idle=db40/1/0x4000000000000000");
    assert_eq!(
        verdict("busy", &log, "pf-switch"),
        "fail guest did not finish"
    );
    // The timer named another CPU than the idle one.
    let other = fixture(LOST).replace("issue on cpu=1", "issue on cpu=0");
    assert_eq!(
        verdict("other-cpu", &other, "pf-switch"),
        "fail guest did not finish"
    );
    // A passing log with a recovered report is a pass.
    let pass = fixture("pass.log");
    let report: String = fixture(LOST)
        .lines()
        .skip_while(|l| !l.contains("rcu: INFO"))
        .map(|l| format!("{l}\n"))
        .collect();
    let at = pass.find("hac-out:").unwrap();
    let recovered = format!("{}{report}{}", &pass[..at], &pass[at..]);
    assert_eq!(verdict("recovered", &recovered, CASE), "pass");
}

#[test]
fn the_soak_script_refuses_bad_arguments_before_it_boots_anything() {
    for (args, says) in [
        (&["-n", "0", CASE][..], "-n 0: a positive number of boots"),
        (
            &["-j", "x", CASE][..],
            "-j x: a positive number of guests at a time",
        ),
        (&[][..], "usage:"),
    ] {
        let out = Command::new("bash")
            .arg(qemu_dir().join("soak.sh"))
            .args(args)
            .env(
                "HAC_QEMU_CACHE",
                std::env::temp_dir().join("hac-soak-no-cache"),
            )
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2), "{args:?}");
        let err = String::from_utf8_lossy(&out.stderr);
        assert!(err.contains(says), "{args:?}: {err}");
    }
    // Well-formed arguments without run.sh's initramfs: told what to run first.
    let out = Command::new("bash")
        .arg(qemu_dir().join("soak.sh"))
        .args(["-n", "1", CASE])
        .env(
            "HAC_QEMU_CACHE",
            std::env::temp_dir().join("hac-soak-no-cache"),
        )
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("run scripts/qemu/run.sh first"));
}
