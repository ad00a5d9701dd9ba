//! The wire form of the protocol: one JSON object per line over a Unix stream socket, one
//! response line per request line, in order (docs/control.md).
//!
//! [`parse_line`] turns any byte string into a [`Request`] or a [`ControlError`] and never
//! panics; every error is one printable line.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ops::{OPS, Op, Reply, Request};

/// Longest request line accepted, in bytes (without the newline). Longer lines are answered
/// with `line_too_long` and skipped.
pub const MAX_LINE: usize = 4096;

/// Largest number of frames one `send` request may ask for.
pub const MAX_SEND_FRAMES: u32 = 100_000;

/// Machine-readable error classes of the protocol.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
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

impl ErrorCode {
    /// Its name on the wire (`"bad_field"`).
    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::LineTooLong => "line_too_long",
            ErrorCode::BadJson => "bad_json",
            ErrorCode::UnknownOp => "unknown_op",
            ErrorCode::BadField => "bad_field",
            ErrorCode::NoSuchVf => "no_such_vf",
            ErrorCode::Refused => "refused",
            ErrorCode::Unsupported => "unsupported",
            ErrorCode::Internal => "internal",
            ErrorCode::Busy => "busy",
            ErrorCode::Idle => "idle",
        }
    }

    /// Every class.
    pub const ALL: &'static [ErrorCode] = &[
        ErrorCode::LineTooLong,
        ErrorCode::BadJson,
        ErrorCode::UnknownOp,
        ErrorCode::BadField,
        ErrorCode::NoSuchVf,
        ErrorCode::Refused,
        ErrorCode::Unsupported,
        ErrorCode::Internal,
        ErrorCode::Busy,
        ErrorCode::Idle,
    ];
}

impl std::fmt::Display for ErrorCode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// A request the daemon cannot carry out, with a message that says what to do.
#[derive(Clone, Debug, PartialEq, Eq, Deserialize, Serialize, schemars::JsonSchema)]
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
    let name = match object.get("op") {
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
                    format!("missing field `op` (one of: {})", op_names()),
                ),
            ));
        }
    };
    let Some(op) = Op::from_name(&name) else {
        return Err((
            id,
            ControlError::new(
                ErrorCode::UnknownOp,
                format!(
                    "unknown op `{}` (one of: {})",
                    printable(&name, 64),
                    op_names()
                ),
            ),
        ));
    };
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

/// The operation names, for error messages.
fn op_names() -> String {
    let names: Vec<&str> = OPS.iter().map(|s| s.name).collect();
    names.join(", ")
}

/// A response line: `{"id":…,"ok":true,"result":…}` or `{"id":…,"ok":false,"error":{…}}`.
pub fn response_line(id: Option<&Value>, result: Result<&Reply, &ControlError>) -> String {
    let mut object = serde_json::Map::new();
    if let Some(id) = id {
        object.insert("id".into(), id.clone());
    }
    match result {
        Ok(reply) => {
            object.insert("ok".into(), Value::Bool(true));
            object.insert("result".into(), reply.to_value().unwrap_or(Value::Null));
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

/// A parsed response line.
#[derive(Clone, Debug, PartialEq)]
pub struct Response {
    /// The `id` of the request it answers, if that had one.
    pub id: Option<Value>,
    /// The typed result, or the daemon's error.
    pub result: Result<Reply, ControlError>,
}

/// Parses a response line (with or without its newline) to a request of operation `op`. An
/// error says, in one line, what is wrong with it.
pub fn parse_response(op: Op, line: &str) -> Result<Response, String> {
    #[derive(Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Raw {
        #[serde(default)]
        id: Option<Value>,
        ok: bool,
        #[serde(default)]
        result: Option<Value>,
        #[serde(default)]
        error: Option<ControlError>,
    }
    let raw: Raw = serde_json::from_str(line.trim_end_matches(['\n', '\r']))
        .map_err(|e| format!("bad answer from the daemon: {e}"))?;
    let result = match (raw.ok, raw.result, raw.error) {
        (true, Some(value), None) => Ok(Reply::from_value(op, value)
            .map_err(|e| format!("bad `{op}` result from the daemon: {e}"))?),
        (false, None, Some(error)) => Err(error),
        _ => {
            return Err(
                "bad answer from the daemon: `ok` does not match `result`/`error`".to_string(),
            );
        }
    };
    Ok(Response { id: raw.id, result })
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;

    fn err(line: &str) -> ControlError {
        parse_line(line.as_bytes()).unwrap_err().1
    }

    #[test]
    fn a_float_id_is_echoed_as_the_same_number() {
        // Found by the control_line fuzz campaign: without serde_json's float_roundtrip a
        // 49-digit id parsed one ulp off and came back as another number after re-encoding.
        let line = format!(
            r#"{{"id":{},"op":"commit","vf":0,"epoch":2}}"#,
            "3".repeat(49)
        );
        let env = parse_line(line.as_bytes()).unwrap();
        let again = request_line(env.id.as_ref(), &env.request);
        let back = parse_line(again.trim_end().as_bytes()).unwrap();
        assert_eq!(back.id, env.id);
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
            Request::Hello {},
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
            Request::Shutdown {},
        ];
        let covered: std::collections::BTreeSet<Op> = all.iter().map(Request::op).collect();
        assert_eq!(covered.len(), OPS.len());
        for r in all {
            let line = request_line(Some(&Value::from(7)), &r);
            let env = parse_line(line.trim_end().as_bytes()).unwrap();
            assert_eq!(env.request, r);
            assert_eq!(env.id, Some(Value::from(7)));
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
        assert_eq!(env.request, Request::Hello {});
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
