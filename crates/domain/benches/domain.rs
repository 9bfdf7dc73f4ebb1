//! The domain core's hot paths on 1,000 generated orders: validation, table rows, DynamoDB items.

use std::hint::black_box;

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use orderflow_domain::{
    GeneratorConfig, OrderGenerator, Provenance, Table, order_item, parse_order,
};

fn benches(c: &mut Criterion) {
    let now = Utc.with_ymd_and_hms(2024, 6, 8, 12, 0, 0).unwrap();
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(42));
    let bodies: Vec<Vec<u8>> = (0..1_000)
        .map(|_| generator.next_order().to_json())
        .collect();
    let bytes: usize = bodies.iter().map(Vec::len).sum();
    let orders: Vec<_> = bodies.iter().map(|b| parse_order(b).unwrap()).collect();
    let mut group = c.benchmark_group("domain_1000_orders");
    group.throughput(Throughput::Bytes(bytes as u64));
    group.bench_function("parse_order", |b| {
        b.iter(|| {
            bodies
                .iter()
                .map(|body| parse_order(black_box(body)).is_ok())
                .filter(|ok| *ok)
                .count()
        })
    });
    for table in Table::ALL {
        group.bench_function(format!("write_rows/{table}"), |b| {
            let mut out = Vec::with_capacity(bytes * 2);
            b.iter(|| {
                out.clear();
                orders
                    .iter()
                    .map(|order| table.write_rows(black_box(order), &mut out))
                    .sum::<usize>()
            })
        });
    }
    group.bench_function("order_item", |b| {
        let provenance = Provenance {
            ingested_at: now,
            source_sequence_number: "49590338271490256608559692538361571095921575989136588898",
        };
        b.iter(|| {
            orders
                .iter()
                .map(|order| order_item(black_box(order), &provenance).len())
                .sum::<usize>()
        })
    });
    group.bench_function("generate_and_serialise", |b| {
        let mut generator = OrderGenerator::new(GeneratorConfig::fixed(7));
        b.iter(|| {
            (0..1_000)
                .map(|_| generator.next_order().to_json().len())
                .sum::<usize>()
        })
    });
    group.finish();
}

criterion_group!(domain, benches);
criterion_main!(domain);
