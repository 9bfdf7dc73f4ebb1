//! `orderflow demo`'s acceptance run on a started twin: send generated orders through the
//! producer, wait until the consumer and every Firehose stream have caught up, check that each
//! accepted order arrived exactly once in DynamoDB and in each Parquet table, run the queries.
//!
//! [`run`] returns a [`DemoReport`] (and fails when not every order arrived); the binary only
//! prints it.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context, Result, bail};
use chrono::{DurationRound, TimeDelta, Utc};
use orderflow_producer::{Stats, WorkloadConfig};
use tokio_util::sync::CancellationToken;

use crate::analytics::{self, QueryResult};
use crate::settings::PipelineSettings;
use crate::twin::Twin;

/// What the demo sends and how long it waits.
#[derive(Debug, Clone)]
pub struct DemoOptions {
    /// Orders to send.
    pub orders: u64,
    /// Orders per request (1: the single-order route).
    pub batch_size: usize,
    /// Requests in flight.
    pub concurrency: usize,
    /// The generator's seed.
    pub seed: u64,
    /// The folder of `*.sql` queries to run (the built-in ones when it does not exist).
    pub queries: PathBuf,
    /// How long to wait for each stage to catch up.
    pub timeout: Duration,
}

/// What a successful demo measured, and the queries' results.
#[derive(Debug)]
pub struct DemoReport {
    /// Orders the API accepted.
    pub accepted: u64,
    /// Seconds spent sending.
    pub send_seconds: f64,
    /// Seconds from the first send until every order was in DynamoDB and Parquet.
    pub pipeline_seconds: f64,
    /// Each query's name and result, in name order.
    pub queries: Vec<(String, QueryResult)>,
}

/// Runs the demo on `twin`, reporting each stage through `progress` as it starts.
///
/// Fails if the producer did not get every order accepted, a stage did not catch up within the
/// timeout, or the new orders are not exactly the accepted ones in DynamoDB and in each table
/// (or some went to the consumer's failure store).
pub async fn run(
    twin: &Twin,
    settings: &PipelineSettings,
    options: &DemoOptions,
    progress: &mut dyn FnMut(String),
) -> Result<DemoReport> {
    let before = Counts::of(twin, settings).await?;
    let failed_before = twin.status().await?.failed_records;

    progress(format!(
        "sending {} orders (seed {}, {} per request, {} in flight) ...",
        options.orders, options.seed, options.batch_size, options.concurrency
    ));
    let workload = WorkloadConfig {
        seed: options.seed,
        customers: 1_000,
        days: 30,
        until: Utc::now().duration_trunc(TimeDelta::days(1))?,
        invalid_ratio: 0.0,
    };
    let config = twin.producer_config(
        workload,
        options.orders,
        options.batch_size,
        options.concurrency,
    );
    let sending = Instant::now();
    let summary = orderflow_producer::run(
        &config,
        Arc::new(Stats::default()),
        CancellationToken::new(),
    )
    .await;
    let send_seconds = sending.elapsed().as_secs_f64();
    if !summary.success() {
        bail!(
            "the producer did not get every order accepted:\n{}",
            summary.to_text()
        );
    }
    progress(format!(
        "  {} accepted in {send_seconds:.1} s ({:.0} orders/s)",
        summary.accepted,
        summary.accepted as f64 / send_seconds
    ));

    progress("waiting for the consumer to write every order to DynamoDB ...".to_owned());
    twin.wait_for(options.timeout, |lag| lag["consumer"] == 0)
        .await?;
    progress(format!(
        "delivering the Firehose buffers now (in AWS they go after {} s or {} MB) ...",
        settings.delivery.buffering_interval_seconds, settings.delivery.buffering_size_mb
    ));
    twin.flush_deliveries();
    twin.wait_for(options.timeout, |lag| lag.values().all(|&l| l == 0))
        .await?;
    let pipeline_seconds = sending.elapsed().as_secs_f64();

    let after = Counts::of(twin, settings).await?;
    let failed = twin.status().await?.failed_records;
    let problems = arrival_problems(
        summary.accepted,
        &before,
        &after,
        failed.saturating_sub(failed_before),
    );
    if !problems.is_empty() {
        bail!("not every order arrived:\n  {}", problems.join("\n  "));
    }

    // A new session: a session lists each table's files once.
    let context = analytics::session(
        twin.bucket().root(),
        &settings.delivery.file_extension,
        settings.athena.partition_projection_years,
    )
    .await?;
    let mut queries = Vec::new();
    for (name, text) in analytics::queries(Some(&options.queries))? {
        let result = analytics::run(&context, &text)
            .await
            .with_context(|| format!("query {name}"))?;
        queries.push((name, result));
    }
    Ok(DemoReport {
        accepted: summary.accepted,
        send_seconds,
        pipeline_seconds,
        queries,
    })
}

/// What is wrong with the new orders in each place, given `accepted` orders were sent between
/// `before` and `after` and `failed` records went to the failure store meanwhile; empty when
/// every place gained exactly the accepted orders.
fn arrival_problems(accepted: u64, before: &Counts, after: &Counts, failed: u64) -> Vec<String> {
    let mut problems = Vec::new();
    if failed > 0 {
        problems.push(format!(
            "{failed} records went to the consumer's failure store"
        ));
    }
    for (what, before, after) in [
        ("DynamoDB items", before.dynamodb, after.dynamodb),
        ("orders rows", before.orders, after.orders),
        (
            "orders with product_details rows",
            before.product_orders,
            after.product_orders,
        ),
        ("purchase_details rows", before.purchases, after.purchases),
        ("shipping_addresses rows", before.addresses, after.addresses),
    ] {
        let new = after.saturating_sub(before);
        if new != accepted {
            problems.push(format!("{what}: {new} new, expected {accepted}"));
        }
    }
    problems
}

/// Distinct orders per place, to compare before and after a run.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
struct Counts {
    dynamodb: u64,
    orders: u64,
    product_orders: u64,
    purchases: u64,
    addresses: u64,
}

impl Counts {
    async fn of(twin: &Twin, settings: &PipelineSettings) -> Result<Self> {
        let context = &analytics::session(
            twin.bucket().root(),
            &settings.delivery.file_extension,
            settings.athena.partition_projection_years,
        )
        .await?;
        let dynamodb = crate::dynamodb::count_items(twin.dynamodb(), &twin.endpoints.table).await?;
        let count = async |table: &str| -> Result<u64> {
            let result = analytics::run(
                context,
                &format!("SELECT COUNT(DISTINCT order_id) AS n FROM {table}"),
            )
            .await?;
            let json = result.to_json()?;
            json[0]["n"]
                .as_str()
                .and_then(|n| n.parse().ok())
                .context("a count")
        };
        Ok(Counts {
            dynamodb,
            orders: count("orders").await?,
            product_orders: count("product_details").await?,
            purchases: count("purchase_details").await?,
            addresses: count("shipping_addresses").await?,
        })
    }
}

/// The folder the data of `twin` is in (the bucket's parent), for the closing hint.
pub fn data_folder(twin: &Twin) -> &Path {
    twin.bucket().root().parent().unwrap_or(Path::new("."))
}

#[cfg(test)]
mod tests {
    use super::{Counts, arrival_problems};

    #[test]
    fn every_place_must_gain_exactly_the_accepted_orders() {
        let before = Counts {
            dynamodb: 5,
            orders: 5,
            product_orders: 5,
            purchases: 5,
            addresses: 5,
        };
        let all = Counts {
            dynamodb: 8,
            orders: 8,
            product_orders: 8,
            purchases: 8,
            addresses: 8,
        };
        assert!(arrival_problems(3, &before, &all, 0).is_empty());
        let short = Counts {
            purchases: 7,
            ..all
        };
        assert_eq!(
            arrival_problems(3, &before, &short, 0),
            vec!["purchase_details rows: 2 new, expected 3"]
        );
        assert_eq!(
            arrival_problems(3, &before, &all, 1),
            vec!["1 records went to the consumer's failure store"]
        );
        let extra = Counts { dynamodb: 9, ..all };
        assert_eq!(
            arrival_problems(3, &before, &extra, 0),
            vec!["DynamoDB items: 4 new, expected 3"]
        );
    }
}
