//! [`EswQos`]: a PF's E-Switch QoS for its VFs — `ip link set PF vf N max_tx_rate M
//! min_tx_rate m` done the way Linux `mlx5_core` `esw/qos.c` does it in legacy mode, through
//! the scheduling-element commands (`mlx5_hw::commands::eswitch`):
//!
//! * the QoS capability page must offer `esw_scheduling`, TSAR and VPORT elements and DWRR
//!   TSARs (and `esw_rate_limit` for a max rate, `esw_bw_share` with a `max_tsar_bw_share`
//!   of at least 1 for a min rate);
//! * the root DWRR TSAR (E_SWITCH hierarchy) is created on first use, one VPORT element per
//!   rate-controlled VF below it, with `max_average_bw` = max rate (Mbit/s, 0: none) and a
//!   `bw_share` from the min rates;
//! * `bw_share` is normalised over every VF with an element, as Linux does: divider =
//!   max(largest min rate / `max_tsar_bw_share`, 1), a VF's share = min(max(⌈min rate /
//!   divider⌉, 1), `max_tsar_bw_share`); all 0 while no VF has a min rate;
//! * a change is MODIFY_SCHEDULING_ELEMENT with both fields and both bitmask bits (0
//!   `bw_share`, 1 `max_average_bw`), as Linux `esw_qos_tsar_config` sends it; when a VF's
//!   max and min rates are both back to 0 its element is destroyed, and the root with the
//!   last one (Linux keeps a 0/0 element until the vport is disabled; destroying it gives
//!   the same scheduling and leaves no element behind).
//!
//! Linux first creates the element with 0/0 and then modifies it; here it is created with
//! its values at once (the same end state, one command less).
//!
//! The state here is what the device accepted: a refused command leaves it as it was before
//! that command. Errors: [`QosError`].

use std::collections::BTreeMap;

use mlx5_hw::caps::{CapMode, CapType, GeneralCaps, QosCaps};
use mlx5_hw::cmd::Opcode;
use mlx5_hw::commands::eswitch::{
    CreateSchedulingElementIn, CreateSchedulingElementOut, DestroySchedulingElementIn,
    DestroySchedulingElementOut, ModifySchedulingElementIn, ModifySchedulingElementOut,
    element_type, modify_scheduling_bitmask, scheduling_hierarchy, tsar_type,
};

use super::device::{input, output};
use super::{Mlx5Device, Mlx5Error};
use crate::backend::{Clock, DmaAllocator, RegisterIo};

/// Why a QoS setting was refused.
#[derive(Debug, thiserror::Error)]
pub enum QosError {
    /// The VF number is not one of the PF's VFs.
    #[error("no VF {0}")]
    NoSuchVf(u16),
    /// The device does not offer what the setting needs (the QoS capability bit named).
    #[error("E-Switch QoS: the device lacks {0}")]
    Unsupported(&'static str),
    /// A min rate above a (non-zero) max rate.
    #[error("min rate {min} Mbit/s above max rate {max} Mbit/s")]
    MinAboveMax {
        /// Requested max rate.
        max: u32,
        /// Requested min rate.
        min: u32,
    },
    /// The device refused a command (status and syndrome inside) or the transport failed.
    #[error(transparent)]
    Device(#[from] Mlx5Error),
}

/// What the PF set for one VF, and the element that carries it.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct VfQos {
    /// The VPORT element.
    pub element: u32,
    /// Max rate in Mbit/s (0: none).
    pub max_rate: u32,
    /// Min rate in Mbit/s (0: none).
    pub min_rate: u32,
    /// The `bw_share` the element has.
    pub bw_share: u32,
}

/// The QoS capabilities that matter here.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Caps {
    rate_limit: bool,
    bw_share: bool,
    max_share: u32,
}

/// The E-Switch QoS a PF sets for its VFs (see the module documentation). It borrows the PF's
/// driver for each call rather than owning it, so it sits next to other PF-side owners.
#[derive(Clone, Debug)]
pub struct EswQos {
    caps: Caps,
    num_vfs: u16,
    root: Option<u32>,
    vfs: BTreeMap<u16, VfQos>,
}

/// `bw_share` of `min_rate` under `divider` (Linux `esw_qos_calc_bw_share`).
fn share(min_rate: u32, divider: u32, max_share: u32) -> u32 {
    if divider == 0 {
        return 0;
    }
    min_rate.div_ceil(divider).max(1).min(max_share)
}

/// The divider for the largest min rate `max_min` (Linux `esw_qos_calculate_min_rate_divider`).
fn divider(max_min: u32, max_share: u32) -> u32 {
    if max_min == 0 || max_share == 0 {
        0
    } else {
        (max_min / max_share).max(1)
    }
}

impl EswQos {
    /// Reads the PF's QoS capabilities for `num_vfs` VFs; nothing is created yet.
    pub fn new<R: RegisterIo, D: DmaAllocator, C: Clock>(
        pf: &mut Mlx5Device<R, D, C>,
        num_vfs: u16,
    ) -> Result<EswQos, QosError> {
        if !pf
            .caps()
            .general()
            .is_some_and(|g: GeneralCaps<&[u8]>| g.qos())
        {
            return Err(QosError::Unsupported("qos"));
        }
        let page = pf.query_cap(CapType::Qos, CapMode::Current)?;
        let q = QosCaps::new_checked(&page[..]).map_err(|source| Mlx5Error::MalformedOutput {
            opcode: Opcode::QueryHcaCap,
            source,
        })?;
        if !q.esw_scheduling() {
            return Err(QosError::Unsupported("esw_scheduling"));
        }
        let types = q.esw_element_type();
        if types & (1 << element_type::TSAR) == 0 || types & (1 << element_type::VPORT) == 0 {
            return Err(QosError::Unsupported("esw_element_type TSAR and VPORT"));
        }
        if q.esw_tsar_type() & (1 << tsar_type::DWRR) == 0 {
            return Err(QosError::Unsupported("esw_tsar_type DWRR"));
        }
        Ok(EswQos {
            caps: Caps {
                rate_limit: q.esw_rate_limit(),
                bw_share: q.esw_bw_share(),
                max_share: q.max_tsar_bw_share(),
            },
            num_vfs,
            root: None,
            vfs: BTreeMap::new(),
        })
    }

    /// What VF `vf` has (None: no element).
    pub fn vf(&self, vf: u16) -> Option<VfQos> {
        self.vfs.get(&vf).copied()
    }

    /// The root TSAR, while one exists.
    pub fn root(&self) -> Option<u32> {
        self.root
    }

    /// Sets VF `vf`'s max rate (`max_mbps`, 0: none) and min rate (`min_mbps`, 0: none, a
    /// weight among the VFs with elements) — `ip link set PF vf N max_tx_rate min_tx_rate`.
    pub fn set_vf_rate<R: RegisterIo, D: DmaAllocator, C: Clock>(
        &mut self,
        pf: &mut Mlx5Device<R, D, C>,
        vf: u16,
        max_mbps: u32,
        min_mbps: u32,
    ) -> Result<(), QosError> {
        if vf >= self.num_vfs {
            return Err(QosError::NoSuchVf(vf));
        }
        if max_mbps != 0 && !self.caps.rate_limit {
            return Err(QosError::Unsupported("esw_rate_limit"));
        }
        if min_mbps != 0 && (!self.caps.bw_share || self.caps.max_share == 0) {
            return Err(QosError::Unsupported("esw_bw_share"));
        }
        if max_mbps != 0 && min_mbps > max_mbps {
            return Err(QosError::MinAboveMax {
                max: max_mbps,
                min: min_mbps,
            });
        }
        let current = self.vfs.get(&vf).copied();
        if max_mbps == 0 && min_mbps == 0 {
            if let Some(q) = current {
                self.destroy(pf, q.element)?;
                self.vfs.remove(&vf);
                self.normalize(pf)?;
                if self.vfs.is_empty()
                    && let Some(r) = self.root
                {
                    self.destroy(pf, r)?;
                    self.root = None;
                }
            }
            return Ok(());
        }
        let root = match self.root {
            Some(r) => r,
            None => {
                let r = self.create(pf, element_type::TSAR, 0, 0, 0, 0)?;
                self.root = Some(r);
                r
            }
        };
        // The share this VF will have once its min rate counts.
        let max_min = self
            .vfs
            .iter()
            .filter(|(n, _)| **n != vf)
            .map(|(_, q)| q.min_rate)
            .chain([min_mbps])
            .max()
            .unwrap_or(0);
        let div = divider(max_min, self.caps.max_share);
        let my_share = share(min_mbps, div, self.caps.max_share);
        match current {
            None => {
                let vport = vf.saturating_add(1);
                let e = self.create(pf, element_type::VPORT, vport, root, my_share, max_mbps)?;
                self.vfs.insert(
                    vf,
                    VfQos {
                        element: e,
                        max_rate: max_mbps,
                        min_rate: min_mbps,
                        bw_share: my_share,
                    },
                );
            }
            Some(q) => {
                if q.max_rate != max_mbps || q.bw_share != my_share {
                    self.modify(pf, q.element, my_share, max_mbps)?;
                }
                self.vfs.insert(
                    vf,
                    VfQos {
                        max_rate: max_mbps,
                        min_rate: min_mbps,
                        bw_share: my_share,
                        ..q
                    },
                );
            }
        }
        self.normalize(pf)
    }

    /// Destroys every element (VFs' first, then the root).
    pub fn clear<R: RegisterIo, D: DmaAllocator, C: Clock>(
        &mut self,
        pf: &mut Mlx5Device<R, D, C>,
    ) -> Result<(), QosError> {
        while let Some((&vf, q)) = self.vfs.iter().next() {
            let e = q.element;
            self.destroy(pf, e)?;
            self.vfs.remove(&vf);
        }
        if let Some(r) = self.root {
            self.destroy(pf, r)?;
            self.root = None;
        }
        Ok(())
    }

    /// Brings every element's `bw_share` to what the min rates give now (MODIFY only where it
    /// differs).
    fn normalize<R: RegisterIo, D: DmaAllocator, C: Clock>(
        &mut self,
        pf: &mut Mlx5Device<R, D, C>,
    ) -> Result<(), QosError> {
        let max_min = self.vfs.values().map(|q| q.min_rate).max().unwrap_or(0);
        let div = divider(max_min, self.caps.max_share);
        let changes: Vec<(u16, VfQos, u32)> = self
            .vfs
            .iter()
            .map(|(&n, q)| (n, *q, share(q.min_rate, div, self.caps.max_share)))
            .filter(|(_, q, s)| q.bw_share != *s)
            .collect();
        for (n, q, s) in changes {
            self.modify(pf, q.element, s, q.max_rate)?;
            if let Some(v) = self.vfs.get_mut(&n) {
                v.bw_share = s;
            }
        }
        Ok(())
    }

    fn create<R: RegisterIo, D: DmaAllocator, C: Clock>(
        &mut self,
        pf: &mut Mlx5Device<R, D, C>,
        ty: u8,
        vport: u16,
        parent: u32,
        bw_share: u32,
        max_bw: u32,
    ) -> Result<u32, QosError> {
        let m = input!(
            CreateSchedulingElementIn,
            CreateSchedulingElementIn::<&[u8]>::LEN,
            0,
            |c| {
                c.set_scheduling_hierarchy(scheduling_hierarchy::E_SWITCH);
                let mut s = c.scheduling_context_mut();
                s.set_element_type(ty);
                if ty == element_type::TSAR {
                    s.set_tsar_type(tsar_type::DWRR);
                } else {
                    s.set_vport_number(vport);
                }
                s.set_parent_element_id(parent);
                s.set_bw_share(bw_share);
                s.set_max_average_bw(max_bw);
            }
        );
        let o = pf.exec(&m, CreateSchedulingElementOut::<&[u8]>::LEN)?;
        Ok(output!(CreateSchedulingElementOut, o)?.scheduling_element_id())
    }

    fn modify<R: RegisterIo, D: DmaAllocator, C: Clock>(
        &mut self,
        pf: &mut Mlx5Device<R, D, C>,
        id: u32,
        bw_share: u32,
        max_bw: u32,
    ) -> Result<(), QosError> {
        // Both fields every time, as Linux `esw_qos_tsar_config` sends them.
        let mask = modify_scheduling_bitmask::BW_SHARE | modify_scheduling_bitmask::MAX_AVERAGE_BW;
        let m = input!(
            ModifySchedulingElementIn,
            ModifySchedulingElementIn::<&[u8]>::LEN,
            0,
            |c| {
                c.set_scheduling_hierarchy(scheduling_hierarchy::E_SWITCH);
                c.set_scheduling_element_id(id);
                c.set_modify_bitmask(mask);
                c.scheduling_context_mut().set_bw_share(bw_share);
                c.scheduling_context_mut().set_max_average_bw(max_bw);
            }
        );
        pf.exec(&m, ModifySchedulingElementOut::<&[u8]>::LEN)?;
        Ok(())
    }

    fn destroy<R: RegisterIo, D: DmaAllocator, C: Clock>(
        &mut self,
        pf: &mut Mlx5Device<R, D, C>,
        id: u32,
    ) -> Result<(), QosError> {
        let m = input!(
            DestroySchedulingElementIn,
            DestroySchedulingElementIn::<&[u8]>::LEN,
            0,
            |c| {
                c.set_scheduling_hierarchy(scheduling_hierarchy::E_SWITCH);
                c.set_scheduling_element_id(id);
            }
        );
        pf.exec(&m, DestroySchedulingElementOut::<&[u8]>::LEN)?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]

    use adapter_core::hac::{Hac, VfNumber};
    use bytes::Bytes;
    use hw_common::MacAddress;
    use mlx5_hw::cmd::CommandStatus;
    use mlx5_model::qos::ElementKind;
    use mlx5_model::{Mlx5Config as ModelConfig, syndrome};

    use super::*;
    use crate::mlx5::model::{Mlx5Model, ModelDevice};
    use crate::mlx5::{EthConfig, Mlx5Config, Mlx5SoftHac};

    fn start(vfs: u16) -> (Mlx5Model, ModelDevice, Vec<ModelDevice>) {
        let model = Mlx5Model::new(ModelConfig {
            capture_wire: true,
            ..ModelConfig::default()
        });
        let (pf, devs) = model.start(vfs, Mlx5Config::default()).unwrap();
        (model, pf, devs)
    }

    /// The model's elements: (vport or None for a TSAR, parent, bw_share, max_average_bw).
    fn tree(model: &Mlx5Model) -> Vec<(Option<u16>, u32, u32, u32)> {
        model
            .nic()
            .qos()
            .elements()
            .map(|(_, e)| {
                let v = match e.kind {
                    ElementKind::Tsar => None,
                    ElementKind::Vport(v) => Some(v),
                };
                (v, e.parent, e.bw_share, e.max_average_bw)
            })
            .collect()
    }

    #[test]
    fn rates_build_modify_and_tear_down_the_tree_as_linux_does() {
        let (model, mut pf, _vfs) = start(3);
        let mut q = EswQos::new(&mut pf, 3).unwrap();
        assert!(q.root().is_none(), "nothing before first use");
        q.set_vf_rate(&mut pf, 0, 1000, 0).unwrap();
        let root = q.root().unwrap();
        assert_eq!(
            tree(&model),
            vec![(None, 0, 0, 0), (Some(1), root, 0, 1000)]
        );
        // A min rate on VF 1: divider 500 / 100 = 5, its share 100; VF 0 (no min) gets 1.
        q.set_vf_rate(&mut pf, 1, 0, 500).unwrap();
        assert_eq!(
            tree(&model),
            vec![
                (None, 0, 0, 0),
                (Some(1), root, 1, 1000),
                (Some(2), root, 100, 0)
            ]
        );
        // VF 0: max 2000, min 250 → share ⌈250 / 5⌉ = 50 (one MODIFY).
        q.set_vf_rate(&mut pf, 0, 2000, 250).unwrap();
        assert_eq!(q.vf(0).map(|v| (v.bw_share, v.max_rate)), Some((50, 2000)));
        assert_eq!(tree(&model)[1], (Some(1), root, 50, 2000));
        // VF 1's min rate goes: the largest min is VF 0's 250 → divider 2, VF 0 at 100.
        q.set_vf_rate(&mut pf, 1, 300, 0).unwrap();
        assert_eq!(tree(&model)[1], (Some(1), root, 100, 2000));
        assert_eq!(tree(&model)[2], (Some(2), root, 1, 300));
        // Both 0: the element goes; with the last one, the root.
        q.set_vf_rate(&mut pf, 0, 0, 0).unwrap();
        assert_eq!(tree(&model), vec![(None, 0, 0, 0), (Some(2), root, 0, 300)]);
        q.set_vf_rate(&mut pf, 1, 0, 0).unwrap();
        assert!(tree(&model).is_empty() && q.root().is_none());
        // Nothing to do is nothing sent.
        q.set_vf_rate(&mut pf, 2, 0, 0).unwrap();
        assert!(tree(&model).is_empty());
        q.set_vf_rate(&mut pf, 2, 10, 0).unwrap();
        q.clear(&mut pf).unwrap();
        assert!(tree(&model).is_empty() && q.vf(2).is_none());
    }

    #[test]
    fn errors_are_typed() {
        let (model, mut pf, mut vfs) = start(2);
        let mut q = EswQos::new(&mut pf, 2).unwrap();
        assert!(matches!(
            q.set_vf_rate(&mut pf, 2, 10, 0),
            Err(QosError::NoSuchVf(2))
        ));
        assert!(matches!(
            q.set_vf_rate(&mut pf, 0, 10, 20),
            Err(QosError::MinAboveMax { max: 10, min: 20 })
        ));
        // A VF is not the E-Switch manager: its general page has no `qos`.
        assert!(matches!(
            EswQos::new(&mut vfs[0], 2),
            Err(QosError::Unsupported("qos"))
        ));
        // The device's refusal comes back with its status and syndrome: a VF number this
        // owner was told about but the device has not enabled.
        let mut wrong = EswQos::new(&mut pf, 4).unwrap();
        match wrong.set_vf_rate(&mut pf, 3, 10, 0) {
            Err(QosError::Device(Mlx5Error::Command {
                status, syndrome, ..
            })) => {
                assert_eq!(
                    (status, syndrome),
                    (CommandStatus::BadParam, syndrome::NO_SUCH_VPORT)
                );
            }
            other => panic!("{other:?}"),
        }
        assert!(wrong.vf(3).is_none(), "state is what the device accepted");
        assert_eq!(model.nic().qos_counters().commands_refused, 1);
    }

    fn mac(n: usize) -> MacAddress {
        MacAddress([0x02, 0, 0, 0, 0x5E, n as u8])
    }

    const PEER: MacAddress = MacAddress([0x02, 0xAA, 0, 0, 0, 1]);

    fn frames(vf: usize, n: usize) -> Vec<Bytes> {
        (0..n)
            .map(|_| {
                let mut f = hw_common::frame::build(PEER, mac(vf), 0x88B5, &[0; 4]);
                f.resize(1000, 0);
                Bytes::from(f)
            })
            .collect()
    }

    /// VF 0 checkpoints under Mlx5SoftHac (no extension: the model's HAC stage is off) and
    /// VF 1 sends plain frames; VF 0's epoch is committed while VF 1 is backlogged. Returns
    /// the share of the wire VF 0's released frames got while both were backlogged.
    fn released_share(min_rates: Option<(u32, u32)>) -> f64 {
        let (model, mut pf, mut devs) = start(2);
        for (n, d) in devs.iter_mut().enumerate() {
            pf.set_vf_mac(n as u16, mac(n)).unwrap();
            d.open_eth(EthConfig {
                log_sq_size: 10,
                log_rq_size: 4,
            })
            .unwrap();
        }
        let mut qos = EswQos::new(&mut pf, 2).unwrap();
        if let Some((m0, m1)) = min_rates {
            qos.set_vf_rate(&mut pf, 0, 0, m0).unwrap();
            qos.set_vf_rate(&mut pf, 1, 0, m1).unwrap();
        }
        let mut soft = Mlx5SoftHac::new(devs);
        let (vf0, vf1) = (VfNumber::new(0), VfNumber::new(1));
        soft.set_tagged(vf0, true).unwrap();
        assert_eq!(soft.send(vf0, &frames(0, 300)).unwrap(), 300);
        model.run_for(100_000);
        assert!(model.nic().take_wire_capture().is_empty(), "held");
        assert_eq!(soft.send(vf1, &frames(1, 600)).unwrap(), 600);
        soft.commit(vf0, 1).unwrap();
        let mut wire = Vec::new();
        for _ in 0..40 {
            soft.pump().unwrap();
            model.run_for(50_000);
            for vf in [vf0, vf1] {
                soft.port(vf).unwrap().reclaim_tx().unwrap();
            }
            wire.extend(model.nic().take_wire_capture().iter().map(|w| w.data[11]));
        }
        assert_eq!(wire.len(), 900, "nothing lost");
        // Until VF 0's last released frame, both were backlogged (VF 1 has 600).
        let last0 = wire.iter().rposition(|&s| s == 0).unwrap();
        let n0 = wire[..=last0].iter().filter(|&&s| s == 0).count();
        n0 as f64 / (last0 + 1) as f64
    }

    #[test]
    fn a_checkpointing_vf_under_softhac_gets_the_larger_share_by_min_rate() {
        let plain = released_share(None);
        // min_tx_rate 9000 vs 1000: divider 90, bw_share 100 vs 12.
        let weighted = released_share(Some((9000, 1000)));
        eprintln!(
            "released frames' share of the wire under contention: {:.1} % round robin, \
             {:.1} % with bw_share 100:12",
            plain * 100.0,
            weighted * 100.0
        );
        assert!((0.45..=0.55).contains(&plain), "{plain}");
        let expect = 100.0 / 112.0;
        assert!((weighted - expect).abs() < 0.02, "{weighted} vs {expect}");
    }
}
