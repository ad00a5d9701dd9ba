//! The model's modules form layers: no module reaches back into one that uses it.
//!
//! Reads the crate's own sources, collects which top-level module names which other
//! (`crate::x::...`, `crate::{x::..}`, `super::...` in a module directory, and the root's
//! re-exports such as `crate::Nic`, which count as the module they come from), and checks that
//! the graph has no cycle. The TX and RX engines and the switch get their inputs as a
//! `Datapath`; a change that makes one of them use the device again fails here.
#![allow(clippy::unwrap_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};

fn src_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src")
}

/// Source text without `//` comments (line and doc comments).
fn code(path: &Path) -> String {
    let text = std::fs::read_to_string(path).unwrap();
    text.lines()
        .map(|l| match l.find("//") {
            Some(i) => &l[..i],
            None => l,
        })
        .collect::<Vec<_>>()
        .join("\n")
}

/// The first path segments named after `prefix` (`crate::`), expanding one `{...}` group.
fn first_segments(code: &str, prefix: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut rest = code;
    while let Some(i) = rest.find(prefix) {
        rest = &rest[i + prefix.len()..];
        let rest_trim = rest.trim_start();
        if let Some(group) = rest_trim.strip_prefix('{') {
            // Top-level items of the group: split on commas at depth 0.
            let mut depth = 0;
            let mut item = String::new();
            for c in group.chars() {
                match c {
                    '{' => depth += 1,
                    '}' if depth == 0 => break,
                    '}' => depth -= 1,
                    ',' if depth == 0 => {
                        out.push(std::mem::take(&mut item));
                        continue;
                    }
                    _ => {}
                }
                item.push(c);
            }
            out.push(item);
        } else {
            out.push(rest_trim.to_string());
        }
    }
    out.into_iter()
        .map(|s| {
            s.trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect::<String>()
        })
        .filter(|s| !s.is_empty())
        .collect()
}

/// Top-level modules: `src/x.rs` and `src/x/mod.rs`, with their files.
fn modules() -> BTreeMap<String, Vec<PathBuf>> {
    let mut m: BTreeMap<String, Vec<PathBuf>> = BTreeMap::new();
    for entry in std::fs::read_dir(src_dir()).unwrap() {
        let path = entry.unwrap().path();
        let name = path
            .file_stem()
            .and_then(|s| s.to_str())
            .unwrap()
            .to_string();
        if path.is_dir() {
            let files = std::fs::read_dir(&path)
                .unwrap()
                .map(|e| e.unwrap().path())
                .filter(|p| p.extension().is_some_and(|e| e == "rs"))
                .collect();
            m.insert(name, files);
        } else if name != "lib" && path.extension().is_some_and(|e| e == "rs") {
            m.insert(name, vec![path]);
        }
    }
    m
}

/// Names the crate root re-exports, and the module each comes from (`pub use nic::{Nic}`).
fn root_reexports(mods: &BTreeMap<String, Vec<PathBuf>>) -> BTreeMap<String, String> {
    let lib = code(&src_dir().join("lib.rs"));
    let mut out = BTreeMap::new();
    for stmt in lib.split(';') {
        let stmt = stmt.trim();
        let Some(path) = stmt.strip_prefix("pub use ") else {
            continue;
        };
        let Some((module, items)) = path.split_once("::") else {
            continue;
        };
        if !mods.contains_key(module) {
            continue;
        }
        let items = items.trim().trim_start_matches('{').trim_end_matches('}');
        for item in items.split(',') {
            let name: String = item
                .trim()
                .chars()
                .take_while(|c| c.is_alphanumeric() || *c == '_')
                .collect();
            if !name.is_empty() {
                out.insert(name, module.to_string());
            }
        }
    }
    out
}

fn graph() -> BTreeMap<String, BTreeSet<String>> {
    let mods = modules();
    let reexports = root_reexports(&mods);
    let mut g = BTreeMap::new();
    for (name, files) in &mods {
        let mut uses = BTreeSet::new();
        for f in files {
            for seg in first_segments(&code(f), "crate::") {
                let target = if mods.contains_key(&seg) {
                    Some(seg)
                } else {
                    reexports.get(&seg).cloned()
                };
                if let Some(t) = target.filter(|t| t != name) {
                    uses.insert(t);
                }
            }
        }
        g.insert(name.clone(), uses);
    }
    g
}

fn find_cycle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        n: &str,
        g: &BTreeMap<String, BTreeSet<String>>,
        stack: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(i) = stack.iter().position(|s| s == n) {
            let mut cycle = stack[i..].to_vec();
            cycle.push(n.to_string());
            return Some(cycle);
        }
        if done.contains(n) {
            return None;
        }
        stack.push(n.to_string());
        for m in g.get(n).into_iter().flatten() {
            if let Some(c) = visit(m, g, stack, done) {
                return Some(c);
            }
        }
        stack.pop();
        done.insert(n.to_string());
        None
    }
    let mut done = BTreeSet::new();
    for n in g.keys() {
        if let Some(c) = visit(n, g, &mut Vec::new(), &mut done) {
            return Some(c);
        }
    }
    None
}

#[test]
fn the_module_graph_has_no_cycle() {
    let g = graph();
    for (m, uses) in &g {
        println!(
            "{m} -> {}",
            uses.iter().cloned().collect::<Vec<_>>().join(", ")
        );
    }
    assert_eq!(
        find_cycle(&g),
        None,
        "import cycle between the model's modules"
    );
}

#[test]
fn the_engines_do_not_use_the_device() {
    let g = graph();
    for engine in ["tx", "rx", "switch", "datapath", "regfile", "msix"] {
        let uses = g
            .get(engine)
            .unwrap_or_else(|| panic!("module {engine} exists"));
        assert!(!uses.contains("nic"), "{engine} uses nic: {uses:?}");
    }
}

#[test]
fn the_checker_sees_uses_and_cycles() {
    let segs = first_segments(
        "use crate::{a::{B, C}, d};\nlet x = crate::e::f();",
        "crate::",
    );
    assert_eq!(segs, ["a", "d", "e"]);
    let mut g = BTreeMap::new();
    g.insert("a".to_string(), BTreeSet::from(["b".to_string()]));
    g.insert("b".to_string(), BTreeSet::from(["a".to_string()]));
    assert_eq!(
        find_cycle(&g),
        Some(vec!["a".to_string(), "b".to_string(), "a".to_string()])
    );
}
