//! JSON strings written the way serde_json writes them, without its per-byte loop, and
//! standard padded base64, as Lambda's Kinesis and Firehose events carry each record's data:
//! decoded and encoded with a SIMD codec, accepting exactly what the `base64` crate's `STANDARD`
//! engine accepts (the engine aws_lambda_events decodes with). Shared by the consumer's and the
//! transformers' own event types.

use serde::Deserializer;
use serde::de::{self, Visitor};

/// Standard padded base64 to bytes, accepting exactly what the `base64` crate's `STANDARD`
/// engine accepts: the SIMD decoder first; its rare refusals, and the non-canonical last symbols
/// it would let through, are settled by the `base64` crate itself.
pub fn decode_base64(text: &[u8]) -> Result<Vec<u8>, base64::DecodeError> {
    use base64::Engine;
    match base64_simd::STANDARD.decode_to_vec(text) {
        Ok(bytes) if canonical_tail(text) => Ok(bytes),
        _ => base64::engine::general_purpose::STANDARD.decode(text),
    }
}

/// Whether the unused low bits of the last base64 symbol are zero (padded input), as the
/// `base64` crate requires by default.
fn canonical_tail(text: &[u8]) -> bool {
    let value = |symbol: u8| match symbol {
        b'A'..=b'Z' => symbol - b'A',
        b'a'..=b'z' => symbol - b'a' + 26,
        b'0'..=b'9' => symbol - b'0' + 52,
        b'+' => 62,
        b'/' => 63,
        _ => 0xff,
    };
    match text {
        [.., last, b'=', b'='] => value(*last) & 0x0f == 0,
        [.., last, b'='] => value(*last) & 0x03 == 0,
        _ => true,
    }
}

/// Standard padded base64 of `bytes`, appended to `out`.
pub fn encode_base64_into(bytes: &[u8], out: &mut Vec<u8>) {
    let start = out.len();
    let len = base64_len(bytes.len());
    out.resize(start + len, 0);
    let written = base64_simd::STANDARD
        .encode(bytes, base64_simd::Out::from_slice(&mut out[start..]))
        .len();
    debug_assert_eq!(written, len);
}

/// Bytes of the standard, padded base64 text of `bytes` bytes.
pub fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// Decodes a JSON string of standard, padded base64 into bytes (`#[serde(deserialize_with)]`),
/// accepting exactly what aws_lambda_events' `Base64Data` accepts (the `base64` crate's `STANDARD`
/// engine: canonical padding, no trailing bits, no whitespace), without the intermediate `String`
/// and with a SIMD decoder.
pub fn deserialize_base64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct Base64Visitor;

    impl Visitor<'_> for Base64Visitor {
        type Value = Vec<u8>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a string")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
            decode_base64(text.as_bytes()).map_err(E::custom)
        }

        /// The string's bytes, escapes resolved but not checked for UTF-8 (serde_json's
        /// `deserialize_bytes`): base64 is ASCII, so text that is not UTF-8 is refused by the
        /// decoder all the same, without a UTF-8 pass over every record's data first.
        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            decode_base64(bytes).map_err(E::custom)
        }
    }

    // serde_json also reads an array of numbers as bytes: refused here, as before, because the
    // visitor takes no sequence.
    deserializer.deserialize_bytes(Base64Visitor)
}

/// Appends `text` as a JSON string exactly as serde_json writes it. serde_json escapes only
/// control characters, `"` and `\\`; text without them (nearly all) is copied as is, checked
/// without branching per byte, and the rest goes through serde_json.
pub fn push_json_str(out: &mut Vec<u8>, text: &str) {
    if needs_escape(text) {
        serde_json::to_writer(&mut *out, text).expect("writing a string into a Vec cannot fail");
    } else {
        out.reserve(text.len() + 2);
        out.push(b'"');
        out.extend_from_slice(text.as_bytes());
        out.push(b'"');
    }
}

/// The bytes [`push_json_str`] writes for `text`, without writing them for the common case.
pub fn json_str_len(text: &str) -> usize {
    if needs_escape(text) {
        let mut out = Vec::with_capacity(text.len() + 16);
        push_json_str(&mut out, text);
        out.len()
    } else {
        text.len() + 2
    }
}

/// Whether serde_json escapes anything in `text`, checked without a branch per byte.
fn needs_escape(text: &str) -> bool {
    text.bytes().fold(false, |found, byte| {
        found | (byte < 0x20) | (byte == b'"') | (byte == b'\\')
    })
}

#[cfg(test)]
mod tests {
    use base64::Engine as _;
    use base64::engine::general_purpose::STANDARD;
    use proptest::prelude::*;

    use super::*;

    proptest! {
        /// Any text, control characters, quotes, backslashes and non-ASCII included, is
        /// written exactly as serde_json writes it.
        #[test]
        fn json_strings_are_serde_jsons(text in "(\\PC|[\\x00-\\x1f\"\\\\\\x7f])*") {
            let mut ours = b"[".to_vec();
            push_json_str(&mut ours, &text);
            let mut theirs = b"[".to_vec();
            serde_json::to_writer(&mut theirs, &text).unwrap();
            prop_assert_eq!(json_str_len(&text), theirs.len() - 1);
            prop_assert_eq!(ours, theirs);
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(5000))]

        /// The SIMD decoder accepts exactly what the `base64` crate's `STANDARD` engine accepts,
        /// with the same bytes.
        #[test]
        fn base64_decodes_like_the_base64_crate(text in "[A-Za-z0-9+/=_\\- \n]{0,40}") {
            let ours = decode_base64(text.as_bytes());
            let theirs = STANDARD.decode(text.as_bytes());
            prop_assert_eq!(ours.is_ok(), theirs.is_ok(), "{:?}", text);
            if let (Ok(ours), Ok(theirs)) = (ours, theirs) {
                prop_assert_eq!(ours, theirs);
            }
        }

        #[test]
        fn base64_round_trips(bytes in prop::collection::vec(any::<u8>(), 0..300)) {
            let text = STANDARD.encode(&bytes);
            prop_assert_eq!(decode_base64(text.as_bytes()).unwrap(), bytes.clone());
            let mut out = b"x".to_vec();
            encode_base64_into(&bytes, &mut out);
            prop_assert_eq!(&out[1..], text.as_bytes());
        }
    }
}
