//! Event queue entries, the event types and the EQ doorbell.
//!
//! An EQ is a ring of 64-byte EQEs ([`EQE_LEN`]) the device writes: a type ([`EventType`]), a
//! sub-type, 28 bytes of event data at 0x20 ([`EventData`]) and an owner bit at 0x3F that
//! follows the same pass rule as CQEs ([`crate::cqe::owner_bit`]; drivers start every EQE
//! with owner 1, so the first pass is written with owner 0). An EQ receives the events of the
//! types set in its `event_bitmask` (CREATE_EQ) and, for completion events, the CQs bound to
//! it. An armed EQ that gains an EQE fires its MSI-X vector and disarms.
//!
//! Software reports its consumer counter and re-arms by writing [`EqDoorbell`] to the UAR page
//! (`uar::EQ_DOORBELL_ARM`, or `uar::EQ_DOORBELL_UPDATE_CI` to update without arming).
//!
//! Sources: Linux `include/linux/mlx5/device.h` (`mlx5_eqe` and its data structs,
//! `mlx5_event`), `drivers/net/ethernet/mellanox/mlx5/core/eq.c`, `events.c`, `cmd.c`,
//! `pagealloc.c`, `lib/eq.h`; rdma-core `providers/mlx5/mlx5_vfio.h`.

use crate::Field;
use crate::field::Truncated;
use crate::layout::{field_enum, layout};

/// Bytes of one EQE.
pub const EQE_LEN: usize = 64;
/// Offset of the event data in an EQE.
pub const EQE_DATA_OFFSET: usize = 0x20;
/// Bytes of the event data.
pub const EQE_DATA_LEN: usize = 28;
/// The owner byte drivers initialise every EQE with.
pub const EQE_INITIAL_OWNER: u8 = 1;
/// Mask of the consumer index in the EQ doorbell.
pub const EQ_CI_MASK: u32 = 0x00ff_ffff;

field_enum! {
    /// EQ event types (EQE `type`; also the bit numbers of CREATE_EQ's `event_bitmask`).
    pub enum EventType: u8 {
        /// A CQ gained a CQE while armed.
        Completion = 0x00,
        /// Path migrated.
        PathMig = 0x01,
        /// Communication established.
        CommEst = 0x02,
        /// SQ drained.
        SqDrained = 0x03,
        /// CQ error (overrun, access violation).
        CqError = 0x04,
        /// Work queue catastrophic error.
        WqCatasError = 0x05,
        /// Path migration failed.
        PathMigFailed = 0x07,
        /// Internal error.
        InternalError = 0x08,
        /// Port state changed.
        PortChange = 0x09,
        /// Commands completed (the data is the bitmask of completed slots).
        Cmd = 0x0a,
        /// The device asks for (or returns) pages.
        PageRequest = 0x0b,
        /// Page fault (on-demand paging).
        PageFault = 0x0c,
        /// NIC vport context changed (vport managers).
        NicVportChange = 0x0d,
        /// E-Switch functions changed.
        EswFunctionsChanged = 0x0e,
        /// vHCA state changed.
        VhcaStateChange = 0x0f,
        /// Work queue invalid request error.
        WqInvalReqError = 0x10,
        /// Work queue access error.
        WqAccessError = 0x11,
        /// SRQ catastrophic error.
        SrqCatasError = 0x12,
        /// SRQ last WQE reached.
        SrqLastWqe = 0x13,
        /// SRQ limit reached.
        SrqRqLimit = 0x14,
        /// GPIO event.
        GpioEvent = 0x15,
        /// Port module event.
        PortModuleEvent = 0x16,
        /// Temperature warning.
        TempWarnEvent = 0x17,
        /// XRQ error.
        XrqError = 0x18,
        /// Remote configuration.
        RemoteConfig = 0x19,
        /// Doorbell/BlueFlame congestion.
        DbBfCongestion = 0x1a,
        /// Stall event.
        StallEvent = 0x1b,
        /// DCT drained.
        DctDrained = 0x1c,
        /// DCT key violation.
        DctKeyViolation = 0x1d,
        /// General event.
        GeneralEvent = 0x22,
        /// Monitor counter.
        MonitorCounter = 0x24,
        /// PPS event.
        PpsEvent = 0x25,
        /// Object changed.
        ObjectChange = 0x27,
    }
}

impl EventType {
    /// The bit of this type in CREATE_EQ's `event_bitmask` word 0 (types < 64).
    pub fn mask_bit(self) -> Option<u64> {
        let t = self.raw_value();
        (t < 64).then(|| 1u64 << t)
    }
}

field_enum! {
    /// Port change sub-types (EQE `sub_type` of [`EventType::PortChange`]).
    pub enum PortChangeSubtype: u8 {
        /// Link went down.
        Down = 1,
        /// Link became active.
        Active = 4,
    }
}

field_enum! {
    /// CQ error syndromes ([`EventType::CqError`]).
    pub enum CqErrorSyndrome: u8 {
        /// The CQ overran: a CQE was due and the ring was full.
        Overrun = 1,
        /// The device could not access the CQ's memory.
        AccessViolation = 2,
    }
}

field_enum! {
    /// Queue types of work-queue events (`type` at 0x34).
    pub enum EventQueueType: u8 {
        /// QP.
        Qp = 0,
        /// RQ.
        Rq = 1,
        /// SQ.
        Sq = 2,
        /// DCT.
        Dct = 6,
    }
}

/// `flags` of a page request: the request is for the embedded CPU function.
pub const PAGE_REQUEST_EC_FUNCTION: u16 = 1 << 15;
/// `flags` of a page request: release all pages.
pub const PAGE_REQUEST_RELEASE_ALL: u16 = 1 << 14;

layout! {
    /// An EQE (64 bytes): the header and every event-data field, each meaningful only for
    /// its event types.
    pub struct Eqe(EQE_LEN, "EQE") {
        /// Event type.
        event_type, set_event_type: EventType = Field::at(0x00, 23, 16);
        /// Sub-type.
        sub_type, set_sub_type: u8 = Field::at(0x00, 7, 0);
        /// Signature.
        signature, set_signature: u8 = Field::at(0x3c, 15, 8);
        /// Owner bit.
        owner, set_owner: bool = Field::at(0x3c, 0, 0);
    }
    /// The EQE header as values (the event data is in [`EqeRepr`]).
    repr EqeHeader;
}

mod data {
    use crate::Field;
    // Offsets are from the start of the EQE.
    pub const COMP_CQN: Field = Field::at(0x38, 23, 0);
    pub const CMD_VECTOR: Field = Field::dword(0x20);
    pub const PAGE_FLAGS: Field = Field::at(0x20, 31, 16);
    pub const PAGE_FUNC_ID: Field = Field::at(0x20, 15, 0);
    pub const PAGE_NUM_PAGES: Field = Field::dword(0x24);
    pub const PORT: Field = Field::at(0x28, 31, 28);
    pub const CQ_ERR_CQN: Field = Field::at(0x20, 23, 0);
    pub const CQ_ERR_SYNDROME: Field = Field::at(0x28, 7, 0);
    pub const VPORT_NUM: Field = Field::at(0x20, 15, 0);
    pub const WQ_TYPE: Field = Field::at(0x34, 31, 24);
    pub const WQ_NUMBER: Field = Field::at(0x38, 23, 0);
}

/// The event data of an EQE, by event type.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum EventData {
    /// [`EventType::Completion`]: the CQ.
    Completion {
        /// CQ number.
        cqn: u32,
    },
    /// [`EventType::Cmd`]: the command slots completed (bit n = slot n).
    Cmd {
        /// Bitmask of completed slots.
        vector: u32,
    },
    /// [`EventType::PageRequest`]: the device wants pages (> 0) or returns them (< 0).
    PageRequest {
        /// [`PAGE_REQUEST_EC_FUNCTION`], [`PAGE_REQUEST_RELEASE_ALL`].
        flags: u16,
        /// Function the pages are for (0: this function).
        func_id: u16,
        /// Pages to give (positive) or to take (negative).
        num_pages: i32,
    },
    /// [`EventType::PortChange`] (the sub-type says what changed).
    PortChange {
        /// Port number (1-based).
        port: u8,
    },
    /// [`EventType::CqError`].
    CqError {
        /// CQ number.
        cqn: u32,
        /// Syndrome.
        syndrome: CqErrorSyndrome,
    },
    /// [`EventType::NicVportChange`].
    NicVportChange {
        /// Vport number.
        vport_num: u16,
    },
    /// Work queue events ([`EventType::SqDrained`], [`EventType::WqCatasError`],
    /// [`EventType::WqInvalReqError`], [`EventType::WqAccessError`], path and SRQ events).
    WorkQueue {
        /// Kind of queue.
        queue_type: EventQueueType,
        /// Queue number.
        number: u32,
    },
    /// Any other type: the 28 data bytes as read.
    Raw([u8; EQE_DATA_LEN]),
}

impl EventData {
    fn parse<T: AsRef<[u8]>>(event_type: EventType, eqe: &Eqe<T>) -> Self {
        let b = eqe.as_bytes();
        let get = |f: Field| f.get_or_zero(b);
        match event_type {
            EventType::Completion => EventData::Completion {
                cqn: get(data::COMP_CQN) as u32,
            },
            EventType::Cmd => EventData::Cmd {
                vector: get(data::CMD_VECTOR) as u32,
            },
            EventType::PageRequest => EventData::PageRequest {
                flags: get(data::PAGE_FLAGS) as u16,
                func_id: get(data::PAGE_FUNC_ID) as u16,
                num_pages: get(data::PAGE_NUM_PAGES) as u32 as i32,
            },
            EventType::PortChange => EventData::PortChange {
                port: get(data::PORT) as u8,
            },
            EventType::CqError => EventData::CqError {
                cqn: get(data::CQ_ERR_CQN) as u32,
                syndrome: CqErrorSyndrome::from_raw_value(get(data::CQ_ERR_SYNDROME) as u8),
            },
            EventType::NicVportChange => EventData::NicVportChange {
                vport_num: get(data::VPORT_NUM) as u16,
            },
            EventType::PathMig
            | EventType::CommEst
            | EventType::SqDrained
            | EventType::WqCatasError
            | EventType::PathMigFailed
            | EventType::WqInvalReqError
            | EventType::WqAccessError
            | EventType::SrqCatasError
            | EventType::SrqLastWqe
            | EventType::SrqRqLimit => EventData::WorkQueue {
                queue_type: EventQueueType::from_raw_value(get(data::WQ_TYPE) as u8),
                number: get(data::WQ_NUMBER) as u32,
            },
            _ => {
                let mut raw = [0u8; EQE_DATA_LEN];
                raw.copy_from_slice(&b[EQE_DATA_OFFSET..EQE_DATA_OFFSET + EQE_DATA_LEN]);
                EventData::Raw(raw)
            }
        }
    }

    fn emit(&self, b: &mut [u8]) {
        let mut set = |f: Field, v: u64| {
            let _ = f.set(b, v);
        };
        match *self {
            EventData::Completion { cqn } => set(data::COMP_CQN, cqn.into()),
            EventData::Cmd { vector } => set(data::CMD_VECTOR, vector.into()),
            EventData::PageRequest {
                flags,
                func_id,
                num_pages,
            } => {
                set(data::PAGE_FLAGS, flags.into());
                set(data::PAGE_FUNC_ID, func_id.into());
                set(data::PAGE_NUM_PAGES, u64::from(num_pages as u32));
            }
            EventData::PortChange { port } => set(data::PORT, port.into()),
            EventData::CqError { cqn, syndrome } => {
                set(data::CQ_ERR_CQN, cqn.into());
                set(data::CQ_ERR_SYNDROME, syndrome.raw_value().into());
            }
            EventData::NicVportChange { vport_num } => set(data::VPORT_NUM, vport_num.into()),
            EventData::WorkQueue { queue_type, number } => {
                set(data::WQ_TYPE, queue_type.raw_value().into());
                set(data::WQ_NUMBER, number.into());
            }
            EventData::Raw(raw) => {
                b[EQE_DATA_OFFSET..EQE_DATA_OFFSET + EQE_DATA_LEN].copy_from_slice(&raw);
            }
        }
    }
}

/// An EQE as values.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct EqeRepr {
    /// Event type.
    pub event_type: EventType,
    /// Sub-type (port change: [`PortChangeSubtype`]).
    pub sub_type: u8,
    /// Event data.
    pub data: EventData,
    /// Owner bit.
    pub owner: bool,
}

impl EqeRepr {
    /// Parses the EQE in `eqe` (never fails once the view exists; unknown types keep their
    /// raw data).
    pub fn parse<T: AsRef<[u8]>>(eqe: &Eqe<T>) -> Self {
        let event_type = eqe.event_type();
        EqeRepr {
            event_type,
            sub_type: eqe.sub_type(),
            data: EventData::parse(event_type, eqe),
            owner: eqe.owner(),
        }
    }

    /// Parses the first [`EQE_LEN`] bytes of `bytes`.
    pub fn parse_bytes(bytes: &[u8]) -> Result<Self, Truncated> {
        Ok(EqeRepr::parse(&Eqe::new_checked(bytes)?))
    }

    /// Writes the EQE into `eqe`: clears it, then writes the event data, the header and the
    /// owner bit. (A device makes the EQE visible to software so that the owner byte lands last;
    /// that ordering is the writer's business, not the layout's.)
    pub fn emit<T: AsRef<[u8]> + AsMut<[u8]>>(&self, eqe: &mut Eqe<T>) {
        // In bounds: the view holds at least EQE_LEN bytes.
        let bytes = &mut eqe.as_bytes_mut()[..EQE_LEN];
        bytes.fill(0);
        self.data.emit(bytes);
        eqe.set_event_type(self.event_type);
        eqe.set_sub_type(self.sub_type);
        eqe.set_owner(self.owner);
    }

    /// The EQE as a fresh 64-byte array.
    pub fn to_bytes(&self) -> [u8; EQE_LEN] {
        let mut b = [0u8; EQE_LEN];
        if let Ok(mut v) = Eqe::new_checked(&mut b[..]) {
            self.emit(&mut v);
        }
        b
    }
}

/// Bytes of the EQ doorbell write.
pub const EQ_DOORBELL_LEN: usize = 4;

layout! {
    /// The EQ doorbell (a 32-bit write to the UAR page): EQ number and consumer counter.
    pub struct EqDoorbell(EQ_DOORBELL_LEN, "EQ doorbell") {
        /// EQ number.
        eqn, set_eqn: u8 = Field::at(0x0, 31, 24);
        /// Consumer counter (24 bits, wrapping).
        ci, set_ci: u32 = Field::at(0x0, 23, 0);
    }
    /// An EQ doorbell as values.
    repr EqDoorbellRepr;
}

impl EqDoorbellRepr {
    /// The doorbell as the big-endian dword written to the UAR.
    pub fn to_be_bytes(self) -> [u8; EQ_DOORBELL_LEN] {
        let mut b = [0u8; EQ_DOORBELL_LEN];
        if let Ok(mut v) = EqDoorbell::new_checked(&mut b[..]) {
            self.emit(&mut v);
        }
        b
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn bytes(r: EqeRepr) -> [u8; EQE_LEN] {
        let b = r.to_bytes();
        assert_eq!(EqeRepr::parse_bytes(&b).unwrap(), r, "round trip");
        b
    }

    #[test]
    fn completion_and_command_eqes_are_pinned() {
        let b = bytes(EqeRepr {
            event_type: EventType::Completion,
            sub_type: 0,
            data: EventData::Completion { cqn: 0x405 },
            owner: false,
        });
        let mut want = [0u8; EQE_LEN];
        want[0x38..0x3c].copy_from_slice(&[0, 0, 4, 5]);
        assert_eq!(b, want);

        let b = bytes(EqeRepr {
            event_type: EventType::Cmd,
            sub_type: 0,
            data: EventData::Cmd {
                vector: 0x8000_0001,
            },
            owner: true,
        });
        let mut want = [0u8; EQE_LEN];
        want[1] = 0x0a;
        want[0x20..0x24].copy_from_slice(&[0x80, 0, 0, 1]);
        want[0x3f] = 1;
        assert_eq!(b, want);
    }

    #[test]
    fn page_port_cq_error_vport_and_queue_events_are_pinned() {
        let b = bytes(EqeRepr {
            event_type: EventType::PageRequest,
            sub_type: 0,
            data: EventData::PageRequest {
                flags: PAGE_REQUEST_RELEASE_ALL,
                func_id: 2,
                num_pages: -8,
            },
            owner: false,
        });
        assert_eq!(b[1], 0x0b);
        assert_eq!(
            b[0x20..0x28],
            [0x40, 0x00, 0x00, 0x02, 0xff, 0xff, 0xff, 0xf8]
        );

        let b = bytes(EqeRepr {
            event_type: EventType::PortChange,
            sub_type: PortChangeSubtype::Active.raw_value(),
            data: EventData::PortChange { port: 1 },
            owner: false,
        });
        assert_eq!((b[1], b[3], b[0x28]), (0x09, 0x04, 0x10));

        let b = bytes(EqeRepr {
            event_type: EventType::CqError,
            sub_type: 0,
            data: EventData::CqError {
                cqn: 7,
                syndrome: CqErrorSyndrome::Overrun,
            },
            owner: false,
        });
        assert_eq!(
            (b[1], &b[0x20..0x24], b[0x2b]),
            (0x04, &[0u8, 0, 0, 7][..], 1)
        );

        let b = bytes(EqeRepr {
            event_type: EventType::NicVportChange,
            sub_type: 0,
            data: EventData::NicVportChange { vport_num: 3 },
            owner: false,
        });
        assert_eq!((b[1], b[0x22], b[0x23]), (0x0d, 0, 3));

        let b = bytes(EqeRepr {
            event_type: EventType::WqCatasError,
            sub_type: 0,
            data: EventData::WorkQueue {
                queue_type: EventQueueType::Sq,
                number: 0x99,
            },
            owner: false,
        });
        assert_eq!((b[1], b[0x34], b[0x3b]), (0x05, 2, 0x99));

        let mut raw = [0u8; EQE_DATA_LEN];
        raw[0] = 0x81;
        raw[27] = 0x7f;
        let b = bytes(EqeRepr {
            event_type: EventType::Unknown(0x3e),
            sub_type: 9,
            data: EventData::Raw(raw),
            owner: true,
        });
        assert_eq!((b[1], b[0x20], b[0x3b]), (0x3e, 0x81, 0x7f));
    }

    #[test]
    fn event_mask_bits_and_doorbell() {
        assert_eq!(EventType::Cmd.mask_bit(), Some(1 << 0x0a));
        assert_eq!(EventType::PageRequest.mask_bit(), Some(1 << 0x0b));
        assert_eq!(EventType::Unknown(0x80).mask_bit(), None);
        let d = EqDoorbellRepr {
            eqn: 0x11,
            ci: 0x203,
        };
        assert_eq!(d.to_be_bytes(), [0x11, 0x00, 0x02, 0x03]);
        assert_eq!(
            EqDoorbellRepr::parse(&EqDoorbell::new_checked(&d.to_be_bytes()[..]).unwrap()),
            d
        );
        assert!(EqeRepr::parse_bytes(&[0u8; 63]).is_err());
    }

    proptest::proptest! {
        #[test]
        fn arbitrary_eqes_parse_and_round_trip(bytes: [u8; EQE_LEN]) {
            let r = EqeRepr::parse_bytes(&bytes).unwrap();
            proptest::prop_assert_eq!(EqeRepr::parse_bytes(&r.to_bytes()).unwrap(), r);
        }
    }
}
