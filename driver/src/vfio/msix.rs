//! [`MsixInterrupts`]: MSI-X vectors routed to eventfds, waited on with a timeout.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hac_sys::poll_readable;

use super::error::VfioError;
use super::seams::DeviceAccess;
use hac_sys::{EventFd, HostDevice};

/// The vectors that fired during a wait (bit `i`: vector `i`).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq, Hash)]
pub struct FiredVectors(u64);

impl FiredVectors {
    /// No vector fired (the wait timed out).
    pub fn is_empty(&self) -> bool {
        self.0 == 0
    }
    /// Whether `vector` fired.
    pub fn contains(&self, vector: usize) -> bool {
        vector < 64 && self.0 & (1 << vector) != 0
    }
    /// The mask.
    pub fn bits(&self) -> u64 {
        self.0
    }
    /// The vectors that fired, in order.
    pub fn iter(&self) -> impl Iterator<Item = usize> + '_ {
        (0..64).filter(|&v| self.contains(v))
    }
}

/// MSI-X vectors routed to eventfds. Dropping it disables MSI-X.
pub struct MsixInterrupts<D: DeviceAccess = HostDevice> {
    access: Arc<D>,
    vectors: Vec<Arc<EventFd>>,
    active: Arc<AtomicBool>,
    enabled: bool,
}

impl<D: DeviceAccess> fmt::Debug for MsixInterrupts<D> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MsixInterrupts")
            .field("vectors", &self.vectors.len())
            .finish()
    }
}

impl<D: DeviceAccess> MsixInterrupts<D> {
    /// The interrupts of `access` once `vectors` are routed; `active` is the device's "MSI-X
    /// is enabled" flag, cleared when these are dropped.
    pub(super) fn enabled(
        access: Arc<D>,
        vectors: Vec<Arc<EventFd>>,
        active: Arc<AtomicBool>,
    ) -> MsixInterrupts<D> {
        MsixInterrupts {
            access,
            vectors,
            active,
            enabled: true,
        }
    }

    /// Number of vectors.
    pub fn len(&self) -> usize {
        self.vectors.len()
    }

    /// True if there are none (never, once enabled).
    pub fn is_empty(&self) -> bool {
        self.vectors.is_empty()
    }

    /// Waits up to `timeout` for any vector, then returns (and clears) every vector that fired;
    /// empty on timeout.
    pub fn wait(&self, timeout: Duration) -> Result<FiredVectors, VfioError> {
        let ready = poll_readable(&self.vectors, Some(timeout))
            .map_err(|source| VfioError::Interrupt { op: "wait", source })?;
        self.collect(ready)
    }

    /// Returns (and clears) the vectors that fired, without waiting.
    pub fn poll(&self) -> Result<FiredVectors, VfioError> {
        self.wait(Duration::ZERO)
    }

    fn collect(&self, ready: u64) -> Result<FiredVectors, VfioError> {
        let mut fired = 0u64;
        for (i, fd) in self.vectors.iter().enumerate() {
            if ready & (1 << i) != 0 {
                let count = fd
                    .take()
                    .map_err(|source| VfioError::Interrupt { op: "read", source })?;
                if count > 0 {
                    fired |= 1 << i;
                }
            }
        }
        Ok(FiredVectors(fired))
    }

    /// The eventfd of `vector`, to add to an epoll set of your own.
    pub fn fd(&self, vector: usize) -> Option<BorrowedFd<'_>> {
        self.vectors.get(vector).map(|v| v.as_fd())
    }

    /// Disables MSI-X, reporting failure (dropping does the same but cannot report).
    pub fn disable(mut self) -> Result<(), VfioError> {
        self.enabled = false;
        self.access
            .msix_disable()
            .map_err(|source| VfioError::Interrupt {
                op: "disable",
                source,
            })
    }
}

impl<D: DeviceAccess> Drop for MsixInterrupts<D> {
    fn drop(&mut self) {
        if self.enabled {
            // Best effort: a destructor cannot report. Closing the device fd disables MSI-X in
            // any case. Use `disable` to see the error.
            let _ = self.access.msix_disable();
        }
        self.active.store(false, Ordering::Release);
    }
}
