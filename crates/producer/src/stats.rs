//! Counting what happened, and the final summary.

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::Duration;

use hdrhistogram::Histogram;
use serde::Serialize;

/// Final outcome of one order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The API accepted it (200, or its entry in a 207 was written).
    Accepted,
    /// The API refused it for good (400, 413, other 4xx).
    Rejected {
        /// HTTP status.
        status: u16,
        /// The API's message (first validation error, index stripped).
        message: String,
    },
    /// Not accepted after all retries, or not finished before Ctrl-C.
    GaveUp {
        /// Why.
        reason: String,
    },
}

/// Running counts, shared by the sending tasks.
pub struct Stats {
    inner: Mutex<StatsInner>,
}

struct StatsInner {
    sent: u64,
    accepted: u64,
    rejected: u64,
    gave_up: u64,
    retried: u64,
    requests: u64,
    unexpected: u64,
    rejected_by: HashMap<(u16, String), u64>,
    gave_up_by: HashMap<String, u64>,
    latency_us: Histogram<u64>,
}

impl Default for Stats {
    fn default() -> Self {
        Stats {
            inner: Mutex::new(StatsInner {
                sent: 0,
                accepted: 0,
                rejected: 0,
                gave_up: 0,
                retried: 0,
                requests: 0,
                unexpected: 0,
                rejected_by: HashMap::new(),
                gave_up_by: HashMap::new(),
                latency_us: Histogram::new_with_bounds(1, 3_600_000_000, 3).expect("valid bounds"),
            }),
        }
    }
}

impl Stats {
    fn with<T>(&self, f: impl FnOnce(&mut StatsInner) -> T) -> T {
        f(&mut self.inner.lock().expect("stats lock is never poisoned"))
    }

    /// Orders handed to the sender (each counted once, however often it is retried).
    pub fn record_sent(&self, orders: u64) {
        self.with(|s| s.sent += orders);
    }

    /// One HTTP request answered (or failed) after `latency`.
    pub fn record_request(&self, latency: Duration) {
        self.with(|s| {
            s.requests += 1;
            let micros = u64::try_from(latency.as_micros())
                .unwrap_or(u64::MAX)
                .max(1);
            s.latency_us.saturating_record(micros);
        });
    }

    /// `orders` orders are sent again.
    pub fn record_retry(&self, orders: u64) {
        self.with(|s| s.retried += orders);
    }

    /// The final outcome of one order; `expected` says whether it is the one the workload wanted
    /// (valid accepted, invalid rejected with 400).
    pub fn record_outcome(&self, outcome: Outcome, expected: bool) {
        self.with(|s| {
            if !expected {
                s.unexpected += 1;
            }
            match outcome {
                Outcome::Accepted => s.accepted += 1,
                Outcome::Rejected { status, message } => {
                    s.rejected += 1;
                    *s.rejected_by.entry((status, message)).or_default() += 1;
                }
                Outcome::GaveUp { reason } => {
                    s.gave_up += 1;
                    *s.gave_up_by.entry(reason).or_default() += 1;
                }
            }
        });
    }

    /// Orders accepted so far (for the progress bar).
    pub fn accepted(&self) -> u64 {
        self.with(|s| s.accepted)
    }

    /// Orders with a final outcome so far.
    pub fn finished(&self) -> u64 {
        self.with(|s| s.accepted + s.rejected + s.gave_up)
    }

    /// The summary after `elapsed`.
    pub fn summary(&self, elapsed: Duration, interrupted: bool, fatal: Option<String>) -> Summary {
        self.with(|s| {
            let top = |map: &HashMap<(u16, String), u64>| {
                let mut rows: Vec<_> = map
                    .iter()
                    .map(|((status, message), count)| RejectionCount {
                        status: *status,
                        message: message.clone(),
                        count: *count,
                    })
                    .collect();
                rows.sort_by(|a, b| {
                    b.count
                        .cmp(&a.count)
                        .then_with(|| a.message.cmp(&b.message))
                });
                rows.truncate(5);
                rows
            };
            let mut gave_up_by: Vec<_> =
                s.gave_up_by.iter().map(|(r, c)| (r.clone(), *c)).collect();
            gave_up_by.sort_by_key(|row| std::cmp::Reverse(row.1));
            gave_up_by.truncate(5);
            let seconds = elapsed.as_secs_f64();
            let ms = |q: f64| {
                if s.requests == 0 {
                    0.0
                } else {
                    s.latency_us.value_at_quantile(q) as f64 / 1000.0
                }
            };
            Summary {
                sent: s.sent,
                accepted: s.accepted,
                rejected: s.rejected,
                gave_up: s.gave_up,
                retried: s.retried,
                requests: s.requests,
                unexpected: s.unexpected,
                top_rejections: top(&s.rejected_by),
                top_give_up_reasons: gave_up_by,
                elapsed_seconds: seconds,
                accepted_per_second: if seconds > 0.0 {
                    s.accepted as f64 / seconds
                } else {
                    0.0
                },
                latency_ms: Latency {
                    p50: ms(0.50),
                    p95: ms(0.95),
                    p99: ms(0.99),
                    max: if s.requests == 0 {
                        0.0
                    } else {
                        s.latency_us.max() as f64 / 1000.0
                    },
                },
                interrupted,
                fatal,
            }
        })
    }
}

/// How many orders were rejected with one status and message.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct RejectionCount {
    /// HTTP status.
    pub status: u16,
    /// The API's message.
    pub message: String,
    /// How many orders.
    pub count: u64,
}

/// Request latency percentiles in milliseconds.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Latency {
    /// Median.
    pub p50: f64,
    /// 95th percentile.
    pub p95: f64,
    /// 99th percentile.
    pub p99: f64,
    /// Slowest request.
    pub max: f64,
}

/// What a run did.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Summary {
    /// Orders sent (each once, however often retried).
    pub sent: u64,
    /// Orders accepted.
    pub accepted: u64,
    /// Orders rejected for good.
    pub rejected: u64,
    /// Orders neither accepted nor rejected (retries exhausted, or interrupted).
    pub gave_up: u64,
    /// Order re-sends (retries after 429/5xx/207 entries, re-sends after a batch's 400).
    pub retried: u64,
    /// HTTP requests made.
    pub requests: u64,
    /// Orders whose outcome was not the intended one (a valid order not accepted, an invalid one
    /// not rejected with 400).
    pub unexpected: u64,
    /// The most frequent rejections.
    pub top_rejections: Vec<RejectionCount>,
    /// Why orders were given up, most frequent first.
    pub top_give_up_reasons: Vec<(String, u64)>,
    /// Wall time of the run.
    pub elapsed_seconds: f64,
    /// Accepted orders per second of wall time.
    pub accepted_per_second: f64,
    /// Request latency.
    pub latency_ms: Latency,
    /// Stopped by Ctrl-C.
    pub interrupted: bool,
    /// A reason the run stopped early (403, unreachable endpoint).
    pub fatal: Option<String>,
}

impl Summary {
    /// Every order got its intended outcome and the run was not cut short.
    pub fn success(&self) -> bool {
        self.unexpected == 0 && self.gave_up == 0 && !self.interrupted && self.fatal.is_none()
    }

    /// The summary as text for people.
    pub fn to_text(&self) -> String {
        let mut text = format!(
            "sent {} orders in {} requests over {:.2} s: {:.0} accepted orders/s\n",
            self.sent, self.requests, self.elapsed_seconds, self.accepted_per_second
        );
        text += &format!(
            "  accepted  {}\n  rejected  {}\n  retried   {}\n  gave up   {}\n",
            self.accepted, self.rejected, self.retried, self.gave_up
        );
        for row in &self.top_rejections {
            text += &format!("    {:>6} x {} {}\n", row.count, row.status, row.message);
        }
        for (reason, count) in &self.top_give_up_reasons {
            text += &format!("    {count:>6} x gave up: {reason}\n");
        }
        let l = &self.latency_ms;
        text += &format!(
            "  latency   p50 {:.2} ms  p95 {:.2} ms  p99 {:.2} ms  max {:.2} ms\n",
            l.p50, l.p95, l.p99, l.max
        );
        if self.interrupted {
            text += "  interrupted: stopped sending, waited for requests in flight\n";
        }
        if let Some(fatal) = &self.fatal {
            text += &format!("  stopped: {fatal}\n");
        }
        text += if self.success() {
            "result: ok, every valid order accepted and every invalid one rejected as expected"
        } else {
            "result: NOT ok"
        };
        if !self.success() && self.unexpected > 0 {
            text += &format!(
                ", {} orders did not get their intended outcome",
                self.unexpected
            );
        }
        text
    }
}
