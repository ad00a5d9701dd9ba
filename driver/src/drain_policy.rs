//! Priority for released checkpoint traffic on an 82576 without the HAC extension (issue 20):
//! while a checkpointing VF has released frames to drain, the PF limits the plain VFs to a
//! configured rate with the adapter's own per-queue rate limiters (RTTBCNRC through
//! [`PfAgent::set_vf_rate`]) and, optionally, sets TXDCTL.PRIORITY on the checkpointing VFs'
//! queues; once the checkpointing rings are empty (and have stayed empty for a hold-off), the
//! plain VFs' own limits and the priorities are restored. The contract, parameters and limits
//! are in docs/hac.md ("Priority without the extension").
//!
//! "Released frames to drain" is read from the adapter: a checkpointing VF's TX queue 0 has
//! descriptors between TDH and TDT (SoftHac advances TDT only over committed frames, so what
//! lies there is released output the adapter has not fetched yet). The policy is polled:
//! after each commit and on the host's tick. It reacts within one poll; a register write takes
//! effect at the limited queue's next packet.

use igb_hw::VfIndex;
use igb_hw::regs::PfReg;

use crate::backend::{Clock, RegisterIo};
use crate::error::DriverError;
use crate::pf::PfAgent;

/// The policy's parameters.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct DrainPolicyConfig {
    /// Rate (Mb/s) of the whole plain class while checkpoint traffic drains, shared equally by
    /// the plain VFs (each limited to this / their number, at least 1 Mb/s); a plain VF with a
    /// lower administrative limit keeps its own. 0: no limit (priority only).
    pub plain_rate_mbps: u32,
    /// Also set TXDCTL.PRIORITY on the checkpointing VFs' queues while they drain.
    pub prioritize_checkpointing: bool,
    /// How long (ns) the checkpointing rings must stay empty before the plain VFs are restored
    /// (the adapter's on-chip buffer still holds up to 64 KiB per VF when the ring empties).
    pub restore_after_ns: u64,
}

impl DrainPolicyConfig {
    /// The default for a link of `link_mbps`: the plain class gets a fifth of the link while checkpoint
    /// traffic drains (the share the extension's starvation guard keeps for the plain class),
    /// no queue priority, and a hold-off of one 64 KiB buffer at line rate.
    pub fn for_link(link_mbps: u32) -> DrainPolicyConfig {
        DrainPolicyConfig {
            plain_rate_mbps: (link_mbps / 5).max(1),
            prioritize_checkpointing: false,
            restore_after_ns: 64 * 1024 * 8 * 1000 / u64::from(link_mbps.max(1)),
        }
    }
}

/// What the policy did (64-bit counters).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct DrainPolicyStats {
    /// Times the plain VFs were limited (a drain began).
    pub activations: u64,
    /// Times they were restored (a drain ended).
    pub restores: u64,
    /// Polls that found released frames to drain.
    pub draining_polls: u64,
}

/// The drain policy over a [`PfAgent`].
#[derive(Clone, Debug)]
pub struct DrainPolicy {
    config: DrainPolicyConfig,
    /// Checkpointing VFs, one bit per VF.
    checkpointing: u32,
    /// The plain VFs' administrative rates saved when a drain began (`Some` while active).
    saved: Option<Vec<(VfIndex, u32)>>,
    empty_since: Option<u64>,
    stats: DrainPolicyStats,
}

impl DrainPolicy {
    /// A policy with `config`, no VF checkpointing yet.
    pub fn new(config: DrainPolicyConfig) -> DrainPolicy {
        DrainPolicy {
            config,
            checkpointing: 0,
            saved: None,
            empty_since: None,
            stats: DrainPolicyStats::default(),
        }
    }

    /// The parameters.
    pub fn config(&self) -> DrainPolicyConfig {
        self.config
    }

    /// Counters.
    pub fn stats(&self) -> DrainPolicyStats {
        self.stats
    }

    /// Whether the plain VFs are limited now.
    pub fn active(&self) -> bool {
        self.saved.is_some()
    }

    /// Marks `vf` as checkpointing (its released frames are protected) or plain (it is limited
    /// while others drain). Takes effect at the next [`DrainPolicy::poll`]; errors with
    /// [`DriverError::NoSuchVf`] for a VF the agent does not manage.
    pub fn set_checkpointing<R: RegisterIo, C: Clock>(
        &mut self,
        pf: &PfAgent<R, C>,
        vf: VfIndex,
        on: bool,
    ) -> Result<(), DriverError> {
        if vf.get() >= pf.num_vfs() {
            return Err(DriverError::NoSuchVf(vf.into()));
        }
        let bit = 1u32 << vf.get();
        if on {
            self.checkpointing |= bit;
        } else {
            self.checkpointing &= !bit;
        }
        Ok(())
    }

    fn is_checkpointing(&self, vf: VfIndex) -> bool {
        self.checkpointing & (1 << vf.get()) != 0
    }

    /// Whether a checkpointing VF has released frames the adapter has not fetched (its TX queue
    /// 0 has descriptors between TDH and TDT).
    pub fn draining<R: RegisterIo, C: Clock>(&self, pf: &PfAgent<R, C>) -> bool {
        VfIndex::all(pf.num_vfs())
            .filter(|&vf| self.is_checkpointing(vf))
            .filter_map(|vf| vf.queue(0))
            .any(|q| {
                let q = q.get() as u8;
                pf.bar().get(PfReg::TDH(q)) != pf.bar().get(PfReg::TDT(q))
            })
    }

    /// Applies the policy at host time `now_ns`: limits the plain VFs when a drain begins,
    /// restores them once the checkpointing rings have been empty for the hold-off.
    pub fn poll<R: RegisterIo, C: Clock>(
        &mut self,
        pf: &mut PfAgent<R, C>,
        now_ns: u64,
    ) -> Result<(), DriverError> {
        if self.draining(pf) {
            self.stats.draining_polls += 1;
            self.empty_since = None;
            if self.saved.is_none() {
                self.begin(pf)?;
            }
            return Ok(());
        }
        if self.saved.is_none() {
            return Ok(());
        }
        let since = *self.empty_since.get_or_insert(now_ns);
        if now_ns.saturating_sub(since) >= self.config.restore_after_ns {
            self.end(pf)?;
        }
        Ok(())
    }

    fn begin<R: RegisterIo, C: Clock>(
        &mut self,
        pf: &mut PfAgent<R, C>,
    ) -> Result<(), DriverError> {
        let mut saved = Vec::new();
        let plain = VfIndex::all(pf.num_vfs())
            .filter(|&vf| !self.is_checkpointing(vf))
            .count() as u32;
        let want = match self.config.plain_rate_mbps {
            0 => 0,
            class => (class / plain.max(1)).max(1),
        };
        for vf in VfIndex::all(pf.num_vfs()) {
            if self.is_checkpointing(vf) {
                if self.config.prioritize_checkpointing {
                    pf.set_vf_priority(vf, true)?;
                }
                continue;
            }
            let own = pf.vf(vf).map_or(0, |i| i.tx_rate_mbps);
            saved.push((vf, own));
            if want != 0 && (own == 0 || want < own) {
                pf.set_vf_rate(vf, want)?;
            }
        }
        self.saved = Some(saved);
        self.stats.activations += 1;
        Ok(())
    }

    /// Restores every plain VF's own limit and clears the checkpointing VFs' priority now.
    pub fn end<R: RegisterIo, C: Clock>(
        &mut self,
        pf: &mut PfAgent<R, C>,
    ) -> Result<(), DriverError> {
        let Some(saved) = self.saved.take() else {
            return Ok(());
        };
        for (vf, rate) in saved {
            pf.set_vf_rate(vf, rate)?;
        }
        if self.config.prioritize_checkpointing {
            for vf in VfIndex::all(pf.num_vfs()).filter(|&vf| self.is_checkpointing(vf)) {
                pf.set_vf_priority(vf, false)?;
            }
        }
        self.empty_since = None;
        self.stats.restores += 1;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use super::*;
    use crate::hac::{Hac, VfNumber};
    use crate::model::Model;
    use crate::softhac::SoftHac;
    use crate::vf::VfConfig;
    use bytes::Bytes;
    use igb_hw::MacAddress;
    use igb_model::{LineRate, NicConfig};

    fn mac(n: u8) -> MacAddress {
        MacAddress([2, 0, 0, 0, 5, n])
    }

    #[test]
    fn plain_vfs_are_limited_while_released_frames_drain_and_restored_after() {
        let model = Model::new(NicConfig {
            line_rate: LineRate::G1,
            ..NicConfig::default()
        });
        let macs: Vec<_> = (0..3).map(|n| Some(mac(n))).collect();
        let (pf, vfs) = model.start_vfs(&macs, VfConfig::default()).unwrap();
        let mut soft = SoftHac::new(vfs);
        let vf = |n| VfIndex::new(n).unwrap();
        let mut policy = DrainPolicy::new(DrainPolicyConfig::for_link(1000));
        assert_eq!(policy.config().plain_rate_mbps, 200);
        {
            let mut agent = pf.lock().unwrap();
            policy.set_checkpointing(&agent, vf(0), true).unwrap();
            assert!(matches!(
                policy.set_checkpointing(&agent, vf(6), true),
                Err(DriverError::NoSuchVf(_))
            ));
            // VF 2 has its own, lower limit: the policy keeps it and restores it.
            agent.set_vf_rate(vf(2), 50).unwrap();
        }
        soft.set_tagged(VfNumber::new(0), true).unwrap();
        let peer = MacAddress([2, 0xAA, 0, 0, 0, 1]);
        let frames: Vec<Bytes> = (0..200u32)
            .map(|s| Bytes::from(igb_hw::frame::build(peer, mac(0), 0x88B5, &[s as u8; 1000])))
            .collect();
        soft.send(vf(0), &frames[..100]).unwrap();
        soft.open_epoch(VfNumber::new(0), 2).unwrap();
        let t0 = model.nic().now().as_nanos();
        policy.poll(&mut pf.lock().unwrap(), t0).unwrap();
        assert!(!policy.active(), "held frames are not released frames");
        soft.commit(VfNumber::new(0), 1).unwrap();
        soft.pump().unwrap();
        // 100 KB released: the egress stage takes 64 KiB, the rest waits in the ring.
        assert!(policy.draining(&pf.lock().unwrap()));
        policy.poll(&mut pf.lock().unwrap(), t0).unwrap();
        assert!(policy.active());
        {
            let mut agent = pf.lock().unwrap();
            // Two plain VFs share the class's 200 Mb/s; VF 2 keeps its own, lower 50.
            assert_eq!(agent.vf_rate(vf(1)).unwrap(), Some(100));
            assert_eq!(agent.vf_rate(vf(2)).unwrap(), Some(50));
        }
        // Everything drains; after the hold-off the plain VFs are back to their own limits.
        let mut now = t0;
        for _ in 0..200 {
            model.run_for(100_000);
            soft.pump().unwrap();
            now += 100_000;
            policy.poll(&mut pf.lock().unwrap(), now).unwrap();
        }
        assert!(!policy.active());
        let mut agent = pf.lock().unwrap();
        assert_eq!(agent.vf_rate(vf(1)).unwrap(), None);
        assert_eq!(agent.vf_rate(vf(2)).unwrap(), Some(50));
        assert_eq!(policy.stats().activations, policy.stats().restores);
    }
}
