//! `cargo xtask redrive-aws`: the deployed consumer's failed batches through the consumer again.
//!
//! When the consumer's event source mapping gives up on a batch (retries or record age
//! exhausted), Lambda sends an invocation record to the on-failure queue (`tofu output
//! consumer_on_failure_queue_url`). For an SQS destination it is a JSON document of metadata about
//! the failed invocation, without the records (Lambda developer guide, "Retain discarded batch
//! records for a Kinesis Data Streams event source in Lambda"; only an S3 destination also gets
//! the invocation record's payload). The records themselves are still in the stream for its
//! retention period. For each message this task:
//!
//! 1. reads `KinesisBatchInfo` (`streamArn`, `shardId`, `startSequenceNumber`,
//!    `endSequenceNumber`, `batchSize`) and `requestContext.functionArn`;
//! 2. reads the records back from the shard (`GetShardIterator` `AT_SEQUENCE_NUMBER`, then
//!    `GetRecords` up to the end sequence number);
//! 3. invokes the consumer with them, as the Kinesis event the event source mapping sends
//!    (`orderflow_consumer::kinesis_event`), in events under Lambda's 6 MB synchronous payload;
//! 4. deletes the message only when every record of the batch was found and the consumer
//!    reported no `batchItemFailures` and no function error.
//!
//! A message is otherwise kept (it becomes visible again after the visibility timeout) and the
//! report says why. Nothing is lost and a batch may be redriven twice: the consumer's writes are
//! conditional on the record's sequence number, so an older record never replaces a newer version
//! of its order. Records that expired from the stream cannot be read back; the message is kept
//! and the report names the gap (the message is then the only trace: decide, then delete it
//! yourself).

use std::time::Duration;

use anyhow::{Context, Result};
use aws_sdk_kinesis::types::ShardIteratorType;
use orderflow_consumer::{EventRecord, EventSource, compare_sequence_numbers, kinesis_event};
use serde::Deserialize;

/// Lambda's synchronous invocation payload (request) is limited to 6 MB (Lambda developer guide,
/// "Lambda quotas"); events are cut below it with room for the envelope.
pub(crate) const MAX_EVENT_BYTES: usize = 5_500_000;

/// `GetRecords` calls per message at most (10,000 records each).
const MAX_GET_RECORDS_CALLS: usize = 200;

/// What to redrive.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct Options {
    /// The on-failure queue (`tofu -chdir=tofu output -raw consumer_on_failure_queue_url`).
    #[arg(long)]
    pub(crate) queue_url: String,
    /// The function to invoke instead of the message's `requestContext.functionArn`.
    #[arg(long)]
    pub(crate) function: Option<String>,
    /// Stop after this many messages.
    #[arg(long, default_value_t = usize::MAX, hide_default_value = true)]
    pub(crate) max_messages: usize,
    /// Read and report only: invoke nothing, delete nothing.
    #[arg(long)]
    pub(crate) dry_run: bool,
    /// Seconds a received message stays invisible to other readers.
    #[arg(long, default_value_t = 300)]
    pub(crate) visibility_timeout: i32,
}

/// The clients a redrive uses.
pub(crate) struct Clients {
    /// The on-failure queue.
    pub(crate) sqs: aws_sdk_sqs::Client,
    /// The stream.
    pub(crate) kinesis: aws_sdk_kinesis::Client,
    /// The consumer.
    pub(crate) lambda: aws_sdk_lambda::Client,
}

impl Clients {
    /// Clients from the environment's configuration (region, credentials, `AWS_ENDPOINT_URL*`).
    pub(crate) async fn from_env() -> Clients {
        let config = aws_config::load_defaults(aws_config::BehaviorVersion::latest()).await;
        Clients {
            sqs: aws_sdk_sqs::Client::new(&config),
            kinesis: aws_sdk_kinesis::Client::new(&config),
            lambda: aws_sdk_lambda::Client::new(&config),
        }
    }
}

/// What a redrive did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub(crate) struct Report {
    /// Messages whose batch was redriven in full and deleted.
    pub(crate) deleted: usize,
    /// Records sent to the consumer.
    pub(crate) records: usize,
    /// Messages kept, with the reason (`message id: reason`).
    pub(crate) kept: Vec<String>,
}

impl Report {
    /// A readable summary.
    pub(crate) fn to_text(&self, dry_run: bool) -> String {
        let mut text = if dry_run {
            format!(
                "dry run: {} records read back; nothing invoked or deleted\n",
                self.records
            )
        } else {
            format!(
                "{} batches redriven and their messages deleted; {} records sent to the consumer\n",
                self.deleted, self.records
            )
        };
        for kept in &self.kept {
            text.push_str(&format!("  kept {kept}\n"));
        }
        text
    }
}

/// The parts of Lambda's invocation record for a Kinesis source that a redrive needs.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct InvocationRecord {
    request_context: RequestContext,
    #[serde(rename = "KinesisBatchInfo")]
    batch: BatchInfo,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct RequestContext {
    function_arn: String,
}

/// `KinesisBatchInfo`.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
pub(crate) struct BatchInfo {
    pub(crate) shard_id: String,
    pub(crate) start_sequence_number: String,
    pub(crate) end_sequence_number: String,
    pub(crate) batch_size: usize,
    pub(crate) stream_arn: String,
}

/// A record read back from the shard.
#[derive(Debug, Clone)]
pub(crate) struct ReadRecord {
    pub(crate) sequence_number: String,
    pub(crate) partition_key: String,
    pub(crate) data: Vec<u8>,
    pub(crate) arrival_ms: u64,
}

/// The records of one batch, as far as the stream still holds them.
#[derive(Debug)]
pub(crate) struct ReadBatch {
    pub(crate) records: Vec<ReadRecord>,
    /// The first record read is the batch's start (none expired before it).
    pub(crate) has_start: bool,
    /// The batch's end record was read.
    pub(crate) has_end: bool,
}

/// Reads the records `start..=end` of `batch`'s shard.
pub(crate) async fn read_batch(
    kinesis: &aws_sdk_kinesis::Client,
    batch: &BatchInfo,
) -> Result<ReadBatch> {
    let mut iterator = kinesis
        .get_shard_iterator()
        .stream_arn(&batch.stream_arn)
        .shard_id(&batch.shard_id)
        .shard_iterator_type(ShardIteratorType::AtSequenceNumber)
        .starting_sequence_number(&batch.start_sequence_number)
        .send()
        .await
        .with_context(|| {
            format!(
                "GetShardIterator at {} on {}",
                batch.start_sequence_number, batch.shard_id
            )
        })?
        .shard_iterator;
    let mut read = ReadBatch {
        records: Vec::new(),
        has_start: false,
        has_end: false,
    };
    let mut calls = 0;
    while let Some(current) = iterator.take() {
        calls += 1;
        if calls > MAX_GET_RECORDS_CALLS {
            break;
        }
        let limit = batch
            .batch_size
            .saturating_sub(read.records.len())
            .clamp(1, 10_000);
        let output = kinesis
            .get_records()
            .shard_iterator(current)
            .stream_arn(&batch.stream_arn)
            .limit(limit as i32)
            .send()
            .await
            .context("GetRecords")?;
        for record in output.records() {
            let sequence = record.sequence_number();
            if compare_sequence_numbers(sequence, &batch.end_sequence_number).is_gt() {
                read.has_end = true;
                break;
            }
            if read.records.is_empty() {
                read.has_start = sequence == batch.start_sequence_number;
            }
            read.records.push(ReadRecord {
                sequence_number: sequence.to_string(),
                partition_key: record.partition_key().unwrap_or_default().to_string(),
                data: record.data().as_ref().to_vec(),
                arrival_ms: record
                    .approximate_arrival_timestamp()
                    .and_then(|t| t.to_millis().ok())
                    .unwrap_or(0)
                    .max(0) as u64,
            });
            if sequence == batch.end_sequence_number {
                read.has_end = true;
                break;
            }
        }
        if read.has_end || (output.records().is_empty() && output.millis_behind_latest() == Some(0))
        {
            break;
        }
        iterator = output.next_shard_iterator;
        // A shard serves five reads a second to all its readers together.
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    Ok(read)
}

/// The Kinesis events (under [`MAX_EVENT_BYTES`] each) for `records` of `batch`.
pub(crate) fn events(batch: &BatchInfo, records: &[ReadRecord], region: &str) -> Vec<Vec<u8>> {
    let source = EventSource {
        stream_arn: &batch.stream_arn,
        region,
        invoke_identity_arn: "",
    };
    let event_of = |chunk: &[ReadRecord]| {
        kinesis_event(
            &source,
            chunk.iter().map(|record| EventRecord {
                shard_id: &batch.shard_id,
                partition_key: &record.partition_key,
                sequence_number: &record.sequence_number,
                data: &record.data,
                arrival_ms: record.arrival_ms,
            }),
        )
    };
    let mut events = Vec::new();
    let mut start = 0;
    let mut size = 0;
    for (index, record) in records.iter().enumerate() {
        // base64 of the data plus the record's envelope (well under 600 bytes).
        let record_size = record.data.len().div_ceil(3) * 4 + 600;
        if index > start && size + record_size > MAX_EVENT_BYTES {
            events.push(event_of(&records[start..index]));
            start = index;
            size = 0;
        }
        size += record_size;
    }
    if start < records.len() {
        events.push(event_of(&records[start..]));
    }
    events
}

/// The consumer's answer to one event.
#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ConsumerResponse {
    #[serde(default)]
    batch_item_failures: Vec<ItemFailure>,
}

#[derive(Debug, Deserialize)]
#[serde(rename_all = "camelCase")]
struct ItemFailure {
    item_identifier: String,
}

/// Redrives up to `options.max_messages` messages of the queue.
pub(crate) async fn redrive(clients: &Clients, options: &Options) -> Result<Report> {
    let mut report = Report::default();
    let mut seen = 0;
    while seen < options.max_messages {
        let received = clients
            .sqs
            .receive_message()
            .queue_url(&options.queue_url)
            .max_number_of_messages((options.max_messages - seen).min(10) as i32)
            .visibility_timeout(options.visibility_timeout)
            .wait_time_seconds(1)
            .send()
            .await
            .with_context(|| format!("ReceiveMessage from {}", options.queue_url))?;
        let messages = received.messages();
        if messages.is_empty() {
            break;
        }
        for message in messages {
            seen += 1;
            let id = message.message_id().unwrap_or("(no id)").to_string();
            match redrive_message(clients, options, message.body().unwrap_or_default()).await {
                Ok(records) => {
                    report.records += records;
                    if !options.dry_run {
                        clients
                            .sqs
                            .delete_message()
                            .queue_url(&options.queue_url)
                            .receipt_handle(message.receipt_handle().unwrap_or_default())
                            .send()
                            .await
                            .with_context(|| format!("DeleteMessage {id}"))?;
                        report.deleted += 1;
                    }
                }
                Err(Kept { records, reason }) => {
                    report.records += records;
                    report.kept.push(format!("{id}: {reason}"));
                }
            }
        }
    }
    Ok(report)
}

/// Why a message stays in the queue, after `records` records were sent.
struct Kept {
    records: usize,
    reason: String,
}

/// One message: `Ok(records sent)` when it can be deleted.
async fn redrive_message(
    clients: &Clients,
    options: &Options,
    body: &str,
) -> std::result::Result<usize, Kept> {
    let kept = |records, reason: String| Kept { records, reason };
    let record: InvocationRecord = serde_json::from_str(body).map_err(|error| {
        kept(
            0,
            format!("not a Kinesis invocation record of Lambda ({error})"),
        )
    })?;
    let batch = &record.batch;
    let read = read_batch(&clients.kinesis, batch)
        .await
        .map_err(|error| kept(0, format!("{error:#}")))?;
    let range = format!(
        "{} {}..={}",
        batch.shard_id, batch.start_sequence_number, batch.end_sequence_number
    );
    if read.records.is_empty() {
        return Err(kept(
            0,
            format!("no record of {range} is in the stream any more (past its retention?)"),
        ));
    }
    let mut gaps = Vec::new();
    if !read.has_start {
        gaps.push(format!(
            "the records before {} expired",
            read.records[0].sequence_number
        ));
    }
    if !read.has_end {
        gaps.push(format!(
            "the end was not reached ({} of {} records read)",
            read.records.len(),
            batch.batch_size
        ));
    }
    if options.dry_run {
        return if gaps.is_empty() {
            Ok(read.records.len())
        } else {
            Err(kept(read.records.len(), gaps.join("; ")))
        };
    }
    let region = batch.stream_arn.split(':').nth(3).unwrap_or("us-east-1");
    let function = options
        .function
        .as_deref()
        .unwrap_or(&record.request_context.function_arn);
    let mut failed = Vec::new();
    for event in events(batch, &read.records, region) {
        let output = clients
            .lambda
            .invoke()
            .function_name(function)
            .payload(aws_sdk_lambda::primitives::Blob::new(event))
            .send()
            .await
            .map_err(|error| {
                kept(
                    read.records.len(),
                    format!(
                        "Invoke {function}: {}",
                        aws_sdk_lambda::error::DisplayErrorContext(&error)
                    ),
                )
            })?;
        let payload = output.payload().map(|p| p.as_ref()).unwrap_or_default();
        if let Some(error) = output.function_error() {
            return Err(kept(
                read.records.len(),
                format!(
                    "{function} failed ({error}): {}",
                    String::from_utf8_lossy(&payload[..payload.len().min(300)])
                ),
            ));
        }
        let response: ConsumerResponse = serde_json::from_slice(payload).map_err(|error| {
            kept(
                read.records.len(),
                format!("{function} answered something other than a batch response ({error})"),
            )
        })?;
        failed.extend(
            response
                .batch_item_failures
                .into_iter()
                .map(|f| f.item_identifier),
        );
    }
    if !failed.is_empty() {
        gaps.push(format!(
            "the consumer could not write {} records (first {}; see its log)",
            failed.len(),
            failed[0]
        ));
    }
    if gaps.is_empty() {
        Ok(read.records.len())
    } else {
        Err(kept(read.records.len(), gaps.join("; ")))
    }
}

/// `cargo xtask redrive-aws`.
pub(crate) fn run(options: &Options) -> Result<bool> {
    let runtime = tokio::runtime::Runtime::new()?;
    let report = runtime.block_on(async {
        let clients = Clients::from_env().await;
        redrive(&clients, options).await
    })?;
    print!("{}", report.to_text(options.dry_run));
    Ok(report.kept.is_empty())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(n: usize, bytes: usize) -> ReadRecord {
        ReadRecord {
            sequence_number: format!("{n:056}"),
            partition_key: "c".into(),
            data: vec![b'x'; bytes],
            arrival_ms: 1_717_848_000_000,
        }
    }

    fn batch() -> BatchInfo {
        BatchInfo {
            shard_id: "shardId-000000000000".into(),
            start_sequence_number: "1".into(),
            end_sequence_number: "9".into(),
            batch_size: 9,
            stream_arn: "arn:aws:kinesis:eu-west-1:123456789012:stream/orders".into(),
        }
    }

    #[test]
    fn events_stay_under_lambdas_payload_limit_and_keep_every_record_in_order() {
        // 12 records of 1 MiB: base64 makes each about 1.4 MB, so three fit in an event.
        let records: Vec<ReadRecord> = (0..12).map(|n| record(n, 1 << 20)).collect();
        let events = events(&batch(), &records, "eu-west-1");
        assert_eq!(events.len(), 4);
        let mut sequence = Vec::new();
        for event in &events {
            assert!(event.len() <= MAX_EVENT_BYTES, "{} bytes", event.len());
            let decoded: orderflow_consumer::OrderRecordsEvent =
                serde_json::from_slice(event).unwrap();
            for r in decoded.0.records {
                assert_eq!(r.aws_region.as_deref(), Some("eu-west-1"));
                sequence.push(r.kinesis.sequence_number);
            }
        }
        let expected: Vec<String> = records.iter().map(|r| r.sequence_number.clone()).collect();
        assert_eq!(sequence, expected);
        // Small records: one event.
        let small: Vec<ReadRecord> = (0..500).map(|n| record(n, 2_000)).collect();
        assert_eq!(events_of(&small), 1);
    }

    fn events_of(records: &[ReadRecord]) -> usize {
        events(&batch(), records, "eu-west-1").len()
    }

    #[test]
    fn an_invocation_record_of_lambda_parses() {
        // The example of "Retaining discarded batch records for a Kinesis Data Streams event
        // source in Lambda" (Lambda developer guide).
        let body = r#"{
            "requestContext": {
                "requestId": "c9b8fa9f-5a7f-xmpl-af9c-0c604cde93a5",
                "functionArn": "arn:aws:lambda:us-east-2:123456789012:function:myfunction",
                "condition": "RetryAttemptsExhausted",
                "approximateInvokeCount": 1
            },
            "responseContext": {
                "statusCode": 200,
                "executedVersion": "$LATEST",
                "functionError": "Unhandled"
            },
            "version": "1.0",
            "timestamp": "2019-11-14T00:38:06.021Z",
            "KinesisBatchInfo": {
                "shardId": "shardId-000000000001",
                "startSequenceNumber": "49601189658422359378836298521827638475320189012309704722",
                "endSequenceNumber": "49601189658422359378836298522902373528957594348623495186",
                "approximateArrivalOfFirstRecord": "2019-11-14T00:38:04.835Z",
                "approximateArrivalOfLastRecord": "2019-11-14T00:38:05.580Z",
                "batchSize": 500,
                "streamArn": "arn:aws:kinesis:us-east-2:123456789012:stream/mystream"
            }
        }"#;
        let record: InvocationRecord = serde_json::from_str(body).unwrap();
        assert_eq!(record.batch.batch_size, 500);
        assert_eq!(record.batch.shard_id, "shardId-000000000001");
        assert_eq!(
            record.request_context.function_arn,
            "arn:aws:lambda:us-east-2:123456789012:function:myfunction"
        );
    }

    #[test]
    fn options_need_the_queue_and_name_unknown_flags() {
        let parse = |list: &[&str]| match crate::parse_args(&[&["redrive-aws"], list].concat())? {
            crate::Task::RedriveAws(options) => Ok::<Options, clap::Error>(options),
            other => panic!("parsed as {other:?}"),
        };
        assert!(parse(&[]).is_err());
        assert!(parse(&["--queue-url", "q", "--bogus"]).is_err());
        let options = parse(&["--queue-url", "q", "--dry-run"]).unwrap();
        assert!(options.dry_run);
        assert_eq!(options.function, None);
        assert_eq!(options.visibility_timeout, 300);
    }
}
