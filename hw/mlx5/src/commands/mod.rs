//! Input and output layouts of the commands the model answers and the driver issues, and the
//! object contexts they carry (Linux `mlx5_ifc.h`, the `*_in_bits`/`*_out_bits` structs; the
//! call sites in `mlx5_core` and rdma-core's `mlx5_vfio.c` for the values used).
//!
//! Each layout is a view (`new_checked` checks the fixed length; getters and setters never
//! panic). Offsets are from the start of the whole message, as the command carries it: the
//! first 16 bytes inline in the queue entry, the rest in mailboxes (see [`crate::cmd`]). Every
//! input begins with the opcode/uid/op_mod header and every output with status/syndrome; the
//! views expose both. Arrays at the end of a message (page addresses, RQ numbers, MAC lists)
//! are read with index accessors that answer `None` past the buffer.
//!
//! * [`lifecycle`]: ENABLE/DISABLE_HCA, QUERY/SET_ISSI, QUERY/MANAGE_PAGES, QUERY/SET_HCA_CAP,
//!   INIT/TEARDOWN_HCA, SET_DRIVER_VERSION, QUERY_ADAPTER, ACCESS_REG.
//! * [`resources`]: UAR, PD, transport domain, mkey (with `mkc`), Q counters, special contexts.
//! * [`queues`]: EQ, CQ, SQ, RQ commands with `eqc`, `cqc`, `sqc`, `rqc` and `wq`.
//! * [`rx`]: TIS, TIR and RQT commands with their contexts.
//! * [`vport`]: vport state, NIC vport context (MAC, MTU, address lists), vport counters.
//! * [`steering`]: flow tables, groups and entries (NIC RX), the root, and match parameters.
//! * [`eswitch`]: what the PF uses on a VF's behalf: vport numbers and QoS scheduling elements.

pub mod eswitch;
pub mod lifecycle;
pub mod queues;
pub mod resources;
pub mod rx;
pub mod steering;
pub mod vport;

/// Bytes of the smallest output of most commands: status, syndrome and two dwords.
pub const OUT_LEN_16: usize = 0x10;

/// Declares `$get`/`$get_mut` on `$outer` returning the `$inner` context view at `$at`; both
/// layouts must be declared in the module that invokes it.
macro_rules! nested {
    ($outer:ident, $get:ident, $get_mut:ident, $inner:ident, $at:expr) => {
        const _: () = assert!(
            $at + $inner::<&[u8]>::LEN <= $outer::<&[u8]>::LEN,
            "context outside its command"
        );
        impl<T: AsRef<[u8]>> $outer<T> {
            #[doc = concat!("The embedded [`", stringify!($inner), "`].")]
            pub fn $get(&self) -> $inner<&[u8]> {
                // In bounds and long enough: the outer view holds at least its LEN bytes, and
                // the assertion above keeps the context inside LEN. (Same module: the layout
                // macro's private field is visible.)
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
