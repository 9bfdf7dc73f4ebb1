//! Parses 1,000 generated orders 50 times: a fixed workload for `valgrind --tool=callgrind`.
use chrono::{TimeZone, Utc};
use orderflow_domain::{GeneratorConfig, OrderGenerator, Provenance, order_item, parse_order};
fn main() {
    let now = Utc.with_ymd_and_hms(2024, 6, 8, 12, 0, 0).unwrap();
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(42));
    let bodies: Vec<Vec<u8>> = (0..1_000)
        .map(|_| generator.next_order().to_json())
        .collect();
    let what = std::env::args().nth(1).unwrap_or_default();
    let mut n = 0;
    for _ in 0..50 {
        for body in &bodies {
            let order = parse_order(body).unwrap();
            if what == "item" {
                n += order_item(
                    &order,
                    &Provenance {
                        ingested_at: now,
                        source_sequence_number: "1",
                    },
                )
                .len();
            }
            n += order.product_details.len();
        }
    }
    println!("{n}");
}
