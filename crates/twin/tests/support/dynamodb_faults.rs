//! Test support: a fault-injecting DynamoDB proxy in front of the twin's dynalite
//! ([`orderflow_twin::dynamodb::Dynalite`]), table readers, Kinesis events built in Lambda's wire
//! format.

#![allow(dead_code, unreachable_pub)]

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use aws_lambda_events::event::kinesis::KinesisEvent;
use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use serde_json::{Value, json};

/// Every item of a table, keyed by `(customer_id, order_id)`.
pub async fn scan_all(
    client: &aws_sdk_dynamodb::Client,
    table: &str,
) -> HashMap<(String, String), HashMap<String, aws_sdk_dynamodb::types::AttributeValue>> {
    let mut items = HashMap::new();
    let mut start = None;
    loop {
        let page = client
            .scan()
            .table_name(table)
            .set_exclusive_start_key(start)
            .send()
            .await
            .unwrap();
        for item in page.items.unwrap_or_default() {
            let key = (
                item["customer_id"].as_s().unwrap().clone(),
                item["order_id"].as_s().unwrap().clone(),
            );
            items.insert(key, item);
        }
        start = page.last_evaluated_key;
        if start.is_none() {
            return items;
        }
    }
}

/// One record for a Kinesis event: data bytes, sequence number, arrival time (seconds).
pub struct RecordSpec {
    pub data: Vec<u8>,
    pub sequence_number: String,
    pub arrival_seconds: f64,
}

/// A Kinesis event as Lambda delivers it (JSON, built by the consumer crate), decoded the way the
/// handler decodes it.
pub fn kinesis_event(records: &[RecordSpec]) -> KinesisEvent {
    let text = orderflow_consumer::kinesis_event(
        &orderflow_consumer::EventSource::LOCAL,
        records
            .iter()
            .map(|record| orderflow_consumer::EventRecord {
                shard_id: "shardId-000000000003",
                partition_key: "pk",
                sequence_number: &record.sequence_number,
                data: &record.data,
                arrival_ms: (record.arrival_seconds * 1000.0).round() as u64,
            }),
    );
    serde_json::from_slice::<orderflow_consumer::OrderRecordsEvent>(&text)
        .expect("a valid Kinesis event")
        .0
}

/// A Kinesis-like sequence number for position `n` (56 digits, increasing).
pub fn sequence_number(n: usize) -> String {
    format!("4959033827149025660855969253836157109592157598913{n:07}")
}

/// Faults the proxy injects into `PutItem` calls.
#[derive(Clone, Default)]
pub struct Faults {
    /// One `PutItem` call in n (pseudo-randomly chosen by its call number, so no item is hit in
    /// every retry round by a fixed rhythm) is answered 400 ProvisionedThroughputExceededException.
    pub throttle_every: Option<usize>,
    /// One `PutItem` call in n (likewise) is answered 500 InternalServerError.
    pub error_every: Option<usize>,
    /// Items of these customers are never written: always throttled.
    pub poison_customers: HashSet<String>,
}

/// What the proxy did, for assertions that the faults really happened.
#[derive(Default)]
pub struct ProxyCounts {
    pub put_calls: AtomicUsize,
    pub throttled: AtomicUsize,
    pub errors: AtomicUsize,
    /// `PutItem` calls refused because the item belongs to a poison customer.
    pub poison_refusals: AtomicUsize,
}

/// A DynamoDB proxy in front of dynalite that injects throttling and 500s into `PutItem`.
pub struct FaultProxy {
    pub endpoint: String,
    pub counts: Arc<ProxyCounts>,
    server: tokio::task::JoinHandle<()>,
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.server.abort();
    }
}

struct ProxyState {
    upstream: String,
    http: reqwest::Client,
    faults: Faults,
    counts: Arc<ProxyCounts>,
}

impl FaultProxy {
    pub async fn start(upstream: &str, faults: Faults) -> FaultProxy {
        let counts = Arc::new(ProxyCounts::default());
        let state = Arc::new(ProxyState {
            upstream: upstream.to_owned(),
            http: reqwest::Client::new(),
            faults,
            counts: counts.clone(),
        });
        let app = axum::Router::new().fallback(move |headers: HeaderMap, body: Bytes| {
            let state = state.clone();
            async move { proxy(&state, headers, body).await }
        });
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let endpoint = format!("http://{}", listener.local_addr().unwrap());
        let server = tokio::spawn(async move {
            axum::serve(listener, app).await.unwrap();
        });
        FaultProxy {
            endpoint,
            counts,
            server,
        }
    }
}

fn aws_error(status: StatusCode, kind: &str) -> Response {
    let body = json!({ "__type": format!("com.amazonaws.dynamodb.v20120810#{kind}"), "message": "injected by the test proxy" });
    (
        status,
        [("content-type", "application/x-amz-json-1.0")],
        body.to_string(),
    )
        .into_response()
}

/// Whether call number `call` is one of the "one in n" (a fixed pseudo-random choice: splitmix64
/// of the call number and a salt per fault kind).
fn one_in(n: usize, call: usize, salt: u64) -> bool {
    let mut z = (call as u64) ^ salt.wrapping_mul(0xD1B5_4A32_D192_ED03);
    z = z.wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    z.is_multiple_of(n as u64)
}

async fn proxy(state: &ProxyState, headers: HeaderMap, body: Bytes) -> Response {
    let target = headers
        .get("x-amz-target")
        .and_then(|v| v.to_str().ok())
        .unwrap_or("")
        .to_owned();
    if target.ends_with(".PutItem") {
        let call = state.counts.put_calls.fetch_add(1, Ordering::SeqCst) + 1;
        let request: Value = serde_json::from_slice(&body).unwrap();
        let customer = request["Item"]["customer_id"]["S"].as_str().unwrap_or("");
        if state.faults.poison_customers.contains(customer) {
            state.counts.poison_refusals.fetch_add(1, Ordering::SeqCst);
            return aws_error(
                StatusCode::BAD_REQUEST,
                "ProvisionedThroughputExceededException",
            );
        }
        if state
            .faults
            .throttle_every
            .is_some_and(|n| one_in(n, call, 1))
        {
            state.counts.throttled.fetch_add(1, Ordering::SeqCst);
            return aws_error(
                StatusCode::BAD_REQUEST,
                "ProvisionedThroughputExceededException",
            );
        }
        if state.faults.error_every.is_some_and(|n| one_in(n, call, 2)) {
            state.counts.errors.fetch_add(1, Ordering::SeqCst);
            return aws_error(StatusCode::INTERNAL_SERVER_ERROR, "InternalServerError");
        }
    }
    let mut forward = state.http.post(&state.upstream).body(body);
    for (name, value) in &headers {
        if name != "host" && name != "content-length" {
            forward = forward.header(name, value);
        }
    }
    let answer = forward.send().await.expect("dynalite answers");
    let status = answer.status();
    let content_type = answer.headers().get("content-type").cloned();
    let bytes = answer.bytes().await.unwrap();
    let mut response = (
        StatusCode::from_u16(status.as_u16()).unwrap(),
        bytes.to_vec(),
    )
        .into_response();
    if let Some(content_type) = content_type {
        response.headers_mut().insert(
            "content-type",
            content_type.to_str().unwrap().parse().unwrap(),
        );
    }
    response
}
