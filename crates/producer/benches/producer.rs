//! The producer's own overhead.
//!
//! - `workload/next_order`: orders generated and serialised per second on one core.
//! - `requests/batch1_concurrency64`: requests per second against a local server that answers
//!   every request immediately with a fixed 200 (so the producer, not the server, is measured),
//!   batch size 1, concurrency 64, 20,000 orders per iteration. The server runs on its own
//!   single-threaded runtime; the producer on a multi-threaded one.

use std::sync::Arc;
use std::time::{Duration, Instant};

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orderflow_producer::{
    RetryPolicy, Route, RunConfig, Stats, Stop, Workload, WorkloadConfig, run,
};
use tokio_util::sync::CancellationToken;

/// mimalloc: generating and sending orders allocates many small strings; it is markedly faster
/// than glibc's allocator here (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn workload_config() -> WorkloadConfig {
    WorkloadConfig {
        seed: 1,
        customers: 10_000,
        days: 30,
        until: Utc.with_ymd_and_hms(2024, 6, 8, 0, 0, 0).unwrap(),
        invalid_ratio: 0.0,
    }
}

/// A server that answers every POST at once, on its own thread.
fn instant_server() -> String {
    let (tx, rx) = std::sync::mpsc::channel();
    std::thread::spawn(move || {
        let runtime = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async move {
            let app = axum::Router::new().fallback(|| async {
                (
                    [("content-type", "application/json")],
                    r#"{"shard_id":"shardId-000000000000","sequence_number":"1"}"#,
                )
            });
            let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
            tx.send(format!("http://{}", listener.local_addr().unwrap()))
                .unwrap();
            axum::serve(listener, app).await.unwrap();
        });
    });
    rx.recv().unwrap()
}

fn benches(c: &mut Criterion) {
    let mut group = c.benchmark_group("workload");
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("next_order", |b| {
        let mut workload = Workload::new(&workload_config());
        b.iter(|| {
            (0..1_000)
                .map(|_| workload.next_order().body.len())
                .sum::<usize>()
        })
    });
    group.finish();

    let endpoint = instant_server();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .enable_all()
        .build()
        .unwrap();
    const ORDERS: u64 = 20_000;
    let config = RunConfig {
        endpoint,
        api_key: "bench".into(),
        stop: Stop::Count(ORDERS),
        rate: None,
        concurrency: 64,
        batch_size: 1,
        route: Route::V1,
        workload: workload_config(),
        request_timeout: Duration::from_secs(10),
        retry: RetryPolicy::default(),
    };
    let mut group = c.benchmark_group("requests");
    group
        .sample_size(10)
        .throughput(Throughput::Elements(ORDERS));
    group.bench_function("batch1_concurrency64", |b| {
        b.iter_custom(|iterations| {
            let mut total = Duration::ZERO;
            for _ in 0..iterations {
                let started = Instant::now();
                let summary = runtime.block_on(run(
                    &config,
                    Arc::new(Stats::default()),
                    CancellationToken::new(),
                ));
                total += started.elapsed();
                assert_eq!(summary.accepted, ORDERS, "{}", summary.to_text());
            }
            total
        })
    });
    group.finish();
}

criterion_group!(producer, benches);
criterion_main!(producer);
