//! NIC receive flow steering of a function: flow tables of groups (a criteria mask over the
//! outer headers and a range of entries) and entries (a match value and an action: forward
//! to a TIR or to a deeper table, or drop), the root table packets enter, and the lookup
//! (layouts: `mlx5_hw::commands::steering`; behaviour: the PRM's flow table chapter, Linux
//! `fs_cmd.c`, `fs_core.c`, `en_fs.c`, `lib/fs_ttc.c`).
//!
//! A packet enters the root table; the first entry by flow index whose value equals the
//! packet's outer headers under its group's criteria takes it: to a TIR (delivered), to
//! another table (a higher level, looked up the same way) or dropped. A miss goes to the
//! table's miss table (`table_miss_action` forward) or is dropped (the default: no lower
//! priority exists in the model). Levels only grow along a path, so a lookup ends; it is also
//! bounded by [`MAX_HOPS`].

use std::collections::BTreeMap;

/// Most tables a lookup visits.
pub const MAX_HOPS: usize = 64;
/// The first flow table id CREATE_FLOW_TABLE hands out.
pub const FIRST_TABLE_ID: u32 = 0x1;
/// The first flow group id CREATE_FLOW_GROUP hands out.
pub const FIRST_GROUP_ID: u32 = 0x1;
/// Bytes of the outer headers a rule compares.
pub const HEADERS_LEN: usize = 0x40;

/// A flow group: entries `start..=end` compare the criteria.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowGroup {
    /// First entry.
    pub start: u32,
    /// Last entry.
    pub end: u32,
    /// The outer-header criteria mask (all zero: every packet matches).
    pub criteria: Vec<u8>,
}

/// What an entry does with a matching packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FlowAction {
    /// Drop it (counted).
    Drop,
    /// Deliver it to a TIR.
    Tir(u32),
    /// Look it up in another table.
    Table(u32),
}

/// A flow table entry.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowEntry {
    /// Its group.
    pub group: u32,
    /// The match value, already masked by the group's criteria.
    pub value: Vec<u8>,
    /// Action.
    pub action: FlowAction,
    /// Flow tag reported in the CQE.
    pub flow_tag: u32,
}

/// A NIC receive flow table.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct FlowTable {
    /// Level: entries and misses go only to higher levels.
    pub level: u8,
    /// log2 of its entries.
    pub log_size: u8,
    /// The table misses go to (`None`: dropped).
    pub miss: Option<u32>,
    /// Groups by id.
    pub groups: BTreeMap<u32, FlowGroup>,
    /// Entries by flow index.
    pub entries: BTreeMap<u32, FlowEntry>,
}

/// The NIC receive steering of a function.
#[derive(Clone, Debug, PartialEq, Eq, Default)]
pub struct NicRxSteering {
    /// Tables by id.
    pub tables: BTreeMap<u32, FlowTable>,
    /// The root table (SET_FLOW_TABLE_ROOT).
    pub root: Option<u32>,
}

/// Where steering sent a packet.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Steered {
    /// To a TIR, with the entry's flow tag.
    Tir {
        /// The TIR.
        tirn: u32,
        /// Flow tag.
        flow_tag: u32,
    },
    /// A drop rule took it.
    Dropped,
    /// No root, or no entry matched and no miss table.
    Missed,
}

/// True when `headers` under `criteria` equal `value` (`value` already masked).
pub fn matches(headers: &[u8], criteria: &[u8], value: &[u8]) -> bool {
    headers
        .iter()
        .zip(criteria)
        .zip(value)
        .all(|((h, c), v)| h & c == *v)
}

impl NicRxSteering {
    /// Steers a packet of outer match headers `headers`.
    pub fn lookup(&self, headers: &[u8]) -> Steered {
        let mut table = self.root;
        for _ in 0..MAX_HOPS {
            let Some(t) = table.and_then(|id| self.tables.get(&id)) else {
                return Steered::Missed;
            };
            let hit = t.entries.values().find(|e| {
                t.groups
                    .get(&e.group)
                    .is_some_and(|g| matches(headers, &g.criteria, &e.value))
            });
            table = match hit.map(|e| (e.action, e.flow_tag)) {
                Some((FlowAction::Drop, _)) => return Steered::Dropped,
                Some((FlowAction::Tir(tirn), flow_tag)) => return Steered::Tir { tirn, flow_tag },
                Some((FlowAction::Table(next), _)) => Some(next),
                None => t.miss,
            };
        }
        Steered::Missed
    }

    /// True when a table, an entry or the root refers to table `id` (it may not go).
    pub fn table_referenced(&self, id: u32) -> bool {
        self.root == Some(id) || self.table_referenced_by_table(id)
    }

    /// True when another table's miss or entry leads to table `id` (the root does not count).
    pub fn table_referenced_by_table(&self, id: u32) -> bool {
        self.tables.values().any(|t| {
            t.miss == Some(id)
                || t.entries
                    .values()
                    .any(|e| e.action == FlowAction::Table(id))
        })
    }

    /// True when an entry forwards to TIR `tirn`.
    pub fn tir_referenced(&self, tirn: u32) -> bool {
        self.tables.values().any(|t| {
            t.entries
                .values()
                .any(|e| e.action == FlowAction::Tir(tirn))
        })
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used)]
    use super::*;

    fn table(level: u8, miss: Option<u32>) -> FlowTable {
        FlowTable {
            level,
            log_size: 4,
            miss,
            groups: BTreeMap::new(),
            entries: BTreeMap::new(),
        }
    }

    fn dmac_criteria() -> Vec<u8> {
        let mut c = vec![0u8; HEADERS_LEN];
        c[8..14].fill(0xFF);
        c
    }

    fn headers(dmac: [u8; 6]) -> Vec<u8> {
        let mut h = vec![0u8; HEADERS_LEN];
        h[8..14].copy_from_slice(&dmac);
        h[6] = 0x08;
        h
    }

    #[test]
    fn first_matching_entry_wins_then_tables_chain_and_miss() {
        let mut s = NicRxSteering::default();
        let mut t1 = table(0, Some(3));
        t1.groups.insert(
            1,
            FlowGroup {
                start: 0,
                end: 1,
                criteria: dmac_criteria(),
            },
        );
        let mut v = vec![0u8; HEADERS_LEN];
        v[8..14].copy_from_slice(&[2, 0, 0, 0, 0, 1]);
        t1.entries.insert(
            0,
            FlowEntry {
                group: 1,
                value: v.clone(),
                action: FlowAction::Table(2),
                flow_tag: 0,
            },
        );
        t1.entries.insert(
            1,
            FlowEntry {
                group: 1,
                value: v,
                action: FlowAction::Drop,
                flow_tag: 0,
            },
        );
        let mut t2 = table(1, None);
        t2.groups.insert(
            1,
            FlowGroup {
                start: 0,
                end: 0,
                criteria: vec![0; HEADERS_LEN],
            },
        );
        t2.entries.insert(
            0,
            FlowEntry {
                group: 1,
                value: vec![0; HEADERS_LEN],
                action: FlowAction::Tir(9),
                flow_tag: 7,
            },
        );
        let mut t3 = table(2, None);
        t3.groups.insert(
            1,
            FlowGroup {
                start: 0,
                end: 0,
                criteria: vec![0; HEADERS_LEN],
            },
        );
        t3.entries.insert(
            0,
            FlowEntry {
                group: 1,
                value: vec![0; HEADERS_LEN],
                action: FlowAction::Drop,
                flow_tag: 0,
            },
        );
        s.tables.extend([(1, t1), (2, t2), (3, t3)]);
        assert_eq!(s.lookup(&headers([2, 0, 0, 0, 0, 1])), Steered::Missed);
        s.root = Some(1);
        assert_eq!(
            s.lookup(&headers([2, 0, 0, 0, 0, 1])),
            Steered::Tir {
                tirn: 9,
                flow_tag: 7
            }
        );
        assert_eq!(s.lookup(&headers([2, 0, 0, 0, 0, 2])), Steered::Dropped);
        s.tables.get_mut(&1).unwrap().miss = None;
        assert_eq!(s.lookup(&headers([2, 0, 0, 0, 0, 2])), Steered::Missed);
        assert!(s.table_referenced(2) && s.table_referenced(1) && !s.table_referenced(3));
        assert!(s.tir_referenced(9) && !s.tir_referenced(8));
    }

    #[test]
    fn a_loop_ends_after_the_hop_limit() {
        let mut s = NicRxSteering::default();
        s.tables.insert(1, table(0, Some(1)));
        s.root = Some(1);
        assert_eq!(s.lookup(&headers([0; 6])), Steered::Missed);
    }
}
