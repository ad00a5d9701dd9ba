//! The HAC contract of docs/hac.md, stated once as checks generic over any [`Hac`]
//! implementation: exact epochs, FIFO per VF, discard on abort and failover, release on
//! unprotect, backpressure without loss, the epoch rules, zero limits, bad VF numbers, and the
//! priority of released frames.
//!
//! An implementation takes part through a [`HacHarness`]: it sends frames on a VF, lets time
//! pass, and shows what reached the wire. Each check builds its frames itself (an EtherType and a
//! magic word, then the VF number and a sequence number), so it can tell from the wire alone which
//! frame left and in which order. Where an implementation legitimately differs from the adapter
//! extension (docs/hac.md, "Two implementations, one API"), its harness says so in
//! [`Differences`] and the check states the behaviour of each side; nothing is skipped.
//!
//! Every check expects a fresh harness. [`hac_conformance_tests!`](crate::hac_conformance_tests)
//! turns a harness constructor into one `#[test]` per check; `tests/tests/hac_conformance.rs`
//! runs the suite against the 82576 extension (`AdapterHac`) and against `SoftHac`, both on the
//! model; `hac_conformance_mlx5.rs` against the mlx5 model's own `Hac`, and
//! `hac_conformance_mlx5_driver.rs` against `Mlx5AdapterHac` with the mlx5 VF driver sending. A
//! new family runs it by writing a harness and invoking the macro.

// A check fails the way `assert!` does: by panicking in the test that runs it.
#![allow(clippy::panic)]

use adapter_core::hac::{Hac, HacError, HacVfStats, VfNumber};
use adapter_core::{EpochState, LAST_EPOCH};
use bytes::Bytes;
use hw_common::MacAddress;

/// How an implementation is driven by the checks.
pub trait HacHarness {
    /// The implementation under test.
    type Hac: Hac;

    /// A short name for failure messages.
    fn name(&self) -> &'static str;
    /// Where this implementation differs from the adapter extension, as docs/hac.md says.
    fn differences(&self) -> Differences;
    /// The implementation.
    fn hac(&mut self) -> &mut Self::Hac;
    /// VFs 0..`num_vfs` exist (the checks need at least 2); higher numbers do not.
    fn num_vfs(&self) -> u16;
    /// The source MAC address frames of `vf` must carry.
    fn mac(&self, vf: VfNumber) -> MacAddress;
    /// Offers `frames` on `vf` in order; returns how many were accepted (a prefix). The caller
    /// keeps the rest (backpressure) and offers them again later.
    fn send(&mut self, vf: VfNumber, frames: &[Bytes]) -> usize;
    /// Frames of `vf` accepted by [`HacHarness::send`] that the implementation has not taken
    /// into its HAC buffer yet, so they are neither buffered, sent nor discarded (the
    /// extension's frames still in the VF's TX ring). Read after [`HacHarness::advance`].
    fn queued(&mut self, vf: VfNumber) -> u64;
    /// Lets `ns` nanoseconds of device time pass, doing whatever the implementation needs
    /// regularly (SoftHac's `pump`).
    fn advance(&mut self, ns: u64);
    /// The frames that reached the wire since the last call, in wire order.
    fn take_wire(&mut self) -> Vec<Bytes>;
}

/// The documented differences of an implementation from the adapter extension.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Differences {
    /// When a frame is stamped with the open epoch.
    pub stamping: Stamping,
    /// How released frames compete with frames of VFs that are not checkpointing.
    pub priority: Priority,
}

/// When a frame is stamped with its VF's open epoch.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Stamping {
    /// When the adapter's TX engine takes it from the ring: a frame still in the ring when an
    /// epoch opens gets the new epoch (held longer, never shorter).
    AtFetch,
    /// When the implementation accepts it (`send`).
    AtSend,
}

/// How released checkpoint frames compete with plain frames on the wire.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Priority {
    /// Strict priority in the egress stage: with guard 0, released frames leave before every
    /// waiting plain frame.
    StrictOnTheWire,
    /// Released frames are handed to the hardware first, but once frames sit in different VFs'
    /// rings the adapter's own round robin decides: they interleave with plain frames.
    AdapterArbitration,
}

/// Time for the implementation to take frames just sent (the extension's TX engine fetches them)
/// while the wire is otherwise idle.
const TAKE_NS: u64 = 200_000;
/// One step of [`settle`].
const SETTLE_STEP_NS: u64 = 1_000_000;
/// EtherType of the suite's frames (IEEE local experimental).
const ETHERTYPE: u16 = 0x88B5;
/// First payload bytes of the suite's frames.
const MAGIC: [u8; 4] = *b"HACC";
/// Destination of every frame: a peer outside the adapter, so nothing is switched locally.
const PEER: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);
/// Length of the suite's frames unless a check needs others.
const LEN: usize = 200;

/// A frame seen on the wire: the VF that sent it and its sequence number on that VF.
type Seen = (VfNumber, u32);

/// The suite's view of one run: what each VF has had accepted, and what reached the wire.
struct Run<'h, H: HacHarness> {
    h: &'h mut H,
    /// Per VF: the next sequence number (= frames accepted so far).
    next_seq: Vec<u32>,
    /// Every frame seen on the wire, in order.
    wire: Vec<Seen>,
}

impl<'h, H: HacHarness> Run<'h, H> {
    fn new(h: &'h mut H) -> Self {
        assert!(h.num_vfs() >= 2, "{}: the suite needs two VFs", h.name());
        let n = usize::from(h.num_vfs());
        Run {
            h,
            next_seq: vec![0; n],
            wire: Vec::new(),
        }
    }

    fn name(&self) -> &'static str {
        self.h.name()
    }

    /// Frames `seqs` of `vf`, `len` bytes each.
    fn frames(&self, vf: VfNumber, seqs: std::ops::Range<u32>, len: usize) -> Vec<Bytes> {
        seqs.map(|seq| {
            let mut payload = Vec::with_capacity(len);
            payload.extend_from_slice(&MAGIC);
            payload.extend_from_slice(&(vf.get() as u16).to_be_bytes());
            payload.extend_from_slice(&seq.to_be_bytes());
            let mut f = hw_common::frame::build(PEER, self.h.mac(vf), ETHERTYPE, &payload);
            f.resize(len.max(f.len()), 0);
            Bytes::from(f)
        })
        .collect()
    }

    /// Offers `n` new frames of `len` bytes on `vf`; returns how many were accepted.
    fn offer_len(&mut self, vf: VfNumber, n: u32, len: usize) -> u32 {
        let first = self.next_seq[vf.get()];
        let frames = self.frames(vf, first..first + n, len);
        let accepted = self.h.send(vf, &frames);
        assert!(
            accepted <= frames.len(),
            "{}: accepted more than offered",
            self.name()
        );
        self.next_seq[vf.get()] += accepted as u32;
        accepted as u32
    }

    /// Offers `n` new frames on `vf` and expects all of them to be accepted, then gives the
    /// implementation time to take them.
    fn send(&mut self, vf: VfNumber, n: u32) {
        let accepted = self.offer_len(vf, n, LEN);
        assert_eq!(
            accepted,
            n,
            "{}: VF {vf} refused frames below its limit",
            self.name()
        );
        self.h.advance(TAKE_NS);
    }

    /// Moves frames from the wire into `self.wire`; returns them.
    fn observe(&mut self) -> Vec<Seen> {
        let name = self.name();
        let seen: Vec<Seen> = self
            .h
            .take_wire()
            .iter()
            .map(|f| {
                decode(f).unwrap_or_else(|| panic!("{name}: a foreign frame on the wire: {f:02x?}"))
            })
            .collect();
        self.wire.extend_from_slice(&seen);
        seen
    }

    /// Lets time pass until the wire has been quiet for three steps; returns what left.
    fn settle(&mut self) -> Vec<Seen> {
        let mut out = Vec::new();
        let mut quiet = 0;
        for _ in 0..1000 {
            self.h.advance(SETTLE_STEP_NS);
            let seen = self.observe();
            quiet = if seen.is_empty() { quiet + 1 } else { 0 };
            out.extend(seen);
            if quiet == 3 {
                return out;
            }
        }
        panic!("{}: the wire never went quiet", self.name());
    }

    /// What left since the last observation, as sequence numbers of `vf` (checks that no other
    /// VF sent).
    fn settle_only(&mut self, vf: VfNumber) -> Vec<u32> {
        let seen = self.settle();
        let name = self.name();
        seen.iter()
            .map(|&(v, s)| {
                assert_eq!(v, vf, "{name}: a frame of VF {v} left unexpectedly");
                s
            })
            .collect()
    }

    fn stats(&mut self, vf: VfNumber) -> HacVfStats {
        let r = self.h.hac().stats(vf);
        r.unwrap_or_else(|e| panic!("{}: stats of VF {vf}: {e}", self.name()))
    }

    /// Runs a HAC operation that must succeed.
    fn ok(&mut self, what: &str, op: impl FnOnce(&mut H::Hac) -> Result<(), HacError>) {
        let r = op(self.h.hac());
        assert_eq!(r, Ok(()), "{}: {what}", self.name());
    }

    /// Every frame `vf` had accepted is on the wire, discarded, buffered or still queued, once:
    /// sent + discarded + held = offered. Returns the stats read.
    fn assert_conserved(&mut self, vf: VfNumber) -> HacVfStats {
        let st = self.stats(vf);
        let queued = self.h.queued(vf);
        let on_wire = self.wire.iter().filter(|(v, _)| *v == vf).count() as u64;
        let accepted = u64::from(self.next_seq[vf.get()]);
        assert_eq!(
            on_wire + st.discarded + u64::from(st.buffered_frames) + queued,
            accepted,
            "{}: VF {vf}: {on_wire} on the wire + {} discarded + {} buffered + {queued} queued \
             is not the {accepted} accepted",
            self.name(),
            st.discarded,
            st.buffered_frames
        );
        st
    }

    /// Each VF's frames reached the wire in the order they were accepted, none twice.
    fn assert_fifo(&self) {
        for (vf, _) in self.next_seq.iter().enumerate() {
            let seqs: Vec<u32> = self
                .wire
                .iter()
                .filter(|(v, _)| v.get() == vf)
                .map(|&(_, s)| s)
                .collect();
            assert!(
                seqs.windows(2).all(|w| w[0] < w[1]),
                "{}: VF {vf} left out of order or twice: {seqs:?}",
                self.name()
            );
        }
    }
}

/// The VF and sequence number of a suite frame.
fn decode(frame: &[u8]) -> Option<Seen> {
    let ethertype = u16::from_be_bytes([*frame.get(12)?, *frame.get(13)?]);
    if ethertype != ETHERTYPE || frame.get(14..18)? != MAGIC {
        return None;
    }
    let vf = u16::from_be_bytes([*frame.get(18)?, *frame.get(19)?]);
    let seq = u32::from_be_bytes([
        *frame.get(20)?,
        *frame.get(21)?,
        *frame.get(22)?,
        *frame.get(23)?,
    ]);
    Some((VfNumber::new(vf), seq))
}

const VF0: VfNumber = VfNumber::new(0);
const VF1: VfNumber = VfNumber::new(1);

/// Contract 2: a frame of epoch e leaves only after a commit of an epoch ≥ e, and a commit of e
/// releases nothing of e + 1. Released frames leave in FIFO order.
pub fn commit_releases_exactly_the_epochs_up_to_it<H: HacHarness>(h: &mut H) {
    let mut r = Run::new(h);
    r.ok("tag", |h| h.set_tagged(VF0, true));
    r.send(VF0, 3); // epoch 1: 0..3
    r.ok("open 2", |h| h.open_epoch(VF0, 2));
    r.send(VF0, 2); // epoch 2: 3..5
    r.ok("open 3", |h| h.open_epoch(VF0, 3));
    r.send(VF0, 1); // epoch 3: 5
    assert_eq!(
        r.settle(),
        vec![],
        "{}: nothing leaves before its commit",
        r.name()
    );
    let st = r.assert_conserved(VF0);
    assert_eq!(
        (st.open_epoch, st.committed_epoch, st.buffered_frames),
        (3, 0, 6),
        "{}: open, committed, buffered",
        r.name()
    );
    r.ok("commit 1", |h| h.commit(VF0, 1));
    assert_eq!(r.settle_only(VF0), vec![0, 1, 2], "{}: commit 1", r.name());
    r.ok("commit 2", |h| h.commit(VF0, 2));
    assert_eq!(r.settle_only(VF0), vec![3, 4], "{}: commit 2", r.name());
    assert_eq!(
        r.stats(VF0).buffered_frames,
        1,
        "{}: epoch 3 still held",
        r.name()
    );

    // One commit covers every epoch up to it.
    r.ok("open 4", |h| h.open_epoch(VF0, 4));
    r.send(VF0, 2); // epoch 4: 6..8
    r.ok("open 6", |h| h.open_epoch(VF0, 6));
    r.send(VF0, 2); // epoch 6: 8..10
    r.ok("open 7", |h| h.open_epoch(VF0, 7));
    r.send(VF0, 1); // epoch 7: 10
    r.ok("commit 6", |h| h.commit(VF0, 6));
    assert_eq!(
        r.settle_only(VF0),
        vec![5, 6, 7, 8, 9],
        "{}: commit 6 releases epochs 3, 4 and 6, not 7",
        r.name()
    );
    let st = r.assert_conserved(VF0);
    assert_eq!(
        (
            st.committed_epoch,
            st.buffered_frames,
            st.released,
            st.discarded
        ),
        (6, 1, 10, 0),
        "{}: committed, buffered, released, discarded",
        r.name()
    );
    assert!(
        st.max_frames >= 6,
        "{}: max_frames {}",
        r.name(),
        st.max_frames
    );
    r.assert_fifo();
}

/// Contract 3 (FIFO per VF) and epochs per VF: two checkpointing VFs with interleaved sends and
/// commits out of step; each VF's commit releases its own frames only, each in its own order.
pub fn each_vf_has_its_own_epochs_and_fifo<H: HacHarness>(h: &mut H) {
    let mut r = Run::new(h);
    r.ok("tag 0", |h| h.set_tagged(VF0, true));
    r.ok("tag 1", |h| h.set_tagged(VF1, true));
    r.send(VF0, 2);
    r.send(VF1, 2);
    r.ok("open 0:2", |h| h.open_epoch(VF0, 2));
    r.ok("open 1:2", |h| h.open_epoch(VF1, 2));
    r.send(VF1, 2);
    r.send(VF0, 2);
    r.ok("commit 1:2", |h| h.commit(VF1, 2));
    assert_eq!(
        r.settle_only(VF1),
        vec![0, 1, 2, 3],
        "{}: VF 1's commit",
        r.name()
    );
    r.ok("commit 0:1", |h| h.commit(VF0, 1));
    assert_eq!(
        r.settle_only(VF0),
        vec![0, 1],
        "{}: VF 0's commit 1",
        r.name()
    );
    r.ok("commit 0:2", |h| h.commit(VF0, 2));
    assert_eq!(
        r.settle_only(VF0),
        vec![2, 3],
        "{}: VF 0's commit 2",
        r.name()
    );
    r.assert_conserved(VF0);
    r.assert_conserved(VF1);
    r.assert_fifo();
}

/// Contract 4: an abort of e discards exactly the held frames of epochs in (resolved, e], never
/// sends them, counts them, and leaves later epochs held.
pub fn abort_discards_exactly_the_epochs_it_covers<H: HacHarness>(h: &mut H) {
    let mut r = Run::new(h);
    r.ok("tag", |h| h.set_tagged(VF0, true));
    r.send(VF0, 2); // epoch 1: 0, 1
    r.ok("open 2", |h| h.open_epoch(VF0, 2));
    r.send(VF0, 2); // epoch 2: 2, 3
    r.ok("open 3", |h| h.open_epoch(VF0, 3));
    r.send(VF0, 2); // epoch 3: 4, 5
    r.ok("commit 1", |h| h.commit(VF0, 1));
    assert_eq!(r.settle_only(VF0), vec![0, 1], "{}: commit 1", r.name());
    r.ok("abort 2", |h| h.abort(VF0, 2));
    assert_eq!(r.settle(), vec![], "{}: an abort sends nothing", r.name());
    let st = r.assert_conserved(VF0);
    assert_eq!(
        (st.discarded, st.buffered_frames),
        (2, 2),
        "{}: abort 2 discards epoch 2 only",
        r.name()
    );
    // An abort covers every unresolved epoch up to it.
    r.ok("open 4", |h| h.open_epoch(VF0, 4));
    r.send(VF0, 1); // epoch 4: 6
    r.ok("open 5", |h| h.open_epoch(VF0, 5));
    r.send(VF0, 2); // epoch 5: 7, 8
    r.ok("abort 4", |h| h.abort(VF0, 4));
    let st = r.assert_conserved(VF0);
    assert_eq!(
        (st.discarded, st.buffered_frames),
        (5, 2),
        "{}: abort 4 discards epochs 3 and 4",
        r.name()
    );
    r.ok("commit 5", |h| h.commit(VF0, 5));
    assert_eq!(
        r.settle_only(VF0),
        vec![7, 8],
        "{}: epoch 5 survives, in order",
        r.name()
    );
    let st = r.assert_conserved(VF0);
    assert_eq!(
        (st.released, st.discarded, st.buffered_frames),
        (4, 5, 0),
        "{}: released, discarded, buffered",
        r.name()
    );
    r.assert_fifo();
}

/// Contract 4: failover discards every held frame of the VF (and resolves the open epoch);
/// released frames are not taken back, and the VF keeps working.
pub fn failover_discards_every_held_frame<H: HacHarness>(h: &mut H) {
    let mut r = Run::new(h);
    r.ok("tag", |h| h.set_tagged(VF0, true));
    r.send(VF0, 2); // epoch 1
    r.ok("open 2", |h| h.open_epoch(VF0, 2));
    r.send(VF0, 3); // epoch 2
    r.ok("open 3", |h| h.open_epoch(VF0, 3));
    r.send(VF0, 1); // epoch 3
    r.ok("commit 1", |h| h.commit(VF0, 1));
    assert_eq!(r.settle_only(VF0), vec![0, 1], "{}: commit 1", r.name());
    r.ok("failover", |h| h.failover(VF0));
    assert_eq!(r.settle(), vec![], "{}: a failover sends nothing", r.name());
    let st = r.assert_conserved(VF0);
    assert_eq!(
        (st.discarded, st.buffered_frames),
        (4, 0),
        "{}: failover discards epochs 2 and 3",
        r.name()
    );
    let r3 = r.h.hac().commit(VF0, 3);
    assert_eq!(
        r3,
        Err(HacError::BadEpoch { vf: VF0, epoch: 3 }),
        "{}: failover resolved the open epoch",
        r.name()
    );
    r.ok("open 4", |h| h.open_epoch(VF0, 4));
    r.send(VF0, 1);
    r.ok("commit 4", |h| h.commit(VF0, 4));
    assert_eq!(
        r.settle_only(VF0),
        vec![6],
        "{}: the VF works after failover",
        r.name()
    );
    r.assert_conserved(VF0);
    r.assert_fifo();
}

/// Contract 4: unprotect releases everything held, in order, and untags the VF; so does
/// untagging. Later frames are not held, and epoch operations answer NotTagged.
pub fn unprotect_and_untag_release_everything<H: HacHarness>(h: &mut H) {
    let mut r = Run::new(h);
    r.ok("tag", |h| h.set_tagged(VF0, true));
    r.send(VF0, 2);
    r.ok("open 2", |h| h.open_epoch(VF0, 2));
    r.send(VF0, 2);
    assert_eq!(r.settle(), vec![], "{}: held", r.name());
    r.ok("unprotect", |h| h.unprotect(VF0));
    assert_eq!(
        r.settle_only(VF0),
        vec![0, 1, 2, 3],
        "{}: unprotect",
        r.name()
    );
    r.send(VF0, 2);
    assert_eq!(
        r.settle_only(VF0),
        vec![4, 5],
        "{}: no longer held",
        r.name()
    );
    for (what, got) in [
        ("commit", r.h.hac().commit(VF0, 2)),
        ("unprotect", r.h.hac().unprotect(VF0)),
        ("failover", r.h.hac().failover(VF0)),
    ] {
        assert_eq!(
            got,
            Err(HacError::NotTagged(VF0)),
            "{}: {what} after unprotect",
            r.name()
        );
    }
    let st = r.assert_conserved(VF0);
    assert_eq!(
        (st.released, st.discarded),
        (4, 0),
        "{}: released, discarded",
        r.name()
    );

    // Untagging releases the same way, and tagging again starts over at epoch 1.
    r.ok("tag again", |h| h.set_tagged(VF1, true));
    r.send(VF1, 2);
    r.ok("open 1:2", |h| h.open_epoch(VF1, 2));
    r.send(VF1, 1);
    r.ok("untag", |h| h.set_tagged(VF1, false));
    assert_eq!(r.settle_only(VF1), vec![0, 1, 2], "{}: untag", r.name());
    r.ok("retag", |h| h.set_tagged(VF1, true));
    let st = r.stats(VF1);
    assert_eq!(
        (st.open_epoch, st.committed_epoch, st.buffered_frames),
        (1, 0, 0),
        "{}: a new tag starts at epoch 1",
        r.name()
    );
    r.assert_conserved(VF1);
    r.assert_fifo();
}

/// Contract 3: a VF that is not checkpointing is never held by anyone's epoch.
pub fn plain_vfs_are_never_held<H: HacHarness>(h: &mut H) {
    let mut r = Run::new(h);
    r.ok("tag", |h| h.set_tagged(VF0, true));
    r.send(VF0, 3);
    r.send(VF1, 3);
    assert_eq!(
        r.settle_only(VF1),
        vec![0, 1, 2],
        "{}: the plain VF's frames",
        r.name()
    );
    let st = r.assert_conserved(VF1);
    assert_eq!(
        st.buffered_frames,
        0,
        "{}: nothing of VF 1 buffered",
        r.name()
    );
    assert_eq!(
        r.stats(VF0).buffered_frames,
        3,
        "{}: VF 0 still held",
        r.name()
    );
    r.ok("commit", |h| h.commit(VF0, 1));
    assert_eq!(
        r.settle_only(VF0),
        vec![0, 1, 2],
        "{}: VF 0 after its commit",
        r.name()
    );
    r.assert_conserved(VF0);
}

/// Tagging a VF with a backlog (docs/hac.md, "Tagging a VF with a backlog"): a frame sent after
/// the tag never leaves before its commit; frames sent before it are either not held (SoftHac:
/// they predate the protection) or held with epoch 1 (the extension stamps the ones its TX engine
/// had not fetched yet: the conservative side). Either way all leave after the commit, in order.
pub fn tagging_a_vf_with_a_backlog_never_releases_a_later_frame<H: HacHarness>(h: &mut H) {
    // More than the VF's ring and the egress stage's plain FIFO take at once: SoftHac keeps the
    // rest in software, the extension's driver refuses it.
    const BACKLOG: u32 = 200;
    const BIG: usize = 1400;
    let stamping = h.differences().stamping;
    let mut r = Run::new(h);
    // The backlog, without letting time pass.
    let backlog = r.offer_len(VF0, BACKLOG, BIG);
    assert!(
        backlog > 0,
        "{}: an untagged VF refused everything",
        r.name()
    );
    r.ok("tag", |h| h.set_tagged(VF0, true));
    r.h.advance(TAKE_NS);
    let mut later = 0;
    for _ in 0..100 {
        later += r.offer_len(VF0, 1 - later, BIG);
        if later == 1 {
            break;
        }
        r.h.advance(TAKE_NS);
    }
    assert_eq!(
        later,
        1,
        "{}: the frame after the tag was never accepted",
        r.name()
    );
    let out = r.settle_only(VF0);
    assert!(
        !out.contains(&backlog),
        "{}: the frame sent after the tag left before commit 1",
        r.name()
    );
    assert_eq!(
        out,
        (0..out.len() as u32).collect::<Vec<_>>(),
        "{}: the backlog leaves in order",
        r.name()
    );
    let st = r.assert_conserved(VF0);
    match stamping {
        Stamping::AtSend => assert_eq!(
            (out.len() as u32, st.buffered_frames),
            (backlog, 1),
            "{}: the backlog predates the tag and is not held; the later frame is",
            r.name()
        ),
        Stamping::AtFetch => assert!(
            (out.len() as u32) < backlog && st.buffered_frames >= 2,
            "{}: the backlog not fetched at the tag is held with epoch 1 ({} left, {} buffered)",
            r.name(),
            out.len(),
            st.buffered_frames
        ),
    }
    r.ok("commit 1", |h| h.commit(VF0, 1));
    r.settle();
    let st = r.assert_conserved(VF0);
    assert_eq!(
        (r.wire.len() as u32, st.buffered_frames, st.discarded),
        (backlog + 1, 0, 0),
        "{}: everything left after commit 1",
        r.name()
    );
    r.assert_fifo();
}

/// Contract 5: at the buffer limit the implementation stops taking frames (backpressure,
/// counted) and drops none; every frame offered eventually leaves, in order, once commits free
/// space. With frames waiting outside the buffer when an epoch opens, the stamping point
/// differs ([`Stamping`]).
pub fn backpressure_at_the_limit_loses_nothing<H: HacHarness>(h: &mut H) {
    const LIMIT: u32 = 16;
    const TOTAL: u32 = 120;
    let stamping = h.differences().stamping;
    let mut r = Run::new(h);
    r.ok("tag", |h| h.set_tagged(VF0, true));
    r.ok("limits", |h| h.set_limits(VF0, LIMIT, 0));
    // Offer until the implementation takes no more.
    let mut idle = 0;
    while r.next_seq[0] < TOTAL && idle < 3 {
        let accepted = r.offer_len(VF0, TOTAL - r.next_seq[0], LEN);
        r.h.advance(TAKE_NS);
        idle = if accepted == 0 { idle + 1 } else { 0 };
    }
    assert_eq!(
        r.settle(),
        vec![],
        "{}: nothing leaves before a commit",
        r.name()
    );
    let st = r.assert_conserved(VF0);
    let queued = r.h.queued(VF0);
    assert_eq!(
        st.buffered_frames,
        LIMIT,
        "{}: buffered up to the limit",
        r.name()
    );
    assert!(
        st.max_frames <= LIMIT,
        "{}: max_frames {} over the limit",
        r.name(),
        st.max_frames
    );
    assert!(
        st.backpressure >= 1,
        "{}: backpressure not counted",
        r.name()
    );
    assert!(
        r.next_seq[0] < TOTAL,
        "{}: took everything despite the limit",
        r.name()
    );

    // Open epoch 2, commit 1.
    r.ok("open 2", |h| h.open_epoch(VF0, 2));
    r.ok("commit 1", |h| h.commit(VF0, 1));
    let out = r.settle_only(VF0);
    let st = r.assert_conserved(VF0);
    match stamping {
        Stamping::AtSend => {
            // The limit refused frames at `send`: none wait outside the buffer, and everything
            // accepted was stamped with epoch 1.
            assert_eq!(queued, 0, "{}: frames wait outside the buffer", r.name());
            assert_eq!(
                out,
                (0..LIMIT).collect::<Vec<_>>(),
                "{}: commit 1",
                r.name()
            );
            assert_eq!(st.buffered_frames, 0, "{}: all of epoch 1 left", r.name());
        }
        Stamping::AtFetch => {
            // The limit stopped the TX engine: frames wait in the ring. The buffer's frames
            // were epoch 1; those still in the ring are stamped 2 as the buffer takes them.
            assert!(queued > 0, "{}: no frame waits in the ring", r.name());
            assert_eq!(
                out,
                (0..LIMIT).collect::<Vec<_>>(),
                "{}: commit 1",
                r.name()
            );
            assert_eq!(
                u64::from(st.buffered_frames),
                queued.min(u64::from(LIMIT)),
                "{}: the ring's frames are held with epoch 2",
                r.name()
            );
        }
    }
    // Keep committing and offering until everything left.
    for epoch in 2..200 {
        if r.next_seq[0] == TOTAL && r.wire.len() as u32 == TOTAL {
            break;
        }
        r.ok("open", |h| h.open_epoch(VF0, epoch + 1));
        r.ok("commit", |h| h.commit(VF0, epoch));
        if r.next_seq[0] < TOTAL {
            r.offer_len(VF0, TOTAL - r.next_seq[0], LEN);
        }
        r.h.advance(TAKE_NS);
        r.settle();
    }
    let st = r.assert_conserved(VF0);
    assert_eq!(
        (r.wire.len() as u32, st.discarded, st.buffered_frames),
        (TOTAL, 0, 0),
        "{}: every offered frame left, none was dropped",
        r.name()
    );
    assert_eq!(st.released, u64::from(TOTAL), "{}: released", r.name());
    r.assert_fifo();
}

/// Epoch rules (docs/hac.md): open needs open < e ≤ LAST_EPOCH, commit and abort need
/// resolved < e ≤ open, epoch operations on an untagged VF answer NotTagged, and a refused
/// operation changes nothing.
pub fn epoch_rules_refuse_and_change_nothing<H: HacHarness>(h: &mut H) {
    let r = Run::new(h);
    let name = r.name();
    let hac = r.h.hac();
    let not_tagged = Err(HacError::NotTagged(VF0));
    assert_eq!(hac.open_epoch(VF0, 2), not_tagged, "{name}: open untagged");
    assert_eq!(hac.commit(VF0, 1), not_tagged, "{name}: commit untagged");
    assert_eq!(hac.abort(VF0, 1), not_tagged, "{name}: abort untagged");
    assert_eq!(hac.failover(VF0), not_tagged, "{name}: failover untagged");
    assert_eq!(hac.unprotect(VF0), not_tagged, "{name}: unprotect untagged");

    assert_eq!(hac.set_tagged(VF0, true), Ok(()), "{name}: tag");
    let mut model = EpochState::TAGGED;
    let bad = |epoch| Err(HacError::BadEpoch { vf: VF0, epoch });
    // (operation, epoch, accepted?) in order; the reference is the core's EpochState.
    #[derive(Clone, Copy, Debug)]
    enum Op {
        Open,
        Commit,
        Abort,
    }
    let steps = [
        (Op::Open, 1, false),
        (Op::Open, 0, false),
        (Op::Open, u32::MAX, false),
        (Op::Commit, 2, false),
        (Op::Commit, 0, false),
        (Op::Abort, 0, false),
        (Op::Commit, 1, true),
        (Op::Commit, 1, false),
        (Op::Abort, 1, false),
        (Op::Open, 4, true),
        (Op::Open, 3, false),
        (Op::Abort, 2, true),
        (Op::Commit, 2, false),
        (Op::Commit, 5, false),
        (Op::Commit, 4, true),
        (Op::Open, LAST_EPOCH, true),
        (Op::Open, LAST_EPOCH, false),
        (Op::Commit, LAST_EPOCH, true),
        (Op::Abort, LAST_EPOCH, false),
    ];
    for (op, epoch, valid) in steps {
        let before = hac.stats(VF0);
        let got = match op {
            Op::Open => hac.open_epoch(VF0, epoch),
            Op::Commit => hac.commit(VF0, epoch),
            Op::Abort => hac.abort(VF0, epoch),
        };
        let expect_valid = match op {
            Op::Open => model.openable(epoch),
            Op::Commit | Op::Abort => model.resolvable(epoch),
        };
        assert_eq!(
            valid, expect_valid,
            "the suite's table disagrees with EpochState at {op:?} {epoch}"
        );
        if valid {
            assert_eq!(got, Ok(()), "{name}: {op:?} {epoch}");
            match op {
                Op::Open => model.open = epoch,
                Op::Commit => {
                    model.committed = epoch;
                    model.resolved = epoch;
                }
                Op::Abort => model.resolved = epoch,
            }
        } else {
            assert_eq!(got, bad(epoch), "{name}: {op:?} {epoch} must be refused");
            assert_eq!(
                hac.stats(VF0),
                before,
                "{name}: refused {op:?} {epoch} changed the stats"
            );
        }
        let st = hac.stats(VF0).map(|s| (s.open_epoch, s.committed_epoch));
        assert_eq!(
            st,
            Ok((model.open, model.committed)),
            "{name}: open and committed epochs after {op:?} {epoch}"
        );
    }
}

/// Buffer limits: 0 means the maximum (2³² − 1), never "no room"; and a VF with nothing
/// buffered can always hand one frame over, whatever the limits.
pub fn zero_limits_mean_the_maximum_and_one_frame_always_fits<H: HacHarness>(h: &mut H) {
    let mut r = Run::new(h);
    r.ok("tag", |h| h.set_tagged(VF0, true));
    r.ok("limits 1 frame, 1 byte", |h| h.set_limits(VF0, 1, 1));
    let mut accepted = 0;
    for _ in 0..3 {
        accepted += r.offer_len(VF0, 4, LEN);
        r.h.advance(TAKE_NS);
    }
    assert!(
        accepted >= 1,
        "{}: a 1-byte limit stalled an empty VF",
        r.name()
    );
    assert_eq!(
        r.stats(VF0).buffered_frames,
        1,
        "{}: one frame fits an empty buffer",
        r.name()
    );
    r.ok("open 2", |h| h.open_epoch(VF0, 2));
    r.ok("commit 1", |h| h.commit(VF0, 1));
    r.settle();

    // 0 = maximum: more than the default 4096 frames are buffered without backpressure.
    const MANY: u32 = 4200;
    r.ok("limits 0", |h| h.set_limits(VF0, 0, 0));
    let before = r.stats(VF0);
    let target = r.next_seq[0] + MANY;
    let mut rounds = 0;
    while r.next_seq[0] < target && rounds < 1000 {
        r.offer_len(VF0, target - r.next_seq[0], 64);
        r.h.advance(TAKE_NS);
        rounds += 1;
    }
    r.h.advance(TAKE_NS);
    let st = r.assert_conserved(VF0);
    assert!(
        u64::from(st.buffered_frames) + r.h.queued(VF0) >= u64::from(MANY)
            && st.buffered_frames > 4096,
        "{}: only {} buffered with limits 0 (= maximum)",
        r.name(),
        st.buffered_frames
    );
    assert_eq!(
        st.backpressure,
        before.backpressure,
        "{}: backpressure below the maximum",
        r.name()
    );
    r.ok("open 3", |h| h.open_epoch(VF0, 3));
    r.ok("commit 2", |h| h.commit(VF0, 2));
    r.settle();
    let st = r.assert_conserved(VF0);
    assert_eq!(st.buffered_frames, 0, "{}: all released", r.name());
    r.assert_fifo();
}

/// A VF number the implementation does not have is an error value for every operation, never a
/// panic, and changes nothing.
pub fn unknown_vf_numbers_are_errors<H: HacHarness>(h: &mut H) {
    let n = h.num_vfs();
    let name = h.name();
    let hac = h.hac();
    for vf in [n, n.saturating_add(1), 255, 256, u16::MAX].map(VfNumber::new) {
        let e = Err(HacError::NoSuchVf(vf));
        assert_eq!(hac.set_tagged(vf, true), e, "{name}: tag {vf}");
        assert_eq!(hac.open_epoch(vf, 2), e, "{name}: open {vf}");
        assert_eq!(hac.commit(vf, 1), e, "{name}: commit {vf}");
        assert_eq!(hac.abort(vf, 1), e, "{name}: abort {vf}");
        assert_eq!(hac.failover(vf), e, "{name}: failover {vf}");
        assert_eq!(hac.unprotect(vf), e, "{name}: unprotect {vf}");
        assert_eq!(hac.set_limits(vf, 1, 1), e, "{name}: limits {vf}");
        assert_eq!(
            hac.stats(vf),
            Err(HacError::NoSuchVf(vf)),
            "{name}: stats {vf}"
        );
    }
    assert_eq!(hac.set_guard(0), Ok(()), "{name}: guard");
    for vf in (0..n).map(VfNumber::new) {
        assert_eq!(
            hac.stats(vf),
            Ok(HacVfStats::default()),
            "{name}: VF {vf} untouched"
        );
    }
}

/// Contract 3: released frames go ahead of frames without an epoch. On the extension (strict
/// priority, guard 0) every released frame leaves before the plain frames still waiting; SoftHac
/// hands them to the hardware first but the adapter's round robin then interleaves the VFs
/// ([`Priority`]).
pub fn released_frames_and_plain_frames_share_the_wire<H: HacHarness>(h: &mut H) {
    const HELD: u32 = 20;
    const PLAIN: u32 = 40;
    const BIG: usize = 1000;
    let priority = h.differences().priority;
    let mut r = Run::new(h);
    r.ok("guard 0", |h| h.set_guard(0));
    r.ok("tag", |h| h.set_tagged(VF0, true));
    assert_eq!(
        r.offer_len(VF0, HELD, BIG),
        HELD,
        "{}: held frames",
        r.name()
    );
    r.h.advance(TAKE_NS);
    assert_eq!(
        r.offer_len(VF1, PLAIN, BIG),
        PLAIN,
        "{}: plain frames",
        r.name()
    );
    // Let the first plain frames start, then commit while most of them still wait.
    r.h.advance(20_000);
    r.ok("commit", |h| h.commit(VF0, 1));
    r.settle();
    r.assert_conserved(VF0);
    r.assert_conserved(VF1);
    r.assert_fifo();
    let order: Vec<VfNumber> = r.wire.iter().map(|&(v, _)| v).collect();
    let first = order.iter().position(|&v| v == VF0);
    let last = order.iter().rposition(|&v| v == VF0);
    let (Some(first), Some(last)) = (first, last) else {
        panic!("{}: no released frame left", r.name());
    };
    let plain_between = order[first..=last].iter().filter(|&&v| v == VF1).count();
    let plain_after = order[last..].iter().filter(|&&v| v == VF1).count();
    assert!(
        plain_after > 0,
        "{}: no plain frame was still waiting: {order:?}",
        r.name()
    );
    match priority {
        Priority::StrictOnTheWire => assert_eq!(
            plain_between,
            0,
            "{}: a plain frame went between released frames: {order:?}",
            r.name()
        ),
        Priority::AdapterArbitration => assert!(
            plain_between > 0,
            "{}: released frames went strictly first, which SoftHac does not promise: {order:?}",
            r.name()
        ),
    }
}

/// Defines one `#[test]` per conformance check, each on a fresh harness from `$make`
/// (an expression of type `fn() -> impl HacHarness`), inside a module named `$module`.
#[macro_export]
macro_rules! hac_conformance_tests {
    ($module:ident, $make:expr) => {
        mod $module {
            #[allow(unused_imports)]
            use super::*;
            use $crate::hac_conformance as c;

            #[test]
            fn commit_releases_exactly_the_epochs_up_to_it() {
                c::commit_releases_exactly_the_epochs_up_to_it(&mut ($make)());
            }
            #[test]
            fn each_vf_has_its_own_epochs_and_fifo() {
                c::each_vf_has_its_own_epochs_and_fifo(&mut ($make)());
            }
            #[test]
            fn abort_discards_exactly_the_epochs_it_covers() {
                c::abort_discards_exactly_the_epochs_it_covers(&mut ($make)());
            }
            #[test]
            fn failover_discards_every_held_frame() {
                c::failover_discards_every_held_frame(&mut ($make)());
            }
            #[test]
            fn unprotect_and_untag_release_everything() {
                c::unprotect_and_untag_release_everything(&mut ($make)());
            }
            #[test]
            fn plain_vfs_are_never_held() {
                c::plain_vfs_are_never_held(&mut ($make)());
            }
            #[test]
            fn tagging_a_vf_with_a_backlog_never_releases_a_later_frame() {
                c::tagging_a_vf_with_a_backlog_never_releases_a_later_frame(&mut ($make)());
            }
            #[test]
            fn backpressure_at_the_limit_loses_nothing() {
                c::backpressure_at_the_limit_loses_nothing(&mut ($make)());
            }
            #[test]
            fn epoch_rules_refuse_and_change_nothing() {
                c::epoch_rules_refuse_and_change_nothing(&mut ($make)());
            }
            #[test]
            fn zero_limits_mean_the_maximum_and_one_frame_always_fits() {
                c::zero_limits_mean_the_maximum_and_one_frame_always_fits(&mut ($make)());
            }
            #[test]
            fn unknown_vf_numbers_are_errors() {
                c::unknown_vf_numbers_are_errors(&mut ($make)());
            }
            #[test]
            fn released_frames_and_plain_frames_share_the_wire() {
                c::released_frames_and_plain_frames_share_the_wire(&mut ($make)());
            }
        }
    };
}
