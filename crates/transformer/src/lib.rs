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
//! The whole response stays under Lambda's 6 MB payload limit, counted exactly (the compact JSON
//! `lambda_runtime` sends): in input order, a record is `Ok` if its rows fit beside the answers
//! before it and the smallest answer of every record after it; otherwise it is returned
//! `ProcessingFailed` with its original bytes (kept in the error prefix, logged), never silently
//! dropped. If even the smallest answer to every record is over the limit, the invocation fails
//! ([`ResponseTooLarge`]) and Firehose retries it, then writes the records to the error prefix.

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
    /// Exact size of the response as Lambda sends it (compact JSON), in bytes. Above
    /// [`RESPONSE_LIMIT_BYTES`] only when even the smallest possible answer to every record does
    /// not fit; [`handle`] then fails the invocation instead of answering.
    pub response_bytes: usize,
}

/// The response is larger than Lambda accepts even with every record at its smallest answer.
#[derive(Debug, thiserror::Error)]
#[error(
    "the smallest possible response to this event is {response_bytes} bytes, over Lambda's \
     {RESPONSE_LIMIT_BYTES}-byte limit: failing the invocation so Firehose retries it"
)]
pub struct ResponseTooLarge {
    /// The size of the response that was refused, in bytes.
    pub response_bytes: usize,
}

/// Counts the bytes written to it.
struct ByteCounter(usize);

impl std::io::Write for ByteCounter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0 += buf.len();
        Ok(buf.len())
    }

    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

/// Bytes `value` takes as compact JSON, as `lambda_runtime` serialises the response.
fn json_len(value: &impl serde::Serialize) -> usize {
    let mut counter = ByteCounter(0);
    match serde_json::to_writer(&mut counter, value) {
        Ok(()) => counter.0,
        // Cannot happen for these types (string keys, a writer that never fails); counting it as
        // over the limit on its own keeps the limit safe anyway.
        Err(_) => RESPONSE_LIMIT_BYTES + 1,
    }
}

/// Bytes of the base64 (standard, padded) text of `bytes` bytes.
fn base64_len(bytes: usize) -> usize {
    bytes.div_ceil(3) * 4
}

/// Exact bytes `record` takes in the response JSON, `data` as base64 included. Serialises the
/// entry without its data (`"data":""`) and adds the base64 length: base64 needs no JSON
/// escaping, so this is exactly the length of the full entry, without encoding the data twice.
fn entry_len(record: &mut KinesisFirehoseResponseRecord) -> usize {
    let data = std::mem::take(&mut record.data.0);
    let len = json_len(record) + base64_len(data.len());
    record.data.0 = data;
    len
}

/// One record's answer before the budget: what it gets if there is room, and the size of the
/// `ProcessingFailed` answer it falls back to otherwise (only for `Ok`).
struct Candidate {
    out: KinesisFirehoseResponseRecord,
    rows: usize,
    len: usize,
    fallback_len: Option<usize>,
}

impl Candidate {
    /// The smallest answer this record can get.
    fn min_len(&self) -> usize {
        self.fallback_len.map_or(self.len, |f| f.min(self.len))
    }
}

/// Transforms one Firehose batch for `table`. Pure: no I/O.
///
/// Greedy in input order under an exact byte budget: a record is answered `Ok` if its entry fits
/// together with everything answered before it and the smallest possible answer of every record
/// after it; otherwise it is answered `ProcessingFailed` with its original bytes. The response is
/// therefore at most [`RESPONSE_LIMIT_BYTES`] whenever the smallest answer to every record fits
/// (see [`TransformSummary::response_bytes`]).
pub fn transform(
    event: &KinesisFirehoseEvent,
    table: Table,
) -> (KinesisFirehoseResponse, TransformSummary) {
    let mut summary = TransformSummary {
        records: event.records.len(),
        ..Default::default()
    };
    let candidates: Vec<Candidate> = event
        .records
        .iter()
        .map(|record| {
            let (mut out, rows) = transform_one(record, table);
            let len = entry_len(&mut out);
            let fallback_len = (out.result.as_deref() == Some(RESULT_OK))
                .then(|| json_len(&failed_without_data(record)) + base64_len(record.data.0.len()));
            Candidate {
                out,
                rows,
                len,
                fallback_len,
            }
        })
        .collect();
    // `{"records":[]}`, the commas between entries, and every record at its smallest answer.
    let mut total = json_len(&KinesisFirehoseResponse::default())
        + candidates.len().saturating_sub(1)
        + candidates.iter().map(Candidate::min_len).sum::<usize>();
    let mut response = KinesisFirehoseResponse::default();
    response.records.reserve(candidates.len());
    for (index, (candidate, record)) in candidates.into_iter().zip(&event.records).enumerate() {
        let min_len = candidate.min_len();
        let out = match candidate.fallback_len {
            Some(fallback_len) if total - min_len + candidate.len > RESPONSE_LIMIT_BYTES => {
                tracing::warn!(
                    record_index = index,
                    table = table.name(),
                    "rows do not fit in the response: returning the record as ProcessingFailed"
                );
                summary.over_budget += 1;
                total = total - min_len + fallback_len;
                failed(record)
            }
            _ => {
                match candidate.out.result.as_deref() {
                    Some(RESULT_OK) => {
                        summary.ok += 1;
                        summary.rows += candidate.rows;
                    }
                    Some(RESULT_DROPPED) => summary.dropped += 1,
                    _ => summary.invalid += 1,
                }
                total = total - min_len + candidate.len;
                candidate.out
            }
        };
        response.records.push(out);
    }
    summary.response_bytes = total;
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
    let mut out = failed_without_data(record);
    out.data = record.data.clone();
    out
}

/// The `ProcessingFailed` answer without its data, to measure it without copying the bytes.
fn failed_without_data(record: &KinesisFirehoseEventRecord) -> KinesisFirehoseResponseRecord {
    let mut out = KinesisFirehoseResponseRecord::default();
    out.record_id = record.record_id.clone();
    out.result = Some(RESULT_PROCESSING_FAILED.to_owned());
    out
}

/// One invocation: [`transform`], the summary logged (counts only, no payload), and the response
/// refused with [`ResponseTooLarge`] if even the smallest answer to every record is over
/// [`RESPONSE_LIMIT_BYTES`], so the invocation fails and Firehose retries it.
pub fn handle(
    event: &KinesisFirehoseEvent,
    table: Table,
) -> Result<KinesisFirehoseResponse, ResponseTooLarge> {
    let (response, summary) = transform(event, table);
    tracing::info!(
        table = table.name(),
        records = summary.records,
        ok = summary.ok,
        rows = summary.rows,
        invalid = summary.invalid,
        over_budget = summary.over_budget,
        dropped = summary.dropped,
        response_bytes = summary.response_bytes,
        "batch transformed"
    );
    if summary.response_bytes > RESPONSE_LIMIT_BYTES {
        let error = ResponseTooLarge {
            response_bytes: summary.response_bytes,
        };
        tracing::error!(table = table.name(), %error, "response over the limit");
        return Err(error);
    }
    Ok(response)
}

/// Runs the Lambda runtime loop for one table's transformer.
pub async fn run(table: Table) -> Result<(), Error> {
    lambda_runtime::tracing::init_default_subscriber();
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<KinesisFirehoseEvent>| async move {
            handle(&event.payload, table).map_err(Error::from)
        },
    ))
    .await
}
