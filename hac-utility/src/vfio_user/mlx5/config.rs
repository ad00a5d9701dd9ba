//! The config space a client sees: the model's VF config space (ids and BAR0 with sizing, as
//! a VMM presents a VF) with the registers the host's vfio-pci virtualises: Command and the
//! MSI-X Message Control.

use mlx5_hw::pci::layout;
use mlx5_model::config::{header, msix_cap};

use super::Mlx5VfEndpoint;

/// Command bits the host virtualises for a VF: Memory Space (its decoding is the PF's VF MSE),
/// Bus Master (also passed to the model) and INTx Disable (no INTx).
const COMMAND_WRITABLE: u16 =
    header::COMMAND_MEMORY | header::COMMAND_BUS_MASTER | COMMAND_INTX_DISABLE;

/// Command: INTx Disable (PCI Local Bus 6.2.2).
const COMMAND_INTX_DISABLE: u16 = 1 << 10;

/// Message Control bits the client may write (the rest is the model's, read-only).
const MSIX_CONTROL_WRITABLE: u16 = msix_cap::ENABLE | msix_cap::FUNCTION_MASK;

/// Where the MSI-X Message Control lives in config space.
const MSIX_CONTROL: usize = layout::MSIX + msix_cap::CONTROL;

/// The registers the host keeps for a VF instead of the model.
pub(super) struct VirtualConfig {
    /// The Command register as the client wrote it (writable bits only).
    command: u16,
    /// MSI-X Message Control as the client wrote it (Enable, Function Mask). The model's own
    /// Enable follows the assigned vectors, as the host's vfio-pci enables MSI-X on
    /// `SET_IRQS`; QEMU masks and unmasks in its own table emulation.
    msix_control: u16,
}

impl VirtualConfig {
    /// As after reset: Command and Message Control 0.
    pub(super) fn new() -> VirtualConfig {
        VirtualConfig {
            command: 0,
            msix_control: 0,
        }
    }

    /// The virtual byte at `at`, if the host keeps it.
    fn byte(&self, at: usize) -> Option<u8> {
        match at {
            _ if at == header::COMMAND => Some(self.command.to_le_bytes()[0]),
            _ if at == header::COMMAND + 1 => Some(self.command.to_le_bytes()[1]),
            _ if at == MSIX_CONTROL => Some(self.msix_control.to_le_bytes()[0]),
            _ if at == MSIX_CONTROL + 1 => Some(self.msix_control.to_le_bytes()[1]),
            _ => None,
        }
    }

    /// Stores byte `value` at `at` if the host keeps it; `false` if it belongs to the model.
    fn set_byte(&mut self, at: usize, value: u8) -> bool {
        let (reg, mask, base) = if at == header::COMMAND || at == header::COMMAND + 1 {
            (&mut self.command, COMMAND_WRITABLE, header::COMMAND)
        } else if at == MSIX_CONTROL || at == MSIX_CONTROL + 1 {
            (&mut self.msix_control, MSIX_CONTROL_WRITABLE, MSIX_CONTROL)
        } else {
            return false;
        };
        let mut b = reg.to_le_bytes();
        b[at - base] = value;
        *reg = u16::from_le_bytes(b) & mask;
        true
    }
}

impl Mlx5VfEndpoint {
    /// Reads config space bytes (any width, inside the space; the server checked the range).
    pub(super) fn config_read(&mut self, offset: usize, data: &mut [u8]) {
        let f = self.function();
        let mut nic = self.nic();
        for (i, b) in data.iter_mut().enumerate() {
            let at = offset + i;
            let mut one = [0u8; 1];
            nic.config_read(f, at as u16, &mut one);
            *b = match self.config.byte(at) {
                // Message Control: the model's read-only bits (table size), the client's
                // Enable and Function Mask.
                Some(v) if at == MSIX_CONTROL + 1 => {
                    (one[0] & !(MSIX_CONTROL_WRITABLE >> 8) as u8) | v
                }
                Some(v) if at == MSIX_CONTROL => one[0] | v,
                Some(v) => v,
                None => one[0],
            };
        }
    }

    /// Writes config space bytes: the virtualised registers stay here (Bus Master is passed
    /// on), the rest goes to the model in naturally aligned pieces of 4, 2 or 1 bytes.
    pub(super) fn config_write(&mut self, offset: usize, data: &[u8]) {
        let f = self.function();
        let mut i = 0;
        while i < data.len() {
            let at = offset + i;
            if self.config.set_byte(at, data[i]) {
                i += 1;
                continue;
            }
            let n = if at.is_multiple_of(4)
                && data.len() - i >= 4
                && (1..4).all(|k| self.config.byte(at + k).is_none())
            {
                4
            } else if at.is_multiple_of(2)
                && data.len() - i >= 2
                && self.config.byte(at + 1).is_none()
            {
                2
            } else {
                1
            };
            self.nic().config_write(f, at as u16, &data[i..i + n]);
            i += n;
        }
        if offset <= header::COMMAND + 1 && header::COMMAND < offset + data.len() {
            let bm = (self.config.command & header::COMMAND_BUS_MASTER).to_le_bytes();
            self.nic().config_write(f, header::COMMAND as u16, &bm);
        }
        // An FLR may have reset the model's MSI-X state.
        self.sync_msix();
    }
}
