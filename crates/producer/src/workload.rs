//! What the producer sends: a reproducible stream of generated orders, a set share of them
//! deliberately invalid.

use chrono::{DateTime, Utc};
use orderflow_domain::{GeneratorConfig, OrderGenerator};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};

/// One order to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OutgoingOrder {
    /// Position in the workload (0-based); stable for a seed.
    pub index: u64,
    /// The encoded order, exactly as sent.
    pub body: Vec<u8>,
    /// The customer (the legacy route's partition key); empty if the invalid order has none.
    pub customer_id: String,
    /// `None` for a valid order; for an invalid one, the rule it breaks.
    pub invalid_reason: Option<&'static str>,
}

/// The workload's parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct WorkloadConfig {
    /// Seed: same seed, same orders.
    pub seed: u64,
    /// Customer pool size.
    pub customers: u32,
    /// `order_date` spreads over the `days` days before `until`.
    pub days: u32,
    /// The latest `order_date`.
    pub until: DateTime<Utc>,
    /// Share of deliberately invalid orders, 0 to 1.
    pub invalid_ratio: f64,
}

/// A seeded, endless stream of orders.
pub struct Workload {
    generator: OrderGenerator,
    choice: StdRng,
    invalid_ratio: f64,
    next_index: u64,
}

impl Workload {
    /// A workload; two with the same config yield the same orders.
    pub fn new(config: &WorkloadConfig) -> Self {
        let generator = OrderGenerator::new(GeneratorConfig {
            seed: config.seed,
            customers: config.customers,
            days: config.days,
            now: config.until,
        });
        Workload {
            generator,
            choice: StdRng::seed_from_u64(config.seed ^ 0x5EED_1A7A_11D0_0DE5),
            invalid_ratio: config.invalid_ratio,
            next_index: 0,
        }
    }

    /// The next order.
    pub fn next_order(&mut self) -> OutgoingOrder {
        let index = self.next_index;
        self.next_index += 1;
        let invalid =
            self.invalid_ratio > 0.0 && self.choice.random_bool(self.invalid_ratio.min(1.0));
        if invalid {
            let sample = self.generator.invalid_order();
            let customer_id = serde_json::from_slice::<serde_json::Value>(&sample.body)
                .ok()
                .and_then(|v| v["customer_id"].as_str().map(str::to_owned))
                .unwrap_or_default();
            OutgoingOrder {
                index,
                body: sample.body,
                customer_id,
                invalid_reason: Some(sample.reason),
            }
        } else {
            let order = self.generator.next_order();
            OutgoingOrder {
                index,
                body: order.to_json(),
                customer_id: order.customer_id.into_owned(),
                invalid_reason: None,
            }
        }
    }
}
