//! Architecture rules, checked from `cargo metadata` and the source tree.
//!
//! The dependency direction is the design: `domain` <- `ports` <- `adapters`, `web` <- `xtask`.
//! These tests fail when a `Cargo.toml` line breaks it, and say which line.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::Command;

fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// Each workspace crate's normal (non-dev) dependencies, by crate name.
fn dependencies() -> BTreeMap<String, Vec<String>> {
    let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".to_owned());
    let output = Command::new(cargo)
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(workspace_root())
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: serde_json::Value = serde_json::from_slice(&output.stdout).expect("metadata is JSON");
    metadata["packages"]
        .as_array()
        .expect("packages")
        .iter()
        .map(|package| {
            let deps = package["dependencies"]
                .as_array()
                .expect("dependencies")
                .iter()
                .filter(|dep| dep["kind"].is_null())
                .map(|dep| dep["name"].as_str().expect("name").to_owned())
                .collect();
            (package["name"].as_str().expect("name").to_owned(), deps)
        })
        .collect()
}

#[test]
fn internal_dependencies_point_one_way() {
    let internal = ["domain", "ports", "i18n", "adapters", "web", "xtask"];
    let allowed: BTreeMap<&str, &[&str]> = BTreeMap::from([
        ("domain", &[][..]),
        ("ports", &["domain"][..]),
        // Translations are a leaf: the pages (web) and the emails (adapters) both use them.
        ("i18n", &[][..]),
        ("adapters", &["domain", "ports", "i18n"][..]),
        ("web", &["domain", "ports", "i18n"][..]),
        ("xtask", &["domain", "ports", "i18n", "adapters", "web"][..]),
    ]);
    let deps = dependencies();
    for (krate, may_use) in &allowed {
        let uses = deps.get(*krate).unwrap_or_else(|| panic!("crate {krate} is missing from the workspace"));
        for dep in uses.iter().filter(|d| internal.contains(&d.as_str())) {
            assert!(may_use.contains(&dep.as_str()), "`{krate}` must not depend on `{dep}` (see docs/architecture.md)");
        }
    }
}

#[test]
fn the_core_crates_do_no_io_and_know_no_framework() {
    let forbidden: [(&str, &[&str]); 4] = [
        (
            "domain",
            &[
                "tokio",
                "sqlx",
                "poem",
                "poem-openapi",
                "lettre",
                "reqwest",
                "tera",
                "serde",
                "getrandom",
                "async-trait",
            ],
        ),
        ("ports", &["tokio", "sqlx", "poem", "poem-openapi", "lettre", "reqwest", "tera", "serde"]),
        ("web", &["sqlx", "lettre", "reqwest", "adapters"]),
        ("i18n", &["tokio", "sqlx", "poem", "lettre", "reqwest"]),
    ];
    let deps = dependencies();
    for (krate, banned) in forbidden {
        for dep in &deps[krate] {
            assert!(!banned.contains(&dep.as_str()), "`{krate}` must not depend on `{dep}` (see docs/architecture.md)");
        }
    }
}

fn rust_files(folder: &Path, out: &mut Vec<PathBuf>) {
    for entry in std::fs::read_dir(folder).expect("readable folder").flatten() {
        let path = entry.path();
        if path.is_dir() {
            rust_files(&path, out);
        } else if path.extension().is_some_and(|e| e == "rs") {
            out.push(path);
        }
    }
}

/// Every source file says what it is for in its first line (rust-analyzer's tidy rule).
#[test]
fn every_source_file_starts_with_a_module_doc() {
    let root = workspace_root();
    let mut files = Vec::new();
    for folder in ["crates", "xtask", "tests"] {
        rust_files(&root.join(folder), &mut files);
    }
    let missing: Vec<String> = files
        .iter()
        .filter(|file| !std::fs::read_to_string(file).is_ok_and(|text| text.starts_with("//!")))
        .map(|file| file.strip_prefix(&root).unwrap_or(file).display().to_string())
        .collect();
    assert!(files.len() > 20, "found only {} source files", files.len());
    assert!(missing.is_empty(), "files without a `//!` first line: {missing:?}");
}

/// The threat table in `docs/security.md` names the tests that show each control; every one it
/// names (`file.rs::test_name`) must exist, so the table cannot drift from the suite.
#[test]
fn every_test_the_threat_table_names_exists() {
    let root = workspace_root();
    let security = std::fs::read_to_string(root.join("docs/security.md")).expect("docs/security.md");
    let mut files = Vec::new();
    for folder in ["crates", "xtask", "tests"] {
        rust_files(&root.join(folder), &mut files);
    }
    let sources: Vec<String> = files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect();
    let named: Vec<&str> =
        security.split('`').filter_map(|span| span.split_once(".rs::").map(|(_, test)| test)).collect();
    assert!(named.len() >= 20, "the table names only {} tests", named.len());
    for test in named {
        let declared = format!("fn {test}(");
        assert!(
            sources.iter().any(|source| source.contains(&declared)),
            "docs/security.md names `{test}`, which does not exist"
        );
    }
}

/// The `crate::` modules a source file uses in code (comments, doc links included, do not
/// count): `crate::x` paths and the names in `use crate::{x, y::z}`.
fn modules_used(source: &str) -> std::collections::BTreeSet<String> {
    let code: String =
        source.lines().filter(|line| !line.trim_start().starts_with("//")).map(|line| format!("{line}\n")).collect();
    let ident =
        |text: &str| -> String { text.chars().take_while(|c| c.is_ascii_alphanumeric() || *c == '_').collect() };
    let mut used = std::collections::BTreeSet::new();
    for (at, _) in code.match_indices("crate::") {
        let rest = &code[at + "crate::".len()..];
        if let Some(group) = rest.strip_prefix('{') {
            let group = &group[..group.find('}').unwrap_or(group.len())];
            used.extend(group.split(',').map(|item| ident(item.trim())).filter(|name| !name.is_empty()));
        } else {
            used.insert(ident(rest));
        }
    }
    used
}

/// The top-level modules of the crate whose sources are in `src`, each with the other
/// top-level modules it uses: a module is `name.rs` or the folder `name/` (with every file in
/// it), and it uses what any of its files names as `crate::...`.
fn module_graph(src: &Path) -> BTreeMap<String, Vec<String>> {
    let mut sources: BTreeMap<String, String> = BTreeMap::new();
    for entry in std::fs::read_dir(src).expect("the crate's sources") {
        let path = entry.expect("entry").path();
        let Some(name) = path.file_stem().and_then(|s| s.to_str()).map(str::to_owned) else { continue };
        if path.is_dir() {
            let mut files = Vec::new();
            rust_files(&path, &mut files);
            let text = files.iter().filter_map(|f| std::fs::read_to_string(f).ok()).collect::<Vec<_>>().join("\n");
            sources.entry(name).or_default().push_str(&text);
        } else if path.extension().is_some_and(|ext| ext == "rs") && !matches!(name.as_str(), "lib" | "main") {
            sources.entry(name).or_default().push_str(&std::fs::read_to_string(&path).expect("readable"));
        }
    }
    let names: Vec<String> = sources.keys().cloned().collect();
    sources
        .iter()
        .map(|(module, text)| {
            let used = modules_used(text).into_iter().filter(|name| name != module && names.contains(name)).collect();
            (module.clone(), used)
        })
        .collect()
}

/// The first cycle among `graph`'s modules, as `a -> b -> a`, if any.
fn first_cycle(graph: &BTreeMap<String, Vec<String>>) -> Option<String> {
    // Depth-first search; a module met again while still on the path closes a cycle.
    fn visit(
        module: &str,
        graph: &BTreeMap<String, Vec<String>>,
        path: &mut Vec<String>,
        done: &mut Vec<String>,
    ) -> Option<String> {
        if done.iter().any(|m| m == module) {
            return None;
        }
        if let Some(start) = path.iter().position(|m| m == module) {
            return Some(format!("{} -> {module}", path[start..].join(" -> ")));
        }
        path.push(module.to_owned());
        for next in graph.get(module).into_iter().flatten() {
            if let Some(cycle) = visit(next, graph, path, done) {
                return Some(cycle);
            }
        }
        path.pop();
        done.push(module.to_owned());
        None
    }
    let mut done = Vec::new();
    graph.keys().find_map(|module| visit(module, graph, &mut Vec::new(), &mut done))
}

/// In every crate, the top-level modules use each other without a cycle (web's auth, errors
/// and pages once formed one; so did adapters' sql and sqlite, and xtask's cli, settings and
/// wiring): what a module builds on sits below it, and can be read without it.
#[test]
fn every_crates_modules_use_each_other_without_a_cycle() {
    let root = workspace_root();
    let mut crates: Vec<PathBuf> = std::fs::read_dir(root.join("crates"))
        .expect("crates/")
        .map(|entry| entry.expect("entry").path().join("src"))
        .collect();
    crates.push(root.join("xtask/src"));
    crates.sort();
    let mut cycles = Vec::new();
    for src in &crates {
        let graph = module_graph(src);
        if let Some(cycle) = first_cycle(&graph) {
            cycles.push(format!("{}: {cycle}", src.display()));
        }
    }
    let web = module_graph(&root.join("crates/web/src"));
    assert!(web["auth"].contains(&"errors".to_owned()), "the scan sees real uses: {web:?}");
    assert!(cycles.is_empty(), "modules that use each other in a circle:\n{}", cycles.join("\n"));
}
