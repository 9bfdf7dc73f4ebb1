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

mod event;
pub mod event_json;

use std::collections::HashMap;
use std::ops::Range;

use aws_lambda_events::event::firehose::{
    KinesisFirehoseEvent, KinesisFirehoseEventRecord, KinesisFirehoseResponse,
    KinesisFirehoseResponseRecord, KinesisFirehoseResponseRecordMetadata,
};
use lambda_runtime::{Error, LambdaEvent, service_fn};
use orderflow_domain::{Partition, Table, parse_order};

pub use event::{FirehoseEvent, FirehoseRecord, ResponseJson};
use orderflow_domain::{base64_len, encode_base64_into, json_str_len, push_json_str};

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
    /// not fit; [`handle_json`] then fails the invocation instead of answering.
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

/// A Firehose input record as the driver reads it: aws_lambda_events' record or our own
/// [`FirehoseRecord`].
pub trait InputRecord {
    /// The record's `recordId`.
    fn record_id(&self) -> Option<&str>;
    /// The record's decoded bytes.
    fn data(&self) -> &[u8];
}

impl InputRecord for KinesisFirehoseEventRecord {
    fn record_id(&self) -> Option<&str> {
        self.record_id.as_deref()
    }

    fn data(&self) -> &[u8] {
        &self.data.0
    }
}

impl InputRecord for FirehoseRecord {
    fn record_id(&self) -> Option<&str> {
        self.record_id.as_deref()
    }

    fn data(&self) -> &[u8] {
        &self.data
    }
}

/// The answer to one record.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Answer {
    /// `Ok`: the rows at `rows` in [`Answers::rows`], under `partition`.
    Ok {
        rows: Range<usize>,
        partition: Partition,
    },
    /// `Dropped`: no row for this table.
    Dropped,
    /// `ProcessingFailed`: the record's own bytes.
    Failed,
}

impl Answer {
    fn result(&self) -> &'static str {
        match self {
            Answer::Ok { .. } => RESULT_OK,
            Answer::Dropped => RESULT_DROPPED,
            Answer::Failed => RESULT_PROCESSING_FAILED,
        }
    }
}

/// Every record's answer, the rows of all `Ok` answers in one buffer, and the counts.
struct Answers {
    answers: Vec<Answer>,
    rows: Vec<u8>,
    summary: TransformSummary,
}

// The fixed parts of a response entry, in order (the id, the result, the data and the
// partition keys go between them).
const ENTRY_ID: &[u8] = b"{\"recordId\":";
const ENTRY_RESULT: &[u8] = b",\"result\":\"";
const ENTRY_DATA: &[u8] = b"\",\"data\":\"";
const ENTRY_KEYS: &[u8] = b"\",\"metadata\":{\"partitionKeys\":{";
const ENTRY_END: &[u8] = b"}}}";

/// Appends one response entry, exactly as serde_json writes aws_lambda_events'
/// `KinesisFirehoseResponseRecord` (field order, `null` for a missing id, compact), with `data`
/// given as its bytes (base64-encoded here) or as `None` for an empty data field.
fn write_entry(
    out: &mut Vec<u8>,
    record_id: Option<&str>,
    result: &str,
    data: Option<&[u8]>,
    partition: Option<&Partition>,
) {
    out.extend_from_slice(ENTRY_ID);
    match record_id {
        Some(id) => push_json_str(out, id),
        None => out.extend_from_slice(b"null"),
    }
    out.extend_from_slice(ENTRY_RESULT);
    out.extend_from_slice(result.as_bytes());
    out.extend_from_slice(ENTRY_DATA);
    if let Some(data) = data {
        encode_base64_into(data, out);
    }
    out.extend_from_slice(ENTRY_KEYS);
    if let Some(partition) = partition {
        for (index, (key, value)) in partition.keys().into_iter().enumerate() {
            if index > 0 {
                out.push(b',');
            }
            out.push(b'"');
            out.extend_from_slice(key.as_bytes());
            out.extend_from_slice(b"\":");
            push_json_str(out, value);
        }
    }
    out.extend_from_slice(ENTRY_END);
}

/// Exact bytes [`write_entry`] writes for an id of `id_len` bytes of JSON, `result`, data of
/// `data_len` bytes before base64, and partition keys of `keys_len` bytes of JSON, counted
/// without writing anything (the debug build checks every response's length against it).
fn entry_len(id_len: usize, result: &str, data_len: usize, keys_len: usize) -> usize {
    ENTRY_ID.len()
        + id_len
        + ENTRY_RESULT.len()
        + result.len()
        + ENTRY_DATA.len()
        + base64_len(data_len)
        + ENTRY_KEYS.len()
        + keys_len
        + ENTRY_END.len()
}

/// Bytes of a record id as [`write_entry`] writes it.
fn id_len(record_id: Option<&str>) -> usize {
    record_id.map_or("null".len(), json_str_len)
}

/// Bytes of the partition keys as [`write_entry`] writes them, between the braces.
fn keys_len(partition: &Partition) -> usize {
    let keys = partition.keys();
    let members: usize = keys
        .iter()
        .map(|(key, value)| key.len() + 3 + json_str_len(value))
        .sum();
    members + keys.len() - 1
}

/// `{"records":[]}`: the response without entries.
const EMPTY_RESPONSE_LEN: usize = 14;

/// Decides every record's answer for `table` under the exact byte budget (see [`transform`]).
fn answer_all<R: InputRecord>(records: &[R], table: Table) -> Answers {
    struct Candidate {
        answer: Answer,
        count: usize,
        len: usize,
        fallback_len: Option<usize>,
    }
    let mut summary = TransformSummary {
        records: records.len(),
        ..Default::default()
    };
    let mut rows = Vec::with_capacity(records.iter().map(|r| r.data().len()).sum());
    let candidates: Vec<Candidate> = records
        .iter()
        .map(|record| {
            let id = id_len(record.record_id());
            let (answer, count) = transform_one(record, table, &mut rows);
            let failed_len = entry_len(id, RESULT_PROCESSING_FAILED, record.data().len(), 0);
            let (len, fallback_len) = match &answer {
                Answer::Ok { rows, partition } => (
                    entry_len(id, RESULT_OK, rows.len(), keys_len(partition)),
                    Some(failed_len),
                ),
                Answer::Dropped => (entry_len(id, RESULT_DROPPED, 0, 0), None),
                Answer::Failed => (failed_len, None),
            };
            Candidate {
                answer,
                count,
                len,
                fallback_len,
            }
        })
        .collect();
    let min_len = |c: &Candidate| c.fallback_len.map_or(c.len, |f| f.min(c.len));
    // `{"records":[]}`, the commas between entries, and every record at its smallest answer.
    let mut total = EMPTY_RESPONSE_LEN
        + candidates.len().saturating_sub(1)
        + candidates.iter().map(min_len).sum::<usize>();
    let mut answers = Vec::with_capacity(candidates.len());
    for (index, candidate) in candidates.into_iter().enumerate() {
        let min = min_len(&candidate);
        let answer = match candidate.fallback_len {
            Some(fallback_len) if total - min + candidate.len > RESPONSE_LIMIT_BYTES => {
                tracing::warn!(
                    record_index = index,
                    table = table.name(),
                    "rows do not fit in the response: returning the record as ProcessingFailed"
                );
                summary.over_budget += 1;
                total = total - min + fallback_len;
                Answer::Failed
            }
            _ => {
                match &candidate.answer {
                    Answer::Ok { .. } => {
                        summary.ok += 1;
                        summary.rows += candidate.count;
                    }
                    Answer::Dropped => summary.dropped += 1,
                    Answer::Failed => summary.invalid += 1,
                }
                total = total - min + candidate.len;
                candidate.answer
            }
        };
        answers.push(answer);
    }
    summary.response_bytes = total;
    Answers {
        answers,
        rows,
        summary,
    }
}

/// Answers one record (no budget check), its rows appended to `rows`; also returns how many rows.
fn transform_one<R: InputRecord>(record: &R, table: Table, rows: &mut Vec<u8>) -> (Answer, usize) {
    let order = match parse_order(record.data()) {
        Ok(order) => order,
        Err(error) => {
            tracing::warn!(record_id = record.record_id().unwrap_or(""), table = table.name(), kind = error.kind(), reason = %error, "invalid order record");
            return (Answer::Failed, 0);
        }
    };
    let start = rows.len();
    let count = table.write_rows(&order, rows);
    if count == 0 {
        rows.truncate(start);
        return (Answer::Dropped, 0);
    }
    let answer = Answer::Ok {
        rows: start..rows.len(),
        partition: Partition::of(&order.order_date),
    };
    (answer, count)
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
    let Answers {
        answers,
        rows,
        summary,
    } = answer_all(&event.records, table);
    let mut response = KinesisFirehoseResponse::default();
    response.records = answers
        .into_iter()
        .zip(&event.records)
        .map(|(answer, record)| {
            let mut out = KinesisFirehoseResponseRecord::default();
            out.record_id = record.record_id.clone();
            out.result = Some(answer.result().to_owned());
            match answer {
                Answer::Ok {
                    rows: range,
                    partition,
                } => {
                    out.data.0 = rows[range].to_vec();
                    let mut metadata = KinesisFirehoseResponseRecordMetadata::default();
                    metadata.partition_keys = partition
                        .keys()
                        .into_iter()
                        .map(|(k, v)| (k.to_owned(), v.to_owned()))
                        .collect::<HashMap<_, _>>();
                    out.metadata = metadata;
                }
                Answer::Dropped => {}
                Answer::Failed => out.data = record.data.clone(),
            }
            out
        })
        .collect();
    (response, summary)
}

/// [`transform`] on the Lambda process's own event type, the response written straight into one
/// JSON buffer (base64 included): the same answers, byte for byte the JSON that serde_json writes
/// for [`transform`]'s response (apart from the order of the `partitionKeys` map, which is
/// `year`, `month`, `day` here).
pub fn transform_json(event: &FirehoseEvent, table: Table) -> (ResponseJson, TransformSummary) {
    let Answers {
        answers,
        rows,
        summary,
    } = answer_all(&event.records, table);
    let mut out = Vec::with_capacity(summary.response_bytes);
    out.extend_from_slice(b"{\"records\":[");
    for (index, (answer, record)) in answers.iter().zip(&event.records).enumerate() {
        if index > 0 {
            out.push(b',');
        }
        let id = record.record_id.as_deref();
        match answer {
            Answer::Ok {
                rows: range,
                partition,
            } => write_entry(
                &mut out,
                id,
                RESULT_OK,
                Some(&rows[range.clone()]),
                Some(partition),
            ),
            Answer::Dropped => write_entry(&mut out, id, RESULT_DROPPED, None, None),
            Answer::Failed => write_entry(
                &mut out,
                id,
                RESULT_PROCESSING_FAILED,
                Some(&record.data),
                None,
            ),
        }
    }
    out.extend_from_slice(b"]}");
    debug_assert_eq!(out.len(), summary.response_bytes);
    let json = String::from_utf8(out).expect("the response is JSON text, which is UTF-8");
    (ResponseJson::new(json), summary)
}

/// Logs the summary (counts only, no payload) and refuses a response over the limit.
fn finish(table: Table, summary: &TransformSummary) -> Result<(), ResponseTooLarge> {
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
    Ok(())
}

/// One invocation, what the Lambdas run: [`transform_json`] on the Lambda process's own event
/// type, the summary logged (counts only, no payload), and the response refused with
/// [`ResponseTooLarge`] if even the smallest answer to every record is over
/// [`RESPONSE_LIMIT_BYTES`], so the invocation fails and Firehose retries it.
pub fn handle_json(event: &FirehoseEvent, table: Table) -> Result<ResponseJson, ResponseTooLarge> {
    let (response, summary) = transform_json(event, table);
    finish(table, &summary)?;
    Ok(response)
}

/// A Firehose event of generated orders (seed 42, [`orderflow_domain::GeneratorConfig::fixed`])
/// as Firehose sends it, just under `limit` bytes of JSON, and its record count: the workload of
/// the benchmarks and `cargo xtask lambda-bench` (feature `generator`).
#[cfg(feature = "generator")]
pub fn sample_event(limit: usize) -> (Vec<u8>, usize) {
    use orderflow_domain::{GeneratorConfig, OrderGenerator};
    let source = event_json::EventSource {
        delivery_stream_arn: "arn:aws:firehose:us-east-1:123456789012:deliverystream/orders",
        source_kinesis_stream_arn: None,
        region: "us-east-1",
    };
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(42));
    let (mut out, tail) = event_json::event_envelope(&source, "bench");
    let mut count = 0;
    loop {
        let record_id =
            format!("49546986683135544286507457936321625675700192471156785154{count:06}");
        let data = generator.next_order().to_json();
        let record = event_json::event_record(&event_json::EventRecord {
            record_id: &record_id,
            data: &data,
            arrival_ms: 1_717_848_000_000,
            kinesis: None,
        });
        if out.len() + record.len() + 1 + tail.len() > limit {
            break;
        }
        if count > 0 {
            out.push(b',');
        }
        out.extend_from_slice(&record);
        count += 1;
    }
    out.extend_from_slice(&tail);
    (out, count)
}

/// Runs the Lambda runtime loop for one table's transformer.
pub async fn run(table: Table) -> Result<(), Error> {
    orderflow_domain::init_lambda_logs();
    lambda_runtime::run(service_fn(
        move |event: LambdaEvent<FirehoseEvent>| async move {
            handle_json(&event.payload, table).map_err(Error::from)
        },
    ))
    .await
}
