//! The typed results of the control operations other than `stats` (which is in
//! [`crate::stats`]). Their JSON form is the `result` member of a response line.

use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// The result of `hello`: who is serving.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct HelloInfo {
    /// `"hac"`.
    pub name: String,
    /// The daemon's version.
    pub version: String,
    /// `"model"` (the built-in model) or `"vfio"` (a real PF).
    pub backend: String,
    /// The real PF's PCI address (`vfio` backend only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub pf: Option<String>,
    /// VFs on the PF.
    pub vfs: usize,
    /// The model's port rate (`model` backend only).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub port_rate: Option<String>,
    /// Who holds output: `"adapter"` (the HAC block) or `"none"`.
    pub hac: String,
    /// The vfio-user sockets of exported VFs (absent when none are exported).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub vfio_user: Option<Vec<String>>,
}

/// The result of the HAC operations (`tag`, `untag`, `open`, `commit`, `abort`, `failover`,
/// `unprotect`): the VF's HAC state after the operation.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct VfSummary {
    /// The VF.
    pub vf: usize,
    /// Whether it is checkpointing (tagged).
    pub checkpointing: bool,
    /// The epoch new frames are stamped with.
    pub open_epoch: u32,
    /// The last committed epoch.
    pub committed_epoch: u32,
    /// Frames held now.
    pub buffered_frames: u32,
    /// Frames released so far.
    pub released: u64,
    /// Frames discarded so far.
    pub discarded: u64,
}

/// The result of `set_limits`: the limits set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct Limits {
    /// The VF.
    pub vf: usize,
    /// Frame limit (0 = the adapter's maximum).
    pub limit_frames: u32,
    /// Byte limit (0 = the adapter's maximum).
    pub limit_bytes: u32,
}

/// The result of `set_guard`: the guard set.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct Guard {
    /// Guard in bytes.
    pub guard_bytes: u32,
}

/// The result of `send`: the frames queued.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct Queued {
    /// The VF.
    pub vf: usize,
    /// Frames queued.
    pub queued: u32,
    /// Their length without FCS.
    pub len: usize,
}

/// The result of `shutdown`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize, JsonSchema)]
pub struct Stopping {
    /// Always `true`: the daemon stops after this answer.
    pub stopping: bool,
}
