//! The Kinesis → DynamoDB consumer Lambda (`../shared/design.md` sections 3 and 6).
//!
//! [`handle_batch`] is the whole behaviour: [`plan_batch`] decodes, validates and de-duplicates
//! the records (pure), [`write_all`] writes the items with bounded retries, and the records that
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

pub use event::{OrderRecordsEvent, parse_epoch_seconds};
pub use plan::{PendingWrite, Plan, SkippedRecord, compare_sequence_numbers, plan_batch, shard_of};
pub use write::{
    BatchWriteError, BatchWriter, MAX_BATCH_ITEMS, WritePolicy, WriteReport, write_all,
};

/// The environment variable naming the DynamoDB table.
pub const ORDERS_TABLE_ENV: &str = "ORDERS_TABLE";

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
    /// Records reported in `batchItemFailures`.
    pub failed: usize,
}

/// Processes one Kinesis batch: writes every valid order and reports the unwritten records.
pub async fn handle_batch(
    event: &KinesisEvent,
    writer: &impl BatchWriter,
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
    summary.failed = report.failed.len();
    if let Some(error) = &report.last_error {
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
        failed = summary.failed,
        "batch done"
    );
    (response, summary)
}
