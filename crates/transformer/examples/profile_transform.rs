//! A fixed workload for `valgrind --tool=callgrind`: one 4 MB Firehose event of generated orders,
//! decoded, transformed for `orders` and encoded `RUNS` times, the way the Lambda process does.
//!
//! `profile_transform own` (default): [`FirehoseEvent`], [`transform_json`], serde_json, as the
//! Lambdas run now; `profile_transform aws`: aws_lambda_events' types and [`transform`], as they
//! ran before. `profile_transform handler`: [`transform_json`] alone on the decoded event.

use aws_lambda_events::event::firehose::KinesisFirehoseEvent;
use orderflow_domain::Table;
use orderflow_transformer::{FirehoseEvent, sample_event, transform, transform_json};

#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

const RUNS: usize = 5;

fn main() {
    let (json, records) = sample_event(4_000_000);
    let what = std::env::args().nth(1).unwrap_or_else(|| "own".into());
    let mut bytes = 0;
    for _ in 0..RUNS {
        bytes += match what.as_str() {
            "aws" => {
                let event: KinesisFirehoseEvent = serde_json::from_slice(&json).unwrap();
                serde_json::to_vec(&transform(&event, Table::Orders).0)
                    .unwrap()
                    .len()
            }
            "handler" => {
                let event: FirehoseEvent = serde_json::from_slice(&json).unwrap();
                transform_json(&event, Table::Orders).0.len()
            }
            _ => {
                let event: FirehoseEvent = serde_json::from_slice(&json).unwrap();
                serde_json::to_vec(&transform_json(&event, Table::Orders).0)
                    .unwrap()
                    .len()
            }
        };
    }
    println!("{what}: {records} records, {bytes} response bytes");
}
