//! The consumer on a valid Kinesis event whose records carry the fuzzed bytes as `data`.
//!
//! Each input record ([`crate::frame::records`]) becomes one Kinesis record: its data is the
//! record's bytes, its control byte picks
//!
//! - bits 0-2: what the in-memory DynamoDB does with the record's put ([`Put`]);
//! - bits 3-4: how `approximateArrivalTimestamp` is spelled (seconds with three or one fraction
//!   digits, exponent notation, whole seconds);
//! - bits 5-6: the gap to the previous sequence number (1 to 4; they only increase, as in a
//!   shard);
//! - bit 7: no `eventID` (the shard is then unknown).
//!
//! The event goes through the JSON decoding Lambda's runtime uses ([`OrderRecordsEvent`]), then
//! [`plan_batch`] and [`handle_batch`] with a [`MemoryTable`] instead of DynamoDB.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use orderflow_consumer::{
    ItemWriter, OrderRecordsEvent, PutOutcome, WriteError, WritePolicy, handle_batch, plan_batch,
};
use orderflow_domain::{Provenance, SOURCE_SEQUENCE_NUMBER, order_item, parse_order};

use crate::frame::{self, Record};

/// What the in-memory table does with one record's put (control bits 0-2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Put {
    /// Written at the first attempt.
    Written,
    /// No connection on every attempt ([`WriteError::Unreachable`]).
    Unreachable,
    /// Refused by the condition: a newer version is stored.
    Superseded,
    /// Throttled this many times, then written.
    RetriedThenWritten(u32),
    /// Refused for good (e.g. access denied).
    Fatal,
    /// Throttled on every attempt.
    AlwaysThrottled,
    /// Never answers (the put times out at the deadline).
    Hangs,
}

impl Put {
    fn of(control: u8) -> Put {
        match control & 0b111 {
            0 => Put::Written,
            1 => Put::Unreachable,
            2 => Put::Superseded,
            3 => Put::RetriedThenWritten(1),
            4 => Put::RetriedThenWritten(3),
            5 => Put::Fatal,
            6 => Put::AlwaysThrottled,
            _ => Put::Hangs,
        }
    }

    /// Whether the record ends done (written, or a newer version is stored), given whether
    /// some put of the batch hangs.
    ///
    /// The consumer writes in rounds: every pending put is tried once per round, all at once
    /// (the batch has at most [`frame::MAX_RECORDS`] writes, within the default concurrency), and
    /// the round ends when its last put answers. A put that never answers is cut off at the
    /// deadline, so a batch with one ends after its first round: a put that needs a retry is
    /// never retried and stays unwritten, which the consumer reports like any other unwritten
    /// record (`crates/consumer/src/write.rs`: whatever is unwritten at the deadline is returned).
    fn done(self, batch_hangs: bool) -> bool {
        match self {
            Put::Written | Put::Superseded => true,
            Put::RetriedThenWritten(_) => !batch_hangs,
            Put::Unreachable | Put::Fatal | Put::AlwaysThrottled | Put::Hangs => false,
        }
    }

    /// Whether the put never ends before the deadline (the loop then uses the whole
    /// invocation). An unreachable table is not one of them: after
    /// [`WritePolicy::unreachable_rounds`] rounds in which every call found it unreachable, the
    /// loop gives up early.
    fn until_deadline(self) -> bool {
        matches!(self, Put::AlwaysThrottled | Put::Hangs)
    }
}

/// An in-memory stand-in for the orders table: each put ends as its record's [`Put`] says.
#[derive(Debug, Default)]
pub struct MemoryTable {
    puts: HashMap<String, Put>,
    attempts: Mutex<HashMap<String, u32>>,
    written: Mutex<Vec<(String, HashMap<String, AttributeValue>)>>,
}

impl ItemWriter for MemoryTable {
    fn put_if_not_newer(
        &self,
        _table: &str,
        item: HashMap<String, AttributeValue>,
        sequence_number: &str,
    ) -> impl Future<Output = Result<PutOutcome, WriteError>> + Send {
        assert_eq!(
            item.get(SOURCE_SEQUENCE_NUMBER),
            Some(&AttributeValue::S(sequence_number.to_owned())),
            "the put's condition uses the item's own sequence number"
        );
        let put = *self
            .puts
            .get(sequence_number)
            .expect("puts only for sequence numbers of the batch");
        let attempt = {
            let mut attempts = self.attempts.lock().expect("not poisoned");
            let attempt = attempts.entry(sequence_number.to_owned()).or_default();
            *attempt += 1;
            *attempt
        };
        let outcome = match put {
            Put::Written => Some(Ok(PutOutcome::Written)),
            Put::Superseded => Some(Ok(PutOutcome::Superseded)),
            Put::RetriedThenWritten(throttles) if attempt > throttles => {
                Some(Ok(PutOutcome::Written))
            }
            Put::RetriedThenWritten(_) | Put::AlwaysThrottled => Some(Err(WriteError::Retryable(
                "ProvisionedThroughputExceededException".into(),
            ))),
            Put::Fatal => Some(Err(WriteError::Fatal("AccessDeniedException".into()))),
            Put::Unreachable => Some(Err(WriteError::Unreachable(
                "dispatch failure: connection refused".into(),
            ))),
            Put::Hangs => None,
        };
        if let Some(Ok(PutOutcome::Written)) = outcome {
            self.written
                .lock()
                .expect("not poisoned")
                .push((sequence_number.to_owned(), item));
        }
        async move {
            match outcome {
                Some(outcome) => outcome,
                None => std::future::pending().await,
            }
        }
    }
}

/// The 56-digit sequence number `offset` after a fixed first one.
fn sequence_number(offset: u64) -> String {
    format!("4959033827149025660855969253836157109592{offset:016}")
}

/// The event's JSON for `records`, with each record's sequence number and exact arrival time.
///
/// Written as text, not through `serde_json::Value`: every value is digits, base64 or a fixed
/// name, so nothing needs escaping, and the arrival time goes in exactly as spelled (serde_json
/// would reprint `1.7178E9` as a plain decimal).
fn event_json(records: &[Record<'_>]) -> (String, Vec<(String, DateTime<Utc>)>) {
    use std::fmt::Write as _;

    let mut offset = 0u64;
    let mut expected = Vec::with_capacity(records.len());
    let mut text = String::from("{\"Records\":[");
    for (index, record) in records.iter().enumerate() {
        offset += 1 + u64::from((record.control >> 5) & 0b11);
        let sequence = sequence_number(offset);
        let seconds = 1_717_848_000 + 37 * index as i64;
        let millis = (u32::from(record.control) * 7 + 13 * index as u32) % 1000;
        let (arrival, millis) = match (record.control >> 3) & 0b11 {
            0 => (format!("{seconds}.{millis:03}"), millis),
            1 => (format!("{seconds}.{}", millis / 100), millis / 100 * 100),
            2 => {
                let value = seconds as f64 + f64::from(millis) / 1000.0;
                (format!("{value:E}"), millis)
            }
            _ => (seconds.to_string(), 0),
        };
        let at = DateTime::from_timestamp(seconds, millis * 1_000_000).expect("a time");
        if index > 0 {
            text.push(',');
        }
        let _ = write!(
            text,
            "{{\"kinesis\":{{\"kinesisSchemaVersion\":\"1.0\",\"partitionKey\":\"customer-{index}\",\
             \"sequenceNumber\":\"{sequence}\",\"data\":\"{}\",\
             \"approximateArrivalTimestamp\":{arrival}}},\"eventSource\":\"aws:kinesis\",\
             \"eventVersion\":\"1.0\",\"eventName\":\"aws:kinesis:record\",\
             \"invokeIdentityArn\":\"arn:aws:iam::000000000000:role/consumer\",\
             \"awsRegion\":\"us-east-1\",\
             \"eventSourceARN\":\"arn:aws:kinesis:us-east-1:000000000000:stream/orders\"",
            BASE64.encode(record.data),
        );
        if record.control & 0x80 == 0 {
            let _ = write!(
                text,
                ",\"eventID\":\"shardId-00000000000{}:{sequence}\"",
                index % 4
            );
        }
        text.push('}');
        expected.push((sequence, at));
    }
    text.push_str("]}");
    (text, expected)
}

/// The consumer's contract on the batch `input` describes:
///
/// - the event decodes, with each record's bytes, sequence number and exact arrival time;
/// - the plan: every record is exactly one of invalid (skipped, with its sequence number and
///   shard), planned for a write, or collapsed into a later record with the same key; the
///   planned write of a key is its record with the highest sequence number, keys in first-seen
///   order, with that record's item;
/// - the handler: `batchItemFailures` are exactly the planned records not written (their put
///   failed for good, found DynamoDB unreachable, was throttled or unanswered until the
///   deadline, or needed a retry in a batch whose first round a hanging put held until the
///   deadline: [`Put::done`]), sorted by sequence number; never a record that was written or
///   superseded, and no invalid or collapsed record; exactly the planned items whose put
///   succeeded were written; the summary counts all of this;
/// - the handler uses the whole invocation only when some put never ends (always throttled, no
///   answer); otherwise, an unreachable table included, it returns before the deadline.
pub fn check(input: &[u8]) {
    let records = frame::records(input);
    let (json, expected) = event_json(&records);
    let event: OrderRecordsEvent =
        serde_json::from_str(&json).expect("a valid Kinesis event decodes");
    let event = event.0;
    assert_eq!(event.records.len(), records.len(), "every record decodes");
    for ((decoded, record), (sequence, at)) in event.records.iter().zip(&records).zip(&expected) {
        assert_eq!(decoded.kinesis.data.0, record.data, "data decodes exactly");
        assert_eq!(&decoded.kinesis.sequence_number, sequence);
        assert_eq!(
            decoded.kinesis.approximate_arrival_timestamp.0, *at,
            "the arrival time decodes exactly"
        );
    }

    // The oracle: each record on its own, then the highest sequence number per key.
    let mut invalid = Vec::new();
    let mut keys: Vec<(String, String)> = Vec::new();
    let mut kept: HashMap<(String, String), usize> = HashMap::new();
    let mut valid = 0;
    for (index, record) in event.records.iter().enumerate() {
        match parse_order(&record.kinesis.data.0) {
            Ok(order) => {
                valid += 1;
                let key = (order.customer_id.to_string(), order.order_id.to_string());
                // Sequence numbers increase through the batch: a later record always wins.
                if kept.insert(key.clone(), index).is_none() {
                    keys.push(key);
                }
            }
            Err(_) => invalid.push(index),
        }
    }

    let plan = plan_batch(&event.records);
    let skipped: Vec<(&str, &str)> = plan
        .skipped
        .iter()
        .map(|s| (s.sequence_number.as_str(), s.shard_id.as_str()))
        .collect();
    let expected_skipped: Vec<(&str, &str)> = invalid
        .iter()
        .map(|&index| {
            let record = &event.records[index];
            let shard = if records[index].control & 0x80 == 0 {
                record
                    .event_id
                    .as_deref()
                    .and_then(|id| id.split_once(':'))
                    .map(|(shard, _)| shard)
                    .expect("an eventID with a shard")
            } else {
                "unknown"
            };
            (record.kinesis.sequence_number.as_str(), shard)
        })
        .collect();
    assert_eq!(
        skipped, expected_skipped,
        "exactly the invalid records are skipped"
    );
    assert_eq!(plan.collapsed, valid - keys.len(), "collapsed count");
    assert_eq!(plan.writes.len(), keys.len(), "one write per key");
    for (write, key) in plan.writes.iter().zip(&keys) {
        let record = &event.records[kept[key]];
        assert_eq!(&write.key, key, "writes in first-seen key order");
        assert_eq!(
            write.sequence_number, record.kinesis.sequence_number,
            "the write of a key is its latest record"
        );
        let order = parse_order(&record.kinesis.data.0).expect("valid");
        let provenance = Provenance {
            ingested_at: record.kinesis.approximate_arrival_timestamp.0,
            source_sequence_number: &record.kinesis.sequence_number,
        };
        assert!(
            write.item == order_item(&order, &provenance),
            "the item is the record's order with its provenance"
        );
    }

    let table = MemoryTable {
        puts: event
            .records
            .iter()
            .zip(&records)
            .map(|(decoded, record)| {
                (
                    decoded.kinesis.sequence_number.clone(),
                    Put::of(record.control),
                )
            })
            .collect(),
        ..MemoryTable::default()
    };
    let policy = WritePolicy::default();
    assert!(
        frame::MAX_RECORDS <= policy.concurrency,
        "every put of a batch starts in the first round"
    );
    let puts: Vec<Put> = plan
        .writes
        .iter()
        .map(|write| table.puts[&write.sequence_number])
        .collect();
    let batch_hangs = puts.contains(&Put::Hangs);
    let (response, summary, early) = crate::block_on(async {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(30);
        let (response, summary) = handle_batch(&event, &table, "orders", &policy, deadline).await;
        (response, summary, tokio::time::Instant::now() < deadline)
    });
    assert_eq!(
        early,
        !puts.iter().any(|put| put.until_deadline()),
        "the handler waits for the deadline exactly when a put never ends"
    );
    let reported: Vec<&str> = response
        .batch_item_failures
        .iter()
        .map(|failure| {
            failure
                .item_identifier
                .as_deref()
                .expect("a failure names its record")
        })
        .collect();
    let mut not_done: Vec<&str> = Vec::new();
    let mut written: Vec<&str> = Vec::new();
    let mut superseded = 0;
    for (write, put) in plan.writes.iter().zip(&puts) {
        match put {
            Put::Superseded => superseded += 1,
            put if put.done(batch_hangs) => written.push(&write.sequence_number),
            _ => not_done.push(&write.sequence_number),
        }
    }
    not_done.sort_unstable();
    assert_eq!(
        reported, not_done,
        "batchItemFailures are exactly the records not written, sorted"
    );
    let mut stored: Vec<(String, HashMap<String, AttributeValue>)> =
        table.written.into_inner().expect("not poisoned");
    stored.sort_by(|a, b| a.0.cmp(&b.0));
    written.sort_unstable();
    assert_eq!(
        stored.iter().map(|(s, _)| s.as_str()).collect::<Vec<_>>(),
        written,
        "exactly the planned writes that succeeded were stored, once each"
    );
    for (sequence, item) in &stored {
        let write = plan
            .writes
            .iter()
            .find(|w| &w.sequence_number == sequence)
            .expect("planned");
        assert!(*item == write.item, "the stored item is the planned item");
    }
    assert_eq!(summary.records, records.len());
    assert_eq!(summary.invalid, invalid.len());
    assert_eq!(summary.collapsed, plan.collapsed);
    assert_eq!(summary.written, written.len());
    assert_eq!(summary.superseded, superseded);
    assert_eq!(summary.failed, not_done.len());
}
