//! Builds the guest workspace (`plugins/Cargo.toml`: the SDK, the built-in schedulers, insight
//! mapper and visibility policy, the examples and the test fixtures) into WebAssembly
//! components, and copies the `.wasm` files into `OUT_DIR` for `src/lib.rs` to embed.
//!
//! One nested `cargo build --release --target wasm32-wasip2 --workspace`, in its own target
//! dir (`target/wasm-guests`) so it never waits on the outer build's lock, with the outer
//! build's compiler but none of its wrappers, flags or jobserver.

use std::env;
use std::ffi::OsString;
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

const TARGET: &str = "wasm32-wasip2";

/// Every component the guest workspace produces, by file stem (the crate name with `_`).
const COMPONENTS: &[&str] = &[
    "pop_scheduler_fifo",
    "pop_scheduler_round_robin",
    "pop_scheduler_priority",
    "pop_scheduler_weighted_fair",
    "pop_insight_mapper",
    "pop_visibility",
    "pop_sample_handler_wasm",
    "pop_example_newest_first",
    "pop_example_by_title",
    "pop_example_partner_visibility",
    "pop_example_uppercase",
    "pop_fixture_spin",
    "pop_fixture_memory_bomb",
    "pop_fixture_stack_overflow",
    "pop_fixture_trap",
    "pop_fixture_bad_output",
    "pop_fixture_wrong_world",
    "pop_fixture_echo_state",
    "pop_fixture_first_pending",
    "pop_fixture_last_pending",
    "pop_fixture_trap_when_busy",
    "pop_fixture_call_counter",
    "pop_fixture_legacy_round_robin",
    "pop_fixture_legacy_visibility",
    "pop_fixture_progress_flood",
    "pop_fixture_spin_when_busy",
    "pop_fixture_deny_all",
    "pop_fixture_huge_state",
];

/// Inputs of the guest build, relative to the repository root.
const INPUTS: &[&str] = &[
    "plugins/Cargo.toml",
    "plugins/Cargo.lock",
    "plugins/.cargo/config.toml",
    "plugins/sdk",
    "plugins/insight-mapper",
    "plugins/visibility",
    "plugins/sample-handler",
    "plugins/examples",
    "plugins/fixtures",
    "schedulers",
    "wit",
    "host/core/src",
    "host/core/Cargo.toml",
    // pop-core takes its dependency versions from the host workspace.
    "Cargo.toml",
    "rust-toolchain.toml",
];

/// Variables the outer cargo (or clippy, or a user) sets that must not reach the nested build:
/// wrappers and flags meant for host code, the outer target and target dir, the jobserver, and
/// the outer build script's own environment.
const SCRUBBED: &[&str] = &[
    "RUSTC_WRAPPER",
    "RUSTC_WORKSPACE_WRAPPER",
    "RUSTFLAGS",
    "CARGO_ENCODED_RUSTFLAGS",
    "CARGO_BUILD_RUSTFLAGS",
    "RUSTDOCFLAGS",
    "CARGO_ENCODED_RUSTDOCFLAGS",
    "CARGO_BUILD_TARGET",
    "CARGO_TARGET_DIR",
    "CARGO_BUILD_TARGET_DIR",
    "CARGO_BUILD_BUILD_DIR",
    "CARGO_MAKEFLAGS",
    "MAKEFLAGS",
    "MFLAGS",
    "OUT_DIR",
    "TARGET",
    "HOST",
    "NUM_JOBS",
    "OPT_LEVEL",
    "DEBUG",
    "PROFILE",
    "RUSTDOC",
    "RUSTC_LINKER",
    "CARGO_PRIMARY_PACKAGE",
];
const SCRUBBED_PREFIXES: &[&str] = &[
    "CARGO_FEATURE_",
    "CARGO_CFG_",
    "CARGO_PKG_",
    "CARGO_MANIFEST_",
    "CARGO_PROFILE_",
    "DEP_",
    "CLIPPY_",
    "__CARGO",
];

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: pop-builtin-plugins: {message}");
            ExitCode::FAILURE
        }
    }
}

fn run() -> Result<(), String> {
    let manifest_dir = PathBuf::from(env::var_os("CARGO_MANIFEST_DIR").ok_or("CARGO_MANIFEST_DIR is not set")?);
    let repo = manifest_dir
        .join("../..")
        .canonicalize()
        .map_err(|e| format!("cannot find the repository root: {e}"))?;
    let out_dir = PathBuf::from(env::var_os("OUT_DIR").ok_or("OUT_DIR is not set")?);
    for input in INPUTS {
        let path = repo.join(input);
        if path.exists() {
            println!("cargo:rerun-if-changed={}", path.display());
        }
    }

    let rustc = env::var_os("RUSTC").unwrap_or_else(|| "rustc".into());
    let cargo = env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
    ensure_target_installed(&rustc, &repo)?;

    let target_dir = repo.join("target").join("wasm-guests");
    let manifest = repo.join("plugins").join("Cargo.toml");
    let mut command = Command::new(&cargo);
    command
        .current_dir(repo.join("plugins"))
        .args([
            "build",
            "--release",
            "--workspace",
            "--target",
            TARGET,
            "--color",
            "never",
            "--manifest-path",
        ])
        .arg(&manifest);
    for (key, _) in env::vars_os() {
        let Some(key) = key.to_str() else { continue };
        if SCRUBBED.contains(&key) || SCRUBBED_PREFIXES.iter().any(|prefix| key.starts_with(prefix)) {
            command.env_remove(key);
        }
    }
    command.env("CARGO_TARGET_DIR", &target_dir).env("RUSTC", &rustc);

    let output = command
        .output()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(&cargo).display()))?;
    if !output.status.success() {
        eprintln!("{}", String::from_utf8_lossy(&output.stderr));
        return Err(format!(
            "building the plugin components failed ({}): `cargo build --release --target {TARGET} --workspace \
             --manifest-path {}` with CARGO_TARGET_DIR={}; its output is above",
            output.status,
            manifest.display(),
            target_dir.display()
        ));
    }

    let built = target_dir.join(TARGET).join("release");
    for name in COMPONENTS {
        let file = format!("{name}.wasm");
        fs::copy(built.join(&file), out_dir.join(&file)).map_err(|e| {
            format!(
                "the guest build succeeded but {} is missing: {e}",
                built.join(&file).display()
            )
        })?;
    }
    Ok(())
}

/// Installs the `wasm32-wasip2` standard library for the compiler of this build when it is
/// missing. Machines run rustup with `RUSTUP_AUTO_INSTALL=0`, so nothing else would.
fn ensure_target_installed(rustc: &OsString, repo: &Path) -> Result<(), String> {
    let output = Command::new(rustc)
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| format!("cannot run {}: {e}", Path::new(rustc).display()))?;
    if !output.status.success() {
        return Err(format!(
            "`rustc --print sysroot` failed: {}",
            String::from_utf8_lossy(&output.stderr)
        ));
    }
    let sysroot = PathBuf::from(String::from_utf8_lossy(&output.stdout).trim());
    let target_lib = sysroot.join("lib").join("rustlib").join(TARGET);
    if target_lib.exists() {
        return Ok(());
    }

    // A rustup toolchain lives in `<rustup home>/toolchains/<name>`.
    let toolchain = sysroot
        .parent()
        .filter(|parent| parent.file_name().is_some_and(|name| name == "toolchains"))
        .and_then(|_| sysroot.file_name())
        .ok_or_else(|| {
            format!(
                "the {TARGET} standard library is missing from {} and this compiler is not managed by rustup; \
                 install the {TARGET} target for it",
                sysroot.display()
            )
        })?;
    println!(
        "cargo:warning=installing the {TARGET} target for toolchain {}",
        toolchain.to_string_lossy()
    );
    let mut rustup = Command::new("rustup");
    // rustup's progress goes to stderr: stdout is the channel of `cargo:` directives.
    rustup
        .current_dir(repo)
        .args(["target", "add", TARGET, "--toolchain"])
        .arg(toolchain)
        .stdout(std::io::stderr());
    let status = rustup
        .status()
        .map_err(|e| format!("cannot run `rustup target add {TARGET}`: {e}"))?;
    if !status.success() || !target_lib.exists() {
        return Err(format!(
            "the {TARGET} target is not installed and `rustup target add {TARGET} --toolchain {}` failed ({status}); \
             the plugin components cannot be built without it",
            toolchain.to_string_lossy()
        ));
    }
    Ok(())
}
