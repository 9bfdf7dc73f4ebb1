//! Sending orders to the API with retries: exponential backoff with full jitter on 429, 5xx and
//! transport errors (honouring `Retry-After`), never on 400/403; a `207` re-sends only the failed
//! entries; a batch refused with `400` re-sends the orders the errors do not name (or is bisected
//! when they name none), so one invalid order never keeps valid ones out.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use base64::Engine;
use rand::RngExt;
use reqwest::StatusCode;
use serde::Deserialize;
use tokio_util::sync::CancellationToken;

use crate::stats::{Outcome, Stats};
use crate::workload::OutgoingOrder;

/// Which route the producer uses.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Route {
    /// `/v1/orders` (batch size 1) or `/v1/orders/batch`.
    V1,
    /// `/orders` with the `{StreamName, PartitionKey, Data}` envelope.
    Legacy {
        /// The stream name the envelope must carry.
        stream_name: String,
    },
}

/// Retry tuning.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Re-sends of one order after the first attempt.
    pub max_retries: u32,
    /// First backoff ceiling; doubles per attempt.
    pub base: Duration,
    /// Largest backoff ceiling.
    pub cap: Duration,
}

impl Default for RetryPolicy {
    fn default() -> Self {
        RetryPolicy {
            max_retries: 8,
            base: Duration::from_millis(50),
            cap: Duration::from_secs(5),
        }
    }
}

/// Why the whole run must stop.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum Fatal {
    /// 403: the key is missing or wrong.
    #[error("the API refused the API key (403 Forbidden) at {0}")]
    Forbidden(String),
    /// No connection could be made at all.
    #[error("cannot reach {endpoint}: {reason}")]
    Unreachable {
        /// The URL.
        endpoint: String,
        /// The transport error.
        reason: String,
    },
}

/// Sends orders; shared by all sending tasks.
pub struct Sender {
    http: reqwest::Client,
    endpoint: String,
    api_key: String,
    route: Route,
    policy: RetryPolicy,
    stats: Arc<Stats>,
    cancel: CancellationToken,
    /// Set once any response came back: from then on transport errors are retried, before it they
    /// mean the endpoint is unreachable.
    reached: AtomicBool,
}

/// What one HTTP attempt gave.
enum Answer {
    Status {
        status: StatusCode,
        body: Vec<u8>,
        retry_after: Option<Duration>,
    },
    Transport(String),
}

#[derive(Deserialize)]
struct ErrorBody {
    #[serde(default)]
    message: String,
    #[serde(default)]
    errors: Vec<String>,
}

#[derive(Deserialize)]
struct BatchAnswer {
    records: Vec<serde_json::Value>,
}

impl Sender {
    /// A sender for `endpoint` (the base URL, stage included).
    pub fn new(
        http: reqwest::Client,
        endpoint: &str,
        api_key: &str,
        route: Route,
        policy: RetryPolicy,
        stats: Arc<Stats>,
        cancel: CancellationToken,
    ) -> Self {
        Sender {
            http,
            endpoint: endpoint.trim_end_matches('/').to_owned(),
            api_key: api_key.to_owned(),
            route,
            policy,
            stats,
            cancel,
            reached: AtomicBool::new(false),
        }
    }

    fn expected(&self, order: &OutgoingOrder, outcome: &Outcome) -> bool {
        let edge_validates = matches!(self.route, Route::V1);
        match (order.invalid_reason, outcome) {
            (None, Outcome::Accepted) => true,
            (Some(_), Outcome::Accepted) => !edge_validates,
            (Some(_), Outcome::Rejected { status: 400, .. }) => edge_validates,
            _ => false,
        }
    }

    fn finish(&self, order: &OutgoingOrder, outcome: Outcome) {
        let expected = self.expected(order, &outcome);
        self.stats.record_outcome(outcome, expected);
    }

    fn give_up_all(&self, orders: &[OutgoingOrder], reason: &str) {
        for order in orders {
            self.finish(
                order,
                Outcome::GaveUp {
                    reason: reason.to_owned(),
                },
            );
        }
    }

    async fn post(&self, path: &str, body: Vec<u8>) -> Answer {
        let started = Instant::now();
        let result = self
            .http
            .post(format!("{}{path}", self.endpoint))
            .header("x-api-key", &self.api_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await;
        let answer = match result {
            Ok(response) => {
                let status = response.status();
                let retry_after = response
                    .headers()
                    .get("retry-after")
                    .and_then(|v| v.to_str().ok())
                    .and_then(|v| v.trim().parse::<f64>().ok())
                    .filter(|s| s.is_finite() && *s >= 0.0)
                    .map(Duration::from_secs_f64);
                match response.bytes().await {
                    Ok(bytes) => Answer::Status {
                        status,
                        body: bytes.to_vec(),
                        retry_after,
                    },
                    Err(error) => Answer::Transport(error.to_string()),
                }
            }
            Err(error) => Answer::Transport(describe(&error)),
        };
        self.stats.record_request(started.elapsed());
        if matches!(answer, Answer::Status { .. }) {
            self.reached.store(true, Ordering::Relaxed);
        }
        answer
    }

    /// Waits before retry number `attempt` (1-based); `false` if cancelled meanwhile.
    async fn backoff(&self, attempt: u32, retry_after: Option<Duration>) -> bool {
        let ceiling = self
            .policy
            .base
            .saturating_mul(2u32.saturating_pow(attempt.saturating_sub(1)))
            .min(self.policy.cap);
        let jittered = ceiling.mul_f64(rand::rng().random_range(0.0..1.0));
        let wait = retry_after.map_or(jittered, |after| after.max(jittered));
        tokio::select! {
            _ = tokio::time::sleep(wait) => true,
            _ = self.cancel.cancelled() => false,
        }
    }

    /// Whether a transport error is fatal (nothing was ever reached) or retryable.
    fn transport_error(&self, reason: String) -> Result<String, Fatal> {
        if self.reached.load(Ordering::Relaxed) {
            Ok(reason)
        } else {
            Err(Fatal::Unreachable {
                endpoint: self.endpoint.clone(),
                reason,
            })
        }
    }

    /// Sends `orders` (one request's worth) to completion: every order ends accepted, rejected
    /// or given up. `Err` only for a reason to stop the whole run.
    pub async fn send(&self, orders: Vec<OutgoingOrder>) -> Result<(), Fatal> {
        self.stats.record_sent(orders.len() as u64);
        match (&self.route, orders.len()) {
            (Route::V1, 1) => {
                self.send_one(orders.into_iter().next().expect("one order"), None)
                    .await
            }
            (Route::V1, _) => self.send_batch(orders).await,
            (Route::Legacy { stream_name }, _) => {
                for order in orders {
                    self.send_one(order, Some(stream_name)).await?;
                }
                Ok(())
            }
        }
    }

    /// One order on `/v1/orders`, or the legacy route when `legacy_stream` is set.
    async fn send_one(
        &self,
        order: OutgoingOrder,
        legacy_stream: Option<&str>,
    ) -> Result<(), Fatal> {
        let (path, body) = match legacy_stream {
            None => ("/v1/orders", order.body.clone()),
            Some(stream) => {
                let envelope = serde_json::json!({
                    "StreamName": stream,
                    "PartitionKey": if order.customer_id.is_empty() { "unknown" } else { &order.customer_id },
                    "Data": base64::engine::general_purpose::STANDARD.encode(&order.body),
                });
                ("/orders", envelope.to_string().into_bytes())
            }
        };
        let mut attempt = 0;
        loop {
            let (reason, retry_after) = match self.post(path, body.clone()).await {
                Answer::Status { status, .. } if status.is_success() => {
                    self.finish(&order, Outcome::Accepted);
                    return Ok(());
                }
                Answer::Status {
                    status: StatusCode::FORBIDDEN,
                    ..
                } => {
                    self.give_up_all(std::slice::from_ref(&order), "403 Forbidden");
                    return Err(Fatal::Forbidden(self.endpoint.clone()));
                }
                Answer::Status {
                    status,
                    body,
                    retry_after,
                } if retryable(status) => (
                    format!("{} {}", status.as_u16(), message_of(&body)),
                    retry_after,
                ),
                Answer::Status { status, body, .. } => {
                    let message = first_error(&body);
                    self.finish(
                        &order,
                        Outcome::Rejected {
                            status: status.as_u16(),
                            message,
                        },
                    );
                    return Ok(());
                }
                Answer::Transport(reason) => match self.transport_error(reason) {
                    Ok(reason) => (reason, None),
                    Err(fatal) => {
                        self.give_up_all(std::slice::from_ref(&order), "endpoint unreachable");
                        return Err(fatal);
                    }
                },
            };
            attempt += 1;
            if attempt > self.policy.max_retries || !self.backoff(attempt, retry_after).await {
                let why = if self.cancel.is_cancelled() {
                    "interrupted".to_owned()
                } else {
                    format!("retries exhausted, last: {reason}")
                };
                self.give_up_all(std::slice::from_ref(&order), &why);
                return Ok(());
            }
            self.stats.record_retry(1);
        }
    }

    /// A batch on `/v1/orders/batch`.
    async fn send_batch(&self, orders: Vec<OutgoingOrder>) -> Result<(), Fatal> {
        // Work list of (orders, attempt): bisected halves and partial retries are pushed back.
        let mut work = vec![(orders, 0u32)];
        while let Some((pending, attempt)) = work.pop() {
            if pending.is_empty() {
                continue;
            }
            if attempt > 0 {
                if attempt > self.policy.max_retries {
                    self.give_up_all(&pending, "retries exhausted");
                    continue;
                }
                self.stats.record_retry(pending.len() as u64);
            }
            let mut body =
                Vec::with_capacity(pending.iter().map(|o| o.body.len() + 1).sum::<usize>() + 16);
            body.extend_from_slice(b"{\"orders\":[");
            for (index, order) in pending.iter().enumerate() {
                if index > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&order.body);
            }
            body.extend_from_slice(b"]}");
            match self.post("/v1/orders/batch", body).await {
                Answer::Status {
                    status,
                    body,
                    retry_after,
                } if status.is_success() => {
                    let results = serde_json::from_slice::<BatchAnswer>(&body)
                        .map(|a| a.records)
                        .unwrap_or_default();
                    if results.len() != pending.len() {
                        // An answer we cannot match to the orders: treat as a failed attempt.
                        self.retry_later(&mut work, pending, attempt, retry_after)
                            .await;
                        continue;
                    }
                    let mut failed = Vec::new();
                    for (order, result) in pending.into_iter().zip(results) {
                        if result.get("sequence_number").is_some() {
                            self.finish(&order, Outcome::Accepted);
                        } else {
                            failed.push(order);
                        }
                    }
                    if !failed.is_empty() {
                        self.retry_later(&mut work, failed, attempt, retry_after)
                            .await;
                    }
                }
                Answer::Status {
                    status: StatusCode::FORBIDDEN,
                    ..
                } => {
                    self.give_up_all(&pending, "403 Forbidden");
                    for (rest, _) in work.drain(..) {
                        self.give_up_all(&rest, "403 Forbidden");
                    }
                    return Err(Fatal::Forbidden(self.endpoint.clone()));
                }
                Answer::Status {
                    status,
                    retry_after,
                    ..
                } if retryable(status) => {
                    self.retry_later(&mut work, pending, attempt, retry_after)
                        .await;
                }
                Answer::Status { status, body, .. } => {
                    let named = named_indices(&body, pending.len());
                    if pending.len() == 1 {
                        let message = first_error(&body);
                        let order = pending.into_iter().next().expect("one order");
                        self.finish(
                            &order,
                            Outcome::Rejected {
                                status: status.as_u16(),
                                message,
                            },
                        );
                    } else if !named.is_empty() && status == StatusCode::BAD_REQUEST {
                        let errors = errors_of(&body);
                        let mut resend = Vec::new();
                        for (index, order) in pending.into_iter().enumerate() {
                            if named.contains(&index) {
                                let prefix = format!("/orders/{index}");
                                let message = errors
                                    .iter()
                                    .find(|e| {
                                        e.starts_with(&format!("{prefix}/"))
                                            || e.starts_with(&format!("{prefix}:"))
                                    })
                                    .map(|e| e[prefix.len()..].to_owned())
                                    .unwrap_or_default();
                                self.finish(
                                    &order,
                                    Outcome::Rejected {
                                        status: 400,
                                        message,
                                    },
                                );
                            } else {
                                resend.push(order);
                            }
                        }
                        if !resend.is_empty() {
                            work.push((resend, attempt + 1));
                        }
                    } else {
                        // The answer names no order (or is 413): bisect until the culprits stand
                        // alone. The halves are re-sends, counted once each at the loop's top
                        // (an attempt of at least 1), without using up more of the retry budget.
                        let mut first = pending;
                        let second = first.split_off(first.len() / 2);
                        work.push((second, attempt.max(1)));
                        work.push((first, attempt.max(1)));
                    }
                }
                Answer::Transport(reason) => match self.transport_error(reason) {
                    Ok(_) => {
                        self.retry_later(&mut work, pending, attempt, None).await;
                    }
                    Err(fatal) => {
                        self.give_up_all(&pending, "endpoint unreachable");
                        for (rest, _) in work.drain(..) {
                            self.give_up_all(&rest, "endpoint unreachable");
                        }
                        return Err(fatal);
                    }
                },
            }
        }
        Ok(())
    }

    /// Backs off and queues `orders` for another attempt; gives them up if cancelled.
    async fn retry_later(
        &self,
        work: &mut Vec<(Vec<OutgoingOrder>, u32)>,
        orders: Vec<OutgoingOrder>,
        attempt: u32,
        retry_after: Option<Duration>,
    ) {
        if attempt + 1 > self.policy.max_retries {
            self.give_up_all(&orders, "retries exhausted");
        } else if !self.backoff(attempt + 1, retry_after).await {
            self.give_up_all(&orders, "interrupted");
        } else {
            work.push((orders, attempt + 1));
        }
    }
}

fn retryable(status: StatusCode) -> bool {
    status == StatusCode::TOO_MANY_REQUESTS || status.is_server_error()
}

fn describe(error: &reqwest::Error) -> String {
    let kind = if error.is_timeout() {
        "timed out"
    } else if error.is_connect() {
        "connection failed"
    } else {
        "request failed"
    };
    let mut source: Option<&dyn std::error::Error> = std::error::Error::source(error);
    let mut detail = String::new();
    while let Some(inner) = source {
        detail = inner.to_string();
        source = inner.source();
    }
    if detail.is_empty() {
        kind.to_owned()
    } else {
        format!("{kind}: {detail}")
    }
}

fn errors_of(body: &[u8]) -> Vec<String> {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.errors)
        .unwrap_or_default()
}

fn message_of(body: &[u8]) -> String {
    serde_json::from_slice::<ErrorBody>(body)
        .map(|b| b.message)
        .unwrap_or_default()
}

/// The first validation error without its `/orders/N` prefix, or the message.
fn first_error(body: &[u8]) -> String {
    match serde_json::from_slice::<ErrorBody>(body) {
        Ok(parsed) => match parsed.errors.first() {
            Some(error) => strip_order_prefix(error).to_owned(),
            None => parsed.message,
        },
        Err(_) => String::from_utf8_lossy(&body[..body.len().min(200)]).into_owned(),
    }
}

fn strip_order_prefix(error: &str) -> &str {
    match error.strip_prefix("/orders/") {
        Some(rest) => rest.trim_start_matches(|c: char| c.is_ascii_digit()),
        None => error,
    }
}

/// Indices of the orders a batch's 400 names (`/orders/N/...` or `/orders/N: ...`).
fn named_indices(body: &[u8], count: usize) -> BTreeSet<usize> {
    errors_of(body)
        .iter()
        .filter_map(|error| {
            let rest = error.strip_prefix("/orders/")?;
            let digits: String = rest.chars().take_while(char::is_ascii_digit).collect();
            digits.parse().ok().filter(|index| *index < count)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn batch_errors_name_their_orders() {
        let body = br#"{"message": "Invalid request body", "errors": ["/orders/3/order_id: is required", "/orders/12: must be an object", "/orders/99/x: out of range", "/orders: must have 1 to 500 orders"]}"#;
        assert_eq!(named_indices(body, 20), BTreeSet::from([3, 12]));
        assert_eq!(first_error(body), "/order_id: is required");
        assert_eq!(
            strip_order_prefix("/orders/12: must be an object"),
            ": must be an object"
        );
    }
}
