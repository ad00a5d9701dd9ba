//! Address-space and index newtypes: one type per space, never a bare integer.

use core::fmt;

pub use hw_common::{Iova, MacAddress, ParseMacError, VfNumber};

/// Byte offset of a register inside a BAR.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct RegisterOffset(pub u32);

impl fmt::Display for RegisterOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:#07x}", self.0)
    }
}

/// Number of virtual functions the 82576 implements (8 pools; Linux igb uses at most 7 so the PF
/// keeps a pool of its own).
pub const MAX_VFS: usize = 8;
/// Number of VMDq pools.
pub const NUM_POOLS: usize = 8;
/// Number of TX queues and of RX queues.
pub const NUM_QUEUES: usize = 16;
/// Queue pairs a VF owns (physical queues n and n + 8).
pub const QUEUES_PER_VF: usize = 2;

/// Index of a virtual function, `0..MAX_VFS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct VfIndex(u8);

impl VfIndex {
    /// `Some` when `index < MAX_VFS`.
    pub const fn new(index: usize) -> Option<VfIndex> {
        if index < MAX_VFS {
            Some(VfIndex(index as u8))
        } else {
            None
        }
    }
    /// The index as a `usize`.
    pub const fn get(self) -> usize {
        self.0 as usize
    }
    /// The VMDq pool this VF owns (pool n for VF n).
    pub const fn pool(self) -> PoolIndex {
        PoolIndex(self.0)
    }
    /// Physical queue of VF queue `vf_queue` (datasheet 8.26.1: PQn = VFn + VQn·8).
    pub const fn queue(self, vf_queue: usize) -> Option<QueueIndex> {
        if vf_queue < QUEUES_PER_VF {
            Some(QueueIndex(self.0 + (vf_queue as u8) * NUM_POOLS as u8))
        } else {
            None
        }
    }
    /// Iterator over all VF indices `0..count` (clamped to `MAX_VFS`).
    pub fn all(count: usize) -> impl Iterator<Item = VfIndex> {
        (0..count.min(MAX_VFS)).map(|i| VfIndex(i as u8))
    }
}

/// Every 82576 VF is a device-independent VF number (the HAC contract names VFs by it).
impl From<VfIndex> for VfNumber {
    fn from(vf: VfIndex) -> VfNumber {
        VfNumber::from(vf.0)
    }
}

/// A VF number is an 82576 VF when it is below [`MAX_VFS`]; the error is the number refused.
impl TryFrom<VfNumber> for VfIndex {
    type Error = VfNumber;
    fn try_from(vf: VfNumber) -> Result<VfIndex, VfNumber> {
        VfIndex::new(vf.get()).ok_or(vf)
    }
}

impl fmt::Display for VfIndex {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "vf{}", self.0)
    }
}

/// A VMDq pool, `0..NUM_POOLS`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PoolIndex(u8);

impl PoolIndex {
    /// `Some` when `index < NUM_POOLS`.
    pub const fn new(index: usize) -> Option<PoolIndex> {
        if index < NUM_POOLS {
            Some(PoolIndex(index as u8))
        } else {
            None
        }
    }
    /// The index as a `usize`.
    pub const fn get(self) -> usize {
        self.0 as usize
    }
    /// Bit `n` for pool `n`, as used by VFRE/VFTE/POOLSEL masks.
    pub const fn bit(self) -> u32 {
        1 << self.0
    }
}

/// A physical queue, `0..NUM_QUEUES`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct QueueIndex(u8);

impl QueueIndex {
    /// `Some` when `index < NUM_QUEUES`.
    pub const fn new(index: usize) -> Option<QueueIndex> {
        if index < NUM_QUEUES {
            Some(QueueIndex(index as u8))
        } else {
            None
        }
    }
    /// The index as a `usize`.
    pub const fn get(self) -> usize {
        self.0 as usize
    }
    /// The pool that owns this queue (q mod 8).
    pub const fn pool(self) -> PoolIndex {
        PoolIndex(self.0 % NUM_POOLS as u8)
    }
    /// Which of its pool's queues this is (0 for q < 8, 1 otherwise).
    pub const fn queue_in_pool(self) -> usize {
        (self.0 as usize) / NUM_POOLS
    }
}

/// The value the receive-address registers (RAL/RAH) hold for `mac`: RAL = octets 0..4
/// little-endian, RAH bits 15:0 = octets 4..6.
pub const fn mac_to_ral_rah(mac: MacAddress) -> (u32, u32) {
    let m = mac.0;
    (
        u32::from_le_bytes([m[0], m[1], m[2], m[3]]),
        u16::from_le_bytes([m[4], m[5]]) as u32,
    )
}

/// Inverse of [`mac_to_ral_rah`] (RAH bits above 15 are ignored).
pub const fn mac_from_ral_rah(ral: u32, rah: u32) -> MacAddress {
    let l = ral.to_le_bytes();
    let h = rah.to_le_bytes();
    MacAddress([l[0], l[1], l[2], l[3], h[0], h[1]])
}

/// The 12-bit multicast table (MTA) index of `mac` with the default filter type (MO = 00):
/// bits 47:36 of the address, as igbvf computes it.
pub const fn mta_hash(mac: &MacAddress) -> u16 {
    ((mac.0[4] as u16 >> 4) | ((mac.0[5] as u16) << 4)) & 0xFFF
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn vf_queues_follow_pqn_rule() {
        let vf3 = VfIndex::new(3).unwrap();
        assert_eq!(vf3.queue(0).unwrap().get(), 3);
        assert_eq!(vf3.queue(1).unwrap().get(), 11);
        assert!(vf3.queue(2).is_none());
        assert_eq!(QueueIndex::new(11).unwrap().pool().get(), 3);
        assert!(VfIndex::new(8).is_none());
    }

    #[test]
    fn vf_indices_round_trip_through_vf_numbers_and_larger_numbers_are_refused() {
        for vf in VfIndex::all(MAX_VFS) {
            assert_eq!(VfIndex::try_from(VfNumber::from(vf)), Ok(vf));
        }
        assert_eq!(VfIndex::try_from(VfNumber::new(8)), Err(VfNumber::new(8)));
        assert_eq!(
            VfIndex::try_from(VfNumber::new(u16::MAX)),
            Err(VfNumber::new(u16::MAX))
        );
    }

    #[test]
    fn mac_round_trips_through_ral_rah() {
        let mac: MacAddress = "02:1b:21:aa:bb:cc".parse().unwrap();
        let (ral, rah) = mac_to_ral_rah(mac);
        assert_eq!(ral, 0xaa21_1b02);
        assert_eq!(rah, 0xccbb);
        assert_eq!(mac_from_ral_rah(ral, rah | 0x8000_0000), mac);
        assert_eq!(mac.to_string(), "02:1b:21:aa:bb:cc");
        assert!("02:1b:21:aa:bb".parse::<MacAddress>().is_err());
        assert!("02:1b:21:aa:bb:cc:dd".parse::<MacAddress>().is_err());
        assert!("zz:1b:21:aa:bb:cc".parse::<MacAddress>().is_err());
    }

    #[test]
    fn mta_hash_matches_igbvf() {
        // 01:00:5e:00:00:fb (mDNS): ((0x00 >> 4) | (0xfb << 4)) & 0xfff = 0xfb0
        let mac = MacAddress([0x01, 0x00, 0x5e, 0x00, 0x00, 0xfb]);
        assert_eq!(mta_hash(&mac), 0xfb0);
    }
}
