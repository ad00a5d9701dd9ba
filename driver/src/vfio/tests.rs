//! Helpers shared by the unit tests of the `vfio` modules (each module tests itself on the fakes
//! of [`super::testing`], no device needed), and the tests that span modules.
#![allow(clippy::single_range_in_vec_init)] // one-window IOMMUs are the common case

use super::testing::{FakeDevice, FakeDeviceConfig};
use super::*;

pub(super) fn bdf() -> Bdf {
    Bdf::parse("0000:01:10.0").unwrap()
}

pub(super) fn open(config: FakeDeviceConfig) -> VfioDevice<FakeDevice> {
    VfioDevice::from_access(bdf(), FakeDevice::new(config)).unwrap()
}

#[test]
fn thread_safety_is_as_documented() {
    fn send_sync<T: Send + Sync>() {}
    fn send<T: Send>() {}
    send_sync::<VfioDevice>();
    send_sync::<VfioBar>();
    send_sync::<VfioDma>();
    send_sync::<MsixInterrupts>();
    // Regions move between threads but are not shared: one accessor at a time.
    send::<VfioDmaRegion>();
    send_sync::<VfioDevice<FakeDevice>>();
    send::<VfioDmaRegion<testing::FakeIommu>>();
}
