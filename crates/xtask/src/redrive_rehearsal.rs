//! The rehearsal's redrive step: `cargo xtask redrive-aws`'s code against the pipeline OpenTofu
//! just applied to moto (its stream, its on-failure queue, its DynamoDB table), with the real
//! consumer binary behind a local stand-in for Lambda's `Invoke` API.
//!
//! moto can create Lambda functions but runs them only in Docker, which this machine has not; the
//! stand-in (`POST /2015-03-31/functions/{name}/invocations`) starts the consumer binary the
//! workspace builds, hands it the event through a local Runtime API
//! ([`crate::lambda_bench::run_function`]) with the deployed function's table, and answers what
//! it answered (`X-Amz-Function-Error: Unhandled` for an error), as Lambda does. The consumer
//! writes to moto's DynamoDB table, so the step checks what the redrive stored there.

use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use anyhow::{Context, Result, ensure};
use aws_sdk_dynamodb::types::AttributeValue;
use orderflow_domain::{GeneratorConfig, OrderGenerator};
use serde_json::json;

use crate::redrive_aws::{Clients, Options, redrive};

/// What the step needs from the applied configuration.
pub(crate) struct Deployed<'a> {
    /// moto's endpoint.
    pub(crate) endpoint: &'a str,
    /// The region the rehearsal deploys to.
    pub(crate) region: &'a str,
    /// `tofu output kinesis_stream_name`.
    pub(crate) stream: &'a str,
    /// `tofu output consumer_on_failure_queue_url`.
    pub(crate) queue_url: &'a str,
    /// `tofu output dynamodb_table_name`.
    pub(crate) table: &'a str,
    /// `tofu output consumer_function_name`.
    pub(crate) function: &'a str,
}

/// Builds the consumer binary (native, debug profile: the same code as the arm64 zip).
fn consumer_binary(root: &Path) -> Result<PathBuf> {
    let name = crate::lambdas::Lambdas::read()?.consumer;
    crate::step(
        "consumer binary",
        "cargo",
        &[
            "build",
            "--quiet",
            "-p",
            "orderflow-consumer",
            "--bin",
            &name,
        ],
    )?;
    let target =
        std::env::var_os("CARGO_TARGET_DIR").map_or_else(|| root.join("target"), PathBuf::from);
    Ok(target.join("debug").join(name))
}

/// The Lambda `Invoke` stand-in on a loopback port; returns its endpoint and the function names
/// it was asked for.
fn lambda_stand_in(
    program: PathBuf,
    env: Vec<(String, String)>,
) -> Result<(String, Arc<Mutex<Vec<String>>>)> {
    let server = tiny_http::Server::http("127.0.0.1:0")
        .map_err(|e| anyhow::anyhow!("Lambda stand-in: {e}"))?;
    let address = format!(
        "http://{}",
        server.server_addr().to_ip().context("a TCP address")?
    );
    let invoked = Arc::new(Mutex::new(Vec::new()));
    let names = invoked.clone();
    std::thread::spawn(move || {
        for mut request in server.incoming_requests() {
            let name = request
                .url()
                .strip_prefix("/2015-03-31/functions/")
                .and_then(|rest| rest.strip_suffix("/invocations"))
                .map(percent_decoded);
            let mut event = Vec::new();
            let read = std::io::Read::read_to_end(request.as_reader(), &mut event);
            let (Some(name), Ok(_)) = (name, read) else {
                let _ = request.respond(tiny_http::Response::empty(404));
                continue;
            };
            names.lock().expect("not poisoned").push(name);
            let env: Vec<(&str, &str)> =
                env.iter().map(|(k, v)| (k.as_str(), v.as_str())).collect();
            let response = match crate::lambda_bench::run_function(&program, &event, 0, &env) {
                Ok(run) => {
                    let exchange = &run.exchanges[0];
                    let mut response =
                        tiny_http::Response::from_data(exchange.body.clone().unwrap_or_default())
                            .with_status_code(200);
                    if !exchange.ok {
                        response.add_header(
                            tiny_http::Header::from_bytes("X-Amz-Function-Error", "Unhandled")
                                .expect("a valid header"),
                        );
                    }
                    response
                }
                Err(error) => tiny_http::Response::from_string(format!(
                    "{{\"Type\":\"ServiceException\",\"message\":\"{error}\"}}"
                ))
                .with_status_code(500),
            };
            let _ = request.respond(response);
        }
    });
    Ok((address, invoked))
}

/// A path segment with its `%XX` escapes decoded (the SDK escapes the `:` of a function ARN).
fn percent_decoded(segment: &str) -> String {
    let bytes = segment.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        let hex = (bytes[i] == b'%')
            .then(|| segment.get(i + 1..i + 3))
            .flatten()
            .and_then(|h| u8::from_str_radix(h, 16).ok());
        match hex {
            Some(byte) => {
                out.push(byte);
                i += 3;
            }
            None => {
                out.push(bytes[i]);
                i += 1;
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// The step: three orders put into the deployed stream, three messages in the on-failure queue
/// (one batch of the three records as Lambda would report it, one body that is not an
/// invocation record, one batch of a stream that does not exist); the redrive must store the
/// three orders, delete the first message and keep the two others with their reasons. Returns
/// the step's note.
pub(crate) fn run(root: &Path, deployed: &Deployed<'_>) -> Result<String> {
    let program = consumer_binary(root)?;
    let credentials = [
        ("AWS_ACCESS_KEY_ID", "rehearsal"),
        ("AWS_SECRET_ACCESS_KEY", "rehearsal"),
    ];
    let mut env: Vec<(String, String)> = credentials
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    env.push(("AWS_REGION".into(), deployed.region.into()));
    env.push(("AWS_ENDPOINT_URL".into(), deployed.endpoint.into()));
    env.push((
        orderflow_consumer::ORDERS_TABLE_ENV.into(),
        deployed.table.into(),
    ));
    let (lambda_endpoint, invoked) = lambda_stand_in(program, env)?;

    let runtime = tokio::runtime::Runtime::new()?;
    runtime.block_on(async {
        let config = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(aws_config::Region::new(deployed.region.to_string()))
            .endpoint_url(deployed.endpoint)
            .credentials_provider(aws_sdk_sqs::config::Credentials::new(
                "rehearsal",
                "rehearsal",
                None,
                None,
                "rehearsal",
            ))
            .load()
            .await;
        let clients = Clients {
            sqs: aws_sdk_sqs::Client::new(&config),
            kinesis: aws_sdk_kinesis::Client::new(&config),
            lambda: aws_sdk_lambda::Client::from_conf(
                aws_sdk_lambda::config::Builder::from(&config)
                    .endpoint_url(&lambda_endpoint)
                    .build(),
            ),
        };
        let dynamodb = aws_sdk_dynamodb::Client::new(&config);

        // Three orders, one partition key: one shard, in order.
        let mut generator = OrderGenerator::new(GeneratorConfig::fixed(7));
        let orders: Vec<_> = (0..3).map(|_| generator.next_order()).collect();
        let stream = clients
            .kinesis
            .describe_stream_summary()
            .stream_name(deployed.stream)
            .send()
            .await
            .context("DescribeStreamSummary")?;
        let stream_arn = stream
            .stream_description_summary()
            .map(|s| s.stream_arn().to_string())
            .context("the stream's ARN")?;
        let mut put = Vec::new();
        for order in &orders {
            let output = clients
                .kinesis
                .put_record()
                .stream_arn(&stream_arn)
                .partition_key("rehearsal-redrive")
                .data(aws_sdk_kinesis::primitives::Blob::new(order.to_json()))
                .send()
                .await
                .context("PutRecord")?;
            put.push((
                output.shard_id().to_string(),
                output.sequence_number().to_string(),
            ));
        }
        ensure!(
            put.iter().all(|(shard, _)| *shard == put[0].0),
            "one partition key, one shard"
        );

        let account = stream_arn.split(':').nth(4).unwrap_or("123456789012");
        let function_arn = format!(
            "arn:aws:lambda:{}:{account}:function:{}",
            deployed.region, deployed.function
        );
        let invocation_record = |stream_arn: &str| {
            json!({
                "requestContext": {
                    "requestId": "7f4a1f0e-0000-4000-8000-000000000001",
                    "functionArn": function_arn,
                    "condition": "RetryAttemptsExhausted",
                    "approximateInvokeCount": 3
                },
                "responseContext": {"statusCode": 200, "executedVersion": "$LATEST", "functionError": "Unhandled"},
                "version": "1.0",
                "timestamp": "2026-12-03T05:00:00.000Z",
                "KinesisBatchInfo": {
                    "shardId": put[0].0,
                    "startSequenceNumber": put[0].1,
                    "endSequenceNumber": put[2].1,
                    "approximateArrivalOfFirstRecord": "2026-12-03T04:59:58.000Z",
                    "approximateArrivalOfLastRecord": "2026-12-03T04:59:59.000Z",
                    "batchSize": 3,
                    "streamArn": stream_arn
                }
            })
            .to_string()
        };
        let missing_stream = stream_arn.replace(deployed.stream, "no-such-stream");
        for body in [
            invocation_record(&stream_arn),
            "not an invocation record".to_string(),
            invocation_record(&missing_stream),
        ] {
            clients
                .sqs
                .send_message()
                .queue_url(deployed.queue_url)
                .message_body(body)
                .send()
                .await
                .context("SendMessage")?;
        }

        let report = redrive(
            &clients,
            &Options {
                queue_url: deployed.queue_url.to_string(),
                function: None,
                max_messages: usize::MAX,
                dry_run: false,
                visibility_timeout: 600,
            },
        )
        .await?;
        eprint!("rehearse: redrive-aws: {}", report.to_text(false));
        ensure!(
            report.deleted == 1 && report.records == 3 && report.kept.len() == 2,
            "redrive: expected 1 batch of 3 records redriven and 2 messages kept, got {report:?}"
        );
        ensure!(
            report
                .kept
                .iter()
                .any(|k| k.contains("not a Kinesis invocation record"))
                && report.kept.iter().any(|k| k.contains("GetShardIterator")),
            "redrive: the kept messages' reasons: {:?}",
            report.kept
        );
        let names = invoked.lock().expect("not poisoned").clone();
        ensure!(
            names.len() == 1 && names[0].ends_with(&format!("function:{}", deployed.function)),
            "redrive: the message's function must be invoked once, got {names:?}"
        );
        for (order, (_, sequence)) in orders.iter().zip(&put) {
            let item = dynamodb
                .get_item()
                .table_name(deployed.table)
                .key("customer_id", AttributeValue::S(order.customer_id.to_string()))
                .key("order_id", AttributeValue::S(order.order_id.to_string()))
                .consistent_read(true)
                .send()
                .await
                .context("GetItem")?
                .item
                .with_context(|| format!("order {} is not in the table", order.order_id))?;
            ensure!(
                item.get("source_sequence_number") == Some(&AttributeValue::S(sequence.clone())),
                "order {}: stored with {:?}, expected sequence number {sequence}",
                order.order_id,
                item.get("source_sequence_number")
            );
        }
        let attributes = clients
            .sqs
            .get_queue_attributes()
            .queue_url(deployed.queue_url)
            .attribute_names(aws_sdk_sqs::types::QueueAttributeName::All)
            .send()
            .await
            .context("GetQueueAttributes")?;
        let count = |name: aws_sdk_sqs::types::QueueAttributeName| {
            attributes
                .attributes()
                .and_then(|a| a.get(&name))
                .and_then(|v| v.parse::<u64>().ok())
                .unwrap_or(0)
        };
        let left = count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessages)
            + count(aws_sdk_sqs::types::QueueAttributeName::ApproximateNumberOfMessagesNotVisible);
        ensure!(left == 2, "the queue should keep 2 messages, holds {left}");
        Ok("1 batch (3 orders) stored and deleted, 2 messages kept".to_string())
    })
}
