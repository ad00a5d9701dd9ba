//! QMP, QEMU's JSON monitor protocol, as the COLO bridge reads it: one JSON object per line on
//! a Unix socket — the greeting (`{"QMP":…}`), command answers (`{"return":…}`,
//! `{"error":…}`) and asynchronous events (`{"event":"STOP","timestamp":{…},"data":{…}}`).
//!
//! Every line is peer input: [`parse_line`] accepts any bytes and answers a typed message or a
//! one-line [`QmpError`], never panics, and keeps only what the bridge uses (the event name,
//! QEMU's timestamp of it, the migration status, COLO_EXIT's mode and reason).

use serde_json::Value;

/// The longest line the bridge takes; QEMU's events and the answers it asks for are far
/// shorter (a longer line is a peer error, not a reason to grow without bound).
pub const MAX_LINE: usize = 64 * 1024;

/// One QMP message.
#[derive(Clone, Debug, PartialEq)]
pub enum QmpMessage {
    /// The greeting QEMU sends first on every connection.
    Greeting,
    /// A command's successful answer, with its `return` value.
    Return(Value),
    /// A command's error answer.
    Error {
        /// `error.class`, e.g. `GenericError`.
        class: String,
        /// `error.desc`.
        desc: String,
    },
    /// An asynchronous event.
    Event(QmpEvent),
}

/// An event with QEMU's timestamp of it.
#[derive(Clone, Debug, PartialEq)]
pub struct QmpEvent {
    /// What happened.
    pub kind: EventKind,
    /// When QEMU emitted it (host real-time clock, µs since the Unix epoch); `None` when the
    /// line has no usable timestamp (QEMU writes -1 when it had no clock).
    pub timestamp_us: Option<i64>,
}

/// The events the bridge acts on; every other event is [`EventKind::Other`].
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum EventKind {
    /// The VM stopped (emitted after the vCPUs paused): in COLO, a checkpoint starts.
    Stop,
    /// The VM resumes (emitted before the vCPUs run again): in COLO, the secondary has loaded
    /// the checkpoint (its `vmstate-loaded` is the ack).
    Resume,
    /// The migration state changed (`setup`, `active`, `device`, `colo`, `failed`, …).
    Migration(String),
    /// COLO ended on this side: `mode` (`primary`, `secondary`) and `reason` (`request`,
    /// `error`).
    ColoExit {
        /// Which side this QEMU was.
        mode: String,
        /// Why COLO ended.
        reason: String,
    },
    /// The guest shut down or QEMU was told to quit.
    Shutdown,
    /// Any other event, by name.
    Other(String),
}

/// Why a line is not a QMP message the bridge understands. One line each.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum QmpError {
    /// Longer than [`MAX_LINE`].
    #[error("QMP line of {0} bytes is longer than the limit of {MAX_LINE}")]
    TooLong(usize),
    /// Not JSON at all.
    #[error("QMP line is not JSON: {0}")]
    NotJson(String),
    /// JSON, but not an object.
    #[error("QMP line is not a JSON object")]
    NotObject,
    /// An object with none of `QMP`, `return`, `error`, `event`.
    #[error("QMP object has none of QMP, return, error, event")]
    Unknown,
    /// An event or error without the members its kind needs.
    #[error("QMP {0}: {1}")]
    Malformed(&'static str, String),
}

/// Reads one line (without or with its newline).
pub fn parse_line(line: &[u8]) -> Result<QmpMessage, QmpError> {
    if line.len() > MAX_LINE {
        return Err(QmpError::TooLong(line.len()));
    }
    let value: Value = serde_json::from_slice(line).map_err(|e| {
        // serde_json's message quotes no input, only positions: one printable line.
        QmpError::NotJson(e.to_string())
    })?;
    let Value::Object(obj) = value else {
        return Err(QmpError::NotObject);
    };
    if obj.contains_key("QMP") {
        return Ok(QmpMessage::Greeting);
    }
    if let Some(v) = obj.get("return") {
        return Ok(QmpMessage::Return(v.clone()));
    }
    if let Some(e) = obj.get("error") {
        let class = text(e.get("class"))
            .ok_or_else(|| QmpError::Malformed("error", "no string member \"class\"".into()))?;
        let desc = text(e.get("desc")).unwrap_or_default();
        return Ok(QmpMessage::Error { class, desc });
    }
    let Some(name) = obj.get("event") else {
        return Err(QmpError::Unknown);
    };
    let name = name
        .as_str()
        .ok_or_else(|| QmpError::Malformed("event", "member \"event\" is not a string".into()))?;
    let data = obj.get("data");
    let field = |key: &'static str| {
        text(data.and_then(|d| d.get(key))).ok_or_else(|| {
            QmpError::Malformed(
                "event",
                format!("{} without a string data.{key}", short(name)),
            )
        })
    };
    let kind = match name {
        "STOP" => EventKind::Stop,
        "RESUME" => EventKind::Resume,
        "MIGRATION" => EventKind::Migration(field("status")?),
        "COLO_EXIT" => EventKind::ColoExit {
            mode: field("mode")?,
            reason: field("reason")?,
        },
        "SHUTDOWN" => EventKind::Shutdown,
        other => EventKind::Other(short(other)),
    };
    Ok(QmpMessage::Event(QmpEvent {
        kind,
        timestamp_us: timestamp_us(obj.get("timestamp")),
    }))
}

/// QEMU's `{"seconds":s,"microseconds":us}` as µs since the epoch; `None` when absent,
/// negative, out of range or not integers.
fn timestamp_us(ts: Option<&Value>) -> Option<i64> {
    let ts = ts?;
    let s = ts.get("seconds")?.as_i64()?;
    let us = ts.get("microseconds")?.as_i64()?;
    if s < 0 || !(0..1_000_000).contains(&us) {
        return None;
    }
    s.checked_mul(1_000_000)?.checked_add(us)
}

/// A string member, at most 64 printable characters (a name or status, not free text).
fn text(v: Option<&Value>) -> Option<String> {
    v?.as_str().map(short)
}

/// `s` cut to 64 characters with control characters replaced, for one-line messages.
fn short(s: &str) -> String {
    s.chars()
        .take(64)
        .map(|c| if c.is_control() { '?' } else { c })
        .collect()
}

/// The line of a QMP command without arguments.
pub fn command(name: &str) -> String {
    let mut line = serde_json::json!({ "execute": name }).to_string();
    line.push('\n');
    line
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn event(line: &str) -> QmpEvent {
        match parse_line(line.as_bytes()) {
            Ok(QmpMessage::Event(e)) => e,
            other => panic!("{line}: {other:?}"),
        }
    }

    #[test]
    fn reads_the_messages_the_bridge_uses() {
        assert_eq!(
            parse_line(br#"{"QMP":{"version":{"qemu":{"major":11}},"capabilities":["oob"]}}"#),
            Ok(QmpMessage::Greeting)
        );
        assert_eq!(
            parse_line(b"{\"return\":{}}\n"),
            Ok(QmpMessage::Return(serde_json::json!({})))
        );
        assert_eq!(
            parse_line(br#"{"error":{"class":"GenericError","desc":"no"}}"#),
            Ok(QmpMessage::Error {
                class: "GenericError".into(),
                desc: "no".into()
            })
        );
        let e =
            event(r#"{"timestamp":{"seconds":1764790000,"microseconds":123456},"event":"STOP"}"#);
        assert_eq!(e.kind, EventKind::Stop);
        assert_eq!(e.timestamp_us, Some(1_764_790_000_123_456));
        let e = event(
            r#"{"event":"MIGRATION","data":{"status":"colo"},"timestamp":{"seconds":1,"microseconds":2}}"#,
        );
        assert_eq!(e.kind, EventKind::Migration("colo".into()));
        assert_eq!(e.timestamp_us, Some(1_000_002));
        let e = event(r#"{"event":"COLO_EXIT","data":{"mode":"primary","reason":"error"}}"#);
        assert_eq!(
            e.kind,
            EventKind::ColoExit {
                mode: "primary".into(),
                reason: "error".into()
            }
        );
        assert_eq!(e.timestamp_us, None);
        assert_eq!(event(r#"{"event":"RESUME"}"#).kind, EventKind::Resume);
        assert_eq!(
            event(r#"{"event":"SHUTDOWN","data":{"guest":true}}"#).kind,
            EventKind::Shutdown
        );
        assert_eq!(
            event(r#"{"event":"RTC_CHANGE","data":{"offset":0}}"#).kind,
            EventKind::Other("RTC_CHANGE".into())
        );
    }

    #[test]
    fn malformed_lines_are_one_line_errors() {
        let long = vec![b' '; MAX_LINE + 1];
        let cases: Vec<&[u8]> = vec![
            b"",
            b"not json",
            b"[1,2]",
            b"\"STOP\"",
            b"{}",
            br#"{"event":5}"#,
            br#"{"event":"MIGRATION"}"#,
            br#"{"event":"MIGRATION","data":{"status":7}}"#,
            br#"{"event":"COLO_EXIT","data":{"mode":"primary"}}"#,
            br#"{"error":{"desc":"no class"}}"#,
            b"{\"event\":\"STOP\"",
            b"\xff\xfe",
            &long,
        ];
        for c in cases {
            let e = parse_line(c).unwrap_err().to_string();
            assert!(!e.is_empty() && !e.contains('\n'), "{e:?}");
        }
        // A hostile name is cut and cleaned, not echoed.
        let name = format!("{}\u{7}", "A".repeat(200));
        let line = serde_json::json!({"event": name}).to_string();
        match parse_line(line.as_bytes()) {
            Ok(QmpMessage::Event(QmpEvent {
                kind: EventKind::Other(n),
                ..
            })) => assert!(n.len() == 64 && !n.contains('\u{7}')),
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn timestamps_out_of_range_are_absent() {
        for ts in [
            r#"{"seconds":-1,"microseconds":-1}"#,
            r#"{"seconds":1,"microseconds":1000000}"#,
            r#"{"seconds":9223372036854775807,"microseconds":0}"#,
            r#"{"seconds":"1","microseconds":0}"#,
            r#"{"seconds":1.5,"microseconds":0}"#,
        ] {
            let line = format!(r#"{{"event":"STOP","timestamp":{ts}}}"#);
            assert_eq!(event(&line).timestamp_us, None, "{ts}");
        }
    }

    #[test]
    fn commands_are_one_line() {
        assert_eq!(
            command("qmp_capabilities"),
            "{\"execute\":\"qmp_capabilities\"}\n"
        );
    }
}
