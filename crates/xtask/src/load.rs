//! `cargo xtask load`: the twin's API under `wrk` (Debian's package), the single and the batch
//! route one after the other, each for `--seconds` at `--connections` connections, every order
//! unique (a counter per `wrk` thread). Counts each answer by status and the orders acknowledged
//! (`200`, and the taken records of a `207`), then waits for the pipeline to drain and checks end
//! to end: the stream holds every acknowledged record (and at most the requests still in flight
//! when wrk stopped besides), and the DynamoDB table and the orders table hold every record of
//! the stream, one item and one row per order. Fails on any `5xx` other than `503` with `Retry-After` (the stream's
//! write queue is full: nothing was taken) and on any loss; reports p50/p99 latency per route and
//! the twin's peak resident memory (`VmHWM`).
//!
//! The twin runs with its Kinesis limits (two shards: 1,000 records and 1 MiB a second each), as
//! AWS would answer: past them the single route answers `429` (as API Gateway's integration
//! response does: no `Retry-After`; the producer backs off with jitter) and the batch route `207`
//! naming the refused records. `--no-limits` lifts them, so the stream's own write
//! queue is the limit.

use std::fmt::Write as _;
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context, Result, ensure};
use orderflow_domain::{GeneratorConfig, OrderGenerator};
use serde_json::Value;

/// What to run.
#[derive(Debug, Clone, PartialEq, Eq, clap::Args)]
pub(crate) struct Options {
    /// Seconds per route.
    #[arg(long, default_value_t = 60)]
    pub(crate) seconds: u64,
    /// wrk connections.
    #[arg(long, default_value_t = 256)]
    pub(crate) connections: u32,
    /// Orders per batch request (1 to 500).
    #[arg(long, default_value_t = 100, value_parser = clap::value_parser!(u16).range(1..=500))]
    pub(crate) batch: u16,
    /// Lift the twin's Kinesis limits.
    #[arg(long)]
    pub(crate) no_limits: bool,
}

/// The wrk script: unique orders from a template, answers counted per thread, one `LOAD {json}`
/// line at the end.
const SCRIPT: &str = r#"
local threads = {}
function setup(thread)
  thread:set("tid", #threads + 1)
  table.insert(threads, thread)
end
function init(args)
  route = args[1]
  batch = tonumber(args[2])
  counter = 0
  acked = 0
  statuses = {}
  retry_after_missing = 0
end
local function order()
  counter = counter + 1
  local id = route .. "-" .. tid .. "-" .. counter
  return (TEMPLATE:gsub("__ORDER__", "load-" .. id):gsub("__CUSTOMER__", "c" .. (counter % 997) .. "-" .. tid))
end
function request()
  if route == "single" then
    return wrk.format("POST", "/v1/orders", nil, order())
  end
  local orders = {}
  for i = 1, batch do orders[i] = order() end
  return wrk.format("POST", "/v1/orders/batch", nil, '{"orders":[' .. table.concat(orders, ",") .. ']}')
end
function response(status, headers, body)
  statuses[status] = (statuses[status] or 0) + 1
  local sent = (route == "single") and 1 or batch
  if status == 200 then
    acked = acked + sent
  elseif status == 207 then
    local failed = tonumber(body:match('"failed_record_count"%s*:%s*(%d+)') or body:match('"FailedRecordCount"%s*:%s*(%d+)'))
    acked = acked + sent - failed
  end
  if status == 503 and headers["Retry-After"] == nil and headers["retry-after"] == nil then
    retry_after_missing = retry_after_missing + 1
  end
end
function done(summary, latency, requests)
  local acked_all, missing, merged = 0, 0, {}
  for _, thread in ipairs(threads) do
    acked_all = acked_all + thread:get("acked")
    missing = missing + thread:get("retry_after_missing")
    for status, count in pairs(thread:get("statuses")) do
      merged[status] = (merged[status] or 0) + count
    end
  end
  local parts = {}
  for status, count in pairs(merged) do table.insert(parts, '"' .. status .. '":' .. count) end
  io.write(string.format('LOAD {"acked":%d,"requests":%d,"socket_errors":%d,"retry_after_missing":%d,"p50_us":%d,"p99_us":%d,"statuses":{%s}}\n',
    acked_all, summary.requests, summary.errors.connect + summary.errors.read + summary.errors.write + summary.errors.timeout,
    missing, latency:percentile(50), latency:percentile(99), table.concat(parts, ",")))
end
"#;

/// One route's result.
struct RouteResult {
    route: &'static str,
    acked: u64,
    requests: u64,
    p50_ms: f64,
    p99_ms: f64,
    statuses: Vec<(u16, u64)>,
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

struct KillOnDrop(Child);

impl Drop for KillOnDrop {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// The twin's peak resident memory in KiB (`VmHWM`).
fn peak_rss_kib(pid: u32) -> Option<u64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    status
        .lines()
        .find_map(|line| line.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn get_json(url: &str, key: &str) -> Result<Value> {
    let body = ureq::get(url)
        .header("x-api-key", key)
        .call()
        .with_context(|| format!("GET {url}"))?
        .body_mut()
        .read_to_string()?;
    Ok(serde_json::from_str(&body)?)
}

/// Runs the load test from the repository `root`.
pub(crate) fn run(root: &Path, options: &Options) -> Result<()> {
    ensure!(
        Command::new("wrk").arg("--version").output().is_ok(),
        "wrk is not installed (Debian: apt-get install wrk)"
    );
    crate::node_packages()?;
    let binary = crate::build_twin()?;
    let work = tempfile::tempdir()?;
    let port = free_port()?;
    let key = "load-test-key";
    let log = std::fs::File::create(work.path().join("twin.log"))?;
    let mut command = Command::new(&binary);
    command
        .current_dir(root)
        .arg("--data-dir")
        .arg(work.path().join("twin"))
        .args(["up", "--port", &port.to_string(), "--api-key", key])
        .env("RUST_LOG", "warn")
        .stdout(log.try_clone()?)
        .stderr(log);
    if options.no_limits {
        command.arg("--no-limits");
    }
    let twin = KillOnDrop(command.spawn().context("starting the twin")?);
    let pid = twin.0.id();
    let base = format!("http://127.0.0.1:{port}");
    let started = Instant::now();
    while get_json(&format!("{base}/_twin/status"), key).is_err() {
        ensure!(
            started.elapsed() < Duration::from_secs(120),
            "the twin did not answer within 120 s (log: {})",
            work.path().join("twin.log").display()
        );
        std::thread::sleep(Duration::from_millis(200));
    }

    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(11));
    let mut template: Value = serde_json::from_slice(&generator.next_order().to_json())?;
    template["order_id"] = "__ORDER__".into();
    template["customer_id"] = "__CUSTOMER__".into();
    let template = template.to_string();
    let script = work.path().join("load.lua");
    std::fs::write(&script, format!("TEMPLATE = [==[{template}]==]\n{SCRIPT}"))?;
    let threads = 2.min(options.connections);
    let mut results = Vec::new();
    for (route, batch) in [("single", 1), ("batch", options.batch)] {
        let output = Command::new("wrk")
            .args([
                "-t",
                &threads.to_string(),
                "-c",
                &options.connections.to_string(),
                "-d",
                &format!("{}s", options.seconds),
                "--timeout",
                "30s",
                "-H",
                &format!("x-api-key: {key}"),
                "-H",
                "content-type: application/json",
                "-s",
            ])
            .arg(&script)
            .arg(&base)
            .args(["--", route, &batch.to_string()])
            .stderr(Stdio::inherit())
            .output()
            .context("running wrk")?;
        let text = String::from_utf8_lossy(&output.stdout);
        ensure!(output.status.success(), "wrk failed: {text}");
        let line = text
            .lines()
            .find_map(|line| line.strip_prefix("LOAD "))
            .with_context(|| format!("wrk printed no result: {text}"))?;
        let answer: Value = serde_json::from_str(line)?;
        let number = |name: &str| answer[name].as_u64().unwrap_or(0);
        let mut statuses: Vec<(u16, u64)> = answer["statuses"]
            .as_object()
            .map(|m| {
                m.iter()
                    .filter_map(|(k, v)| Some((k.parse().ok()?, v.as_u64()?)))
                    .collect()
            })
            .unwrap_or_default();
        statuses.sort();
        ensure!(
            number("socket_errors") == 0,
            "{route}: {} socket errors",
            number("socket_errors")
        );
        ensure!(
            number("retry_after_missing") == 0,
            "{route}: {} 503 answers without Retry-After",
            number("retry_after_missing")
        );
        for (status, count) in &statuses {
            ensure!(
                !(500..600).contains(status) || *status == 503,
                "{route}: {count} answers {status}"
            );
        }
        results.push(RouteResult {
            route,
            acked: number("acked"),
            requests: number("requests"),
            p50_ms: number("p50_us") as f64 / 1000.0,
            p99_ms: number("p99_us") as f64 / 1000.0,
            statuses,
        });
    }
    let acked: u64 = results.iter().map(|r| r.acked).sum();

    // Drain: every reader of every shard at the tip, and DynamoDB holding every order.
    let drain = Instant::now();
    let mut idle_since: Option<Instant> = None;
    let status = loop {
        let status = get_json(&format!("{base}/_twin/status"), key)?;
        let shards = status["shards"].as_array().cloned().unwrap_or_default();
        let lag: u64 = shards
            .iter()
            .flat_map(|s| {
                s["lag"]
                    .as_object()
                    .map(|m| m.values().filter_map(Value::as_u64).sum::<u64>())
            })
            .sum();
        let items = status["dynamodb_items"].as_u64().unwrap_or(0);
        if drain.elapsed().as_secs() % 30 < 2 {
            eprintln!("xtask: load: draining: lag {lag}, {items} of {acked} orders in DynamoDB");
        }
        let in_stream: u64 = shards.iter().filter_map(|s| s["records"].as_u64()).sum();
        let rows = status["tables"]
            .as_array()
            .and_then(|tables| tables.iter().find(|t| t["table"] == "orders"))
            .and_then(|t| t["rows"].as_u64())
            .unwrap_or(0);
        if lag == 0 && items >= in_stream && rows >= in_stream {
            break status;
        }
        // Idle (every reader at the tip) with fewer items: give the item count (at most a second
        // old) time, then stop waiting and report the difference.
        if lag == 0
            && idle_since.get_or_insert_with(Instant::now).elapsed() > Duration::from_secs(10)
        {
            break status;
        }
        ensure!(
            drain.elapsed() < Duration::from_secs(1800),
            "the pipeline did not drain within 30 min: lag {lag}, {items} of {acked} items"
        );
        std::thread::sleep(Duration::from_secs(2));
    };
    let drained = drain.elapsed();
    // The item count is at most a second old: read it once more after the consumer went idle.
    std::thread::sleep(Duration::from_millis(1500));
    let status = get_json(&format!("{base}/_twin/status"), key).unwrap_or(status);
    let in_stream: u64 = status["shards"]
        .as_array()
        .map(|s| s.iter().filter_map(|s| s["records"].as_u64()).sum())
        .unwrap_or(0);
    let items = status["dynamodb_items"].as_u64().unwrap_or(0);
    let peak = peak_rss_kib(pid);

    let mut report = String::new();
    let _ = writeln!(
        report,
        "\nload on the twin's API: wrk, {} connections, {} s per route, batch {} orders, limits {}",
        options.connections,
        options.seconds,
        options.batch,
        if options.no_limits { "off" } else { "on" }
    );
    let _ = writeln!(
        report,
        "  {:<7} {:>9} {:>10} {:>8} {:>8}  answers",
        "route", "requests", "acked", "p50 ms", "p99 ms"
    );
    for r in &results {
        let answers: Vec<String> = r
            .statuses
            .iter()
            .map(|(s, n)| format!("{s}: {n}"))
            .collect();
        let _ = writeln!(
            report,
            "  {:<7} {:>9} {:>10} {:>8.1} {:>8.1}  {}",
            r.route,
            r.requests,
            r.acked,
            r.p50_ms,
            r.p99_ms,
            answers.join(", ")
        );
    }
    let _ = writeln!(
        report,
        "  end to end: {acked} orders acknowledged, {in_stream} records in the stream (the rest were in flight when wrk stopped), {items} items in DynamoDB, {} rows in the orders table (drained in {:.0} s)",
        status["tables"]
            .as_array()
            .and_then(|tables| tables.iter().find(|t| t["table"] == "orders"))
            .and_then(|t| t["rows"].as_u64())
            .unwrap_or(0),
        drained.as_secs_f64()
    );
    let _ = writeln!(
        report,
        "  twin peak RSS: {}",
        peak.map_or("unknown".into(), |kib| format!(
            "{:.0} MiB",
            kib as f64 / 1024.0
        ))
    );
    println!("{report}");
    // wrk stops at the deadline without reading the answers still in flight: those requests
    // may have been written without being counted, at most one request per connection.
    let in_flight = u64::from(options.connections) * u64::from(options.batch);
    ensure!(
        in_stream >= acked && in_stream - acked <= in_flight,
        "the stream holds {in_stream} records for {acked} acknowledged orders (at most {in_flight} more were in flight)"
    );
    ensure!(
        items == in_stream,
        "DynamoDB holds {items} items for the stream's {in_stream} records (one unique order each)"
    );
    let rows = status["tables"]
        .as_array()
        .and_then(|tables| tables.iter().find(|t| t["table"] == "orders"))
        .and_then(|t| t["rows"].as_u64())
        .unwrap_or(0);
    ensure!(
        rows == in_stream,
        "the orders table holds {rows} rows for the stream's {in_stream} records"
    );
    Ok(())
}
