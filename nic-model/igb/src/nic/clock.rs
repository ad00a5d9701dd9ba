//! Virtual time: the event loop that sends frames on the wire at line rate and continues TX
//! queues paced by their fetch budget (docs/model.md §5.4).
//!
//! Doorbells do their work at the current time; [`Nic::advance_to`] moves time forward event
//! by event, so a run is reproducible bit for bit. Each step looks its two kinds of event up
//! once ([`NextEvents`]) and lends the engines only when a paced queue is due.

use super::Nic;
use crate::pool_of;
use adapter_core::clock::SimTime;

/// The next wire start and the next paced TX continuation, as looked up before a step.
#[derive(Clone, Copy, Debug)]
struct NextEvents {
    wire: Option<SimTime>,
    resume: Option<SimTime>,
}

impl NextEvents {
    /// The earlier of the two.
    fn at(self) -> Option<SimTime> {
        match (self.wire, self.resume) {
            (Some(w), Some(f)) => Some(w.min(f)),
            (w, f) => w.or(f),
        }
    }
}

impl Nic {
    /// Current virtual time.
    pub fn now(&self) -> SimTime {
        self.now
    }

    /// Runs the device until `t`, event by event: the wire sends what is ready, TX queues that
    /// stopped on their run budget continue when their fetch pace allows (docs/model.md §5.4),
    /// and TX queues held back by a full egress stage resume as room frees up. Going backwards
    /// is ignored.
    pub fn advance_to(&mut self, t: SimTime) {
        loop {
            let next = self.next_events();
            match next.at() {
                Some(at) if at <= t => self.step_to(at, next),
                _ => break,
            }
        }
        self.now = self.now.max(t);
    }

    /// The next time something happens, each kind looked up once: a frame starts on the wire
    /// or a paced TX queue may fetch again.
    fn next_events(&self) -> NextEvents {
        NextEvents {
            wire: self.next_wire_start(),
            resume: self.tx.next_resume(),
        }
    }

    /// Moves to `at` (the earliest of `next`, looked up in the current state) and handles what
    /// is due there: paced TX queues run, then one frame starts on the wire if one is ready.
    /// Each call makes progress: a queue that runs consumes descriptors or moves its pace past
    /// `at`, and a wire start dequeues a frame.
    fn step_to(&mut self, at: SimTime, next: NextEvents) {
        self.now = self.now.max(at);
        let mut wire = next.wire;
        if next.resume.is_some_and(|r| r <= self.now) {
            self.continue_pending_tx();
            // The queues that ran may have queued frames: the wire start is looked up again.
            wire = self.next_wire_start();
        }
        if let Some(start) = wire.filter(|&s| s <= self.now) {
            self.transmit_one(start);
        }
    }

    /// Runs the device for `ns` nanoseconds.
    pub fn advance_by(&mut self, ns: u64) {
        self.advance_to(self.now + ns);
    }

    /// Runs until the egress stage is empty and no TX queue has work pending from its run
    /// budget; returns the time the last frame finished.
    pub fn drain(&mut self) -> SimTime {
        // Each pending run consumes descriptors, so this ends at the rings' tails.
        loop {
            let next = self.next_events();
            let Some(at) = next.at() else { break };
            self.step_to(at, next);
        }
        self.now = self.now.max(self.wire.busy_until());
        self.now
    }

    fn next_wire_start(&self) -> Option<SimTime> {
        let ready = self.egress.earliest_ready()?;
        Some(ready.max(self.wire.busy_until()))
    }

    fn transmit_one(&mut self, start: SimTime) {
        let Some(sent) = self.egress.transmit_next(&mut self.wire, start) else {
            return;
        };
        let vport = sent.pool;
        self.counters.sink_errors += sent.sink_errors;
        // Room freed: let queues of this pool that were held back fetch again.
        if let Some(pool) = pool_of(vport) {
            self.resume_backpressured(pool);
        }
    }
}
