//! The consumer's CPU work for a 1,000-record Kinesis event: decode the event (base64, exact
//! arrival times), validate every order and map it to its DynamoDB item, collapse duplicates.

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orderflow_consumer::{OrderRecordsEvent, plan_batch};
use orderflow_domain::{GeneratorConfig, OrderGenerator};

/// mimalloc: the handlers allocate many small strings and maps per record, where it is markedly
/// faster than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn event_json(records: usize) -> Vec<u8> {
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(42));
    let orders: Vec<(String, Vec<u8>)> = (0..records)
        .map(|n| {
            (
                format!("4959033827149025660855969253836157109592157598913{n:07}"),
                generator.next_order().to_json(),
            )
        })
        .collect();
    orderflow_consumer::kinesis_event(
        &orderflow_consumer::EventSource::LOCAL,
        orders
            .iter()
            .map(|(sequence, data)| orderflow_consumer::EventRecord {
                shard_id: "shardId-000000000000",
                partition_key: "user",
                sequence_number: sequence,
                data,
                arrival_ms: 1_717_848_000_125,
            }),
    )
}

fn benches(c: &mut Criterion) {
    let json = event_json(1_000);
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
