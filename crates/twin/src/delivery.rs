//! One Firehose delivery stream per table: reads the stream on its own checkpoints, invokes the
//! table's transformer with processor-buffer sized batches, buffers the rows per partition by size
//! and interval, writes Snappy Parquet under the dynamic-partitioning prefix, and writes failed
//! records with their bytes to the error prefix.
//!
//! Checkpoints move only after every object of a flush is written, so a crash re-reads and
//! re-delivers the records of the unfinished flush: at-least-once, as Firehose is.

use std::collections::BTreeMap;
use std::time::Duration;

use anyhow::{Context, Result};
use aws_lambda_events::event::firehose::KinesisFirehoseEvent;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, Utc};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use orderflow_domain::Table;
use serde_json::json;
use tokio::sync::watch;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

use crate::bucket::{Bucket, expand_prefix, object_name};
use crate::columnar::RowBatchBuilder;
use crate::limits::{ReadThrottle, record_size};
use crate::settings::DeliverySettings;
use crate::stream::{StoredRecord, Stream};

/// Records per shard read at once.
const READ_LIMIT: usize = 500;
/// How long a delivery keeps retrying a failing write once shutdown has begun. After that it
/// gives up *without* moving the checkpoints, so the next start reads the records again.
const SHUTDOWN_WRITE_GRACE: Duration = Duration::from_secs(3);
const ERROR_PROCESSING_FAILED: &str = "processing-failed";
const ERROR_FORMAT_CONVERSION_FAILED: &str = "format-conversion-failed";

/// The checkpoint name of a table's delivery stream.
pub fn reader_name(table: Table) -> String {
    format!("firehose/{}", table.name())
}

/// The delivery stream's name, as OpenTofu names it (`orderflow-local-product-details`).
pub fn delivery_stream_name(prefix: &str, table: Table) -> String {
    format!("{prefix}-{}", table.name().replace('_', "-"))
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
    /// Buffering, prefixes.
    pub settings: DeliverySettings,
    /// Overrides `settings.buffering_interval_seconds` when set.
    pub buffering_interval: Duration,
    /// What it asks before reading each shard: Firehose polls with GetRecords, within the shard's
    /// shared read throughput (see [`crate::limits`]).
    pub reads: ReadThrottle,
}

/// A failed record on its way to the error prefix.
struct ErrorRecord {
    kind: &'static str,
    line: serde_json::Value,
}

/// What has been read but not yet delivered.
struct Pending {
    partitions: BTreeMap<[String; 3], RowBatchBuilder>,
    errors: Vec<ErrorRecord>,
    bytes: usize,
    oldest_arrival_ms: Option<u64>,
    since: Option<Instant>,
    positions: Vec<u64>,
    saved: Vec<u64>,
}

impl Pending {
    /// Nothing read yet; the checkpoints saved at `positions`.
    fn new(positions: Vec<u64>) -> Pending {
        Pending {
            partitions: BTreeMap::new(),
            errors: Vec::new(),
            bytes: 0,
            oldest_arrival_ms: None,
            since: None,
            saved: positions.clone(),
            positions,
        }
    }

    fn is_empty(&self) -> bool {
        self.partitions.is_empty() && self.errors.is_empty()
    }

    /// Forgets everything read since the saved checkpoints, so those records are read again.
    /// The only way out of a delivery that did not write all its objects: the checkpoints can
    /// then never move past records whose objects were not written.
    fn rewind(&mut self) {
        self.partitions.clear();
        self.errors.clear();
        self.positions = self.saved.clone();
        self.bytes = 0;
        self.since = None;
        self.oldest_arrival_ms = None;
    }
}

/// How a delivery ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Delivered {
    /// Every object written, checkpoints saved.
    Saved,
    /// Not written; the buffer was rewound to the saved checkpoints.
    Rewound,
}

impl Delivery {
    /// Runs until `shutdown`, then delivers what it holds. `flush` asks for an early delivery
    /// (each new value is one request).
    pub async fn run(self, shutdown: CancellationToken, mut flush: watch::Receiver<u64>) {
        let reader = reader_name(self.table);
        let shards = self.stream.shard_count();
        let mut positions = Vec::new();
        for shard in 0..shards {
            positions.push(loop {
                match self.stream.checkpoint(&reader, shard) {
                    Ok(position) => break position,
                    Err(error) => {
                        tracing::error!(error = %error, "reading a checkpoint");
                        tokio::time::sleep(Duration::from_secs(1)).await;
                    }
                }
            });
        }
        let mut pending = Pending::new(positions);
        let mut appended = self.stream.appended();
        let buffer_bytes = self.settings.buffering_size_mb as usize * 1024 * 1024;
        let processor_bytes = self.settings.processor_buffer_size_mb as usize * 1024 * 1024;
        let mut flush_seen = *flush.borrow_and_update();
        loop {
            appended.borrow_and_update();
            // Kinesis' read limits (crate::limits): one GetRecords call per shard, waited for.
            for shard in 0..shards {
                self.reads.before_read(shard).await;
            }
            let records = match self.read_round(&mut pending.positions, processor_bytes) {
                Ok(records) => records,
                Err(error) => {
                    tracing::error!(table = self.table.name(), error = %error, "reading the stream");
                    Vec::new()
                }
            };
            for record in &records {
                self.reads.after_read(
                    record.shard,
                    record_size(&record.partition_key, &record.data),
                );
            }
            let caught_up = records.is_empty();
            if !caught_up {
                self.process(records, &mut pending);
            }
            let flush_requested = *flush.borrow() != flush_seen;
            let due = pending.bytes >= buffer_bytes
                || pending
                    .since
                    .is_some_and(|since| since.elapsed() >= self.buffering_interval)
                || (flush_requested && caught_up)
                || (shutdown.is_cancelled() && caught_up);
            if due {
                if flush_requested && caught_up {
                    flush_seen = *flush.borrow_and_update();
                }
                self.deliver(&mut pending, &shutdown).await;
            } else if pending.is_empty() && pending.positions != pending.saved {
                // Everything read was dropped: move the checkpoints on.
                self.deliver(&mut pending, &shutdown).await;
            }
            if shutdown.is_cancelled() && caught_up {
                if !pending.is_empty() || pending.positions != pending.saved {
                    // A rewound delivery leaves positions == saved: nothing to save, and the
                    // next start reads those records again.
                    self.deliver(&mut pending, &shutdown).await;
                }
                break;
            }
            if caught_up {
                let wait = pending.since.map_or(Duration::from_secs(3600), |since| {
                    self.buffering_interval.saturating_sub(since.elapsed())
                });
                tokio::select! {
                    () = shutdown.cancelled() => {}
                    _ = appended.changed() => {}
                    _ = flush.changed() => {}
                    () = tokio::time::sleep(wait) => {}
                }
            }
        }
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
            bytes += read.records.iter().map(|r| r.data.len()).sum::<usize>();
            out.extend(read.records);
        }
        Ok(out)
    }

    /// Invokes the transformer on `records` and buffers its answer.
    fn process(&self, records: Vec<StoredRecord>, pending: &mut Pending) {
        let event = firehose_event(&self.name, &self.stream.arn(), &records);
        let response = serde_json::from_value::<KinesisFirehoseEvent>(event)
            .map(|event| orderflow_transformer::transform(&event, self.table).0);
        let now = now_ms();
        let outputs = match response {
            Ok(response) if response.records.len() == records.len() => response.records,
            Ok(_) | Err(_) => {
                tracing::error!(
                    table = self.table.name(),
                    "transformer answer does not match its input; records go to the error prefix"
                );
                Vec::new()
            }
        };
        for (index, record) in records.iter().enumerate() {
            pending.positions[record.shard as usize] = record.position;
            pending.oldest_arrival_ms = Some(
                pending
                    .oldest_arrival_ms
                    .map_or(record.arrival_ms, |oldest| oldest.min(record.arrival_ms)),
            );
            pending.since.get_or_insert_with(Instant::now);
            let Some(output) = outputs.get(index) else {
                pending
                    .errors
                    .push(self.processing_failed(record, now, "Lambda.InvalidOutput"));
                continue;
            };
            if output.record_id.as_deref() != Some(record_id(record).as_str()) {
                pending
                    .errors
                    .push(self.processing_failed(record, now, "Lambda.InvalidOutput"));
                continue;
            }
            match output.result.as_deref() {
                Some("Ok") => {
                    let keys = &output.metadata.partition_keys;
                    let partition = ["year", "month", "day"].map(|k| keys.get(k).cloned());
                    let [Some(year), Some(month), Some(day)] = partition else {
                        pending.errors.push(self.processing_failed(
                            record,
                            now,
                            "DynamicPartitioning.MetadataExtractionFailed",
                        ));
                        continue;
                    };
                    let builder = pending
                        .partitions
                        .entry([year, month, day])
                        .or_insert_with(|| RowBatchBuilder::new(self.table));
                    match builder.push_record(&output.data.0) {
                        Ok(_) => pending.bytes += output.data.0.len(),
                        Err(error) => {
                            tracing::warn!(table = self.table.name(), sequence_number = %record.sequence_number(), error = %error, "record does not convert to Parquet");
                            pending.errors.push(ErrorRecord {
                                kind: ERROR_FORMAT_CONVERSION_FAILED,
                                line: json!({
                                    "attemptsMade": 1,
                                    "arrivalTimestamp": record.arrival_ms,
                                    "lastErrorCode": "DataFormatConversion.MalformedData",
                                    "lastErrorMessage": error.to_string(),
                                    "attemptEndingTimestamp": now,
                                    "rawData": BASE64.encode(&output.data.0),
                                    "sequenceNumber": record.sequence_number(),
                                    "dataCatalogTable": {
                                        "databaseName": self.database,
                                        "tableName": self.table.name(),
                                    },
                                }),
                            });
                        }
                    }
                }
                Some("Dropped") => {}
                _ => pending.errors.push(self.processing_failed(
                    record,
                    now,
                    "Lambda.ProcessingFailed",
                )),
            }
        }
    }

    fn processing_failed(&self, record: &StoredRecord, now: u64, code: &str) -> ErrorRecord {
        ErrorRecord {
            kind: ERROR_PROCESSING_FAILED,
            line: json!({
                "attemptsMade": 1,
                "arrivalTimestamp": record.arrival_ms,
                "errorCode": code,
                "errorMessage": "The transformer returned the record as ProcessingFailed (it is not a valid order).",
                "attemptEndingTimestamp": now,
                "rawData": BASE64.encode(&record.data),
                "lambdaArn": format!(
                    "arn:aws:lambda:us-east-1:000000000000:function:{}:$LATEST",
                    self.transformer
                ),
            }),
        }
    }

    /// Writes every buffered object, then saves the checkpoints. Retries failed writes (objects
    /// already written are not written again) until they succeed, or, once shutdown has begun,
    /// for [`SHUTDOWN_WRITE_GRACE`]: then the buffer is rewound to the saved checkpoints (never
    /// saved past unwritten objects), and the records are delivered again after a restart, as
    /// Firehose retries a failed S3 delivery without skipping data.
    async fn deliver(&self, pending: &mut Pending, shutdown: &CancellationToken) -> Delivered {
        let time = pending
            .oldest_arrival_ms
            .and_then(|ms| DateTime::<Utc>::from_timestamp_millis(ms as i64))
            .unwrap_or_else(Utc::now);
        let mut objects = match self.objects(pending, time) {
            Ok(objects) => objects,
            Err(error) => {
                // Nothing was written: read the same records again rather than skip them.
                tracing::error!(table = self.table.name(), error = %error, "building the Parquet objects failed; reading the records again");
                pending.rewind();
                return Delivered::Rewound;
            }
        };
        let mut backoff = Duration::from_millis(100);
        let mut giving_up_at: Option<Instant> = None;
        while let Some((key, bytes)) = objects.last() {
            match self.bucket.put(key, bytes.clone()).await {
                Ok(()) => {
                    objects.pop();
                }
                Err(error) => {
                    tracing::error!(table = self.table.name(), error = %format!("{error:#}"), "writing an object failed; retrying");
                    if shutdown.is_cancelled() {
                        let deadline = *giving_up_at
                            .get_or_insert_with(|| Instant::now() + SHUTDOWN_WRITE_GRACE);
                        if Instant::now() >= deadline {
                            tracing::error!(
                                table = self.table.name(),
                                unwritten_objects = objects.len(),
                                "shutting down with objects unwritten: checkpoints not moved, the records are delivered again at the next start"
                            );
                            pending.rewind();
                            return Delivered::Rewound;
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
        let positions: Vec<(u32, u64)> = pending
            .positions
            .iter()
            .enumerate()
            .map(|(shard, &p)| (shard as u32, p))
            .collect();
        loop {
            match self
                .stream
                .save_checkpoints(&reader_name(self.table), &positions)
            {
                Ok(()) => break,
                Err(error) => {
                    tracing::error!(error = %error, "saving checkpoints failed; retrying");
                    tokio::time::sleep(Duration::from_secs(1)).await;
                }
            }
        }
        pending.saved = pending.positions.clone();
        pending.bytes = 0;
        pending.since = None;
        pending.oldest_arrival_ms = None;
        Delivered::Saved
    }

    /// The objects of one delivery: one Parquet file per partition, one error file per type.
    fn objects(
        &self,
        pending: &mut Pending,
        time: DateTime<Utc>,
    ) -> Result<Vec<(String, Vec<u8>)>> {
        let mut objects = Vec::new();
        for (partition, mut builder) in std::mem::take(&mut pending.partitions) {
            if builder.is_empty() {
                continue;
            }
            let batch = builder.finish();
            let keys = [
                ("year", partition[0].as_str()),
                ("month", partition[1].as_str()),
                ("day", partition[2].as_str()),
            ];
            let prefix = expand_prefix(&self.settings.prefix, self.table.name(), &keys, None, time);
            let name = object_name(&self.name, time, &self.settings.file_extension);
            objects.push((format!("{prefix}{name}"), parquet_bytes(&batch)?));
        }
        let mut errors: BTreeMap<&str, Vec<u8>> = BTreeMap::new();
        for error in std::mem::take(&mut pending.errors) {
            let out = errors.entry(error.kind).or_default();
            serde_json::to_writer(&mut *out, &error.line)?;
            out.push(b'\n');
        }
        for (kind, lines) in errors {
            let prefix = expand_prefix(
                &self.settings.error_output_prefix,
                self.table.name(),
                &[],
                Some(kind),
                time,
            );
            objects.push((
                format!("{prefix}{}", object_name(&self.name, time, "")),
                lines,
            ));
        }
        Ok(objects)
    }
}

/// A Snappy-compressed Parquet file holding `batch`.
pub fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(concat!("orderflow-twin ", env!("CARGO_PKG_VERSION")).to_owned())
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties))
        .context("starting a Parquet file")?;
    writer.write(batch).context("writing Parquet rows")?;
    writer.into_inner().context("finishing a Parquet file")
}

/// Firehose's record id for a Kinesis-sourced record.
fn record_id(record: &StoredRecord) -> String {
    format!("{}{:012}", record.sequence_number(), record.shard)
}

/// The transformer's event, in the JSON Firehose sends for a Kinesis source.
fn firehose_event(name: &str, stream_arn: &str, records: &[StoredRecord]) -> serde_json::Value {
    json!({
        "invocationId": uuid::Uuid::new_v4().to_string(),
        "deliveryStreamArn": format!("arn:aws:firehose:us-east-1:000000000000:deliverystream/{name}"),
        "sourceKinesisStreamArn": stream_arn,
        "region": "us-east-1",
        "records": records.iter().map(|record| json!({
            "recordId": record_id(record),
            "approximateArrivalTimestamp": record.arrival_ms,
            "data": BASE64.encode(&record.data),
            "kinesisRecordMetadata": {
                "sequenceNumber": record.sequence_number(),
                "subsequenceNumber": 0,
                "partitionKey": record.partition_key,
                "shardId": record.shard_id(),
                "approximateArrivalTimestamp": record.arrival_ms,
            },
        })).collect::<Vec<_>>(),
    })
}

fn now_ms() -> u64 {
    Utc::now().timestamp_millis().max(0) as u64
}

#[cfg(test)]
pub(crate) mod tests {
    use orderflow_api::RecordEntry;
    use orderflow_domain::{GeneratorConfig, OrderGenerator};

    use super::*;
    use crate::settings::PipelineSettings;

    const ORDERS: usize = 40;

    pub(crate) fn delivery(stream: &Stream, bucket: &Bucket) -> Delivery {
        Delivery {
            table: Table::Orders,
            name: delivery_stream_name("orderflow-local", Table::Orders),
            database: "orderflow_local".into(),
            stream: stream.clone(),
            bucket: bucket.clone(),
            transformer: "orderflow-local-transform-orders".into(),
            settings: PipelineSettings::built_in().delivery,
            buffering_interval: Duration::from_secs(3600),
            reads: ReadThrottle::unlimited(),
        }
    }

    /// `count` generated orders from `seed`, as the API would append them.
    pub(crate) fn order_entries(seed: u64, count: usize) -> Vec<RecordEntry> {
        let mut generator = OrderGenerator::new(GeneratorConfig::fixed(seed));
        (0..count)
            .map(|_| {
                let order = generator.next_order();
                RecordEntry {
                    partition_key: order.customer_id.to_string(),
                    data: order.to_json(),
                }
            })
            .collect()
    }

    async fn rows_written(bucket: &Bucket) -> u64 {
        let mut rows = 0;
        for (key, size) in bucket.list("orders").await.unwrap() {
            rows += bucket.parquet_rows(&key, size).await.unwrap();
        }
        rows
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
        stream.append(order_entries(11, ORDERS)).await.unwrap();
        let bucket = Bucket::local(&dir.path().join("bucket")).unwrap();
        // A real filesystem failure, no fake store: a file where the table's folder must go.
        let blocker = bucket.root().join("orders");
        std::fs::write(&blocker, b"not a folder").unwrap();

        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let (_flush, flush) = watch::channel(0);
        let started = std::time::Instant::now();
        delivery(&stream, &bucket).run(shutdown, flush).await;
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
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let (_flush, flush) = watch::channel(0);
        delivery(&stream, &bucket).run(shutdown, flush).await;
        assert_eq!(rows_written(&bucket).await, ORDERS as u64);
        let tips = stream.tips();
        for shard in 0..2 {
            assert_eq!(
                stream.checkpoint(&reader, shard).unwrap(),
                tips[shard as usize]
            );
        }
    }

    /// A delivery that cannot write rewinds to the saved checkpoints instead of keeping the
    /// positions it had read to (the state the bug left behind).
    #[tokio::test]
    async fn a_rewound_delivery_keeps_the_saved_positions() {
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream::open(&dir.path().join("stream.redb"), "orders", 1).unwrap();
        let bucket = Bucket::local(&dir.path().join("bucket")).unwrap();
        std::fs::write(bucket.root().join("orders"), b"x").unwrap();
        let delivery = delivery(&stream, &bucket);
        let mut generator = OrderGenerator::new(GeneratorConfig::fixed(3));
        let order = generator.next_order();
        stream
            .append(vec![RecordEntry {
                partition_key: order.customer_id.to_string(),
                data: order.to_json(),
            }])
            .await
            .unwrap();
        let records = stream.read(0, 0, 10, usize::MAX).unwrap();
        let mut pending = Pending::new(vec![0]);
        delivery.process(records, &mut pending);
        assert_eq!(pending.positions, vec![1]);
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        assert_eq!(
            delivery.deliver(&mut pending, &shutdown).await,
            Delivered::Rewound
        );
        assert_eq!(pending.positions, vec![0]);
        assert!(pending.is_empty());
        assert_eq!(
            stream.checkpoint(&reader_name(Table::Orders), 0).unwrap(),
            0
        );
    }
}
