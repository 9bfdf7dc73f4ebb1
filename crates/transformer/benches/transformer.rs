//! Each transformer on a 6 MB Firehose event of generated orders (Lambda's payload limit).
//!
//! `transform/<table>`: the driver on the decoded event (what the handler does per invocation).
//! `invocation/<table>`: JSON bytes in to JSON bytes out: event decoding (base64), transform and
//! response encoding, i.e. everything the Lambda process does besides the Runtime API's HTTP.
//! Both on aws_lambda_events' types, as the Lambdas ran before issue 13.
//!
//! On a 4 MB event (the size), what the Lambdas run now:
//! `handler_4mb/<table>`: [`transform_json`] on the decoded [`FirehoseEvent`];
//! `process_4mb/<table>`: the event's JSON bytes to the response's JSON bytes through
//! [`FirehoseEvent`], [`transform_json`] and serde_json, as lambda_runtime does.

use std::hint::black_box;

use aws_lambda_events::event::firehose::KinesisFirehoseEvent;
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orderflow_domain::Table;
use orderflow_transformer::{FirehoseEvent, sample_event, transform, transform_json};

/// mimalloc: the handlers allocate many small strings and maps per record, where it is markedly
/// faster than glibc's allocator (see BENCHMARKS.md).
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// One criterion group, `name`, timing `run(table)` for every table over an event of `bytes`.
fn per_table<R>(c: &mut Criterion, name: &str, bytes: usize, mut run: impl FnMut(Table) -> R) {
    let mut group = c.benchmark_group(name);
    group
        .sample_size(20)
        .throughput(Throughput::Bytes(bytes as u64));
    for table in Table::ALL {
        group.bench_function(table.name(), |b| b.iter(|| black_box(run(table))));
    }
    group.finish();
}

fn benches(c: &mut Criterion) {
    let (json, count) = sample_event(6 * 1024 * 1024 - 1024);
    let event: KinesisFirehoseEvent = serde_json::from_slice(&json).unwrap();
    eprintln!("event: {} bytes, {count} orders", json.len());
    per_table(c, "transform", json.len(), |table| {
        transform(black_box(&event), table)
    });
    per_table(c, "invocation", json.len(), |table| {
        let event: KinesisFirehoseEvent = serde_json::from_slice(black_box(&json)).unwrap();
        let (response, _) = transform(&event, table);
        serde_json::to_vec(&response).unwrap()
    });
    let (json, count) = sample_event(4_000_000);
    let event: FirehoseEvent = serde_json::from_slice(&json).unwrap();
    eprintln!("event: {} bytes, {count} orders", json.len());
    per_table(c, "handler_4mb", json.len(), |table| {
        transform_json(black_box(&event), table)
    });
    per_table(c, "process_4mb", json.len(), |table| {
        let event: FirehoseEvent = serde_json::from_slice(black_box(&json)).unwrap();
        let (response, _) = transform_json(&event, table);
        serde_json::to_vec(&response).unwrap()
    });
}

criterion_group!(transformer, benches);
criterion_main!(transformer);
