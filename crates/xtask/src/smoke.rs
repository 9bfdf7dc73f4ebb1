//! `cargo xtask smoke`: the real arm64 `bootstrap`s from the zips, run under qemu-user against a
//! Lambda Runtime API served here, fed real events. The consumer writes into a real dynalite.
//!
//! `cargo xtask coldstart`: the native (x86_64) release binaries started 20 times each; the time
//! from process start to the first response through the Runtime API, median and spread.

use std::collections::VecDeque;
use std::io::{Cursor, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use base64::Engine;
use serde_json::{Value, json};

const B64: base64::engine::GeneralPurpose = base64::engine::general_purpose::STANDARD;

/// What the function sent back to the Runtime API.
#[derive(Debug, Clone, PartialEq)]
enum Reply {
    Response(Value),
    Error(Value),
    InitError(Value),
}

#[derive(Default)]
struct Shared {
    events: VecDeque<Vec<u8>>,
    replies: Vec<(Instant, Reply)>,
}

/// A Lambda Runtime API on a loopback port that hands out `events` one by one.
struct RuntimeApi {
    address: String,
    shared: Arc<(Mutex<Shared>, Condvar)>,
}

impl RuntimeApi {
    fn start(events: Vec<Vec<u8>>) -> Result<RuntimeApi> {
        let server = tiny_http::Server::http("127.0.0.1:0")
            .map_err(|e| anyhow::anyhow!("runtime API: {e}"))?;
        let address = server
            .server_addr()
            .to_ip()
            .context("an IP address")?
            .to_string();
        let shared = Arc::new((
            Mutex::new(Shared {
                events: events.into(),
                replies: Vec::new(),
            }),
            Condvar::new(),
        ));
        let state = shared.clone();
        std::thread::spawn(move || {
            let mut counter = 0u64;
            for mut request in server.incoming_requests() {
                let url = request.url().to_owned();
                let mut body = Vec::new();
                let _ = request.as_reader().read_to_end(&mut body);
                let parsed: Value = serde_json::from_slice(&body).unwrap_or(Value::Null);
                let (lock, changed) = &*state;
                if url.ends_with("/invocation/next") {
                    let event = lock.lock().expect("lock").events.pop_front();
                    let Some(event) = event else {
                        // Nothing more to invoke: keep the function waiting, as Lambda does.
                        std::thread::spawn(move || {
                            std::thread::sleep(Duration::from_secs(600));
                            drop(request);
                        });
                        continue;
                    };
                    counter += 1;
                    let deadline = std::time::SystemTime::now()
                        .duration_since(std::time::UNIX_EPOCH)
                        .expect("after 1970")
                        .as_millis()
                        + 60_000;
                    let headers = [
                        (
                            "Lambda-Runtime-Aws-Request-Id",
                            format!("request-{counter}"),
                        ),
                        ("Lambda-Runtime-Deadline-Ms", deadline.to_string()),
                        (
                            "Lambda-Runtime-Invoked-Function-Arn",
                            "arn:aws:lambda:us-east-1:123456789012:function:smoke".into(),
                        ),
                        (
                            "Lambda-Runtime-Trace-Id",
                            "Root=1-00000000-000000000000000000000000".into(),
                        ),
                        ("Content-Type", "application/json".into()),
                    ];
                    let mut response = tiny_http::Response::from_data(event);
                    for (name, value) in headers {
                        response.add_header(
                            tiny_http::Header::from_bytes(name, value).expect("valid header"),
                        );
                    }
                    let _ = request.respond(response);
                } else {
                    let reply = if url.ends_with("/init/error") {
                        Reply::InitError(parsed)
                    } else if url.ends_with("/error") {
                        Reply::Error(parsed)
                    } else {
                        Reply::Response(parsed)
                    };
                    lock.lock()
                        .expect("lock")
                        .replies
                        .push((Instant::now(), reply));
                    changed.notify_all();
                    let _ = request.respond(tiny_http::Response::empty(202));
                }
            }
        });
        Ok(RuntimeApi { address, shared })
    }

    /// Waits for `count` replies (or `timeout`), returning them with their arrival times.
    fn wait(&self, count: usize, timeout: Duration) -> Vec<(Instant, Reply)> {
        let (lock, changed) = &*self.shared;
        let deadline = Instant::now() + timeout;
        let mut shared = lock.lock().expect("lock");
        while shared.replies.len() < count {
            let left = deadline.saturating_duration_since(Instant::now());
            if left.is_zero() {
                break;
            }
            shared = changed.wait_timeout(shared, left).expect("lock").0;
        }
        shared.replies.clone()
    }
}

/// Starts `program` (under qemu when `qemu`) as a Lambda function talking to `api`.
fn start_function(
    program: &Path,
    qemu: bool,
    api: &RuntimeApi,
    env: &[(&str, &str)],
) -> Result<Child> {
    let mut command = if qemu {
        let mut command = Command::new("qemu-aarch64-static");
        command.args(["-L", "/usr/aarch64-linux-gnu"]).arg(program);
        command
    } else {
        Command::new(program)
    };
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", &api.address)
        .env("AWS_LAMBDA_FUNCTION_NAME", "smoke")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "256")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "smoke")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "smoke")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_REGION", "us-east-1")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null());
    command
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

/// Runs one function on `events` and returns its replies.
fn invoke(
    program: &Path,
    qemu: bool,
    events: Vec<Vec<u8>>,
    expect: usize,
    env: &[(&str, &str)],
) -> Result<Vec<Reply>> {
    let api = RuntimeApi::start(events)?;
    let mut child = start_function(program, qemu, &api, env)?;
    let replies = api.wait(expect, Duration::from_secs(180));
    let _ = child.kill();
    let _ = child.wait();
    ensure!(
        replies.len() >= expect,
        "{}: {} of {expect} replies within 180 s",
        program.display(),
        replies.len()
    );
    Ok(replies.into_iter().map(|(_, reply)| reply).collect())
}

/// The twin's DynamoDB stand-in (`orderflow dynamodb`: dynalite in memory), stopped on drop.
pub(crate) struct Dynalite {
    child: Child,
    /// `http://127.0.0.1:<port>`.
    pub(crate) endpoint: String,
}

impl Drop for Dynalite {
    fn drop(&mut self) {
        // Closing its standard input stops it; a kill if it has not stopped in 5 s.
        drop(self.child.stdin.take());
        let started = Instant::now();
        while started.elapsed() < Duration::from_secs(5) {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Dynalite {
    /// Builds the twin (the demo's build, so usually nothing to do) and starts its dynalite.
    pub(crate) fn start(root: &Path) -> Result<Dynalite> {
        let twin = crate::build_twin()?;
        let mut child = Command::new(&twin)
            .arg("dynamodb")
            .current_dir(root)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .with_context(|| format!("starting {} dynamodb", twin.display()))?;
        let mut line = String::new();
        std::io::BufRead::read_line(
            &mut std::io::BufReader::new(child.stdout.take().expect("piped")),
            &mut line,
        )?;
        let endpoint = serde_json::from_str::<Value>(&line)
            .ok()
            .and_then(|v| v["endpoint"].as_str().map(str::to_owned));
        let mut dynalite = Dynalite {
            child,
            endpoint: String::new(),
        };
        dynalite.endpoint = endpoint.context("`orderflow dynamodb` did not start")?;
        Ok(dynalite)
    }

    /// Creates an orders table (`customer_id`, `order_id`) named `table`, on demand.
    pub(crate) fn create_orders_table(&self, table: &str) -> Result<()> {
        self.call(
            "CreateTable",
            json!({"TableName": table, "BillingMode": "PAY_PER_REQUEST",
                   "KeySchema": [{"AttributeName": "customer_id", "KeyType": "HASH"}, {"AttributeName": "order_id", "KeyType": "RANGE"}],
                   "AttributeDefinitions": [{"AttributeName": "customer_id", "AttributeType": "S"}, {"AttributeName": "order_id", "AttributeType": "S"}]}),
        )?;
        Ok(())
    }

    /// One DynamoDB JSON API call (dynalite checks the form of the signature, not its value).
    pub(crate) fn call(&self, action: &str, body: Value) -> Result<Value> {
        let text = self.call_with(&ureq::Agent::new_with_defaults(), action, &body.to_string())?;
        Ok(serde_json::from_str(&text)?)
    }

    /// One DynamoDB JSON API call through `agent` (kept-alive connections), the answer's text.
    pub(crate) fn call_with(
        &self,
        agent: &ureq::Agent,
        action: &str,
        body: &str,
    ) -> Result<String> {
        let response = agent
            .post(&self.endpoint)
            .header("X-Amz-Target", &format!("DynamoDB_20120810.{action}"))
            .header("Content-Type", "application/x-amz-json-1.0")
            .header(
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20240101/us-east-1/dynamodb/aws4_request, SignedHeaders=host;x-amz-date, Signature=00",
            )
            .header("X-Amz-Date", "20240101T000000Z")
            .send(body)
            .with_context(|| format!("dynalite {action}"))?;
        Ok(response.into_body().read_to_string()?)
    }
}

/// An order as the producer would send it.
fn order(customer: &str, order_id: &str, date: &str) -> Vec<u8> {
    json!({
        "customer_id": customer, "order_id": order_id, "order_date": date, "status": "paid",
        "shipping_address": {"street": "4 Elm St", "city": "Lake Anna", "state": "Ohio", "zip": "85921", "country": "Peru"},
        "purchase_details": {"payment_type": "credit_card", "amount": 42.5, "currency": "USD", "instalments": 3},
        "product_details": [
            {"product_id": "p1", "name": "clear", "quantity": 2, "item_details": {"color": "Azure", "size": "M"}},
            {"product_id": "p2", "name": "kettle", "quantity": 1, "item_details": {"color": "Teal", "size": "L"}}
        ]
    })
    .to_string()
    .into_bytes()
}

fn kinesis_event(records: &[(&str, Vec<u8>)]) -> Vec<u8> {
    orderflow_consumer::kinesis_event(
        &orderflow_consumer::EventSource::LOCAL,
        records
            .iter()
            .map(|(sequence, data)| orderflow_consumer::EventRecord {
                shard_id: "shardId-000000000000",
                partition_key: "c",
                sequence_number: sequence,
                data,
                arrival_ms: 1_717_848_000_250,
            }),
    )
}

fn firehose_event(records: &[Vec<u8>]) -> Vec<u8> {
    use orderflow_transformer::event_json::{EventRecord, EventSource, firehose_event};
    let record_ids: Vec<String> = (0..records.len()).map(|n| format!("record-{n}")).collect();
    firehose_event(
        &EventSource {
            delivery_stream_arn: "arn:aws:firehose:us-east-1:123456789012:deliverystream/x",
            source_kinesis_stream_arn: None,
            region: "us-east-1",
        },
        "smoke",
        records
            .iter()
            .zip(&record_ids)
            .map(|(data, record_id)| EventRecord {
                record_id,
                data,
                arrival_ms: 1_717_848_000_000,
                kinesis: None,
            }),
    )
}

/// Extracts each zip's `bootstrap` into `dir/<name>/bootstrap`.
fn unzip_all(dist: &Path, dir: &Path) -> Result<Vec<(String, PathBuf)>> {
    let mut out = Vec::new();
    for name in crate::lambdas::Lambdas::read()?.names() {
        let zip = std::fs::read(dist.join(format!("{name}.zip")))
            .with_context(|| format!("{name}.zip in {}", dist.display()))?;
        let mut archive = zip::ZipArchive::new(Cursor::new(zip))?;
        ensure!(archive.len() == 1, "{name}.zip must hold exactly one file");
        let mut entry = archive
            .by_name("bootstrap")
            .with_context(|| format!("{name}.zip has no bootstrap"))?;
        ensure!(
            entry.unix_mode() == Some(0o100755),
            "{name}.zip: bootstrap is not mode 0755"
        );
        let mut bytes = Vec::new();
        entry.read_to_end(&mut bytes)?;
        let path = dir.join(name).join("bootstrap");
        std::fs::create_dir_all(path.parent().expect("a parent"))?;
        std::fs::write(&path, bytes)?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))?;
        out.push((name.to_owned(), path));
    }
    Ok(out)
}

fn check(name: &str, ok: bool, what: &str) -> Result<()> {
    if ok {
        eprintln!("xtask: smoke: {name}: ok: {what}");
        Ok(())
    } else {
        bail!("{name}: FAILED: {what}")
    }
}

/// The smoke tests of the real arm64 artifacts in `dist`.
pub(crate) fn smoke(root: &Path, dist: &Path) -> Result<()> {
    let started = Instant::now();
    // Removed when dropped, also when a check fails.
    let work = tempfile::Builder::new()
        .prefix("orderflow-smoke-")
        .tempdir()?;
    let functions = unzip_all(dist, work.path())?;
    let lambdas = crate::lambdas::Lambdas::read()?;
    let dynalite = Dynalite::start(root)?;
    let table = "orders-smoke";
    dynalite.create_orders_table(table)?;
    let aws_env = [
        ("AWS_ENDPOINT_URL_DYNAMODB", dynalite.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
    ];
    for (name, program) in &functions {
        let Some(table_name) = lambdas.table_of(name) else {
            let batch = kinesis_event(&[
                ("101", order("c1", "o1", "2024-06-08T18:05:03Z")),
                ("102", b"{not json".to_vec()),
                ("103", order("c2", "o2", "2024-06-08T23:30:00-02:00")),
                ("104", order("c1", "o1", "2024-06-08T18:05:03Z")),
            ]);
            let mut env = aws_env.to_vec();
            env.push(("ORDERS_TABLE", table));
            let replies = invoke(
                program,
                true,
                vec![batch.clone(), b"{\"Records\": 5}".to_vec()],
                2,
                &env,
            )?;
            check(
                name,
                replies[0] == Reply::Response(json!({"batchItemFailures": []})),
                "a valid batch has no batchItemFailures",
            )?;
            let items = dynalite.call("Scan", json!({"TableName": table}))?;
            check(
                name,
                items["Count"] == 2,
                "DynamoDB holds the two distinct orders (duplicate collapsed, invalid skipped)",
            )?;
            let item = items["Items"]
                .as_array()
                .into_iter()
                .flatten()
                .find(|i| i["order_id"]["S"] == "o1");
            check(
                name,
                item.is_some_and(|i| {
                    i["source_sequence_number"]["S"] == "104"
                        && i["purchase_details"]["M"]["amount"]["N"] == "42.5"
                }),
                "the item keeps the highest sequence number and the exact amount",
            )?;
            check(
                name,
                matches!(replies[1], Reply::Error(_)),
                "an invalid event is a Lambda error",
            )?;
            let mut env = aws_env.to_vec();
            env.push(("ORDERS_TABLE", "no-such-table"));
            let replies = invoke(program, true, vec![batch], 1, &env)?;
            let failures = json!({"batchItemFailures": [{"itemIdentifier": "103"}, {"itemIdentifier": "104"}]});
            check(
                name,
                replies[0] == Reply::Response(failures),
                "unwritable records come back in batchItemFailures by sequence number",
            )?;
            let replies = invoke(program, true, vec![], 1, &aws_env)?;
            check(
                name,
                matches!(&replies[0], Reply::InitError(body) if body["errorMessage"].as_str().is_some_and(|m| m.contains("ORDERS_TABLE"))),
                "a missing ORDERS_TABLE is an init error naming it",
            )?;
            continue;
        };
        let event = firehose_event(&[
            order("c1", "o1", "2024-06-08T23:30:00-02:00"),
            b"garbage".to_vec(),
            order("c2", "o2", "2024-01-31T00:00:00Z"),
        ]);
        let replies = invoke(program, true, vec![event, b"[]".to_vec()], 2, &[])?;
        let Reply::Response(response) = &replies[0] else {
            bail!("{name}: no response: {:?}", replies[0])
        };
        let records = response["records"].as_array().context("records")?;
        let results: Vec<&str> = records
            .iter()
            .map(|r| r["result"].as_str().unwrap_or(""))
            .collect();
        check(
            name,
            results == ["Ok", "ProcessingFailed", "Ok"],
            "one answer per record, in order",
        )?;
        check(
            name,
            records[0]["metadata"]["partitionKeys"]
                == json!({"year": "2024", "month": "06", "day": "09"})
                && records[2]["metadata"]["partitionKeys"]
                    == json!({"year": "2024", "month": "01", "day": "31"}),
            "partition keys are the UTC day of order_date",
        )?;
        let rows = B64.decode(records[0]["data"].as_str().unwrap_or(""))?;
        let expected_rows = if table_name == "product_details" {
            2
        } else {
            1
        };
        check(
            name,
            rows.split(|b| *b == b'\n')
                .filter(|l| !l.is_empty())
                .count()
                == expected_rows,
            "the table's rows as JSON lines",
        )?;
        check(
            name,
            B64.decode(records[1]["data"].as_str().unwrap_or(""))? == b"garbage",
            "a failed record keeps its bytes",
        )?;
        check(
            name,
            matches!(replies[1], Reply::Error(_)),
            "an invalid event is a Lambda error",
        )?;
    }
    eprintln!(
        "xtask: smoke: all five arm64 Lambdas passed under qemu in {:.0}s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// Cold starts of the native release binaries: process start to first response, 20 runs each.
pub(crate) fn coldstart(target_dir: &Path) -> Result<()> {
    let runs = 20;
    let lambdas = crate::lambdas::Lambdas::read()?;
    for name in lambdas.names() {
        let program = target_dir.join("release").join(name);
        ensure!(
            program.exists(),
            "{} is missing: cargo build --release --bins first",
            program.display()
        );
        let event = if lambdas.table_of(name).is_none() {
            kinesis_event(&[])
        } else {
            firehose_event(&[])
        };
        let env: &[(&str, &str)] = if lambdas.table_of(name).is_none() {
            &[
                ("ORDERS_TABLE", "t"),
                ("AWS_ACCESS_KEY_ID", "test"),
                ("AWS_SECRET_ACCESS_KEY", "test"),
            ]
        } else {
            &[]
        };
        let mut times = Vec::new();
        for _ in 0..runs {
            let api = RuntimeApi::start(vec![event.clone()])?;
            let spawned = Instant::now();
            let mut child = start_function(&program, false, &api, env)?;
            let replies = api.wait(1, Duration::from_secs(30));
            let _ = child.kill();
            let _ = child.wait();
            let Some((at, Reply::Response(_))) = replies.first() else {
                bail!("{name}: no response")
            };
            times.push(at.duration_since(spawned).as_secs_f64() * 1000.0);
        }
        times.sort_by(f64::total_cmp);
        println!(
            "{name}: cold start median {:.1} ms (min {:.1}, max {:.1}) over {runs} runs",
            times[runs / 2],
            times[0],
            times[runs - 1]
        );
    }
    Ok(())
}
