//! The Firehose event and response as the Lambda process reads and writes them, without the
//! intermediate copies of aws_lambda_events' types.
//!
//! [`FirehoseEvent`] accepts exactly the JSON that
//! `aws_lambda_events::event::firehose::KinesisFirehoseEvent` accepts (same fields, same types,
//! same required ones; `tests/wire.rs` checks it on a corpus that includes AWS's sample events)
//! and keeps only what the transformer uses: each record's `recordId` and its decoded `data`.
//! The base64 text is decoded straight from the input buffer into the record's bytes, with a
//! SIMD decoder, instead of first into an owned `String`.
//!
//! [`ResponseJson`] is a response already encoded as JSON: the runtime writes its bytes as they are.

use aws_lambda_events::encodings::MillisecondTimestamp;
use aws_lambda_events::event::firehose::KinesisFirehoseRecordMetadata;
use serde::de::{self, Deserializer, Visitor};
use serde::ser::{SerializeStruct, Serializer};
use serde::{Deserialize, Serialize};

/// A Firehose transformation event: what the transformer needs of each record.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseEvent {
    /// Validated like aws_lambda_events' field, then ignored.
    #[serde(default, rename = "invocationId")]
    _invocation_id: Option<String>,
    /// Validated like aws_lambda_events' field, then ignored.
    #[serde(default, rename = "deliveryStreamArn")]
    _delivery_stream_arn: Option<String>,
    /// Validated like aws_lambda_events' field, then ignored.
    #[serde(default, rename = "sourceKinesisStreamArn")]
    _source_kinesis_stream_arn: Option<String>,
    /// Validated like aws_lambda_events' field, then ignored.
    #[serde(default, rename = "region")]
    _region: Option<String>,
    /// The records, in input order.
    pub records: Vec<FirehoseRecord>,
}

impl FirehoseEvent {
    /// An event of `records`.
    pub fn new(records: Vec<FirehoseRecord>) -> Self {
        FirehoseEvent {
            records,
            ..FirehoseEvent::default()
        }
    }
}

/// One Firehose record: its id and its decoded data.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "camelCase")]
pub struct FirehoseRecord {
    /// The `recordId` to answer with.
    #[serde(default)]
    pub record_id: Option<String>,
    /// Validated like aws_lambda_events' field (required, epoch milliseconds), then ignored.
    #[serde(rename = "approximateArrivalTimestamp")]
    _approximate_arrival_timestamp: MillisecondTimestamp,
    /// The record's bytes, decoded from standard padded base64.
    #[serde(deserialize_with = "deserialize_base64")]
    pub data: Vec<u8>,
    /// Validated like aws_lambda_events' field (a Kinesis stream source), then ignored.
    #[serde(rename = "kinesisRecordMetadata")]
    _kinesis_record_metadata: Option<KinesisFirehoseRecordMetadata>,
}

impl FirehoseRecord {
    /// A record with `record_id` and `data`.
    pub fn new(record_id: Option<String>, data: Vec<u8>) -> Self {
        FirehoseRecord {
            record_id,
            data,
            ..FirehoseRecord::default()
        }
    }
}

/// Decodes a JSON string of standard, padded base64 into bytes, like aws_lambda_events'
/// `Base64Data` (the `base64` crate's `STANDARD` engine: canonical padding, no trailing bits, no
/// whitespace), without the intermediate `String` and with a SIMD decoder.
fn deserialize_base64<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Vec<u8>, D::Error> {
    struct Base64Visitor;

    impl Visitor<'_> for Base64Visitor {
        type Value = Vec<u8>;

        fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            formatter.write_str("a string")
        }

        fn visit_str<E: de::Error>(self, text: &str) -> Result<Vec<u8>, E> {
            decode_base64(text.as_bytes()).map_err(E::custom)
        }

        fn visit_bytes<E: de::Error>(self, bytes: &[u8]) -> Result<Vec<u8>, E> {
            match std::str::from_utf8(bytes) {
                Ok(text) => self.visit_str(text),
                Err(_) => Err(E::invalid_value(de::Unexpected::Bytes(bytes), &self)),
            }
        }
    }

    deserializer.deserialize_string(Base64Visitor)
}

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

/// A response already encoded as compact JSON; serialised by serde_json as those bytes, verbatim
/// (the way serde_json writes its own `RawValue`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ResponseJson(String);

impl ResponseJson {
    /// Wraps JSON text. The caller guarantees it is one valid JSON value (the tests check every
    /// response the transformer makes).
    pub(crate) fn new(json: String) -> Self {
        ResponseJson(json)
    }

    /// The JSON text.
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// The JSON text's length in bytes.
    pub fn len(&self) -> usize {
        self.0.len()
    }

    /// Whether the text is empty (never, for a response).
    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }
}

/// serde_json's marker for "write this string as raw JSON" (`serde_json::value::RawValue`'s own
/// `Serialize` uses it). `tests/wire.rs` checks that serde_json writes a [`ResponseJson`]
/// verbatim, so a serde_json that changed it fails the tests instead of the Lambda.
const RAW_VALUE_TOKEN: &str = "$serde_json::private::RawValue";

impl Serialize for ResponseJson {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        let mut raw = serializer.serialize_struct(RAW_VALUE_TOKEN, 1)?;
        raw.serialize_field(RAW_VALUE_TOKEN, &self.0)?;
        raw.end()
    }
}
