//! Decoding the Kinesis event with exact arrival times, in one pass.
//!
//! aws_lambda_events 1.2 reads `approximateArrivalTimestamp` (seconds with a fraction) by printing
//! the float and taking the digits after the point as milliseconds, so `1717848000.25` becomes
//! 25 ms past the second instead of 250 ms. The consumer stores that time as `ingested_at`, so it
//! keeps the timestamp's own JSON text and reads the exact time from it.
//!
//! [`OrderRecordsEvent`] reads each record once, into aws_lambda_events' own `KinesisEventRecord`
//! (the same fields, types and required ones: `tests/wire.rs` checks it accepts and refuses
//! exactly what aws_lambda_events does, on AWS's sample events and edge cases, and then that the
//! only difference is the exact arrival time). It used to read each record three times: as raw
//! JSON, with aws_lambda_events, and again for the timestamp's text.

use aws_lambda_events::event::kinesis::{KinesisEncryptionType, KinesisEvent, KinesisEventRecord};
use chrono::{DateTime, TimeZone, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A Kinesis event whose records carry their exact approximate arrival times.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderRecordsEvent(pub KinesisEvent);

impl<'de> Deserialize<'de> for OrderRecordsEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        /// aws_lambda_events' `KinesisEvent`.
        #[derive(Deserialize)]
        struct Wire {
            #[serde(rename = "Records")]
            records: Vec<RecordWire>,
        }
        let wire = Wire::deserialize(deserializer)?;
        let mut event = KinesisEvent::default();
        event.records = wire
            .records
            .into_iter()
            .map(RecordWire::into_record)
            .collect();
        Ok(OrderRecordsEvent(event))
    }
}

/// aws_lambda_events' `KinesisEventRecord`, field for field (names, types, defaults, required
/// ones; unknown members ignored, a repeated member refused).
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct RecordWire {
    #[serde(default)]
    aws_region: Option<String>,
    #[serde(default, rename = "eventID")]
    event_id: Option<String>,
    #[serde(default)]
    event_name: Option<String>,
    #[serde(default)]
    event_source: Option<String>,
    #[serde(default, rename = "eventSourceARN")]
    event_source_arn: Option<String>,
    #[serde(default)]
    event_version: Option<String>,
    #[serde(default)]
    invoke_identity_arn: Option<String>,
    kinesis: KinesisWire,
}

/// aws_lambda_events' `KinesisRecord`, field for field; the arrival time exact, the data decoded
/// from the borrowed text without an intermediate `String`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct KinesisWire {
    #[serde(deserialize_with = "exact_arrival")]
    approximate_arrival_timestamp: DateTime<Utc>,
    #[serde(deserialize_with = "orderflow_domain::deserialize_base64")]
    data: Vec<u8>,
    #[serde(default)]
    encryption_type: KinesisEncryptionType,
    #[serde(default)]
    partition_key: String,
    #[serde(default)]
    sequence_number: String,
    #[serde(default)]
    kinesis_schema_version: Option<String>,
}

impl RecordWire {
    /// The record as aws_lambda_events' type (whose fields are public, but which is
    /// `#[non_exhaustive]`: built from its default).
    fn into_record(self) -> KinesisEventRecord {
        let mut record = KinesisEventRecord::default();
        record.aws_region = self.aws_region;
        record.event_id = self.event_id;
        record.event_name = self.event_name;
        record.event_source = self.event_source;
        record.event_source_arn = self.event_source_arn;
        record.event_version = self.event_version;
        record.invoke_identity_arn = self.invoke_identity_arn;
        let kinesis = &mut record.kinesis;
        kinesis.approximate_arrival_timestamp.0 = self.kinesis.approximate_arrival_timestamp;
        kinesis.data.0 = self.kinesis.data;
        kinesis.encryption_type = self.kinesis.encryption_type;
        kinesis.partition_key = self.kinesis.partition_key;
        kinesis.sequence_number = self.kinesis.sequence_number;
        kinesis.kinesis_schema_version = self.kinesis.kinesis_schema_version;
        record
    }
}

/// `approximateArrivalTimestamp`: accepted exactly when aws_lambda_events' `SecondTimestamp`
/// accepts it ([`seconds_accepted`]), then read exactly from its JSON text
/// ([`parse_epoch_seconds`]).
fn exact_arrival<'de, D: Deserializer<'de>>(deserializer: D) -> Result<DateTime<Utc>, D::Error> {
    let text = Box::<RawValue>::deserialize(deserializer)?;
    seconds_accepted(text.get()).map_err(D::Error::custom)?;
    parse_epoch_seconds(text.get()).ok_or_else(|| {
        D::Error::custom(format!(
            "approximateArrivalTimestamp {} is not epoch seconds",
            text.get()
        ))
    })
}

/// aws_lambda_events' `deserialize_seconds` on one JSON value, step for step: a string parsed as
/// `f64`, or any number as `f64`; its decimal text split at the point into two `u64`s; the
/// fraction times 10^6 as nanoseconds (wrapping, as their release build does); chrono's
/// `timestamp_opt(..).latest()`. Theirs reads the value through an untagged enum that first
/// tries a string, so every number costs a formatted error message.
fn seconds_accepted(json: &str) -> Result<(), String> {
    let input: f64 = match json.as_bytes().first() {
        Some(b'"') => serde_json::from_str::<String>(json)
            .map_err(|e| e.to_string())?
            .parse::<f64>()
            .map_err(|e| e.to_string())?,
        _ => serde_json::from_str::<f64>(json)
            .map_err(|_| "data did not match any variant of untagged enum StringOrNumber")?,
    };
    let text = input.to_string();
    let parts = text
        .split('.')
        .map(|part| part.parse::<u64>().map_err(|e| e.to_string()))
        .collect::<Result<Vec<u64>, String>>()?;
    let (whole, fraction) = if parts.len() > 1 {
        (parts[0], parts[1])
    } else {
        (parts[0], 0)
    };
    let nanos = fraction.wrapping_mul(1_000_000);
    Utc.timestamp_opt(whole as i64, nanos as u32)
        .latest()
        .map(|_| ())
        .ok_or_else(|| "invalid timestamp".to_owned())
}

/// Epoch seconds as JSON text (`1717848000.25`, `"1717848000.25"`, `1.71784800025E9`) to a UTC
/// time, exact to the nanosecond for plain decimals.
pub fn parse_epoch_seconds(json: &str) -> Option<DateTime<Utc>> {
    let text = json.trim().trim_matches('"');
    if text.contains(['e', 'E']) {
        let value: f64 = text.parse().ok()?;
        return DateTime::from_timestamp_millis((value * 1000.0).round() as i64);
    }
    let (whole, fraction) = text.split_once('.').unwrap_or((text, ""));
    if whole.is_empty()
        || !whole.bytes().all(|b| b.is_ascii_digit())
        || !fraction.bytes().all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let seconds: i64 = whole.parse().ok()?;
    let digits: String = fraction
        .chars()
        .chain(std::iter::repeat('0'))
        .take(9)
        .collect();
    let nanos: u32 = digits.parse().ok()?;
    DateTime::from_timestamp(seconds, nanos)
}

/// Where a Kinesis event comes from: the stream and the event source mapping's identity.
#[derive(Debug, Clone, Copy)]
pub struct EventSource<'a> {
    /// The stream's ARN (`eventSourceARN`).
    pub stream_arn: &'a str,
    /// The region (`awsRegion`).
    pub region: &'a str,
    /// The function's execution role (`invokeIdentityArn`).
    pub invoke_identity_arn: &'a str,
}

impl EventSource<'static> {
    /// A source for local runs and tests (account `123456789012`, stream `orders`).
    pub const LOCAL: EventSource<'static> = EventSource {
        stream_arn: "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
        region: "us-east-1",
        invoke_identity_arn: "arn:aws:iam::123456789012:role/consumer",
    };
}

/// One record of a Kinesis event, as read from the stream.
#[derive(Debug, Clone, Copy)]
pub struct EventRecord<'a> {
    /// `shardId-000000000000`.
    pub shard_id: &'a str,
    /// The partition key.
    pub partition_key: &'a str,
    /// The sequence number.
    pub sequence_number: &'a str,
    /// The record's bytes.
    pub data: &'a [u8],
    /// Approximate arrival time, epoch milliseconds (Kinesis keeps milliseconds).
    pub arrival_ms: u64,
}

/// The Kinesis event (JSON) Lambda's event source mapping sends the consumer for `records`:
/// the one place it is built, used by the twin's mapping and redrive, the AWS redrive, the smoke
/// test, the benchmarks and the tests. The shape is the "Example Kinesis record event" of
/// "Using Lambda with Kinesis Data Streams" (Lambda developer guide):
/// `approximateArrivalTimestamp` in epoch seconds with a fraction, `eventID`
/// `shardId:sequenceNumber`.
pub fn kinesis_event<'a>(
    source: &EventSource<'_>,
    records: impl IntoIterator<Item = EventRecord<'a>>,
) -> Vec<u8> {
    use base64::Engine as _;
    let records: Vec<serde_json::Value> = records
        .into_iter()
        .map(|record| {
            serde_json::json!({
                "kinesis": {
                    "kinesisSchemaVersion": "1.0",
                    "partitionKey": record.partition_key,
                    "sequenceNumber": record.sequence_number,
                    "data": base64::engine::general_purpose::STANDARD.encode(record.data),
                    "approximateArrivalTimestamp": record.arrival_ms as f64 / 1000.0,
                },
                "eventSource": "aws:kinesis",
                "eventVersion": "1.0",
                "eventID": format!("{}:{}", record.shard_id, record.sequence_number),
                "eventName": "aws:kinesis:record",
                "invokeIdentityArn": source.invoke_identity_arn,
                "awsRegion": source.region,
                "eventSourceARN": source.stream_arn,
            })
        })
        .collect();
    serde_json::to_vec(&serde_json::json!({ "Records": records })).expect("a JSON value serialises")
}

/// A Kinesis event of `count` generated orders (seed 42,
/// [`orderflow_domain::GeneratorConfig::fixed`]), one shard, as Lambda's event source mapping
/// sends it: the workload of the benchmarks, the profile example and `cargo xtask lambda-bench`
/// (feature `generator`).
#[cfg(feature = "generator")]
pub fn sample_event(count: usize) -> Vec<u8> {
    use orderflow_domain::{GeneratorConfig, OrderGenerator};
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(42));
    let orders: Vec<(String, Vec<u8>)> = (0..count)
        .map(|n| {
            (
                format!("4959033827149025660855969253836157109592157598913{n:07}"),
                generator.next_order().to_json(),
            )
        })
        .collect();
    kinesis_event(
        &EventSource::LOCAL,
        orders.iter().map(|(sequence, data)| EventRecord {
            shard_id: "shardId-000000000000",
            partition_key: "user",
            sequence_number: sequence,
            data,
            arrival_ms: 1_717_848_000_125,
        }),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn arrival_fractions_are_exact() {
        let at = |text| parse_epoch_seconds(text).map(|t| t.to_rfc3339());
        assert_eq!(
            at("1717848000.25").unwrap(),
            "2024-06-08T12:00:00.250+00:00"
        );
        assert_eq!(
            at("1717848000.025").unwrap(),
            "2024-06-08T12:00:00.025+00:00"
        );
        assert_eq!(
            at("\"1717848000.5\"").unwrap(),
            "2024-06-08T12:00:00.500+00:00"
        );
        assert_eq!(at("1717848000").unwrap(), "2024-06-08T12:00:00+00:00");
        assert_eq!(
            at("1.71784800025E9").unwrap(),
            "2024-06-08T12:00:00.250+00:00"
        );
        assert_eq!(at("-5"), None);
        assert_eq!(at("null"), None);
    }

    #[test]
    fn the_event_keeps_every_record_and_fixes_the_arrival_time() {
        let json = r#"{"Records": [{"kinesis": {"partitionKey": "c", "sequenceNumber": "1",
            "data": "e30=", "approximateArrivalTimestamp": 1717848000.25},
            "eventID": "shardId-000000000000:1"}]}"#;
        let event: OrderRecordsEvent = serde_json::from_str(json).unwrap();
        let record = &event.0.records[0];
        assert_eq!(record.kinesis.data.0, b"{}");
        assert_eq!(
            record
                .kinesis
                .approximate_arrival_timestamp
                .0
                .timestamp_subsec_millis(),
            250
        );
    }

    #[test]
    fn a_built_event_decodes_to_its_records() {
        let records = [
            ("1", b"{\"a\":1}".as_slice(), 1_717_848_000_250),
            ("2", b"x", 1_717_848_000_007),
        ];
        let json = kinesis_event(
            &EventSource::LOCAL,
            records
                .iter()
                .map(|(sequence, data, arrival_ms)| EventRecord {
                    shard_id: "shardId-000000000002",
                    partition_key: "customer",
                    sequence_number: sequence,
                    data,
                    arrival_ms: *arrival_ms,
                }),
        );
        let event: OrderRecordsEvent = serde_json::from_slice(&json).unwrap();
        assert_eq!(event.0.records.len(), 2);
        for (record, (sequence, data, arrival_ms)) in event.0.records.iter().zip(records) {
            assert_eq!(record.kinesis.sequence_number, sequence);
            assert_eq!(record.kinesis.data.0, data);
            assert_eq!(record.kinesis.partition_key, "customer");
            assert_eq!(
                record.event_id.as_deref(),
                Some(format!("shardId-000000000002:{sequence}").as_str())
            );
            assert_eq!(
                record
                    .kinesis
                    .approximate_arrival_timestamp
                    .0
                    .timestamp_millis(),
                arrival_ms as i64
            );
            assert_eq!(
                record.event_source_arn.as_deref(),
                Some(EventSource::LOCAL.stream_arn)
            );
        }
    }
}
