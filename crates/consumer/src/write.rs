//! Writing items with `BatchWriteItem`: chunks of 25, bounded concurrency, `UnprocessedItems` and
//! retryable errors retried with exponential backoff and full jitter until the invocation's
//! deadline. Whatever is still unwritten then is returned by sequence number, so the handler can
//! report it in `batchItemFailures`.

use std::collections::HashMap;
use std::future::Future;
use std::time::Duration;

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use futures::stream::{self, StreamExt};
use rand::RngExt;
use tokio::time::Instant;

use crate::plan::PendingWrite;

/// The most items DynamoDB accepts in one `BatchWriteItem`.
pub const MAX_BATCH_ITEMS: usize = 25;

/// How a `BatchWriteItem` call failed.
#[derive(Debug, thiserror::Error)]
pub enum BatchWriteError {
    /// Worth retrying: throttling, a 5xx, a timeout or a connection problem.
    #[error("retryable: {0}")]
    Retryable(String),
    /// Retrying cannot help: a missing table, denied access, a rejected item.
    #[error("not retryable: {0}")]
    Fatal(String),
}

/// A port to DynamoDB's `BatchWriteItem`; returns the unprocessed requests.
pub trait BatchWriter {
    /// Writes up to 25 put requests into `table`; `Ok` holds what DynamoDB left unprocessed.
    fn batch_write(
        &self,
        table: &str,
        requests: Vec<WriteRequest>,
    ) -> impl Future<Output = Result<Vec<WriteRequest>, BatchWriteError>> + Send;
}

impl BatchWriter for aws_sdk_dynamodb::Client {
    async fn batch_write(
        &self,
        table: &str,
        requests: Vec<WriteRequest>,
    ) -> Result<Vec<WriteRequest>, BatchWriteError> {
        use aws_sdk_dynamodb::error::ProvideErrorMetadata;
        use aws_sdk_dynamodb::error::SdkError;
        match self
            .batch_write_item()
            .request_items(table, requests)
            .send()
            .await
        {
            Ok(output) => Ok(output
                .unprocessed_items
                .and_then(|mut unprocessed| unprocessed.remove(table))
                .unwrap_or_default()),
            Err(error) => {
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
                            )
                    }
                    _ => false,
                };
                let message = match error.code() {
                    Some(code) => format!("{code}: {}", error.message().unwrap_or_default()),
                    None => aws_sdk_dynamodb::error::DisplayErrorContext(&error).to_string(),
                };
                Err(if retryable {
                    BatchWriteError::Retryable(message)
                } else {
                    BatchWriteError::Fatal(message)
                })
            }
        }
    }
}

/// Tuning of the write loop.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WritePolicy {
    /// `BatchWriteItem` calls in flight at once.
    pub concurrency: usize,
    /// First backoff ceiling; doubles per attempt.
    pub base_backoff: Duration,
    /// Largest backoff ceiling.
    pub max_backoff: Duration,
}

impl Default for WritePolicy {
    fn default() -> Self {
        WritePolicy {
            concurrency: 8,
            base_backoff: Duration::from_millis(25),
            max_backoff: Duration::from_secs(2),
        }
    }
}

/// What the write loop did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct WriteReport {
    /// Items written.
    pub written: usize,
    /// Sequence numbers of the records whose items were not written by the deadline or failed
    /// for good.
    pub failed: Vec<String>,
    /// `BatchWriteItem` calls made, first attempts and retries.
    pub calls: usize,
    /// Calls that were retries (after unprocessed items or a retryable error).
    pub retries: usize,
    /// The last error seen, for the log (no item data in it).
    pub last_error: Option<String>,
}

/// Writes every pending item, retrying within `deadline`.
pub async fn write_all(
    writer: &impl BatchWriter,
    table: &str,
    writes: Vec<PendingWrite>,
    policy: &WritePolicy,
    deadline: Instant,
) -> WriteReport {
    let mut chunks: Vec<Vec<PendingWrite>> = Vec::new();
    let mut writes = writes.into_iter().peekable();
    while writes.peek().is_some() {
        chunks.push(writes.by_ref().take(MAX_BATCH_ITEMS).collect());
    }
    let reports: Vec<WriteReport> = stream::iter(chunks)
        .map(|chunk| write_chunk(writer, table, chunk, policy, deadline))
        .buffer_unordered(policy.concurrency.max(1))
        .collect()
        .await;
    let mut total = WriteReport::default();
    for report in reports {
        total.written += report.written;
        total.failed.extend(report.failed);
        total.calls += report.calls;
        total.retries += report.retries;
        total.last_error = report.last_error.or(total.last_error);
    }
    total
}

/// Writes one chunk of at most 25 items until all are written, the error is fatal, or the
/// deadline passes.
async fn write_chunk(
    writer: &impl BatchWriter,
    table: &str,
    chunk: Vec<PendingWrite>,
    policy: &WritePolicy,
    deadline: Instant,
) -> WriteReport {
    let mut report = WriteReport::default();
    // Pending items by key, so unprocessed requests map back to their records.
    let mut pending: HashMap<(String, String), PendingWrite> = chunk
        .into_iter()
        .map(|write| (write.key.clone(), write))
        .collect();
    let mut attempt: u32 = 0;
    loop {
        let now = Instant::now();
        if now >= deadline {
            break;
        }
        let requests = pending
            .values()
            .map(|write| put_request(&write.item))
            .collect();
        report.calls += 1;
        if attempt > 0 {
            report.retries += 1;
        }
        let result =
            tokio::time::timeout(deadline - now, writer.batch_write(table, requests)).await;
        match result {
            Ok(Ok(unprocessed)) => {
                let mut left = HashMap::with_capacity(unprocessed.len());
                for request in unprocessed {
                    if let Some(write) = key_of(&request).and_then(|key| pending.remove_entry(&key))
                    {
                        left.insert(write.0, write.1);
                    }
                }
                report.written += pending.len();
                pending = left;
                if pending.is_empty() {
                    return report;
                }
                report.last_error = Some(format!("{} items unprocessed", pending.len()));
            }
            Ok(Err(BatchWriteError::Retryable(message))) => report.last_error = Some(message),
            Ok(Err(BatchWriteError::Fatal(message))) => {
                report.last_error = Some(message);
                break;
            }
            Err(_elapsed) => {
                report.last_error =
                    Some("BatchWriteItem did not answer before the deadline".into());
                break;
            }
        }
        let ceiling = policy
            .base_backoff
            .saturating_mul(2u32.saturating_pow(attempt))
            .min(policy.max_backoff);
        let sleep = ceiling.mul_f64(rand::rng().random_range(0.0..1.0));
        attempt += 1;
        tokio::time::sleep_until((Instant::now() + sleep).min(deadline)).await;
    }
    report.failed = pending
        .into_values()
        .map(|write| write.sequence_number)
        .collect();
    report
}

fn put_request(item: &HashMap<String, AttributeValue>) -> WriteRequest {
    let put = PutRequest::builder()
        .set_item(Some(item.clone()))
        .build()
        .expect("a put request with an item is complete");
    WriteRequest::builder().put_request(put).build()
}

fn key_of(request: &WriteRequest) -> Option<(String, String)> {
    let item = request.put_request()?.item();
    let text = |name: &str| item.get(name)?.as_s().ok().cloned();
    Some((
        text(orderflow_domain::PARTITION_KEY)?,
        text(orderflow_domain::SORT_KEY)?,
    ))
}
