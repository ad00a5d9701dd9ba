//! docs/control.md documents every operation, field, result member, counter and error code the
//! types define.
#![allow(clippy::unwrap_used, clippy::panic, missing_docs)]

use hac_control::{
    ErrorCode, Guard, HelloInfo, Limits, OPS, PortCounters, Queued, Stopping, VfCounters, VfSummary,
};

const DOC: &str = include_str!(concat!(
    env!("CARGO_MANIFEST_DIR"),
    "/../../docs/control.md"
));

fn ticked(name: &str) -> String {
    format!("`{name}`")
}

#[test]
fn every_operation_and_its_fields_are_in_the_table() {
    for spec in OPS {
        let row = DOC
            .lines()
            .find(|l| l.starts_with(&format!("| {} |", ticked(spec.name))))
            .unwrap_or_else(|| panic!("docs/control.md: no table row for op `{}`", spec.name));
        let fields = row.split('|').nth(2).unwrap();
        for f in spec.fields {
            assert!(
                fields.contains(&ticked(f.name)),
                "docs/control.md: op `{}` row does not name field `{}`: {row}",
                spec.name,
                f.name
            );
        }
    }
}

#[test]
fn every_result_member_counter_and_error_code_is_named() {
    let mut names: Vec<String> = Vec::new();
    let hello = HelloInfo {
        pf: Some(String::new()),
        port_rate: Some(String::new()),
        vfio_user: Some(vec![]),
        ..HelloInfo::default()
    };
    for v in [
        serde_json::to_value(hello).unwrap(),
        serde_json::to_value(VfSummary::default()).unwrap(),
        serde_json::to_value(Limits::default()).unwrap(),
        serde_json::to_value(Guard::default()).unwrap(),
        serde_json::to_value(Queued::default()).unwrap(),
        serde_json::to_value(Stopping::default()).unwrap(),
    ] {
        names.extend(v.as_object().unwrap().keys().cloned());
    }
    names.extend(VfCounters::METRICS.iter().map(|m| m.name.to_string()));
    names.extend(PortCounters::METRICS.iter().map(|m| m.name.to_string()));
    names.extend(["port", "vfs", "device", "vfio_user", "latency"].map(String::from));
    // The members of a latency histogram.
    let latency = hac_control::Latency {
        class: "plain".into(),
        ..Default::default()
    };
    names.extend(
        serde_json::to_value(latency)
            .unwrap()
            .as_object()
            .unwrap()
            .keys()
            .cloned(),
    );
    names.extend(ErrorCode::ALL.iter().map(|c| c.as_str().to_string()));
    for name in names {
        assert!(
            DOC.contains(&ticked(&name)),
            "docs/control.md does not name `{name}`"
        );
    }
}
