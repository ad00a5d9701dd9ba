//! Re-protection: after a takeover the live node runs unprotected until a fresh backup joins,
//! catches up and acks its first epoch; from then on the service is checkpointed again
//! (docs/failover.md, "Re-protection").
//!
//! * [`History`]: every step the service took since time 0 (the steps replayed from the old
//!   primary's logs, then the node's own), bounded in bytes. The catch-up is that history:
//!   smoltcp's socket state cannot be copied, so a fresh replica reaches the live service's state
//!   the same way the first backup did, by replaying its inputs.
//! * [`Protection`]: the live side's epoch state over the [`Hac`] API — tag the service VF,
//!   open an epoch per boundary and ship its log, commit what the backup acks, unprotect when
//!   the backup is lost — the same on the first primary and on a backup that took over and was
//!   joined.
//! * [`join_reply`]: what the live node sends a joining backup (hello, then the history in
//!   bounded chunks); [`replay`]: what a backup does with a log or a catch-up chunk.

use hac_driver::hac::{Hac, HacError, VfNumber};

use crate::msg::{Message, Step, step_len};
use crate::service::Service;

/// Largest catch-up chunk, bytes of steps (a chunk is one message, far below
/// [`crate::msg::MAX_PAYLOAD`], so the joining backup's bounded reader queue holds at most
/// 64 of them).
pub const CATCHUP_CHUNK_BYTES: usize = 256 * 1024;

/// Default bound of the step history, bytes (`--history-mib`).
pub const DEFAULT_HISTORY_BYTES: u64 = 64 << 20;

/// The service's steps since time 0, in order, at most `limit` bytes (encoded size). Past the
/// limit the history is dropped (its memory freed) and marked lost: this node can then no
/// longer protect anyone, and says so when a backup tries to join.
#[derive(Debug)]
pub struct History {
    steps: Vec<Step>,
    bytes: u64,
    limit: u64,
    lost: bool,
}

impl History {
    /// An empty history bounded to `limit` bytes.
    pub fn new(limit: u64) -> History {
        History {
            steps: Vec::new(),
            bytes: 0,
            limit,
            lost: false,
        }
    }

    /// Appends a step (nothing once the history is lost).
    pub fn record(&mut self, step: &Step) {
        if self.lost {
            return;
        }
        let len = step_len(step) as u64;
        if self.bytes + len > self.limit {
            self.lost = true;
            self.steps = Vec::new();
            self.bytes = 0;
            return;
        }
        self.bytes += len;
        self.steps.push(step.clone());
    }

    /// Steps held.
    pub fn len(&self) -> usize {
        self.steps.len()
    }

    /// Whether no step is held.
    pub fn is_empty(&self) -> bool {
        self.steps.is_empty()
    }

    /// Encoded bytes held.
    pub fn bytes(&self) -> u64 {
        self.bytes
    }

    /// Whether the history outgrew its limit (and is gone).
    pub fn is_lost(&self) -> bool {
        self.lost
    }

    /// The history as catch-up messages of at most [`CATCHUP_CHUNK_BYTES`] of steps each (a
    /// step larger than that travels alone), the last one flagged; an empty history is one
    /// empty last chunk.
    pub fn catchup(&self) -> Vec<Message> {
        let mut out = Vec::new();
        let mut steps = Vec::new();
        let mut bytes = 0;
        for s in &self.steps {
            let len = step_len(s);
            if !steps.is_empty() && bytes + len > CATCHUP_CHUNK_BYTES {
                out.push(Message::Catchup {
                    chunk: out.len() as u32,
                    last: false,
                    steps: std::mem::take(&mut steps),
                });
                bytes = 0;
            }
            bytes += len;
            steps.push(s.clone());
        }
        out.push(Message::Catchup {
            chunk: out.len() as u32,
            last: true,
            steps,
        });
        out
    }
}

/// Why a join is refused.
#[derive(Clone, Copy, Debug, PartialEq, Eq, thiserror::Error)]
pub enum JoinRefused {
    /// This node is not serving (a standby backup cannot protect anyone).
    #[error("this node is not live")]
    NotLive,
    /// The service is protected by another backup already.
    #[error("already protected by a backup")]
    AlreadyProtected,
    /// The history outgrew its bound: a replica can no longer be built by replay.
    #[error("the step history outgrew its limit; a new backup cannot catch up")]
    HistoryLost,
    /// This node lost its lease at the arbiter and stopped serving.
    #[error("this node is fenced (no lease)")]
    Fenced,
    /// The joining node's id is 0, above `u32::MAX` or this node's own: it cannot be named as
    /// the standby at the lease arbiter.
    #[error("the joining node's id cannot name a standby at the arbiter")]
    BadNodeId,
}

/// What the live node sends a joining backup: the hello (the service's seed and its time base,
/// with any takeover clock jump folded in so the replica's time matches) and the history.
pub fn join_reply(
    history: &History,
    time_base_us: u64,
    clock_jump_us: i64,
    seed: u64,
    epoch_us: u32,
) -> Result<Vec<Message>, JoinRefused> {
    if history.is_lost() {
        return Err(JoinRefused::HistoryLost);
    }
    let mut out = vec![Message::Hello {
        time_base_us: time_base_us.wrapping_sub(clock_jump_us as u64),
        seed,
        epoch_us,
    }];
    out.extend(history.catchup());
    Ok(out)
}

/// A backup applies `steps` (a log or a catch-up chunk) to its replica, output suppressed, and
/// records them in its own history (it may be the live node one day); returns the frames the
/// replica produced (and that are not sent).
pub fn replay(service: &mut Service, history: &mut History, steps: &[Step]) -> u64 {
    let mut suppressed = 0;
    for s in steps {
        suppressed += service.step(s).len() as u64;
        history.record(s);
    }
    suppressed
}

/// Why an epoch could not be closed.
#[derive(Debug, thiserror::Error)]
pub enum EpochError {
    /// The HAC layer refused.
    #[error("HAC: {0}")]
    Hac(#[from] HacError),
    /// The VF used every checkpoint epoch (docs/hac.md: epoch rules).
    #[error("the service VF used every checkpoint epoch")]
    Exhausted,
}

/// The live node's checkpointing state for the service VF.
#[derive(Debug)]
pub struct Protection {
    vf: VfNumber,
    protected: bool,
    open_epoch: u32,
    committed: u32,
    log: Vec<Step>,
    /// Epochs committed since the last [`Protection::protect`].
    pub commits: u64,
}

impl Protection {
    /// Unprotected (the VF is not tagged).
    pub fn new(vf: VfNumber) -> Protection {
        Protection {
            vf,
            protected: false,
            open_epoch: 1,
            committed: 0,
            log: Vec::new(),
            commits: 0,
        }
    }

    /// Tags the VF: epoch 1 open, nothing committed; from now on steps are logged and output
    /// is held until the backup acks its epoch.
    pub fn protect<H: Hac + ?Sized>(&mut self, hac: &mut H) -> Result<(), HacError> {
        hac.set_tagged(self.vf, true)?;
        self.protected = true;
        self.open_epoch = 1;
        self.committed = 0;
        self.commits = 0;
        self.log.clear();
        Ok(())
    }

    /// Backup lost: release everything held, stop buffering.
    pub fn unprotect<H: Hac + ?Sized>(&mut self, hac: &mut H) -> Result<(), HacError> {
        hac.unprotect(self.vf)?;
        self.protected = false;
        self.log.clear();
        Ok(())
    }

    /// Whether the VF is tagged and epochs run.
    pub fn is_protected(&self) -> bool {
        self.protected
    }

    /// The epoch new output is stamped with.
    pub fn open_epoch(&self) -> u32 {
        self.open_epoch
    }

    /// The last committed epoch.
    pub fn committed(&self) -> u32 {
        self.committed
    }

    /// Logs a step of the open epoch (nothing when unprotected).
    pub fn log_step(&mut self, step: Step) {
        if self.protected {
            self.log.push(step);
        }
    }

    /// Epoch boundary: opens the next epoch and returns the closed one's log to ship (`None`
    /// when unprotected).
    pub fn close_epoch<H: Hac + ?Sized>(
        &mut self,
        hac: &mut H,
    ) -> Result<Option<Message>, EpochError> {
        if !self.protected {
            return Ok(None);
        }
        let closed = self.open_epoch;
        let next = adapter_core::next_epoch(closed).ok_or(EpochError::Exhausted)?;
        hac.open_epoch(self.vf, next)?;
        self.open_epoch = next;
        Ok(Some(Message::Log {
            epoch: closed,
            steps: std::mem::take(&mut self.log),
        }))
    }

    /// The backup acked `epoch`: commit it if it is closed and not committed yet; whether it
    /// was committed (stale, future or unprotected acks are ignored).
    pub fn on_ack<H: Hac + ?Sized>(&mut self, hac: &mut H, epoch: u32) -> Result<bool, HacError> {
        if !self.protected || epoch <= self.committed || epoch >= self.open_epoch {
            return Ok(false);
        }
        hac.commit(self.vf, epoch)?;
        self.committed = epoch;
        self.commits += 1;
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use bytes::Bytes;

    fn step(at_us: i64, len: usize) -> Step {
        Step {
            at_us,
            frames: vec![Bytes::from(vec![7u8; len])],
        }
    }

    #[test]
    fn history_is_bounded_and_lost_past_its_limit() {
        let mut h = History::new(100);
        h.record(&step(1, 50)); // 10 + 2 + 50 = 62 bytes
        assert_eq!((h.len(), h.bytes(), h.is_lost()), (1, 62, false));
        h.record(&step(2, 50));
        assert!(h.is_lost());
        assert_eq!((h.len(), h.bytes()), (0, 0));
        h.record(&step(3, 0));
        assert!(h.is_empty());
        assert_eq!(
            join_reply(&h, 0, 0, 1, 20_000),
            Err(JoinRefused::HistoryLost)
        );
    }

    #[test]
    fn catchup_chunks_are_bounded_ordered_and_complete() {
        let mut h = History::new(u64::MAX);
        for i in 0..600 {
            h.record(&step(i, 1000));
        }
        let msgs = h.catchup();
        assert!(msgs.len() >= 3);
        let mut all = Vec::new();
        for (i, m) in msgs.iter().enumerate() {
            let Message::Catchup { chunk, last, steps } = m else {
                panic!("not a catch-up: {m:?}");
            };
            assert_eq!((*chunk as usize, *last), (i, i + 1 == msgs.len()));
            assert!(steps.iter().map(step_len).sum::<usize>() <= CATCHUP_CHUNK_BYTES);
            all.extend(steps.iter().map(|s| s.at_us));
        }
        assert_eq!(all, (0..600).collect::<Vec<_>>());
        assert_eq!(
            History::new(10).catchup(),
            vec![Message::Catchup {
                chunk: 0,
                last: true,
                steps: vec![]
            }]
        );
    }

    #[test]
    fn the_hello_folds_the_takeover_clock_jump_into_the_time_base() {
        let m = join_reply(&History::new(1), 5_000_000, 1_000_000, 9, 20_000).unwrap();
        assert_eq!(
            m[0],
            Message::Hello {
                time_base_us: 4_000_000,
                seed: 9,
                epoch_us: 20_000
            }
        );
    }
}
