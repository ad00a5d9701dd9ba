//! The PCI functions of the device, and which function owns a physical queue.

use igb_hw::{QueueIndex, VfIndex};

/// A PCI function of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
pub enum FunctionId {
    /// The physical function.
    Pf,
    /// A virtual function.
    Vf(VfIndex),
}

impl FunctionId {
    /// Index of the function's per-function state (IOMMU, MSI-X table): the PF is 0, VF n is
    /// n + 1.
    pub(crate) fn slot(self) -> usize {
        match self {
            FunctionId::Pf => 0,
            FunctionId::Vf(v) => 1 + v.get(),
        }
    }

    /// The function that owns physical queue `q` when `num_vfs` VFs are enabled: VF n for
    /// pools n < NumVFs, else the PF.
    pub(crate) fn owner_of(q: QueueIndex, num_vfs: usize) -> FunctionId {
        match VfIndex::new(q.pool().get()) {
            Some(vf) if vf.get() < num_vfs => FunctionId::Vf(vf),
            _ => FunctionId::Pf,
        }
    }
}

impl core::fmt::Display for FunctionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FunctionId::Pf => f.write_str("pf"),
            FunctionId::Vf(v) => write!(f, "{v}"),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn queues_of_enabled_vf_pools_belong_to_the_vf() {
        let q = |i| QueueIndex::new(i).expect("queue");
        let vf = |i| FunctionId::Vf(VfIndex::new(i).expect("vf"));
        assert_eq!(FunctionId::owner_of(q(2), 3), vf(2));
        assert_eq!(
            FunctionId::owner_of(q(10), 3),
            vf(2),
            "queue n + 8 is pool n"
        );
        assert_eq!(FunctionId::owner_of(q(3), 3), FunctionId::Pf);
        assert_eq!(FunctionId::owner_of(q(7), 7), FunctionId::Pf);
        assert_eq!(FunctionId::owner_of(q(0), 0), FunctionId::Pf);
    }
}
