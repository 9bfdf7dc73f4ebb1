//! Decoding the Kinesis event with exact arrival times.
//!
//! aws_lambda_events 1.2 reads `approximateArrivalTimestamp` (seconds with a fraction) by printing
//! the float and taking the digits after the point as milliseconds, so `1717848000.25` becomes
//! 25 ms past the second instead of 250 ms. The consumer stores that time as `ingested_at`, so it
//! decodes each record with aws_lambda_events and then re-reads the timestamp's own JSON text.

use aws_lambda_events::event::kinesis::{KinesisEvent, KinesisEventRecord};
use chrono::{DateTime, Utc};
use serde::de::Error as _;
use serde::{Deserialize, Deserializer};
use serde_json::value::RawValue;

/// A Kinesis event whose records carry their exact approximate arrival times.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderRecordsEvent(pub KinesisEvent);

impl<'de> Deserialize<'de> for OrderRecordsEvent {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        #[derive(Deserialize)]
        struct RawEvent {
            #[serde(rename = "Records")]
            records: Vec<Box<RawValue>>,
        }
        #[derive(Deserialize)]
        struct ArrivalOnly<'a> {
            #[serde(borrow)]
            kinesis: ArrivalField<'a>,
        }
        #[derive(Deserialize)]
        struct ArrivalField<'a> {
            #[serde(borrow, rename = "approximateArrivalTimestamp")]
            approximate_arrival_timestamp: &'a RawValue,
        }
        let raw = RawEvent::deserialize(deserializer)?;
        let mut event = KinesisEvent::default();
        event.records.reserve(raw.records.len());
        for (index, text) in raw.records.iter().enumerate() {
            let mut record: KinesisEventRecord = serde_json::from_str(text.get())
                .map_err(|e| D::Error::custom(format!("Records[{index}]: {e}")))?;
            let arrival: ArrivalOnly<'_> = serde_json::from_str(text.get())
                .map_err(|e| D::Error::custom(format!("Records[{index}]: {e}")))?;
            let seconds = arrival.kinesis.approximate_arrival_timestamp.get();
            record.kinesis.approximate_arrival_timestamp.0 = parse_epoch_seconds(seconds)
                .ok_or_else(|| {
                    D::Error::custom(format!(
                        "Records[{index}].kinesis.approximateArrivalTimestamp is not epoch seconds"
                    ))
                })?;
            event.records.push(record);
        }
        Ok(OrderRecordsEvent(event))
    }
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
}
