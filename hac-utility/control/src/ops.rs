//! The one list of control operations. Every other view of them — the [`Request`] enum, the
//! [`Op`] names, the typed [`Reply`], the [`OPS`] table `hac ctl` builds its subcommands from
//! and a test checks docs/control.md against — is generated here from that list.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::replies::{Guard, HelloInfo, Limits, Queued, Stopping, VfSummary};
use crate::stats::Stats;

/// How a field is given on the `hac ctl` command line (the wire form is the same for all: a
/// JSON member of the field's name).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FieldStyle {
    /// Required, positional (`hac ctl commit 1 3`).
    Arg,
    /// Required, as `--name N`.
    Flag,
    /// Optional, as `--name N`; absent on the wire means the default.
    Optional,
}

/// One field of an operation.
#[derive(Clone, Copy, Debug)]
pub struct FieldSpec {
    /// Its JSON name.
    pub name: &'static str,
    /// What it means.
    pub doc: &'static str,
    /// How `hac ctl` takes it.
    pub style: FieldStyle,
}

/// One operation: its name, documentation, fields and the type of its result.
#[derive(Clone, Copy, Debug)]
pub struct OpSpec {
    /// The operation.
    pub op: Op,
    /// Its name on the wire (`"set_limits"`).
    pub name: &'static str,
    /// What it does.
    pub doc: &'static str,
    /// Its fields, in order.
    pub fields: &'static [FieldSpec],
    /// The Rust type of its result (`"VfSummary"`).
    pub reply: &'static str,
}

macro_rules! control_ops {
    ($(
        $(#[doc = $doc:literal])+
        $variant:ident = $name:literal {
            $( $(#[doc = $fdoc:literal])+ $field:ident : $ty:ty = $style:ident ),* $(,)?
        } => $reply:ident
    ),+ $(,)?) => {
        /// What a client asks the daemon to do. `vf` is the VF index (0-based) on the daemon's
        /// PF.
        #[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
        #[serde(tag = "op", deny_unknown_fields)]
        pub enum Request {
            $(
                $(#[doc = $doc])+
                #[serde(rename = $name)]
                $variant { $( $(#[doc = $fdoc])+ $field: $ty ),* },
            )+
        }

        /// An operation, without its fields.
        #[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum Op {
            $( $(#[doc = $doc])+ $variant, )+
        }

        /// Every operation, in protocol order.
        pub const OPS: &[OpSpec] = &[$(
            OpSpec {
                op: Op::$variant,
                name: $name,
                doc: concat!($($doc),+),
                fields: &[$(
                    FieldSpec {
                        name: stringify!($field),
                        doc: concat!($($fdoc),+),
                        style: FieldStyle::$style,
                    }
                ),*],
                reply: stringify!($reply),
            }
        ),+];

        impl Op {
            /// Every operation, in protocol order.
            pub const ALL: &'static [Op] = &[$(Op::$variant),+];

            /// Its name on the wire.
            pub fn name(self) -> &'static str {
                match self { $(Op::$variant => $name),+ }
            }

            /// The operation of a wire name.
            pub fn from_name(name: &str) -> Option<Op> {
                match name { $($name => Some(Op::$variant),)+ _ => None }
            }
        }

        impl Request {
            /// The request's operation.
            pub fn op(&self) -> Op {
                match self { $(Request::$variant { .. } => Op::$variant),+ }
            }
        }

        /// The result of a request, typed by its operation.
        #[derive(Clone, Debug, PartialEq, Eq)]
        pub enum Reply {
            $( $(#[doc = $doc])+ $variant($reply), )+
        }

        impl Reply {
            /// The operation this answers.
            pub fn op(&self) -> Op {
                match self { $(Reply::$variant(_) => Op::$variant),+ }
            }

            /// The `result` member of the response line.
            pub fn to_value(&self) -> Result<Value, serde_json::Error> {
                match self { $(Reply::$variant(r) => serde_json::to_value(r)),+ }
            }

            /// The JSON Schema of the `result` member of the answer to an `op` request, as a
            /// reference into `generator`'s definitions.
            pub fn result_schema(
                op: Op,
                generator: &mut schemars::SchemaGenerator,
            ) -> schemars::Schema {
                match op { $(Op::$variant => generator.subschema_for::<$reply>()),+ }
            }

            /// Reads the `result` member of the answer to an `op` request.
            pub fn from_value(op: Op, value: Value) -> Result<Reply, serde_json::Error> {
                match op { $(Op::$variant => serde_json::from_value(value).map(Reply::$variant)),+ }
            }
        }

        /// Any request (fields anywhere in their types' ranges), for property tests.
        #[cfg(test)]
        pub(crate) fn any_request() -> proptest::strategy::BoxedStrategy<Request> {
            use proptest::prelude::*;
            proptest::strategy::Union::new(vec![$(
                (Just(()), $(any::<$ty>(),)*)
                    .prop_map(|(_, $($field,)*)| Request::$variant { $($field),* })
                    .boxed()
            ),+]).boxed()
        }
    };
}

control_ops! {
    /// Who is serving: version, VFs, backend.
    Hello = "hello" {} => HelloInfo,
    /// Mark a VF as checkpointing: its frames are held until their epoch commits (epoch 1
    /// opens).
    Tag = "tag" {
        /// The VF.
        vf: usize = Arg,
    } => VfSummary,
    /// Stop checkpointing a VF; what it holds is released.
    Untag = "untag" {
        /// The VF.
        vf: usize = Arg,
    } => VfSummary,
    /// Open `epoch` (strictly above the open one): later frames belong to it.
    Open = "open" {
        /// The VF.
        vf: usize = Arg,
        /// The new epoch.
        epoch: u32 = Arg,
    } => VfSummary,
    /// The backup acknowledged `epoch`: release every frame of epochs ≤ `epoch`.
    Commit = "commit" {
        /// The VF.
        vf: usize = Arg,
        /// The acknowledged epoch.
        epoch: u32 = Arg,
    } => VfSummary,
    /// Checkpoint `epoch` failed: discard the frames it covered.
    Abort = "abort" {
        /// The VF.
        vf: usize = Arg,
        /// The failed epoch.
        epoch: u32 = Arg,
    } => VfSummary,
    /// This host is no longer primary: discard everything the VF holds.
    Failover = "failover" {
        /// The VF.
        vf: usize = Arg,
    } => VfSummary,
    /// The backup is lost: release everything the VF holds and stop buffering.
    Unprotect = "unprotect" {
        /// The VF.
        vf: usize = Arg,
    } => VfSummary,
    /// Buffer limits of a VF (frames and bytes; 0 = the adapter's maximum).
    SetLimits = "set_limits" {
        /// The VF.
        vf: usize = Arg,
        /// Frame limit.
        frames: u32 = Flag,
        /// Byte limit.
        bytes: u32 = Flag,
    } => Limits,
    /// Starvation guard of the egress scheduler, bytes (0 = strict priority for released
    /// checkpoint traffic).
    SetGuard = "set_guard" {
        /// Guard in bytes.
        bytes: u32 = Arg,
    } => Guard,
    /// Counters: one VF, or all VFs and the port (`hac stats` prints them as a table).
    Stats = "stats" {
        /// Only this VF (all when absent).
        vf: Option<usize> = Optional,
    } => Stats,
    /// Model only: the stand-in workload on `vf` transmits `frames` frames of `len` bytes.
    Send = "send" {
        /// The VF.
        vf: usize = Arg,
        /// How many frames (at most 100000).
        frames: u32 = Arg,
        /// Frame length without FCS (60..=1514; default 128).
        len: Option<u32> = Optional,
    } => Queued,
    /// Stop the daemon (it answers, then removes its socket and exits).
    Shutdown = "shutdown" {} => Stopping,
}

impl Op {
    /// The operation's entry in [`OPS`].
    pub fn spec(self) -> &'static OpSpec {
        // OPS is generated in the order of Op's variants.
        &OPS[self as usize]
    }
}

impl std::fmt::Display for Op {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.name())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_list_is_consistent() {
        assert_eq!(OPS.len(), Op::ALL.len());
        for (i, op) in Op::ALL.iter().enumerate() {
            assert_eq!(OPS[i].op, *op);
            assert_eq!(op.spec().name, op.name());
            assert_eq!(Op::from_name(op.name()), Some(*op));
            assert!(!op.spec().doc.trim().is_empty());
        }
        assert_eq!(Op::from_name("reboot"), None);
    }
}
