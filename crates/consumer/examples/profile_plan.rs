//! A fixed workload for `valgrind --tool=callgrind`: one 1,000-record Kinesis event of generated
//! orders (seed 42), decoded and planned (validation, DynamoDB items, duplicates) `RUNS` times,
//! the CPU work of one consumer invocation before its writes.
//!
//! ```sh
//! cargo build --release -p orderflow-consumer --features generator --example profile_plan
//! valgrind --tool=callgrind target/release/examples/profile_plan
//! ```

use orderflow_consumer::{OrderRecordsEvent, plan_batch};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 5;

fn main() {
    let json = orderflow_consumer::sample_event(1_000);
    let mut writes = 0;
    for _ in 0..RUNS {
        let event: OrderRecordsEvent = serde_json::from_slice(&json).unwrap();
        writes += plan_batch(&event.0.records).writes.len();
    }
    println!("{writes} writes planned in {RUNS} runs");
}
