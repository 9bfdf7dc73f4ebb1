//! `cargo xtask lambda-bench`: each native release Lambda binary run as Lambda runs it, against a
//! local Runtime API that serves the same event again and again, timed from outside the process.
//!
//! - init: process spawn to its first `GET /runtime/invocation/next`;
//! - invocation: the moment the Runtime API starts sending the event (the answer to `/next`) to
//!   the moment it has read the whole `POST .../response` body. This is what Lambda bills: the
//!   event's transfer and decoding, the work, the response's encoding and transfer.
//!
//! The transformers get a Firehose event of about 4 MB of generated orders; the consumer gets a
//! 1,000-record Kinesis event and writes into an in-memory dynalite. For the consumer the same
//! run also measures the floor: a bare loop of the same conditional `PutItem` requests (the items
//! it stored, read back with `Scan`, with its condition) at the same concurrency against the same
//! dynalite, so the consumer's own overhead is the difference.

use std::collections::VecDeque;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail, ensure};
use serde_json::{Value, json};

use crate::smoke::Dynalite;

/// Options of `cargo xtask lambda-bench`.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct Options {
    /// Timed invocations per binary (one untimed warm-up invocation comes first).
    #[arg(long, default_value_t = 30, value_parser = at_least_one)]
    pub invocations: usize,
    /// Run `cargo build --release` for the five binaries first (`--no-build`: use what is built).
    #[arg(long = "no-build", action = clap::ArgAction::SetFalse)]
    pub build: bool,
    /// Only this binary (repeatable; all five when none is named).
    #[arg(long)]
    pub only: Vec<String>,
    /// Also run the binaries in this directory (e.g. copies built from `main`), each right
    /// before its counterpart, labelled `baseline`.
    #[arg(long)]
    pub baseline: Option<PathBuf>,
}

/// A count of at least 1, for `--invocations`.
fn at_least_one(text: &str) -> Result<usize, String> {
    match text.parse::<usize>() {
        Ok(count) if count >= 1 => Ok(count),
        _ => Err(format!("`{text}` is not a whole number of at least 1")),
    }
}

/// One timed exchange with the Runtime API.
#[derive(Debug, Clone)]
pub(crate) struct Exchange {
    /// Event sent (start of the `/next` answer) to response body read.
    pub invocation: Duration,
    /// Size of the response body in bytes.
    pub response_bytes: usize,
    /// Whether the function posted to `/response` (not `/error`).
    pub ok: bool,
    /// The response body (kept only for the first invocation, to check it).
    pub body: Option<Vec<u8>>,
}

/// What a benchmark run of one function saw.
#[derive(Debug)]
pub(crate) struct Run {
    /// Spawn to the first `GET /next`.
    pub init: Duration,
    /// Every invocation, in order.
    pub exchanges: Vec<Exchange>,
}

/// A Runtime API for benchmarks: plain HTTP/1.1 on a loopback port, one connection at a time,
/// keep-alive, the same event for every `/next`, timestamps taken on this side of the socket.
pub(crate) struct BenchApi {
    listener: std::net::TcpListener,
    /// `host:port`, the value of `AWS_LAMBDA_RUNTIME_API`.
    pub address: String,
}

/// One parsed HTTP request: method, path, body.
struct HttpRequest {
    method: String,
    path: String,
    body: Vec<u8>,
}

/// Reads one HTTP/1.1 request (head and `Content-Length` body) from `reader`; `None` at EOF.
fn read_request(
    reader: &mut std::io::BufReader<std::net::TcpStream>,
) -> Result<Option<HttpRequest>> {
    use std::io::BufRead;
    let mut line = String::new();
    if reader.read_line(&mut line)? == 0 {
        return Ok(None);
    }
    let mut parts = line.split_whitespace();
    let method = parts.next().context("HTTP method")?.to_owned();
    let path = parts.next().context("HTTP path")?.to_owned();
    let mut length = 0usize;
    let mut chunked = false;
    loop {
        line.clear();
        ensure!(
            reader.read_line(&mut line)? > 0,
            "connection closed in the head"
        );
        let header = line.trim_end();
        if header.is_empty() {
            break;
        }
        if let Some((name, value)) = header.split_once(':') {
            let value = value.trim();
            if name.eq_ignore_ascii_case("content-length") {
                length = value.parse().context("Content-Length")?;
            } else if name.eq_ignore_ascii_case("transfer-encoding") {
                chunked = value.eq_ignore_ascii_case("chunked");
            }
        }
    }
    // Zeroed buffers come from `vec![0; n]` (one allocation of zeroed memory), not from
    // `Vec::resize`: xtask is built without optimisation, where `resize` writes byte by byte,
    // about 3 ms per MB, all of it inside the timed read of the response.
    let mut body = Vec::new();
    if chunked {
        loop {
            line.clear();
            reader.read_line(&mut line)?;
            let size = usize::from_str_radix(line.trim().split(';').next().unwrap_or("0"), 16)
                .context("chunk size")?;
            let mut chunk = vec![0; size];
            reader.read_exact(&mut chunk)?;
            body.extend_from_slice(&chunk);
            line.clear();
            reader.read_line(&mut line)?;
            if size == 0 {
                break;
            }
        }
    } else {
        body = vec![0; length];
        reader.read_exact(&mut body)?;
    }
    Ok(Some(HttpRequest { method, path, body }))
}

impl BenchApi {
    /// Binds a loopback port.
    pub(crate) fn bind() -> Result<BenchApi> {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").context("binding 127.0.0.1")?;
        let address = listener.local_addr()?.to_string();
        Ok(BenchApi { listener, address })
    }

    /// Serves `event` `count` times to the function that `spawn` starts, then returns the
    /// timings. The function is expected to call `/next` again after its last response: that
    /// call is left unanswered and the function is killed by the caller.
    pub(crate) fn serve(
        self,
        event: &[u8],
        count: usize,
        timeout: Duration,
        spawned: Instant,
    ) -> Result<Run> {
        use std::io::Write;
        let (sender, receiver) = mpsc::channel();
        let listener = self.listener;
        let event = event.to_vec();
        std::thread::spawn(move || {
            let result = (|| -> Result<Run> {
                let mut init = None;
                let mut exchanges = Vec::with_capacity(count);
                let mut sent_at: Option<Instant> = None;
                let mut pending: VecDeque<std::net::TcpStream> = VecDeque::new();
                let (stream, _) = listener.accept().context("accepting the function")?;
                stream.set_nodelay(true)?;
                pending.push_back(stream);
                // lambda_runtime keeps one connection alive; a client that opens another one is
                // served on it from then on.
                listener.set_nonblocking(true)?;
                while let Some(stream) = pending.pop_front() {
                    let mut writer = stream.try_clone()?;
                    let mut reader = std::io::BufReader::with_capacity(1 << 16, stream);
                    loop {
                        let Some(request) = read_request(&mut reader)? else {
                            break;
                        };
                        let now = Instant::now();
                        if request.method == "GET" && request.path.ends_with("/invocation/next") {
                            if init.is_none() {
                                init = Some(now.duration_since(spawned));
                            }
                            if exchanges.len() == count {
                                return Ok(Run {
                                    init: init.expect("set above"),
                                    exchanges,
                                });
                            }
                            let deadline = std::time::SystemTime::now()
                                .duration_since(std::time::UNIX_EPOCH)?
                                .as_millis()
                                + 60_000;
                            let n = exchanges.len();
                            let head = format!(
                                "HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n\
                                 Lambda-Runtime-Aws-Request-Id: bench-{n}\r\n\
                                 Lambda-Runtime-Deadline-Ms: {deadline}\r\n\
                                 Lambda-Runtime-Invoked-Function-Arn: arn:aws:lambda:us-east-1:123456789012:function:bench\r\n\
                                 Lambda-Runtime-Trace-Id: Root=1-00000000-000000000000000000000000\r\n\
                                 Content-Length: {}\r\n\r\n",
                                event.len()
                            );
                            sent_at = Some(Instant::now());
                            writer.write_all(head.as_bytes())?;
                            writer.write_all(&event)?;
                            writer.flush()?;
                        } else if request.method == "POST" {
                            let ok = request.path.ends_with("/response");
                            let Some(started) = sent_at.take() else {
                                bail!("{} {} before any event", request.method, request.path);
                            };
                            exchanges.push(Exchange {
                                invocation: now.duration_since(started),
                                response_bytes: request.body.len(),
                                ok,
                                body: exchanges.is_empty().then_some(request.body),
                            });
                            writer.write_all(
                                b"HTTP/1.1 202 Accepted\r\nContent-Type: application/json\r\nContent-Length: 16\r\n\r\n{\"status\":\"OK\"}\n",
                            )?;
                            writer.flush()?;
                        } else {
                            bail!("unexpected {} {}", request.method, request.path);
                        }
                        if let Ok((stream, _)) = listener.accept() {
                            stream.set_nonblocking(false)?;
                            stream.set_nodelay(true)?;
                            pending.push_back(stream);
                        }
                    }
                    if pending.is_empty() {
                        listener.set_nonblocking(false)?;
                        let (stream, _) = listener.accept()?;
                        stream.set_nodelay(true)?;
                        pending.push_back(stream);
                        listener.set_nonblocking(true)?;
                    }
                }
                bail!("the function closed its connection")
            })();
            let _ = sender.send(result);
        });
        match receiver.recv_timeout(timeout) {
            Ok(result) => result,
            Err(_) => bail!("no result within {} s", timeout.as_secs()),
        }
    }
}

/// Starts a native Lambda binary against `api`; under the command in `LAMBDA_BENCH_WRAPPER`
/// when set (e.g. `valgrind --tool=callgrind --callgrind-out-file=/tmp/cg.%p`, to count
/// instructions, which do not depend on the machine's load).
fn spawn(program: &Path, api: &str, env: &[(&str, &str)]) -> Result<Child> {
    let wrapper = std::env::var("LAMBDA_BENCH_WRAPPER").unwrap_or_default();
    let mut words = wrapper.split_whitespace();
    let mut command = match words.next() {
        Some(tool) => {
            let mut command = Command::new(tool);
            command.args(words).arg(program);
            command
        }
        None => Command::new(program),
    };
    command
        .env_clear()
        .env("AWS_LAMBDA_RUNTIME_API", api)
        .env("AWS_LAMBDA_FUNCTION_NAME", "bench")
        .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "1769")
        .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
        .env("AWS_LAMBDA_LOG_STREAM_NAME", "bench")
        .env("AWS_LAMBDA_LOG_GROUP_NAME", "bench")
        .env("AWS_LAMBDA_LOG_FORMAT", "JSON")
        .env("AWS_REGION", "us-east-1")
        .envs(env.iter().copied())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .with_context(|| format!("starting {}", program.display()))
}

/// Runs `program` on `event` `1 + invocations` times; the first invocation is a warm-up and is
/// dropped from the invocation times (it is still the one whose body is returned for checks).
pub(crate) fn run_function(
    program: &Path,
    event: &[u8],
    invocations: usize,
    env: &[(&str, &str)],
) -> Result<Run> {
    let api = BenchApi::bind()?;
    let address = api.address.clone();
    let spawned = Instant::now();
    let mut child = spawn(program, &address, env)?;
    let run = api.serve(event, invocations + 1, Duration::from_secs(600), spawned);
    // The Runtime API has closed the connection: lambda_runtime's loop then ends and the process
    // exits, which a wrapper such as callgrind needs to write its results. Otherwise, or if it
    // does not exit, it is killed.
    if std::env::var_os("LAMBDA_BENCH_WRAPPER").is_some() {
        let waited = Instant::now();
        while child.try_wait()?.is_none() && waited.elapsed() < Duration::from_secs(60) {
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    let _ = child.kill();
    let _ = child.wait();
    run
}

/// Milliseconds with one decimal.
fn ms(duration: Duration) -> f64 {
    duration.as_secs_f64() * 1000.0
}

/// Median, min and max of `values`.
fn stats(mut values: Vec<Duration>) -> (Duration, Duration, Duration) {
    values.sort();
    (
        values[values.len() / 2],
        values[0],
        values[values.len() - 1],
    )
}

/// Prints one line of results.
fn report(name: &str, what: &str, run: &Run) {
    let timed: Vec<Duration> = run.exchanges[1..].iter().map(|e| e.invocation).collect();
    let (median, min, max) = stats(timed.clone());
    println!(
        "{name}: init {:.1} ms; {what}: median {:.2} ms (min {:.2}, max {:.2}) over {} invocations, response {} bytes",
        ms(run.init),
        ms(median),
        ms(min),
        ms(max),
        timed.len(),
        run.exchanges[0].response_bytes,
    );
}

/// The floor for the consumer: the same conditional `PutItem` calls it makes, from a bare loop
/// with `concurrency` requests in flight, timed per round of every item.
fn put_floor(
    dynalite: &Dynalite,
    table: &str,
    items: &[Value],
    concurrency: usize,
) -> Result<Duration> {
    let bodies: Vec<String> = items
        .iter()
        .map(|item| {
            let sequence = item["source_sequence_number"]["S"].as_str().unwrap_or("");
            json!({
                "TableName": table,
                "Item": item,
                "ConditionExpression": "attribute_not_exists(#seq) OR size(#seq) < :seq_len OR (size(#seq) = :seq_len AND #seq <= :seq)",
                "ExpressionAttributeNames": {"#seq": "source_sequence_number"},
                "ExpressionAttributeValues": {":seq": {"S": sequence}, ":seq_len": {"N": sequence.len().to_string()}}
            })
            .to_string()
        })
        .collect();
    let next = std::sync::atomic::AtomicUsize::new(0);
    let started = Instant::now();
    std::thread::scope(|scope| -> Result<()> {
        let workers: Vec<_> = (0..concurrency)
            .map(|_| {
                scope.spawn(|| -> Result<()> {
                    let agent = ureq::Agent::new_with_defaults();
                    loop {
                        let index = next.fetch_add(1, std::sync::atomic::Ordering::Relaxed);
                        let Some(body) = bodies.get(index) else {
                            return Ok(());
                        };
                        dynalite.call_with(&agent, "PutItem", body)?;
                    }
                })
            })
            .collect();
        for worker in workers {
            worker.join().expect("a floor worker panicked")?;
        }
        Ok(())
    })?;
    Ok(started.elapsed())
}

/// `cargo xtask lambda-bench`.
pub(crate) fn run(root: &Path, target_dir: &Path, options: &Options) -> Result<()> {
    if options.build {
        // Each package on its own, as `cargo xtask lambdas` builds the deployed binaries.
        for (package, bins) in crate::lambdas::Lambdas::read()?.packages(root)? {
            let mut args = vec!["build", "--locked", "--release", "-p", &package];
            args.extend(bins.iter().flat_map(|bin| ["--bin", bin.as_str()]));
            crate::step("release build", "cargo", &args)?;
        }
    }
    let mut dirs = Vec::new();
    if let Some(baseline) = &options.baseline {
        dirs.push(("baseline", baseline.clone()));
    }
    dirs.push(("current", target_dir.join("release")));
    let binary = |dir: &Path, name: &str| -> Result<PathBuf> {
        let path = dir.join(name);
        ensure!(path.exists(), "{} is missing", path.display());
        Ok(path)
    };
    let selected = |name: &str| options.only.is_empty() || options.only.iter().any(|o| o == name);
    let (firehose, records) = orderflow_transformer::sample_event(4_000_000);
    println!(
        "firehose event: {} bytes, {records} generated orders; {} timed invocations per binary after one warm-up",
        firehose.len(),
        options.invocations
    );
    let lambdas = crate::lambdas::Lambdas::read()?;
    for name in lambdas.transformers.values().map(String::as_str) {
        if !selected(name) {
            continue;
        }
        for (label, dir) in &dirs {
            let run = run_function(&binary(dir, name)?, &firehose, options.invocations, &[])?;
            ensure!(
                run.exchanges.iter().all(|e| e.ok),
                "{label} {name}: an invocation failed"
            );
            let first: Value =
                serde_json::from_slice(run.exchanges[0].body.as_deref().unwrap_or(b""))
                    .with_context(|| format!("{label} {name}: response JSON"))?;
            let answers = first["records"].as_array().map_or(0, Vec::len);
            ensure!(
                answers == records,
                "{label} {name}: {answers} answers to {records} records"
            );
            report(&format!("{label} {name}"), "invocation", &run);
        }
    }
    if selected(&lambdas.consumer) {
        let dynalite = Dynalite::start(root)?;
        for (label, dir) in &dirs {
            consumer(
                &dynalite,
                label,
                &binary(dir, &lambdas.consumer)?,
                options.invocations,
            )?;
        }
    }
    Ok(())
}

/// The consumer against an in-memory dynalite (its own table), and the floor of the same writes.
fn consumer(dynalite: &Dynalite, label: &str, program: &Path, invocations: usize) -> Result<()> {
    let records = 1_000;
    let event = orderflow_consumer::sample_event(records);
    let table = &format!("orders-bench-{label}");
    dynalite.create_orders_table(table)?;
    let env = [
        ("AWS_ENDPOINT_URL_DYNAMODB", dynalite.endpoint.as_str()),
        ("AWS_ACCESS_KEY_ID", "test"),
        ("AWS_SECRET_ACCESS_KEY", "test"),
        ("ORDERS_TABLE", table),
    ];
    let run = run_function(program, &event, invocations, &env)?;
    ensure!(
        run.exchanges.iter().all(|e| e.ok),
        "{label} consumer: an invocation failed"
    );
    let first: Value = serde_json::from_slice(run.exchanges[0].body.as_deref().unwrap_or(b""))?;
    ensure!(
        first == json!({"batchItemFailures": []}),
        "{label} consumer: unexpected response {first}"
    );
    let mut items = Vec::new();
    let mut start: Option<Value> = None;
    loop {
        let mut request = json!({"TableName": table});
        if let Some(key) = start.take() {
            request["ExclusiveStartKey"] = key;
        }
        let page = dynalite.call("Scan", request)?;
        items.extend(page["Items"].as_array().cloned().unwrap_or_default());
        match page.get("LastEvaluatedKey") {
            Some(key) if !key.is_null() => start = Some(key.clone()),
            _ => break,
        }
    }
    ensure!(
        items.len() == records,
        "consumer: {} items stored, expected {records}",
        items.len()
    );
    report(
        &format!("{label} consumer"),
        &format!("invocation ({records} records, conditional PutItem each)"),
        &run,
    );
    let floor: Vec<Duration> = (0..invocations)
        .map(|_| put_floor(dynalite, table, &items, 32))
        .collect::<Result<_>>()?;
    let (median, min, max) = stats(floor);
    let consumer = stats(run.exchanges[1..].iter().map(|e| e.invocation).collect()).0;
    println!(
        "{label} dynalite floor: the same {records} conditional PutItem calls, 32 in flight, bare loop: median {:.2} ms (min {:.2}, max {:.2}) over {invocations} rounds; consumer / floor = {:.2}",
        ms(median),
        ms(min),
        ms(max),
        consumer.as_secs_f64() / median.as_secs_f64()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::{BufRead, BufReader, Write};
    use std::net::TcpStream;

    /// A minimal function: `/next`, then posts the event's length back, on one kept-alive
    /// connection, as lambda_runtime does.
    fn fake_function(address: String, invocations: usize) {
        let stream = TcpStream::connect(&address).unwrap();
        let mut writer = stream.try_clone().unwrap();
        let mut reader = BufReader::new(stream);
        for _ in 0..=invocations {
            write!(
                writer,
                "GET /2018-06-01/runtime/invocation/next HTTP/1.1\r\nHost: {address}\r\n\r\n"
            )
            .unwrap();
            let mut length = 0;
            let mut request_id = String::new();
            loop {
                let mut line = String::new();
                if reader.read_line(&mut line).unwrap() == 0 {
                    return;
                }
                let line = line.trim_end();
                if line.is_empty() {
                    break;
                }
                if let Some(value) = line.strip_prefix("Content-Length: ") {
                    length = value.parse().unwrap();
                }
                if let Some(value) = line.strip_prefix("Lambda-Runtime-Aws-Request-Id: ") {
                    request_id = value.to_owned();
                }
            }
            let mut body = vec![0; length];
            reader.read_exact(&mut body).unwrap();
            let answer = format!("{{\"length\":{length}}}");
            write!(
                writer,
                "POST /2018-06-01/runtime/invocation/{request_id}/response HTTP/1.1\r\nHost: {address}\r\nContent-Length: {}\r\n\r\n{answer}",
                answer.len()
            )
            .unwrap();
            let mut status = String::new();
            reader.read_line(&mut status).unwrap();
            assert!(status.starts_with("HTTP/1.1 202"), "{status}");
            loop {
                let mut line = String::new();
                reader.read_line(&mut line).unwrap();
                if line.trim_end().is_empty() {
                    break;
                }
            }
            let mut ack = [0u8; 16];
            reader.read_exact(&mut ack).unwrap();
        }
    }

    #[test]
    fn the_runtime_api_serves_the_event_and_times_each_round_trip() {
        let api = BenchApi::bind().unwrap();
        let address = api.address.clone();
        let started = Instant::now();
        let function = std::thread::spawn(move || fake_function(address, 2));
        let event = br#"{"records":[]}"#;
        let run = api
            .serve(event, 2, Duration::from_secs(30), started)
            .unwrap();
        function.join().unwrap();
        assert_eq!(run.exchanges.len(), 2);
        assert!(run.exchanges.iter().all(|e| e.ok));
        assert_eq!(
            run.exchanges[0].body.as_deref(),
            Some(format!("{{\"length\":{}}}", event.len()).as_bytes())
        );
        assert!(run.exchanges[1].body.is_none());
        assert!(run.init <= started.elapsed());
        assert!(run.exchanges.iter().all(|e| e.invocation > Duration::ZERO));
    }
}
