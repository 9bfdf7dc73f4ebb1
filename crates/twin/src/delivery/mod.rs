//! One Firehose delivery stream per table, as Firehose behaves with a Kinesis source, a Lambda
//! transformer, dynamic partitioning and Parquet conversion:
//!
//! - **Start**: a new delivery stream reads each shard from its tip at creation (Kinesis
//!   `LATEST`), saved at once, so records written before it exists never reach Parquet and a
//!   restart does not move its start ([`Stream::resume_or_start_at_tips`]).
//! - **Transformation**: it reads up to one processor buffer of record data and cuts it into
//!   events Lambda accepts ([`EVENT_LIMIT_BYTES`] of JSON, the data base64-encoded), each passed
//!   to the table's [`Transformer`].
//! - **Dynamic partitioning**: one output buffer per resolved prefix, each delivered as one
//!   object on its own once it reaches the buffering size or interval; at most
//!   [`ACTIVE_PARTITION_LIMIT`] partitions are buffered at once, and the records of a further
//!   partition go to the error output `activePartitionExceeded`.
//! - **Output**: Snappy Parquet under the prefix ([`conversion`]), failed records with their
//!   bytes under the error prefix, one object per error output type and buffer.
//! - **Checkpoints** move only over records whose output is written: a shard's checkpoint stops
//!   just before its oldest record still in an unwritten buffer, so a crash re-delivers every
//!   record not yet written (at least once, as Firehose; records of partitions written after the
//!   checkpoint are delivered twice).
//! - **Off the async workers**: the transformer, the Parquet encoding and every stream (redb)
//!   call run on blocking threads ([`tokio::task::spawn_blocking`]), so a busy delivery never
//!   stalls the API on the same runtime.

pub mod conversion;
mod naming;
mod values;

use std::collections::{BTreeMap, BTreeSet};
use std::ops::Range;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_lambda_events::event::firehose::{
    KinesisFirehoseEvent, KinesisFirehoseResponse, KinesisFirehoseResponseRecord,
};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use orderflow_domain::Table;
use orderflow_transformer::{RESULT_DROPPED, RESULT_OK, event_json};
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::limits::{ReadThrottle, record_size};
use crate::settings::DeliverySettings;
use crate::storage::Bucket;
use crate::stream::{StoredRecord, Stream};
use conversion::{RowBatchBuilder, parquet_bytes};
use naming::{
    PartitionKeys, expand_prefix, object_name, partition_key_names, partition_values, static_part,
};

/// Records per shard read at once.
const READ_LIMIT: usize = 500;
/// How long a delivery keeps retrying a failing write once shutdown has begun. After that it
/// gives up *without* moving the checkpoints over the unwritten records, so the next start reads
/// them again.
const SHUTDOWN_WRITE_GRACE: Duration = Duration::from_secs(3);
/// How soon a delivery reads again after the stream failed to answer.
const READ_RETRY: Duration = Duration::from_secs(1);
const ERROR_PROCESSING_FAILED: &str = "processing-failed";
const ERROR_FORMAT_CONVERSION_FAILED: &str = "format-conversion-failed";

/// Active partitions a delivery stream buffers at once. "Once the number of active partitions
/// reaches the limit of 500 per delivery stream, the rest of the records in the delivery stream
/// are delivered to the specified S3 error bucket prefix" (Firehose developer guide, "Buffer
/// data for dynamic partitioning", <https://docs.aws.amazon.com/firehose/latest/dev/buffering.html>,
/// which names that prefix `activePartitionExceeded`). AWS raises it only on request ("You can
/// use the Amazon Kinesis Data Firehose Limits form to request an increase of this quota up to
/// 5000 active partitions per given delivery stream",
/// <https://docs.aws.amazon.com/firehose/latest/dev/limits.html>), not through a setting of the
/// delivery stream, so it is a constant here.
pub const ACTIVE_PARTITION_LIMIT: usize = 500;
/// The error output type (`!{firehose:error-output-type}`) of records beyond
/// [`ACTIVE_PARTITION_LIMIT`], as the buffering page names it.
pub const ERROR_ACTIVE_PARTITION_EXCEEDED: &str = "activePartitionExceeded";
/// The error code and message of such a record. AWS documents neither; these are the ones users
/// report from the error objects (twin choice, so that the record says why it is there).
const ACTIVE_PARTITION_ERROR_CODE: &str = "DynamicPartitioning.ActivePartitionsLimitExceeded";
const ACTIVE_PARTITION_ERROR_MESSAGE: &str =
    "The number of active partitions has exceeded the configured limit";

/// The largest transformer event, in bytes of JSON: Lambda's synchronous payload limit, which
/// applies to the request as to the response ("For synchronous invocations, the maximum payload
/// size is 6 MB", Lambda API reference, Invoke,
/// <https://docs.aws.amazon.com/lambda/latest/dg/API_Invoke.html>; Lambda refuses a larger
/// request with "Request must be smaller than 6291456 bytes for the InvokeFunction operation").
/// Firehose's processor buffer holds at most 3 MB of record data ("The buffering size hint
/// ranges between 0.2 MB and 3MB", <https://docs.aws.amazon.com/firehose/latest/dev/data-transformation.html>),
/// but the event carries that data base64-encoded (4/3 of it) beside each record's metadata, so
/// the twin cuts every read into events by their encoded size.
pub const EVENT_LIMIT_BYTES: usize = orderflow_transformer::RESPONSE_LIMIT_BYTES;

/// The checkpoint name of a table's delivery stream.
pub fn reader_name(table: Table) -> String {
    format!("firehose/{}", table.name())
}

/// The delivery stream's name, as OpenTofu names it (`orderflow-local-product-details`).
pub fn delivery_stream_name(prefix: &str, table: Table) -> String {
    format!("{prefix}-{}", table.name().replace('_', "-"))
}

type TransformFn = dyn Fn(&KinesisFirehoseEvent) -> KinesisFirehoseResponse + Send + Sync;

/// The transformer Lambda a delivery stream invokes: Firehose's event in, the function's answer
/// out. Called on a blocking thread, never on the async workers.
#[derive(Clone)]
pub struct Transformer(Arc<TransformFn>);

impl Transformer {
    /// The table's transformer, the real handler in process (`orderflow_transformer`).
    pub fn lambda(table: Table) -> Self {
        Self::new(move |event| orderflow_transformer::transform(event, table).0)
    }

    /// Any function with the transformer's contract (tests wrap the real handler).
    pub fn new(
        function: impl Fn(&KinesisFirehoseEvent) -> KinesisFirehoseResponse + Send + Sync + 'static,
    ) -> Self {
        Transformer(Arc::new(function))
    }

    fn invoke(&self, event: &KinesisFirehoseEvent) -> KinesisFirehoseResponse {
        (self.0)(event)
    }
}

/// A delivery stream, ready to [`run`](Delivery::run).
#[derive(Clone)]
pub struct Delivery {
    /// The table it feeds.
    pub table: Table,
    /// Its name (object names start with it).
    pub name: String,
    /// The Glue database the format conversion reads the schema from.
    pub database: String,
    /// The source stream.
    pub stream: Stream,
    /// The destination bucket.
    pub bucket: Bucket,
    /// The transformer Lambda's name (error records name it).
    pub transformer: String,
    /// The transformer itself.
    pub transform: Transformer,
    /// Buffering, prefixes.
    pub settings: DeliverySettings,
    /// Overrides `settings.buffering_interval_seconds` when set.
    pub buffering_interval: Duration,
    /// What it asks before reading each shard: Firehose polls with GetRecords, within the shard's
    /// shared read throughput (see [`crate::limits`]).
    pub reads: ReadThrottle,
}

/// Where a buffer's records go.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Output {
    /// A dynamic partition: the object prefix its records resolve to.
    Partition(String),
    /// An error output type, `!{firehose:error-output-type}` of the error prefix.
    Error(&'static str),
}

/// What a buffer holds.
enum Contents {
    /// A partition's rows, checked against the table's schema as they came.
    Rows(RowBatchBuilder),
    /// Error records, one JSON document a line.
    Lines(Vec<u8>),
}

/// One output buffer, delivered as one object.
struct Buffer {
    contents: Contents,
    /// Bytes it holds (transformed data or error lines), against the buffering size.
    bytes: usize,
    /// When its first record came, against the buffering interval.
    since: Instant,
    /// The approximate arrival time of its oldest record (the object's time).
    oldest_arrival_ms: u64,
    /// `(shard, position)` of each record in it.
    records: Vec<(u32, u64)>,
}

impl Buffer {
    fn new(contents: Contents) -> Buffer {
        Buffer {
            contents,
            bytes: 0,
            since: Instant::now(),
            oldest_arrival_ms: u64::MAX,
            records: Vec::new(),
        }
    }
}

/// What a delivery holds between rounds.
struct State {
    /// Per shard, the last position read.
    read: Vec<u64>,
    /// Per shard, the checkpoint saved.
    saved: Vec<u64>,
    /// Per shard, the positions of the records held in buffers not yet written.
    unwritten: Vec<BTreeSet<u64>>,
    buffers: BTreeMap<Output, Buffer>,
}

impl State {
    /// Nothing read yet; the checkpoints saved at `saved`.
    fn new(saved: Vec<u64>) -> State {
        State {
            read: saved.clone(),
            unwritten: vec![BTreeSet::new(); saved.len()],
            saved,
            buffers: BTreeMap::new(),
        }
    }

    /// Partitions buffered now (a partition whose object is not written yet stays active).
    fn active_partitions(&self) -> usize {
        self.buffers
            .keys()
            .filter(|output| matches!(output, Output::Partition(_)))
            .count()
    }

    /// Per shard, how far the checkpoint may move: to just before the oldest record still in an
    /// unwritten buffer, else to the last record read.
    fn safe_checkpoints(&self) -> Vec<u64> {
        self.read
            .iter()
            .zip(&self.unwritten)
            .map(|(&read, unwritten)| unwritten.first().map_or(read, |&oldest| oldest - 1))
            .collect()
    }

    /// `record` now has `bytes` in the buffer of `output` (which exists).
    fn hold(&mut self, output: &Output, record: &StoredRecord, bytes: usize) {
        let buffer = self.buffers.get_mut(output).expect("the buffer exists");
        buffer.bytes += bytes;
        buffer.oldest_arrival_ms = buffer.oldest_arrival_ms.min(record.arrival_ms);
        buffer.records.push((record.shard, record.position));
        self.unwritten[record.shard as usize].insert(record.position);
    }

    /// Adds one error record for `record` to the error output `kind`.
    fn hold_error(&mut self, kind: &'static str, line: &serde_json::Value, record: &StoredRecord) {
        let mut bytes = serde_json::to_vec(line).expect("a JSON value serialises");
        bytes.push(b'\n');
        let output = Output::Error(kind);
        let buffer = self
            .buffers
            .entry(output.clone())
            .or_insert_with(|| Buffer::new(Contents::Lines(Vec::new())));
        if let Contents::Lines(lines) = &mut buffer.contents {
            lines.extend_from_slice(&bytes);
        }
        self.hold(&output, record, bytes.len());
    }

    /// The records of a written buffer no longer hold the checkpoints back.
    fn release(&mut self, records: &[(u32, u64)]) {
        for &(shard, position) in records {
            self.unwritten[shard as usize].remove(&position);
        }
    }

    /// The buffers due: full, older than `interval`, or every one when `all`.
    fn due(&self, buffer_bytes: usize, interval: Duration, all: bool) -> Vec<Output> {
        self.buffers
            .iter()
            .filter(|(_, buffer)| {
                all || buffer.bytes >= buffer_bytes || buffer.since.elapsed() >= interval
            })
            .map(|(output, _)| output.clone())
            .collect()
    }

    /// How long until the oldest buffer is due by its interval.
    fn next_due(&self, interval: Duration) -> Option<Duration> {
        self.buffers
            .values()
            .map(|buffer| interval.saturating_sub(buffer.since.elapsed()))
            .min()
    }

    /// Forgets every buffer and reads again from the saved checkpoints: the way out of a buffer
    /// that cannot be turned into an object, without ever skipping its records.
    fn rewind(&mut self) {
        self.buffers.clear();
        for unwritten in &mut self.unwritten {
            unwritten.clear();
        }
        self.read = self.saved.clone();
    }
}

/// How a flush ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Flushed {
    /// Every buffer asked for is written; the checkpoints they freed are saved.
    Written,
    /// A buffer could not be encoded: everything was forgotten and is read again.
    Rewound,
    /// Shutting down with buffers unwritten: their records stay after the checkpoints.
    GaveUp,
}

/// One transformer invocation: records `range` of a read, and the event's JSON.
struct Event {
    range: Range<usize>,
    json: Vec<u8>,
}

/// Runs `work` on a blocking thread; a panic there panics the caller (so the supervisor sees
/// it and restarts the task).
async fn blocking<T: Send + 'static>(work: impl FnOnce() -> T + Send + 'static) -> T {
    match tokio::task::spawn_blocking(work).await {
        Ok(value) => value,
        Err(error) => match error.try_into_panic() {
            Ok(panic) => std::panic::resume_unwind(panic),
            Err(error) => panic!("a blocking task of a delivery was cancelled: {error}"),
        },
    }
}

impl Delivery {
    /// Runs until `shutdown`, then delivers what it holds. `flush` asks for an early delivery
    /// of every buffer (each new value is one request). The first run of a delivery stream
    /// creates it: it starts at the stream's tip.
    pub async fn run(self, shutdown: CancellationToken, mut flush: watch::Receiver<u64>) {
        let delivery = Arc::new(self);
        let saved = loop {
            let (stream, reader) = (delivery.stream.clone(), reader_name(delivery.table));
            match blocking(move || stream.resume_or_start_at_tips(&reader)).await {
                Ok(positions) => break positions,
                Err(error) => {
                    tracing::error!(table = delivery.table.name(), error = %error, "reading the checkpoints");
                    tokio::time::sleep(READ_RETRY).await;
                }
            }
        };
        let mut state = State::new(saved);
        let mut appended = delivery.stream.appended();
        let buffer_bytes = delivery.settings.buffering_size_mb as usize * 1024 * 1024;
        let processor_bytes =
            (delivery.settings.processor_buffer_size_mb * 1024.0 * 1024.0) as usize;
        let interval = delivery.buffering_interval;
        let mut flush_seen = *flush.borrow_and_update();
        loop {
            appended.borrow_and_update();
            // Kinesis' read limits (crate::limits): one GetRecords call per shard, waited for.
            for shard in 0..delivery.stream.shard_count() {
                delivery.reads.before_read(shard).await;
            }
            let round = delivery.clone();
            let (next, read) =
                blocking(move || round.read_and_transform(state, processor_bytes)).await;
            state = next;
            let caught_up = !matches!(read, Ok(true));
            if let Err(error) = &read {
                tracing::error!(table = delivery.table.name(), error = %error, "reading the stream");
            }
            let flush_requested = *flush.borrow() != flush_seen;
            if flush_requested && caught_up {
                flush_seen = *flush.borrow_and_update();
            }
            let everything = caught_up && (flush_requested || shutdown.is_cancelled());
            let due = state.due(buffer_bytes, interval, everything);
            if (!due.is_empty() || state.safe_checkpoints() != state.saved)
                && delivery.flush(&mut state, due, &shutdown).await == Flushed::GaveUp
            {
                return;
            }
            if shutdown.is_cancelled() && caught_up {
                return;
            }
            if caught_up {
                let mut wait = state
                    .next_due(interval)
                    .unwrap_or(Duration::from_secs(3600));
                if read.is_err() {
                    wait = wait.min(READ_RETRY);
                }
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    _ = appended.changed() => {}
                    _ = flush.changed() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
    }

    /// One round, on a blocking thread: reads up to one processor buffer and transforms it into
    /// the buffers. `Ok(false)`: nothing new to read.
    fn read_and_transform(&self, mut state: State, max_bytes: usize) -> (State, Result<bool>) {
        let read = self.read_round(&mut state.read, max_bytes);
        let read = read.map(|records| {
            let any = !records.is_empty();
            if any {
                self.process(&records, &mut state);
            }
            any
        });
        (state, read)
    }

    /// Reads up to one processor buffer, round-robin over the shards. Positions move past records
    /// retention trimmed before they were read (reported once, as lost).
    fn read_round(&self, positions: &mut [u64], max_bytes: usize) -> Result<Vec<StoredRecord>> {
        let mut out = Vec::new();
        let mut bytes = 0;
        for (shard, after) in positions.iter_mut().enumerate() {
            if bytes >= max_bytes {
                break;
            }
            let read =
                self.stream
                    .read_from(shard as u32, *after, READ_LIMIT, max_bytes - bytes)?;
            crate::stream::report_trimmed(
                &reader_name(self.table),
                shard as u32,
                read.trimmed_unread,
            );
            *after += read.trimmed_unread;
            self.reads.after_read(
                shard as u32,
                read.records
                    .iter()
                    .map(|r| record_size(&r.partition_key, &r.data))
                    .sum(),
            );
            bytes += read.records.iter().map(|r| r.data.len()).sum::<usize>();
            out.extend(read.records);
        }
        Ok(out)
    }

    /// Invokes the transformer on `records`, event by event, and buffers its answers.
    fn process(&self, records: &[StoredRecord], state: &mut State) {
        let (events, too_large) = self.events(records, EVENT_LIMIT_BYTES);
        let now = now_ms();
        for index in too_large {
            let record = &records[index];
            tracing::error!(table = self.table.name(), sequence_number = %record.sequence_number(), "record too large for a transformer event; it goes to the error prefix");
            let line = self.processing_failed(
                record,
                now,
                "Lambda.RequestTooLarge",
                "The record alone makes an event larger than Lambda accepts (twin error).",
            );
            state.hold_error(ERROR_PROCESSING_FAILED, &line, record);
        }
        for event in events {
            let batch = &records[event.range];
            let outputs = self.invoke(&event.json, batch);
            for (record, output) in batch.iter().zip(outputs) {
                self.route(record, output, now, state);
            }
        }
        for record in records {
            let read = &mut state.read[record.shard as usize];
            *read = (*read).max(record.position);
        }
    }

    /// Cuts `records` into events of at most `limit` bytes of JSON each, in order, each holding
    /// as many records as fit. A record too large for an event on its own is returned apart
    /// (never sent: Lambda would refuse the invocation).
    fn events(&self, records: &[StoredRecord], limit: usize) -> (Vec<Event>, Vec<usize>) {
        // Each record's JSON once; an event is its envelope with those entries spliced in.
        let entries: Vec<Vec<u8>> = records.iter().map(event_record).collect();
        let envelope = || self.event_envelope();
        let (head, tail) = envelope();
        // Every envelope has the same length (a UUID is always 36 characters).
        let base = head.len() + tail.len();
        let mut ranges = Vec::new();
        let mut too_large = Vec::new();
        let mut start = 0;
        let mut total = base;
        for (index, entry) in entries.iter().enumerate() {
            let len = entry.len();
            if base + len > limit {
                if start < index {
                    ranges.push(start..index);
                }
                too_large.push(index);
                (start, total) = (index + 1, base);
                continue;
            }
            // Entries after the first are preceded by a comma.
            let added = len + usize::from(index > start);
            if total + added > limit {
                ranges.push(start..index);
                (start, total) = (index, base + len);
            } else {
                total += added;
            }
        }
        if start < records.len() {
            ranges.push(start..records.len());
        }
        let events = ranges
            .into_iter()
            .map(|range| {
                let (head, tail) = envelope();
                let mut json = head;
                for (index, entry) in entries[range.clone()].iter().enumerate() {
                    if index > 0 {
                        json.push(b',');
                    }
                    json.extend_from_slice(entry);
                }
                json.extend_from_slice(&tail);
                Event { range, json }
            })
            .collect();
        (events, too_large)
    }

    /// Invokes the transformer with one event; per record its answer, or `None` for an
    /// answer Firehose would reject as a whole (not one answer per record).
    fn invoke(
        &self,
        event: &[u8],
        records: &[StoredRecord],
    ) -> Vec<Option<KinesisFirehoseResponseRecord>> {
        let response = serde_json::from_slice::<KinesisFirehoseEvent>(event)
            .map(|event| self.transform.invoke(&event));
        match response {
            Ok(response) if response.records.len() == records.len() => {
                response.records.into_iter().map(Some).collect()
            }
            Ok(_) | Err(_) => {
                tracing::error!(
                    table = self.table.name(),
                    "transformer answer does not match its input; records go to the error prefix"
                );
                records.iter().map(|_| None).collect()
            }
        }
    }

    /// Buffers one record by the transformer's answer.
    fn route(
        &self,
        record: &StoredRecord,
        output: Option<KinesisFirehoseResponseRecord>,
        now: u64,
        state: &mut State,
    ) {
        let failed = |code: &str| {
            let message = "The transformer returned the record as ProcessingFailed (it is not a valid order).";
            self.processing_failed(record, now, code, message)
        };
        let Some(output) = output else {
            state.hold_error(
                ERROR_PROCESSING_FAILED,
                &failed("Lambda.InvalidOutput"),
                record,
            );
            return;
        };
        if output.record_id.as_deref() != Some(record_id(record).as_str()) {
            state.hold_error(
                ERROR_PROCESSING_FAILED,
                &failed("Lambda.InvalidOutput"),
                record,
            );
            return;
        }
        match output.result.as_deref() {
            Some(RESULT_OK) => {}
            Some(RESULT_DROPPED) => return,
            _ => {
                let line = failed("Lambda.ProcessingFailed");
                state.hold_error(ERROR_PROCESSING_FAILED, &line, record);
                return;
            }
        }
        let Some(keys) = partition_values(&output.metadata.partition_keys) else {
            let line = failed("DynamicPartitioning.MetadataExtractionFailed");
            state.hold_error(ERROR_PROCESSING_FAILED, &line, record);
            return;
        };
        let data = &output.data.0;
        let arrival = DateTime::<Utc>::from_timestamp_millis(record.arrival_ms as i64)
            .unwrap_or_else(Utc::now);
        let prefix = self.partition_prefix(&keys, arrival);
        let partition = Output::Partition(prefix);
        if !state.buffers.contains_key(&partition)
            && state.active_partitions() >= ACTIVE_PARTITION_LIMIT
        {
            let line = json!({
                "attemptsMade": 1,
                "arrivalTimestamp": record.arrival_ms,
                "errorCode": ACTIVE_PARTITION_ERROR_CODE,
                "errorMessage": ACTIVE_PARTITION_ERROR_MESSAGE,
                "attemptEndingTimestamp": now,
                "rawData": BASE64.encode(data),
                "partitionKeys": keys_json(&keys),
            });
            state.hold_error(ERROR_ACTIVE_PARTITION_EXCEEDED, &line, record);
            return;
        }
        let buffer = state
            .buffers
            .entry(partition.clone())
            .or_insert_with(|| Buffer::new(Contents::Rows(RowBatchBuilder::new(self.table))));
        let Contents::Rows(builder) = &mut buffer.contents else {
            unreachable!("partition buffers hold rows");
        };
        match builder.push_record(data) {
            Ok(_) => state.hold(&partition, record, data.len()),
            Err(error) => {
                if buffer.records.is_empty() {
                    // The record would have opened this partition: it is not active after all.
                    state.buffers.remove(&partition);
                }
                tracing::warn!(table = self.table.name(), sequence_number = %record.sequence_number(), error = %error, "record does not convert to Parquet");
                let line = json!({
                    "attemptsMade": 1,
                    "arrivalTimestamp": record.arrival_ms,
                    "lastErrorCode": "DataFormatConversion.MalformedData",
                    "lastErrorMessage": error.to_string(),
                    "attemptEndingTimestamp": now,
                    "rawData": BASE64.encode(data),
                    "sequenceNumber": record.sequence_number(),
                    "dataCatalogTable": {
                        "databaseName": self.database,
                        "tableName": self.table.name(),
                    },
                });
                state.hold_error(ERROR_FORMAT_CONVERSION_FAILED, &line, record);
            }
        }
    }

    fn processing_failed(
        &self,
        record: &StoredRecord,
        now: u64,
        code: &str,
        message: &str,
    ) -> serde_json::Value {
        json!({
            "attemptsMade": 1,
            "arrivalTimestamp": record.arrival_ms,
            "errorCode": code,
            "errorMessage": message,
            "attemptEndingTimestamp": now,
            "rawData": BASE64.encode(&record.data),
            "lambdaArn": format!(
                "arn:aws:lambda:us-east-1:000000000000:function:{}:$LATEST",
                self.transformer
            ),
        })
    }

    /// Writes the buffers `outputs`, each as one object, then saves the checkpoints the written
    /// buffers free (also when `outputs` is empty and records were only dropped). Retries a
    /// failed write (objects already written are not written again) until it succeeds, or, once
    /// shutdown has begun, for [`SHUTDOWN_WRITE_GRACE`]: then it gives up, and the checkpoints
    /// stay before every unwritten record, so they are delivered again after a restart, as
    /// Firehose retries a failed S3 delivery without skipping data.
    async fn flush(
        self: &Arc<Self>,
        state: &mut State,
        outputs: Vec<Output>,
        shutdown: &CancellationToken,
    ) -> Flushed {
        let mut ended = Flushed::Written;
        for output in outputs {
            let Some(mut buffer) = state.buffers.remove(&output) else {
                continue;
            };
            let records = std::mem::take(&mut buffer.records);
            let encoding = self.clone();
            let object = blocking(move || encoding.object(&output, buffer)).await;
            let written = match object {
                Ok(None) => true,
                Ok(Some((key, bytes))) => self.put(&key, bytes, shutdown).await,
                Err(error) => {
                    // Nothing of it was written: read the same records again rather than skip them.
                    tracing::error!(table = self.table.name(), error = %format!("{error:#}"), "building an object failed; reading the records again");
                    ended = Flushed::Rewound;
                    break;
                }
            };
            if !written {
                tracing::error!(
                    table = self.table.name(),
                    "shutting down with objects unwritten: their records stay after the checkpoints and are delivered again at the next start"
                );
                ended = Flushed::GaveUp;
                break;
            }
            state.release(&records);
        }
        self.save_checkpoints(state).await;
        if ended == Flushed::Rewound {
            state.rewind();
        }
        ended
    }

    /// Writes one object; `false` if it gave up at shutdown.
    async fn put(&self, key: &str, bytes: Vec<u8>, shutdown: &CancellationToken) -> bool {
        let mut backoff = Duration::from_millis(100);
        let mut giving_up_at: Option<Instant> = None;
        loop {
            match self.bucket.put(key, bytes.clone()).await {
                Ok(()) => return true,
                Err(error) => {
                    tracing::error!(table = self.table.name(), error = %format!("{error:#}"), "writing an object failed; retrying");
                    if shutdown.is_cancelled() {
                        let deadline = *giving_up_at
                            .get_or_insert_with(|| Instant::now() + SHUTDOWN_WRITE_GRACE);
                        if Instant::now() >= deadline {
                            return false;
                        }
                    }
                    // Shutdown cuts a long back-off short; the grace period then bounds the rest.
                    let wait = giving_up_at.map_or(backoff, |deadline| {
                        backoff.min(deadline.saturating_duration_since(Instant::now()))
                    });
                    tokio::select! {
                        () = tokio::time::sleep(wait) => {}
                        () = shutdown.cancelled(), if giving_up_at.is_none() => {}
                    }
                    backoff = (backoff * 2).min(Duration::from_secs(10));
                }
            }
        }
    }

    /// Saves the checkpoints as far as every record before them is written (or dropped).
    async fn save_checkpoints(&self, state: &mut State) {
        let safe = state.safe_checkpoints();
        if safe == state.saved {
            return;
        }
        let positions: Vec<(u32, u64)> = safe
            .iter()
            .enumerate()
            .map(|(shard, &position)| (shard as u32, position))
            .collect();
        loop {
            let (stream, reader, positions) = (
                self.stream.clone(),
                reader_name(self.table),
                positions.clone(),
            );
            match blocking(move || stream.save_checkpoints(&reader, &positions)).await {
                Ok(()) => break,
                Err(error) => {
                    tracing::error!(error = %error, "saving checkpoints failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        state.saved = safe;
    }

    /// The object of one buffer (Parquet for a partition, JSON lines for an error output), named
    /// and prefixed by the approximate arrival time of its oldest record; `None` for a
    /// partition whose records had no rows.
    fn object(&self, output: &Output, buffer: Buffer) -> Result<Option<(String, Vec<u8>)>> {
        let time = DateTime::<Utc>::from_timestamp_millis(buffer.oldest_arrival_ms as i64)
            .unwrap_or_else(Utc::now);
        match (output, buffer.contents) {
            (Output::Partition(prefix), Contents::Rows(mut builder)) => {
                if builder.is_empty() {
                    return Ok(None);
                }
                let name = object_name(&self.name, time, &self.settings.file_extension);
                let bytes = parquet_bytes(&builder.finish())?;
                Ok(Some((format!("{prefix}{name}"), bytes)))
            }
            (Output::Error(kind), Contents::Lines(lines)) => {
                let prefix = expand_prefix(
                    &self.settings.error_output_prefix,
                    self.table.name(),
                    &[],
                    Some(kind),
                    time,
                );
                let name = object_name(&self.name, time, "");
                Ok(Some((format!("{prefix}{name}"), lines)))
            }
            (output, _) => anyhow::bail!("buffer {output:?} holds the wrong contents"),
        }
    }
}

/// What redriving one error object produced.
struct Redriven {
    /// Parquet objects to write: key and bytes.
    objects: Vec<(String, Vec<u8>)>,
    /// The lines of the records that failed again, as they were.
    failed_lines: Vec<u8>,
    /// Records that landed (or that the transformer dropped).
    landed: u64,
    /// Records that failed again.
    failed: u64,
}

/// What became of a record given again.
enum Again {
    /// A row for the partition of these keys.
    Row(Vec<u8>, PartitionKeys),
    /// The transformer dropped it.
    Dropped,
    /// It failed again.
    Failed,
}

/// How much record data one redrive event carries: base64 makes it 4/3 larger, well within
/// Lambda's 6 MiB with the records' metadata.
const REDRIVE_EVENT_DATA_BYTES: usize = 3 * 1024 * 1024;

impl Delivery {
    /// Redrives this table's Firehose error output ([`crate::redrive`]): the records of
    /// `processing-failed` through the transformer, those of `activePartitionExceeded` straight
    /// to their partition, into Parquet objects (one per partition and error object, written
    /// directly, not through the delivery's buffers). An error object is deleted after its
    /// objects are written; records that fail again are first written to a new error object.
    pub async fn redrive_errors(&self, report: &mut crate::redrive::RedriveReport) -> Result<()> {
        for kind in [ERROR_PROCESSING_FAILED, ERROR_ACTIVE_PARTITION_EXCEEDED] {
            // `errors/{table}/{kind}/`: the error prefix up to its time placeholders.
            let template = self
                .settings
                .error_output_prefix
                .replace("{table}", self.table.name())
                .replace("!{firehose:error-output-type}", kind);
            // (object_store lists by whole path segments: no trailing slash.)
            let prefix = static_part(&template).trim_end_matches('/').to_owned();
            let mut keys: Vec<String> = self
                .bucket
                .list(&prefix)
                .await?
                .into_iter()
                .map(|(key, _)| key)
                .collect();
            keys.sort();
            for key in keys {
                let bytes = self.bucket.get(&key).await?;
                let delivery = self.clone();
                let redriven = blocking(move || delivery.redrive_lines(kind, &bytes)).await;
                let redriven = match redriven {
                    Ok(redriven) => redriven,
                    Err(error) => {
                        report.kept.push(format!("{key}: {error:#}"));
                        continue;
                    }
                };
                for (object, bytes) in redriven.objects {
                    self.bucket.put(&object, bytes).await?;
                }
                if redriven.failed > 0 {
                    let folder = key.rsplit_once('/').map_or("", |(folder, _)| folder);
                    let again = format!("{folder}/{}", object_name(&self.name, Utc::now(), ""));
                    self.bucket.put(&again, redriven.failed_lines).await?;
                    report.kept.push(format!(
                        "{key}: {} records failed again, now in {again}",
                        redriven.failed
                    ));
                }
                self.bucket.delete(&key).await?;
                report.error_records += redriven.landed;
                report.error_records_failed_again += redriven.failed;
                tracing::info!(key = %key, landed = redriven.landed, failed = redriven.failed, "error output redriven");
            }
        }
        Ok(())
    }

    /// The Parquet objects and the still-failing lines of one error object of `kind`.
    fn redrive_lines(&self, kind: &str, bytes: &[u8]) -> Result<Redriven> {
        struct Line<'a> {
            text: &'a [u8],
            data: Vec<u8>,
            arrival_ms: u64,
            keys: Option<PartitionKeys>,
        }
        let lines = bytes
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .enumerate()
            .map(|(index, text)| {
                let line: serde_json::Value = serde_json::from_slice(text)
                    .with_context(|| format!("line {} is not JSON", index + 1))?;
                let data = BASE64
                    .decode(line["rawData"].as_str().unwrap_or_default())
                    .with_context(|| format!("line {}: rawData is not base64", index + 1))?;
                let keys = partition_key_names()
                    .map(|name| {
                        line["partitionKeys"][name]
                            .as_str()
                            .map(|value| (name, value.to_owned()))
                    })
                    .collect::<Option<Vec<_>>>();
                Ok(Line {
                    text,
                    data,
                    arrival_ms: line["arrivalTimestamp"].as_u64().unwrap_or_else(now_ms),
                    keys,
                })
            })
            .collect::<Result<Vec<_>>>()?;
        let mut outputs: Vec<Again> = Vec::new();
        if kind == ERROR_PROCESSING_FAILED {
            let mut start = 0;
            while start < lines.len() {
                let mut end = start;
                let mut bytes = 0;
                while end < lines.len()
                    && (end == start || bytes + lines[end].data.len() <= REDRIVE_EVENT_DATA_BYTES)
                {
                    bytes += lines[end].data.len();
                    end += 1;
                }
                outputs.extend(
                    self.transform_again(
                        &lines[start..end]
                            .iter()
                            .map(|l| (&l.data[..], l.arrival_ms))
                            .collect::<Vec<_>>(),
                    ),
                );
                start = end;
            }
        } else {
            outputs.extend(lines.iter().map(|line| match &line.keys {
                Some(keys) => Again::Row(line.data.clone(), keys.clone()),
                None => Again::Failed,
            }));
        }
        let mut partitions: BTreeMap<String, (RowBatchBuilder, u64)> = BTreeMap::new();
        let mut redriven = Redriven {
            objects: Vec::new(),
            failed_lines: Vec::new(),
            landed: 0,
            failed: 0,
        };
        for (line, output) in lines.iter().zip(outputs) {
            let landed = match output {
                Again::Failed => false,
                Again::Dropped => true,
                Again::Row(data, keys) => {
                    let arrival = DateTime::<Utc>::from_timestamp_millis(line.arrival_ms as i64)
                        .unwrap_or_else(Utc::now);
                    let prefix = self.partition_prefix(&keys, arrival);
                    let (builder, oldest) = partitions
                        .entry(prefix)
                        .or_insert_with(|| (RowBatchBuilder::new(self.table), u64::MAX));
                    let pushed = builder.push_record(&data).is_ok();
                    if pushed {
                        *oldest = (*oldest).min(line.arrival_ms);
                    }
                    pushed
                }
            };
            if landed {
                redriven.landed += 1;
            } else {
                redriven.failed += 1;
                redriven.failed_lines.extend_from_slice(line.text);
                redriven.failed_lines.push(b'\n');
            }
        }
        for (prefix, (mut builder, oldest)) in partitions {
            if builder.is_empty() {
                continue;
            }
            let time =
                DateTime::<Utc>::from_timestamp_millis(oldest as i64).unwrap_or_else(Utc::now);
            let name = object_name(&self.name, time, &self.settings.file_extension);
            redriven
                .objects
                .push((format!("{prefix}{name}"), parquet_bytes(&builder.finish())?));
        }
        Ok(redriven)
    }

    /// The transformer's answer for records given again (data and arrival time), per record.
    fn transform_again(&self, records: &[(&[u8], u64)]) -> Vec<Again> {
        let record_ids: Vec<String> = (0..records.len())
            .map(|index| format!("redrive-{index}"))
            .collect();
        let json = self.with_event_source(|source| {
            event_json::firehose_event(
                source,
                &uuid::Uuid::new_v4().to_string(),
                records
                    .iter()
                    .zip(&record_ids)
                    .map(|((data, arrival_ms), record_id)| event_json::EventRecord {
                        record_id,
                        data,
                        arrival_ms: *arrival_ms,
                        kinesis: None,
                    }),
            )
        });
        let Ok(event) = serde_json::from_slice::<KinesisFirehoseEvent>(&json) else {
            return records.iter().map(|_| Again::Failed).collect();
        };
        let response = self.transform.invoke(&event);
        if response.records.len() != records.len() {
            return records.iter().map(|_| Again::Failed).collect();
        }
        response
            .records
            .into_iter()
            .enumerate()
            .map(|(index, output)| {
                if output.record_id.as_deref() != Some(format!("redrive-{index}").as_str()) {
                    return Again::Failed;
                }
                match output.result.as_deref() {
                    Some(RESULT_DROPPED) => Again::Dropped,
                    Some(RESULT_OK) => match partition_values(&output.metadata.partition_keys) {
                        Some(keys) => Again::Row(output.data.0, keys),
                        None => Again::Failed,
                    },
                    _ => Again::Failed,
                }
            })
            .collect()
    }
}

/// The keys as the error record's `partitionKeys` object.
fn keys_json(keys: &PartitionKeys) -> serde_json::Value {
    serde_json::Value::Object(
        keys.iter()
            .map(|(name, value)| ((*name).to_owned(), json!(value)))
            .collect(),
    )
}

impl Delivery {
    /// The object prefix of a partition (the settings' prefix with the keys filled in).
    fn partition_prefix(&self, keys: &PartitionKeys, arrival: DateTime<Utc>) -> String {
        let pairs: Vec<(&str, &str)> = keys
            .iter()
            .map(|(name, value)| (*name, value.as_str()))
            .collect();
        expand_prefix(
            &self.settings.prefix,
            self.table.name(),
            &pairs,
            None,
            arrival,
        )
    }
}

/// Firehose's record id for a Kinesis-sourced record.
fn record_id(record: &StoredRecord) -> String {
    format!("{}{:012}", record.sequence_number(), record.shard)
}

/// One record of the transformer's event, as Firehose sends it for a Kinesis source.
fn event_record(record: &StoredRecord) -> Vec<u8> {
    let (record_id, sequence_number, shard_id) = (
        record_id(record),
        record.sequence_number(),
        record.shard_id(),
    );
    event_json::event_record(&event_json::EventRecord {
        record_id: &record_id,
        data: &record.data,
        arrival_ms: record.arrival_ms,
        kinesis: Some(event_json::KinesisMetadata {
            sequence_number: &sequence_number,
            partition_key: &record.partition_key,
            shard_id: &shard_id,
        }),
    })
}

impl Delivery {
    /// `f` with where this delivery stream's transformer events come from.
    fn with_event_source<T>(&self, f: impl FnOnce(&event_json::EventSource<'_>) -> T) -> T {
        let (delivery_stream_arn, stream_arn) = (
            format!(
                "arn:aws:firehose:us-east-1:{}:deliverystream/{}",
                crate::stream::ACCOUNT,
                self.name
            ),
            self.stream.arn(),
        );
        f(&event_json::EventSource {
            delivery_stream_arn: &delivery_stream_arn,
            source_kinesis_stream_arn: Some(&stream_arn),
            region: "us-east-1",
        })
    }

    /// The JSON of a transformer event around its records (a new invocation id each time).
    fn event_envelope(&self) -> (Vec<u8>, Vec<u8>) {
        self.with_event_source(|source| {
            event_json::event_envelope(source, &uuid::Uuid::new_v4().to_string())
        })
    }
}

fn now_ms() -> u64 {
    Utc::now().timestamp_millis().max(0) as u64
}

#[cfg(test)]
pub(crate) mod tests {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::{Condvar, Mutex};

    use orderflow_api::RecordEntry;
    use orderflow_domain::{GeneratorConfig, OrderGenerator};

    use super::*;
    use crate::settings::PipelineSettings;

    const ORDERS: usize = 40;

    pub(crate) fn delivery(stream: &Stream, bucket: &Bucket) -> Delivery {
        delivery_of(Table::Orders, stream, bucket)
    }

    fn delivery_of(table: Table, stream: &Stream, bucket: &Bucket) -> Delivery {
        Delivery {
            table,
            name: delivery_stream_name("orderflow-local", table),
            database: "orderflow_local".into(),
            stream: stream.clone(),
            bucket: bucket.clone(),
            transformer: format!(
                "orderflow-local-transform-{}",
                table.name().replace('_', "-")
            ),
            transform: Transformer::lambda(table),
            settings: PipelineSettings::built_in().delivery,
            buffering_interval: Duration::from_secs(3600),
            reads: ReadThrottle::unlimited(),
        }
    }

    /// Creates the orders delivery stream on `stream`, as the twin does at start: it will read
    /// what is appended from now on.
    pub(crate) fn create(stream: &Stream) -> Vec<u64> {
        create_of(Table::Orders, stream)
    }

    fn create_of(table: Table, stream: &Stream) -> Vec<u64> {
        stream.resume_or_start_at_tips(&reader_name(table)).unwrap()
    }

    /// `count` generated orders from `seed`, as the API would append them.
    pub(crate) fn order_entries(seed: u64, count: usize) -> Vec<RecordEntry> {
        dated_entries(seed, count, |_| None)
    }

    /// Like [`order_entries`], the `i`th order dated `date(i)` where it returns one.
    fn dated_entries(
        seed: u64,
        count: usize,
        date: impl Fn(usize) -> Option<DateTime<Utc>>,
    ) -> Vec<RecordEntry> {
        let mut generator = OrderGenerator::new(GeneratorConfig::fixed(seed));
        (0..count)
            .map(|i| {
                let mut order = generator.next_order();
                if let Some(date) = date(i) {
                    order.order_date = date;
                }
                RecordEntry {
                    partition_key: order.customer_id.to_string(),
                    data: order.to_json(),
                }
            })
            .collect()
    }

    /// Runs `delivery` until it has delivered everything (shutdown from the start).
    async fn run_to_the_end(delivery: Delivery) {
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let (_flush, flush) = watch::channel(0);
        delivery.run(shutdown, flush).await;
    }

    /// Rows in the Parquet objects under `prefix`.
    async fn rows_under(bucket: &Bucket, prefix: &str) -> u64 {
        let mut rows = 0;
        for (key, size) in bucket.list(prefix).await.unwrap() {
            rows += bucket.parquet_rows(&key, size).await.unwrap();
        }
        rows
    }

    async fn rows_written(bucket: &Bucket) -> u64 {
        rows_under(bucket, "orders").await
    }

    fn saved_checkpoints(stream: &Stream) -> Vec<Option<u64>> {
        saved_checkpoints_of(Table::Orders, stream)
    }

    fn saved_checkpoints_of(table: Table, stream: &Stream) -> Vec<Option<u64>> {
        (0..stream.shard_count())
            .map(|shard| stream.saved_checkpoint(&reader_name(table), shard).unwrap())
            .collect()
    }

    /// Issue 14, item 4: redriving a table's error output puts the records that now succeed
    /// into their partitions, keeps (rewritten, alone) the ones that fail again, and deletes each
    /// error object only after that.
    #[tokio::test]
    async fn redrive_puts_error_records_into_the_table_and_keeps_what_fails_again() {
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream::open(&dir.path().join("stream.redb"), "orders", 1).unwrap();
        let bucket = Bucket::local(&dir.path().join("bucket")).unwrap();
        let delivery = delivery(&stream, &bucket);
        let orders = order_entries(41, 2);
        let line = |data: &[u8], extra: serde_json::Value| {
            let mut line = json!({
                "attemptsMade": 1,
                "arrivalTimestamp": 1_717_848_000_000u64,
                "errorCode": "Lambda.ProcessingFailed",
                "rawData": BASE64.encode(data),
            });
            if let (Some(line), Some(extra)) = (line.as_object_mut(), extra.as_object()) {
                line.extend(extra.clone());
            }
            let mut text = serde_json::to_vec(&line).unwrap();
            text.push(b'\n');
            text
        };
        // processing-failed: a valid order (the transformer takes it now) and one that is not.
        let invalid = br#"{"customer_id": "c1"}"#;
        let mut failed = line(&orders[0].data, json!({}));
        failed.extend(line(invalid, json!({})));
        let failed_key = "errors/orders/processing-failed/year=2024/month=06/day=08/x-1";
        bucket.put(failed_key, failed).await.unwrap();
        // activePartitionExceeded: a transformed row and its partition keys.
        let json = delivery.with_event_source(|source| {
            event_json::firehose_event(
                source,
                "id",
                [event_json::EventRecord {
                    record_id: "r",
                    data: &orders[1].data,
                    arrival_ms: 0,
                    kinesis: None,
                }],
            )
        });
        let event = serde_json::from_slice::<KinesisFirehoseEvent>(&json).unwrap();
        let answer = delivery.transform.invoke(&event).records.remove(0);
        let keys = &answer.metadata.partition_keys;
        let exceeded = line(
            &answer.data.0,
            json!({"partitionKeys": {"year": keys["year"], "month": keys["month"], "day": keys["day"]}}),
        );
        let exceeded_key = "errors/orders/activePartitionExceeded/year=2024/month=06/day=08/x-2";
        bucket.put(exceeded_key, exceeded).await.unwrap();

        let mut report = crate::redrive::RedriveReport::default();
        delivery.redrive_errors(&mut report).await.unwrap();
        assert_eq!(report.error_records, 2, "{report:?}");
        assert_eq!(report.error_records_failed_again, 1);
        assert_eq!(report.kept.len(), 1, "{report:?}");
        assert_eq!(rows_written(&bucket).await, 2);
        assert!(
            bucket
                .list("errors/orders/activePartitionExceeded")
                .await
                .unwrap()
                .is_empty()
        );
        let left = bucket
            .list("errors/orders/processing-failed")
            .await
            .unwrap();
        assert_eq!(left.len(), 1);
        assert_ne!(left[0].0, failed_key, "rewritten under a new name");
        let left = bucket.get(&left[0].0).await.unwrap();
        assert_eq!(
            left,
            line(invalid, json!({})),
            "only the invalid order, as it was"
        );

        // Again: nothing more lands, the invalid order stays.
        let mut again = crate::redrive::RedriveReport::default();
        delivery.redrive_errors(&mut again).await.unwrap();
        assert_eq!(
            (again.error_records, again.error_records_failed_again),
            (0, 1)
        );
        assert_eq!(rows_written(&bucket).await, 2);
    }

    /// Issue 14, item 2: reads racing appends (an empty read, then a commit before the report
    /// looked at the shard) must never be reported as records lost to retention. Nothing is
    /// trimmed here, so any "expired" line is a false loss report.
    #[test]
    fn reads_racing_appends_report_no_loss() {
        const APPENDS: u64 = 1500;
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream::open(&dir.path().join("stream.redb"), "orders", 1).unwrap();
        let bucket = Bucket::local(&dir.path().join("bucket")).unwrap();
        let delivery = delivery(&stream, &bucket);
        let appender = {
            let stream = stream.clone();
            std::thread::spawn(move || {
                let runtime = tokio::runtime::Builder::new_current_thread()
                    .build()
                    .unwrap();
                for i in 0..APPENDS {
                    let entry = RecordEntry {
                        partition_key: "customer".into(),
                        data: i.to_string().into_bytes(),
                    };
                    runtime.block_on(stream.append(vec![entry])).unwrap();
                }
            })
        };
        let (seen, log) = crate::test_log::capture(|| {
            let mut positions = vec![0];
            let mut seen = Vec::new();
            while positions[0] < APPENDS {
                for record in delivery.read_round(&mut positions, usize::MAX).unwrap() {
                    positions[0] = record.position;
                    seen.push(record.position);
                }
            }
            seen
        });
        appender.join().unwrap();
        assert_eq!(
            seen,
            (1..=APPENDS).collect::<Vec<_>>(),
            "every record once, in order"
        );
        assert_eq!(
            log.lines_with("expired"),
            Vec::<String>::new(),
            "false loss reports"
        );
    }

    /// Issue 14, item 2: records retention really removed before the delivery read them are
    /// reported once, with their exact count, and the delivery moves past them.
    #[test]
    fn records_trimmed_unread_are_reported_with_their_count() {
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream::open(&dir.path().join("stream.redb"), "orders", 1).unwrap();
        let bucket = Bucket::local(&dir.path().join("bucket")).unwrap();
        let delivery = delivery(&stream, &bucket);
        let runtime = tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap();
        let append = |count: u64| {
            let entries = (0..count)
                .map(|i| RecordEntry {
                    partition_key: "customer".into(),
                    data: i.to_string().into_bytes(),
                })
                .collect();
            runtime.block_on(stream.append(entries)).unwrap();
        };
        append(3);
        std::thread::sleep(Duration::from_millis(5));
        append(2);
        let cutoff = stream.read(0, 3, 1, usize::MAX).unwrap()[0].arrival_ms;
        assert_eq!(stream.trim(cutoff).unwrap().removed, 3);

        let mut positions = vec![1];
        let (records, log) = crate::test_log::capture(|| {
            let first = delivery.read_round(&mut positions, usize::MAX).unwrap();
            let mut after = vec![first.last().unwrap().position];
            let second = delivery.read_round(&mut after, usize::MAX).unwrap();
            assert!(second.is_empty());
            first
        });
        assert_eq!(
            records.iter().map(|r| r.position).collect::<Vec<_>>(),
            [4, 5]
        );
        assert_eq!(positions, [3], "moved past the trimmed records");
        let reports = log.lines_with("expired (retention)");
        assert_eq!(reports.len(), 1, "{reports:?}");
        assert!(reports[0].contains("missed=2"), "{reports:?}");
    }

    /// Issue 11, item 1: a bucket that refuses writes while the twin shuts down must not let the
    /// checkpoints move; after a restart with a working bucket every record lands.
    #[tokio::test]
    async fn a_write_failing_during_shutdown_never_moves_the_checkpoint() {
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream::open(&dir.path().join("stream.redb"), "orders", 2).unwrap();
        create(&stream);
        stream.append(order_entries(11, ORDERS)).await.unwrap();
        let bucket = Bucket::local(&dir.path().join("bucket")).unwrap();
        // A real filesystem failure, no fake store: a file where the table's folder must go.
        let blocker = bucket.root().join("orders");
        std::fs::write(&blocker, b"not a folder").unwrap();

        let started = std::time::Instant::now();
        run_to_the_end(delivery(&stream, &bucket)).await;
        assert!(
            started.elapsed() < SHUTDOWN_WRITE_GRACE + Duration::from_secs(5),
            "shutdown took {:?}",
            started.elapsed()
        );
        let reader = reader_name(Table::Orders);
        for shard in 0..2 {
            assert_eq!(
                stream.checkpoint(&reader, shard).unwrap(),
                0,
                "shard {shard}: the checkpoint moved past unwritten records"
            );
        }

        // Space again: the next start delivers everything it had not.
        std::fs::remove_file(&blocker).unwrap();
        run_to_the_end(delivery(&stream, &bucket)).await;
        assert_eq!(rows_written(&bucket).await, ORDERS as u64);
        let tips = stream.tips();
        for shard in 0..2 {
            assert_eq!(
                stream.checkpoint(&reader, shard).unwrap(),
                tips[shard as usize]
            );
        }
    }

    /// Issue 11, item 6: Firehose "starts reading data from the `LATEST` position of your
    /// Kinesis stream" (Firehose developer guide, "Writing to Amazon Kinesis Firehose Using
    /// Kinesis Streams"). A new delivery stream delivers none of the records written before it
    /// existed, saves its start at once, and after a restart resumes from that start rather
    /// than from the tip of the moment.
    #[tokio::test]
    async fn a_new_delivery_stream_starts_at_the_tip_and_keeps_its_start() {
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream::open(&dir.path().join("stream.redb"), "orders", 2).unwrap();
        let bucket = Bucket::local(&dir.path().join("bucket")).unwrap();
        stream.append(order_entries(21, 15)).await.unwrap();
        assert_eq!(saved_checkpoints(&stream), [None, None]);

        run_to_the_end(delivery(&stream, &bucket)).await;
        assert_eq!(
            rows_written(&bucket).await,
            0,
            "records from before it existed"
        );
        let tips = stream.tips();
        assert_eq!(tips.iter().sum::<u64>(), 15);
        assert_eq!(
            saved_checkpoints(&stream),
            tips.iter().map(|&tip| Some(tip)).collect::<Vec<_>>()
        );

        // Written while it is stopped: read after the restart.
        stream.append(order_entries(22, 9)).await.unwrap();
        run_to_the_end(delivery(&stream, &bucket)).await;
        assert_eq!(rows_written(&bucket).await, 9);
        assert_eq!(
            saved_checkpoints(&stream),
            stream
                .tips()
                .iter()
                .map(|&tip| Some(tip))
                .collect::<Vec<_>>()
        );
    }

    /// Issue 11, item 6: with dynamic partitioning Firehose "internally buffers records that
    /// belong to a given partition" and "delivers each buffer data as a single object once the
    /// buffer size or interval are met for each partition separately" (Firehose developer
    /// guide, "Buffer data for dynamic partitioning"). One full partition is written on its own
    /// while another keeps its records; the checkpoint stays before the unwritten partition's
    /// record although later records are written, so a crash then re-delivers it.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn each_partition_is_written_on_its_own_and_the_checkpoint_waits_for_the_rest() {
        // Product lines: over 1 MiB of rows from a few thousand orders.
        const FULL: usize = 3_000;
        let table = Table::ProductDetails;
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream::open(&dir.path().join("stream.redb"), "orders", 1).unwrap();
        let bucket = Bucket::local(&dir.path().join("bucket")).unwrap();
        create_of(table, &stream);
        let day = |text: &str| -> DateTime<Utc> { text.parse().unwrap() };
        let (quiet, busy) = (
            "product_details/year=2024/month=01/",
            "product_details/year=2024/month=02/",
        );
        // Position 1 goes to the quiet partition, 2 to 3,001 to the busy one.
        stream
            .append(dated_entries(31, 1, |_| Some(day("2024-01-05T10:00:00Z"))))
            .await
            .unwrap();
        stream
            .append(dated_entries(32, FULL, |_| {
                Some(day("2024-02-07T10:00:00Z"))
            }))
            .await
            .unwrap();
        let mut one_mib = delivery_of(table, &stream, &bucket);
        one_mib.settings.buffering_size_mb = 1;

        let shutdown = CancellationToken::new();
        let (_flush, flush) = watch::channel(0);
        let running = tokio::spawn(one_mib.clone().run(shutdown.clone(), flush));
        let waited = std::time::Instant::now();
        while bucket.list(busy).await.unwrap().is_empty() {
            assert!(
                waited.elapsed() < Duration::from_secs(120),
                "the full partition was not written"
            );
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
        assert_eq!(
            bucket.list(quiet).await.unwrap(),
            Vec::new(),
            "the partition that is neither full nor old was written"
        );
        assert_eq!(
            saved_checkpoints_of(table, &stream),
            [Some(0)],
            "the checkpoint moved over the quiet partition's unwritten record"
        );
        let written_early = rows_under(&bucket, busy).await;

        // A crash now: the restart delivers the quiet partition's record, and the busy ones again.
        running.abort();
        let _ = running.await;
        run_to_the_end(one_mib).await;
        assert!(rows_under(&bucket, quiet).await >= 1);
        assert!(
            rows_under(&bucket, busy).await > written_early,
            "at least once"
        );
        assert_eq!(
            saved_checkpoints_of(table, &stream),
            [Some(FULL as u64 + 1)]
        );
    }

    /// Issue 11, item 6: "Once the number of active partitions reaches the limit of 500 per
    /// delivery stream, the rest of the records in the delivery stream are delivered to the
    /// specified S3 error bucket prefix" (`activePartitionExceeded`). A 501st day while 500 are
    /// buffered goes to that error output with its rows; once the 500 are written, a new
    /// partition is accepted again.
    #[tokio::test]
    async fn records_past_the_active_partition_limit_go_to_the_error_output() {
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream::open(&dir.path().join("stream.redb"), "orders", 1).unwrap();
        let bucket = Bucket::local(&dir.path().join("bucket")).unwrap();
        create(&stream);
        let first: DateTime<Utc> = "2021-01-01T10:00:00Z".parse().unwrap();
        let days = |i: usize| Some(first + chrono::Days::new(i as u64));
        let entries = dated_entries(41, ACTIVE_PARTITION_LIMIT + 1, days);
        let last_order: serde_json::Value = serde_json::from_slice(&entries[500].data).unwrap();
        stream.append(entries).await.unwrap();

        run_to_the_end(delivery(&stream, &bucket)).await;
        let parquet = |objects: Vec<(String, u64)>| {
            objects
                .into_iter()
                .filter(|(key, _)| key.ends_with(".parquet"))
                .count()
        };
        assert_eq!(
            parquet(bucket.list("orders").await.unwrap()),
            ACTIVE_PARTITION_LIMIT
        );
        assert_eq!(rows_written(&bucket).await, ACTIVE_PARTITION_LIMIT as u64);
        let errors = bucket
            .list("errors/orders/activePartitionExceeded/")
            .await
            .unwrap();
        assert_eq!(errors.len(), 1, "{errors:?}");
        let text = String::from_utf8(bucket.get(&errors[0].0).await.unwrap()).unwrap();
        let lines: Vec<serde_json::Value> = text
            .lines()
            .map(|line| serde_json::from_str(line).unwrap())
            .collect();
        assert_eq!(lines.len(), 1);
        assert_eq!(lines[0]["errorCode"], ACTIVE_PARTITION_ERROR_CODE);
        let rows = BASE64
            .decode(lines[0]["rawData"].as_str().unwrap())
            .unwrap();
        let row: serde_json::Value = serde_json::from_slice(&rows).unwrap();
        assert_eq!(row["order_id"], last_order["order_id"]);
        assert_eq!(
            lines[0]["partitionKeys"],
            json!({"year": "2022", "month": "05", "day": "16"})
        );
        assert_eq!(saved_checkpoints(&stream), [Some(501)]);

        // The 500 are written, so no partition is active: a new one is accepted again.
        stream
            .append(dated_entries(42, 1, |_| days(600)))
            .await
            .unwrap();
        run_to_the_end(delivery(&stream, &bucket)).await;
        assert_eq!(
            parquet(bucket.list("orders").await.unwrap()),
            ACTIVE_PARTITION_LIMIT + 1
        );
    }

    fn stored(position: u64, key: &str, data: Vec<u8>) -> StoredRecord {
        StoredRecord {
            shard: 0,
            position,
            arrival_ms: 1_717_848_000_123,
            partition_key: key.to_owned(),
            data,
        }
    }

    /// Issue 11, item 6: Lambda takes at most 6 MB per synchronous invocation, and the event
    /// carries the records base64-encoded. At exactly [`EVENT_LIMIT_BYTES`] of JSON the records
    /// go in one event; one byte more and the last record goes into a second one; a record too
    /// large for any event is never sent.
    #[test]
    fn events_are_cut_at_lambdas_payload_limit() {
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream::open(&dir.path().join("stream.redb"), "orders", 1).unwrap();
        let bucket = Bucket::local(&dir.path().join("bucket")).unwrap();
        let delivery = delivery(&stream, &bucket);
        let mut records: Vec<StoredRecord> = (1..=4)
            .map(|position| stored(position, "k", vec![b'x'; 1024 * 1024]))
            .collect();
        records.push(stored(5, "k", Vec::new()));
        let size = |records: &[StoredRecord]| {
            let (events, _) = delivery.events(records, usize::MAX);
            assert_eq!(events.len(), 1);
            events[0].json.len()
        };
        // Fill the fifth record up to the limit exactly: base64 grows by 4 bytes per 3, the
        // partition key by one byte per character.
        let room = EVENT_LIMIT_BYTES - size(&records);
        records[4].data = vec![b'y'; room / 4 * 3];
        records[4].partition_key = "k".repeat(1 + room % 4);
        assert_eq!(size(&records), EVENT_LIMIT_BYTES);

        let (events, too_large) = delivery.events(&records, EVENT_LIMIT_BYTES);
        assert!(too_large.is_empty());
        assert_eq!(events.len(), 1);
        assert_eq!(events[0].range, 0..5);
        assert_eq!(events[0].json.len(), EVENT_LIMIT_BYTES);
        let event: KinesisFirehoseEvent = serde_json::from_slice(&events[0].json).unwrap();
        assert_eq!(event.records.len(), 5);
        assert_eq!(event.records[4].data.0, records[4].data);

        records[4].partition_key.push('k');
        let (events, too_large) = delivery.events(&records, EVENT_LIMIT_BYTES);
        assert!(too_large.is_empty());
        assert_eq!(
            events.iter().map(|e| e.range.clone()).collect::<Vec<_>>(),
            [0..4, 4..5]
        );
        for event in &events {
            assert!(
                event.json.len() <= EVENT_LIMIT_BYTES,
                "{}",
                event.json.len()
            );
        }

        // A record no event can hold is kept apart; the others still go, in order.
        records.insert(2, stored(9, "k", vec![b'z'; 5 * 1024 * 1024]));
        let (events, too_large) = delivery.events(&records, EVENT_LIMIT_BYTES);
        assert_eq!(too_large, [2]);
        assert_eq!(
            events.iter().map(|e| e.range.clone()).collect::<Vec<_>>(),
            [0..2, 3..6]
        );
        for event in &events {
            assert!(
                event.json.len() <= EVENT_LIMIT_BYTES,
                "{}",
                event.json.len()
            );
        }
    }

    /// Issue 11, item 9: the transformer runs on a blocking thread. On a runtime with one async
    /// worker, a transformer that waits for another task of that runtime finishes only if the
    /// delivery does not hold the worker meanwhile (it waited on the worker before: a
    /// deadlock, cut short here by the transformer giving up after 10 s).
    #[test]
    fn the_transformer_runs_off_the_async_workers() {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream::open(&dir.path().join("stream.redb"), "orders", 1).unwrap();
        let bucket = Bucket::local(&dir.path().join("bucket")).unwrap();
        create(&stream);
        runtime
            .block_on(stream.append(order_entries(51, ORDERS)))
            .unwrap();

        let invoked = Arc::new(tokio::sync::Notify::new());
        let flag = Arc::new((Mutex::new(false), Condvar::new()));
        let saw_flag = Arc::new(AtomicBool::new(true));
        let mut waiting = delivery(&stream, &bucket);
        waiting.transform = Transformer::new({
            let (invoked, flag, saw_flag) = (invoked.clone(), flag.clone(), saw_flag.clone());
            move |event| {
                invoked.notify_one();
                let (set, changed) = &*flag;
                let set = set.lock().unwrap();
                let (set, _) = changed
                    .wait_timeout_while(set, Duration::from_secs(10), |set| !*set)
                    .unwrap();
                if !*set {
                    saw_flag.store(false, Ordering::SeqCst);
                }
                orderflow_transformer::transform(event, Table::Orders).0
            }
        });
        runtime.block_on(async move {
            let setter = tokio::spawn(async move {
                invoked.notified().await;
                let (set, changed) = &*flag;
                *set.lock().unwrap() = true;
                changed.notify_all();
            });
            tokio::spawn(run_to_the_end(waiting)).await.unwrap();
            setter.await.unwrap();
        });
        assert!(
            saw_flag.load(Ordering::SeqCst),
            "the transformer blocked the only async worker"
        );
        assert_eq!(runtime.block_on(rows_written(&bucket)), ORDERS as u64);
    }
}
