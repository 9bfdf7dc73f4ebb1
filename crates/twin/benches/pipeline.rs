//! End-to-end throughput of the twin: orders per second through the API until they are in
//! DynamoDB and queryable in Parquet, and the time from the last accepted order to its rows being
//! queryable.
//!
//! `cargo bench -p orderflow-twin --bench pipeline --profile pipeline-bench [-- ORDERS RUNS]`
//! (defaults 50,000 orders, 3 runs; medians printed). The deployed settings are used except the
//! Firehose buffering interval, set to 1 s: with the deployed 60 s, rows become queryable when
//! the interval ends, by design. Kinesis' throughput limits are off (`--no-limits`): they would
//! measure the deployment's two shards, not the twin.

use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use orderflow_producer::{Stats, WorkloadConfig};
use orderflow_twin::settings::PipelineSettings;
use orderflow_twin::twin::{Twin, TwinOptions};
use tokio_util::sync::CancellationToken;

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

struct Run {
    send_seconds: f64,
    dynamodb_seconds: f64,
    parquet_seconds: f64,
    total_seconds: f64,
    last_to_queryable_seconds: f64,
}

async fn one_run(data_dir: &Path, orders: u64, seed: u64) -> anyhow::Result<Run> {
    let twin = Twin::start(TwinOptions {
        data_dir: data_dir.to_owned(),
        settings: PipelineSettings::built_in(),
        port: 0,
        api_key: None,
        dynamodb_endpoint: None,
        buffering_interval: Some(Duration::from_secs(1)),
        // The twin's own throughput, not Kinesis': two shards would cap writes at 2,000 orders/s.
        limits: None,
    })
    .await?;
    let workload = WorkloadConfig {
        seed,
        customers: 10_000,
        days: 30,
        until: Utc.with_ymd_and_hms(2024, 6, 8, 0, 0, 0).unwrap(),
        invalid_ratio: 0.0,
    };
    let config = twin.producer_config(workload, orders, 100, 8);
    let started = Instant::now();
    let summary = orderflow_producer::run(
        &config,
        Arc::new(Stats::default()),
        CancellationToken::new(),
    )
    .await;
    let sent = Instant::now();
    anyhow::ensure!(
        summary.accepted == orders,
        "not all accepted: {}",
        summary.to_text()
    );
    let mut dynamodb_done = None;
    let mut parquet_done = None;
    while dynamodb_done.is_none() || parquet_done.is_none() {
        let lags = twin.reader_lags()?;
        let now = Instant::now();
        if dynamodb_done.is_none() && lags.iter().all(|lag| lag["consumer"] == 0) {
            dynamodb_done = Some(now);
        }
        if parquet_done.is_none()
            && lags.iter().all(|lag| {
                lag.iter()
                    .all(|(reader, &l)| reader == "consumer" || l == 0)
            })
        {
            parquet_done = Some(now);
        }
        anyhow::ensure!(
            now - started < Duration::from_secs(600),
            "no progress in 10 minutes"
        );
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    let (dynamodb_done, parquet_done) = (dynamodb_done.unwrap(), parquet_done.unwrap());
    let done = dynamodb_done.max(parquet_done);
    // Check it really is all there.
    let items =
        orderflow_twin::dynamodb::count_items(twin.dynamodb(), &twin.endpoints.table).await?;
    let context = orderflow_twin::analytics::session(
        twin.bucket().root(),
        &twin.settings.delivery.file_extension,
        twin.settings.athena.partition_projection_years,
    )
    .await?;
    let rows = orderflow_twin::analytics::run(&context, "SELECT COUNT(*) AS n FROM orders").await?;
    let rows: u64 = rows.to_json()?[0]["n"].as_str().unwrap_or("0").parse()?;
    anyhow::ensure!(
        items == orders && rows == orders,
        "items {items}, rows {rows}, sent {orders}"
    );
    twin.shutdown().await?;
    Ok(Run {
        send_seconds: (sent - started).as_secs_f64(),
        dynamodb_seconds: (dynamodb_done - started).as_secs_f64(),
        parquet_seconds: (parquet_done - started).as_secs_f64(),
        total_seconds: (done - started).as_secs_f64(),
        last_to_queryable_seconds: (done - sent).as_secs_f64(),
    })
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

fn main() -> anyhow::Result<()> {
    // `cargo bench` passes `--bench`; numbers are ours.
    let numbers: Vec<u64> = std::env::args()
        .skip(1)
        .filter_map(|a| a.parse().ok())
        .collect();
    let orders = numbers.first().copied().unwrap_or(50_000);
    let runs = numbers.get(1).copied().unwrap_or(3);
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()?;
    let mut results = Vec::new();
    for run in 0..runs {
        let dir = tempfile::Builder::new()
            .prefix("orderflow-bench-")
            .tempdir()?;
        let result = runtime.block_on(one_run(dir.path(), orders, 1000 + run))?;
        println!(
            "run {}: {orders} orders accepted in {:.2} s; in DynamoDB after {:.2} s, in Parquet after {:.2} s; all after {:.2} s ({:.0} orders/s); last accepted → queryable {:.2} s",
            run + 1,
            result.send_seconds,
            result.dynamodb_seconds,
            result.parquet_seconds,
            result.total_seconds,
            orders as f64 / result.total_seconds,
            result.last_to_queryable_seconds
        );
        results.push(result);
    }
    let rate = |seconds: fn(&Run) -> f64| {
        median(results.iter().map(|r| orders as f64 / seconds(r)).collect())
    };
    let end_to_end = rate(|r| r.total_seconds);
    let api = rate(|r| r.send_seconds);
    let dynamodb = rate(|r| r.dynamodb_seconds);
    let parquet = rate(|r| r.parquet_seconds);
    let latency = median(
        results
            .iter()
            .map(|r| r.last_to_queryable_seconds)
            .collect(),
    );
    let parquet_latency = median(
        results
            .iter()
            .map(|r| (r.parquet_seconds - r.send_seconds).max(0.0))
            .collect(),
    );
    println!(
        "median of {runs} runs of {orders} orders (target: at least 5,000 orders/s end to end):"
    );
    println!("  end to end (DynamoDB and Parquet)  {end_to_end:>6.0} orders/s");
    println!("  API (accepted, durable)            {api:>6.0} orders/s");
    println!("  into Parquet (four tables)         {parquet:>6.0} orders/s");
    println!("  into DynamoDB (dynalite)           {dynamodb:>6.0} orders/s");
    println!(
        "  last accepted order → queryable in Parquet {parquet_latency:.2} s, in both {latency:.2} s"
    );
    Ok(())
}
