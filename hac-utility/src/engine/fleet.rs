//! The device family a scenario runs on: the PF's HAC owner and the VF drivers of one model,
//! behind one small interface so the scenario engine is the same for every family.
//!
//! * `igb`: the 82576 model, the PF mailbox agent, the igbvf driver on each VF, `AdapterHac`
//!   on the PF's HAC register block.
//! * `mlx5`: the ConnectX model, the mlx5 driver on the PF (setting each VF's MAC, then owning
//!   the HAC vendor commands as `Mlx5AdapterHac`) and on each VF (its Ethernet path open).
//!
//! Both stamp a frame with its VF's open epoch in the adapter (the 82576 at the TX engine's
//! fetch, the E-Switch at the send queue's hand-over), which under backpressure is later than
//! the driver's acceptance: the engine reads the epochs from the egress trace.

use adapter_core::wire::{LineRate, WireRecord, WireSink};
use bytes::Bytes;
use hac_driver::hac::{AdapterHac, Hac};
use hac_driver::mlx5::model::{Mlx5Model, Mlx5ModelBar, Mlx5ModelClock, Mlx5ModelDma, ModelDevice};
use hac_driver::mlx5::{EthConfig, Mlx5AdapterHac, Mlx5Config};
use hac_driver::model::{Model, ModelBar, ModelClock, ModelDma, SharedPfAgent};
use hac_driver::pf::PfConfig;
use hac_driver::vf::{VfConfig, VfDriver};
use hw_common::MacAddress;
use igb_hw::VfIndex;

use super::EngineError;
use crate::scenario::Family;

/// The VFs of one model and the owner of its HAC extension, as the engine drives them.
pub trait Fleet {
    /// The HAC owner (the PF's).
    fn hac(&mut self) -> &mut dyn Hac;
    /// The model's virtual time, ns.
    fn now_ns(&self) -> u64;
    /// Offers `frames` on scenario VF `vf`; returns how many the driver accepted (a prefix).
    fn send(&mut self, vf: usize, frames: &[Bytes]) -> Result<usize, EngineError>;
    /// Lets `ns` of virtual time pass.
    fn run_for(&mut self, ns: u64);
    /// The (VF, epoch) of every frame the egress stage accepted since the last call, in order.
    fn take_egress_trace(&mut self) -> Vec<(usize, Option<u32>)>;
    /// The frames on the wire since the last call.
    fn take_wire(&mut self) -> Vec<WireRecord>;
    /// Flushes the wire's sinks.
    fn flush_wire_sinks(&mut self);
}

/// Brings up `macs.len()` VFs of a `family` model at `rate`, with `sink` on its wire.
pub fn start(
    family: Family,
    macs: &[MacAddress],
    rate: LineRate,
    sink: Option<Box<dyn WireSink>>,
) -> Result<Box<dyn Fleet>, EngineError> {
    Ok(match family {
        Family::Igb => Box::new(IgbFleet::start(macs, rate, sink)?),
        Family::Mlx5 => Box::new(Mlx5Fleet::start(macs, rate, sink)?),
    })
}

/// The 82576 family.
struct IgbFleet {
    model: Model,
    _pf: SharedPfAgent,
    drivers: Vec<VfDriver<ModelBar, ModelDma, ModelClock>>,
    hac: AdapterHac<ModelBar>,
}

impl IgbFleet {
    fn start(
        macs: &[MacAddress],
        rate: LineRate,
        sink: Option<Box<dyn WireSink>>,
    ) -> Result<IgbFleet, EngineError> {
        let n = macs.len();
        let model = Model::new(igb_model::NicConfig {
            line_rate: rate,
            capture_wire: true,
            ..igb_model::NicConfig::default()
        });
        if let Some(s) = sink {
            model.nic().add_wire_sink(s);
        }
        let macs: Vec<Option<MacAddress>> = macs.iter().copied().map(Some).collect();
        let pf = model.start_pf_agent(
            PfConfig {
                num_vfs: n,
                ..PfConfig::default()
            },
            &macs,
        )?;
        // After the PF agent's PF reset, which clears the egress stage and its trace.
        model.nic().set_egress_trace(true);
        let mut drivers = Vec::with_capacity(n);
        for i in 0..n {
            let vf = VfIndex::new(i).ok_or(EngineError::NoSuchVf(i))?;
            drivers.push(model.vf_driver(
                vf,
                VfConfig {
                    tx_ring_size: 512,
                    rx_ring_size: 64,
                    ..VfConfig::default()
                },
            )?);
        }
        let hac = AdapterHac::new(model.bar0(igb_model::FunctionId::Pf), n);
        Ok(IgbFleet {
            model,
            _pf: pf,
            drivers,
            hac,
        })
    }
}

impl Fleet for IgbFleet {
    fn hac(&mut self) -> &mut dyn Hac {
        &mut self.hac
    }
    fn now_ns(&self) -> u64 {
        self.model.nic().now().as_nanos()
    }
    fn send(&mut self, vf: usize, frames: &[Bytes]) -> Result<usize, EngineError> {
        let d = self.drivers.get_mut(vf).ok_or(EngineError::NoSuchVf(vf))?;
        Ok(d.send(frames)?)
    }
    fn run_for(&mut self, ns: u64) {
        self.model.run_for(ns);
    }
    fn take_egress_trace(&mut self) -> Vec<(usize, Option<u32>)> {
        self.model
            .nic()
            .take_egress_trace()
            .into_iter()
            .map(|(pool, e)| (pool.get(), e))
            .collect()
    }
    fn take_wire(&mut self) -> Vec<WireRecord> {
        self.model.nic().take_wire_capture()
    }
    fn flush_wire_sinks(&mut self) {
        self.model.nic().flush_wire_sinks();
    }
}

/// The ConnectX (mlx5) family.
struct Mlx5Fleet {
    model: Mlx5Model,
    vfs: Vec<ModelDevice>,
    hac: Mlx5AdapterHac<Mlx5ModelBar, Mlx5ModelDma, Mlx5ModelClock>,
}

impl Mlx5Fleet {
    fn start(
        macs: &[MacAddress],
        rate: LineRate,
        sink: Option<Box<dyn WireSink>>,
    ) -> Result<Mlx5Fleet, EngineError> {
        let n = u16::try_from(macs.len()).map_err(|_| EngineError::NoSuchVf(macs.len()))?;
        let model = Mlx5Model::new(mlx5_model::Mlx5Config {
            line_rate: rate,
            capture_wire: true,
            ..mlx5_model::Mlx5Config::default()
        });
        if let Some(s) = sink {
            model.nic().add_wire_sink(s);
        }
        let (mut pf, mut vfs) = model.start(n, Mlx5Config::default())?;
        for (i, (vf, &mac)) in vfs.iter_mut().zip(macs).enumerate() {
            pf.set_vf_mac(i as u16, mac)?;
            vf.open_eth(EthConfig {
                log_sq_size: 9,
                log_rq_size: 6,
            })?;
        }
        model.nic().set_egress_trace(true);
        let hac = Mlx5AdapterHac::new(pf, n)?;
        Ok(Mlx5Fleet { model, vfs, hac })
    }
}

impl Fleet for Mlx5Fleet {
    fn hac(&mut self) -> &mut dyn Hac {
        &mut self.hac
    }
    fn now_ns(&self) -> u64 {
        self.model.nic().now().as_nanos()
    }
    fn send(&mut self, vf: usize, frames: &[Bytes]) -> Result<usize, EngineError> {
        let d = self.vfs.get_mut(vf).ok_or(EngineError::NoSuchVf(vf))?;
        d.reclaim_tx()?;
        let refs: Vec<&[u8]> = frames.iter().map(|f| &f[..]).collect();
        Ok(d.send(&refs)?)
    }
    fn run_for(&mut self, ns: u64) {
        self.model.run_for(ns);
    }
    fn take_egress_trace(&mut self) -> Vec<(usize, Option<u32>)> {
        self.model
            .nic()
            .take_egress_trace()
            .into_iter()
            .filter_map(|(f, e)| match f {
                mlx5_model::FunctionId::Vf(n) => Some((usize::from(n), e)),
                mlx5_model::FunctionId::Pf => None,
            })
            .collect()
    }
    fn take_wire(&mut self) -> Vec<WireRecord> {
        self.model.nic().take_wire_capture()
    }
    fn flush_wire_sinks(&mut self) {
        self.model.nic().flush_wire_sinks();
    }
}
