//! Fields of the PRM layouts: big-endian structures whose fields are named by their bit offset
//! from the start, counted the way the PRM and Linux `mlx5_ifc.h` count them (bit 0 is the
//! most significant bit of the first big-endian dword), and their width.
//!
//! A [`Field`] reads and writes one field of a byte buffer, raw or as a [`FieldValue`]; a
//! [`Bytes`] run does the same for byte strings. Reads past the end of the buffer give `None`
//! and writes past it do nothing and say so: a short or hostile buffer never panics. A layout
//! view refuses a buffer shorter than its layout with [`Truncated`] ([`check_len`]).

/// One field of a layout.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Field {
    /// Bit offset from the start of the structure (MSB of dword 0 is bit 0).
    pub bit: usize,
    /// Width in bits: 1..=32 inside one dword, or 64 at a dword boundary.
    pub width: u32,
}

impl Field {
    /// The field at `bit` of `width` bits. Fields wider than 32 bits must be 64 bits wide and
    /// start on a dword boundary; a field of 1..=32 bits must not cross a dword boundary (the
    /// PRM has no such field). Checked when constants are built.
    pub const fn new(bit: usize, width: u32) -> Field {
        assert!(
            (width >= 1 && width <= 32 && (bit % 32) + width as usize <= 32)
                || (width == 64 && bit.is_multiple_of(32)),
            "a PRM field is 1..=32 bits inside one dword, or 64 bits at a dword boundary"
        );
        Field { bit, width }
    }

    /// A field `width` bits wide at byte `byte`, bit `bit_in_dword` (0 = MSB) of its dword:
    /// the way the PRM's tables give offsets (`0x04 [23:16]`).
    pub const fn at(byte: usize, hi: u32, lo: u32) -> Field {
        assert!(
            byte.is_multiple_of(4) && hi >= lo && hi < 32,
            "byte is a dword offset, hi ≥ lo"
        );
        Field::new(byte * 8 + (31 - hi) as usize, hi - lo + 1)
    }

    /// A whole 32-bit dword at byte offset `byte`.
    pub const fn dword(byte: usize) -> Field {
        Field::at(byte, 31, 0)
    }

    /// A 64-bit value (two dwords, high first) at byte offset `byte`.
    pub const fn qword(byte: usize) -> Field {
        assert!(
            byte.is_multiple_of(4),
            "a 64-bit field starts on a dword boundary"
        );
        Field::new(byte * 8, 64)
    }

    /// Byte offset of the dword holding the field (its first dword for 64-bit fields).
    pub const fn byte(self) -> usize {
        (self.bit / 32) * 4
    }

    /// The field's value in `buf`, or `None` when `buf` is too short.
    pub fn get(self, buf: &[u8]) -> Option<u64> {
        let at = self.byte();
        if self.width == 64 {
            let b = buf.get(at..at + 8)?;
            return Some(u64::from_be_bytes(b.try_into().ok()?));
        }
        let dw = u32::from_be_bytes(buf.get(at..at + 4)?.try_into().ok()?);
        let shift = 32 - (self.bit % 32) as u32 - self.width;
        Some(u64::from((dw >> shift) & mask32(self.width)))
    }

    /// The field's value, 0 when `buf` is too short (for layouts whose length was checked).
    pub fn get_or_zero(self, buf: &[u8]) -> u64 {
        self.get(buf).unwrap_or(0)
    }

    /// Writes `value` (truncated to the field's width) into `buf`; false when `buf` is too
    /// short (nothing is written then).
    pub fn set(self, buf: &mut [u8], value: u64) -> bool {
        let at = self.byte();
        if self.width == 64 {
            let Some(b) = buf.get_mut(at..at + 8) else {
                return false;
            };
            b.copy_from_slice(&value.to_be_bytes());
            return true;
        }
        let Some(b) = buf.get_mut(at..at + 4) else {
            return false;
        };
        let mut dw = u32::from_be_bytes([b[0], b[1], b[2], b[3]]);
        let shift = 32 - (self.bit % 32) as u32 - self.width;
        let m = mask32(self.width) << shift;
        dw = (dw & !m) | (((value as u32) << shift) & m);
        b.copy_from_slice(&dw.to_be_bytes());
        true
    }
}

/// A value a [`Field`] holds: the integer types, `bool` (a 1-bit flag, or any non-zero value
/// of a wider field), bus addresses and the layout enums. Values wider than the field are
/// truncated on write; values the hardware does not define survive the round trip (enums keep
/// them as `Unknown(raw)`).
pub trait FieldValue: Copy {
    /// The value from the raw field bits.
    fn from_raw(raw: u64) -> Self;
    /// The raw field bits.
    fn into_raw(self) -> u64;
}

impl FieldValue for bool {
    fn from_raw(raw: u64) -> bool {
        raw != 0
    }
    fn into_raw(self) -> u64 {
        u64::from(self)
    }
}

macro_rules! field_value_int {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            fn from_raw(raw: u64) -> $t {
                raw as $t
            }
            fn into_raw(self) -> u64 {
                u64::from(self)
            }
        }
    )*};
}
field_value_int!(u8, u16, u32, u64);

/// A signed 32-bit field (QUERY_PAGES' `num_pages`): two's complement in the field's bits.
impl FieldValue for i32 {
    fn from_raw(raw: u64) -> i32 {
        raw as u32 as i32
    }
    fn into_raw(self) -> u64 {
        u64::from(self as u32)
    }
}

/// A 64-bit address field the device puts on the bus.
impl FieldValue for hw_common::Iova {
    fn from_raw(raw: u64) -> Self {
        hw_common::Iova(raw)
    }
    fn into_raw(self) -> u64 {
        self.0
    }
}

impl Field {
    /// The field as a typed value, zero when `buf` is too short.
    pub fn read<V: FieldValue>(self, buf: &[u8]) -> V {
        V::from_raw(self.get_or_zero(buf))
    }

    /// Writes a typed value; false when `buf` is too short (nothing is written then).
    pub fn write<V: FieldValue>(self, buf: &mut [u8], value: V) -> bool {
        self.set(buf, value.into_raw())
    }

    /// The byte just past the field's last dword: a layout holding this field is at least
    /// this long.
    pub const fn end(self) -> usize {
        if self.width == 64 {
            self.byte() + 8
        } else {
            self.byte() + 4
        }
    }
}

/// A run of bytes inside a layout (a MAC address, an owner id, a string, a hash key), kept in
/// the order the device reads them.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Bytes {
    /// Byte offset from the start of the structure.
    pub byte: usize,
    /// Length in bytes.
    pub len: usize,
}

impl Bytes {
    /// `len` bytes at `byte`.
    pub const fn at(byte: usize, len: usize) -> Bytes {
        Bytes { byte, len }
    }

    /// The byte just past the run.
    pub const fn end(self) -> usize {
        self.byte + self.len
    }

    /// The bytes in `buf`, or `None` when `buf` is too short.
    pub fn get(self, buf: &[u8]) -> Option<&[u8]> {
        buf.get(self.byte..self.end())
    }

    /// Copies `src` into the run and zero-fills the rest of it; false (nothing written) when
    /// `buf` is too short or `src` is longer than the run.
    pub fn set(self, buf: &mut [u8], src: &[u8]) -> bool {
        if src.len() > self.len {
            return false;
        }
        let Some(dst) = buf.get_mut(self.byte..self.end()) else {
            return false;
        };
        let (head, tail) = dst.split_at_mut(src.len());
        head.copy_from_slice(src);
        tail.fill(0);
        true
    }
}

/// A buffer shorter than the layout it was to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated {
    /// The layout's name ("CQE", "CreateEqIn", ...).
    pub layout: &'static str,
    /// Bytes the layout needs.
    pub needed: usize,
    /// Bytes the buffer has.
    pub got: usize,
}

impl core::fmt::Display for Truncated {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(
            f,
            "{} needs {} bytes, the buffer has {}",
            self.layout, self.needed, self.got
        )
    }
}

impl std::error::Error for Truncated {}

/// Checks that `got` bytes hold a `needed`-byte `layout`.
pub fn check_len(layout: &'static str, needed: usize, got: usize) -> Result<(), Truncated> {
    if got < needed {
        Err(Truncated {
            layout,
            needed,
            got,
        })
    } else {
        Ok(())
    }
}

const fn mask32(width: u32) -> u32 {
    if width >= 32 {
        u32::MAX
    } else {
        (1 << width) - 1
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    #[test]
    fn prm_bit_numbering_is_big_endian_msb_first() {
        // "opcode" of every command input: bits 0..16 of dword 0 (the top half).
        let opcode = Field::at(0x00, 31, 16);
        assert_eq!(opcode, Field::new(0, 16));
        let mut b = [0u8; 8];
        assert!(opcode.set(&mut b, 0x0104));
        assert_eq!(b[..4], [0x01, 0x04, 0, 0]);
        assert_eq!(opcode.get(&b), Some(0x0104));
        // op_mod: the low half of dword 1.
        let op_mod = Field::at(0x04, 15, 0);
        assert!(op_mod.set(&mut b, 0xABCD1));
        assert_eq!(b[4..], [0, 0, 0xBC, 0xD1], "truncated to 16 bits");
        assert_eq!(opcode.get(&b), Some(0x0104), "neighbours untouched");
    }

    #[test]
    fn single_bits_qwords_and_short_buffers() {
        let own = Field::at(0x3C, 0, 0);
        let mut b = [0u8; 64];
        assert!(own.set(&mut b, 1));
        assert_eq!(b[0x3F], 1);
        let q = Field::qword(0x10);
        assert!(q.set(&mut b, 0x0102_0304_0506_0708));
        assert_eq!(&b[0x10..0x18], &[1, 2, 3, 4, 5, 6, 7, 8]);
        assert_eq!(q.get(&b), Some(0x0102_0304_0506_0708));
        assert_eq!(Field::dword(0x40).get(&b), None);
        assert!(!Field::dword(0x40).set(&mut b, 1));
        assert_eq!(Field::dword(0x40).get_or_zero(&b), 0);
    }

    #[test]
    fn typed_values_and_byte_runs() {
        let mut b = [0u8; 16];
        assert!(Field::at(0x04, 31, 31).write(&mut b, true));
        assert!(Field::at(0x04, 31, 31).read::<bool>(&b));
        assert_eq!(b[4], 0x80);
        assert!(Field::at(0x08, 15, 0).write(&mut b, 0x1234u16));
        assert_eq!(Field::at(0x08, 15, 0).read::<u16>(&b), 0x1234);
        assert_eq!(Field::qword(0x08).end(), 0x10);
        let mac = Bytes::at(0x0A, 6);
        b[0x0F] = 0xEE;
        assert!(mac.set(&mut b, &[1, 2, 3]));
        assert_eq!(
            &b[0x0A..0x10],
            &[1, 2, 3, 0, 0, 0],
            "rest of the run zero-filled"
        );
        assert!(!mac.set(&mut b, &[0; 7]), "longer than the run");
        assert!(!Bytes::at(0x0C, 6).set(&mut b, &[1]), "past the buffer");
        assert_eq!(Bytes::at(0x0C, 6).get(&b), None);
        assert_eq!(
            check_len("test layout", 17, b.len()),
            Err(Truncated {
                layout: "test layout",
                needed: 17,
                got: 16
            })
        );
    }

    proptest::proptest! {
        #[test]
        fn set_then_get_round_trips_and_leaves_the_rest(
            dword in 0usize..8, lo in 0u32..32, len in 1u32..=32, v: u64, fill: u8
        ) {
            let hi = (lo + len - 1).min(31);
            let f = Field::at(dword * 4, hi, lo);
            let mut b = [fill; 32];
            let before = b;
            proptest::prop_assert!(f.set(&mut b, v));
            proptest::prop_assert_eq!(f.get(&b), Some(v & u64::from(mask32(f.width))));
            // Bits outside the field are unchanged.
            let mut restored = b;
            f.set(&mut restored, f.get(&before).unwrap());
            proptest::prop_assert_eq!(restored, before);
        }
    }
}
