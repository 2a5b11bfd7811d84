//! Content addresses and the on-disk store of compiled components.
//!
//! Loading a compiled component means mapping native code into the process,
//! which is only safe for bytes this runtime produced itself. So every file
//! is named after the wasm's sha256, the wasmtime version and a fingerprint
//! of the engine configuration, and carries a sha256 of its own contents
//! that is checked before wasmtime sees it: a truncated, corrupted or
//! foreign file is deleted and the component recompiled.

use std::fs;
use std::hash::{Hash, Hasher};
use std::io::Write;
use std::path::{Path, PathBuf};

use sha2::{Digest, Sha256};
use wasmtime::Engine;
use wasmtime::component::Component;

/// The wasmtime this crate pins (`=48.0.8` in Cargo.toml); part of every
/// artifact name so an upgrade never even tries yesterday's files.
pub const WASMTIME_VERSION: &str = "48.0.8";

/// Header of an artifact file, then the sha256 of the rest, then the rest.
const MAGIC: &[u8; 8] = b"POPCWSM1";
const HEADER: usize = MAGIC.len() + 32;

/// Hex sha256 of `bytes`.
pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    bytes.iter().fold(String::with_capacity(bytes.len() * 2), |mut s, b| {
        let _ = write!(s, "{b:02x}");
        s
    })
}

/// Compiled components kept in one directory.
pub(crate) struct DiskCache {
    dir: PathBuf,
    /// `<wasmtime version>-<engine fingerprint>`: the file-name suffix.
    suffix: String,
}

impl DiskCache {
    pub(crate) fn open(dir: &Path, engine: &Engine) -> std::io::Result<Self> {
        create_private_dir(dir)?;
        Ok(Self {
            dir: dir.to_path_buf(),
            suffix: format!("{WASMTIME_VERSION}-{}", fingerprint(engine)),
        })
    }

    pub(crate) fn path(&self, sha256: &str) -> PathBuf {
        self.dir.join(format!("{sha256}-{}.cwasm", self.suffix))
    }

    /// The component compiled earlier from the wasm with this sha256, if a
    /// valid artifact is on disk. Invalid artifacts are removed.
    pub(crate) fn load(&self, engine: &Engine, sha256: &str) -> Option<Component> {
        let path = self.path(sha256);
        let file = fs::read(&path).ok()?;
        let artifact = match verified(&file) {
            Some(artifact) => artifact,
            None => {
                tracing::warn!(path = %path.display(), "discarding a damaged compiled-component file");
                let _ = fs::remove_file(&path);
                return None;
            }
        };
        // SAFETY: the bytes are what `Component::serialize` produced in this
        // runtime (we wrote the file, its checksum matches, and its name
        // pins the wasmtime version and engine configuration); wasmtime
        // additionally rejects artifacts of another version or config.
        match unsafe { Component::deserialize(engine, artifact) } {
            Ok(component) => Some(component),
            Err(error) => {
                tracing::warn!(path = %path.display(), %error, "discarding an incompatible compiled component");
                let _ = fs::remove_file(&path);
                None
            }
        }
    }

    /// Keep `component` for the next start. Best effort: a full disk only
    /// costs a compile later.
    pub(crate) fn store(&self, sha256: &str, component: &Component) {
        if let Err(error) = self.try_store(sha256, component) {
            tracing::warn!(%error, sha256, "could not cache a compiled component");
        }
    }

    fn try_store(&self, sha256: &str, component: &Component) -> Result<(), Box<dyn std::error::Error>> {
        let artifact = component.serialize()?;
        // Write then rename, so a reader never sees half a file.
        let (tmp, mut file) = tempfile_in(&self.dir)?;
        let written = file
            .write_all(MAGIC)
            .and_then(|()| file.write_all(&Sha256::digest(&artifact)))
            .and_then(|()| file.write_all(&artifact))
            .and_then(|()| file.sync_all())
            .and_then(|()| fs::rename(&tmp, self.path(sha256)));
        if written.is_err() {
            let _ = fs::remove_file(&tmp);
        }
        Ok(written?)
    }
}

/// The artifact inside a file, if the header and checksum hold.
fn verified(file: &[u8]) -> Option<&[u8]> {
    if file.len() < HEADER || &file[..MAGIC.len()] != MAGIC {
        return None;
    }
    let (sum, artifact) = file[MAGIC.len()..].split_at(32);
    (Sha256::digest(artifact).as_slice() == sum).then_some(artifact)
}

/// Sixteen hex digits identifying the engine settings that compiled code
/// depends on (target, Cranelift flags, tunables, wasmtime version).
fn fingerprint(engine: &Engine) -> String {
    let mut hasher = ShaHasher(Sha256::new());
    engine.precompile_compatibility_hash().hash(&mut hasher);
    hex(&hasher.0.finalize()[..8])
}

/// A [`Hasher`] over sha256, so the fingerprint is stable across processes
/// and Rust versions (unlike `DefaultHasher`).
struct ShaHasher(Sha256);

impl Hasher for ShaHasher {
    fn finish(&self) -> u64 {
        0
    }

    fn write(&mut self, bytes: &[u8]) {
        self.0.update(bytes);
    }
}

fn create_private_dir(dir: &Path) -> std::io::Result<()> {
    let mut builder = fs::DirBuilder::new();
    builder.recursive(true);
    #[cfg(unix)]
    std::os::unix::fs::DirBuilderExt::mode(&mut builder, 0o700);
    builder.create(dir)
}

/// A new, uniquely named file in `dir`.
fn tempfile_in(dir: &Path) -> std::io::Result<(PathBuf, fs::File)> {
    static NEXT: std::sync::atomic::AtomicU64 = std::sync::atomic::AtomicU64::new(0);
    loop {
        let n = NEXT.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
        let path = dir.join(format!(".tmp-{}-{n}", std::process::id()));
        match fs::OpenOptions::new().write(true).create_new(true).open(&path) {
            Ok(file) => return Ok((path, file)),
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => return Err(e),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn hex_sha256() {
        assert_eq!(
            sha256_hex(b"abc"),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
        );
    }

    #[test]
    fn artifacts_are_checked() {
        let artifact = b"compiled code".to_vec();
        let mut file = MAGIC.to_vec();
        file.extend_from_slice(&Sha256::digest(&artifact));
        file.extend_from_slice(&artifact);
        assert_eq!(verified(&file), Some(&artifact[..]));
        let mut damaged = file.clone();
        *damaged.last_mut().unwrap() ^= 1;
        assert_eq!(verified(&damaged), None);
        assert_eq!(verified(&file[..HEADER - 1]), None);
        assert_eq!(verified(b"POPCWSM0"), None);
    }
}
