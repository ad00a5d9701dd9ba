//! Address newtypes every device family and both sides of the bus use.

use core::fmt;

/// An I/O virtual address: what a device puts on the bus, translated by the IOMMU of its function.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Iova(pub u64);

impl Iova {
    /// This address plus `bytes`, or `None` on overflow.
    pub fn checked_add(self, bytes: u64) -> Option<Iova> {
        self.0.checked_add(bytes).map(Iova)
    }
}

impl fmt::Display for Iova {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "iova:{:#x}", self.0)
    }
}

/// A 48-bit IEEE MAC address.
#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct MacAddress(pub [u8; 6]);

impl MacAddress {
    /// The broadcast address ff:ff:ff:ff:ff:ff.
    pub const BROADCAST: MacAddress = MacAddress([0xff; 6]);

    /// True for a group (multicast or broadcast) address: I/G bit of the first octet.
    pub const fn is_multicast(&self) -> bool {
        self.0[0] & 1 != 0
    }
    /// True for ff:ff:ff:ff:ff:ff.
    pub fn is_broadcast(&self) -> bool {
        *self == Self::BROADCAST
    }
    /// True for 00:00:00:00:00:00.
    pub fn is_zero(&self) -> bool {
        self.0 == [0; 6]
    }
    /// True for a locally administered address (U/L bit set).
    pub const fn is_local(&self) -> bool {
        self.0[0] & 2 != 0
    }
    /// A valid station address: not zero, not multicast.
    pub fn is_valid_unicast(&self) -> bool {
        !self.is_zero() && !self.is_multicast()
    }
}

impl fmt::Display for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

impl fmt::Debug for MacAddress {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl core::str::FromStr for MacAddress {
    type Err = ParseMacError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let mut out = [0u8; 6];
        let mut parts = s.split([':', '-']);
        for byte in &mut out {
            let part = parts.next().ok_or(ParseMacError)?;
            if part.len() != 2 {
                return Err(ParseMacError);
            }
            *byte = u8::from_str_radix(part, 16).map_err(|_| ParseMacError)?;
        }
        if parts.next().is_some() {
            return Err(ParseMacError);
        }
        Ok(MacAddress(out))
    }
}

/// A MAC address string was not six colon- or dash-separated hex octets.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct ParseMacError;

impl fmt::Display for ParseMacError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("expected a MAC address like 02:00:00:00:00:01")
    }
}

impl std::error::Error for ParseMacError {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_text_round_trips_and_rejects_malformed() {
        let mac: MacAddress = "02:1b:21:aa:bb:cc".parse().unwrap();
        assert_eq!(mac.to_string(), "02:1b:21:aa:bb:cc");
        assert_eq!("02-1b-21-aa-bb-cc".parse::<MacAddress>(), Ok(mac));
        assert!("02:1b:21:aa:bb".parse::<MacAddress>().is_err());
        assert!("02:1b:21:aa:bb:cc:dd".parse::<MacAddress>().is_err());
        assert!("zz:1b:21:aa:bb:cc".parse::<MacAddress>().is_err());
        assert!(mac.is_local() && mac.is_valid_unicast() && !mac.is_multicast());
    }

    #[test]
    fn iova_add_detects_overflow() {
        assert_eq!(Iova(u64::MAX - 1).checked_add(1), Some(Iova(u64::MAX)));
        assert_eq!(Iova(u64::MAX).checked_add(1), None);
    }
}
