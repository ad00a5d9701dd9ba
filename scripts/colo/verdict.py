#!/usr/bin/env python3
"""The verdict of scripts/colo/run.sh: verdict.py LOGS GUEST_MAC DELAY_MS [--secondary-died].

Reads the bridge's summary (bridge.json) and log (bridge.log), the wire capture
(wire.pcapng: interface 0 is the primary daemon's TAP, 1 the backup's), the namespace's pings
and the failover record; prints figures and PASS/FAIL lines (INFO for the failover path, which
QEMU may not allow); exit 1 when a check fails.

With --secondary-died (the secondary QEMU was gone at the end of the protected run): prints
the secondary guest kernel's report and checks the primary's side until COLO ended (no frame
captured before the commit that released it, until the bridge's `unprotect`; the primary's
kernel clean); exit 3 when those pass and the secondary's kernel did report a fault, 1
otherwise (a secondary that died without a kernel report is not this case).
"""
import json
import os
import re
import subprocess
import sys

logs, mac, delay = sys.argv[1], sys.argv[2].lower(), int(sys.argv[3])
secondary_died = "--secondary-died" in sys.argv[4:]
results = []


def check(name, ok, why=""):
    results.append(("PASS %s" % name) if ok else ("FAIL %s: %s" % (name, why)))


def read(name):
    try:
        with open(os.path.join(logs, name), errors="replace") as f:
            return f.read()
    except OSError:
        return ""


def ping_times(name):
    return sorted(float(m) for m in re.findall(r"time=([0-9.]+) ms", read(name)))


def q(v, p):
    return v[min(len(v) - 1, (len(v) - 1) * p // 100)] if v else float("nan")


# A guest kernel's fault on its console (the secondary's console is its own: under COLO it
# runs between checkpoints and prints what it runs).
OOPS = re.compile(r"BUG: |Oops|Kernel panic|general protection fault|WARNING: CPU|Attempted to kill|RIP: ")


def kernel_report(text):
    lines = text.replace("\r", "").splitlines()
    at = next((i for i, l in enumerate(lines) if OOPS.search(l)), None)
    return [] if at is None else lines[max(0, at - 2):at + 70]


def early_frames(until_us):
    """The guest's frames captured on the primary's wire from the first commit until until_us,
    counted up to each capture time, against what the commits sent before that time released:
    (frames, the ones over)."""
    if not commits:
        return [], []
    prot = [t for t, i in frames if i == 0 and commits[0][0] <= t < until_us]
    early, ci, n = [], 0, 0
    for t in prot:
        n += 1
        while ci + 1 < len(commits) and commits[ci + 1][0] <= t:
            ci += 1
        allowed = commits[ci][1] - r0 if commits[ci][0] <= t else 0
        if n > allowed:
            early.append((t, n, allowed))
    return prot, early


try:
    summary = json.loads(read("bridge.json").strip().splitlines()[-1])
except (ValueError, IndexError):
    summary = {}
log = [json.loads(l) for l in read("bridge.log").splitlines() if l.startswith("{")]
commits = [(e["t_us"], e["vfs"][0]["released"]) for e in log if e.get("action", {}).get("op") == "commit"]
tags = [e for e in log if e.get("action", {}).get("op") == "tag"]
r0 = tags[0]["vfs"][0]["released"] if tags else 0

# The guest's frames on the wire, host real-time clock (µs), per interface.
out = subprocess.run(
    ["tshark", "-n", "-r", os.path.join(logs, "wire.pcapng"), "-Y", "eth.src == %s" % mac,
     "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.interface_id"],
    capture_output=True, text=True)
frames = []
for line in out.stdout.splitlines():
    parts = line.split()
    if len(parts) == 2:
        frames.append((int(round(float(parts[0]) * 1e6)), int(parts[1])))
frames.sort()
# The guest's TCP segments with data (the stream), for the time to traffic after failover.
out = subprocess.run(
    ["tshark", "-n", "-r", os.path.join(logs, "wire.pcapng"), "-Y", "eth.src == %s && tcp.len > 0" % mac,
     "-T", "fields", "-e", "frame.time_epoch", "-e", "frame.interface_id"],
    capture_output=True, text=True)
data_frames = sorted((int(round(float(p[0]) * 1e6)), int(p[1])) for p in
                     (l.split() for l in out.stdout.splitlines()) if len(p) == 2)

print("--- colo (x-checkpoint-delay %d ms)" % delay)
print("bridge: %s" % json.dumps({k: summary.get(k) for k in
      ("end", "checkpoints", "committed", "late", "ignored_events", "malformed_lines", "released", "discarded")}))
for k, what in (("pause", "checkpoint pause (primary, STOP->RESUME)"),
                ("margin", "margin (open acked -> RESUME)"),
                ("open_after_stop", "open acked after STOP")):
    d = summary.get(k) or {}
    print("%-42s n=%s min %s p50 %s p95 %s max %s ms" % (what, d.get("n"), d.get("min_ms"), d.get("p50_ms"), d.get("p95_ms"), d.get("max_ms")))
plain, colo = ping_times("ping-plain.txt"), ping_times("ping-colo.txt")
print("peer -> guest RTT unprotected: n=%d p50 %.2f p95 %.2f ms; under COLO with output commit: n=%d p50 %.2f p95 %.2f max %.2f ms"
      % (len(plain), q(plain, 50), q(plain, 95), len(colo), q(colo, 50), q(colo, 95), q(colo, -1) if colo else float("nan")))

if secondary_died:
    # COLO ended when the secondary died; what the primary's side did until then still counts.
    ends = [e["t_us"] for e in log if e.get("action", {}).get("op") in ("unprotect", "failover")]
    until = ends[0] if ends else 1 << 62
    prot, early = early_frames(until)
    check("colo-no-early-release", not early and len(prot) > 0,
          "%d of %d frames captured before the commit that released them (first: t=%s, frame #%s, released %s)"
          % (len(early), len(prot), *(early[0] if early else ("-", "-", "-"))))
    check("colo-primary-kernel", not kernel_report(read("serialP.log")),
          "the primary guest's kernel reported a fault:\n" + "\n".join("  primary| %s" % l for l in kernel_report(read("serialP.log"))))
    report = kernel_report(read("serialS.log"))
    print("SECONDARY-DIED: the secondary QEMU ended under COLO after %d checkpoints (bridge: %s); %d guest frames on the primary's wire until COLO ended, none before its commit: %s"
          % (len(commits), summary.get("end"), len(prot), "yes" if not early else "NO"))
    if report:
        print("the secondary guest's kernel (serialS.log):")
        for l in report:
            print("  secondary| %s" % l)
    else:
        check("colo-secondary-kernel", False, "the secondary QEMU ended without a guest kernel report (qemuS.log: %s)"
              % " | ".join(read("qemuS.log").strip().splitlines()[-3:]))
    for r in results:
        print(r)
    failed = sum(1 for r in results if not r.startswith("PASS"))
    print("%d passed, %d failed; the secondary's guest died" % (len(results) - failed, failed))
    sys.exit(1 if failed else 3)

check("colo-checkpoints", summary.get("committed", 0) >= 20 and bool(commits),
      "%s checkpoints committed (bridge: %s)" % (summary.get("committed"), read("bridge.err").strip()[-300:]))
# Late checkpoints are safe (not committed at their RESUME, covered by the next commit); too
# many in a row stop the bridge, which this check catches.
check("colo-bridge-to-the-end", summary.get("end") == "the primary's QMP connection ended",
      "the bridge ended with: %s" % summary.get("end"))
check("colo-guest-traffic", len(plain) >= 50 and len(colo) >= 20,
      "%d plain and %d protected ping answers" % (len(plain), len(colo)))

fo = read("failover.txt")
kill_m = re.search(r"kill_us (\d+)", fo)
kill_us = int(kill_m.group(1)) if kill_m else 1 << 62
# The end of the protected run on the primary's wire: the secondary's takeover. A commit sent
# just before the SIGKILL releases its frames just after it (0.85 ms after it, in 1 of 20 runs),
# and they are the primary's; the backup's guest can send only once it runs alone, after the
# takeover (x-colo-lost-heartbeat). After it the Linux bridge floods the backup's broadcasts
# into the primary's TAP too.
take_m = re.search(r"takeover_us (\d+)", fo)
end_us = int(take_m.group(1)) if take_m else kill_us

# No frame before its commit: the guest's frames captured on the primary's wire from the first
# commit until the secondary took over (end_us, above), counted up to each capture time, never
# exceed what the commits sent before that time released. And every released frame is on the wire.
if commits:
    prot, early = early_frames(end_us)
    check("colo-no-early-release", not early and len(prot) > 0,
          "%d of %d frames captured before the commit that released them (first: t=%s, frame #%s, released %s)"
          % (len(early), len(prot), *(early[0] if early else ("-", "-", "-"))))
    released = commits[-1][1] - r0
    check("colo-released-equals-wire", len(prot) == released,
          "%d guest frames on the wire after the first commit, %d released" % (len(prot), released))
    print("guest frames on the primary's wire under COLO: %d; released by %d commits: %d" % (len(prot), len(commits), released))

# Failover (informative: QEMU carries no vfio-user state; see docs/colo.md).
after = [t for t, i in frames if i == 1 and t > kill_us]
hb = [tuple(int(x) for x in m) for m in re.findall(r"HAC-COLO-HB (\d+) rx=(\d+) tx=(\d+) echoed=(\d+)", read("serialS.log"))]
pings_after = ping_times("ping-after.txt")
print("failover: %s" % " | ".join(l.strip() for l in fo.splitlines() if l.strip())[:900])
if after:
    print("INFO failover-traffic: first guest frame on the backup's wire %.1f ms after SIGKILL; %d frames; %d/20 pings answered"
          % ((after[0] - kill_us) / 1000, len(after), len(pings_after)))
else:
    print("INFO failover-traffic: no guest frame on the backup's wire after SIGKILL; %d/20 pings answered" % len(pings_after))
data_after = [t for t, i in data_frames if i == 1 and t > kill_us]
if data_after:
    print("INFO failover-tcp: the guest's stream (TCP data) on the backup's wire again %.1f s after SIGKILL"
          % ((data_after[0] - kill_us) / 1e6))
if hb:
    print("INFO failover-guest: secondary heartbeats %d..%d, echoed %d..%d (TCP stream %s)"
          % (hb[0][0], hb[-1][0], hb[0][3], hb[-1][3],
             "continued" if len(hb) > 3 and hb[-1][3] > hb[len(hb) // 2][3] else "stalled"))
serial_s = read("serialS.log")
revived = re.search(r"HAC-COLO-REVIVED (\S+) (\S+) at HB (\d+)", serial_s)
if revived:
    at = int(revived.group(3))
    before = [h for h in hb if h[0] <= at]
    later = [h for h in hb if h[0] > at]
    grew = bool(before and later and later[-1][3] > before[-1][3])
    print("INFO failover-revive: the guest re-enumerated the VF at heartbeat %d (%s, MAC %s%s); echoed lines %s -> %s: the TCP connection %s"
          % (at, revived.group(1), revived.group(2), ", the same" if revived.group(2).lower() == mac else ", A DIFFERENT ONE",
             before[-1][3] if before else "?", later[-1][3] if later else "?", "survived" if grew else "did not resume"))
    check("colo-failover-keeps-nic", revived.group(2).lower() == mac and grew and len(pings_after) >= 10 and bool(after),
          "after failover: MAC %s, echoed %s -> %s, %d/20 pings answered, %d frames on the backup's wire"
          % (revived.group(2), before[-1][3] if before else "?", later[-1][3] if later else "?", len(pings_after), len(after)))
else:
    print("INFO failover-revive: the guest did not re-enumerate the VF")
    check("colo-failover-keeps-nic", False, "the guest did not re-enumerate the VF (see serialS.log)")
tail = [l for l in serial_s.splitlines() if "igbvf" in l or "HAC-COLO" in l][-8:]
for l in tail:
    print("  secondary| %s" % l.strip())

# Both guests' kernels: no oops, no panic, no warning splat on either console. A guest kernel
# that died takes its QEMU with it (-no-reboot): the secondary must also have answered the
# takeover. On failure the kernel's report is printed as it is, the call trace included.
for side, name in (("primary", "serialP.log"), ("secondary", "serialS.log")):
    report = kernel_report(read(name))
    check("colo-%s-kernel" % side, not report,
          "the %s guest's kernel reported a fault (%s):\n%s" % (side, name, "\n".join("  %s| %s" % (side, l) for l in report)))
# Consistent checkpoints (docs/colo.md): with HAC_COLO_DMA_WRITES=client (the default) every
# write of the primary's VF to guest RAM went to QEMU as a DMA_WRITE, and QEMU applied each one.
if os.environ.get("HAC_COLO_DMA_WRITES", "client") == "client":
    # Read before the SIGKILL: writes in flight at the kill are dropped with the primary.
    stats = read("statsP-before-kill.txt") or read("statsP.txt")
    vf0 = stats.split("VF 0 statistics", 1)[1].split("VF 1 statistics", 1)[0] if "VF 0 statistics" in stats else ""
    def counter(name):
        m = re.search(r"\b%s: (\d+)" % name, vf0)
        return int(m.group(1)) if m else -1
    sent, acked = counter("vfio_user_dma_writes_sent"), counter("vfio_user_dma_writes_acked")
    refused = counter("vfio_user_dma_write_error_replies")
    over, dropped = counter("vfio_user_dma_write_overflows"), counter("vfio_user_dma_writes_dropped")
    print("device writes to guest RAM as DMA_WRITEs QEMU applied: %d sent, %d acknowledged, %d refused, %d overflows, %d dropped, %d bytes"
          % (sent, acked, refused, over, dropped, counter("vfio_user_dma_write_bytes")))
    # At the snapshot a few writes may still be in flight (QEMU applies them on its main loop).
    check("colo-dma-writes-through-qemu", sent > 100 and 0 <= sent - acked <= 64 and refused == 0 and over == 0 and dropped == 0,
          "sent %d, acknowledged %d, refused %d, overflows %d, dropped %d (statsP-before-kill.txt)" % (sent, acked, refused, over, dropped))
check("colo-secondary-took-over", '"running": true' in fo,
      "the secondary QEMU did not run on its own after the takeover (failover.txt: %s; qemuS.log: %s)"
      % (" | ".join(l.strip() for l in fo.splitlines())[-300:], read("qemuS.log").strip().splitlines()[-1:] or "empty"))

for r in results:
    print(r)
failed = sum(1 for r in results if not r.startswith("PASS"))
print("%d passed, %d failed" % (len(results) - failed, failed))
sys.exit(1 if failed else 0)
