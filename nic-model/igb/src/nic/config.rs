//! PCI configuration space of the PF and the VFs: SR-IOV enable (VFs appear and disappear),
//! MSI-X enable and function mask, and function-level reset.

use igb_hw::VfIndex;
use igb_hw::addr::{MAX_VFS, QUEUES_PER_VF};
use igb_hw::pci::{header, layout, msix as msix_cap, sriov};

use super::{Nic, VfInterrupts};
use crate::function::FunctionId;
use crate::pci::{ConfigAccessError, ConfigSpace};

impl Nic {
    /// Configuration read. Unaligned or out-of-range accesses read all ones and are counted;
    /// a VF that is not enabled reads all ones (no device answers).
    pub fn config_read(&mut self, f: FunctionId, offset: u16, data: &mut [u8]) {
        let cfg = match f {
            FunctionId::Pf => &self.pf_config,
            FunctionId::Vf(v) if self.vf_enabled(v) => &self.vf_config[v.get()],
            FunctionId::Vf(_) => {
                self.counters.disabled_function_accesses += 1;
                data.fill(0xFF);
                return;
            }
        };
        if let Err(e) = cfg.read(usize::from(offset), data) {
            self.count_config_error(e);
            data.fill(0xFF);
        }
    }

    /// Configuration write, with the SR-IOV, MSI-X and FLR side effects.
    pub fn config_write(&mut self, f: FunctionId, offset: u16, data: &[u8]) {
        let offset = usize::from(offset);
        match f {
            FunctionId::Pf => {
                let old_ctrl = self.pf_config.sriov_control();
                let old_num = self.pf_config.sriov_num_vfs();
                let old_msix = self.pf_config.msix_control();
                if let Err(e) = self.pf_config.write(offset, data) {
                    self.count_config_error(e);
                    return;
                }
                // NumVFs may only change while VF Enable is clear (SR-IOV 3.3.7).
                if old_ctrl & sriov::CONTROL_VF_ENABLE != 0 {
                    self.pf_config
                        .force16(layout::SRIOV + sriov::NUM_VFS, old_num);
                }
                let new_ctrl = self.pf_config.sriov_control();
                let was = old_ctrl & sriov::CONTROL_VF_ENABLE != 0;
                let is = new_ctrl & sriov::CONTROL_VF_ENABLE != 0;
                if was != is {
                    // VFs appear or disappear: each starts (or ends) in its reset state.
                    for v in VfIndex::all(MAX_VFS) {
                        self.vf_config[v.get()] = ConfigSpace::new_vf();
                        self.msix[FunctionId::Vf(v).slot()].reset();
                        self.vf_irq[v.get()] = VfInterrupts::default();
                        for vq in 0..QUEUES_PER_VF {
                            if let Some(q) = v.queue(vq) {
                                self.reset_queue_registers(q.get() as u8);
                            }
                        }
                    }
                }
                self.after_msix_control_write(FunctionId::Pf, old_msix);
            }
            FunctionId::Vf(v) => {
                if !self.vf_enabled(v) {
                    self.counters.disabled_function_accesses += 1;
                    return;
                }
                let old_msix = self.vf_config[v.get()].msix_control();
                if let Err(e) = self.vf_config[v.get()].write(offset, data) {
                    self.count_config_error(e);
                    return;
                }
                if self.vf_config[v.get()].take_flr_request() {
                    self.vf_reset(v, true);
                    return;
                }
                self.after_msix_control_write(f, old_msix);
            }
        }
    }

    fn count_config_error(&mut self, e: ConfigAccessError) {
        match e {
            ConfigAccessError::Misaligned => self.counters.misaligned_accesses += 1,
            ConfigAccessError::OutOfRange => self.counters.out_of_range_accesses += 1,
        }
    }

    fn config_of(&self, f: FunctionId) -> &ConfigSpace {
        match f {
            FunctionId::Pf => &self.pf_config,
            FunctionId::Vf(v) => &self.vf_config[v.get()],
        }
    }

    pub(super) fn msix_state(&self, f: FunctionId) -> (bool, bool) {
        let c = self.config_of(f).msix_control();
        (c & msix_cap::ENABLE != 0, c & msix_cap::FUNCTION_MASK != 0)
    }

    fn after_msix_control_write(&mut self, f: FunctionId, old: u16) {
        let (enabled, masked) = self.msix_state(f);
        let was_live = old & msix_cap::ENABLE != 0 && old & msix_cap::FUNCTION_MASK == 0;
        if enabled && !masked && !was_live {
            let vectors = self.msix[f.slot()].take_unmasked_pending(false);
            self.deliver_vectors(f, &vectors);
        }
    }

    /// Convenience for hosts and tests: enables `num_vfs` VFs the way the kernel does
    /// (NumVFs, then VF Enable + VF MSE), and enables memory and bus mastering on the PF.
    pub fn enable_sriov(&mut self, num_vfs: u16) {
        let cmd = igb_hw::pci::command::MEMORY | igb_hw::pci::command::BUS_MASTER;
        self.config_write(FunctionId::Pf, header::COMMAND as u16, &cmd.to_le_bytes());
        let s = layout::SRIOV as u16;
        self.config_write(
            FunctionId::Pf,
            s + sriov::CONTROL as u16,
            &0u16.to_le_bytes(),
        );
        self.config_write(
            FunctionId::Pf,
            s + sriov::NUM_VFS as u16,
            &num_vfs.to_le_bytes(),
        );
        let ctrl = sriov::CONTROL_VF_ENABLE | sriov::CONTROL_VF_MSE;
        self.config_write(
            FunctionId::Pf,
            s + sriov::CONTROL as u16,
            &ctrl.to_le_bytes(),
        );
    }
}
