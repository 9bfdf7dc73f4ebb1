//! Generates and serialises 20,000 orders: a fixed workload for `valgrind --tool=callgrind`.
use chrono::{TimeZone, Utc};
use orderflow_domain::{GeneratorConfig, OrderGenerator};
fn main() {
    let now = Utc.with_ymd_and_hms(2024, 6, 8, 12, 0, 0).unwrap();
    let mut generator = OrderGenerator::new(GeneratorConfig {
        seed: 42,
        customers: 10_000,
        days: 30,
        now,
    });
    let bytes: usize = (0..20_000)
        .map(|_| generator.next_order().to_json().len())
        .sum();
    println!("{bytes}");
}
