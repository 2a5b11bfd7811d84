//! The dependency rule (`ARCHITECTURE.md`), checked on the workspace as
//! cargo resolves it: `core` ← `ports` ← adapters and the application ←
//! the binary; only adapters reach an engine's client crate.

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
        ("pop-handlers-registry", &["pop-core"][..]),
    ])
}

/// Engine clients each adapter crate may use.
fn engines_of(package: &str) -> &'static [&'static str] {
    match package {
        "pop-store" => &["rusqlite"],
        "pop-wasm" => &["wasmtime"],
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
fn the_ports_name_no_engine() {
    let packages = workspace();
    let ports = &packages["pop-ports"];
    for forbidden in ["axum", "reqwest", "rusqlite", "wasmtime", "kube", "hyper"] {
        assert!(!ports.contains(forbidden), "pop-ports depends on {forbidden}");
    }
}
