//! No crate of the workspace has an import circle between its top-level modules: a module is
//! `src/NAME.rs` or `src/NAME/`, and it uses module B when a line of it (outside `//`
//! comments) names `crate::B`. The 82576 model has a stricter rule of its own
//! (`nic-model/igb/tests/module_layers.rs`: the engines never use the device).
#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::collections::{BTreeMap, BTreeSet};
use std::fs;
use std::path::{Path, PathBuf};

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Every directory with a Cargo.toml and a src/ below the workspace (not target/, fuzz/).
fn crates(dir: &Path, out: &mut Vec<PathBuf>) {
    if dir.join("Cargo.toml").is_file() && dir.join("src").is_dir() {
        out.push(dir.to_path_buf());
    }
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        let name = e.file_name();
        if p.is_dir() && !matches!(name.to_str(), Some("target" | "fuzz" | ".git" | "src")) {
            crates(&p, out);
        }
    }
}

fn rust_files(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap().flatten() {
        let p = e.path();
        if p.is_dir() {
            rust_files(&p, out);
        } else if p.extension().is_some_and(|x| x == "rs") {
            out.push(p);
        }
    }
}

/// module → modules it names as `crate::X`.
fn graph(src: &Path) -> BTreeMap<String, BTreeSet<String>> {
    let mut files = Vec::new();
    rust_files(src, &mut files);
    let mut g: BTreeMap<String, BTreeSet<String>> = BTreeMap::new();
    for f in files {
        let rel = f.strip_prefix(src).unwrap();
        let first = rel
            .components()
            .next()
            .unwrap()
            .as_os_str()
            .to_string_lossy();
        let module = first.trim_end_matches(".rs").to_string();
        if module == "lib" || module == "main" {
            continue;
        }
        let uses = g.entry(module.clone()).or_default();
        for line in fs::read_to_string(&f).unwrap().lines() {
            let code = line.split("//").next().unwrap_or("");
            for (i, _) in code.match_indices("crate::") {
                let used: String = code[i + 7..]
                    .chars()
                    .take_while(|c| c.is_alphanumeric() || *c == '_')
                    .collect();
                if !used.is_empty() && used != module {
                    uses.insert(used);
                }
            }
        }
    }
    g
}

/// A circle in `g`, if there is one.
fn circle(g: &BTreeMap<String, BTreeSet<String>>) -> Option<Vec<String>> {
    fn visit(
        g: &BTreeMap<String, BTreeSet<String>>,
        v: &str,
        path: &mut Vec<String>,
        done: &mut BTreeSet<String>,
    ) -> Option<Vec<String>> {
        if let Some(at) = path.iter().position(|p| p == v) {
            return Some(path[at..].to_vec());
        }
        if done.contains(v) {
            return None;
        }
        path.push(v.to_string());
        for w in g
            .get(v)
            .into_iter()
            .flatten()
            .filter(|w| g.contains_key(*w))
        {
            if let Some(c) = visit(g, w, path, done) {
                return Some(c);
            }
        }
        path.pop();
        done.insert(v.to_string());
        None
    }
    let mut done = BTreeSet::new();
    g.keys()
        .find_map(|v| visit(g, v, &mut Vec::new(), &mut done))
}

#[test]
fn no_crate_has_an_import_circle_between_its_modules() {
    let mut found = Vec::new();
    crates(&workspace(), &mut found);
    assert!(
        found.len() >= 10,
        "the walk found the workspace's crates: {found:?}"
    );
    let circles: Vec<String> = found
        .iter()
        .filter_map(|c| {
            circle(&graph(&c.join("src"))).map(|cy| format!("{}: {}", c.display(), cy.join(" -> ")))
        })
        .collect();
    assert!(circles.is_empty(), "import circles: {circles:#?}");
}

#[test]
fn the_checker_sees_a_circle() {
    let g: BTreeMap<String, BTreeSet<String>> = [
        ("a", vec!["b"]),
        ("b", vec!["c"]),
        ("c", vec!["a", "outside"]),
        ("d", vec!["a"]),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v.into_iter().map(String::from).collect()))
    .collect();
    let c = circle(&g).unwrap();
    assert_eq!(c.len(), 3);
    let mut acyclic = g.clone();
    acyclic.get_mut("c").unwrap().remove("a");
    assert_eq!(circle(&acyclic), None);
}
