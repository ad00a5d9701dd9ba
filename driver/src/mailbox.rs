//! The VF side of the PF↔VF mailbox (datasheet 7.8.2.9; Linux `igbvf/mbx.c`): lock with VFU,
//! write VMBMEM then REQ, wait for PFACK; wait for PFSTS, read VMBMEM, ACK. PFSTS, PFACK and
//! RSTD are read-to-clear in hardware, so every read merges them into a software cache and
//! each check consumes only the bit it tests.

use igb_hw::mailbox::{self as msg, Envelope, Message};
use igb_hw::regs::{MAILBOX_WORDS, VFMAILBOX, VfReg, vf};

use crate::backend::{Bar, Clock, RegisterIo};
use crate::error::DriverError;

/// Read-to-clear bits of VFMAILBOX (PFSTS | PFACK | RSTD).
const R2C_BITS: u32 = 0xB0;
const REQ: u32 = 1 << 0;
const ACK: u32 = 1 << 1;
const VFU: u32 = 1 << 2;
const PFSTS: u32 = 1 << 4;
const PFACK: u32 = 1 << 5;
const RSTI: u32 = 1 << 6;
const RSTD: u32 = 1 << 7;

/// Mailbox timing (defaults are Linux igbvf's: 2000 polls × 500 µs = 1 s, 10 lock tries).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MailboxConfig {
    /// Attempts to take the buffer lock.
    pub lock_tries: u32,
    /// Delay between lock attempts.
    pub lock_delay_ns: u64,
    /// Delay between polls for PFACK/PFSTS.
    pub poll_ns: u64,
    /// Give up waiting for the PF after this long.
    pub timeout_ns: u64,
}

impl Default for MailboxConfig {
    fn default() -> Self {
        MailboxConfig {
            lock_tries: 10,
            lock_delay_ns: 1_000_000,
            poll_ns: 500_000,
            timeout_ns: 1_000_000_000,
        }
    }
}

/// The VF's mailbox state (the read-to-clear cache).
#[derive(Debug, Default)]
pub struct VfMailbox {
    cached: u32,
    config: MailboxConfig,
}

impl VfMailbox {
    /// A mailbox client with `config` timing.
    pub fn new(config: MailboxConfig) -> VfMailbox {
        VfMailbox { cached: 0, config }
    }

    /// The timing in use.
    pub fn config(&self) -> MailboxConfig {
        self.config
    }

    /// Reads VFMAILBOX, merging read-to-clear bits into the cache.
    pub fn read_status<R: RegisterIo>(&mut self, bar: &Bar<R, VfReg>) -> u32 {
        let v = bar.read(vf::VFMAILBOX).get() | self.cached;
        self.cached |= v & R2C_BITS;
        v
    }

    fn take(&mut self, bar: &Bar<impl RegisterIo, VfReg>, mask: u32) -> bool {
        let v = self.read_status(bar);
        if v & mask != 0 {
            self.cached &= !mask;
            true
        } else {
            false
        }
    }

    /// True (and consumed) if the PF reported a reset: RSTD, or RSTI still set.
    pub fn check_for_reset<R: RegisterIo>(&mut self, bar: &Bar<R, VfReg>) -> bool {
        let v = self.read_status(bar);
        self.cached &= !RSTD;
        v & (RSTD | RSTI) != 0
    }

    /// True while the PF is resetting.
    pub fn pf_in_reset<R: RegisterIo>(&mut self, bar: &Bar<R, VfReg>) -> bool {
        self.read_status(bar) & RSTI != 0
    }

    /// Forgets cached bits (after a VF reset).
    pub fn clear_cache(&mut self) {
        self.cached = 0;
    }

    fn lock<R: RegisterIo, C: Clock>(
        &mut self,
        bar: &Bar<R, VfReg>,
        clock: &C,
    ) -> Result<(), DriverError> {
        for _ in 0..self.config.lock_tries.max(1) {
            bar.write(vf::VFMAILBOX, VFMAILBOX::VFU::SET);
            if self.read_status(bar) & VFU != 0 {
                return Ok(());
            }
            clock.delay_ns(self.config.lock_delay_ns);
        }
        Err(DriverError::MailboxBusy {
            tries: self.config.lock_tries,
        })
    }

    /// Writes `words` and raises REQ (non-posted: does not wait for PFACK).
    pub fn write<R: RegisterIo, C: Clock>(
        &mut self,
        bar: &Bar<R, VfReg>,
        clock: &C,
        words: &[u32],
    ) -> Result<(), DriverError> {
        self.lock(bar, clock)?;
        // Drop stale notifications from before this message.
        self.take(bar, PFACK);
        self.take(bar, PFSTS);
        for (i, &w) in words.iter().take(MAILBOX_WORDS).enumerate() {
            bar.set(VfReg::VMBMEM(i as u8), w);
        }
        // Writing REQ without VFU also releases the buffer.
        bar.set(VfReg::VFMAILBOX, REQ);
        Ok(())
    }

    /// Reads the PF's message (all 16 words) and acknowledges it.
    pub fn read<R: RegisterIo, C: Clock>(
        &mut self,
        bar: &Bar<R, VfReg>,
        clock: &C,
    ) -> Result<[u32; MAILBOX_WORDS], DriverError> {
        self.lock(bar, clock)?;
        let mut words = [0u32; MAILBOX_WORDS];
        for (i, w) in words.iter_mut().enumerate() {
            *w = bar.get(VfReg::VMBMEM(i as u8));
        }
        bar.set(VfReg::VFMAILBOX, ACK);
        Ok(words)
    }

    fn wait_for<R: RegisterIo, C: Clock>(
        &mut self,
        bar: &Bar<R, VfReg>,
        clock: &C,
        mask: u32,
        what: &'static str,
    ) -> Result<(), DriverError> {
        let start = clock.now_ns();
        loop {
            if self.take(bar, mask) {
                return Ok(());
            }
            if self.cached & RSTI != 0 || self.read_status(bar) & RSTI != 0 {
                return Err(DriverError::PfInReset);
            }
            if clock.now_ns().saturating_sub(start) >= self.config.timeout_ns {
                return Err(DriverError::MailboxTimeout {
                    waiting_for: what,
                    timeout_us: self.config.timeout_ns / 1_000,
                });
            }
            clock.delay_ns(self.config.poll_ns);
        }
    }

    /// Writes a message and waits for the PF's acknowledgement.
    pub fn write_posted<R: RegisterIo, C: Clock>(
        &mut self,
        bar: &Bar<R, VfReg>,
        clock: &C,
        words: &[u32],
    ) -> Result<(), DriverError> {
        self.write(bar, clock, words)?;
        self.wait_for(bar, clock, PFACK, "acknowledge")
    }

    /// Waits for a PF message and reads it.
    pub fn read_posted<R: RegisterIo, C: Clock>(
        &mut self,
        bar: &Bar<R, VfReg>,
        clock: &C,
    ) -> Result<[u32; MAILBOX_WORDS], DriverError> {
        self.wait_for(bar, clock, PFSTS, "reply")?;
        self.read(bar, clock)
    }

    /// Sends `message`, waits for the reply and checks that it answers it: ACK → the parsed
    /// reply, NACK → [`DriverError::Nack`].
    pub fn request<R: RegisterIo, C: Clock>(
        &mut self,
        bar: &Bar<R, VfReg>,
        clock: &C,
        message: &Message,
    ) -> Result<Envelope, DriverError> {
        let mut words = [0u32; MAILBOX_WORDS];
        let n = message.emit(msg::Flags::default(), &mut words);
        self.write_posted(bar, clock, &words[..n])?;
        let reply = self.read_posted(bar, clock)?;
        let id = message.id();
        if (reply[0] & msg::ID_MASK) as u16 != id {
            return Err(DriverError::UnexpectedReply {
                id,
                word0: reply[0],
            });
        }
        let env = Message::parse(&reply).map_err(DriverError::MalformedReply)?;
        if env.flags.nack {
            return Err(DriverError::Nack { id });
        }
        if !env.flags.ack {
            return Err(DriverError::UnexpectedReply {
                id,
                word0: reply[0],
            });
        }
        Ok(env)
    }
}
