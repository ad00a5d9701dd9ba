#!/usr/bin/env bash
# Classifies the serial log of one guest boot of scripts/qemu/run.sh (docs/qemu.md, "Flakiness"):
#
#   scripts/qemu/verdict.sh LOG CASE
#
# prints one line "<verdict> <reason>" and exits 0. The verdicts:
#   pass         the case printed "PASS <case>", no FAIL line, and the guest reached its end marker;
#   no-boot      the guest never reached /init ("HAC-QEMU-BEGIN" missing);
#   guest-stall  our code never ran ("HAC-CASE-RUN" missing: the guest prints it just before the
#                first hac command) and the guest kernel reported a stall (soft lockup, RCU stall):
#                the guest, not our code, is at fault;
#   guest-timer-lost  at any point, the guest kernel reported that a timer due on CPU N did not
#                fire ("Possible timer handling issue on cpu=N") while CPU N sat idle (its idle
#                task in the dump, or RCU's line for it showing it idle): a vCPU halted with a
#                timer due and never woken (QEMU's TCG: docs/qemu.md), which no program in the
#                guest can cause;
#   fail         anything else: a FAIL line, a timeout or a crash after our code started, or a
#                failure without a kernel stall report.
# run.sh retries "no-boot", "guest-stall" and "guest-timer-lost" once; a "fail" is never
# retried. The log may still be growing (run.sh classifies it while the guest runs) and may
# contain CRs.
set -euo pipefail

[ $# = 2 ] || {
    echo "usage: $0 LOG CASE" >&2
    exit 2
}
log=$1
case=$2
[ -r "$log" ] || {
    echo "verdict.sh: cannot read $log" >&2
    exit 2
}

# The guest kernel's stall reports (kernel/watchdog.c, kernel/rcu/tree_stall.h).
STALL='watchdog: BUG: soft lockup - CPU#[0-9]+ stuck|rcu: INFO: rcu_[a-z]+ (self-)?detected (expedited )?stalls?'

# Serial lines end in CR LF; the markers are matched on whole lines.
text=$(tr -d '\r' <"$log")
has() { grep -aqE "$1" <<<"$text"; }

if ! has "^HAC-QEMU-BEGIN $case\$"; then
    echo "no-boot the guest did not reach /init"
    exit 0
fi
if has "^PASS $case\$" && ! has "^FAIL " && has "^HAC-QEMU-END $case\$"; then
    echo "pass"
    exit 0
fi
# Not anchored at the line start: the kernel writes to the serial port directly, so one of its
# messages may end up in front of the marker on the same line.
if ! has "HAC-CASE-RUN $case([^a-z0-9-]|\$)"; then
    stall=$(grep -aoE -m1 "$STALL" <<<"$text" || true)
    if [ -n "$stall" ]; then
        echo "guest-stall the guest kernel reported \"$stall\" before the case's first hac command"
        exit 0
    fi
fi
# Checked after our code started too: an idle CPU whose timer is not delivered is the platform's
# fault whatever the programs on the other CPU do (docs/qemu.md, "Flakiness", item 2). A FAIL
# line does not rule it out: the lost timer stalls the guest ~21 s before the kernel reports it,
# long enough for the case's own timeouts to expire.
lost=$(grep -aoE -m1 'Possible timer handling issue on cpu=[0-9]+' <<<"$text" || true)
if [ -n "$lost" ]; then
    n=${lost##*=}
    if has "CPU: $n UID: [0-9]+ PID: 0 Comm: swapper/$n( |\$)" ||
        has "rcu:[[:space:]]+$n-[^:]*: \([^)]*\) idle=[0-9a-f]+/0/0x0 " ||
        has "NMI backtrace for cpu $n skipped: idling"; then
        echo "guest-timer-lost the guest kernel reported a timer on idle CPU $n not delivered (\"$lost\")"
        exit 0
    fi
fi
fail=$(grep -a -m1 "^FAIL " <<<"$text" || true)
if [ -n "$fail" ]; then
    echo "fail ${fail#"FAIL $case: "}"
elif ! has "^HAC-QEMU-END $case\$"; then
    echo "fail guest did not finish"
else
    echo "fail no PASS line"
fi
