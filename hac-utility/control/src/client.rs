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

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::line::{ErrorCode, parse_line, response_line};
    use crate::replies::VfSummary;
    use crate::stats::Stats;
    use std::os::unix::net::UnixListener;

    /// A stand-in daemon: answers every line of its connections in order (a tag with a summary,
    /// a commit with a refusal, stats with empty stats, garbage with its parse error) and
    /// returns how many connections and lines it saw once the client has gone.
    fn fake_daemon(listener: UnixListener) -> std::thread::JoinHandle<(usize, usize)> {
        std::thread::spawn(move || {
            let (stream, _) = listener.accept().unwrap();
            let mut writer = stream.try_clone().unwrap();
            let mut lines = 0;
            for line in BufReader::new(stream).lines() {
                let line = line.unwrap();
                lines += 1;
                let answer = match parse_line(line.as_bytes()) {
                    Err((id, e)) => response_line(id.as_ref(), Err(&e)),
                    Ok(env) => match env.request {
                        Request::Tag { vf } => {
                            let summary = VfSummary {
                                vf,
                                checkpointing: true,
                                open_epoch: 1,
                                ..VfSummary::default()
                            };
                            response_line(None, Ok(&Reply::Tag(summary)))
                        }
                        Request::Stats { .. } => {
                            response_line(None, Ok(&Reply::Stats(Stats::default())))
                        }
                        other => response_line(
                            None,
                            Err(&ControlError::new(
                                ErrorCode::Refused,
                                format!("{} refused", other.op()),
                            )),
                        ),
                    },
                };
                writer.write_all(answer.as_bytes()).unwrap();
            }
            listener.set_nonblocking(true).unwrap();
            let more = usize::from(listener.accept().is_ok());
            (1 + more, lines)
        })
    }

    #[test]
    fn one_connection_carries_a_sequence_of_requests() {
        let dir = std::env::temp_dir().join(format!("hac-control-client-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("hac.sock");
        let daemon = fake_daemon(UnixListener::bind(&path).unwrap());

        let mut client = Client::connect(&path).unwrap();
        match client.call(&Request::Tag { vf: 1 }).unwrap() {
            Reply::Tag(s) => assert!(s.vf == 1 && s.checkpointing && s.open_epoch == 1),
            other => panic!("{other:?}"),
        }
        match client.call(&Request::Commit { vf: 1, epoch: 1 }) {
            Err(ClientError::Refused(e)) => {
                assert_eq!(e.code, ErrorCode::Refused);
                assert_eq!(
                    ClientError::Refused(e).to_string(),
                    "refused: commit refused"
                );
            }
            other => panic!("{other:?}"),
        }
        assert_eq!(
            client.call(&Request::Stats { vf: None }).unwrap(),
            Reply::Stats(Stats::default())
        );
        let raw = client.call_line("not json").unwrap();
        assert_eq!(raw["ok"], Value::Bool(false));
        assert_eq!(raw["error"]["code"], Value::from("bad_json"));
        drop(client);
        assert_eq!(daemon.join().unwrap(), (1, 4), "(connections, lines)");

        // No daemon: one line that says how to start one.
        let e = Client::connect(&path).err().unwrap();
        assert!(matches!(e, ClientError::Connect(_)), "{e:?}");
        assert!(e.to_string().contains("no daemon on"), "{e}");
        assert!(!e.to_string().contains('\n'));
        let _ = std::fs::remove_dir_all(&dir);
    }
}
