//! A client of the daemon that keeps one connection for a sequence of requests (a checkpoint
//! engine's `open`/`commit` loop sends them all on one socket, and they are applied in that
//! order).

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::time::Duration;

use serde_json::Value;

use crate::line::{ControlError, parse_response, request_line};
use crate::ops::{Reply, Request};

/// How long the client waits for the daemon to take a request or answer it.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(30);

/// Why a request got no result. Every message is one line.
#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    /// No daemon could be reached on the socket.
    #[error("{0}")]
    Connect(String),
    /// The connection failed or the daemon closed it.
    #[error("{0}")]
    Io(String),
    /// The daemon's answer is not a response line of the protocol.
    #[error("{0}")]
    BadAnswer(String),
    /// The daemon refused the request.
    #[error("{}: {}", .0.code, .0.message)]
    Refused(ControlError),
}

/// One connection to the daemon.
pub struct Client {
    socket: PathBuf,
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Client {
    /// Connects to the daemon on `socket`.
    pub fn connect(socket: &Path) -> Result<Client, ClientError> {
        let stream = UnixStream::connect(socket).map_err(|e| {
            ClientError::Connect(match e.kind() {
                std::io::ErrorKind::NotFound | std::io::ErrorKind::ConnectionRefused => format!(
                    "no daemon on {} ({e}): start one with `hac serve --socket {}`",
                    socket.display(),
                    socket.display()
                ),
                std::io::ErrorKind::PermissionDenied => format!(
                    "permission denied on {}: run as the daemon's user (or root)",
                    socket.display()
                ),
                _ => format!("cannot connect to {}: {e}", socket.display()),
            })
        })?;
        let timeout = Some(CLIENT_TIMEOUT);
        stream
            .set_read_timeout(timeout)
            .and_then(|()| stream.set_write_timeout(timeout))
            .map_err(|e| ClientError::Io(format!("socket setup: {e}")))?;
        let writer = stream
            .try_clone()
            .map_err(|e| ClientError::Io(format!("socket setup: {e}")))?;
        Ok(Client {
            socket: socket.to_path_buf(),
            reader: BufReader::new(stream),
            writer,
        })
    }

    /// Sends `request` and returns its typed result, or the daemon's refusal.
    pub fn call(&mut self, request: &Request) -> Result<Reply, ClientError> {
        let answer = self.exchange(&request_line(None, request))?;
        let response = parse_response(request.op(), &answer).map_err(ClientError::BadAnswer)?;
        response.result.map_err(ClientError::Refused)
    }

    /// Sends `line` as it is (a newline is added if missing) and returns the response object —
    /// for a line that may not be a valid request (`hac ctl raw`, tests).
    pub fn call_line(&mut self, line: &str) -> Result<Value, ClientError> {
        let answer = self.exchange(line)?;
        serde_json::from_str(&answer)
            .map_err(|e| ClientError::BadAnswer(format!("bad answer from the daemon: {e}")))
    }

    /// Writes one line and reads one line.
    fn exchange(&mut self, line: &str) -> Result<String, ClientError> {
        let socket = self.socket.display();
        let mut out = line.to_string();
        if !out.ends_with('\n') {
            out.push('\n');
        }
        self.writer
            .write_all(out.as_bytes())
            .and_then(|()| self.writer.flush())
            .map_err(|e| ClientError::Io(format!("sending to {socket}: {e}")))?;
        let mut answer = String::new();
        self.reader
            .read_line(&mut answer)
            .map_err(|e| ClientError::Io(format!("no answer from {socket}: {e}")))?;
        if answer.is_empty() {
            return Err(ClientError::Io(format!(
                "the daemon on {socket} closed the connection"
            )));
        }
        Ok(answer)
    }
}

/// Sends one line on a fresh connection and returns the response object (errors as one line).
pub fn call_line(socket: &Path, line: &str) -> Result<Value, String> {
    Client::connect(socket)
        .and_then(|mut c| c.call_line(line))
        .map_err(|e| e.to_string())
}
