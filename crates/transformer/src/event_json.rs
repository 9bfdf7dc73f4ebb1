//! The Firehose event as Firehose sends it to a transformer: the one place its JSON is built,
//! used by the twin's delivery streams, the smoke test, the benchmarks and the fuzz targets.
//!
//! The shape is the "Data transformation" event of the Amazon Data Firehose developer guide:
//! `invocationId`, `deliveryStreamArn`, `sourceKinesisStreamArn` (Kinesis sources only),
//! `region` and `records`, each record with `recordId`, `approximateArrivalTimestamp` (epoch
//! milliseconds), `data` (standard padded base64) and, from a Kinesis source,
//! `kinesisRecordMetadata`. Events are written record by record ([`event_record`] and
//! [`event_envelope`]) so a caller can size each record once and cut events at Lambda's payload
//! limit, or whole ([`firehose_event`]).

use serde::Serialize;

use orderflow_domain::{base64_len, encode_base64_into};

/// Where an event comes from.
#[derive(Debug, Clone, Copy)]
pub struct EventSource<'a> {
    /// The delivery stream's ARN (`deliveryStreamArn`).
    pub delivery_stream_arn: &'a str,
    /// The Kinesis stream it reads (`sourceKinesisStreamArn`), `None` for Direct PUT.
    pub source_kinesis_stream_arn: Option<&'a str>,
    /// The region (`region`).
    pub region: &'a str,
}

/// One record of the event.
#[derive(Debug, Clone, Copy)]
pub struct EventRecord<'a> {
    /// `recordId`.
    pub record_id: &'a str,
    /// The record's bytes (sent base64-encoded as `data`).
    pub data: &'a [u8],
    /// `approximateArrivalTimestamp`, epoch milliseconds.
    pub arrival_ms: u64,
    /// `kinesisRecordMetadata`, for a record read from Kinesis.
    pub kinesis: Option<KinesisMetadata<'a>>,
}

/// Where a record sat in its Kinesis stream (`kinesisRecordMetadata`).
#[derive(Debug, Clone, Copy)]
pub struct KinesisMetadata<'a> {
    /// `sequenceNumber`.
    pub sequence_number: &'a str,
    /// `partitionKey`.
    pub partition_key: &'a str,
    /// `shardId` (`shardId-000000000000`).
    pub shard_id: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Envelope<'a> {
    invocation_id: &'a str,
    delivery_stream_arn: &'a str,
    #[serde(skip_serializing_if = "Option::is_none")]
    source_kinesis_stream_arn: Option<&'a str>,
    region: &'a str,
}

#[derive(Serialize)]
#[serde(rename_all = "camelCase")]
struct Metadata<'a> {
    sequence_number: &'a str,
    subsequence_number: u64,
    partition_key: &'a str,
    shard_id: &'a str,
    approximate_arrival_timestamp: u64,
}

/// The JSON of one record, an element of the event's `records`.
pub fn event_record(record: &EventRecord<'_>) -> Vec<u8> {
    let mut out = Vec::with_capacity(base64_len(record.data.len()) + 256);
    out.extend_from_slice(br#"{"recordId":"#);
    serde_json::to_writer(&mut out, record.record_id).expect("a string serialises");
    out.extend_from_slice(br#","approximateArrivalTimestamp":"#);
    out.extend_from_slice(record.arrival_ms.to_string().as_bytes());
    out.extend_from_slice(br#","data":""#);
    encode_base64_into(record.data, &mut out);
    out.push(b'"');
    if let Some(kinesis) = &record.kinesis {
        out.extend_from_slice(br#","kinesisRecordMetadata":"#);
        let metadata = Metadata {
            sequence_number: kinesis.sequence_number,
            subsequence_number: 0,
            partition_key: kinesis.partition_key,
            shard_id: kinesis.shard_id,
            approximate_arrival_timestamp: record.arrival_ms,
        };
        serde_json::to_writer(&mut out, &metadata).expect("metadata serialises");
    }
    out.push(b'}');
    out
}

/// The event's JSON around its records: the head, ending in `"records":[`, and the tail `]}`.
/// An event is the head, its records' JSON ([`event_record`]) separated by commas, the tail.
pub fn event_envelope(source: &EventSource<'_>, invocation_id: &str) -> (Vec<u8>, Vec<u8>) {
    let envelope = Envelope {
        invocation_id,
        delivery_stream_arn: source.delivery_stream_arn,
        source_kinesis_stream_arn: source.source_kinesis_stream_arn,
        region: source.region,
    };
    let mut head = serde_json::to_vec(&envelope).expect("the envelope serialises");
    head.pop(); // the closing brace
    head.extend_from_slice(br#","records":["#);
    (head, b"]}".to_vec())
}

/// The whole event for `records`.
pub fn firehose_event<'a>(
    source: &EventSource<'_>,
    invocation_id: &str,
    records: impl IntoIterator<Item = EventRecord<'a>>,
) -> Vec<u8> {
    let (mut out, tail) = event_envelope(source, invocation_id);
    for (index, record) in records.into_iter().enumerate() {
        if index > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&event_record(&record));
    }
    out.extend_from_slice(&tail);
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use aws_lambda_events::event::firehose::KinesisFirehoseEvent;

    const SOURCE: EventSource<'static> = EventSource {
        delivery_stream_arn: "arn:aws:firehose:us-east-1:123456789012:deliverystream/orders",
        source_kinesis_stream_arn: Some("arn:aws:kinesis:us-east-1:123456789012:stream/orders"),
        region: "us-east-1",
    };

    #[test]
    fn the_event_is_what_aws_lambda_events_reads_with_every_field() {
        let records = [
            EventRecord {
                record_id: "49546986683135544286507457936321625675700192471156785154",
                data: b"{\"a\": \"\xc3\xa9\"}",
                arrival_ms: 1_717_848_000_250,
                kinesis: Some(KinesisMetadata {
                    sequence_number: "49546986683135544286507457936321625675700192471156785154",
                    partition_key: "c\"1",
                    shard_id: "shardId-000000000003",
                }),
            },
            EventRecord {
                record_id: "direct-put",
                data: b"",
                arrival_ms: 7,
                kinesis: None,
            },
        ];
        let json = firehose_event(&SOURCE, "inv-1", records);
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({
                "invocationId": "inv-1",
                "deliveryStreamArn": SOURCE.delivery_stream_arn,
                "sourceKinesisStreamArn": SOURCE.source_kinesis_stream_arn,
                "region": "us-east-1",
                "records": [
                    {
                        "recordId": "49546986683135544286507457936321625675700192471156785154",
                        "approximateArrivalTimestamp": 1_717_848_000_250u64,
                        "data": "eyJhIjogIsOpIn0=",
                        "kinesisRecordMetadata": {
                            "sequenceNumber": "49546986683135544286507457936321625675700192471156785154",
                            "subsequenceNumber": 0,
                            "partitionKey": "c\"1",
                            "shardId": "shardId-000000000003",
                            "approximateArrivalTimestamp": 1_717_848_000_250u64,
                        },
                    },
                    {"recordId": "direct-put", "approximateArrivalTimestamp": 7, "data": ""},
                ],
            })
        );
        let event: KinesisFirehoseEvent = serde_json::from_slice(&json).unwrap();
        assert_eq!(event.records.len(), 2);
        assert_eq!(event.records[0].data.0, records[0].data);
        let ours: crate::FirehoseEvent = serde_json::from_slice(&json).unwrap();
        assert_eq!(ours.records[0].data, records[0].data);
    }

    #[test]
    fn an_event_without_records_or_kinesis_source_is_still_an_event() {
        let source = EventSource {
            source_kinesis_stream_arn: None,
            ..SOURCE
        };
        let json = firehose_event(&source, "i", []);
        let value: serde_json::Value = serde_json::from_slice(&json).unwrap();
        assert_eq!(
            value,
            serde_json::json!({"invocationId": "i", "deliveryStreamArn": SOURCE.delivery_stream_arn, "region": "us-east-1", "records": []})
        );
    }
}
