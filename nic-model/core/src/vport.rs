//! Virtual ports: how the adapter core names the function (PF or VF) a frame comes from.

use core::fmt;

/// The virtual port of one function, as the family numbers it (the 82576 family uses its VMDq
/// pool number; a family with more functions uses more). Every value is valid: the egress stage
/// keeps state for as many vports as the family uses, up to [`MAX_VPORTS`].
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Vport(u8);

/// The number of distinct vports.
pub const MAX_VPORTS: usize = 256;

impl Vport {
    /// Vport `index`.
    pub const fn new(index: u8) -> Vport {
        Vport(index)
    }
    /// `Some` when `index < MAX_VPORTS`.
    pub const fn from_index(index: usize) -> Option<Vport> {
        if index < MAX_VPORTS {
            Some(Vport(index as u8))
        } else {
            None
        }
    }
    /// The index as a `usize`.
    pub const fn get(self) -> usize {
        self.0 as usize
    }
}

impl fmt::Display for Vport {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vport {}", self.0)
    }
}
