//! The protocol as a JSON Schema (draft 2020-12), generated from the Rust types with
//! `schemars`, for a checkpoint engine written in any language: every request line, the answer
//! to each operation, the counters of `stats` and the error classes. docs/control-schema.json
//! is [`document_text`]'s output, kept equal to it by a test.
//!
//! Layout of the document: `$defs/Request` (every request, `oneOf` by `op`), one
//! `$defs/Response_<op>` per operation (its success line with the typed `result`, or an error
//! line), `$defs/ErrorResponse`, the result types (`VfSummary`, `Stats`, …) and `ControlError`.
//! The document itself accepts any request or response line.

use schemars::generate::SchemaSettings;
use serde_json::{Map, Value, json};

use crate::line::ControlError;
use crate::ops::{OPS, Reply, Request};

/// `value` with the members of every object in sorted order, so the text is the same whatever
/// `serde_json`'s map type is.
fn sorted(value: Value) -> Value {
    match value {
        Value::Object(object) => {
            let mut entries: Vec<(String, Value)> = object.into_iter().collect();
            entries.sort_by(|a, b| a.0.cmp(&b.0));
            let mut out = Map::new();
            for (k, v) in entries {
                out.insert(k, sorted(v));
            }
            Value::Object(out)
        }
        Value::Array(items) => Value::Array(items.into_iter().map(sorted).collect()),
        other => other,
    }
}

/// The `id` member every line may carry.
fn id_schema() -> Value {
    json!({
        "description": "The client's correlation id: any JSON value, echoed in the answer."
    })
}

/// The schema document (see the module documentation).
pub fn document() -> Value {
    let mut generator = SchemaSettings::draft2020_12().into_generator();
    let request = generator.subschema_for::<Request>();
    let error = generator.subschema_for::<ControlError>();
    let mut responses = Vec::new();
    let mut response_defs = Map::new();
    for spec in OPS {
        let result = Reply::result_schema(spec.op, &mut generator);
        let name = format!("Response_{}", spec.name);
        response_defs.insert(
            name.clone(),
            json!({
                "description": format!("The answer to `{}`: its result, or an error.", spec.name),
                "oneOf": [
                    {
                        "type": "object",
                        "properties": {
                            "id": id_schema(),
                            "ok": { "const": true },
                            "result": result,
                        },
                        "required": ["ok", "result"],
                        "additionalProperties": false,
                    },
                    { "$ref": "#/$defs/ErrorResponse" },
                ],
            }),
        );
        responses.push(json!({ "$ref": format!("#/$defs/{name}") }));
    }
    let mut defs = generator.take_definitions(true);
    // A request line may carry `id` besides the operation's fields (the daemon takes it off
    // before reading the request).
    if let Some(Value::Array(variants)) = defs.get_mut("Request").and_then(|r| r.get_mut("oneOf")) {
        for variant in variants {
            if let Some(Value::Object(properties)) = variant.get_mut("properties") {
                properties.insert("id".into(), id_schema());
            }
        }
    }
    defs.insert(
        "ErrorResponse".into(),
        json!({
            "description": "A refused request: the error class and one line for a human.",
            "type": "object",
            "properties": {
                "id": id_schema(),
                "ok": { "const": false },
                "error": error,
            },
            "required": ["ok", "error"],
            "additionalProperties": false,
        }),
    );
    defs.insert("Response".into(), json!({ "anyOf": responses }));
    defs.extend(response_defs);
    sorted(json!({
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "title": "hac serve control protocol",
        "description": "One JSON object per line over a Unix stream socket: a request (`$defs/Request`) from the client, its answer (`$defs/Response_<op>`) from the daemon, in order. Generated from the hac-control crate's types; see docs/control.md.",
        "anyOf": [request, { "$ref": "#/$defs/Response" }],
        "$defs": defs,
    }))
}

/// [`document`] as pretty-printed JSON with a final newline (the text of
/// docs/control-schema.json and of `hac ctl schema`).
pub fn document_text() -> String {
    let mut text = serde_json::to_string_pretty(&document()).unwrap_or_default();
    text.push('\n');
    text
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::panic)]
    use super::*;
    use crate::ops::Op;

    #[test]
    fn the_checked_in_schema_is_the_generated_one() {
        let path = concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/../../docs/control-schema.json"
        );
        let generated = document_text();
        if std::env::var_os("HAC_WRITE_SCHEMA").is_some() {
            std::fs::write(path, &generated).unwrap();
        }
        let checked_in = std::fs::read_to_string(path).unwrap_or_default();
        assert!(
            checked_in == generated,
            "docs/control-schema.json is not what the protocol types generate: run \
             `HAC_WRITE_SCHEMA=1 cargo test -p hac-control schema` (or `hac ctl schema > docs/control-schema.json`)"
        );
    }

    #[test]
    fn every_operation_its_fields_and_every_error_code_are_in_the_schema() {
        let doc = document();
        let defs = &doc["$defs"];
        let variants = defs["Request"]["oneOf"].as_array().unwrap();
        for spec in OPS {
            let variant = variants
                .iter()
                .find(|v| v["properties"]["op"]["const"] == spec.name)
                .unwrap_or_else(|| panic!("{} missing from the Request schema", spec.name));
            for f in spec.fields {
                assert!(
                    variant["properties"].get(f.name).is_some(),
                    "{}.{}",
                    spec.name,
                    f.name
                );
            }
            assert_eq!(variant["additionalProperties"], Value::Bool(false));
            assert!(variant["properties"].get("id").is_some());
            let response = &defs[format!("Response_{}", spec.name)];
            let result = &response["oneOf"][0]["properties"]["result"]["$ref"];
            assert_eq!(
                result,
                &Value::from(format!("#/$defs/{}", spec.reply)),
                "{}",
                spec.name
            );
            assert!(defs.get(spec.reply).is_some(), "{}", spec.reply);
        }
        let text = doc.to_string();
        for code in crate::line::ErrorCode::ALL {
            assert!(text.contains(&format!("\"{code}\"")), "{code}");
        }
        assert_eq!(
            Op::ALL.len(),
            defs["Response"]["anyOf"].as_array().unwrap().len()
        );
    }
}
