//! The dependency rule (`ARCHITECTURE.md`), checked on the workspace as
//! cargo resolves it: `core` ← `ports` ← adapters and `app` ← `http` ←
//! the binary; only adapters reach an engine's client crate; and no two
//! modules of a crate import each other.

use std::collections::{BTreeMap, BTreeSet};
use std::process::Command;

use serde_json::Value;

/// Client crates of engines: only the adapter crate of that engine may
/// depend on one.
const ENGINE_CLIENTS: &[&str] = &["rusqlite", "aws-sdk-", "aws-config", "kube", "k8s-openapi", "wasmtime"];

/// Which workspace crates each crate may depend on (normal dependencies).
fn allowed() -> BTreeMap<&'static str, &'static [&'static str]> {
    BTreeMap::from([
        ("pop-core", &[][..]),
        ("pop-builtin-plugins", &[][..]),
        ("pop-ports", &["pop-core"][..]),
        ("pop-memory", &["pop-core", "pop-ports"][..]),
        ("pop-store", &["pop-core", "pop-ports"][..]),
        ("pop-wasm", &["pop-core"][..]),
        ("pop-handler", &["pop-core"][..]),
        ("pop-handlers-registry", &["pop-core", "pop-handler"][..]),
        ("pop-token-file", &["pop-core", "pop-ports"][..]),
        ("pop-offload", &["pop-core", "pop-ports"][..]),
        (
            "pop-process-launcher",
            &["pop-core", "pop-ports", "pop-handlers-registry"][..],
        ),
        (
            "pop-app",
            &[
                "pop-core",
                "pop-ports",
                "pop-wasm",
                "pop-builtin-plugins",
                "pop-handlers-registry",
            ][..],
        ),
        ("pop-http", &["pop-core", "pop-ports", "pop-app"][..]),
        (
            "pop-kube",
            &["pop-core", "pop-ports", "pop-handler", "pop-handlers-registry"][..],
        ),
        ("pop-kube-fake", &[][..]),
        ("pop-dynamodb", &["pop-core", "pop-ports"][..]),
        ("pop-s3", &["pop-ports"][..]),
        ("pop-test-moto", &[][..]),
        ("pop-jwt", &["pop-core", "pop-ports"][..]),
    ])
}

/// Engine clients each adapter crate may use.
fn engines_of(package: &str) -> &'static [&'static str] {
    match package {
        "pop-store" => &["rusqlite"],
        "pop-wasm" => &["wasmtime"],
        "pop-kube" => &["kube", "k8s-openapi"],
        "pop-dynamodb" | "pop-s3" => &["aws-sdk-", "aws-config"],
        // Test infrastructure: an SDK configuration for moto.
        "pop-test-moto" => &["aws-config"],
        // Optional, feature `kubernetes`: a handler reporting onto its own pod.
        "pop-handler" => &["kube", "k8s-openapi"],
        _ => &[],
    }
}

fn workspace() -> BTreeMap<String, BTreeSet<String>> {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    assert!(output.status.success(), "{}", String::from_utf8_lossy(&output.stderr));
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let mut packages = BTreeMap::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let deps = package["dependencies"]
            .as_array()
            .expect("dependencies")
            .iter()
            // Normal and build dependencies; dev-dependencies (test fakes,
            // conformance suites) are not part of what ships.
            .filter(|d| d["kind"].as_str() != Some("dev"))
            .filter_map(|d| d["name"].as_str().map(String::from))
            .collect();
        packages.insert(package["name"].as_str().expect("name").to_owned(), deps);
    }
    packages
}

#[test]
fn crates_depend_only_inwards() {
    let packages = workspace();
    let members: BTreeSet<&String> = packages.keys().collect();
    let rules = allowed();
    for (package, deps) in &packages {
        let internal: BTreeSet<&str> = deps
            .iter()
            .filter(|d| members.contains(d))
            .map(String::as_str)
            .collect();
        if let Some(allowed) = rules.get(package.as_str()) {
            let extra: Vec<_> = internal.iter().filter(|d| !allowed.contains(d)).collect();
            assert!(extra.is_empty(), "{package} may not depend on {extra:?}");
        }
        for dep in deps {
            let engine = ENGINE_CLIENTS.iter().find(|prefix| dep.starts_with(**prefix));
            if let Some(engine) = engine {
                assert!(
                    engines_of(package).contains(engine),
                    "{package} depends on the engine client {dep}: only its adapter crate may"
                );
            }
        }
    }
    for required in rules.keys() {
        assert!(packages.contains_key(*required), "{required} is not in the workspace");
    }
}

#[test]
fn the_ports_and_the_application_name_no_engine() {
    let packages = workspace();
    let rules: [(&str, &[&str]); 3] = [
        (
            "pop-ports",
            &["axum", "reqwest", "rusqlite", "wasmtime", "kube", "hyper"],
        ),
        // The application reaches wasmtime only through pop-wasm, HTTP only
        // through the ports' request parts.
        (
            "pop-app",
            &["axum", "reqwest", "rusqlite", "wasmtime", "kube", "hyper", "aws-config"],
        ),
        ("pop-http", &["reqwest", "rusqlite", "wasmtime", "kube", "aws-config"]),
    ];
    for (package, forbidden) in rules {
        for dep in &packages[package] {
            assert!(
                !forbidden.iter().any(|f| dep.starts_with(f)) && !dep.starts_with("aws-sdk-"),
                "{package} depends on {dep}"
            );
        }
    }
}

/// Module paths of a crate's source files: `lib.rs`/`main.rs` is the root
/// (empty path), `a/mod.rs` and `a.rs` are `a`, `a/b.rs` is `a::b`.
fn module_files(src: &std::path::Path) -> BTreeMap<Vec<String>, String> {
    fn walk(dir: &std::path::Path, prefix: &[String], out: &mut BTreeMap<Vec<String>, String>) {
        let mut entries: Vec<_> = std::fs::read_dir(dir).expect("read src").flatten().collect();
        entries.sort_by_key(|e| e.path());
        for entry in entries {
            let path = entry.path();
            let name = path.file_stem().and_then(|s| s.to_str()).unwrap_or_default().to_owned();
            if path.is_dir() {
                if prefix.is_empty() && name == "bin" {
                    continue; // each file there is a crate root of its own
                }
                let mut inner = prefix.to_vec();
                inner.push(name);
                walk(&path, &inner, out);
            } else if path.extension().is_some_and(|e| e == "rs") {
                let mut module = prefix.to_vec();
                let is_main = prefix.is_empty() && name == "main";
                let is_root = is_main || (prefix.is_empty() && name == "lib");
                if name != "mod" && !is_root {
                    module.push(name);
                }
                if is_main && out.contains_key(&module) {
                    continue; // a crate with both: the library is the root
                }
                out.insert(module, std::fs::read_to_string(&path).expect("read source"));
            }
        }
    }
    let mut out = BTreeMap::new();
    walk(src, &[], &mut out);
    out
}

/// The paths a file names through `crate::` or `super::` outside its tests
/// and comments, each as absolute segments (`use crate::a::{b, c::d}` names
/// `a::b` and `a::c::d`).
fn referenced_paths(module: &[String], source: &str) -> Vec<Vec<String>> {
    let code: String = source
        .split("#[cfg(test)]")
        .next()
        .unwrap_or_default()
        .lines()
        .filter(|line| !line.trim_start().starts_with("//"))
        .collect::<Vec<_>>()
        .join("\n");
    let bytes = code.as_bytes();
    let ident = |b: u8| b.is_ascii_alphanumeric() || b == b'_';
    let mut found = Vec::new();
    let mut at = 0;
    while at < bytes.len() {
        let rest = &bytes[at..];
        let starts = (rest.starts_with(b"crate::") || rest.starts_with(b"super::"))
            && (at == 0 || !ident(bytes[at - 1]) && bytes[at - 1] != b':');
        if !starts {
            at += 1;
            continue;
        }
        // Segments up to a `{`, a non-path character or the end.
        let mut end = at;
        while end < bytes.len() && (ident(bytes[end]) || bytes[end] == b':') {
            end += 1;
        }
        let mut segments: Vec<&str> = code[at..end].split("::").filter(|s| !s.is_empty()).collect();
        // `super` counts up from the module the file defines.
        let mut base: Vec<String> = Vec::new();
        if segments.first() == Some(&"crate") {
            segments.remove(0);
        } else {
            base = module.to_vec();
            while segments.first() == Some(&"super") {
                segments.remove(0);
                base.pop();
            }
        }
        let mut prefix = base;
        prefix.extend(segments.iter().map(|s| s.to_string()));
        if end < bytes.len() && bytes[end] == b'{' {
            // Top-level items of the group: their first segment.
            let mut depth = 0;
            let mut item = String::new();
            let mut close = end;
            for (offset, c) in code[end..].char_indices() {
                match c {
                    '{' => depth += 1,
                    '}' => depth -= 1,
                    _ => {}
                }
                if depth == 1 && (c.is_alphanumeric() || c == '_') {
                    item.push(c);
                } else if !item.is_empty() {
                    let mut path = prefix.clone();
                    path.push(std::mem::take(&mut item));
                    found.push(path);
                    // Skip the rest of this item (`c::d`, `self as x`, a group).
                }
                if depth == 0 {
                    close = end + offset;
                    break;
                }
                if depth > 1 || c == ':' {
                    item.clear();
                }
            }
            end = close.max(end + 1);
        }
        found.push(prefix);
        at = end;
    }
    found
}

/// The longest known module path that `path` starts with.
fn resolve(modules: &BTreeSet<Vec<String>>, path: &[String]) -> Vec<String> {
    (0..=path.len())
        .rev()
        .map(|n| path[..n].to_vec())
        .find(|prefix| modules.contains(prefix))
        .unwrap_or_default()
}

/// A cycle in `edges`, if any, as the modules along it.
fn find_cycle(edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>) -> Option<Vec<Vec<String>>> {
    fn visit(
        node: &Vec<String>,
        edges: &BTreeMap<Vec<String>, BTreeSet<Vec<String>>>,
        state: &mut BTreeMap<Vec<String>, bool>,
        stack: &mut Vec<Vec<String>>,
    ) -> Option<Vec<Vec<String>>> {
        match state.get(node) {
            Some(true) => return None,
            Some(false) => {
                let from = stack.iter().position(|n| n == node).unwrap_or(0);
                let mut cycle = stack[from..].to_vec();
                cycle.push(node.clone());
                return Some(cycle);
            }
            None => {}
        }
        state.insert(node.clone(), false);
        stack.push(node.clone());
        for next in edges.get(node).into_iter().flatten() {
            if let Some(cycle) = visit(next, edges, state, stack) {
                return Some(cycle);
            }
        }
        stack.pop();
        state.insert(node.clone(), true);
        None
    }
    let mut state = BTreeMap::new();
    for node in edges.keys() {
        if let Some(cycle) = visit(node, edges, &mut state, &mut Vec::new()) {
            return Some(cycle);
        }
    }
    None
}

/// No two modules of a crate import each other, directly or around a loop,
/// at any level: an edge from `a::x` to `b::y` is an edge between the
/// siblings `a` and `b`; a module using its parent's or its children's items
/// is not a cycle. Test modules may reach anywhere.
#[test]
fn no_module_import_cycles() {
    let output = Command::new(env!("CARGO"))
        .args(["metadata", "--format-version", "1", "--no-deps", "--offline"])
        .current_dir(env!("CARGO_MANIFEST_DIR"))
        .output()
        .expect("cargo metadata runs");
    let metadata: Value = serde_json::from_slice(&output.stdout).expect("cargo metadata prints JSON");
    let mut checked = 0;
    let mut cycles = Vec::new();
    for package in metadata["packages"].as_array().expect("packages") {
        let manifest = std::path::Path::new(package["manifest_path"].as_str().expect("manifest"));
        let src = manifest.parent().expect("crate dir").join("src");
        if !src.is_dir() {
            continue;
        }
        let files = module_files(&src);
        let modules: BTreeSet<Vec<String>> = files.keys().cloned().collect();
        let mut edges: BTreeMap<Vec<String>, BTreeSet<Vec<String>>> = BTreeMap::new();
        for (module, source) in &files {
            for path in referenced_paths(module, source) {
                let target = resolve(&modules, &path);
                let common = module.iter().zip(&target).take_while(|(a, b)| a == b).count();
                if common == module.len() || common == target.len() {
                    continue; // within one branch: parent and child
                }
                edges
                    .entry(module[..=common].to_vec())
                    .or_default()
                    .insert(target[..=common].to_vec());
            }
        }
        let name = package["name"].as_str().unwrap_or_default();
        if let Some(cycle) = find_cycle(&edges) {
            let shown: Vec<String> = cycle.iter().map(|m| m.join("::")).collect();
            cycles.push(format!("{name}: {}", shown.join(" → ")));
        }
        checked += 1;
    }
    assert!(cycles.is_empty(), "modules import each other:\n{}", cycles.join("\n"));
    assert!(checked >= 8, "only {checked} crates were checked");
}
