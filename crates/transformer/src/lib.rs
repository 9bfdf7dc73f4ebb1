//! The Firehose transformer driver shared by the four table Lambdas (`docs/design.md`
//! section 5). Each binary only names its [`Table`]; the mapping of an order to that table's rows
//! is [`Table::write_rows`] in the domain crate.
//!
//! Contract with Firehose, per input record and in input order, same `recordId`:
//! - `Ok`: `data` is the table's rows as JSON lines, `metadata.partitionKeys` is
//!   `{year, month, day}` of `order_date` in UTC;
//! - `ProcessingFailed`: the record is not a valid order; `data` is the original bytes, so
//!   Firehose writes them to the error prefix;
//! - `Dropped`: a valid order with no row for this table.
//!
//! The whole response stays under Lambda's 6 MB payload limit: a record whose rows would not fit
//! is returned `ProcessingFailed` with its original bytes (kept in the error prefix, logged),
//! never silently dropped.

use std::collections::HashMap;

use aws_lambda_events::event::firehose::{
    KinesisFirehoseEvent, KinesisFirehoseEventRecord, KinesisFirehoseResponse,
    KinesisFirehoseResponseRecord, KinesisFirehoseResponseRecordMetadata,
};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use orderflow_domain::{Partition, Table, parse_order};

/// Lambda's limit on a synchronous response, in bytes.
pub const RESPONSE_LIMIT_BYTES: usize = 6 * 1024 * 1024;

/// Result value for a transformed record.
pub const RESULT_OK: &str = "Ok";
/// Result value for a record that is not a valid order.
pub const RESULT_PROCESSING_FAILED: &str = "ProcessingFailed";
/// Result value for a valid order with no row for the table.
pub const RESULT_DROPPED: &str = "Dropped";

/// JSON bytes a response record takes besides its base64 data and record id (keys, result,
/// partition keys), rounded up.
const RECORD_OVERHEAD_BYTES: usize = 160;

/// Counts of one invocation.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TransformSummary {
    /// Records in the event.
    pub records: usize,
    /// Records returned `Ok`.
    pub ok: usize,
    /// Rows written in `Ok` records.
    pub rows: usize,
    /// Records returned `ProcessingFailed` because they are not valid orders.
    pub invalid: usize,
    /// Records returned `ProcessingFailed` because their rows did not fit in the response.
    pub over_budget: usize,
    /// Records returned `Dropped`.
    pub dropped: usize,
}

fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

fn encoded_size(record_id: Option<&String>, data_len: usize) -> usize {
    RECORD_OVERHEAD_BYTES + record_id.map_or(0, String::len) + base64_len(data_len)
}

/// Transforms one Firehose batch for `table`. Pure: no I/O.
pub fn transform(
    event: &KinesisFirehoseEvent,
    table: Table,
) -> (KinesisFirehoseResponse, TransformSummary) {
    let mut summary = TransformSummary {
        records: event.records.len(),
        ..Default::default()
    };
    // Size of every record's original bytes from here on: a fallback that always fits.
    let mut originals_left: usize = event
        .records
        .iter()
        .map(|r| encoded_size(r.record_id.as_ref(), r.data.0.len()))
        .sum();
    let mut budget_used = 64; // `{"records":[...]}`
    let mut response = KinesisFirehoseResponse::default();
    response.records.reserve(event.records.len());
    for (index, record) in event.records.iter().enumerate() {
        let original_size = encoded_size(record.record_id.as_ref(), record.data.0.len());
        originals_left -= original_size;
        let (mut out, rows) = transform_one(record, table);
        let size = encoded_size(record.record_id.as_ref(), out.data.0.len());
        if out.result.as_deref() == Some(RESULT_OK)
            && budget_used + size + originals_left > RESPONSE_LIMIT_BYTES
        {
            tracing::warn!(
                record_index = index,
                table = table.name(),
                "rows do not fit in the response: returning the record as ProcessingFailed"
            );
            summary.over_budget += 1;
            out = failed(record);
        } else {
            match out.result.as_deref() {
                Some(RESULT_OK) => {
                    summary.ok += 1;
                    summary.rows += rows;
                }
                Some(RESULT_DROPPED) => summary.dropped += 1,
                _ => summary.invalid += 1,
            }
        }
        budget_used += encoded_size(record.record_id.as_ref(), out.data.0.len());
        response.records.push(out);
    }
    (response, summary)
}

/// Transforms one record (no budget check); also returns how many rows it holds.
fn transform_one(
    record: &KinesisFirehoseEventRecord,
    table: Table,
) -> (KinesisFirehoseResponseRecord, usize) {
    let order = match parse_order(&record.data.0) {
        Ok(order) => order,
        Err(error) => {
            tracing::warn!(record_id = record.record_id.as_deref().unwrap_or(""), table = table.name(), kind = error.kind(), reason = %error, "invalid order record");
            return (failed(record), 0);
        }
    };
    let mut rows = Vec::with_capacity(record.data.0.len());
    let count = table.write_rows(&order, &mut rows);
    let mut out = KinesisFirehoseResponseRecord::default();
    out.record_id = record.record_id.clone();
    if count == 0 {
        out.result = Some(RESULT_DROPPED.to_owned());
        out.data.0 = Vec::new();
        return (out, 0);
    }
    let partition = Partition::of(&order.order_date);
    let mut metadata = KinesisFirehoseResponseRecordMetadata::default();
    metadata.partition_keys = partition
        .keys()
        .into_iter()
        .map(|(k, v)| (k.to_owned(), v.to_owned()))
        .collect::<HashMap<_, _>>();
    out.result = Some(RESULT_OK.to_owned());
    out.data.0 = rows;
    out.metadata = metadata;
    (out, count)
}

/// The `ProcessingFailed` answer: the original bytes, so Firehose keeps them in the error prefix.
fn failed(record: &KinesisFirehoseEventRecord) -> KinesisFirehoseResponseRecord {
    let mut out = KinesisFirehoseResponseRecord::default();
    out.record_id = record.record_id.clone();
    out.result = Some(RESULT_PROCESSING_FAILED.to_owned());
    out.data = record.data.clone();
    out
}

/// Runs the Lambda runtime loop for one table's transformer.
pub async fn run(table: Table) -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<KinesisFirehoseEvent>| async move {
            let (response, summary) = transform(&event.payload, table);
            tracing::info!(
                table = table.name(),
                records = summary.records,
                ok = summary.ok,
                rows = summary.rows,
                invalid = summary.invalid,
                over_budget = summary.over_budget,
                dropped = summary.dropped,
                "batch transformed"
            );
            Ok::<_, Error>(response)
        },
    ))
    .await
}
