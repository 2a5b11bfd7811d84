//! Recognising what uploaded bytes are before handing them to Cranelift, so
//! the owner gets "this is a core module" instead of a parser error.

use crate::error::PluginError;

const MAGIC: &[u8; 4] = b"\0asm";
/// Version field of a core module (`01 00`) and layer (`00 00`).
const CORE_MODULE: [u8; 4] = [1, 0, 0, 0];
/// Layer `01 00` marks a component; its version field is `0d 00` today.
const COMPONENT_LAYER: [u8; 2] = [1, 0];
const COMPONENT_VERSION: [u8; 2] = [0x0d, 0];

/// Accept component binaries only.
pub(crate) fn check_component(wasm: &[u8]) -> Result<(), PluginError> {
    let not = |found| Err(PluginError::NotAComponent { found });
    if wasm.len() < 8 || &wasm[..4] != MAGIC {
        return not("not WebAssembly at all");
    }
    let header = &wasm[4..8];
    if header == CORE_MODULE {
        return not("a core WebAssembly module");
    }
    if header[2..] != COMPONENT_LAYER {
        return not("WebAssembly of an unknown layer");
    }
    if header[..2] != COMPONENT_VERSION {
        return not("a component of an unsupported pre-release encoding");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn found(bytes: &[u8]) -> Option<&'static str> {
        match check_component(bytes) {
            Ok(()) => None,
            Err(PluginError::NotAComponent { found }) => Some(found),
            Err(other) => panic!("{other}"),
        }
    }

    #[test]
    fn tells_components_from_the_rest() {
        assert_eq!(found(b"\0asm\x0d\0\x01\0rest"), None);
        assert_eq!(found(b"\0asm\x01\0\0\0"), Some("a core WebAssembly module"));
        assert_eq!(found(b"garbage bytes"), Some("not WebAssembly at all"));
        assert_eq!(found(b""), Some("not WebAssembly at all"));
        assert_eq!(
            found(b"\0asm\x0c\0\x01\0"),
            Some("a component of an unsupported pre-release encoding")
        );
        assert_eq!(found(b"\0asm\x01\0\x02\0"), Some("WebAssembly of an unknown layer"));
    }
}
