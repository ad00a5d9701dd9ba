//! The epoch vocabulary of HAC, the same for every device family and for SoftHac.
//!
//! A checkpointing function's frames are stamped with its *open* epoch. A commit of `e`
//! releases the held frames with epoch ≤ `e`, an abort of `e` discards them; either way `e`
//! becomes *resolved*. An operation on epoch `e` is valid when `resolved < e ≤ open`
//! ([`EpochState::resolvable`]); opening `e` is valid when `open < e ≤ LAST_EPOCH`
//! ([`EpochState::openable`]). docs/hac.md states the rules for operators.

/// The last valid epoch. Epochs of a tagged function run 1..=`LAST_EPOCH`; `u32::MAX` is
/// reserved (opening it is refused with BadEpoch), so a stamped epoch can never equal the
/// largest value a commit can resolve. At 1 ms epochs that is 49.7 days; the checkpoint engine
/// re-tags the function (untag with nothing held, tag: epoch 1 open) before it runs out.
pub const LAST_EPOCH: u32 = u32::MAX - 1;

/// The epoch after `epoch`, or `None` when `epoch` is [`LAST_EPOCH`] (or beyond): the engine
/// must re-tag the function instead of wrapping.
pub const fn next_epoch(epoch: u32) -> Option<u32> {
    if epoch < LAST_EPOCH {
        Some(epoch + 1)
    } else {
        None
    }
}

/// The epoch state of one function.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct EpochState {
    /// Frames are stamped and held.
    pub tagged: bool,
    /// The open epoch new frames are stamped with.
    pub open: u32,
    /// The last committed epoch.
    pub committed: u32,
    /// The last epoch resolved by a commit or an abort (held frames are those above it).
    pub resolved: u32,
}

impl EpochState {
    /// The state right after tagging: epoch 1 open, nothing committed or resolved.
    pub const TAGGED: EpochState = EpochState {
        tagged: true,
        open: 1,
        committed: 0,
        resolved: 0,
    };

    /// Whether `epoch` may be opened: it grows and is at most [`LAST_EPOCH`].
    pub const fn openable(&self, epoch: u32) -> bool {
        epoch > self.open && epoch <= LAST_EPOCH
    }

    /// Whether `epoch` may be committed or aborted: `resolved < epoch ≤ open`.
    pub const fn resolvable(&self, epoch: u32) -> bool {
        epoch > self.resolved && epoch <= self.open
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_last_epoch_has_no_successor() {
        assert_eq!(next_epoch(1), Some(2));
        assert_eq!(next_epoch(LAST_EPOCH - 1), Some(LAST_EPOCH));
        assert_eq!(next_epoch(LAST_EPOCH), None);
        assert_eq!(next_epoch(u32::MAX), None);
    }

    #[test]
    fn valid_epochs_lie_between_resolved_and_open() {
        let s = EpochState {
            open: 5,
            resolved: 2,
            ..EpochState::TAGGED
        };
        assert!(!s.resolvable(2) && s.resolvable(3) && s.resolvable(5) && !s.resolvable(6));
        assert!(!s.openable(5) && s.openable(6) && s.openable(LAST_EPOCH));
        assert!(!s.openable(u32::MAX));
    }
}
