//! `orderflow status`: where every record is. Per shard the latest sequence number and each
//! reader's lag; DynamoDB items; files and rows per table and partition; records in the error
//! prefixes and in the failure store.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use anyhow::Result;
use orderflow_domain::Table;
use serde::{Deserialize, Serialize};

use crate::bucket::Bucket;
use crate::delivery::reader_name;
use crate::esm::{FAILURE_PREFIX, READER};
use crate::stream::{Stream, hash_key_range, sequence_number, shard_id};

/// The whole status.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Status {
    /// The stream's shards.
    pub shards: Vec<ShardStatus>,
    /// Items in the DynamoDB table, when it could be reached.
    pub dynamodb_items: Option<u64>,
    /// Parquet files per table.
    pub tables: Vec<TableStatus>,
    /// Firehose error output: (table, error type) → records.
    pub error_records: BTreeMap<String, u64>,
    /// Batches in the consumer's failure store.
    pub failed_batches: u64,
    /// Records in those batches.
    pub failed_records: u64,
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
                "  {}  records {:>8}  latest {}  lag: {}",
                shard.shard_id,
                shard.records,
                shard.latest_sequence_number.as_deref().unwrap_or("-"),
                lags.join(", ")
            );
        }
        let items = self
            .dynamodb_items
            .map_or("unknown (the twin is not running)".to_owned(), |n| {
                n.to_string()
            });
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

/// Collects the status from the stream and the bucket (and the item count, if known).
pub async fn collect(
    stream: &Stream,
    bucket: &Bucket,
    file_extension: &str,
    dynamodb_items: Option<u64>,
) -> Result<Status> {
    let count = stream.shard_count();
    let mut shards = Vec::new();
    let lags = reader_lags(stream)?;
    for ((shard, tip), lag) in stream.tips().into_iter().enumerate().zip(lags) {
        let shard = shard as u32;
        let (start, end) = hash_key_range(shard, count);
        shards.push(ShardStatus {
            shard_id: shard_id(shard),
            hash_key_range: [start.to_string(), end.to_string()],
            records: tip,
            latest_sequence_number: (tip > 0).then(|| sequence_number(shard, tip)),
            lag,
        });
    }
    let mut tables = Vec::new();
    for table in Table::ALL {
        let mut status = TableStatus {
            table: table.name().to_owned(),
            files: 0,
            rows: 0,
            partitions: BTreeMap::new(),
        };
        for (key, size) in bucket.list(table.name()).await? {
            if !key.ends_with(file_extension) {
                continue;
            }
            let rows = bucket.parquet_rows(&key, size).await?;
            let partition = key
                .trim_start_matches(table.name())
                .trim_start_matches('/')
                .rsplit_once('/')
                .map_or(String::new(), |(folder, _)| folder.to_owned());
            let entry = status.partitions.entry(partition).or_default();
            entry.0 += 1;
            entry.1 += rows;
            status.files += 1;
            status.rows += rows;
        }
        tables.push(status);
    }
    let mut error_records = BTreeMap::new();
    for (key, _) in bucket.list("errors").await? {
        // errors/{table}/{type}/year=…/…
        let mut parts = key.split('/').skip(1);
        let (Some(table), Some(kind)) = (parts.next(), parts.next()) else {
            continue;
        };
        let lines = bucket
            .get(&key)
            .await?
            .split(|&b| b == b'\n')
            .filter(|line| !line.is_empty())
            .count() as u64;
        *error_records.entry(format!("{table}/{kind}")).or_default() += lines;
    }
    let (mut failed_batches, mut failed_records) = (0, 0);
    for (key, _) in bucket.list(FAILURE_PREFIX).await? {
        let document: serde_json::Value = serde_json::from_slice(&bucket.get(&key).await?)?;
        failed_batches += 1;
        failed_records += document["KinesisBatchInfo"]["batchSize"]
            .as_u64()
            .unwrap_or(0);
    }
    Ok(Status {
        shards,
        dynamodb_items,
        tables,
        error_records,
        failed_batches,
        failed_records,
    })
}
