//! Bring-up and teardown of a function: ENABLE_HCA, ISSI, pages, capabilities, INIT_HCA,
//! driver version, adapter query, access registers, TEARDOWN_HCA and DISABLE_HCA — the order
//! Linux `mlx5_core` (`main.c` `mlx5_function_enable`/`mlx5_function_open`) and rdma-core's
//! VFIO provider issue them in.

use crate::caps::{CAP_LEN, CAP_MESSAGE_OFFSET};
use crate::cmd::Opcode;
use crate::commands::OUT_LEN_16;
use crate::field::{Bytes, Field};
use crate::layout::{field_enum, layout, tail_array};

/// Fields shared by the function-addressed commands (dword 2 of the input).
pub mod function {
    use crate::field::Field;

    /// The function is the embedded CPU's (BlueField ECPF); copied from the init segment.
    pub const EMBEDDED_CPU_FUNCTION: Field = Field::at(0x08, 31, 31);
    /// Act on another function (`function_id`): the PF on behalf of a VF.
    pub const OTHER_FUNCTION: Field = Field::at(0x08, 31, 31);
    /// The function: 0 for the caller itself, VF n's is n + 1 for the PF.
    pub const FUNCTION_ID: Field = Field::at(0x08, 15, 0);
}

layout! {
    /// ENABLE_HCA input: the first command of every bring-up.
    input(Opcode::EnableHca) struct EnableHcaIn(0x10) {
        /// Embedded-CPU function (init segment bit).
        embedded_cpu_function, set_embedded_cpu_function: bool = function::EMBEDDED_CPU_FUNCTION;
        /// Function to enable (0: the caller).
        function_id, set_function_id: u16 = function::FUNCTION_ID;
    }
}

layout! {
    /// ENABLE_HCA output (12 bytes: status, syndrome, one reserved dword).
    output struct EnableHcaOut(0x0C) {}
}

layout! {
    /// DISABLE_HCA input.
    input(Opcode::DisableHca) struct DisableHcaIn(0x10) {
        /// Embedded-CPU function.
        embedded_cpu_function, set_embedded_cpu_function: bool = function::EMBEDDED_CPU_FUNCTION;
        /// Function to disable.
        function_id, set_function_id: u16 = function::FUNCTION_ID;
    }
}

layout! {
    /// DISABLE_HCA output (12 bytes).
    output struct DisableHcaOut(0x0C) {}
}

layout! {
    /// QUERY_ISSI input.
    input(Opcode::QueryIssi) struct QueryIssiIn(0x10) {}
}

layout! {
    /// QUERY_ISSI output (0x70 bytes: one mailbox block).
    output struct QueryIssiOut(0x70) {
        /// The ISSI in force.
        current_issi, set_current_issi: u16 = Field::at(0x08, 15, 0);
        /// Bitmask of supported ISSIs: bit n = ISSI n. Drivers need bit 1.
        supported_issi_dw0, set_supported_issi_dw0: u32 = Field::dword(0x6C);
    }
}

/// The ISSI drivers use (and rdma-core requires).
pub const ISSI_1: u16 = 1;

layout! {
    /// SET_ISSI input.
    input(Opcode::SetIssi) struct SetIssiIn(0x10) {
        /// The ISSI to use.
        current_issi, set_current_issi: u16 = Field::at(0x08, 15, 0);
    }
}

layout! {
    /// SET_ISSI output.
    output struct SetIssiOut(OUT_LEN_16) {}
}

field_enum! {
    /// QUERY_PAGES op_mod: which page request.
    pub enum PagesKind: u16 {
        /// 1: pages the device needs before capabilities are set.
        Boot = 1,
        /// 2: pages the device needs before INIT_HCA.
        Init = 2,
        /// 3: pages the device wants while running.
        Regular = 3,
    }
}

layout! {
    /// QUERY_PAGES input (op_mod: [`PagesKind`]).
    input(Opcode::QueryPages) struct QueryPagesIn(0x10) {
        /// Embedded-CPU function.
        embedded_cpu_function, set_embedded_cpu_function: bool = function::EMBEDDED_CPU_FUNCTION;
        /// Function asked about.
        function_id, set_function_id: u16 = function::FUNCTION_ID;
    }
}

layout! {
    /// QUERY_PAGES output.
    output struct QueryPagesOut(OUT_LEN_16) {
        /// Embedded-CPU function.
        embedded_cpu_function, set_embedded_cpu_function: bool = function::EMBEDDED_CPU_FUNCTION;
        /// Function the answer is for.
        function_id, set_function_id: u16 = function::FUNCTION_ID;
        /// Pages wanted: positive = give this many, negative = take this many back.
        num_pages, set_num_pages: i32 = Field::dword(0x0C);
    }
}

field_enum! {
    /// MANAGE_PAGES op_mod.
    pub enum ManagePagesOp: u16 {
        /// 0: the driver cannot give the pages asked for.
        CannotGive = 0,
        /// 1: the driver gives the pages listed.
        Give = 1,
        /// 2: the device returns pages (the output lists them).
        Take = 2,
    }
}

/// Size of a page given with MANAGE_PAGES.
pub const DEVICE_PAGE_SIZE: u64 = 4096;
/// Offset of the page address list in MANAGE_PAGES input and output.
pub const PAS_OFFSET: usize = 0x10;

/// Input length of MANAGE_PAGES carrying `n` page addresses, `None` on overflow.
pub const fn manage_pages_in_len(n: usize) -> Option<usize> {
    match n.checked_mul(8) {
        Some(b) => b.checked_add(PAS_OFFSET),
        None => None,
    }
}

layout! {
    /// MANAGE_PAGES input (op_mod: [`ManagePagesOp`]); `Give` lists the pages at 0x10.
    input(Opcode::ManagePages) struct ManagePagesIn(0x10) {
        /// Embedded-CPU function.
        embedded_cpu_function, set_embedded_cpu_function: bool = function::EMBEDDED_CPU_FUNCTION;
        /// Function the pages are for.
        function_id, set_function_id: u16 = function::FUNCTION_ID;
        /// Addresses given (`Give`) or asked back (`Take`).
        input_num_entries, set_input_num_entries: u32 = Field::dword(0x0C);
    }
}
tail_array!(
    ManagePagesIn,
    PAS_OFFSET,
    u64,
    8,
    pa,
    set_pa,
    pa_capacity,
    "the page addresses"
);

layout! {
    /// MANAGE_PAGES output; `Take` lists the returned pages at 0x10.
    output struct ManagePagesOut(OUT_LEN_16) {
        /// Addresses listed.
        output_num_entries, set_output_num_entries: u32 = Field::dword(0x08);
    }
}
tail_array!(
    ManagePagesOut,
    PAS_OFFSET,
    u64,
    8,
    pa,
    set_pa,
    pa_capacity,
    "the returned page addresses"
);

layout! {
    /// QUERY_HCA_CAP input (op_mod from [`CapOpMod::query_op_mod`](crate::caps::CapOpMod::query_op_mod)).
    input(Opcode::QueryHcaCap) struct QueryHcaCapIn(0x10) {
        /// Query another function's caps (the PF for a VF).
        other_function, set_other_function: bool = function::OTHER_FUNCTION;
        /// The function.
        function_id, set_function_id: u16 = function::FUNCTION_ID;
    }
}

layout! {
    /// QUERY_HCA_CAP output: the 4 KiB page at 0x10 (eight mailbox blocks).
    output struct QueryHcaCapOut(CAP_MESSAGE_OFFSET + CAP_LEN) {}
}

layout! {
    /// SET_HCA_CAP input: the page at 0x10 (op_mod from [`CapType::set_op_mod`](crate::caps::CapType::set_op_mod)).
    input(Opcode::SetHcaCap) struct SetHcaCapIn(CAP_MESSAGE_OFFSET + CAP_LEN) {
        /// Set another function's caps.
        other_function, set_other_function: bool = function::OTHER_FUNCTION;
        /// The function.
        function_id, set_function_id: u16 = function::FUNCTION_ID;
    }
}

layout! {
    /// SET_HCA_CAP output.
    output struct SetHcaCapOut(OUT_LEN_16) {}
}

macro_rules! capability_page {
    ($($t:ident),*) => {$(
        impl<T: AsRef<[u8]>> $t<T> {
            /// The 4 KiB capability page ([`crate::caps`] lays it out).
            pub fn capability(&self) -> &[u8] {
                // In bounds: the layout's LEN ends with the page.
                &self.as_bytes()[CAP_MESSAGE_OFFSET..CAP_MESSAGE_OFFSET + CAP_LEN]
            }
        }
        impl<T: AsRef<[u8]> + AsMut<[u8]>> $t<T> {
            /// The 4 KiB capability page, writable.
            pub fn capability_mut(&mut self) -> &mut [u8] {
                &mut self.as_bytes_mut()[CAP_MESSAGE_OFFSET..CAP_MESSAGE_OFFSET + CAP_LEN]
            }
        }
    )*};
}
capability_page!(QueryHcaCapOut, SetHcaCapIn);

/// Bytes of the software owner id INIT_HCA carries.
pub const SW_OWNER_ID: Bytes = Bytes::at(0x10, 16);

layout! {
    /// INIT_HCA input.
    input(Opcode::InitHca) struct InitHcaIn(0x20) {
        /// Software vHCA id (with general-2 caps).
        sw_vhca_id, set_sw_vhca_id: u16 = Field::at(0x0C, 29, 16);
    }
}

impl<T: AsRef<[u8]>> InitHcaIn<T> {
    /// The 16-byte software owner id (zero unless cap.sw_owner_id).
    pub fn sw_owner_id(&self) -> &[u8] {
        SW_OWNER_ID.get(self.as_bytes()).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> InitHcaIn<T> {
    /// Sets the software owner id (up to 16 bytes, zero-padded).
    pub fn set_sw_owner_id(&mut self, id: &[u8]) -> bool {
        SW_OWNER_ID.set(self.as_bytes_mut(), id)
    }
}

layout! {
    /// INIT_HCA output.
    output struct InitHcaOut(OUT_LEN_16) {}
}

/// TEARDOWN_HCA profile (input dword 2 bits 15:0).
pub mod teardown_profile {
    /// Graceful close: the driver returns the pages afterwards.
    pub const GRACEFUL_CLOSE: u16 = 0;
    /// Force close.
    pub const FORCE_CLOSE: u16 = 1;
    /// Prepare a fast teardown.
    pub const PREPARE_FAST_TEARDOWN: u16 = 2;
}

layout! {
    /// TEARDOWN_HCA input.
    input(Opcode::TeardownHca) struct TeardownHcaIn(0x10) {
        /// [`teardown_profile`].
        profile, set_profile: u16 = Field::at(0x08, 15, 0);
    }
}

layout! {
    /// TEARDOWN_HCA output.
    output struct TeardownHcaOut(OUT_LEN_16) {
        /// Force-close outcome: 0 done, 1 failed.
        state, set_state: bool = Field::at(0x0C, 0, 0);
    }
}

/// The driver version string SET_DRIVER_VERSION carries (NUL-padded ASCII).
pub const DRIVER_VERSION: Bytes = Bytes::at(0x10, 64);

layout! {
    /// SET_DRIVER_VERSION input ("Linux,mlx5_core,6.12" and the like).
    input(Opcode::SetDriverVersion) struct SetDriverVersionIn(0x50) {}
}

impl<T: AsRef<[u8]>> SetDriverVersionIn<T> {
    /// The version string's bytes up to the first NUL.
    pub fn driver_version(&self) -> &[u8] {
        let all = DRIVER_VERSION.get(self.as_bytes()).unwrap_or_default();
        let end = all.iter().position(|&b| b == 0).unwrap_or(all.len());
        &all[..end]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> SetDriverVersionIn<T> {
    /// Sets the version string (at most 64 bytes; the rest is zeroed).
    pub fn set_driver_version(&mut self, version: &[u8]) -> bool {
        DRIVER_VERSION.set(self.as_bytes_mut(), version)
    }
}

layout! {
    /// SET_DRIVER_VERSION output.
    output struct SetDriverVersionOut(OUT_LEN_16) {}
}

layout! {
    /// QUERY_ADAPTER input.
    input(Opcode::QueryAdapter) struct QueryAdapterIn(0x10) {}
}

/// The board id (PSID) in QUERY_ADAPTER output.
pub const PSID: Bytes = Bytes::at(0x100, 16);

layout! {
    /// QUERY_ADAPTER output (0x110 bytes); the board id at 0x100 is what drivers print.
    output struct QueryAdapterOut(0x110) {}
}

impl<T: AsRef<[u8]>> QueryAdapterOut<T> {
    /// The 16-byte board id.
    pub fn psid(&self) -> &[u8] {
        PSID.get(self.as_bytes()).unwrap_or_default()
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> QueryAdapterOut<T> {
    /// Sets the board id (up to 16 bytes).
    pub fn set_psid(&mut self, psid: &[u8]) -> bool {
        PSID.set(self.as_bytes_mut(), psid)
    }
}

/// ACCESS_REG op_mod.
pub mod access_reg_op {
    /// Write the register.
    pub const WRITE: u16 = 0;
    /// Read the register.
    pub const READ: u16 = 1;
}

field_enum! {
    /// An access register id (ACCESS_REG dword 2 bits 15:0).
    pub enum RegisterId: u16 {
        /// 0x4019 QCAM: QoS capabilities mask.
        Qcam = 0x4019,
        /// 0x5003 PMTU: port MTU.
        Pmtu = 0x5003,
        /// 0x5004 PTYS: port type and speed.
        Ptys = 0x5004,
        /// 0x5006 PAOS: port administrative and operational status.
        Paos = 0x5006,
        /// 0x5008 PPCNT: port counters.
        Ppcnt = 0x5008,
        /// 0x5041 PCMR: port capability mask.
        Pcmr = 0x5041,
        /// 0x507F PCAM: port capabilities mask.
        Pcam = 0x507F,
        /// 0x7004 HOST_ENDIANNESS.
        HostEndianness = 0x7004,
        /// 0x9055 MTUTC: time-unit clock.
        Mtutc = 0x9055,
        /// 0x907F MCAM: management capabilities mask.
        Mcam = 0x907F,
        /// 0xC00E DTOR: default timeouts.
        Dtor = 0xC00E,
    }
}

/// Where the register data sits in ACCESS_REG input and output.
pub const REGISTER_DATA_OFFSET: usize = 0x10;

layout! {
    /// ACCESS_REG input (op_mod: [`access_reg_op`]); register data from 0x10.
    input(Opcode::AccessReg) struct AccessRegIn(0x10) {
        /// Raw register id ([`RegisterId`]).
        raw_register_id, set_raw_register_id: u16 = Field::at(0x08, 15, 0);
        /// Register-specific argument.
        argument, set_argument: u32 = Field::dword(0x0C);
    }
}

impl<T: AsRef<[u8]>> AccessRegIn<T> {
    /// The register id, decoded.
    pub fn register_id(&self) -> RegisterId {
        RegisterId::from(self.raw_register_id())
    }
    /// The register data (everything after the header).
    pub fn register_data(&self) -> &[u8] {
        &self.as_bytes()[REGISTER_DATA_OFFSET..]
    }
}

layout! {
    /// ACCESS_REG output; register data from 0x10.
    output struct AccessRegOut(0x10) {}
}

impl<T: AsRef<[u8]>> AccessRegOut<T> {
    /// The register data.
    pub fn register_data(&self) -> &[u8] {
        &self.as_bytes()[REGISTER_DATA_OFFSET..]
    }
}

impl<T: AsRef<[u8]> + AsMut<[u8]>> AccessRegOut<T> {
    /// The register data, writable.
    pub fn register_data_mut(&mut self) -> &mut [u8] {
        &mut self.as_bytes_mut()[REGISTER_DATA_OFFSET..]
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;
    use crate::caps::{CapMode, CapOpMod, CapType};
    use crate::cmd::CommandStatus;

    /// The first three inputs a Linux 6.12 guest sent the lab's VF, byte for byte.
    const LAB_ENABLE_HCA: [u8; 16] = [0x01, 0x04, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const LAB_QUERY_ISSI: [u8; 16] = [0x01, 0x0A, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0];
    const LAB_SET_ISSI: [u8; 16] = [0x01, 0x0B, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0];
    /// And the fourth: QUERY_PAGES, boot pages.
    const LAB_QUERY_PAGES_BOOT: [u8; 16] = [0x01, 0x07, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0, 0];

    #[test]
    fn lab_inputs_parse() {
        let e = EnableHcaIn::new_checked(&LAB_ENABLE_HCA[..]).unwrap();
        assert_eq!(e.opcode(), Opcode::EnableHca);
        assert_eq!(
            (e.function_id(), e.embedded_cpu_function(), e.op_mod()),
            (0, false, 0)
        );
        assert_eq!(
            QueryIssiIn::new_checked(&LAB_QUERY_ISSI[..])
                .unwrap()
                .opcode(),
            Opcode::QueryIssi
        );
        let s = SetIssiIn::new_checked(&LAB_SET_ISSI[..]).unwrap();
        assert_eq!((s.opcode(), s.current_issi()), (Opcode::SetIssi, ISSI_1));
        let q = QueryPagesIn::new_checked(&LAB_QUERY_PAGES_BOOT[..]).unwrap();
        assert_eq!(q.opcode(), Opcode::QueryPages);
        assert_eq!(PagesKind::from(q.op_mod()), PagesKind::Boot);
    }

    #[test]
    fn emitting_reproduces_the_lab_inputs() {
        let mut b = [0u8; 16];
        EnableHcaIn::new_checked(&mut b[..]).unwrap().set_header(0);
        assert_eq!(b, LAB_ENABLE_HCA);
        let mut b = [0u8; 16];
        QueryIssiIn::new_checked(&mut b[..]).unwrap().set_header(0);
        assert_eq!(b, LAB_QUERY_ISSI);
        let mut b = [0u8; 16];
        let mut s = SetIssiIn::new_checked(&mut b[..]).unwrap();
        s.set_header(0);
        s.set_current_issi(ISSI_1);
        assert_eq!(b, LAB_SET_ISSI);
        let mut b = [0u8; 16];
        QueryPagesIn::new_checked(&mut b[..])
            .unwrap()
            .set_header(u16::from(PagesKind::Boot));
        assert_eq!(b, LAB_QUERY_PAGES_BOOT);
    }

    #[test]
    fn query_issi_output_as_the_lab_answered_it() {
        // supported_issi_dw0 = 3 at message byte 0x6C (mailbox byte 0x5C); 0x70 bytes in all.
        let mut b = [0u8; QueryIssiOut::<&[u8]>::LEN];
        assert_eq!(b.len(), 0x70);
        let mut o = QueryIssiOut::new_checked(&mut b[..]).unwrap();
        o.set_status(CommandStatus::Ok);
        o.set_supported_issi_dw0(0x3);
        assert_eq!(&b[0x6C..0x70], &[0, 0, 0, 3]);
        assert!(b[..0x6C].iter().all(|&x| x == 0));
        let o = QueryIssiOut::new_checked(&b[..]).unwrap();
        assert_eq!(o.status(), CommandStatus::Ok);
        assert!(o.supported_issi_dw0() & (1 << ISSI_1) != 0);
        assert!(QueryIssiOut::new_checked(&b[..0x6F]).is_err());
    }

    #[test]
    fn output_lengths_the_driver_asks_for() {
        assert_eq!(EnableHcaOut::<&[u8]>::LEN, 12, "lab: outlen 12");
        assert_eq!(DisableHcaOut::<&[u8]>::LEN, 12);
        assert_eq!(SetIssiOut::<&[u8]>::LEN, 16);
        assert_eq!(QueryPagesOut::<&[u8]>::LEN, 16);
        assert_eq!(QueryHcaCapOut::<&[u8]>::LEN, 0x1010);
        assert_eq!(SetHcaCapIn::<&[u8]>::LEN, 0x1010);
        assert_eq!(QueryAdapterOut::<&[u8]>::LEN, 0x110);
    }

    #[test]
    fn pages() {
        let mut b = [0u8; 16];
        let mut o = QueryPagesOut::new_checked(&mut b[..]).unwrap();
        o.set_num_pages(-8);
        o.set_function_id(0);
        assert_eq!(&b[0x0C..0x10], &[0xFF, 0xFF, 0xFF, 0xF8]);
        assert_eq!(QueryPagesOut::new_checked(&b[..]).unwrap().num_pages(), -8);
        // MANAGE_PAGES give with three pages: 16 + 8·3 bytes.
        let len = manage_pages_in_len(3).unwrap();
        assert_eq!(len, 40);
        let mut m = vec![0u8; len];
        let mut v = ManagePagesIn::new_checked(&mut m[..]).unwrap();
        v.set_header(u16::from(ManagePagesOp::Give));
        v.set_input_num_entries(3);
        for i in 0..3 {
            assert!(v.set_pa(i, 0x1_0000_0000 + DEVICE_PAGE_SIZE * i as u64));
        }
        assert!(!v.set_pa(3, 0), "past the buffer");
        assert_eq!(v.pa_capacity(), 3);
        assert_eq!(&m[..8], &[0x01, 0x08, 0, 0, 0, 0, 0, 1]);
        assert_eq!(&m[0x18..0x20], &[0, 0, 0, 1, 0, 0, 0x10, 0]);
        let v = ManagePagesIn::new_checked(&m[..]).unwrap();
        assert_eq!(ManagePagesOp::from(v.op_mod()), ManagePagesOp::Give);
        assert_eq!(v.pa(2), Some(0x1_0000_2000));
        assert_eq!(v.pa(3), None);
        assert_eq!(v.pa(usize::MAX), None);
        assert_eq!(manage_pages_in_len(usize::MAX), None);
    }

    #[test]
    fn capability_op_mods() {
        // General CUR 0x1 and MAX 0x0; Ethernet CUR 0x3; flow table CUR 0xF.
        let q = |t, m| CapOpMod::new(t, m).query_op_mod();
        assert_eq!(q(CapType::General, CapMode::Current), 0x1);
        assert_eq!(q(CapType::General, CapMode::Max), 0x0);
        assert_eq!(q(CapType::EthernetOffloads, CapMode::Current), 0x3);
        assert_eq!(q(CapType::FlowTable, CapMode::Current), 0xF);
        assert_eq!(q(CapType::General2, CapMode::Current), 0x41);
        assert_eq!(CapType::General.set_op_mod(), 0);
        assert_eq!(
            CapOpMod::from_query(0x4B),
            CapOpMod::new(CapType::PortSelection, CapMode::Current)
        );
        assert_eq!(
            CapOpMod::from_query(0x7E),
            CapOpMod::new(CapType::Unknown(0x3F), CapMode::Max)
        );
        for v in 0..0x80u16 {
            assert_eq!(u16::from(CapType::from(v)), v);
        }
        let mut b = vec![0u8; 0x1010];
        let mut s = SetHcaCapIn::new_checked(&mut b[..]).unwrap();
        s.set_header(CapType::General.set_op_mod());
        s.capability_mut()[0] = 0xAB;
        assert_eq!(b[0x10], 0xAB);
        assert_eq!(&b[..2], &[0x01, 0x09]);
    }

    #[test]
    fn init_hca_teardown_driver_version_adapter() {
        let mut b = [0u8; 0x20];
        let mut i = InitHcaIn::new_checked(&mut b[..]).unwrap();
        i.set_header(0);
        assert!(i.set_sw_owner_id(&[0x11; 16]));
        i.set_sw_vhca_id(0x3FFF);
        assert_eq!(&b[..2], &[0x01, 0x02]);
        assert_eq!(
            &b[0x0C..0x10],
            &[0x3F, 0xFF, 0, 0],
            "14-bit sw_vhca_id at 29:16"
        );
        assert_eq!(&b[0x10..0x20], &[0x11; 16]);
        let mut t = [0u8; 16];
        let mut v = TeardownHcaIn::new_checked(&mut t[..]).unwrap();
        v.set_header(0);
        v.set_profile(teardown_profile::FORCE_CLOSE);
        assert_eq!(t, [0x01, 0x03, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0]);
        let mut d = [0u8; 0x50];
        let mut v = SetDriverVersionIn::new_checked(&mut d[..]).unwrap();
        assert!(v.set_driver_version(b"Linux,mlx5_core,6.12"));
        assert_eq!(v.driver_version(), b"Linux,mlx5_core,6.12");
        assert_eq!(&d[0x10..0x15], b"Linux");
        let mut a = vec![0u8; 0x110];
        let mut q = QueryAdapterOut::new_checked(&mut a[..]).unwrap();
        assert!(q.set_psid(b"MT_0000000359"));
        assert_eq!(&a[0x100..0x10D], b"MT_0000000359");
    }

    #[test]
    fn access_reg() {
        let mut b = [0u8; 0x20];
        let mut r = AccessRegIn::new_checked(&mut b[..]).unwrap();
        r.set_header(access_reg_op::READ);
        r.set_raw_register_id(u16::from(RegisterId::Dtor));
        assert_eq!(
            &b[..0x0C],
            &[0x08, 0x05, 0, 0, 0, 0, 0, 1, 0, 0, 0xC0, 0x0E]
        );
        let r = AccessRegIn::new_checked(&b[..]).unwrap();
        assert_eq!(r.register_id(), RegisterId::Dtor);
        assert_eq!(r.register_data().len(), 0x10);
        for v in [
            0x4019u16, 0x5003, 0x5004, 0x5006, 0x5008, 0x5041, 0x507F, 0x7004, 0x9055, 0x907F,
            0xC00E, 0x1234,
        ] {
            assert_eq!(u16::from(RegisterId::from(v)), v);
        }
        assert_eq!(RegisterId::from(0x1234), RegisterId::Unknown(0x1234));
    }

    #[test]
    fn every_field_lies_inside_its_layout() {
        fn check(fields: &[(&str, Field)], len: usize) {
            for (name, f) in fields {
                assert!(f.end() <= len, "{name}");
            }
        }
        check(QueryIssiOut::<&[u8]>::FIELDS, 0x70);
        check(ManagePagesIn::<&[u8]>::FIELDS, 0x10);
        check(QueryAdapterOut::<&[u8]>::FIELDS, 0x110);
        check(InitHcaIn::<&[u8]>::FIELDS, 0x20);
    }
}
