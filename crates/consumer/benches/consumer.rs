//! The consumer's CPU work for a 1,000-record Kinesis event: decode the event (base64, exact
//! arrival times), validate every order and map it to its DynamoDB item, collapse duplicates.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orderflow_consumer::{OrderRecordsEvent, plan_batch};

/// mimalloc: the handlers allocate many small strings and maps per record, where it is markedly
/// faster than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn benches(c: &mut Criterion) {
    let json = orderflow_consumer::sample_event(1_000);
    let event: OrderRecordsEvent = serde_json::from_slice(&json).unwrap();
    let mut group = c.benchmark_group("consumer_1000_records");
    group.throughput(Throughput::Elements(1_000));
    group.bench_function("plan_batch", |b| {
        b.iter(|| plan_batch(black_box(&event.0.records)))
    });
    group.bench_function("decode_and_plan_batch", |b| {
        b.iter(|| {
            let event: OrderRecordsEvent = serde_json::from_slice(black_box(&json)).unwrap();
            plan_batch(&event.0.records)
        })
    });
    group.finish();
}

criterion_group!(consumer, benches);
criterion_main!(consumer);
