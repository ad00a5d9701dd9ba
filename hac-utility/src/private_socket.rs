//! The daemon's Unix sockets (the control socket, and the vfio-user sockets through
//! [`listen_private`]): private to the daemon's user from their first moment; a stale socket
//! is replaced, a live daemon's never.

use std::os::unix::fs::{FileTypeExt, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};

/// Prepares the socket path: refuses a live daemon or a non-socket file, removes a stale
/// socket left by a daemon that died. `option` names the command-line option of the path.
fn claim_socket_path(path: &Path, option: &str) -> Result<(), String> {
    match std::fs::symlink_metadata(path) {
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(()),
        Err(e) => Err(format!(
            "cannot use {}: {e}{}",
            path.display(),
            if e.kind() == std::io::ErrorKind::PermissionDenied {
                format!(" (no permission: run as root or choose a {option} path you can write)")
            } else {
                String::new()
            }
        )),
        Ok(meta) if !meta.file_type().is_socket() => Err(format!(
            "{} exists and is not a socket: choose another {option} path or remove the file",
            path.display()
        )),
        Ok(_) => match UnixStream::connect(path) {
            Ok(_) => Err(live_socket(path, option)),
            // Only a refused connection proves nobody listens; anything else (no permission to
            // another user's socket, ...) may be a live daemon, which is never removed.
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => {
                std::fs::remove_file(path)
                    .map_err(|e| format!("cannot remove the stale socket {}: {e}", path.display()))
            }
            Err(e) => Err(format!(
                "cannot tell whether {} is in use ({e}): remove it if no daemon serves it, or use another {option}",
                path.display()
            )),
        },
    }
}

fn live_socket(path: &Path, option: &str) -> String {
    format!(
        "another daemon is serving on {}: stop it (`hac ctl --socket … shutdown`) or use another {option}",
        path.display()
    )
}

/// A directory of mode 0700 next to a socket path, removed (with what is in it) on drop.
struct PrivateDir(PathBuf);

impl Drop for PrivateDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// Listens on a Unix socket at `path` that only this user (and root) can connect to, from the
/// first moment: the socket is bound inside a fresh directory of mode 0700 next to `path`,
/// restricted to mode 0600 there, and only then linked to `path` — a hard link, which fails
/// if `path` exists, so a socket a live daemon created meanwhile is never replaced. A live
/// daemon's socket, a path that is not a socket, a missing directory or a permission problem
/// are one-line errors naming `option`; a stale socket (its daemon died) is replaced.
/// (The process umask is not touched: it is shared by every thread.)
pub(crate) fn listen_private(path: &Path, option: &str) -> Result<UnixListener, String> {
    use std::os::unix::fs::DirBuilderExt;
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    claim_socket_path(path, option)?;
    let parent = match path.parent() {
        Some(p) if !p.as_os_str().is_empty() => p,
        _ => Path::new("."),
    };
    let hint = |e: &std::io::Error| match e.kind() {
        std::io::ErrorKind::PermissionDenied => {
            format!(" (no permission: run as root or choose a {option} path you can write)")
        }
        std::io::ErrorKind::NotFound => " (its directory does not exist)".to_string(),
        _ => String::new(),
    };
    let cannot =
        |e: std::io::Error| format!("cannot listen on {}: {e}{}", path.display(), hint(&e));
    let dir = parent.join(format!(
        ".hac{}.{}",
        std::process::id(),
        NEXT.fetch_add(1, Ordering::Relaxed)
    ));
    std::fs::DirBuilder::new()
        .mode(0o700)
        .create(&dir)
        .map_err(cannot)?;
    let dir = PrivateDir(dir);
    let inside = dir.0.join("s");
    let listener = UnixListener::bind(&inside).map_err(cannot)?;
    std::fs::set_permissions(&inside, std::fs::Permissions::from_mode(0o600))
        .map_err(|e| format!("cannot restrict {}: {e}", path.display()))?;
    match std::fs::hard_link(&inside, path) {
        Ok(()) => {}
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            return Err(live_socket(path, option));
        }
        Err(e) => return Err(cannot(e)),
    }
    Ok(listener)
}
