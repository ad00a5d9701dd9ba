//! The config space a client sees: the model's VF config space with what the host's PCI core
//! and vfio-pci virtualise for a VF (IDs, Command, BAR registers with sizing).

use igb_hw::pci::{self, header};

use super::VfEndpoint;

/// Command bits the host virtualises for a VF: Memory Space (its decoding is the PF's VF MSE),
/// Bus Master (passed to the model) and INTx Disable (no INTx).
const COMMAND_WRITABLE: u16 =
    pci::command::MEMORY | pci::command::BUS_MASTER | pci::command::INTX_DISABLE;

/// The registers the host keeps for a VF instead of the model.
pub(super) struct VirtualConfig {
    /// The Command register as the client wrote it (writable bits only).
    command: u16,
    /// BAR registers as the host sees them (index 0..6).
    bars: [u32; 6],
}

impl VirtualConfig {
    /// Command 0, BARs with their flags and no address.
    pub(super) fn new() -> VirtualConfig {
        let mut bars = [0u32; 6];
        for b in pci::VF_BARS {
            bars[usize::from(b.index)] = b.flags();
        }
        VirtualConfig { command: 0, bars }
    }

    /// After a function-level reset: Command 0.
    pub(super) fn reset_command(&mut self) {
        self.command = 0;
    }
}

impl VfEndpoint {
    /// Reads config space bytes (any width; each byte from its dword).
    pub(super) fn config_read(&mut self, offset: usize, data: &mut [u8]) {
        for (i, b) in data.iter_mut().enumerate() {
            let at = offset + i;
            let dword = self.config_dword(at & !3);
            *b = dword.to_le_bytes()[at & 3];
        }
    }

    fn config_dword(&mut self, at: usize) -> u32 {
        let f = self.function();
        match at {
            header::VENDOR_ID => {
                u32::from(pci::VENDOR_INTEL) | (u32::from(pci::DEVICE_82576_VF) << 16)
            }
            header::COMMAND => {
                let mut w = [0u8; 4];
                self.model.nic().config_read(f, at as u16, &mut w);
                let status = u32::from_le_bytes(w) & 0xFFFF_0000;
                status | u32::from(self.config.command)
            }
            0x10..=0x27 => self.config.bars[(at - header::BAR0) / 4],
            _ => {
                let mut w = [0u8; 4];
                self.model.nic().config_read(f, at as u16, &mut w);
                u32::from_le_bytes(w)
            }
        }
    }

    /// Writes config space bytes: Command and the BARs stay here, the rest goes to the model.
    pub(super) fn config_write(&mut self, offset: usize, data: &[u8]) {
        let f = self.function();
        let mut i = 0;
        while i < data.len() {
            let at = offset + i;
            // Naturally aligned pieces of 4, 2 or 1 bytes (what the model accepts).
            let n = if at.is_multiple_of(4) && data.len() - i >= 4 {
                4
            } else if at.is_multiple_of(2) && data.len() - i >= 2 {
                2
            } else {
                1
            };
            let piece = &data[i..i + n];
            match at {
                0..=3 => {}
                4..=5 => {
                    // Command (low bytes only; status follows at 6).
                    let mut cmd = self.config.command.to_le_bytes();
                    for (k, b) in piece.iter().take(6 - at).enumerate() {
                        cmd[at - 4 + k] = *b;
                    }
                    self.config.command = u16::from_le_bytes(cmd) & COMMAND_WRITABLE;
                    let to_model = (self.config.command & pci::command::BUS_MASTER).to_le_bytes();
                    self.model
                        .nic()
                        .config_write(f, header::COMMAND as u16, &to_model);
                    if n == 4 {
                        // The status half (write-1-to-clear bits).
                        self.model.nic().config_write(f, 6, &piece[2..4]);
                    }
                }
                0x10..=0x27 => {
                    for (k, b) in piece.iter().enumerate() {
                        let byte = at + k - header::BAR0;
                        let idx = byte / 4;
                        let mut v = self.config.bars[idx].to_le_bytes();
                        v[byte % 4] = *b;
                        self.config.bars[idx] = bar_value(idx, u32::from_le_bytes(v));
                    }
                }
                _ => self.model.nic().config_write(f, at as u16, piece),
            }
            i += n;
        }
        // MSI-X enable/function mask or an FLR may have changed the table's state.
        self.sync_msix();
        self.poll_agent();
    }
}

/// A BAR register after a write of `value`: size bits read 0 (sizing), flags fixed; an
/// absent BAR reads 0.
fn bar_value(idx: usize, value: u32) -> u32 {
    for b in pci::VF_BARS {
        let i = usize::from(b.index);
        if idx == i {
            return (value & !(b.size - 1) & !0xF) | b.flags();
        }
        if b.is_64bit && idx == i + 1 {
            return value;
        }
    }
    0
}
