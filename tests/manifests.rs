//! The deployment artifacts: every Kubernetes manifest in
//! `deploy/kubernetes` passes `kubernetes-validate --strict` for 1.33
//! (installed by `scripts/test-tools.sh`), the registry its ConfigMap
//! carries is one POP loads, and the Dockerfiles the README names exist.

use std::path::{Path, PathBuf};
use std::process::Command;

fn repository() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn manifests() -> Vec<PathBuf> {
    let dir = repository().join("deploy/kubernetes");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("deploy/kubernetes")
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        // Kustomize's own file is not a Kubernetes object.
        .filter(|p| p.file_name().is_some_and(|n| n != "kustomization.yaml"))
        .collect();
    files.sort();
    files
}

#[test]
fn every_manifest_passes_strict_validation_for_1_33() {
    let files = manifests();
    assert!(files.len() >= 5, "{files:?}");
    let output = Command::new("kubernetes-validate")
        .args(["-k", "1.33.0", "--strict"])
        .args(&files)
        .output()
        .expect("kubernetes-validate on PATH (scripts/test-tools.sh installs it)");
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    assert!(output.status.success(), "{text}");
    assert!(!text.contains("ERROR"), "{text}");
    // The kustomization names every manifest.
    let kustomization = std::fs::read_to_string(repository().join("deploy/kubernetes/kustomization.yaml")).unwrap();
    for file in &files {
        let name = file.file_name().unwrap().to_string_lossy();
        assert!(
            kustomization.contains(name.as_ref()),
            "kustomization.yaml misses {name}"
        );
    }
}

#[test]
fn the_configmaps_registry_is_one_pop_loads() {
    let text = std::fs::read_to_string(repository().join("deploy/kubernetes/configmap.yaml")).unwrap();
    let (_, block) = text.split_once("registry.json: |\n").expect("a registry.json key");
    let indent = block.len() - block.trim_start().len();
    let json: String = block
        .lines()
        .take_while(|l| l.trim().is_empty() || l.starts_with(&" ".repeat(indent)))
        .map(|l| l.get(indent..).unwrap_or(""))
        .collect::<Vec<_>>()
        .join("\n");
    let registry = pop_handlers_registry::Registry::from_json(&json).expect("a registry POP loads");
    assert!(matches!(
        registry.get("samplePod"),
        Some(pop_handlers_registry::HandlerSpec::Pod(_))
    ));
}

#[test]
fn the_dockerfiles_exist_and_build_what_the_manifests_run() {
    for (file, builds) in [
        ("deploy/docker/pop.Dockerfile", "--features kubernetes"),
        ("deploy/docker/pop-sample.Dockerfile", "--features kubernetes"),
    ] {
        let text = std::fs::read_to_string(repository().join(file)).unwrap_or_else(|e| panic!("{file}: {e}"));
        assert!(text.contains(builds), "{file} builds {builds}");
        assert!(
            text.contains("USER 10001"),
            "{file} runs as the non-root user the manifests expect"
        );
    }
}
