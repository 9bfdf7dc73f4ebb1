//! The event source mapping: polls each shard and invokes the consumer like Lambda's Kinesis
//! trigger does.
//!
//! - Batches of up to `batch_size` records, waiting up to the batching window for a full one.
//! - `batchItemFailures` (ReportBatchItemFailures): the checkpoint moves to just before the lowest
//!   reported sequence number and the batch is retried from there. A sequence number that is not
//!   in the batch counts as a failure of the whole batch, as in Lambda.
//! - A function error (or a failure of the batch's first record) with bisection on splits the
//!   batch in two and retries the first half; splitting does not use up retries. A batch that
//!   cannot be split is retried `maximum_retry_attempts` times; then, or when its records are
//!   older than `maximum_record_age_seconds`, its description and records go to the failure store
//!   (the on-failure destination) and the shard moves on.
//! - Checkpoints are durable (in the stream's database); a restart resumes after the last batch
//!   that finished, so a batch in flight at a crash is delivered again (at-least-once).
//! - Every read asks the mapping's [`ReadThrottle`] first: with Kinesis' read limits on, a mapping
//!   without enhanced fan-out shares each shard's five GetRecords calls and 2 MiB per second with
//!   the delivery streams, and one with enhanced fan-out reads within its own 2 MiB per second.

use std::future::Future;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde_json::json;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use orderflow_consumer::EventRecord;

use crate::limits::{ReadThrottle, record_size};
use crate::settings::ConsumerSettings;
use crate::storage::Bucket;
use crate::stream::{StoredRecord, Stream, position_of};

/// The checkpoint name of the consumer's event source mapping.
pub const READER: &str = "consumer";
/// How long an invocation in flight at shutdown may still run before it is abandoned.
pub const SHUTDOWN_GRACE: Duration = Duration::from_secs(2);
/// Lambda's synchronous invocation payload limit.
const MAX_PAYLOAD_BYTES: usize = 6 * 1024 * 1024;
/// Prefix of the failure store in the bucket.
pub const FAILURE_PREFIX: &str = "failures/consumer";
/// The failure document's member holding the batch's records (sequence number, partition key,
/// arrival, base64 data): the twin's addition to AWS's invocation record, which carries none.
pub const TWIN_RECORDS: &str = "twinRecords";

/// An invocation that failed as a whole (Lambda's `FunctionError`).
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{kind}: {message}")]
pub struct FunctionError {
    /// `Unhandled`, `Task timed out`, ...
    pub kind: String,
    /// What happened.
    pub message: String,
}

/// A Lambda function the mapping invokes: a Kinesis event in, the response JSON out.
pub trait StreamFunction: Send + Sync + 'static {
    /// Invokes the function with the event's JSON.
    fn invoke(&self, event: Vec<u8>)
    -> impl Future<Output = Result<Vec<u8>, FunctionError>> + Send;
}

/// What the mapping has done since it started.
#[derive(Debug, Default)]
pub struct MappingStats {
    /// Invocations.
    pub invocations: AtomicU64,
    /// Invocations that failed as a whole.
    pub function_errors: AtomicU64,
    /// Invocations that reported `batchItemFailures`.
    pub partial_failures: AtomicU64,
    /// Batches split in two.
    pub bisections: AtomicU64,
    /// Batches sent to the failure store.
    pub failed_batches: AtomicU64,
    /// Records in those batches.
    pub failed_records: AtomicU64,
}

/// How one invocation went.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Every record done.
    Done,
    /// Records from this position on must be retried.
    RetryFrom(u64),
    /// The whole batch failed: the function failed (an error, a crash, a timeout).
    FunctionError(String),
    /// The whole batch failed: the function answered, but not with a response Lambda accepts
    /// (unreadable, or naming a record that is not in the batch). Not a function error.
    InvalidResponse(String),
}

/// Why a batch goes to the on-failure destination, and what its invocation record says about it.
///
/// The fields follow what AWS writes. The Lambda developer guide's example invocation record for
/// a Kinesis source ("Retain discarded batch records for a Kinesis Data Streams event source in
/// Lambda", <https://docs.aws.amazon.com/lambda/latest/dg/kinesis-on-failure-destination.html>)
/// shows a batch whose function failed: `"condition": "RetryAttemptsExhausted"`,
/// `"approximateInvokeCount"`, and `"responseContext": {"statusCode": 200, "executedVersion":
/// "$LATEST", "functionError": "Unhandled"}`. AWS does not document the other cases; the values
/// below are the ones AWS itself wrote in LocalStack's parity tests, recorded against AWS on
/// 2025-11-25 (`tests/aws/services/lambda_/event_source_mapping/test_lambda_integration_kinesis.snapshot.json`
/// in `localstack/localstack` at `8b9a79f`):
/// - records expired before any invocation (`expire-before-ingestion`,
///   `..._discard_records`): `RecordAgeExceeded`, `approximateInvokeCount` 1, and no
///   `responseContext` at all (none either for records that expired while retrying);
/// - a function that kept answering `batchItemFailures` with `MaximumRetryAttempts` 3
///   (`test_kinesis_report_batch_item_failures`): `RetryAttemptsExhausted`,
///   `approximateInvokeCount` 4 (the first invocation and three retries), and
///   `"functionError": null`; also null for responses Lambda refuses (an empty or unknown
///   `itemIdentifier`), `"Unhandled"` only when the function raised.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Discard {
    /// `RecordAgeExceeded`, after this many invocations of the batch (0: none).
    RecordAge { invocations: u32 },
    /// `RetryAttemptsExhausted` after this many invocations; whether the last one was a function
    /// error (otherwise the function answered `batchItemFailures` or a response Lambda refused).
    RetriesExhausted {
        invocations: u32,
        function_error: bool,
    },
}

impl Discard {
    fn condition(self) -> &'static str {
        match self {
            Discard::RecordAge { .. } => "RecordAgeExceeded",
            Discard::RetriesExhausted { .. } => "RetryAttemptsExhausted",
        }
    }

    /// `approximateInvokeCount`: the batch's invocations, and 1 for records that expired before
    /// any (what AWS writes then).
    fn invoke_count(self) -> u32 {
        match self {
            Discard::RecordAge { invocations } => invocations.max(1),
            Discard::RetriesExhausted { invocations, .. } => invocations,
        }
    }

    /// `responseContext`, which AWS leaves out of a `RecordAgeExceeded` record.
    fn response_context(self) -> Option<serde_json::Value> {
        match self {
            Discard::RecordAge { .. } => None,
            Discard::RetriesExhausted { function_error, .. } => Some(json!({
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": function_error.then_some("Unhandled"),
            })),
        }
    }
}

/// The mapping of one shard.
pub struct ShardMapping<F> {
    /// The stream.
    pub stream: Stream,
    /// The shard.
    pub shard: u32,
    /// Batch size, window, retries, record age, bisection, timeout.
    pub settings: ConsumerSettings,
    /// The consumer.
    pub function: Arc<F>,
    /// The function's name (for the failure store).
    pub function_name: String,
    /// Where exhausted batches go.
    pub bucket: Bucket,
    /// Counters.
    pub stats: Arc<MappingStats>,
    /// What the mapping asks before each read (Kinesis' read limits, or none).
    pub reads: ReadThrottle,
}

// By hand: a derive would ask for `F: Clone`, and only the `Arc` is cloned.
impl<F> Clone for ShardMapping<F> {
    fn clone(&self) -> Self {
        ShardMapping {
            stream: self.stream.clone(),
            shard: self.shard,
            settings: self.settings.clone(),
            function: self.function.clone(),
            function_name: self.function_name.clone(),
            bucket: self.bucket.clone(),
            stats: self.stats.clone(),
            reads: self.reads.clone(),
        }
    }
}

impl<F: StreamFunction> ShardMapping<F> {
    /// Runs until `shutdown` (an invocation in flight gets [`SHUTDOWN_GRACE`] to finish, then
    /// is abandoned without moving the checkpoint).
    pub async fn run(self, shutdown: CancellationToken) {
        let mut checkpoint = loop {
            match self.stream.checkpoint(READER, self.shard) {
                Ok(position) => break position,
                Err(error) => {
                    tracing::error!(error = %error, "reading the consumer checkpoint");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        };
        let batch_size = self.settings.batch_size.max(1);
        let window = Duration::from_secs(self.settings.maximum_batching_window_seconds);
        let mut limit = batch_size;
        let mut attempts: u32 = 0;
        let mut tip = self.stream.tip(self.shard);
        while !shutdown.is_cancelled() {
            let available = tip.borrow_and_update().saturating_sub(checkpoint);
            if available == 0 {
                tokio::select! {
                    () = shutdown.cancelled() => break,
                    _ = tip.changed() => continue,
                }
            }
            if (available as usize) < limit && attempts == 0 && !window.is_zero() {
                let until = Instant::now() + window;
                loop {
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep_until(until) => break,
                        _ = tip.changed() => {
                            if tip.borrow_and_update().saturating_sub(checkpoint) as usize >= limit {
                                break;
                            }
                        }
                    }
                }
                if shutdown.is_cancelled() {
                    break;
                }
            }
            // A GetRecords call (or a push, with enhanced fan-out): within the shard's limits.
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = self.reads.before_read(self.shard) => {}
            }
            let read = match self
                .stream
                .read_from(self.shard, checkpoint, limit, MAX_PAYLOAD_BYTES)
            {
                Ok(read) => read,
                Err(error) => {
                    tracing::error!(error = %error, "reading the stream");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                    continue;
                }
            };
            self.reads.after_read(
                self.shard,
                read.records
                    .iter()
                    .map(|r| record_size(&r.partition_key, &r.data))
                    .sum(),
            );
            crate::stream::report_trimmed(READER, self.shard, read.trimmed_unread);
            let records = read.records;
            let Some(last) = records.last().map(|r| r.position) else {
                // Trimmed by retention before it was read: nothing to invoke with. Move past
                // what was trimmed only (not to the tip: records appended since are unread).
                if read.trimmed_unread > 0 {
                    checkpoint += read.trimmed_unread;
                    self.save(checkpoint).await;
                }
                continue;
            };
            let expired = match self.settings.max_record_age() {
                Some(max_age) => records.iter().take_while(|r| age(r) > max_age).count(),
                None => 0,
            };
            if expired > 0 {
                let discard = Discard::RecordAge {
                    invocations: attempts,
                };
                self.to_failure_store(&records[..expired], discard).await;
                checkpoint = records[expired - 1].position;
                self.save(checkpoint).await;
                attempts = 0;
                continue;
            }
            // At shutdown an invocation in flight gets [`SHUTDOWN_GRACE`] to finish, then it is
            // abandoned (as Lambda cuts off a function at its timeout): its checkpoint does not
            // move, so its batch is simply delivered again at the next start, and Ctrl-C never
            // waits for a long write loop (up to the consumer's timeout).
            let invocation = self.invoke(&records);
            tokio::pin!(invocation);
            let outcome = tokio::select! {
                outcome = &mut invocation => outcome,
                () = shutdown.cancelled() => {
                    match tokio::time::timeout(SHUTDOWN_GRACE, &mut invocation).await {
                        Ok(outcome) => outcome,
                        Err(_) => {
                            tracing::warn!(shard = self.shard, records = records.len(), "shutting down: the invocation in flight is abandoned and will be delivered again");
                            break;
                        }
                    }
                }
            };
            let first = records[0].position;
            match outcome {
                Outcome::Done => {
                    checkpoint = last;
                    self.save(checkpoint).await;
                    attempts = 0;
                    limit = (limit * 2).min(batch_size);
                }
                Outcome::RetryFrom(position) if position > first => {
                    // "Lambda retries only the remaining records" ... "based on your retry
                    // strategy" (Lambda developer guide, partial batch response with Kinesis):
                    // the records before the failure are done, and the retry count goes on.
                    checkpoint = position - 1;
                    self.save(checkpoint).await;
                    attempts += 1;
                    if self
                        .settings
                        .retry_limit()
                        .is_some_and(|limit| attempts > limit)
                    {
                        let remaining: Vec<StoredRecord> = records
                            .iter()
                            .filter(|r| r.position >= position)
                            .cloned()
                            .collect();
                        let discard = Discard::RetriesExhausted {
                            invocations: attempts,
                            function_error: false,
                        };
                        self.to_failure_store(&remaining, discard).await;
                        checkpoint = last;
                        self.save(checkpoint).await;
                        attempts = 0;
                    }
                }
                Outcome::RetryFrom(_) | Outcome::FunctionError(_) | Outcome::InvalidResponse(_) => {
                    let function_error = matches!(outcome, Outcome::FunctionError(_));
                    if self.settings.bisect_batch_on_function_error && records.len() > 1 {
                        limit = records.len() / 2;
                        self.stats.bisections.fetch_add(1, Ordering::Relaxed);
                        tracing::info!(shard = self.shard, first = %records[0].sequence_number(), size = limit, "bisecting the failing batch");
                        continue;
                    }
                    attempts += 1;
                    if self
                        .settings
                        .retry_limit()
                        .is_some_and(|limit| attempts > limit)
                    {
                        let discard = Discard::RetriesExhausted {
                            invocations: attempts,
                            function_error,
                        };
                        self.to_failure_store(&records, discard).await;
                        checkpoint = last;
                        self.save(checkpoint).await;
                        attempts = 0;
                        continue;
                    }
                    let backoff = Duration::from_millis(100 << attempts.min(6));
                    tokio::select! {
                        () = shutdown.cancelled() => break,
                        () = tokio::time::sleep(backoff) => {}
                    }
                }
            }
        }
    }

    /// Invokes the function with `records` and reads its answer.
    async fn invoke(&self, records: &[StoredRecord]) -> Outcome {
        self.stats.invocations.fetch_add(1, Ordering::Relaxed);
        let event = kinesis_event(&self.stream, records);
        let answer = self.function.invoke(event).await;
        let response = match answer {
            Ok(response) => response,
            Err(error) => {
                self.stats.function_errors.fetch_add(1, Ordering::Relaxed);
                tracing::warn!(shard = self.shard, error = %error, "consumer invocation failed");
                return Outcome::FunctionError(error.to_string());
            }
        };
        let outcome = outcome_of(&response, records);
        if !matches!(outcome, Outcome::Done) {
            self.stats.partial_failures.fetch_add(1, Ordering::Relaxed);
        }
        outcome
    }

    async fn save(&self, checkpoint: u64) {
        while let Err(error) = self
            .stream
            .save_checkpoints(READER, &[(self.shard, checkpoint)])
        {
            tracing::error!(error = %error, "saving the consumer checkpoint failed; retrying");
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
    }

    /// Writes the batch's description (and its records) to the failure store.
    ///
    /// Every member but [`TWIN_RECORDS`] is the invocation record Lambda sends to a Kinesis
    /// mapping's on-failure destination ("Retain discarded batch records for a Kinesis Data
    /// Streams event source in Lambda", Lambda developer guide): metadata only, no record data;
    /// `condition`, `approximateInvokeCount` and `responseContext` as [`Discard`] says.
    /// [`TWIN_RECORDS`] is a twin-only convenience holding the records themselves; in AWS they
    /// are read back from the stream by shard and sequence numbers within its retention
    /// (README, "Recovering a failed batch in AWS").
    async fn to_failure_store(&self, records: &[StoredRecord], discard: Discard) {
        let condition = discard.condition();
        let first = &records[0];
        let last = &records[records.len() - 1];
        let now = Utc::now();
        let mut document = json!({
            "version": "1.0",
            "timestamp": now.to_rfc3339_opts(chrono::SecondsFormat::Millis, true),
            "requestContext": {
                "requestId": uuid::Uuid::new_v4().to_string(),
                "functionArn": format!("arn:aws:lambda:us-east-1:{}:function:{}", crate::stream::ACCOUNT, self.function_name),
                "condition": condition,
                "approximateInvokeCount": discard.invoke_count(),
            },
            "KinesisBatchInfo": {
                "shardId": first.shard_id(),
                "startSequenceNumber": first.sequence_number(),
                "endSequenceNumber": last.sequence_number(),
                "approximateArrivalOfFirstRecord": iso(first.arrival_ms),
                "approximateArrivalOfLastRecord": iso(last.arrival_ms),
                "batchSize": records.len(),
                "streamArn": self.stream.arn(),
            },
            TWIN_RECORDS: records.iter().map(|r| json!({
                "sequenceNumber": r.sequence_number(),
                "partitionKey": r.partition_key,
                "approximateArrivalTimestamp": iso(r.arrival_ms),
                "data": BASE64.encode(&r.data),
            })).collect::<Vec<_>>(),
        });
        if let Some(response) = discard.response_context() {
            document["responseContext"] = response;
        }
        let key = format!(
            "{FAILURE_PREFIX}/{}/{}/{}-{}.json",
            first.shard_id(),
            now.format("%Y/%m/%d"),
            now.format("%Y-%m-%dT%H.%M.%S"),
            uuid::Uuid::new_v4()
        );
        let bytes = serde_json::to_vec_pretty(&document).expect("JSON");
        let mut backoff = Duration::from_millis(100);
        while let Err(error) = self.bucket.put(&key, bytes.clone()).await {
            tracing::error!(error = %format!("{error:#}"), "writing to the failure store failed; retrying");
            tokio::time::sleep(backoff).await;
            backoff = (backoff * 2).min(Duration::from_secs(10));
        }
        self.stats.failed_batches.fetch_add(1, Ordering::Relaxed);
        self.stats
            .failed_records
            .fetch_add(records.len() as u64, Ordering::Relaxed);
        tracing::error!(
            shard = %first.shard_id(),
            start = %first.sequence_number(),
            end = %last.sequence_number(),
            records = records.len(),
            condition,
            key = %key,
            "batch sent to the failure store"
        );
    }
}

fn age(record: &StoredRecord) -> Duration {
    let now = Utc::now().timestamp_millis().max(0) as u64;
    Duration::from_millis(now.saturating_sub(record.arrival_ms))
}

fn iso(ms: u64) -> String {
    DateTime::<Utc>::from_timestamp_millis(ms as i64)
        .unwrap_or_default()
        .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
}

/// Reads a `KinesisEventResponse` against its batch.
fn outcome_of(response: &[u8], records: &[StoredRecord]) -> Outcome {
    #[derive(Deserialize)]
    struct Response {
        #[serde(rename = "batchItemFailures", default)]
        batch_item_failures: Option<Vec<Failure>>,
    }
    #[derive(Deserialize)]
    struct Failure {
        #[serde(rename = "itemIdentifier")]
        item_identifier: Option<String>,
    }
    let Ok(response) = serde_json::from_slice::<Response>(response) else {
        // Lambda treats a response it cannot read as success only when it is empty/null.
        return if response.is_empty() || response == b"null" {
            Outcome::Done
        } else {
            Outcome::InvalidResponse("the response is not a KinesisEventResponse".into())
        };
    };
    let failures = response.batch_item_failures.unwrap_or_default();
    if failures.is_empty() {
        return Outcome::Done;
    }
    let mut lowest: Option<u64> = None;
    for failure in failures {
        let position = failure
            .item_identifier
            .as_deref()
            .and_then(position_of)
            .filter(|p| records.iter().any(|r| r.position == *p));
        let Some(position) = position else {
            return Outcome::InvalidResponse(
                "batchItemFailures names a sequence number that is not in the batch".into(),
            );
        };
        lowest = Some(lowest.map_or(position, |l| l.min(position)));
    }
    Outcome::RetryFrom(lowest.expect("not empty"))
}

/// The Kinesis event Lambda sends for `records`.
pub fn kinesis_event(stream: &Stream, records: &[StoredRecord]) -> Vec<u8> {
    let shard_ids: Vec<String> = records.iter().map(StoredRecord::shard_id).collect();
    let sequence_numbers: Vec<String> = records.iter().map(StoredRecord::sequence_number).collect();
    kinesis_event_of(
        &stream.arn(),
        records
            .iter()
            .zip(shard_ids.iter().zip(&sequence_numbers))
            .map(|(record, (shard_id, sequence_number))| EventRecord {
                shard_id,
                partition_key: &record.partition_key,
                sequence_number,
                data: &record.data,
                arrival_ms: record.arrival_ms,
            }),
    )
}

/// The role the twin's event source mapping names as `invokeIdentityArn`.
pub const INVOKE_IDENTITY_ARN: &str = "arn:aws:iam::000000000000:role/orderflow-local-consumer";

/// The Kinesis event the event source mapping sends for `records` of the stream `arn` (built by
/// the consumer crate, which owns the contract).
pub fn kinesis_event_of<'a>(
    stream_arn: &str,
    records: impl IntoIterator<Item = EventRecord<'a>>,
) -> Vec<u8> {
    orderflow_consumer::kinesis_event(
        &orderflow_consumer::EventSource {
            stream_arn,
            region: "us-east-1",
            invoke_identity_arn: INVOKE_IDENTITY_ARN,
        },
        records,
    )
}

/// The real consumer handler, invoked in process through its JSON contract.
pub struct ConsumerFunction {
    /// DynamoDB client.
    pub client: aws_sdk_dynamodb::Client,
    /// The orders table.
    pub table: String,
    /// Write tuning.
    pub policy: orderflow_consumer::WritePolicy,
    /// The Lambda timeout.
    pub timeout: Duration,
}

impl StreamFunction for ConsumerFunction {
    async fn invoke(&self, event: Vec<u8>) -> Result<Vec<u8>, FunctionError> {
        let payload: orderflow_consumer::OrderRecordsEvent = serde_json::from_slice(&event)
            .map_err(|error| FunctionError {
                kind: "Runtime.UnmarshalError".into(),
                message: error.to_string(),
            })?;
        let deadline = Instant::now() + self.timeout - orderflow_consumer::DEADLINE_MARGIN;
        let (client, table, policy) =
            (self.client.clone(), self.table.clone(), self.policy.clone());
        let task = tokio::spawn(async move {
            orderflow_consumer::handle_batch(&payload.0, &client, &table, &policy, deadline)
                .await
                .0
        });
        match tokio::time::timeout(self.timeout, task).await {
            Ok(Ok(response)) => Ok(serde_json::to_vec(&response).expect("JSON")),
            Ok(Err(error)) => Err(FunctionError {
                kind: "Runtime.ExitError".into(),
                message: format!("the handler panicked: {error}"),
            }),
            Err(_) => Err(FunctionError {
                kind: "Sandbox.Timedout".into(),
                message: format!(
                    "Task timed out after {:.2} seconds",
                    self.timeout.as_secs_f64()
                ),
            }),
        }
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashSet;
    use std::sync::Mutex;

    use orderflow_api::RecordEntry;

    use super::*;

    /// A function that fails every batch holding one of `poison` (by data), and records what it
    /// saw.
    struct Scripted {
        poison: HashSet<Vec<u8>>,
        partial: bool,
        seen: Mutex<Vec<Vec<Vec<u8>>>>,
        done: Mutex<Vec<Vec<u8>>>,
    }

    impl StreamFunction for Scripted {
        async fn invoke(&self, event: Vec<u8>) -> Result<Vec<u8>, FunctionError> {
            let event: serde_json::Value = serde_json::from_slice(&event).unwrap();
            let records: Vec<(String, Vec<u8>)> = event["Records"]
                .as_array()
                .unwrap()
                .iter()
                .map(|r| {
                    (
                        r["kinesis"]["sequenceNumber"].as_str().unwrap().to_owned(),
                        BASE64
                            .decode(r["kinesis"]["data"].as_str().unwrap())
                            .unwrap(),
                    )
                })
                .collect();
            self.seen
                .lock()
                .unwrap()
                .push(records.iter().map(|r| r.1.clone()).collect());
            let bad = records.iter().position(|r| self.poison.contains(&r.1));
            match (bad, self.partial) {
                (None, _) => {
                    self.done
                        .lock()
                        .unwrap()
                        .extend(records.into_iter().map(|r| r.1));
                    Ok(b"{\"batchItemFailures\":[]}".to_vec())
                }
                (Some(index), true) => {
                    self.done
                        .lock()
                        .unwrap()
                        .extend(records[..index].iter().map(|r| r.1.clone()));
                    let failures: Vec<_> = records[index..]
                        .iter()
                        .map(|r| json!({"itemIdentifier": r.0}))
                        .collect();
                    Ok(serde_json::to_vec(&json!({ "batchItemFailures": failures })).unwrap())
                }
                (Some(_), false) => Err(FunctionError {
                    kind: "Unhandled".into(),
                    message: "poison".into(),
                }),
            }
        }
    }

    impl Scripted {
        fn failing_on(poison: &[&str], partial: bool) -> Scripted {
            Scripted {
                poison: poison.iter().map(|data| data.as_bytes().to_vec()).collect(),
                partial,
                seen: Mutex::default(),
                done: Mutex::default(),
            }
        }
    }

    fn settings() -> ConsumerSettings {
        ConsumerSettings {
            batch_size: 100,
            maximum_batching_window_seconds: 0,
            maximum_retry_attempts: 2,
            maximum_record_age_seconds: 3600,
            bisect_batch_on_function_error: true,
            timeout_seconds: 5,
            parallelization_factor: 1,
            starting_position: "TRIM_HORIZON".into(),
            enhanced_fan_out: true,
        }
    }

    /// A one-shard stream holding `r0` to `r249`, a bucket, and a function failing on `r137`
    /// (with `batchItemFailures` when `partial`, otherwise with a function error).
    async fn fixture(partial: bool) -> (Arc<Scripted>, Stream, Bucket, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream::open(&dir.path().join("s.redb"), "orders", 1).unwrap();
        let bucket = Bucket::local(&dir.path().join("bucket")).unwrap();
        let entries = (0..250)
            .map(|i| RecordEntry {
                partition_key: "k".into(),
                data: format!("r{i}").into_bytes(),
            })
            .collect();
        stream.append(entries).await.unwrap();
        (
            Arc::new(Scripted::failing_on(&["r137"], partial)),
            stream,
            bucket,
            dir,
        )
    }

    /// The shard's mapping over `stream`, without read limits.
    fn mapping(
        function: &Arc<Scripted>,
        stream: &Stream,
        bucket: &Bucket,
        settings: ConsumerSettings,
    ) -> ShardMapping<Scripted> {
        ShardMapping {
            stream: stream.clone(),
            shard: 0,
            settings,
            function: function.clone(),
            function_name: "consumer".into(),
            bucket: bucket.clone(),
            stats: Arc::default(),
            reads: ReadThrottle::unlimited(),
        }
    }

    /// Runs `mapping` until its checkpoint is `until`, then stops it.
    async fn run_until<F: StreamFunction>(mapping: ShardMapping<F>, until: u64) {
        let stream = mapping.stream.clone();
        let shutdown = CancellationToken::new();
        let task = tokio::spawn(mapping.run(shutdown.clone()));
        let started = std::time::Instant::now();
        while stream.checkpoint(READER, 0).unwrap() < until {
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "mapping stalled"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        shutdown.cancel();
        task.await.unwrap();
    }

    async fn run_until_idle(
        partial: bool,
        settings: ConsumerSettings,
    ) -> (Arc<Scripted>, Stream, Bucket, tempfile::TempDir) {
        let (function, stream, bucket, dir) = fixture(partial).await;
        run_until(mapping(&function, &stream, &bucket, settings), 250).await;
        (function, stream, bucket, dir)
    }

    async fn failure_documents(bucket: &Bucket) -> Vec<serde_json::Value> {
        let mut documents = Vec::new();
        for (key, _) in bucket.list(FAILURE_PREFIX).await.unwrap() {
            documents.push(serde_json::from_slice(&bucket.get(&key).await.unwrap()).unwrap());
        }
        documents
    }

    #[tokio::test]
    async fn a_poison_record_is_bisected_to_and_only_it_reaches_the_failure_store() {
        for partial in [false, true] {
            let (function, _stream, bucket, _dir) = run_until_idle(partial, settings()).await;
            let done = function.done.lock().unwrap().clone();
            let expected: Vec<Vec<u8>> = (0..250)
                .filter(|&i| i != 137)
                .map(|i| format!("r{i}").into_bytes())
                .collect();
            let unique: HashSet<_> = done.iter().cloned().collect();
            assert_eq!(unique.len(), 249, "partial={partial}");
            assert!(expected.iter().all(|r| unique.contains(r)));
            let documents = failure_documents(&bucket).await;
            assert_eq!(documents.len(), 1, "partial={partial}");
            let info = &documents[0]["KinesisBatchInfo"];
            assert_eq!(info["batchSize"], 1);
            assert_eq!(
                documents[0]["requestContext"]["condition"],
                "RetryAttemptsExhausted"
            );
            let data = documents[0][TWIN_RECORDS][0]["data"].as_str().unwrap();
            assert_eq!(BASE64.decode(data).unwrap(), b"r137");
            // The single poison record was tried 1 + maximum_retry_attempts times, less the
            // retry its batch's partial failure already used (the count is not reset).
            let alone = function
                .seen
                .lock()
                .unwrap()
                .iter()
                .filter(|batch| batch.len() == 1 && batch[0] == b"r137")
                .count();
            assert_eq!(alone, if partial { 2 } else { 3 }, "partial={partial}");
        }
    }

    #[tokio::test]
    async fn without_bisection_the_whole_batch_goes_to_the_failure_store_after_its_retries() {
        let settings = ConsumerSettings {
            bisect_batch_on_function_error: false,
            ..settings()
        };
        let (function, _stream, bucket, _dir) = run_until_idle(false, settings).await;
        let documents = failure_documents(&bucket).await;
        assert_eq!(documents.len(), 1);
        assert_eq!(documents[0]["KinesisBatchInfo"]["batchSize"], 100);
        // Batches 1 and 3 were written; batch 2 (records 100..199) tried 3 times.
        assert_eq!(function.done.lock().unwrap().len(), 150);
        assert_eq!(function.seen.lock().unwrap().len(), 2 + 3);
    }

    /// Issue 11, item 7: records already older than `maximum_record_age_seconds` when read go to
    /// the failure store without an invocation, described as AWS describes them (see
    /// [`Discard`]): `RecordAgeExceeded`, `approximateInvokeCount` 1, no `responseContext` (the
    /// twin wrote an `Unhandled` function error before).
    #[tokio::test]
    async fn records_expired_before_any_invocation_are_described_as_aws_describes_them() {
        let (function, stream, bucket, _dir) = fixture(false).await;
        // Every record is now older than the limit of 0 s.
        tokio::time::sleep(Duration::from_millis(5)).await;
        let settings = ConsumerSettings {
            maximum_record_age_seconds: 0,
            ..settings()
        };
        run_until(mapping(&function, &stream, &bucket, settings), 250).await;
        assert!(function.seen.lock().unwrap().is_empty(), "never invoked");
        let documents = failure_documents(&bucket).await;
        let records: u64 = documents
            .iter()
            .map(|d| d["KinesisBatchInfo"]["batchSize"].as_u64().unwrap())
            .sum();
        assert_eq!(records, 250);
        for document in &documents {
            let context = &document["requestContext"];
            assert_eq!(context["condition"], "RecordAgeExceeded", "{document:#}");
            assert_eq!(context["approximateInvokeCount"], 1, "{document:#}");
            assert!(document.get("responseContext").is_none(), "{document:#}");
        }
    }

    /// Issue 11, item 7: a batch whose retries run out is `RetryAttemptsExhausted`, with
    /// `approximateInvokeCount` the invocations that held it (the first and
    /// `maximum_retry_attempts` retries: 3 here, the twin wrote 4 before) and `functionError`
    /// `"Unhandled"` for a function error but null for a function that answered
    /// `batchItemFailures` (status 200), as AWS writes them (see [`Discard`]).
    #[tokio::test]
    async fn exhausted_retries_are_described_as_aws_describes_them() {
        for partial in [true, false] {
            let settings = ConsumerSettings {
                bisect_batch_on_function_error: false,
                ..settings()
            };
            let (function, _stream, bucket, _dir) = run_until_idle(partial, settings).await;
            let documents = failure_documents(&bucket).await;
            assert_eq!(documents.len(), 1, "partial={partial}");
            let document = &documents[0];
            let invocations = function
                .seen
                .lock()
                .unwrap()
                .iter()
                .filter(|batch| batch.iter().any(|data| data == b"r137"))
                .count();
            assert_eq!(invocations, 3, "partial={partial}");
            assert_eq!(
                document["requestContext"]["condition"],
                "RetryAttemptsExhausted"
            );
            assert_eq!(
                document["requestContext"]["approximateInvokeCount"], invocations,
                "partial={partial}"
            );
            let function_error = if partial {
                serde_json::Value::Null
            } else {
                "Unhandled".into()
            };
            assert_eq!(
                document["responseContext"],
                json!({"statusCode": 200, "executedVersion": "$LATEST", "functionError": function_error}),
                "partial={partial}"
            );
        }
    }

    /// A response Lambda refuses (naming a record not in the batch) fails the batch without a
    /// function error: `functionError` is null when its retries run out, as AWS writes it.
    #[tokio::test]
    async fn a_refused_response_is_not_a_function_error() {
        struct Refusing;
        impl StreamFunction for Refusing {
            async fn invoke(&self, _event: Vec<u8>) -> Result<Vec<u8>, FunctionError> {
                Ok(br#"{"batchItemFailures":[{"itemIdentifier":"not-in-the-batch"}]}"#.to_vec())
            }
        }
        let (_, stream, bucket, _dir) = fixture(false).await;
        let settings = ConsumerSettings {
            bisect_batch_on_function_error: false,
            maximum_retry_attempts: 0,
            ..settings()
        };
        let mapping = ShardMapping {
            stream: stream.clone(),
            shard: 0,
            settings,
            function: Arc::new(Refusing),
            function_name: "consumer".into(),
            bucket: bucket.clone(),
            stats: Arc::default(),
            reads: ReadThrottle::unlimited(),
        };
        run_until(mapping, 250).await;
        let documents = failure_documents(&bucket).await;
        assert_eq!(documents.len(), 3);
        for document in documents {
            assert_eq!(document["requestContext"]["approximateInvokeCount"], 1);
            assert_eq!(
                document["responseContext"]["functionError"],
                serde_json::Value::Null
            );
        }
    }

    /// Appends `data` to the one shard of `stream` from its own thread and runtime, waiting for
    /// the commit (callable where a runtime is already running).
    fn append_now(stream: &Stream, data: &[&str]) {
        let entries: Vec<RecordEntry> = data
            .iter()
            .map(|data| RecordEntry {
                partition_key: "k".into(),
                data: data.as_bytes().to_vec(),
            })
            .collect();
        std::thread::scope(|scope| {
            scope
                .spawn(|| {
                    tokio::runtime::Builder::new_current_thread()
                        .build()
                        .unwrap()
                        .block_on(stream.append(entries))
                        .unwrap()
                })
                .join()
                .unwrap()
        });
    }

    /// A log writer that, when the mapping reports records lost to retention (right after the
    /// read that found them gone, before it moves on), appends two records and notes the
    /// checkpoint at that moment.
    struct AppendOnLossReport {
        stream: Stream,
        checkpoint_then: Arc<Mutex<Option<u64>>>,
    }

    impl std::io::Write for AppendOnLossReport {
        fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
            let line = String::from_utf8_lossy(bytes);
            let mut checkpoint_then = self.checkpoint_then.lock().unwrap();
            if line.contains("expired (retention)") && checkpoint_then.is_none() {
                *checkpoint_then = Some(self.stream.checkpoint(READER, 0).unwrap());
                append_now(&self.stream, &["new4", "new5"]);
            }
            Ok(bytes.len())
        }

        fn flush(&mut self) -> std::io::Result<()> {
            Ok(())
        }
    }

    /// After a read that found only records retention had trimmed, the mapping moves past those
    /// records, not to the tip (fixed with the trim horizon, untested until now): records
    /// appended between that read and the move are still delivered. Records 1 to 3 are trimmed
    /// before the mapping starts; when it reports them lost (after its read, before its move),
    /// records 4 and 5 are appended. A mapping that jumped to the tip (5) would never deliver
    /// them.
    #[test]
    fn a_read_of_only_trimmed_records_moves_past_them_not_to_the_tip() {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_time()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream::open(&dir.path().join("s.redb"), "orders", 1).unwrap();
        let bucket = Bucket::local(&dir.path().join("bucket")).unwrap();
        append_now(&stream, &["old1", "old2", "old3"]);
        assert_eq!(stream.trim(u64::MAX).unwrap().removed, 3);
        let function = Arc::new(Scripted::failing_on(&[], false));
        let checkpoint_then = Arc::new(Mutex::new(None));
        let subscriber = {
            let (stream, checkpoint_then) = (stream.clone(), checkpoint_then.clone());
            tracing_subscriber::fmt()
                .with_ansi(false)
                .with_writer(move || AppendOnLossReport {
                    stream: stream.clone(),
                    checkpoint_then: checkpoint_then.clone(),
                })
                .finish()
        };
        let mapping = mapping(&function, &stream, &bucket, settings());
        tracing::subscriber::with_default(subscriber, || {
            runtime.block_on(run_until(mapping, 5));
        });
        assert_eq!(
            *checkpoint_then.lock().unwrap(),
            Some(0),
            "records 4 and 5 were appended after the read and before the checkpoint moved"
        );
        assert_eq!(
            *function.done.lock().unwrap(),
            [b"new4".to_vec(), b"new5".to_vec()]
        );
        assert_eq!(stream.checkpoint(READER, 0).unwrap(), 5);
    }

    #[test]
    fn responses_are_read_like_lambda_reads_them() {
        let records: Vec<StoredRecord> = (1..=3)
            .map(|position| StoredRecord {
                shard: 0,
                position,
                arrival_ms: 0,
                partition_key: "k".into(),
                data: vec![],
            })
            .collect();
        let seq = |p| crate::stream::sequence_number(0, p);
        assert_eq!(outcome_of(b"{}", &records), Outcome::Done);
        assert_eq!(outcome_of(b"null", &records), Outcome::Done);
        assert_eq!(
            outcome_of(
                format!(r#"{{"batchItemFailures":[{{"itemIdentifier":"{}"}},{{"itemIdentifier":"{}"}}]}}"#, seq(3), seq(2)).as_bytes(),
                &records
            ),
            Outcome::RetryFrom(2)
        );
        assert!(matches!(
            outcome_of(
                format!(
                    r#"{{"batchItemFailures":[{{"itemIdentifier":"{}"}}]}}"#,
                    seq(9)
                )
                .as_bytes(),
                &records
            ),
            Outcome::InvalidResponse(_)
        ));
        assert!(matches!(
            outcome_of(
                br#"{"batchItemFailures":[{"itemIdentifier":""}]}"#,
                &records
            ),
            Outcome::InvalidResponse(_)
        ));
    }
}
