//! `orderflow redrive`: records that failed go through the pipeline again, once whatever made
//! them fail is fixed.
//!
//! - **The consumer's failure store** (`failures/consumer/`): each batch is invoked again through
//!   the consumer, as one Kinesis event of its records (from the document's `twinRecords`). The
//!   consumer's writes are conditional on the record's sequence number, so a redriven record
//!   never replaces a newer version of its order.
//! - **A table's Firehose error output** (`errors/{table}/processing-failed/` and
//!   `activePartitionExceeded/`): the records go through the table's transformer (or, past the
//!   partition limit, straight to their partition) and into Parquet
//!   ([`Delivery::redrive_errors`]). `format-conversion-failed` records hold rows the table's
//!   schema refused; they are left alone (fix the schema, then send the orders again).
//!
//! A failure object is deleted only after everything it held has landed; one that still fails
//! in part is replaced by an object of the records still failing, written before the old one is
//! deleted. A crash mid-redrive therefore loses nothing, and at worst redrives a batch twice
//! (the conditional writes and at-least-once tables allow that).

use anyhow::{Context, Result};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::consumer::{
    EventRecord, FAILURE_PREFIX, StreamFunction, TWIN_RECORDS, kinesis_event_of,
};
use crate::delivery::Delivery;
use crate::storage::Bucket;

/// What a redrive did.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct RedriveReport {
    /// Failure-store batches whose records all landed (their documents are deleted).
    pub batches: u64,
    /// Records in those batches.
    pub batch_records: u64,
    /// Firehose error records that landed in their table (or were dropped by the transformer).
    pub error_records: u64,
    /// Firehose error records that failed again (kept in the error output).
    pub error_records_failed_again: u64,
    /// What was left as it was, and why (`key: reason`).
    pub kept: Vec<String>,
}

impl RedriveReport {
    /// A readable summary.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "failure store: {} batches ({} records) redriven\nFirehose error output: {} records landed, {} failed again\n",
            self.batches, self.batch_records, self.error_records, self.error_records_failed_again
        );
        for kept in &self.kept {
            text.push_str(&format!("  kept {kept}\n"));
        }
        text
    }
}

/// One record of a failure-store document's `twinRecords`.
#[derive(Deserialize)]
#[serde(rename_all = "camelCase")]
struct FailedRecord {
    sequence_number: String,
    partition_key: String,
    approximate_arrival_timestamp: String,
    data: String,
}

/// Redrives every batch of the consumer's failure store through `function`.
pub async fn redrive_failure_store(
    bucket: &Bucket,
    function: &impl StreamFunction,
    report: &mut RedriveReport,
) -> Result<()> {
    let mut keys: Vec<String> = bucket
        .list(FAILURE_PREFIX)
        .await?
        .into_iter()
        .map(|(key, _)| key)
        .filter(|key| key.ends_with(".json"))
        .collect();
    keys.sort();
    for key in keys {
        let document: Value = serde_json::from_slice(&bucket.get(&key).await?)
            .with_context(|| format!("{key} is not JSON"))?;
        let (event, records) = match failure_event(&document) {
            Ok(event) => event,
            Err(error) => {
                report.kept.push(format!("{key}: {error:#}"));
                continue;
            }
        };
        match function.invoke(event).await {
            Ok(response) => {
                let response: Value = serde_json::from_slice(&response)
                    .with_context(|| format!("the consumer's answer for {key}"))?;
                let failed = response["batchItemFailures"].as_array().map_or(0, Vec::len);
                if failed == 0 {
                    bucket.delete(&key).await?;
                    report.batches += 1;
                    report.batch_records += records;
                    tracing::info!(key = %key, records, "failure-store batch redriven");
                } else {
                    report
                        .kept
                        .push(format!("{key}: {failed} of {records} records failed again"));
                }
            }
            Err(error) => report
                .kept
                .push(format!("{key}: the consumer failed: {error}")),
        }
    }
    Ok(())
}

/// The Kinesis event of a failure-store document's records, and how many there are.
fn failure_event(document: &Value) -> Result<(Vec<u8>, u64)> {
    let info = &document["KinesisBatchInfo"];
    let shard_id = info["shardId"]
        .as_str()
        .context("no KinesisBatchInfo.shardId")?;
    let stream_arn = info["streamArn"]
        .as_str()
        .context("no KinesisBatchInfo.streamArn")?;
    let records: Vec<FailedRecord> = serde_json::from_value(document[TWIN_RECORDS].clone())
        .with_context(|| format!("no readable {TWIN_RECORDS}"))?;
    anyhow::ensure!(!records.is_empty(), "{TWIN_RECORDS} is empty");
    let decoded = records
        .iter()
        .map(|record| {
            let data = BASE64
                .decode(&record.data)
                .context("a record's data is not base64")?;
            let arrival =
                chrono::DateTime::parse_from_rfc3339(&record.approximate_arrival_timestamp)
                    .context("a record's approximateArrivalTimestamp")?;
            Ok((data, arrival.timestamp_millis().max(0) as u64))
        })
        .collect::<Result<Vec<_>>>()?;
    let event = kinesis_event_of(
        stream_arn,
        records
            .iter()
            .zip(&decoded)
            .map(|(record, (data, arrival_ms))| EventRecord {
                shard_id,
                partition_key: &record.partition_key,
                sequence_number: &record.sequence_number,
                data,
                arrival_ms: *arrival_ms,
            }),
    );
    Ok((event, records.len() as u64))
}

/// Redrives the failure store through `function`, then each delivery stream's error output.
pub async fn redrive_all(
    bucket: &Bucket,
    function: &impl StreamFunction,
    deliveries: &[Delivery],
) -> Result<RedriveReport> {
    let mut report = RedriveReport::default();
    redrive_failure_store(bucket, function, &mut report).await?;
    for delivery in deliveries {
        delivery.redrive_errors(&mut report).await?;
    }
    Ok(report)
}
