//! [`MsixInterrupts`]: MSI-X vectors routed to eventfds, waited on with a timeout.

use std::fmt;
use std::os::fd::{AsFd, BorrowedFd};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use hac_sys::{EventFd, HostDevice, poll_readable};

use super::error::VfioError;
use super::seams::DeviceAccess;

/// Most MSI-X vectors [`super::VfioDevice::enable_msix`] routes (a 64-bit mask reports them).
pub const MAX_MSIX_VECTORS: usize = 64;

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

#[cfg(test)]
#[allow(clippy::single_range_in_vec_init)] // one-window IOMMUs are the common case
mod tests {

    use std::time::{Duration, Instant};

    use super::*;

    use crate::vfio::testing::{DeviceEvent, FakeDeviceConfig};
    use crate::vfio::tests::open;

    #[test]
    fn msix_vectors_fire_and_wait_times_out() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        assert_eq!(dev.msix_vectors(), 3);
        let irqs = dev.enable_msix(3).unwrap();
        assert_eq!(irqs.len(), 3);
        assert_eq!(dev.access().msix_enabled_vectors(), 3);
        assert!(irqs.fd(2).is_some() && irqs.fd(3).is_none());

        let start = Instant::now();
        assert!(irqs.wait(Duration::from_millis(15)).unwrap().is_empty());
        assert!(start.elapsed() >= Duration::from_millis(15));

        assert!(dev.access().fire_msix(1).unwrap());
        assert!(dev.access().fire_msix(2).unwrap());
        assert!(dev.access().fire_msix(2).unwrap());
        assert!(!dev.access().fire_msix(3).unwrap());
        let fired = irqs.wait(Duration::from_secs(5)).unwrap();
        assert_eq!(fired.iter().collect::<Vec<_>>(), vec![1, 2]);
        assert!(fired.contains(1) && !fired.contains(0) && !fired.contains(64));
        assert_eq!(fired.bits(), 0b110);
        assert!(irqs.poll().unwrap().is_empty(), "counts were consumed");

        // A waiter on another thread is woken.
        let device = dev.access().clone();
        let t = std::thread::spawn(move || {
            std::thread::sleep(Duration::from_millis(10));
            device.fire_msix(0).unwrap();
        });
        let fired = irqs.wait(Duration::from_secs(5)).unwrap();
        t.join().unwrap();
        assert!(fired.contains(0));
    }

    #[test]
    fn msix_count_and_exclusivity_are_enforced_and_drop_disables() {
        let dev = open(FakeDeviceConfig::igbvf_82576());
        assert!(matches!(
            dev.enable_msix(0),
            Err(VfioError::InvalidVectorCount {
                requested: 0,
                max: 3
            })
        ));
        assert!(matches!(
            dev.enable_msix(4),
            Err(VfioError::InvalidVectorCount {
                requested: 4,
                max: 3
            })
        ));
        let irqs = dev.enable_msix(2).unwrap();
        assert!(matches!(
            dev.enable_msix(1),
            Err(VfioError::MsixAlreadyEnabled)
        ));
        drop(irqs);
        assert_eq!(dev.access().msix_enabled_vectors(), 0);
        assert_eq!(
            dev.access().events().last(),
            Some(&DeviceEvent::MsixDisabled)
        );
        let irqs = dev.enable_msix(1).unwrap();
        irqs.disable().unwrap();
        assert!(dev.enable_msix(3).is_ok());
    }
}
