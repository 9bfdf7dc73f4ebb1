//! Generates and serialises 20,000 orders: a fixed workload for `valgrind --tool=callgrind`.
use orderflow_domain::{GeneratorConfig, OrderGenerator};
fn main() {
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(42));
    let bytes: usize = (0..20_000)
        .map(|_| generator.next_order().to_json().len())
        .sum();
    println!("{bytes}");
}
