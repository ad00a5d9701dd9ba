//! What a host harness (the scenario engine, benchmarks) reads beside the wire: the egress
//! stage's trace of the epoch each accepted frame was stamped with, and flushing the wire's
//! sinks — as `igb_model::Nic` offers them.

use crate::function::FunctionId;
use crate::nic::Mlx5Nic;

impl Mlx5Nic {
    /// Records, from now on, the (vport, epoch) of every frame the egress stage accepts.
    pub fn set_egress_trace(&mut self, on: bool) {
        self.eswitch.egress.set_trace(on);
    }

    /// Takes the egress trace: the function and the epoch (None: not checkpointing) of each
    /// frame the egress stage accepted, in order.
    pub fn take_egress_trace(&mut self) -> Vec<(FunctionId, Option<u32>)> {
        self.eswitch
            .egress
            .take_trace()
            .into_iter()
            .map(|(v, e)| (super::eswitch::function_of(v.get()), e))
            .collect()
    }

    /// Flushes the wire's sinks (e.g. a pcap file); failures are counted.
    pub fn flush_wire_sinks(&mut self) {
        let e = self.eswitch.wire.flush();
        self.eswitch.counters.wire_sink_errors += e;
    }
}
