//! Turning a Kinesis batch into DynamoDB writes: decode, validate, map, collapse duplicates.
//! Pure: no I/O, no clock.

use std::cmp::Ordering;
use std::collections::HashMap;
use std::collections::hash_map::Entry;

use aws_lambda_events::event::kinesis::KinesisEventRecord;
use aws_sdk_dynamodb::types::AttributeValue;
use orderflow_domain::{InvalidOrder, Provenance, order_item, parse_order};

/// One item to put, and the record it came from.
#[derive(Debug, Clone, PartialEq)]
pub struct PendingWrite {
    /// The Kinesis sequence number of the record (the `batchItemFailures` identifier).
    pub sequence_number: String,
    /// `(customer_id, order_id)`: the item's key.
    pub key: (String, String),
    /// The full item.
    pub item: HashMap<String, AttributeValue>,
}

/// A record that is not a valid order: skipped, never retried (its raw bytes are kept by the
/// Firehose error prefix).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SkippedRecord {
    /// The Kinesis sequence number.
    pub sequence_number: String,
    /// The shard, from the record's `eventID` (`shardId-...:seq`).
    pub shard_id: String,
    /// Why it is invalid.
    pub error: InvalidOrder,
}

/// What to do with one batch.
#[derive(Debug, Default)]
pub struct Plan {
    /// Items to write, one per distinct key, in first-seen order.
    pub writes: Vec<PendingWrite>,
    /// Invalid records.
    pub skipped: Vec<SkippedRecord>,
    /// Records superseded by a later record with the same key in this batch.
    pub collapsed: usize,
}

/// Decodes and validates every record, maps valid ones to items, and collapses duplicate keys to
/// the record with the highest sequence number.
pub fn plan_batch(records: &[KinesisEventRecord]) -> Plan {
    let mut plan = Plan::default();
    let mut by_key: HashMap<(String, String), usize> = HashMap::with_capacity(records.len());
    for record in records {
        let kinesis = &record.kinesis;
        let order = match parse_order(&kinesis.data.0) {
            Ok(order) => order,
            Err(error) => {
                plan.skipped.push(SkippedRecord {
                    sequence_number: kinesis.sequence_number.clone(),
                    shard_id: shard_of(record).to_owned(),
                    error,
                });
                continue;
            }
        };
        let provenance = Provenance {
            ingested_at: kinesis.approximate_arrival_timestamp.0,
            source_sequence_number: &kinesis.sequence_number,
        };
        let write = PendingWrite {
            sequence_number: kinesis.sequence_number.clone(),
            key: (order.customer_id.to_string(), order.order_id.to_string()),
            item: order_item(&order, &provenance),
        };
        match by_key.entry(write.key.clone()) {
            Entry::Vacant(slot) => {
                slot.insert(plan.writes.len());
                plan.writes.push(write);
            }
            Entry::Occupied(slot) => {
                plan.collapsed += 1;
                let kept = &mut plan.writes[*slot.get()];
                if compare_sequence_numbers(&write.sequence_number, &kept.sequence_number)
                    == Ordering::Greater
                {
                    *kept = write;
                }
            }
        }
    }
    plan
}

/// The shard id of a record: the part of `eventID` before the `:`.
pub fn shard_of(record: &KinesisEventRecord) -> &str {
    record
        .event_id
        .as_deref()
        .and_then(|id| id.split_once(':').map(|(shard, _)| shard))
        .unwrap_or("unknown")
}

/// Orders Kinesis sequence numbers numerically (they are decimal strings of up to 128 digits).
pub fn compare_sequence_numbers(a: &str, b: &str) -> Ordering {
    let a = a.trim_start_matches('0');
    let b = b.trim_start_matches('0');
    a.len().cmp(&b.len()).then_with(|| a.cmp(b))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sequence_numbers_compare_as_numbers() {
        assert_eq!(compare_sequence_numbers("9", "10"), Ordering::Less);
        assert_eq!(compare_sequence_numbers("0010", "10"), Ordering::Equal);
        assert_eq!(
            compare_sequence_numbers(
                "49590338271490256608559692538361571095921575989136588898",
                "49590338271490256608559692538361571095921575989136588899"
            ),
            Ordering::Less
        );
    }
}
