//! The `layout!` macro: declares a typed view over the bytes of one PRM structure (a command
//! input or output, an object context) from a table of named [`Field`](crate::field::Field)s.
//!
//! For `pub struct Name(LEN) { getter, setter: Type = Field; ... }` it generates:
//!
//! * `Name<T: AsRef<[u8]>>`, a view with `new_checked` (the buffer must hold `LEN` bytes),
//!   `into_inner`, `as_bytes`;
//! * `Name::<T>::LEN` and `Name::<T>::FIELDS` (every field by name, for dumps and tests);
//! * a getter per field (reads never fail: the length was checked), and with
//!   `T: AsMut<[u8]>` a setter (values wider than the field are truncated);
//! * a compile-time check that every field lies inside `LEN`.
//!
//! `input(Opcode::X) struct` adds the header every command input starts with (opcode, uid,
//! op_mod) and `Name::<T>::OPCODE`; `output struct` adds the header of every output (status,
//! syndrome).

macro_rules! layout {
    (
        $(#[$meta:meta])*
        input($opcode:expr) struct $name:ident($len:expr) {
            $( $(#[$fmeta:meta])* $get:ident, $set:ident: $ty:ty = $at:expr; )*
        }
    ) => {
        layout! {
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
        layout! {
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
        pub struct $name:ident($len:expr) {
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
                $crate::field::check_len(buffer.as_ref(), $len)?;
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
}

pub(crate) use layout;
