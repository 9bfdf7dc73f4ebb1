//! `orderflow status`: where every record is. Per shard the latest sequence number and each
//! reader's lag; DynamoDB items; files and rows per table and partition; records in the error
//! prefixes and in the failure store.
//!
//! A running twin answers from counters, without reading the bucket: per shard the stream's tip
//! and trim horizon, and a [`BucketTally`] told of every object as it is written (one scan when
//! the twin starts, O(1) per object after). `orderflow status` on a stopped twin scans once.

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::sync::Mutex;

use anyhow::Result;
use orderflow_domain::Table;
use serde::{Deserialize, Serialize};

use crate::consumer::{FAILURE_PREFIX, READER};
use crate::delivery::reader_name;
use crate::health::Component;
use crate::storage::{Bucket, PutObserver, parquet_rows_of};
use crate::stream::{Stream, hash_key_range, sequence_number, shard_id};

/// The whole status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The stream's shards.
    pub shards: Vec<ShardStatus>,
    /// Items in the DynamoDB table, when it could be reached. A running twin counts at most
    /// once a second ([`crate::dynamodb::ItemCounter`]): exact once the consumer is idle, up to a
    /// second old while it writes.
    pub dynamodb_items: Option<u64>,
    /// Why the items could not be counted, when a running twin could not reach DynamoDB.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub dynamodb_error: Option<String>,
    /// Parquet files per table.
    pub tables: Vec<TableStatus>,
    /// Firehose error output: (table, error type) → records.
    pub error_records: BTreeMap<String, u64>,
    /// Batches in the consumer's failure store.
    pub failed_batches: u64,
    /// Records in those batches.
    pub failed_records: u64,
    /// Whether a running twin answered (`false`: read from a stopped twin's data folder).
    #[serde(default)]
    pub running: bool,
    /// A running twin's components (`dynamodb`, `api`, each shard's consumer mapping, each
    /// delivery stream, `retention`): up, restarting or down, since when, restarts, last error.
    #[serde(default)]
    pub components: BTreeMap<String, Component>,
}

/// One shard.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ShardStatus {
    /// `shardId-000000000000`.
    pub shard_id: String,
    /// Its hash-key range, inclusive, as decimal text.
    pub hash_key_range: [String; 2],
    /// Records written to it.
    pub records: u64,
    /// Records still stored (not yet trimmed by retention).
    #[serde(default)]
    pub retained: u64,
    /// The latest sequence number, if any record was written.
    pub latest_sequence_number: Option<String>,
    /// Reader → records not yet processed.
    pub lag: BTreeMap<String, u64>,
}

/// One table's files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TableStatus {
    /// Table name.
    pub table: String,
    /// Files.
    pub files: u64,
    /// Rows.
    pub rows: u64,
    /// `year=…/month=…/day=…` → (files, rows).
    pub partitions: BTreeMap<String, (u64, u64)>,
}

impl Status {
    /// Where the records are, without the running twin's component health (whose `since`
    /// times change with every start): for comparing two statuses of the same data.
    pub fn without_health(mut self) -> Status {
        self.components.clear();
        self
    }

    /// Whether every reader has processed every record.
    pub fn caught_up(&self) -> bool {
        self.shards
            .iter()
            .all(|s| s.lag.values().all(|&lag| lag == 0))
    }

    /// Rows in `table`.
    pub fn rows(&self, table: &str) -> u64 {
        self.tables
            .iter()
            .find(|t| t.table == table)
            .map_or(0, |t| t.rows)
    }

    /// A readable report.
    pub fn to_text(&self) -> String {
        let mut out = String::new();
        let _ = writeln!(out, "stream");
        for shard in &self.shards {
            let lags: Vec<String> = shard.lag.iter().map(|(r, l)| format!("{r} {l}")).collect();
            let _ = writeln!(
                out,
                "  {}  records {:>8}  retained {:>8}  latest {}  lag: {}",
                shard.shard_id,
                shard.records,
                shard.retained,
                shard.latest_sequence_number.as_deref().unwrap_or("-"),
                lags.join(", ")
            );
        }
        let items = match (self.dynamodb_items, &self.dynamodb_error) {
            (Some(items), _) => items.to_string(),
            (None, _) if !self.running => "unknown (the twin is not running)".to_owned(),
            (None, error) => {
                let state = self
                    .components
                    .get(crate::health::DYNAMODB)
                    .map_or("not answering", |c| c.state.as_str());
                format!(
                    "unknown (DynamoDB is {state}: {})",
                    error.as_deref().unwrap_or("no answer")
                )
            }
        };
        let _ = writeln!(out, "dynamodb items: {items}");
        let _ = writeln!(out, "parquet");
        for table in &self.tables {
            let _ = writeln!(
                out,
                "  {:<20} {:>6} files {:>9} rows",
                table.table, table.files, table.rows
            );
            for (partition, (files, rows)) in &table.partitions {
                let _ = writeln!(out, "    {partition:<30} {files:>6} files {rows:>9} rows");
            }
        }
        let _ = writeln!(out, "error prefix records");
        if self.error_records.is_empty() {
            let _ = writeln!(out, "  none");
        }
        for (key, count) in &self.error_records {
            let _ = writeln!(out, "  {key:<40} {count}");
        }
        let _ = writeln!(
            out,
            "failure store: {} batches, {} records",
            self.failed_batches, self.failed_records
        );
        if self.running {
            let _ = writeln!(out, "components");
            for (name, component) in &self.components {
                let mut line = format!(
                    "  {name:<40} {:<10} since {}",
                    component.state.as_str(),
                    component.since
                );
                if component.restarts > 0 {
                    let _ = write!(line, ", restarted {} times", component.restarts);
                }
                if let Some(error) = &component.last_error {
                    let _ = write!(line, ", last error: {error}");
                }
                let _ = writeln!(out, "{line}");
            }
        } else {
            let _ = writeln!(out, "components: the twin is not running");
        }
        out
    }
}

/// Every reader of the stream: the consumer and the four delivery streams.
pub fn readers() -> Vec<String> {
    let mut readers = vec![READER.to_owned()];
    readers.extend(Table::ALL.iter().map(|&t| reader_name(t)));
    readers
}

/// Per shard, each reader's lag: records written but not yet processed (checkpointed).
pub fn reader_lags(stream: &Stream) -> Result<Vec<BTreeMap<String, u64>>> {
    let mut lags = Vec::new();
    for (shard, tip) in stream.tips().into_iter().enumerate() {
        let mut lag = BTreeMap::new();
        for reader in readers() {
            let checkpoint = stream.checkpoint(&reader, shard as u32)?;
            lag.insert(reader, tip.saturating_sub(checkpoint));
        }
        lags.push(lag);
    }
    Ok(lags)
}

/// Collects the status from the stream and a scan of the bucket (and the item count, if known).
pub async fn collect(
    stream: &Stream,
    bucket: &Bucket,
    file_extension: &str,
    dynamodb_items: Option<u64>,
) -> Result<Status> {
    let tally = BucketTally::new(file_extension);
    tally.scan(bucket).await?;
    from_counters(stream, &tally, dynamodb_items)
}

/// The status from counters only: the stream's tips, trim horizons and checkpoints (point
/// reads, O(shards × readers)) and `tally` (O(tables + partitions)); no object is read.
pub fn from_counters(
    stream: &Stream,
    tally: &BucketTally,
    dynamodb_items: Option<u64>,
) -> Result<Status> {
    let count = stream.shard_count();
    let mut shards = Vec::new();
    let lags = reader_lags(stream)?;
    let trimmed = stream.trimmed();
    for ((shard, tip), lag) in stream.tips().into_iter().enumerate().zip(lags) {
        let retained = tip.saturating_sub(trimmed[shard]);
        let shard = shard as u32;
        let (start, end) = hash_key_range(shard, count);
        shards.push(ShardStatus {
            shard_id: shard_id(shard),
            hash_key_range: [start.to_string(), end.to_string()],
            records: tip,
            retained,
            latest_sequence_number: (tip > 0).then(|| sequence_number(shard, tip)),
            lag,
        });
    }
    let counts = tally.counts.lock().expect("not poisoned");
    Ok(Status {
        shards,
        dynamodb_items,
        tables: Table::ALL
            .iter()
            .map(|table| {
                counts
                    .tables
                    .get(table.name())
                    .cloned()
                    .unwrap_or_else(|| TableStatus {
                        table: table.name().to_owned(),
                        files: 0,
                        rows: 0,
                        partitions: BTreeMap::new(),
                    })
            })
            .collect(),
        error_records: counts.error_records.clone(),
        failed_batches: counts.failed_batches,
        failed_records: counts.failed_records,
        dynamodb_error: None,
        running: false,
        components: BTreeMap::new(),
    })
}

/// What one object adds to the status.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Counted {
    /// A data file of `table` in `partition` (`year=…/month=…/day=…`).
    File {
        table: String,
        partition: String,
        rows: u64,
    },
    /// Firehose error output of `table/type`, one record a line.
    Errors { key: String, lines: u64 },
    /// One failure-store batch.
    Failure { records: u64 },
}

/// Where an object counts, from its key alone (`None`: it does not).
fn kind_of(key: &str, file_extension: &str) -> Option<Counted> {
    if key.starts_with(&format!("{FAILURE_PREFIX}/")) {
        return Some(Counted::Failure { records: 0 });
    }
    if let Some(rest) = key.strip_prefix("errors/") {
        // errors/{table}/{type}/year=…/…
        let mut parts = rest.split('/');
        let (Some(table), Some(kind)) = (parts.next(), parts.next()) else {
            return None;
        };
        return Some(Counted::Errors {
            key: format!("{table}/{kind}"),
            lines: 0,
        });
    }
    let table = Table::ALL.iter().find(|table| {
        key.strip_prefix(table.name())
            .is_some_and(|rest| rest.starts_with('/'))
    })?;
    if !key.ends_with(file_extension) {
        return None;
    }
    let partition = key[table.name().len() + 1..]
        .rsplit_once('/')
        .map_or(String::new(), |(folder, _)| folder.to_owned());
    Some(Counted::File {
        table: table.name().to_owned(),
        partition,
        rows: 0,
    })
}

/// Fills the count of `kind` from the object's bytes (a data file's rows from its footer).
fn count(key: &str, kind: Counted, bytes: &[u8]) -> Result<Counted> {
    Ok(match kind {
        Counted::File {
            table, partition, ..
        } => Counted::File {
            table,
            partition,
            rows: parquet_rows_of(key, bytes)?,
        },
        Counted::Errors { key, .. } => Counted::Errors {
            key,
            lines: bytes
                .split(|&b| b == b'\n')
                .filter(|line| !line.is_empty())
                .count() as u64,
        },
        Counted::Failure { .. } => {
            let document: serde_json::Value = serde_json::from_slice(bytes)?;
            Counted::Failure {
                records: document["KinesisBatchInfo"]["batchSize"]
                    .as_u64()
                    .unwrap_or(0),
            }
        }
    })
}

/// The bucket's side of the status, kept as objects are written: told of each by
/// [`Bucket::put`] (as its [`PutObserver`]), filled once by [`scan`](BucketTally::scan) with what
/// was there before. Counted per key, so an object seen by both counts once.
#[derive(Debug)]
pub struct BucketTally {
    file_extension: String,
    counts: Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    objects: HashMap<String, Counted>,
    tables: BTreeMap<String, TableStatus>,
    error_records: BTreeMap<String, u64>,
    failed_batches: u64,
    failed_records: u64,
}

impl Counts {
    /// Counts `counted` for `key` (replacing what an earlier object of that key counted).
    fn record(&mut self, key: &str, counted: Counted) {
        if let Some(old) = self.objects.insert(key.to_owned(), counted.clone()) {
            self.add(&old, false);
        }
        self.add(&counted, true);
    }

    fn add(&mut self, counted: &Counted, add: bool) {
        let apply = |value: &mut u64, by: u64| {
            *value = if add {
                *value + by
            } else {
                value.saturating_sub(by)
            };
        };
        match counted {
            Counted::File {
                table,
                partition,
                rows,
            } => {
                let status = self
                    .tables
                    .entry(table.clone())
                    .or_insert_with(|| TableStatus {
                        table: table.clone(),
                        files: 0,
                        rows: 0,
                        partitions: BTreeMap::new(),
                    });
                apply(&mut status.files, 1);
                apply(&mut status.rows, *rows);
                let entry = status.partitions.entry(partition.clone()).or_default();
                apply(&mut entry.0, 1);
                apply(&mut entry.1, *rows);
                if entry.0 == 0 {
                    status.partitions.remove(partition);
                }
            }
            Counted::Errors { key, lines } => {
                apply(self.error_records.entry(key.clone()).or_default(), *lines);
            }
            Counted::Failure { records } => {
                apply(&mut self.failed_batches, 1);
                apply(&mut self.failed_records, *records);
            }
        }
    }
}

impl BucketTally {
    /// Nothing counted yet; data files end with `file_extension`.
    pub fn new(file_extension: &str) -> Self {
        BucketTally {
            file_extension: file_extension.to_owned(),
            counts: Mutex::new(Counts::default()),
        }
    }

    /// Counts every object already in `bucket` that was not counted yet (data files from their
    /// footers, error and failure objects read whole).
    pub async fn scan(&self, bucket: &Bucket) -> Result<()> {
        let mut prefixes: Vec<&str> = Table::ALL.iter().map(|t| t.name()).collect();
        prefixes.extend(["errors", FAILURE_PREFIX]);
        for prefix in prefixes {
            for (key, size) in bucket.list(prefix).await? {
                let Some(kind) = kind_of(&key, &self.file_extension) else {
                    continue;
                };
                if self.counted(&key) {
                    continue;
                }
                let counted = match kind {
                    Counted::File {
                        table, partition, ..
                    } => Counted::File {
                        table,
                        partition,
                        rows: bucket.parquet_rows(&key, size).await?,
                    },
                    other => count(&key, other, &bucket.get(&key).await?)?,
                };
                let mut counts = self.counts.lock().expect("not poisoned");
                if !counts.objects.contains_key(&key) {
                    counts.record(&key, counted);
                }
            }
        }
        Ok(())
    }

    fn counted(&self, key: &str) -> bool {
        self.counts
            .lock()
            .expect("not poisoned")
            .objects
            .contains_key(key)
    }
}

impl PutObserver for BucketTally {
    fn written(&self, key: &str, bytes: &[u8]) {
        let Some(kind) = kind_of(key, &self.file_extension) else {
            return;
        };
        match count(key, kind, bytes) {
            Ok(counted) => self
                .counts
                .lock()
                .expect("not poisoned")
                .record(key, counted),
            Err(error) => {
                tracing::error!(key, error = %format!("{error:#}"), "counting a written object for the status");
            }
        }
    }

    fn deleted(&self, key: &str) {
        let mut counts = self.counts.lock().expect("not poisoned");
        if let Some(old) = counts.objects.remove(key) {
            counts.add(&old, false);
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use object_store::ObjectStoreExt;
    use orderflow_api::RecordEntry;
    use tokio::sync::watch;
    use tokio_util::sync::CancellationToken;

    use super::*;
    use crate::delivery::tests::{create, delivery, order_entries};

    /// Issue 11, item 10: the running twin's status comes from counters kept as records and
    /// objects are written, and says exactly what a full scan says (files, rows, partitions,
    /// error records, failure batches; per shard records written and retained), while reading
    /// no object: one written behind the bucket's back shows only in a scan.
    #[tokio::test]
    async fn the_counted_status_matches_a_full_scan() {
        let dir = tempfile::tempdir().unwrap();
        let stream = Stream::open(&dir.path().join("stream.redb"), "orders", 2).unwrap();
        let tally = Arc::new(BucketTally::new(".parquet"));
        let bucket = Bucket::local(&dir.path().join("bucket"))
            .unwrap()
            .observed(tally.clone());
        create(&stream);
        let mut entries = order_entries(5, 30);
        entries.push(RecordEntry {
            partition_key: "broken".into(),
            data: b"not an order".to_vec(),
        });
        stream.append(entries).await.unwrap();
        let failure = json_failure(3);
        bucket
            .put(&format!("{FAILURE_PREFIX}/2026/01/01/one.json"), failure)
            .await
            .unwrap();
        let shutdown = CancellationToken::new();
        shutdown.cancel();
        let (_flush, flush) = watch::channel(0);
        delivery(&stream, &bucket).run(shutdown, flush).await;
        stream.trim(0).unwrap();

        let counted = from_counters(&stream, &tally, None).unwrap();
        let scanned = collect(&stream, &bucket, ".parquet", None).await.unwrap();
        assert_eq!(counted, scanned);
        assert_eq!(counted.rows("orders"), 30);
        assert!(counted.tables[0].files > 0);
        assert_eq!(counted.error_records.values().sum::<u64>(), 1);
        assert_eq!((counted.failed_batches, counted.failed_records), (1, 3));
        let shards = &counted.shards;
        assert_eq!(shards.iter().map(|s| s.records).sum::<u64>(), 31);
        assert_eq!(shards.iter().map(|s| s.retained).sum::<u64>(), 31);

        // Written around the bucket: the counters do not read the bucket, a scan does.
        bucket
            .store()
            .put(
                &object_store::path::Path::from(format!("{FAILURE_PREFIX}/2026/01/01/two.json")),
                json_failure(4).into(),
            )
            .await
            .unwrap();
        assert_eq!(from_counters(&stream, &tally, None).unwrap(), counted);
        tally.scan(&bucket).await.unwrap();
        let rescanned = from_counters(&stream, &tally, None).unwrap();
        assert_eq!((rescanned.failed_batches, rescanned.failed_records), (2, 7));

        // Retention shows per shard, from the trim horizon.
        stream.trim(u64::MAX).unwrap();
        let trimmed = from_counters(&stream, &tally, None).unwrap();
        assert_eq!(trimmed.shards.iter().map(|s| s.retained).sum::<u64>(), 0);
        assert_eq!(trimmed.shards.iter().map(|s| s.records).sum::<u64>(), 31);
    }

    fn json_failure(records: u64) -> Vec<u8> {
        serde_json::to_vec(&serde_json::json!({"KinesisBatchInfo": {"batchSize": records}}))
            .unwrap()
    }
}
