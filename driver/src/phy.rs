//! `smoltcp::phy::Device` over a VF, so a TCP/IP stack runs on it.
//!
//! Received frames are pulled from the RX ring in batches into a small queue; a transmit token
//! builds the frame in a reusable scratch buffer and queues it on the TX ring (one doorbell per
//! frame; smoltcp hands out one token at a time). Checksums are computed by smoltcp (the model
//! and the hardware would offload them, but smoltcp's tokens carry no offload request).

use std::collections::VecDeque;

use bytes::Bytes;
use smoltcp::phy::{Device, DeviceCapabilities, Medium, RxToken, TxToken};
use smoltcp::time::Instant;

use crate::backend::{Clock, DmaAllocator, RegisterIo};
use crate::vf::VfDriver;

/// The smoltcp this device implements `Device` for (so users build interfaces with the same
/// version).
pub use smoltcp;

/// Frames pulled from the ring per refill of the receive queue.
const RX_BATCH: usize = 32;

/// A VF as a smoltcp device.
pub struct VfDevice<R: RegisterIo, D: DmaAllocator, C: Clock> {
    vf: VfDriver<R, D, C>,
    rx: VecDeque<Bytes>,
    scratch: Vec<u8>,
    /// Frames smoltcp tried to send while the TX ring was full (dropped, like a full qdisc).
    pub tx_ring_full: u64,
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> VfDevice<R, D, C> {
    /// Wraps a VF that is up.
    pub fn new(vf: VfDriver<R, D, C>) -> Self {
        VfDevice {
            vf,
            rx: VecDeque::with_capacity(RX_BATCH),
            scratch: Vec::new(),
            tx_ring_full: 0,
        }
    }

    /// The driver underneath.
    pub fn driver(&mut self) -> &mut VfDriver<R, D, C> {
        &mut self.vf
    }

    /// Gives the driver back.
    pub fn into_inner(self) -> VfDriver<R, D, C> {
        self.vf
    }

    fn refill(&mut self) {
        if self.rx.is_empty() {
            let rx = &mut self.rx;
            self.vf
                .recv_with_meta(RX_BATCH, |f, _| rx.push_back(Bytes::copy_from_slice(f)));
        }
    }
}

/// A received frame.
pub struct VfRxToken(Bytes);

impl RxToken for VfRxToken {
    fn consume<T, F>(self, f: F) -> T
    where
        F: FnOnce(&[u8]) -> T,
    {
        f(&self.0)
    }
}

/// Permission to send one frame.
pub struct VfTxToken<'a, R: RegisterIo, D: DmaAllocator, C: Clock> {
    vf: &'a mut VfDriver<R, D, C>,
    scratch: &'a mut Vec<u8>,
    full: &'a mut u64,
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> TxToken for VfTxToken<'_, R, D, C> {
    fn consume<T, F>(self, len: usize, f: F) -> T
    where
        F: FnOnce(&mut [u8]) -> T,
    {
        self.scratch.clear();
        self.scratch.resize(len, 0);
        let out = f(self.scratch);
        let frame = Bytes::copy_from_slice(self.scratch);
        match self.vf.send(std::slice::from_ref(&frame)) {
            Ok(1) => {}
            _ => *self.full += 1,
        }
        out
    }
}

impl<R: RegisterIo, D: DmaAllocator, C: Clock> Device for VfDevice<R, D, C> {
    type RxToken<'a>
        = VfRxToken
    where
        Self: 'a;
    type TxToken<'a>
        = VfTxToken<'a, R, D, C>
    where
        Self: 'a;

    fn receive(&mut self, _timestamp: Instant) -> Option<(Self::RxToken<'_>, Self::TxToken<'_>)> {
        self.refill();
        let frame = self.rx.pop_front()?;
        Some((
            VfRxToken(frame),
            VfTxToken {
                vf: &mut self.vf,
                scratch: &mut self.scratch,
                full: &mut self.tx_ring_full,
            },
        ))
    }

    fn transmit(&mut self, _timestamp: Instant) -> Option<Self::TxToken<'_>> {
        // No token while the ring is full: smoltcp keeps the packet and tries again later.
        if self.vf.tx_free() < 2 {
            return None;
        }
        Some(VfTxToken {
            vf: &mut self.vf,
            scratch: &mut self.scratch,
            full: &mut self.tx_ring_full,
        })
    }

    fn capabilities(&self) -> DeviceCapabilities {
        let mut caps = DeviceCapabilities::default();
        caps.medium = Medium::Ethernet;
        caps.max_transmission_unit = self.vf.mtu() + igb_hw::frame::ETHERNET_HEADER_LEN;
        caps.max_burst_size = Some(RX_BATCH);
        caps
    }
}
