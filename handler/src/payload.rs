//! The `compressedEnvVar` payload format of spec §5.2: the payload JSON zlib-deflated, then
//! base64-encoded (standard alphabet, padded), split into environment variables
//! `POP_COMPRESSED_PAYLOAD_0..N` of at most `payload.compression.maxSegmentSize` characters.
//! POP chose it because one environment variable (and the pod spec holding it) has a size limit
//! a large payload breaks.

use std::io::{Read, Write};

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use flate2::Compression;
use flate2::read::ZlibDecoder;
use flate2::write::ZlibEncoder;

/// Says which payload format the launcher used; absent means plain `PAYLOAD`.
pub const PAYLOAD_TYPE_ENV: &str = "POP_PAYLOAD_TYPE";
/// The `POP_PAYLOAD_TYPE` value of the segmented, compressed format.
pub const COMPRESSED_ENV_VAR: &str = "compressedEnvVar";
/// Segment `i` is the variable `POP_COMPRESSED_PAYLOAD_<i>`.
pub const SEGMENT_PREFIX: &str = "POP_COMPRESSED_PAYLOAD_";
/// POP's `payload.compression.maxSegmentSize` default.
pub const MAX_SEGMENT: usize = 100_000;
/// The most a payload may inflate to. A few KiB of segments can inflate to gigabytes (a
/// decompression bomb); no payload POP accepts comes near this (an agenda is stored whole up to
/// 16 MiB).
pub const MAX_INFLATED: usize = 64 * 1024 * 1024;

#[derive(Debug, thiserror::Error)]
pub enum PayloadError {
    #[error("the compressed payload has no segments ({SEGMENT_PREFIX}0 is not set)")]
    NoSegments,
    #[error("the compressed payload is not valid base64: {0}")]
    Base64(#[from] base64::DecodeError),
    #[error("the compressed payload does not inflate (zlib): {0}")]
    Inflate(#[source] std::io::Error),
    #[error("the compressed payload inflates to more than {limit} bytes")]
    TooLarge { limit: usize },
    #[error("the compressed payload is not UTF-8: {0}")]
    NotUtf8(#[from] std::string::FromUtf8Error),
}

/// zlib-deflate then base64 (standard alphabet, padded), split into segments of at most
/// `max_segment` characters (at least one character each, whatever `max_segment` says).
pub fn compress(json: &str, max_segment: usize) -> Vec<String> {
    let mut encoder = ZlibEncoder::new(Vec::new(), Compression::default());
    // Writing into a Vec cannot fail; the fallbacks only keep this function total.
    let deflated = encoder
        .write_all(json.as_bytes())
        .and_then(|()| encoder.finish())
        .unwrap_or_default();
    let encoded = STANDARD.encode(deflated);
    // base64 is ASCII, so byte chunks are character chunks.
    encoded
        .as_bytes()
        .chunks(max_segment.max(1))
        .map(|chunk| String::from_utf8_lossy(chunk).into_owned())
        .collect()
}

/// Concatenate, base64-decode, zlib-inflate (at most [`MAX_INFLATED`] bytes).
pub fn decompress<S: AsRef<str>>(segments: &[S]) -> Result<String, PayloadError> {
    decompress_limited(segments, MAX_INFLATED)
}

pub(crate) fn decompress_limited<S: AsRef<str>>(segments: &[S], limit: usize) -> Result<String, PayloadError> {
    if segments.is_empty() {
        return Err(PayloadError::NoSegments);
    }
    let encoded: String = segments.iter().map(AsRef::as_ref).collect();
    let deflated = STANDARD.decode(encoded.trim())?;
    let mut inflated = Vec::new();
    // One byte past the limit tells "exactly at the limit" from "beyond it" without inflating
    // the rest.
    let cap = u64::try_from(limit).unwrap_or(u64::MAX).saturating_add(1);
    ZlibDecoder::new(deflated.as_slice())
        .take(cap)
        .read_to_end(&mut inflated)
        .map_err(PayloadError::Inflate)?;
    if inflated.len() > limit {
        return Err(PayloadError::TooLarge { limit });
    }
    Ok(String::from_utf8(inflated)?)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// `{"a":1}` as Python's `zlib.compress` (the zlib library Java's `Deflater` wraps, default
    /// level) and `base64.b64encode` produce it: what POP's launcher sends.
    const POP_SAMPLE: &str = "eJyrVkpUsjKsBQAIKgIJ";

    #[test]
    fn decodes_what_pop_encodes() {
        assert_eq!(decompress(&[POP_SAMPLE]).unwrap(), r#"{"a":1}"#);
        // Split anywhere, even mid-quantum.
        let (head, tail) = POP_SAMPLE.split_at(5);
        assert_eq!(decompress(&[head, tail]).unwrap(), r#"{"a":1}"#);
    }

    #[test]
    fn encodes_in_pop_format() {
        let segments = compress(r#"{"a":1}"#, MAX_SEGMENT);
        assert_eq!(segments.len(), 1);
        let bytes = STANDARD.decode(&segments[0]).unwrap();
        // A zlib stream (CMF 0x78: deflate, 32 KiB window), standard padded base64.
        assert_eq!(bytes[0], 0x78);
        assert_eq!(
            (u16::from(bytes[0]) << 8 | u16::from(bytes[1])) % 31,
            0,
            "zlib header check"
        );
        assert!(
            segments[0]
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || "+/=".contains(c))
        );
        assert_eq!(segments[0].len() % 4, 0, "padded");
    }

    #[test]
    fn round_trips_across_many_segments() {
        // Incompressible enough to need several segments of 64 characters.
        let json =
            serde_json::to_string(&(0..400).map(|i| format!("v{}", i * 7919 % 1000)).collect::<Vec<_>>()).unwrap();
        let segments = compress(&json, 64);
        assert!(segments.len() > 3, "{} segments", segments.len());
        assert!(segments[..segments.len() - 1].iter().all(|s| s.len() == 64));
        assert!(segments.last().unwrap().len() <= 64);
        assert_eq!(decompress(&segments).unwrap(), json);
        assert_eq!(
            compress(&json, 0).len(),
            segments.concat().len(),
            "0 means one character each"
        );
    }

    #[test]
    fn an_inflated_size_beyond_the_limit_is_refused() {
        let big = "x".repeat(10_000);
        let segments = compress(&big, MAX_SEGMENT);
        assert_eq!(
            decompress_limited(&segments, 10_000).unwrap(),
            big,
            "exactly at the limit"
        );
        let error = decompress_limited(&segments, 9_999).unwrap_err();
        assert!(matches!(error, PayloadError::TooLarge { limit: 9_999 }));
        assert_eq!(
            error.to_string(),
            "the compressed payload inflates to more than 9999 bytes"
        );
        const { assert!(MAX_INFLATED == 64 << 20) };
    }

    #[test]
    fn broken_input_is_an_error() {
        let none: [&str; 0] = [];
        assert!(matches!(decompress(&none), Err(PayloadError::NoSegments)));
        assert!(matches!(decompress(&["not base64!"]), Err(PayloadError::Base64(_))));
        assert!(matches!(decompress(&["aGVsbG8="]), Err(PayloadError::Inflate(_))));
    }
}
