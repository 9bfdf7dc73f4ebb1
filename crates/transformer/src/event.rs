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

use chrono::{TimeZone, Utc};
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
    _approximate_arrival_timestamp: ArrivalMs,
    /// The record's bytes, decoded from standard padded base64.
    #[serde(deserialize_with = "orderflow_domain::deserialize_base64")]
    pub data: Vec<u8>,
    /// Validated like aws_lambda_events' field (a Kinesis stream source), then ignored.
    #[serde(rename = "kinesisRecordMetadata")]
    _kinesis_record_metadata: Option<KinesisMetadata>,
}

/// aws_lambda_events' `KinesisFirehoseRecordMetadata`, field for field (the same names, types
/// and required ones; unknown members ignored), validated and dropped.
#[derive(Debug, Default, Clone, PartialEq, Eq, Deserialize)]
struct KinesisMetadata {
    #[serde(default, rename = "shardId")]
    _shard_id: Option<String>,
    #[serde(default, rename = "partitionKey")]
    _partition_key: Option<String>,
    #[serde(default, rename = "sequenceNumber")]
    _sequence_number: Option<String>,
    #[serde(rename = "subsequenceNumber")]
    _subsequence_number: i64,
    #[serde(rename = "approximateArrivalTimestamp")]
    _approximate_arrival_timestamp: ArrivalMs,
}

/// An `approximateArrivalTimestamp`, accepted exactly when aws_lambda_events'
/// `MillisecondTimestamp` accepts it (its steps below, one for one), and dropped. Theirs reads
/// the value through an untagged enum that first tries a string, so every number costs a
/// formatted error message; this reads the token once.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
struct ArrivalMs;

impl<'de> Deserialize<'de> for ArrivalMs {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        use serde::de::Error as _;

        /// Their `StringOrNumber`: a string parsed as `f64`, or any JSON number as `f64`.
        struct StringOrNumber;

        impl Visitor<'_> for StringOrNumber {
            type Value = f64;

            fn expecting(&self, formatter: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                formatter.write_str("a timestamp: a number or a string")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<f64, E> {
                text.parse::<f64>().map_err(E::custom)
            }

            fn visit_f64<E: de::Error>(self, value: f64) -> Result<f64, E> {
                Ok(value)
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<f64, E> {
                Ok(value as f64)
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<f64, E> {
                Ok(value as f64)
            }
        }

        let input = deserializer.deserialize_any(StringOrNumber)?;
        // Their `normalize_timestamp`: the decimal text of the `f64`, split at the point. A whole
        // number up to 2^53 is exact in an `f64` and prints as its digits alone: that is the
        // number itself, with no fraction (the usual case, without the text). Not -0, which
        // prints as `-0` and is refused.
        let (whole, fraction) =
            if input.fract() == 0.0 && input.is_sign_positive() && input <= 9_007_199_254_740_992.0
            {
                (input as u64, 0)
            } else {
                let parts = input
                    .to_string()
                    .split('.')
                    .map(|part| part.parse::<u64>().map_err(D::Error::custom))
                    .collect::<Result<Vec<u64>, _>>()?;
                if parts.len() > 1 {
                    (parts[0], parts[1])
                } else {
                    (parts[0], 0)
                }
            };
        // Their `deserialize_milliseconds`, which panics on a fraction of a millisecond
        // (`tests/wire.rs` requires the same answer, a panic included).
        assert_eq!(fraction, 0);
        let seconds = whole as f64 / 1000.0;
        let milliseconds = (seconds.fract() * 1000f64) as u32;
        Utc.timestamp_opt(seconds as i64, milliseconds * 1_000_000)
            .latest()
            .ok_or_else(|| D::Error::custom("invalid timestamp"))?;
        Ok(ArrivalMs)
    }
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
