//! `smoltcp::phy::Device` over an open mlx5 device, so a TCP/IP stack runs on it (as
//! [`crate::phy`] does for an igbvf VF).
//!
//! Received frames are pulled from the RQ in batches into a small queue; a transmit token
//! builds the frame in a reusable scratch buffer and sends it as a batch of one. Checksums
//! are computed by smoltcp. Frames the device refused to take (SQ full, a driver error) are
//! dropped and counted, like a full qdisc.

use std::collections::VecDeque;

use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

use super::device::Mlx5Device;
use super::eth::BUFFER_LEN;
use crate::backend::{Clock, DmaAllocator, RegisterIo};

/// Frames pulled from the RQ per refill.
const RX_BATCH: usize = 32;
/// The MTU offered when the vport context gives none.
const DEFAULT_MTU: usize = 1500;
/// Ethernet header bytes.
const ETH_HLEN: usize = 14;

/// An mlx5 device with its Ethernet path open, as a smoltcp device.
pub struct Mlx5PhyDevice<R: RegisterIo, D: DmaAllocator, C: Clock> {
    dev: Mlx5Device<R, D, C>,
    rx: VecDeque<Vec<u8>>,
    scratch: Vec<u8>,
    /// Frames dropped because the device did not take them.
    pub tx_dropped: u64,
    /// Receive errors (the driver's error, e.g. the path closed underneath).
    pub rx_errors: u64,
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> Mlx5PhyDevice<R, D, C> {
    /// Wraps a device whose Ethernet path is open.
    pub fn new(dev: Mlx5Device<R, D, C>) -> Self {
        Mlx5PhyDevice {
            dev,
            rx: VecDeque::with_capacity(RX_BATCH),
            scratch: Vec::new(),
            tx_dropped: 0,
            rx_errors: 0,
        }
    }

    /// The driver underneath.
    pub fn driver(&mut self) -> &mut Mlx5Device<R, D, C> {
        &mut self.dev
    }

    /// Gives the driver back.
    pub fn into_inner(self) -> Mlx5Device<R, D, C> {
        self.dev
    }

    fn refill(&mut self) {
        if self.rx.is_empty() {
            let rx = &mut self.rx;
            if self
                .dev
                .recv_with(RX_BATCH, |f| rx.push_back(f.to_vec()))
                .is_err()
            {
                self.rx_errors += 1;
            }
        }
    }
}

/// A received frame.
pub struct Mlx5RxToken(Vec<u8>);

impl RxToken for Mlx5RxToken {
    fn consume<T, F>(self, f: F) -> T
    where
        F: FnOnce(&[u8]) -> T,
    {
        f(&self.0)
    }
}

/// Permission to send one frame.
pub struct Mlx5TxToken<'a, R: RegisterIo, D: DmaAllocator, C: Clock> {
    dev: &'a mut Mlx5Device<R, D, C>,
    scratch: &'a mut Vec<u8>,
    dropped: &'a mut u64,
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> TxToken for Mlx5TxToken<'_, R, D, C> {
    fn consume<T, F>(self, len: usize, f: F) -> T
    where
        F: FnOnce(&mut [u8]) -> T,
    {
        self.scratch.clear();
        self.scratch.resize(len, 0);
        let out = f(self.scratch);
        match self.dev.send(&[&self.scratch[..]]) {
            Ok(1) => {}
            _ => *self.dropped += 1,
        }
        out
    }
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> Device for Mlx5PhyDevice<R, D, C> {
    type RxToken<'a>
        = Mlx5RxToken
    where
        Self: 'a;
    type TxToken<'a>
        = Mlx5TxToken<'a, R, D, C>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.refill();
        let frame = self.rx.pop_front()?;
        Some((
            Mlx5RxToken(frame),
            Mlx5TxToken {
                dev: &mut self.dev,
                scratch: &mut self.scratch,
                dropped: &mut self.tx_dropped,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        // No token while the SQ is (nearly) full: smoltcp keeps the packet for later. A WQE
        // takes at most a few WQEBBs plus the NOPs padding a ring wrap.
        if self.dev.tx_free() < 8 {
            return None;
        }
        Some(Mlx5TxToken {
            dev: &mut self.dev,
            scratch: &mut self.scratch,
            dropped: &mut self.tx_dropped,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        let mtu = match self.dev.mtu() {
            Some(m) if m > 0 => usize::from(m),
            _ => DEFAULT_MTU,
        };
        caps.max_transmission_unit = (mtu + ETH_HLEN).min(BUFFER_LEN);
        caps.max_burst_size = Some(RX_BATCH);
        caps
    }
}
