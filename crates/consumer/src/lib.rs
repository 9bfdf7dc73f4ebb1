//! The Kinesis → DynamoDB consumer Lambda (`docs/design.md` sections 3 and 6).
//!
//! [`handle_batch`] is the whole behaviour: [`plan_batch`] decodes, validates and de-duplicates
//! the records (pure), [`write_all`] writes the items with bounded retries, each put conditional
//! on the stored `source_sequence_number` so a replay never replaces a newer version, and the records that
//! could not be written come back as `batchItemFailures` so Lambda retries exactly those (the
//! event source mapping has `ReportBatchItemFailures`). Invalid records are logged (sequence
//! number, shard, reason; never the payload), counted and skipped: they never fail the batch.

mod event;
mod plan;
mod write;

use std::time::Duration;

use aws_lambda_events::event::kinesis::KinesisEvent;
use aws_lambda_events::event::streams::KinesisEventResponse;
use tokio::time::Instant;

#[cfg(feature = "generator")]
pub use event::sample_event;
pub use event::{EventRecord, EventSource, OrderRecordsEvent, kinesis_event, parse_epoch_seconds};
pub use plan::{PendingWrite, Plan, SkippedRecord, compare_sequence_numbers, plan_batch, shard_of};
pub use write::{
    ItemWriter, NOT_NEWER_CONDITION, PutOutcome, WriteError, WritePolicy, WriteReport, write_all,
};

/// The environment variable naming the DynamoDB table.
pub const ORDERS_TABLE_ENV: &str = "ORDERS_TABLE";

/// The consumer's DynamoDB client settings on top of `builder`: the SDK's own retries are off,
/// because [`write_all`] retries every retryable error itself, with backoff and jitter, until
/// the invocation's deadline. Two layers of retries would multiply the waits (the SDK's standard
/// mode backs off up to seconds per call) and hide a refusing item from the round-based loop.
pub fn client_config(
    builder: aws_sdk_dynamodb::config::Builder,
) -> aws_sdk_dynamodb::config::Builder {
    builder.retry_config(aws_sdk_dynamodb::config::retry::RetryConfig::disabled())
}

/// Time kept back from the invocation deadline to answer Lambda.
pub const DEADLINE_MARGIN: Duration = Duration::from_millis(500);

/// Counts of one invocation, logged as one structured line.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct BatchSummary {
    /// Records in the event.
    pub records: usize,
    /// Items written.
    pub written: usize,
    /// Invalid records skipped.
    pub invalid: usize,
    /// Records superseded by a later duplicate key in the same batch.
    pub collapsed: usize,
    /// Records not written because a newer version of the order is already stored (a replay).
    pub superseded: usize,
    /// Records reported in `batchItemFailures`.
    pub failed: usize,
}

/// Processes one Kinesis batch: writes every valid order and reports the unwritten records.
pub async fn handle_batch(
    event: &KinesisEvent,
    writer: &impl ItemWriter,
    table: &str,
    policy: &WritePolicy,
    deadline: Instant,
) -> (KinesisEventResponse, BatchSummary) {
    let plan = plan_batch(&event.records);
    for skipped in &plan.skipped {
        tracing::warn!(
            sequence_number = %skipped.sequence_number,
            shard_id = %skipped.shard_id,
            kind = skipped.error.kind(),
            reason = %skipped.error,
            "skipping invalid order record"
        );
    }
    let mut summary = BatchSummary {
        records: event.records.len(),
        invalid: plan.skipped.len(),
        collapsed: plan.collapsed,
        ..BatchSummary::default()
    };
    let report = write_all(writer, table, plan.writes, policy, deadline).await;
    summary.written = report.written;
    summary.superseded = report.superseded;
    summary.failed = report.failed.len();
    if report.unreachable {
        tracing::error!(failed = summary.failed, error = %report.last_error.as_deref().unwrap_or_default(), "DynamoDB is unreachable; giving the batch back to be retried");
    } else if let Some(error) = &report.last_error {
        tracing::warn!(calls = report.calls, retries = report.retries, failed = summary.failed, error = %error, "DynamoDB writes needed retries");
    }
    let mut response = KinesisEventResponse::default();
    let mut failed = report.failed;
    failed.sort_by(|a, b| compare_sequence_numbers(a, b));
    for sequence_number in failed {
        response.add_failure(sequence_number);
    }
    tracing::info!(
        records = summary.records,
        written = summary.written,
        invalid = summary.invalid,
        collapsed = summary.collapsed,
        superseded = summary.superseded,
        failed = summary.failed,
        "batch done"
    );
    (response, summary)
}
