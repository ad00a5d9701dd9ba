//! The plumbing shared by this crate's typed layout views: the length error every
//! `new_checked` returns, the conversion between field bits and typed values, and the
//! `layout!` macro that declares a layout once (its fields as
//! [`Field`](crate::Field)s) and derives from that one list the view's getters and setters and
//! the `Repr` with `parse` and `emit`.

/// A buffer shorter than the layout it was to hold.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct Truncated {
    /// The layout's name ("CQE", "send WQE control segment", ...).
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
pub(crate) fn check_len(layout: &'static str, needed: usize, got: usize) -> Result<(), Truncated> {
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

/// A value stored in a field: the raw field bits convert to it and back. Values the hardware
/// does not define survive the round trip (enums keep them as `Unknown(raw)`).
pub trait FieldValue: Copy {
    /// The value of the raw field bits.
    fn from_raw(raw: u64) -> Self;
    /// The raw bits of the value (truncated to the field's width when written).
    fn into_raw(self) -> u64;
}

impl FieldValue for bool {
    fn from_raw(raw: u64) -> Self {
        raw != 0
    }
    fn into_raw(self) -> u64 {
        u64::from(self)
    }
}

macro_rules! int_field_value {
    ($($t:ty),*) => {$(
        impl FieldValue for $t {
            fn from_raw(raw: u64) -> Self {
                raw as $t
            }
            fn into_raw(self) -> u64 {
                u64::from(self)
            }
        }
    )*};
}
int_field_value!(u8, u16, u32, u64);

/// A 64-bit address field the device puts on the bus.
impl FieldValue for hw_common::Iova {
    fn from_raw(raw: u64) -> Self {
        hw_common::Iova(raw)
    }
    fn into_raw(self) -> u64 {
        self.0
    }
}

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

        impl $crate::view::FieldValue for $name {
            fn from_raw(raw: u64) -> Self {
                $name::from_raw_value(raw as $raw)
            }
            fn into_raw(self) -> u64 {
                u64::from(self.raw_value())
            }
        }
    };
}

/// Declares a fixed-length layout once: a view over `T: AsRef<[u8]>` with `new_checked`,
/// a getter and a setter per field, and a `Repr` holding every field with `parse` and `emit`.
macro_rules! layout {
    (
        $(#[$vm:meta])* view $view:ident;
        $(#[$rm:meta])* repr $repr:ident;
        len $len:expr, $what:literal;
        fields {
            $( $(#[$fm:meta])* $name:ident, $set:ident : $ty:ty = $field:expr; )*
        }
    ) => {
        $(#[$vm])*
        #[derive(Clone, Copy, Debug)]
        pub struct $view<T: AsRef<[u8]>> {
            buffer: T,
        }

        impl<T: AsRef<[u8]>> $view<T> {
            /// Bytes of the layout.
            pub const LEN: usize = $len;

            /// Wraps `buffer` after checking that it holds the whole layout.
            pub fn new_checked(buffer: T) -> Result<Self, $crate::view::Truncated> {
                $crate::view::check_len($what, $len, buffer.as_ref().len())?;
                Ok($view { buffer })
            }

            /// The wrapped buffer.
            pub fn into_inner(self) -> T {
                self.buffer
            }

            /// The layout's bytes (the first [`Self::LEN`] of the buffer).
            pub fn as_bytes(&self) -> &[u8] {
                &self.buffer.as_ref()[..$len]
            }

            $(
                $(#[$fm])*
                pub fn $name(&self) -> $ty {
                    <$ty as $crate::view::FieldValue>::from_raw(
                        $field.get_or_zero(self.buffer.as_ref()),
                    )
                }
            )*
        }

        impl<T: AsRef<[u8]> + AsMut<[u8]>> $view<T> {
            /// The layout's bytes, writable.
            pub fn as_bytes_mut(&mut self) -> &mut [u8] {
                &mut self.buffer.as_mut()[..$len]
            }

            $(
                #[doc = concat!("Sets [`Self::", stringify!($name), "`].")]
                pub fn $set(&mut self, value: $ty) {
                    // The length was checked in `new_checked`, so the write lands.
                    let _ = $field.set(
                        self.buffer.as_mut(),
                        <$ty as $crate::view::FieldValue>::into_raw(value),
                    );
                }
            )*
        }

        $(#[$rm])*
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
        pub struct $repr {
            $( $(#[$fm])* pub $name: $ty, )*
        }

        impl $repr {
            /// Reads every field of `view` (never fails: unknown values are kept).
            pub fn parse<T: AsRef<[u8]>>(view: &$view<T>) -> Self {
                $repr { $( $name: view.$name(), )* }
            }

            /// Writes every field into `view`; bits outside the fields are left as they are.
            pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, view: &mut $view<T>) {
                $( view.$set(self.$name); )*
            }
        }
    };
}

pub(crate) use field_enum;
pub(crate) use layout;
