//! Each transformer on a 6 MB Firehose event of generated orders (Lambda's payload limit).
//!
//! `transform/<table>`: the driver on the decoded event (what the handler does per invocation).
//! `invocation/<table>`: JSON bytes in to JSON bytes out: event decoding (base64), transform and
//! response encoding, i.e. everything the Lambda process does besides the Runtime API's HTTP.

use std::hint::black_box;

use aws_lambda_events::event::firehose::KinesisFirehoseEvent;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orderflow_domain::{GeneratorConfig, OrderGenerator, Table};
use orderflow_transformer::transform;

/// mimalloc: the handlers allocate many small strings and maps per record, where it is markedly
/// faster than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A Firehose event of generated orders just under `limit` bytes of JSON.
fn event_json(limit: usize) -> (Vec<u8>, usize) {
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(42));
    let mut records = Vec::new();
    let mut size = 200;
    loop {
        let data = STANDARD.encode(generator.next_order().to_json());
        let record = serde_json::json!({
            "recordId": format!("49546986683135544286507457936321625675700192471156785154{:06}", records.len()),
            "approximateArrivalTimestamp": 1_717_848_000_000u64,
            "data": data,
        });
        let encoded = record.to_string();
        if size + encoded.len() + 1 > limit {
            break;
        }
        size += encoded.len() + 1;
        records.push(record);
    }
    let count = records.len();
    let event = serde_json::json!({
        "invocationId": "bench",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/orders",
        "region": "us-east-1",
        "records": records,
    });
    (serde_json::to_vec(&event).unwrap(), count)
}

fn benches(c: &mut Criterion) {
    let (json, count) = event_json(6 * 1024 * 1024 - 1024);
    let event: KinesisFirehoseEvent = serde_json::from_slice(&json).unwrap();
    eprintln!("event: {} bytes, {count} orders", json.len());
    let mut group = c.benchmark_group("transform");
    group
        .sample_size(20)
        .throughput(Throughput::Bytes(json.len() as u64));
    for table in Table::ALL {
        group.bench_function(table.name(), |b| {
            b.iter(|| transform(black_box(&event), table))
        });
    }
    group.finish();
    let mut group = c.benchmark_group("invocation");
    group
        .sample_size(20)
        .throughput(Throughput::Bytes(json.len() as u64));
    for table in Table::ALL {
        group.bench_function(table.name(), |b| {
            b.iter(|| {
                let event: KinesisFirehoseEvent = serde_json::from_slice(black_box(&json)).unwrap();
                let (response, _) = transform(&event, table);
                serde_json::to_vec(&response).unwrap()
            })
        });
    }
    group.finish();
}

criterion_group!(transformer, benches);
criterion_main!(transformer);
