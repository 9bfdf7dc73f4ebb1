//! Writing items: one conditional `PutItem` per item, bounded concurrency, retryable errors
//! retried with exponential backoff and full jitter until the invocation's deadline. Whatever is
//! still unwritten then is returned by sequence number, so the handler can report it in
//! `batchItemFailures`.
//!
//! DynamoDB unreachable (no connection could be made: refused, reset, no route) is different:
//! when every call of [`WritePolicy::unreachable_rounds`] rounds in a row fails that way, the loop
//! gives up at once instead of retrying until the deadline. The invocation then ends in a
//! second, not a minute; the event source mapping retries the batch with its own backoff and
//! keeps the checkpoint, so an outage shorter than its retry budget loses nothing and sends
//! nothing to the failure destination.
//!
//! Why not `BatchWriteItem`: it cannot carry a condition ("You can't specify conditions on
//! individual put and delete requests with BatchWriteItem", DynamoDB API reference), and an
//! unconditional put lets a replayed (retried, bisected, redriven) record overwrite a newer
//! version of the same order. Every put here is conditional on the stored
//! `source_sequence_number`: only a record at least as new as the stored one replaces it. One
//! customer's orders share a shard, so their Kinesis sequence numbers order them. A put refused
//! by the condition is not an error: a newer version is already stored (`superseded`).
//! `PutItem` costs the same write capacity per item as `BatchWriteItem`; the price is one
//! request per item (measured in BENCHMARKS.md, `consumer_writes` bench).

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::AttributeValue;
use futures::stream::{self, StreamExt};
use rand::RngExt;
use tokio::time::Instant;

use crate::plan::PendingWrite;

/// The condition every put carries: no stored version, or a stored sequence number that is not
/// newer. Sequence numbers are decimal strings without leading zeros, so "not newer" is "fewer
/// digits, or as many digits and not greater as text" (DynamoDB compares strings by their bytes;
/// numbers cannot hold Kinesis' up to 129 digits, DynamoDB keeps 38).
pub const NOT_NEWER_CONDITION: &str = "attribute_not_exists(#seq) OR size(#seq) < :seq_len \
     OR (size(#seq) = :seq_len AND #seq <= :seq)";

/// How a conditional put ended when DynamoDB answered.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PutOutcome {
    /// The item was written.
    Written,
    /// A newer version of the item is stored; nothing was written.
    Superseded,
}

/// How a put failed.
#[derive(Debug, thiserror::Error)]
pub enum WriteError {
    /// Worth retrying: throttling, a 5xx, a timeout or a connection problem.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Retrying cannot help: a missing table, denied access, a rejected item.
    #[error("not retryable: {0}")]
    Fatal(String),
    /// No connection to DynamoDB could be made (refused, reset, unreachable): retryable, but a
    /// loop of such errors ends the invocation early ([`WritePolicy::unreachable_rounds`]).
    #[error("unreachable: {0}")]
    Unreachable(String),
}

/// A port to DynamoDB's conditional `PutItem`.
pub trait ItemWriter {
    /// Puts `item` into `table` unless the stored item has a newer `source_sequence_number`
    /// than `sequence_number` ([`NOT_NEWER_CONDITION`]).
    fn put_if_not_newer(
        &self,
        table: &str,
        item: HashMap<String, AttributeValue>,
        sequence_number: &str,
    ) -> impl Future<Output = Result<PutOutcome, WriteError>> + Send;
}

impl ItemWriter for aws_sdk_dynamodb::Client {
    async fn put_if_not_newer(
        &self,
        table: &str,
        item: HashMap<String, AttributeValue>,
        sequence_number: &str,
    ) -> Result<PutOutcome, WriteError> {
        use aws_sdk_dynamodb::error::{ProvideErrorMetadata, SdkError};
        use aws_sdk_dynamodb::operation::put_item::PutItemError;
        let digits = sequence_number.trim_start_matches('0');
        let result = self
            .put_item()
            .table_name(table)
            .set_item(Some(item))
            .condition_expression(NOT_NEWER_CONDITION)
            .expression_attribute_names("#seq", orderflow_domain::SOURCE_SEQUENCE_NUMBER)
            .expression_attribute_values(":seq", AttributeValue::S(digits.to_owned()))
            .expression_attribute_values(":seq_len", AttributeValue::N(digits.len().to_string()))
            .send()
            .await;
        match result {
            Ok(_) => Ok(PutOutcome::Written),
            Err(SdkError::ServiceError(service))
                if matches!(
                    service.err(),
                    PutItemError::ConditionalCheckFailedException(_)
                ) =>
            {
                Ok(PutOutcome::Superseded)
            }
            Err(error) => {
                let unreachable = matches!(
                    &error,
                    SdkError::DispatchFailure(failure) if failure.is_io()
                );
                let retryable = match &error {
                    SdkError::TimeoutError(_) | SdkError::DispatchFailure(_) => true,
                    SdkError::ResponseError(_) => true,
                    SdkError::ServiceError(service) => {
                        let status = service.raw().status().as_u16();
                        let code = service.err().code().unwrap_or_default();
                        status >= 500
                            || matches!(
                                code,
                                "ProvisionedThroughputExceededException"
                                    | "ThrottlingException"
                                    | "RequestLimitExceeded"
                                    | "InternalServerError"
                                    | "TransactionConflictException"
                            )
                    }
                    _ => false,
                };
                let message = match error.code() {
                    Some(code) => format!("{code}: {}", error.message().unwrap_or_default()),
                    None => aws_sdk_dynamodb::error::DisplayErrorContext(&error).to_string(),
                };
                Err(if unreachable {
                    WriteError::Unreachable(message)
                } else if retryable {
                    WriteError::Retryable(message)
                } else {
                    WriteError::Fatal(message)
                })
            }
        }
    }
}

/// Tuning of the write loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritePolicy {
    /// `PutItem` calls in flight at once.
    pub concurrency: usize,
    /// First backoff ceiling; doubles per attempt.
    pub base_backoff: Duration,
    /// Largest backoff ceiling.
    pub max_backoff: Duration,
    /// Rounds in a row in which every call found DynamoDB unreachable before the loop gives up
    /// on the invocation (reporting every item still pending), instead of retrying until the
    /// deadline.
    pub unreachable_rounds: u32,
}

impl Default for WritePolicy {
    fn default() -> Self {
        WritePolicy {
            concurrency: 32,
            base_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_secs(2),
            // About 25 + 50 + 100 + 200 ms of backoff: a connection blip passes, an outage
            // ends the invocation within a second.
            unreachable_rounds: 5,
        }
    }
}

/// What the write loop did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// Items written.
    pub written: usize,
    /// Items not written because a newer version is stored (a replay of an older record).
    pub superseded: usize,
    /// Sequence numbers of the records whose items were not written by the deadline or failed
    /// for good.
    pub failed: Vec<String>,
    /// `PutItem` calls made, first attempts and retries.
    pub calls: usize,
    /// Calls that were retries (after a retryable error).
    pub retries: usize,
    /// The last error seen, for the log (no item data in it).
    pub last_error: Option<String>,
    /// The loop gave up early: DynamoDB was unreachable for [`WritePolicy::unreachable_rounds`]
    /// rounds in a row.
    pub unreachable: bool,
}

/// Writes every pending item, retrying within `deadline`. Works in rounds: every item still
/// pending is tried once per round (at most `policy.concurrency` at a time), then the retryable
/// ones wait one jittered backoff. An item that keeps failing therefore never holds a slot that a
/// healthy item needs.
pub async fn write_all(
    writer: &impl ItemWriter,
    table: &str,
    writes: Vec<PendingWrite>,
    policy: &WritePolicy,
    deadline: Instant,
) -> WriteReport {
    let mut report = WriteReport::default();
    let mut pending = writes;
    let mut attempt: u32 = 0;
    let mut unreachable_rounds: u32 = 0;
    while !pending.is_empty() {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        report.calls += pending.len();
        if attempt > 0 {
            report.retries += pending.len();
        }
        let results: Vec<(PendingWrite, Result<PutOutcome, WriteError>)> = stream::iter(pending)
            .map(|write| async move {
                // The SDK consumes the item; a retry needs its own copy.
                let put =
                    writer.put_if_not_newer(table, write.item.clone(), &write.sequence_number);
                let result = match tokio::time::timeout(deadline - now, put).await {
                    Ok(result) => result,
                    Err(_elapsed) => Err(WriteError::Fatal(
                        "PutItem did not answer before the deadline".into(),
                    )),
                };
                (write, result)
            })
            .buffer_unordered(policy.concurrency.max(1))
            .collect()
            .await;
        pending = Vec::new();
        let mut all_unreachable = !results.is_empty();
        for (write, result) in results {
            all_unreachable &= matches!(result, Err(WriteError::Unreachable(_)));
            match result {
                Ok(PutOutcome::Written) => report.written += 1,
                Ok(PutOutcome::Superseded) => report.superseded += 1,
                Err(WriteError::Retryable(message) | WriteError::Unreachable(message)) => {
                    report.last_error = Some(message);
                    pending.push(write);
                }
                Err(WriteError::Fatal(message)) => {
                    report.last_error = Some(message);
                    report.failed.push(write.sequence_number);
                }
            }
        }
        if pending.is_empty() {
            break;
        }
        unreachable_rounds = if all_unreachable {
            unreachable_rounds + 1
        } else {
            0
        };
        if unreachable_rounds >= policy.unreachable_rounds.max(1) {
            report.unreachable = true;
            break;
        }
        let ceiling = policy
            .base_backoff
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(policy.max_backoff);
        let sleep = ceiling.mul_f64(rand::rng().random_range(0.0..1.0));
        attempt += 1;
        tokio::time::sleep_until((Instant::now() + sleep).min(deadline)).await;
    }
    report
        .failed
        .extend(pending.into_iter().map(|write| write.sequence_number));
    report
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

    use super::*;

    /// Answers every put from a script: `unreachable` calls fail as unreachable, then the rest
    /// as `then`.
    struct Scripted {
        calls: AtomicUsize,
        unreachable: usize,
        then: fn() -> Result<PutOutcome, WriteError>,
    }

    impl ItemWriter for Scripted {
        async fn put_if_not_newer(
            &self,
            _table: &str,
            _item: HashMap<String, AttributeValue>,
            _sequence_number: &str,
        ) -> Result<PutOutcome, WriteError> {
            if self.calls.fetch_add(1, Ordering::SeqCst) < self.unreachable {
                Err(WriteError::Unreachable("connection refused".into()))
            } else {
                (self.then)()
            }
        }
    }

    fn writes(count: usize) -> Vec<PendingWrite> {
        (0..count)
            .map(|n| PendingWrite {
                sequence_number: format!("{:056}", n + 1),
                key: (format!("c{n}"), format!("o{n}")),
                item: HashMap::new(),
            })
            .collect()
    }

    fn policy() -> WritePolicy {
        WritePolicy {
            base_backoff: Duration::from_millis(1),
            max_backoff: Duration::from_millis(2),
            ..WritePolicy::default()
        }
    }

    /// An unreachable DynamoDB ends the loop after `unreachable_rounds` rounds, long before
    /// the deadline, with every item reported.
    #[tokio::test]
    async fn an_unreachable_table_gives_every_item_back_after_a_few_rounds() {
        let writer = Scripted {
            calls: AtomicUsize::new(0),
            unreachable: usize::MAX,
            then: || Ok(PutOutcome::Written),
        };
        let policy = policy();
        let far = Instant::now() + Duration::from_secs(3600);
        let report = write_all(&writer, "t", writes(10), &policy, far).await;
        assert!(report.unreachable);
        assert_eq!(report.failed.len(), 10);
        assert_eq!(report.written, 0);
        assert_eq!(report.calls, 10 * policy.unreachable_rounds as usize);
    }

    /// A blip shorter than `unreachable_rounds` rounds is retried like any retryable error, and
    /// a round with any other answer starts the count again.
    #[tokio::test]
    async fn a_short_blip_is_retried_until_everything_lands() {
        let policy = policy();
        let blip = 10 * (policy.unreachable_rounds as usize - 1);
        let writer = Scripted {
            calls: AtomicUsize::new(0),
            unreachable: blip,
            then: || Ok(PutOutcome::Written),
        };
        let far = Instant::now() + Duration::from_secs(3600);
        let report = write_all(&writer, "t", writes(10), &policy, far).await;
        assert!(!report.unreachable);
        assert_eq!(report.written, 10);
        assert!(report.failed.is_empty());
        assert_eq!(report.calls, blip + 10);
    }

    /// Throttling is not unreachability: it is retried until the deadline.
    #[tokio::test]
    async fn throttling_is_retried_until_the_deadline_not_given_up() {
        let writer = Scripted {
            calls: AtomicUsize::new(0),
            unreachable: 0,
            then: || Err(WriteError::Retryable("throttled".into())),
        };
        let policy = policy();
        let deadline = Instant::now() + Duration::from_secs(1);
        let report = write_all(&writer, "t", writes(2), &policy, deadline).await;
        assert!(!report.unreachable);
        assert_eq!(report.failed.len(), 2);
        assert!(
            report.calls > 2 * policy.unreachable_rounds as usize,
            "{} calls",
            report.calls
        );
    }
}
