//! The PCI functions of the device.

/// A PCI function of the device.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum FunctionId {
    /// The physical function.
    Pf,
    /// Virtual function `n` (0-based).
    Vf(u16),
}

impl FunctionId {
    /// Index of the function's state: the PF is 0, VF n is n + 1.
    pub(crate) fn slot(self) -> usize {
        match self {
            FunctionId::Pf => 0,
            FunctionId::Vf(v) => 1 + usize::from(v),
        }
    }

    /// True for a virtual function.
    pub fn is_vf(self) -> bool {
        matches!(self, FunctionId::Vf(_))
    }
}

impl core::fmt::Display for FunctionId {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        match self {
            FunctionId::Pf => f.write_str("pf"),
            FunctionId::Vf(v) => write!(f, "vf{v}"),
        }
    }
}
