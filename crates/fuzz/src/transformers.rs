//! The four Firehose transformers on one valid Firehose event whose records carry the fuzzed
//! bytes as `data`. One target runs all four tables on each input: they share the decoding and
//! the rule set, so one input exercises every table's mapping at once.
//!
//! Each input record ([`crate::frame::records`]) becomes one Firehose record (Kinesis source):
//! its data is the record's bytes; its control byte varies the record id and, with bit 7, leaves
//! out `kinesisRecordMetadata`.

use std::collections::HashMap;

use aws_lambda_events::event::firehose::KinesisFirehoseEvent;
use aws_lambda_events::event::firehose::KinesisFirehoseResponse;
use orderflow_domain::{Partition, Table, parse_order};
use orderflow_transformer::{
    FirehoseEvent, RESULT_DROPPED, RESULT_OK, RESULT_PROCESSING_FAILED, event_json, handle_json,
    transform,
};
use orderflow_twin::delivery::conversion::{ConversionError, Mismatch, RowBatchBuilder};

use crate::frame;

/// The event's JSON: one record per input record, with distinct record ids.
fn firehose_event_of(input: &[u8]) -> Vec<u8> {
    let records = frame::records(input);
    let ids: Vec<(String, String, String)> = (0..records.len())
        .map(|index| {
            let sequence = format!("4959033827149025660855969253836157109592{index:016}");
            let record_id = format!("{sequence}{:03}{index:012}", records[index].control);
            (sequence, record_id, format!("customer-{index}"))
        })
        .collect();
    event_json::firehose_event(
        &event_json::EventSource {
            delivery_stream_arn: "arn:aws:firehose:us-east-1:000000000000:deliverystream/orders",
            source_kinesis_stream_arn: Some("arn:aws:kinesis:us-east-1:000000000000:stream/orders"),
            region: "us-east-1",
        },
        "00000000-0000-4000-8000-000000000000",
        records.iter().zip(&ids).enumerate().map(
            |(index, (record, (sequence, record_id, partition_key)))| event_json::EventRecord {
                record_id,
                data: record.data,
                arrival_ms: 1_717_848_000_000 + index as u64,
                kinesis: (record.control & 0x80 == 0).then_some(event_json::KinesisMetadata {
                    sequence_number: sequence,
                    partition_key,
                    shard_id: "shardId-000000000000",
                }),
            },
        ),
    )
}

/// The transformers' contract (`docs/design.md` section 5), for each of the four tables:
///
/// - one answer per input record, in input order, with the same `recordId`;
/// - a record that is not a valid order is `ProcessingFailed` with its original bytes and no
///   partition keys;
/// - a valid order is `Ok` with exactly the table's rows for it and the `year/month/day` of its
///   `order_date` as partition keys, or `Dropped` (no data) when the table has no row for it;
/// - every `Ok` record's rows convert to the table's columns in `sql/tables.json` (the twin's
///   strict JSON-to-Arrow conversion, as Firehose's record format conversion reads them), but
///   for an `order_date` finer than microseconds, whose `orders` row the twin refuses (it keeps
///   microseconds and never truncates);
/// - the summary counts the answers, and its `response_bytes` is the exact size of the response
///   as Lambda sends it; `handle_json` (what the Lambdas run: the event read as
///   [`FirehoseEvent`], the response written straight to JSON) answers the same response, in
///   exactly `response_bytes` bytes (compared as values: `partitionKeys` is a `HashMap`, whose
///   order differs between two maps of the same keys).
pub fn check(input: &[u8]) {
    let json = firehose_event_of(input);
    let event: KinesisFirehoseEvent =
        serde_json::from_slice(&json).expect("a valid Firehose event decodes");
    let own_event: FirehoseEvent =
        serde_json::from_slice(&json).expect("the transformer's own event type decodes it too");
    let orders: Vec<_> = event
        .records
        .iter()
        .map(|record| parse_order(&record.data.0).ok())
        .collect();
    for table in Table::ALL {
        let (response, summary) = transform(&event, table);
        assert_eq!(
            response.records.len(),
            event.records.len(),
            "{table}: one answer per record"
        );
        let (mut ok, mut rows, mut invalid, mut dropped) = (0, 0, 0, 0);
        for ((answer, record), order) in response.records.iter().zip(&event.records).zip(&orders) {
            assert_eq!(
                answer.record_id, record.record_id,
                "{table}: same record id, same order"
            );
            let result = answer.result.as_deref();
            let Some(order) = order else {
                assert_eq!(
                    result,
                    Some(RESULT_PROCESSING_FAILED),
                    "{table}: invalid order"
                );
                assert_eq!(answer.data.0, record.data.0, "{table}: original bytes kept");
                assert!(answer.metadata.partition_keys.is_empty());
                invalid += 1;
                continue;
            };
            let mut expected_rows = Vec::new();
            let count = table.write_rows(order, &mut expected_rows);
            if count == 0 {
                assert_eq!(result, Some(RESULT_DROPPED), "{table}: no row, dropped");
                assert!(
                    answer.data.0.is_empty(),
                    "{table}: a dropped record has no data"
                );
                dropped += 1;
                continue;
            }
            assert_eq!(result, Some(RESULT_OK), "{table}: a valid order is Ok");
            assert!(
                answer.data.0 == expected_rows,
                "{table}: the data is the order's rows"
            );
            let partition = Partition::of(&order.order_date);
            let expected_keys: HashMap<String, String> = partition
                .keys()
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect();
            assert_eq!(
                answer.metadata.partition_keys, expected_keys,
                "{table}: partition keys of order_date"
            );
            // `order_date` may have up to 9 fraction digits (`docs/design.md` section 1) and the
            // `orders` row keeps them all, but the twin stores microseconds and refuses a finer
            // timestamp rather than truncate it (`crates/twin/src/delivery/conversion.rs`): exactly those
            // rows, and only for that reason, do not convert.
            let sub_microsecond =
                table == Table::Orders && order.order_date.timestamp_subsec_nanos() % 1_000 != 0;
            let mut builder = RowBatchBuilder::new(table);
            match builder.push_record(&answer.data.0) {
                Ok(converted) => {
                    assert!(
                        !sub_microsecond,
                        "{table}: a finer timestamp is never truncated"
                    );
                    assert_eq!(converted, count, "{table}: every row converts");
                }
                Err(ConversionError::TypeMismatch {
                    line: 1,
                    ref column,
                    mismatch: Mismatch::SubMicrosecond,
                    ..
                }) if sub_microsecond && column == "order_timestamp" => {}
                Err(error) => {
                    panic!("{table}: an Ok record's rows do not match sql/tables.json: {error}")
                }
            }
            ok += 1;
            rows += count;
        }
        assert_eq!(summary.records, event.records.len());
        assert_eq!(summary.over_budget, 0, "{table}: small inputs always fit");
        assert_eq!(
            (summary.ok, summary.rows, summary.invalid, summary.dropped),
            (ok, rows, invalid, dropped),
            "{table}: summary counts"
        );
        let sent = serde_json::to_vec(&response).expect("the response serialises");
        assert_eq!(
            summary.response_bytes,
            sent.len(),
            "{table}: response_bytes is the exact size"
        );
        let answered = handle_json(&own_event, table).expect("a small response is under the limit");
        assert_eq!(
            answered.len(),
            summary.response_bytes,
            "{table}: handle_json's response is response_bytes long"
        );
        let answered: KinesisFirehoseResponse =
            serde_json::from_str(answered.as_str()).expect("handle_json answers a response");
        assert!(
            answered == response,
            "{table}: handle_json answers what transform computed"
        );
    }
}
