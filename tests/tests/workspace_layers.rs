//! The workspace's layers hold: every crate depends only on the crates docs/architecture.md
//! allows it, and no crate has an import circle between its top-level modules: a module is
//! `src/NAME.rs` or `src/NAME/`, and it uses module B when a line of it (outside `//`
//! comments, unit tests and `$crate::` paths in macro bodies) names `crate::B`. The 82576 model has a stricter rule of its own
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
        // Unit tests (the `#[cfg(test)]` or `#[cfg(all(test, …))]` module at the end of a
        // file) may use any module.
        for line in fs::read_to_string(&f).unwrap().lines().take_while(|l| {
            let l = l.trim();
            l != "#[cfg(test)]" && !l.starts_with("#[cfg(all(test,")
        }) {
            let code = line.split("//").next().unwrap_or("");
            // `$crate::` inside a macro body names items for the expansion site, not a use
            // of the macro's own module.
            for (i, _) in code
                .match_indices("crate::")
                .filter(|(i, _)| !code[..*i].ends_with('$'))
            {
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

/// The layers of docs/architecture.md: which workspace crates each crate's normal
/// dependencies may name (`None`: any).
const LAYERS: &[(&str, Option<&[&str]>)] = &[
    ("hw-common", Some(&[])),
    ("igb-hw", Some(&["hw-common"])),
    ("mlx5-hw", Some(&["hw-common"])),
    ("adapter-core", Some(&["hw-common"])),
    ("igb-model", Some(&["igb-hw", "adapter-core"])),
    (
        "mlx5-model",
        Some(&["mlx5-hw", "adapter-core", "hw-common"]),
    ),
    ("hac-sys", Some(&["hw-common"])),
    (
        "hac-driver",
        Some(&[
            "hw-common",
            "igb-hw",
            "mlx5-hw",
            "adapter-core",
            "hac-sys",
            "igb-model",
            "mlx5-model",
        ]),
    ),
    ("hac-control", Some(&[])),
    ("hac-vfio-user", Some(&["hac-sys", "hw-common"])),
    (
        "hac-ha",
        Some(&[
            "hac-driver",
            "igb-hw",
            "igb-model",
            "adapter-core",
            "hac-sys",
        ]),
    ),
    (
        "hac-utility",
        Some(&[
            "hw-common",
            "igb-hw",
            "adapter-core",
            "igb-model",
            "mlx5-hw",
            "mlx5-model",
            "hac-driver",
            "hac-control",
            "hac-vfio-user",
            "hac-ha",
            "hac-sys",
        ]),
    ),
    ("hac-lab", None),
    ("hac-tests", None),
];

/// (package name, names in its `[dependencies]` table).
fn manifest(dir: &Path) -> (String, Vec<String>) {
    let text = fs::read_to_string(dir.join("Cargo.toml")).unwrap();
    let (mut name, mut deps, mut section) = (String::new(), Vec::new(), String::new());
    for line in text.lines().map(str::trim) {
        if line.starts_with('[') {
            section = line.to_string();
        } else if let Some((key, value)) = line.split_once('=') {
            let key = key.trim().trim_end_matches(".workspace").to_string();
            if section == "[package]" && key == "name" {
                name = value.trim().trim_matches('"').to_string();
            } else if section == "[dependencies]" {
                deps.push(key);
            }
        }
    }
    (name, deps)
}

#[test]
fn every_crate_depends_only_on_the_layers_below_it() {
    let mut found = Vec::new();
    crates(&workspace(), &mut found);
    let manifests: Vec<(String, Vec<String>)> = found.iter().map(|d| manifest(d)).collect();
    let ours: BTreeSet<&str> = manifests.iter().map(|(n, _)| n.as_str()).collect();
    let mut wrong = Vec::new();
    for (name, deps) in &manifests {
        let Some((_, allowed)) = LAYERS.iter().find(|(n, _)| n == name) else {
            wrong.push(format!(
                "{name}: not in the layer table (docs/architecture.md)"
            ));
            continue;
        };
        let Some(allowed) = allowed else { continue };
        for d in deps.iter().filter(|d| ours.contains(d.as_str())) {
            if !allowed.contains(&d.as_str()) {
                wrong.push(format!("{name} depends on {d}"));
            }
        }
    }
    assert!(
        wrong.is_empty(),
        "dependencies against the layers: {wrong:#?}"
    );
}
