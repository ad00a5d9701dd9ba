//! Memory keys of a function: what an lkey in a data segment names (layouts:
//! `mlx5_hw::commands::resources` `MkeyContext`; behaviour: the PRM's memory region chapter,
//! Linux `en_common.c` `mlx5e_create_mkey`, which creates one physical-address key over all
//! memory with local read and write).
//!
//! Only physical-address (PA) keys exist: an address in a data segment is an IOVA of the
//! function, checked against the key's range (`length64`: everything) and access rights (a
//! send's gather needs local read, a receive's scatter local write), and the key's PD must be
//! the queue's. Anything else is a local protection error on the WQE.

use std::collections::BTreeMap;

/// The first mkey index CREATE_MKEY hands out (lkey = index << 8 | key; index 1 with key 0
/// would be the receive terminator lkey 0x100).
pub const FIRST_MKEY_INDEX: u32 = 0x10;

/// One memory key.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct MkeyState {
    /// The variant byte of its lkey.
    pub key: u8,
    /// Protection domain.
    pub pd: u32,
    /// First address.
    pub start: u64,
    /// Bytes covered (`None`: the whole 64-bit space, `length64`).
    pub len: Option<u64>,
    /// Local read.
    pub local_read: bool,
    /// Local write.
    pub local_write: bool,
}

/// The mkeys of a function by index.
pub type Mkeys = BTreeMap<u32, MkeyState>;

/// What a data segment's buffer is used for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Access {
    /// Gathered by a send (local read).
    Read,
    /// Scattered into by a receive (local write).
    Write,
}

/// True when `lkey` names a key of PD `pd` covering `len` bytes at `addr` for `access`.
pub fn allows(mkeys: &Mkeys, lkey: u32, pd: u32, addr: u64, len: u64, access: Access) -> bool {
    let Some(k) = mkeys.get(&(lkey >> 8)) else {
        return false;
    };
    let right = match access {
        Access::Read => k.local_read,
        Access::Write => k.local_write,
    };
    let inside = match k.len {
        None => addr.checked_add(len).is_some(),
        Some(n) => {
            addr >= k.start
                && addr
                    .checked_add(len)
                    .is_some_and(|end| k.start.checked_add(n).is_some_and(|e| end <= e))
        }
    };
    k.key == lkey as u8 && k.pd == pd && right && inside
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_check_index_variant_pd_rights_and_range() {
        let mut m = Mkeys::new();
        m.insert(
            0x10,
            MkeyState {
                key: 0x42,
                pd: 3,
                start: 0x1000,
                len: Some(0x1000),
                local_read: true,
                local_write: false,
            },
        );
        m.insert(
            0x11,
            MkeyState {
                key: 0,
                pd: 3,
                start: 0,
                len: None,
                local_read: true,
                local_write: true,
            },
        );
        assert!(allows(&m, 0x1042, 3, 0x1000, 0x1000, Access::Read));
        assert!(
            !allows(&m, 0x1042, 3, 0x1000, 0x1001, Access::Read),
            "past the end"
        );
        assert!(
            !allows(&m, 0x1042, 3, 0xFFF, 2, Access::Read),
            "before the start"
        );
        assert!(
            !allows(&m, 0x1042, 3, 0x1000, 4, Access::Write),
            "no local write"
        );
        assert!(
            !allows(&m, 0x1043, 3, 0x1000, 4, Access::Read),
            "wrong variant"
        );
        assert!(
            !allows(&m, 0x1042, 4, 0x1000, 4, Access::Read),
            "another PD"
        );
        assert!(allows(&m, 0x1100, 3, 0xFFFF_0000, 0x1000, Access::Write));
        assert!(!allows(&m, 0x1100, 3, u64::MAX, 2, Access::Write), "wraps");
        assert!(!allows(&m, 0x1200, 3, 0, 1, Access::Read), "no such key");
    }
}
