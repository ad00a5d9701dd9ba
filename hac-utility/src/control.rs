//! The control protocol of `hac serve`: one JSON object per line over a Unix stream socket, one
//! response line per request line, in order (docs/control.md).
//!
//! Parsing is separate from the daemon so it can be tested and fuzzed alone: [`parse_line`] turns
//! any byte string into a [`Request`] or a [`ControlError`] and never panics.

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Longest request line accepted, in bytes (without the newline). Longer lines are answered
/// with `line_too_long` and skipped.
pub const MAX_LINE: usize = 4096;

/// Largest number of frames one `send` request may ask for.
pub const MAX_SEND_FRAMES: u32 = 100_000;

/// What a client asks the daemon to do. `vf` is the VF index (0-based) on the daemon's PF.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Who is serving: version, VFs, backend.
    Hello,
    /// Mark a VF as checkpointing (its epoch 1 opens).
    Tag {
        /// The VF.
        vf: usize,
    },
    /// Stop checkpointing a VF (what it holds is released).
    Untag {
        /// The VF.
        vf: usize,
    },
    /// Open `epoch` (strictly above the open one): later frames belong to it.
    Open {
        /// The VF.
        vf: usize,
        /// The new epoch.
        epoch: u32,
    },
    /// The backup acknowledged `epoch`: release every frame of epochs ≤ `epoch`.
    Commit {
        /// The VF.
        vf: usize,
        /// The acknowledged epoch.
        epoch: u32,
    },
    /// Checkpoint `epoch` failed: discard the frames it covered.
    Abort {
        /// The VF.
        vf: usize,
        /// The failed epoch.
        epoch: u32,
    },
    /// This host is no longer primary: discard everything the VF holds.
    Failover {
        /// The VF.
        vf: usize,
    },
    /// The backup is lost: release everything and stop buffering.
    Unprotect {
        /// The VF.
        vf: usize,
    },
    /// Buffer limits of a VF (frames and bytes; 0 = the adapter's maximum).
    SetLimits {
        /// The VF.
        vf: usize,
        /// Frame limit.
        frames: u32,
        /// Byte limit.
        bytes: u32,
    },
    /// Starvation guard of the egress scheduler, bytes (0 = strict priority).
    SetGuard {
        /// Guard in bytes.
        bytes: u32,
    },
    /// Counters: one VF, or all VFs and the port.
    Stats {
        /// The VF (all when absent).
        #[serde(default)]
        vf: Option<usize>,
    },
    /// Model only: the stand-in workload on `vf` transmits `frames` frames of `len` bytes.
    Send {
        /// The VF.
        vf: usize,
        /// How many frames.
        frames: u32,
        /// Frame length without FCS (60..=1514; default 128).
        #[serde(default)]
        len: Option<u32>,
    },
    /// Stop the daemon (it answers, then removes its socket and exits).
    Shutdown,
}

impl Request {
    /// The request's operation name, as on the wire.
    pub fn op(&self) -> &'static str {
        match self {
            Request::Hello => "hello",
            Request::Tag { .. } => "tag",
            Request::Untag { .. } => "untag",
            Request::Open { .. } => "open",
            Request::Commit { .. } => "commit",
            Request::Abort { .. } => "abort",
            Request::Failover { .. } => "failover",
            Request::Unprotect { .. } => "unprotect",
            Request::SetLimits { .. } => "set_limits",
            Request::SetGuard { .. } => "set_guard",
            Request::Stats { .. } => "stats",
            Request::Send { .. } => "send",
            Request::Shutdown => "shutdown",
        }
    }
}

/// Every operation name, for error messages and docs.
pub const OPS: &[&str] = &[
    "hello",
    "tag",
    "untag",
    "open",
    "commit",
    "abort",
    "failover",
    "unprotect",
    "set_limits",
    "set_guard",
    "stats",
    "send",
    "shutdown",
];

/// Counters of one VF, as `stats` returns them (field order = `hac stats` order).
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct VfCounters {
    /// The VF index.
    pub vf: usize,
    /// Its MAC address (empty until it has one).
    pub mac: String,
    /// 1 while checkpointing (tagged), else 0.
    pub checkpointing: u32,
    /// Good frames the VF transmitted (VFGPTC).
    pub tx_packets: u64,
    /// Good octets the VF transmitted (VFGOTC).
    pub tx_bytes: u64,
    /// Good frames the VF received (VFGPRC).
    pub rx_packets: u64,
    /// Good octets the VF received (VFGORC).
    pub rx_bytes: u64,
    /// Frames dropped for lack of RX descriptors (RQDPC).
    pub rx_dropped: u64,
    /// Epoch new frames are stamped with.
    pub hac_open_epoch: u32,
    /// Last committed epoch.
    pub hac_committed_epoch: u32,
    /// Frames held now.
    pub hac_buffered_frames: u32,
    /// Bytes held now.
    pub hac_buffered_bytes: u32,
    /// Most frames ever held.
    pub hac_max_frames: u32,
    /// Most bytes ever held.
    pub hac_max_bytes: u32,
    /// Frames released to the wire by commits or unprotect.
    pub hac_released: u64,
    /// Frames discarded by aborts and failovers.
    pub hac_discarded: u64,
    /// Times the buffer was full and the TX ring was held back.
    pub hac_backpressure: u64,
    /// Mailbox messages the PF agent handled for this VF.
    pub mbx_messages: u64,
    /// Mailbox messages it refused.
    pub mbx_nacks: u64,
    /// VF_RESET handshakes completed.
    pub vf_resets: u64,
    /// Model workload: frames queued by `send` and not yet in the TX ring.
    pub workload_queued: u64,
    /// Model workload: frames handed to the TX ring.
    pub workload_sent: u64,
    /// Model workload: frames of `send` requests refused because the VF's queue was full.
    pub workload_refused: u64,
    /// vfio-user: the VF's interrupts its VM's eventfd did not take (counter full or broken).
    pub irqs_lost: u64,
}

/// Counters of the port, as `stats` returns them.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct PortCounters {
    /// Frames that left the wire port.
    pub wire_frames: u64,
    /// Their bytes (without FCS).
    pub wire_bytes: u64,
    /// Nanoseconds the wire was busy.
    pub wire_busy_ns: u64,
    /// The device's (virtual) time, ns.
    pub device_time_ns: u64,
    /// Starvation guard, bytes.
    pub guard_bytes: u32,
}

/// The result of `stats`.
#[derive(Clone, Debug, Default, PartialEq, Eq, Deserialize, Serialize)]
pub struct Stats {
    /// Port totals.
    pub port: PortCounters,
    /// One entry per VF asked for.
    pub vfs: Vec<VfCounters>,
}

/// Counter fields that are gauges (a level, not a running total) — for Prometheus types.
pub const GAUGES: &[&str] = &[
    "checkpointing",
    "hac_open_epoch",
    "hac_committed_epoch",
    "hac_buffered_frames",
    "hac_buffered_bytes",
    "hac_max_frames",
    "hac_max_bytes",
    "workload_queued",
    "device_time_ns",
    "guard_bytes",
];

/// The counters in the Prometheus text exposition format (version 0.0.4): one family per
/// field, `hac_port_<field>` and `hac_vf_<field>{vf="N"}`; running totals end in `_total`.
pub fn prometheus_text(stats: &Stats) -> String {
    use std::fmt::Write as _;
    let mut out = String::new();
    let mut family = |prefix: &str, rows: Vec<(Option<usize>, Value)>| {
        let Some((_, Value::Object(first))) = rows.first() else {
            return;
        };
        for key in first.keys() {
            if key == "vf"
                || !rows
                    .iter()
                    .all(|(_, v)| v.get(key).is_some_and(Value::is_u64))
            {
                continue; // not a number (the MAC)
            }
            let gauge = GAUGES.contains(&key.as_str());
            let name = if gauge {
                format!("hac_{prefix}_{key}")
            } else {
                format!("hac_{prefix}_{key}_total")
            };
            let kind = if gauge { "gauge" } else { "counter" };
            let _ = writeln!(out, "# TYPE {name} {kind}");
            for (vf, v) in &rows {
                let n = v.get(key).and_then(Value::as_u64).unwrap_or(0);
                match vf {
                    Some(vf) => {
                        let _ = writeln!(out, "{name}{{vf=\"{vf}\"}} {n}");
                    }
                    None => {
                        let _ = writeln!(out, "{name} {n}");
                    }
                }
            }
        }
    };
    family(
        "port",
        vec![(
            None,
            serde_json::to_value(&stats.port).unwrap_or(Value::Null),
        )],
    );
    family(
        "vf",
        stats
            .vfs
            .iter()
            .map(|v| (Some(v.vf), serde_json::to_value(v).unwrap_or(Value::Null)))
            .collect(),
    );
    out
}

/// Machine-readable error classes of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum ErrorCode {
    /// The line is longer than [`MAX_LINE`].
    LineTooLong,
    /// The line is not UTF-8 or not a JSON object.
    BadJson,
    /// The object has no `op` or an unknown one.
    UnknownOp,
    /// A field is missing, unknown, of the wrong type or out of range.
    BadField,
    /// The VF does not exist on this PF.
    NoSuchVf,
    /// The HAC layer refused (not tagged, wrong epoch, disabled).
    Refused,
    /// The operation needs something this backend does not have.
    Unsupported,
    /// The daemon failed internally (the request may be retried).
    Internal,
    /// The daemon cannot take more work now (all clients busy, a queue full): retry later.
    Busy,
    /// The daemon closed this idle connection (its deadline passed, or room was needed for a
    /// new client); the line is the connection's last.
    Idle,
}

/// A request the daemon cannot carry out, with a message that says what to do.
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct ControlError {
    /// The class.
    pub code: ErrorCode,
    /// One line for a human.
    pub message: String,
}

/// Longest error message, in characters (what a client sent is quoted in some messages).
pub const MAX_MESSAGE_CHARS: usize = 1024;

impl ControlError {
    /// An error of class `code`. Control characters in `message` (which may quote what a client
    /// sent, directly or through a parser's error) are escaped, so it is one printable line, and
    /// it is cut at [`MAX_MESSAGE_CHARS`].
    pub fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        let message = message.into();
        let mut message = if message.chars().any(char::is_control) {
            escape_controls(&message)
        } else {
            message
        };
        if let Some((cut, _)) = message.char_indices().nth(MAX_MESSAGE_CHARS) {
            message.truncate(cut);
            message.push('…');
        }
        ControlError { code, message }
    }
}

impl std::fmt::Display for ControlError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for ControlError {}

/// A parsed request line: the request and the client's `id` (echoed in the response).
#[derive(Clone, Debug, PartialEq)]
pub struct Envelope {
    /// The client's correlation id (any JSON value), if it gave one.
    pub id: Option<Value>,
    /// The request.
    pub request: Request,
}

/// Parses one request line (without its newline; a trailing `\r` is ignored). On error the
/// client's `id` is returned too when it could be read, so the response can carry it.
pub fn parse_line(line: &[u8]) -> Result<Envelope, (Option<Value>, ControlError)> {
    if line.len() > MAX_LINE {
        return Err((
            None,
            ControlError::new(
                ErrorCode::LineTooLong,
                format!("request line longer than {MAX_LINE} bytes"),
            ),
        ));
    }
    let line = line.strip_suffix(b"\r").unwrap_or(line);
    let text = std::str::from_utf8(line).map_err(|e| {
        (
            None,
            ControlError::new(ErrorCode::BadJson, format!("request is not UTF-8: {e}")),
        )
    })?;
    let value: Value = serde_json::from_str(text).map_err(|e| {
        (
            None,
            ControlError::new(
                ErrorCode::BadJson,
                format!("request is not valid JSON ({e}); send one JSON object per line"),
            ),
        )
    })?;
    let Value::Object(mut object) = value else {
        return Err((
            None,
            ControlError::new(
                ErrorCode::BadJson,
                "request must be a JSON object such as {\"op\":\"stats\"}",
            ),
        ));
    };
    let id = object.remove("id");
    let op = match object.get("op") {
        Some(Value::String(op)) => op.clone(),
        Some(_) => {
            return Err((
                id,
                ControlError::new(ErrorCode::UnknownOp, "field `op` must be a string"),
            ));
        }
        None => {
            return Err((
                id,
                ControlError::new(
                    ErrorCode::UnknownOp,
                    format!("missing field `op` (one of: {})", OPS.join(", ")),
                ),
            ));
        }
    };
    if !OPS.contains(&op.as_str()) {
        return Err((
            id,
            ControlError::new(
                ErrorCode::UnknownOp,
                format!(
                    "unknown op `{}` (one of: {})",
                    printable(&op, 64),
                    OPS.join(", ")
                ),
            ),
        ));
    }
    match serde_json::from_value::<Request>(Value::Object(object)) {
        Ok(request) => match check(&request) {
            Ok(()) => Ok(Envelope { id, request }),
            Err(e) => Err((id, e)),
        },
        Err(e) => Err((
            id,
            ControlError::new(ErrorCode::BadField, format!("op `{op}`: {e}")),
        )),
    }
}

/// Range checks serde cannot express.
fn check(request: &Request) -> Result<(), ControlError> {
    if let Request::Send { frames, len, .. } = request {
        if *frames > MAX_SEND_FRAMES {
            return Err(ControlError::new(
                ErrorCode::BadField,
                format!("op `send`: frames {frames} is above the maximum {MAX_SEND_FRAMES}"),
            ));
        }
        if let Some(len) = len
            && !(60..=1514).contains(len)
        {
            return Err(ControlError::new(
                ErrorCode::BadField,
                format!("op `send`: len {len} is outside 60..=1514 (frame bytes without FCS)"),
            ));
        }
    }
    Ok(())
}

/// A client's text for an error message: at most `max` characters (control characters are
/// escaped by [`ControlError::new`]).
fn printable(s: &str, max: usize) -> &str {
    match s.char_indices().nth(max) {
        Some((i, _)) => &s[..i],
        None => s,
    }
}

/// `s` with every control character escaped (`\n`, `\u{1b}`).
fn escape_controls(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 8);
    for c in s.chars() {
        if c.is_control() {
            out.extend(c.escape_default());
        } else {
            out.push(c);
        }
    }
    out
}

/// A response line: `{"id":…,"ok":true,"result":…}` or `{"id":…,"ok":false,"error":{…}}`.
pub fn response_line(id: Option<&Value>, result: Result<Value, &ControlError>) -> String {
    let mut object = serde_json::Map::new();
    if let Some(id) = id {
        object.insert("id".into(), id.clone());
    }
    match result {
        Ok(v) => {
            object.insert("ok".into(), Value::Bool(true));
            object.insert("result".into(), v);
        }
        Err(e) => {
            object.insert("ok".into(), Value::Bool(false));
            object.insert(
                "error".into(),
                serde_json::to_value(e).unwrap_or(Value::Null),
            );
        }
    }
    let mut line = Value::Object(object).to_string();
    line.push('\n');
    line
}

/// A request as one line (what `hac ctl` sends).
pub fn request_line(id: Option<&Value>, request: &Request) -> String {
    let mut value = serde_json::to_value(request).unwrap_or(Value::Null);
    if let (Some(id), Value::Object(o)) = (id, &mut value) {
        o.insert("id".into(), id.clone());
    }
    let mut line = value.to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn err(line: &str) -> ControlError {
        parse_line(line.as_bytes()).unwrap_err().1
    }

    #[test]
    fn an_unknown_op_with_control_characters_is_echoed_on_one_line() {
        // Found by the control_line fuzz campaign: a JSON-escaped newline in the op name was
        // echoed raw, so the error message spanned two lines.
        let e = err(r#"{"op":"commi\\\n\u001b[2Jrames"}"#);
        assert_eq!(e.code, ErrorCode::UnknownOp);
        assert!(
            !e.message.contains('\n') && !e.message.contains('\u{1b}'),
            "{:?}",
            e.message
        );
        assert!(
            e.message
                .starts_with(r"unknown op `commi\\n\u{1b}[2Jrames`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn every_error_quoting_client_text_stays_one_line() {
        // Found by the second control_line campaign: serde's "unknown field" error quotes the
        // field name, newlines included; ControlError::new now escapes every message.
        let e = err(r#"{"op":"commit","vf":0,"epoch":1,"x\n\ny":1}"#);
        assert_eq!(e.code, ErrorCode::BadField);
        assert!(!e.message.contains('\n'), "{:?}", e.message);
        assert!(
            e.message.contains(r"unknown field `x\n\ny`"),
            "{}",
            e.message
        );
    }

    #[test]
    fn parses_every_op_and_roundtrips() {
        let all = [
            Request::Hello,
            Request::Tag { vf: 1 },
            Request::Untag { vf: 1 },
            Request::Open { vf: 0, epoch: 2 },
            Request::Commit { vf: 0, epoch: 1 },
            Request::Abort { vf: 3, epoch: 7 },
            Request::Failover { vf: 2 },
            Request::Unprotect { vf: 2 },
            Request::SetLimits {
                vf: 1,
                frames: 10,
                bytes: 20_000,
            },
            Request::SetGuard { bytes: 65536 },
            Request::Stats { vf: None },
            Request::Stats { vf: Some(2) },
            Request::Send {
                vf: 0,
                frames: 5,
                len: Some(200),
            },
            Request::Shutdown,
        ];
        let covered: std::collections::BTreeSet<&str> = all.iter().map(Request::op).collect();
        assert_eq!(covered.len(), OPS.len());
        for r in all {
            let line = request_line(Some(&Value::from(7)), &r);
            let env = parse_line(line.trim_end().as_bytes()).unwrap();
            assert_eq!(env.request, r);
            assert_eq!(env.id, Some(Value::from(7)));
            assert!(OPS.contains(&r.op()));
        }
    }

    #[test]
    fn malformed_lines_are_classified() {
        assert_eq!(err("").code, ErrorCode::BadJson);
        assert_eq!(err("{").code, ErrorCode::BadJson);
        assert_eq!(err("[1,2]").code, ErrorCode::BadJson);
        assert_eq!(err("\"commit\"").code, ErrorCode::BadJson);
        assert_eq!(err("{}").code, ErrorCode::UnknownOp);
        assert_eq!(err(r#"{"op":5}"#).code, ErrorCode::UnknownOp);
        assert_eq!(err(r#"{"op":"reboot"}"#).code, ErrorCode::UnknownOp);
        assert_eq!(err(r#"{"op":"commit","vf":0}"#).code, ErrorCode::BadField);
        assert_eq!(
            err(r#"{"op":"commit","vf":0,"epoch":-1}"#).code,
            ErrorCode::BadField
        );
        assert_eq!(
            err(r#"{"op":"commit","vf":"0","epoch":1}"#).code,
            ErrorCode::BadField
        );
        assert_eq!(
            err(r#"{"op":"commit","vf":0,"epoch":1,"force":true}"#).code,
            ErrorCode::BadField
        );
        assert_eq!(
            err(r#"{"op":"commit","vf":0,"epoch":4294967296}"#).code,
            ErrorCode::BadField
        );
        assert_eq!(
            err(r#"{"op":"send","vf":0,"frames":1000000}"#).code,
            ErrorCode::BadField
        );
        assert_eq!(
            err(r#"{"op":"send","vf":0,"frames":1,"len":20}"#).code,
            ErrorCode::BadField
        );
        let long = format!(r#"{{"op":"hello","pad":"{}"}}"#, "x".repeat(MAX_LINE));
        assert_eq!(err(&long).code, ErrorCode::LineTooLong);
        assert_eq!(
            parse_line(&[0xff, 0xfe]).unwrap_err().1.code,
            ErrorCode::BadJson
        );
    }

    #[test]
    fn id_is_kept_on_errors_and_crlf_is_accepted() {
        let (id, e) = parse_line(br#"{"id":"a1","op":"commit","vf":1}"#).unwrap_err();
        assert_eq!(id, Some(Value::from("a1")));
        assert!(e.message.contains("epoch"), "{}", e.message);
        let env = parse_line(b"{\"op\":\"hello\"}\r").unwrap();
        assert_eq!(env.request, Request::Hello);
        let line = response_line(id.as_ref(), Err(&e));
        let v: Value = serde_json::from_str(&line).unwrap();
        assert_eq!(v["ok"], Value::Bool(false));
        assert_eq!(v["id"], Value::from("a1"));
        assert_eq!(v["error"]["code"], Value::from("bad_field"));
        assert!(line.ends_with('\n') && line.matches('\n').count() == 1);
    }

    #[test]
    fn unknown_op_message_is_bounded() {
        let op = "y".repeat(3000);
        let e = err(&format!(r#"{{"op":"{op}"}}"#));
        assert!(e.message.len() < 400, "{}", e.message.len());
    }
}
