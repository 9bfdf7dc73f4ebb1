//! The orderflow producer: sends generated orders to the ingestion API at a set rate and
//! reports honestly what happened.
//!
//! [`run`] paces requests on an absolute schedule (order `k` is due at `k / rate` seconds after the
//! start, so the rate does not drift), keeps at most `concurrency` requests in flight, and stops
//! on `count`, `duration` or cancellation (Ctrl-C), waiting for requests in flight. Every order
//! ends accepted, rejected or given up; [`Summary`] counts them.

mod send;
mod stats;
mod workload;

use std::sync::Arc;
use std::time::Duration;

use tokio::sync::Semaphore;
use tokio::task::JoinSet;
use tokio::time::Instant;
use tokio_util::sync::CancellationToken;

pub use send::{Fatal, RetryPolicy, Route, Sender};
pub use stats::{Latency, Outcome, RejectionCount, Stats, Summary};
pub use workload::{OutgoingOrder, Workload, WorkloadConfig};

/// When to stop sending.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Stop {
    /// After this many orders.
    Count(u64),
    /// After this much time.
    Duration(Duration),
}

/// A validated run configuration.
#[derive(Debug, Clone, PartialEq)]
pub struct RunConfig {
    /// Base URL of the API, stage included (`https://.../prod` or `http://127.0.0.1:4566`).
    pub endpoint: String,
    /// The API key (never printed).
    pub api_key: String,
    /// When to stop.
    pub stop: Stop,
    /// Orders per second; `None` as fast as possible.
    pub rate: Option<f64>,
    /// Requests in flight at most.
    pub concurrency: usize,
    /// Orders per request: 1 uses `/v1/orders`, 2 to 500 `/v1/orders/batch`.
    pub batch_size: usize,
    /// Route.
    pub route: Route,
    /// What to send.
    pub workload: WorkloadConfig,
    /// Per-request timeout.
    pub request_timeout: Duration,
    /// Retry tuning.
    pub retry: RetryPolicy,
}

/// The pooled HTTP client for a run (rustls, keep-alive, per-request timeout).
pub fn http_client(config: &RunConfig) -> reqwest::Result<reqwest::Client> {
    reqwest::Client::builder()
        .timeout(config.request_timeout)
        .connect_timeout(Duration::from_secs(5).min(config.request_timeout))
        .pool_max_idle_per_host(config.concurrency)
        .tcp_nodelay(true)
        .user_agent(concat!("orderflow-producer/", env!("CARGO_PKG_VERSION")))
        .build()
}

/// Sends the workload; returns the summary when done, cancelled, or stopped by a fatal error.
pub async fn run(config: &RunConfig, stats: Arc<Stats>, cancel: CancellationToken) -> Summary {
    let http = match http_client(config) {
        Ok(http) => http,
        Err(error) => {
            return stats.summary(Duration::ZERO, false, Some(format!("HTTP client: {error}")));
        }
    };
    let sender = Arc::new(Sender::new(
        http,
        &config.endpoint,
        &config.api_key,
        config.route.clone(),
        config.retry.clone(),
        stats.clone(),
        cancel.clone(),
    ));
    let mut workload = Workload::new(&config.workload);
    let permits = Arc::new(Semaphore::new(config.concurrency.max(1)));
    let mut tasks: JoinSet<Result<(), Fatal>> = JoinSet::new();
    let mut fatal: Option<Fatal> = None;
    let started = Instant::now();
    let deadline = match config.stop {
        Stop::Duration(duration) => Some(started + duration),
        Stop::Count(_) => None,
    };
    let batch = config.batch_size.max(1) as u64;
    let mut dispatched: u64 = 0;
    'dispatch: loop {
        let take = match config.stop {
            Stop::Count(count) if dispatched >= count => break,
            Stop::Count(count) => batch.min(count - dispatched),
            Stop::Duration(_) => batch,
        };
        if let Some(rate) = config.rate {
            let due = started + Duration::from_secs_f64(dispatched as f64 / rate);
            if deadline.is_some_and(|deadline| due >= deadline) {
                break;
            }
            tokio::select! {
                _ = tokio::time::sleep_until(due) => {}
                _ = cancel.cancelled() => break 'dispatch,
            }
        }
        let permit = tokio::select! {
            permit = permits.clone().acquire_owned() => permit.expect("the semaphore is never closed"),
            _ = cancel.cancelled() => break 'dispatch,
        };
        if deadline.is_some_and(|deadline| Instant::now() >= deadline) || cancel.is_cancelled() {
            break;
        }
        let orders: Vec<OutgoingOrder> = (0..take).map(|_| workload.next_order()).collect();
        dispatched += take;
        let sender = sender.clone();
        tasks.spawn(async move {
            let result = sender.send(orders).await;
            drop(permit);
            result
        });
        while let Some(done) = tasks.try_join_next() {
            if let Ok(Err(error)) = done {
                fatal.get_or_insert(error);
                cancel.cancel();
                break 'dispatch;
            }
        }
    }
    while let Some(done) = tasks.join_next().await {
        if let Ok(Err(error)) = done {
            fatal.get_or_insert(error);
            cancel.cancel();
        }
    }
    let interrupted = cancel.is_cancelled() && fatal.is_none();
    stats.summary(started.elapsed(), interrupted, fatal.map(|f| f.to_string()))
}
