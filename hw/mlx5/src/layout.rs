//! The layout machinery: the macros that declare a typed view over the bytes of one PRM
//! structure (a command input or output, an object context, a capability page, a WQE
//! segment, a CQE, an EQE, a doorbell) once, from a table of named
//! [`Field`](crate::field::Field)s, and derive everything else from that one table.
//!
//! `layout!` takes `pub struct Name(LEN) { getter, setter: Type = Field; ... }`, optionally
//! `Name(LEN, "name in errors")` and a trailing `repr NameRepr;`, and generates:
//!
//! * `Name<T: AsRef<[u8]>>`, a view with `new_checked` (the buffer must hold `LEN` bytes, else
//!   [`Truncated`](crate::field::Truncated) naming the layout), `into_inner`, `as_bytes`;
//! * `Name::<T>::LEN` and `Name::<T>::FIELDS` (every field by name, for dumps and tests);
//! * a getter per field (reads never fail: the length was checked), and with
//!   `T: AsMut<[u8]>` a setter (values wider than the field are truncated);
//! * a compile-time check that every field lies inside `LEN`;
//! * with `repr`: `NameRepr`, a plain struct of every field with `parse` and `emit`.
//!
//! `input(Opcode::X) struct` adds the header every command input starts with (opcode, uid,
//! op_mod) and `Name::<T>::OPCODE`; `output struct` adds the header of every output (status,
//! syndrome).
//!
//! Field types are anything implementing [`FieldValue`](crate::field::FieldValue): integers,
//! `bool`, [`Iova`](hw_common::Iova), and the enums `field_enum!` declares (named values plus
//! `Unknown(raw)`, so unknown encodings survive a parse/emit round trip).
//!
//! `nested!` places one layout inside another at a fixed offset (a context inside a command, a
//! property block inside a capability page); `tail_array!` reads and writes the array of
//! fixed-size entries that may follow a layout's fixed part.

macro_rules! layout {
    (
        $(#[$meta:meta])*
        input($opcode:expr) struct $name:ident($len:expr) {
            $( $(#[$fmeta:meta])* $get:ident, $set:ident: $ty:ty = $at:expr; )*
        }
    ) => {
        $crate::layout::layout! {
            $(#[$meta])*
            pub struct $name($len) {
                /// The command's opcode (every input: dword 0 bits 31:16).
                raw_opcode, set_raw_opcode: u16 = $crate::cmd::header::OPCODE;
                /// The user context id (every input: dword 0 bits 15:0; 0 for the kernel).
                uid, set_uid: u16 = $crate::cmd::header::UID;
                /// The opcode modifier (every input: dword 1 bits 15:0).
                op_mod, set_op_mod: u16 = $crate::cmd::header::OP_MOD;
                $( $(#[$fmeta])* $get, $set: $ty = $at; )*
            }
        }
        impl<T: AsRef<[u8]>> $name<T> {
            /// The opcode this layout belongs to.
            pub const OPCODE: $crate::cmd::Opcode = $opcode;
            /// The opcode in the header, decoded.
            pub fn opcode(&self) -> $crate::cmd::Opcode {
                $crate::cmd::Opcode::from(self.raw_opcode())
            }
        }
        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// Writes this command's opcode and `op_mod` into the header (uid 0).
            pub fn set_header(&mut self, op_mod: u16) {
                self.set_raw_opcode(u16::from(Self::OPCODE));
                self.set_uid(0);
                self.set_op_mod(op_mod);
            }
        }
    };
    (
        $(#[$meta:meta])*
        output struct $name:ident($len:expr) {
            $( $(#[$fmeta:meta])* $get:ident, $set:ident: $ty:ty = $at:expr; )*
        }
    ) => {
        $crate::layout::layout! {
            $(#[$meta])*
            pub struct $name($len) {
                /// The raw command status (every output: byte 0).
                raw_status, set_raw_status: u8 = $crate::cmd::header::STATUS;
                /// The firmware's syndrome: an opaque code naming the failure (every output:
                /// dword 1).
                syndrome, set_syndrome: u32 = $crate::cmd::header::SYNDROME;
                $( $(#[$fmeta])* $get, $set: $ty = $at; )*
            }
        }
        impl<T: AsRef<[u8]>> $name<T> {
            /// The command status, decoded.
            pub fn status(&self) -> $crate::cmd::CommandStatus {
                $crate::cmd::CommandStatus::from(self.raw_status())
            }
        }
        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// Sets the command status.
            pub fn set_status(&mut self, status: $crate::cmd::CommandStatus) {
                self.set_raw_status(u8::from(status));
            }
        }
    };
    (
        $(#[$meta:meta])*
        pub struct $name:ident($len:expr, $what:expr) { $($body:tt)* }
        $(#[$rmeta:meta])* repr $repr:ident;
    ) => {
        $crate::layout::layout!(@view $(#[$meta])* [$name] [$len] [$what] { $($body)* });
        $crate::layout::layout!(@repr $(#[$rmeta])* [$repr] [$name] { $($body)* });
    };
    (
        $(#[$meta:meta])*
        pub struct $name:ident($len:expr, $what:expr) { $($body:tt)* }
    ) => {
        $crate::layout::layout!(@view $(#[$meta])* [$name] [$len] [$what] { $($body)* });
    };
    (
        $(#[$meta:meta])*
        pub struct $name:ident($len:expr) { $($body:tt)* }
        $($repr:tt)*
    ) => {
        $crate::layout::layout! {
            $(#[$meta])*
            pub struct $name($len, stringify!($name)) { $($body)* }
            $($repr)*
        }
    };
    (
        @view $(#[$meta:meta])* [$name:ident] [$len:expr] [$what:expr] {
            $( $(#[$fmeta:meta])* $get:ident, $set:ident: $ty:ty = $at:expr; )*
        }
    ) => {
        $(#[$meta])*
        #[derive(Clone, Copy, Debug)]
        pub struct $name<T: AsRef<[u8]>> {
            buffer: T,
        }

        const _: () = {
            $( assert!(($at).end() <= $len, "field outside its layout"); )*
        };

        impl<T: AsRef<[u8]>> $name<T> {
            /// Bytes in the fixed part of this layout.
            pub const LEN: usize = $len;
            /// Every named field, for dumps, docs and tests.
            pub const FIELDS: &'static [(&'static str, $crate::field::Field)] =
                &[$((stringify!($get), $at),)*];

            /// Wraps `buffer` after checking that it holds [`Self::LEN`] bytes.
            pub fn new_checked(buffer: T) -> Result<Self, $crate::field::Truncated> {
                $crate::field::check_len($what, $len, buffer.as_ref().len())?;
                Ok($name { buffer })
            }
            /// The wrapped buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }
            /// The whole wrapped buffer (at least [`Self::LEN`] bytes).
            pub fn as_bytes(&self) -> &[u8] {
                self.buffer.as_ref()
            }
            $(
                $(#[$fmeta])*
                pub fn $get(&self) -> $ty {
                    ($at).read::<$ty>(self.buffer.as_ref())
                }
            )*
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $name<T> {
            /// The whole wrapped buffer, writable.
            pub fn as_bytes_mut(&mut self) -> &mut [u8] {
                self.buffer.as_mut()
            }
            $(
                #[doc = concat!("Sets [`Self::", stringify!($get), "`].")]
                pub fn $set(&mut self, value: $ty) {
                    // Cannot fail: `new_checked` saw LEN bytes and the const check above keeps
                    // every field inside LEN.
                    let _inside = ($at).write::<$ty>(self.buffer.as_mut(), value);
                }
            )*
        }
    };
    (
        @repr $(#[$rmeta:meta])* [$repr:ident] [$name:ident] {
            $( $(#[$fmeta:meta])* $get:ident, $set:ident: $ty:ty = $at:expr; )*
        }
    ) => {
        $(#[$rmeta])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
        pub struct $repr {
            $( $(#[$fmeta])* pub $get: $ty, )*
        }

        impl $repr {
            /// Reads every field of `view` (never fails: unknown values are kept).
            pub fn parse<T: AsRef<[u8]>>(view: &$name<T>) -> Self {
                $repr { $( $get: view.$get(), )* }
            }

            /// Writes every field into `view`; bits outside the fields are left as they are.
            pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, view: &mut $name<T>) {
                $( view.$set(self.$get); )*
            }
        }
    };
}
pub(crate) use layout;

/// Declares an enum stored in a field: named values plus `Unknown(raw)` for the rest.
macro_rules! field_enum {
    (
        $(#[$m:meta])* $vis:vis enum $name:ident : $raw:ty {
            $( $(#[$vm:meta])* $variant:ident = $value:expr, )*
        }
    ) => {
        $(#[$m])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash)]
        $vis enum $name {
            $( $(#[$vm])* $variant, )*
            /// A value this crate does not name, kept as read.
            Unknown($raw),
        }

        impl $name {
            /// The value of `raw`.
            pub const fn from_raw_value(raw: $raw) -> Self {
                match raw {
                    $( v if v == $value => $name::$variant, )*
                    other => $name::Unknown(other),
                }
            }
            /// The raw encoding.
            pub const fn raw_value(self) -> $raw {
                match self {
                    $( $name::$variant => $value, )*
                    $name::Unknown(raw) => raw,
                }
            }
        }

        impl Default for $name {
            /// The value of an all-zero field.
            fn default() -> Self {
                $name::from_raw_value(0)
            }
        }

        impl From<$raw> for $name {
            fn from(raw: $raw) -> Self {
                $name::from_raw_value(raw)
            }
        }

        impl From<$name> for $raw {
            fn from(v: $name) -> $raw {
                v.raw_value()
            }
        }

        impl $crate::field::FieldValue for $name {
            fn from_raw(raw: u64) -> Self {
                $name::from_raw_value(raw as $raw)
            }
            fn into_raw(self) -> u64 {
                u64::from(self.raw_value())
            }
        }
    };
}
pub(crate) use field_enum;

/// Declares `$get`/`$get_mut` on `$outer` returning the `$inner` view at byte `$at`; both
/// layouts must be declared in the module that invokes it.
macro_rules! nested {
    ($outer:ident, $get:ident, $get_mut:ident, $inner:ident, $at:expr) => {
        const _: () = assert!(
            $at + $inner::<&[u8]>::LEN <= $outer::<&[u8]>::LEN,
            "nested layout outside its outer layout"
        );
        impl<T: AsRef<[u8]>> $outer<T> {
            #[doc = concat!("The embedded [`", stringify!($inner), "`].")]
            pub fn $get(&self) -> $inner<&[u8]> {
                // In bounds and long enough: the outer view holds at least its LEN bytes, and
                // the assertion above keeps the inner layout inside LEN. (Same module: the
                // layout macro's private field is visible.)
                $inner {
                    buffer: &self.as_bytes()[$at..],
                }
            }
        }
        impl<T: AsRef<[u8]> + AsMut<[u8]>> $outer<T> {
            #[doc = concat!("The embedded [`", stringify!($inner), "`], writable.")]
            pub fn $get_mut(&mut self) -> $inner<&mut [u8]> {
                $inner {
                    buffer: &mut self.as_bytes_mut()[$at..],
                }
            }
        }
    };
}
pub(crate) use nested;

/// Declares an array of big-endian `$width`-bit entries at `$at` up to the end of the buffer:
/// `$get(i)`, `$set(i, v)` and `$count()` on `$outer`.
macro_rules! tail_array {
    ($outer:ident, $at:expr, $ty:ty, $stride:expr, $get:ident, $set:ident, $count:ident, $what:literal) => {
        impl<T: AsRef<[u8]>> $outer<T> {
            #[doc = concat!("Entry `i` of ", $what, ", `None` past the buffer.")]
            pub fn $get(&self, i: usize) -> Option<$ty> {
                let at = i.checked_mul($stride)?.checked_add($at)?;
                let b = self.as_bytes().get(at..at + $stride)?;
                Some(<$ty>::from_be_bytes(b.try_into().ok()?))
            }
            #[doc = concat!("How many entries of ", $what, " the buffer holds.")]
            pub fn $count(&self) -> usize {
                self.as_bytes().len().saturating_sub($at) / $stride
            }
        }
        impl<T: AsRef<[u8]> + AsMut<[u8]>> $outer<T> {
            #[doc = concat!("Sets entry `i` of ", $what, "; false past the buffer.")]
            pub fn $set(&mut self, i: usize, value: $ty) -> bool {
                let Some(at) = i.checked_mul($stride).and_then(|o| o.checked_add($at)) else {
                    return false;
                };
                match self.as_bytes_mut().get_mut(at..at + $stride) {
                    Some(b) => {
                        b.copy_from_slice(&value.to_be_bytes());
                        true
                    }
                    None => false,
                }
            }
        }
    };
}
pub(crate) use tail_array;

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use crate::caps::{FT_NIC_RX_OFFSET, FlowTableCaps};
    use crate::cmd::{CommandStatus, DeliveryStatus};
    use crate::commands::queues::{CreateEqIn, QueueState};
    use crate::cqe::{CQE_LEN, Cqe};
    use crate::eqe::{EQE_LEN, Eqe, EqeRepr, EventData, EventType};
    use crate::field::Truncated;
    use crate::init_seg::{HealthSyndrome, InitSegment, field};
    use crate::wqe::{CtrlSeg, ctrl};

    #[test]
    fn truncated_names_the_layout_in_both_halves() {
        let e = Cqe::new_checked(&[0u8; 10][..]).unwrap_err();
        assert_eq!(
            e,
            Truncated {
                layout: "CQE",
                needed: CQE_LEN,
                got: 10
            }
        );
        assert_eq!(e.to_string(), "CQE needs 64 bytes, the buffer has 10");
        let e = CreateEqIn::new_checked(&[0u8; 4][..]).unwrap_err();
        assert_eq!((e.layout, e.got), ("CreateEqIn", 4));
        let e = InitSegment::new_checked(&[0u8; 8][..]).unwrap_err();
        assert_eq!(e.layout, "initialization segment");
    }

    #[test]
    fn every_layout_lists_its_fields() {
        let names: Vec<&str> = CtrlSeg::<&[u8]>::FIELDS.iter().map(|f| f.0).collect();
        assert_eq!(
            names,
            [
                "opc_mod",
                "wqe_index",
                "opcode",
                "sqn",
                "ds_count",
                "signature",
                "fence",
                "ce",
                "solicited",
                "imm"
            ]
        );
        assert!(CtrlSeg::<&[u8]>::FIELDS.contains(&("opcode", ctrl::OPCODE)));
        assert!(InitSegment::<&[u8]>::FIELDS.contains(&("cmdif_rev", field::CMDIF_REV)));
        for (name, f) in CreateEqIn::<&[u8]>::FIELDS {
            assert!(f.end() <= CreateEqIn::<&[u8]>::LEN, "{name}");
        }
        assert_eq!(CreateEqIn::<&[u8]>::FIELDS[0].0, "raw_opcode");
    }

    #[test]
    fn nested_blocks_are_the_outer_bytes() {
        let mut page = [0u8; 0x1000];
        let mut caps = FlowTableCaps::new_checked(&mut page[..]).unwrap();
        caps.nic_rx_mut().set_ft_support(true);
        assert!(caps.nic_rx().ft_support());
        assert!(!caps.nic_tx().ft_support());
        assert_eq!(page[FT_NIC_RX_OFFSET], 0x80);
    }

    #[test]
    fn a_view_over_a_longer_buffer_writes_only_its_layout() {
        let mut ring = [0xEEu8; 2 * EQE_LEN];
        let r = EqeRepr {
            event_type: EventType::Completion,
            sub_type: 0,
            data: EventData::Completion { cqn: 7 },
            owner: true,
        };
        let mut v = Eqe::new_checked(&mut ring[..]).unwrap();
        r.emit(&mut v);
        assert_eq!(
            v.as_bytes().len(),
            2 * EQE_LEN,
            "as_bytes is the whole buffer"
        );
        assert_eq!(&ring[..EQE_LEN], &r.to_bytes()[..]);
        assert!(
            ring[EQE_LEN..].iter().all(|&b| b == 0xEE),
            "next EQE untouched"
        );
    }

    #[test]
    fn field_enums_round_trip_every_raw_value() {
        for v in 0..=u8::MAX {
            assert_eq!(u8::from(CommandStatus::from(v)), v);
            assert_eq!(u8::from(DeliveryStatus::from(v)), v);
            assert_eq!(u8::from(HealthSyndrome::from(v)), v);
            assert_eq!(u8::from(QueueState::from(v)), v);
        }
        assert_eq!(CommandStatus::from(0x51), CommandStatus::BadOutputLength);
        assert_eq!(CommandStatus::from(0x99), CommandStatus::Unknown(0x99));
        assert_eq!(DeliveryStatus::from(0x10), DeliveryStatus::BadCommandType);
        assert_eq!(QueueState::default(), QueueState::Reset);
    }
}
