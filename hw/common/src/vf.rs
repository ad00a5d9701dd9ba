//! The number of a virtual function, as every device family and every layer above it names it.

use core::fmt;

/// SR-IOV virtual function `n` of a physical function (0-based: VF 0 is the first VF, the one
/// at the SR-IOV capability's First VF Offset). Any 16-bit value is representable, because
/// TotalVFs is a 16-bit field; whether VF `n` exists is up to the device (a HAC implementation
/// answers `NoSuchVf`). A family's own VF index converts into it (`igb_hw::VfIndex` does) and
/// back with a check.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct VfNumber(u16);

impl VfNumber {
    /// VF `n`.
    pub const fn new(n: u16) -> VfNumber {
        VfNumber(n)
    }

    /// `Some` when `index` fits in 16 bits.
    pub const fn from_index(index: usize) -> Option<VfNumber> {
        if index <= u16::MAX as usize {
            Some(VfNumber(index as u16))
        } else {
            None
        }
    }

    /// The number as a `usize` (an index into per-VF tables).
    pub const fn get(self) -> usize {
        self.0 as usize
    }
}

impl From<u16> for VfNumber {
    fn from(n: u16) -> VfNumber {
        VfNumber(n)
    }
}

impl From<u8> for VfNumber {
    fn from(n: u8) -> VfNumber {
        VfNumber(u16::from(n))
    }
}

/// Prints the bare number ("VF {vf}" reads "VF 3").
impl fmt::Display for VfNumber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn indices_beyond_16_bits_are_not_vf_numbers() {
        assert_eq!(VfNumber::from_index(7), Some(VfNumber::new(7)));
        assert_eq!(
            VfNumber::from_index(65_535).map(VfNumber::get),
            Some(65_535)
        );
        assert_eq!(VfNumber::from_index(65_536), None);
        assert_eq!(VfNumber::from(3u8).to_string(), "3");
    }
}
