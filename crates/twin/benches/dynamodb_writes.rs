//! The price of conditional writes: the consumer writes one conditional `PutItem` per item
//! (`orderflow_consumer::write_all`), because `BatchWriteItem` cannot carry the condition that
//! keeps a replay from overwriting a newer version. This bench writes the same items both ways
//! into the twin's dynalite and prints items per second (medians):
//!
//! - `batch-write-item`: unconditional `BatchWriteItem`, 25 items per call, 8 calls in flight (the
//!   consumer before the change);
//! - `conditional-put-item`: `write_all` with the default policy (32 in flight), new items;
//! - `conditional-put-item, replay`: the same records again (every condition holds: equal sequence
//!   numbers), the cost of an at-least-once re-delivery.
//!
//! `cargo bench -p orderflow-twin --bench dynamodb_writes --profile pipeline-bench [-- ITEMS RUNS]`
//! (defaults 2,000 items, 3 runs). Needs `npm ci` (dynalite).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::{AttributeValue, PutRequest, WriteRequest};
use chrono::{TimeZone, Utc};
use futures::StreamExt;
use orderflow_consumer::{PendingWrite, WritePolicy, write_all};
use orderflow_domain::{GeneratorConfig, OrderGenerator, Provenance, order_item};
use orderflow_twin::dynamodb::{Dynalite, client, ensure_table};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn writes(count: usize, seed: u64) -> Vec<PendingWrite> {
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(seed));
    let arrival = Utc.with_ymd_and_hms(2024, 6, 8, 12, 0, 0).unwrap();
    (0..count)
        .map(|n| {
            let order = generator.next_order();
            let sequence_number =
                format!("4959033827149025660855969253836157109592157598913{n:07}");
            let item = order_item(
                &order,
                &Provenance {
                    ingested_at: arrival,
                    source_sequence_number: &sequence_number,
                },
            );
            PendingWrite {
                key: (order.customer_id.to_string(), order.order_id.to_string()),
                sequence_number,
                item,
            }
        })
        .collect()
}

async fn batch_write_item(
    db: &aws_sdk_dynamodb::Client,
    table: &str,
    items: Vec<HashMap<String, AttributeValue>>,
) {
    let chunks: Vec<Vec<WriteRequest>> = items
        .chunks(25)
        .map(|chunk| {
            chunk
                .iter()
                .map(|item| {
                    WriteRequest::builder()
                        .put_request(
                            PutRequest::builder()
                                .set_item(Some(item.clone()))
                                .build()
                                .unwrap(),
                        )
                        .build()
                })
                .collect()
        })
        .collect();
    futures::stream::iter(chunks)
        .map(|requests| async move {
            let mut requests = requests;
            while !requests.is_empty() {
                let output = db
                    .batch_write_item()
                    .request_items(table, requests)
                    .send()
                    .await
                    .expect("BatchWriteItem");
                requests = output
                    .unprocessed_items
                    .and_then(|mut left| left.remove(table))
                    .unwrap_or_default();
            }
        })
        .buffer_unordered(8)
        .collect::<Vec<()>>()
        .await;
}

fn median(mut values: Vec<f64>) -> f64 {
    values.sort_by(f64::total_cmp);
    values[values.len() / 2]
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args()
        .skip(1)
        .filter(|a| !a.starts_with("--"))
        .collect();
    let count: usize = args.first().map_or(Ok(2_000), |a| a.parse())?;
    let runs: usize = args.get(1).map_or(Ok(3), |a| a.parse())?;
    let dir = tempfile::tempdir()?;
    let dynalite = Dynalite::start(&dir.path().join("dynamodb")).await?;
    let db = client(&dynalite.endpoint);
    let policy = WritePolicy::default();
    let deadline = || tokio::time::Instant::now() + Duration::from_secs(600);
    let (mut batch, mut conditional, mut replay) = (Vec::new(), Vec::new(), Vec::new());
    for run in 0..runs {
        let table = format!("bench-batch-{run}");
        ensure_table(&db, &table).await?;
        let items = writes(count, run as u64)
            .into_iter()
            .map(|w| w.item)
            .collect();
        let started = Instant::now();
        batch_write_item(&db, &table, items).await;
        batch.push(count as f64 / started.elapsed().as_secs_f64());

        let table = format!("bench-conditional-{run}");
        ensure_table(&db, &table).await?;
        let started = Instant::now();
        let report = write_all(&db, &table, writes(count, run as u64), &policy, deadline()).await;
        assert_eq!(report.written, count, "{report:?}");
        conditional.push(count as f64 / started.elapsed().as_secs_f64());

        let started = Instant::now();
        let report = write_all(&db, &table, writes(count, run as u64), &policy, deadline()).await;
        assert_eq!(report.written, count, "{report:?}");
        replay.push(count as f64 / started.elapsed().as_secs_f64());
    }
    println!(
        "{count} items per run, {runs} runs, dynalite persisted in a temporary folder; medians:"
    );
    let (batch, conditional, replay) = (median(batch), median(conditional), median(replay));
    println!("  batch-write-item (unconditional, 25/call, 8 in flight): {batch:>8.0} items/s");
    println!(
        "  conditional-put-item (32 in flight):                    {conditional:>8.0} items/s ({:.2}x)",
        conditional / batch
    );
    println!(
        "  conditional-put-item, replay of the same records:       {replay:>8.0} items/s ({:.2}x)",
        replay / batch
    );
    dynalite.stop().await;
    Ok(())
}
