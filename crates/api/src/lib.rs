//! The ingestion API (`docs/design.md` section 2) as an axum [`Router`] over any
//! [`RecordSink`]: the local twin plugs in its durable stream, tests plug in an in-memory one.
//! API Gateway implements the same contract in AWS (see `tofu/`).
//!
//! - `POST /v1/orders`: one order → one stream record, `200 {"shard_id","sequence_number"}`.
//! - `POST /v1/orders/batch`: `{"orders": [1..500]}` → PutRecords; `200` when all were written,
//!   `207` when some were not, each entry in request order. Each order is stored as API Gateway's
//!   mapping template stores it, re-serialised ([`gateway_json`]), not as the client's bytes.
//! - `POST /orders`: the legacy `{StreamName, PartitionKey, Data}` envelope; only the envelope is
//!   checked here, the order inside flows on and is judged downstream. `StreamName` is accepted
//!   and ignored: the configured stream always wins.
//!
//! Every request needs `x-api-key`; a body that fails validation is `400` with every error
//! (`/orders/3/order_id: ...`) and writes nothing; `413` over the size limits; `429` when the
//! stream throttles; `5xx` when it fails. Never `200` for a failure. The partition key is the
//! order's `customer_id`; the stream is fixed by configuration, never taken from the client.

use std::future::Future;
use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Bytes;
use axum::extract::rejection::BytesRejection;
use axum::extract::{DefaultBodyLimit, State};
use axum::http::{HeaderMap, HeaderValue, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::post;
use base64::Engine;
use orderflow_domain::{InvalidOrder, MAX_ORDER_BYTES, parse_order};
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// API Gateway's request payload limit (10 MB); larger bodies get `413`.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// The most orders in one batch request (PutRecords' limit).
pub const MAX_BATCH_ORDERS: usize = 500;

/// How the API is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// The key every request must carry in `x-api-key`.
    pub api_key: String,
    /// The stream every record goes to. The legacy route's `StreamName` is accepted and ignored:
    /// this name always wins, so existing producers work whatever name they send.
    pub stream_name: String,
}

/// One record to append to the stream.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RecordEntry {
    /// Kinesis partition key (the order's `customer_id`).
    pub partition_key: String,
    /// The record's bytes: the order exactly as the client sent it.
    pub data: Vec<u8>,
}

/// The stream's answer for one record, as PutRecords gives it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum RecordResult {
    /// Written.
    Written {
        /// The shard it went to.
        shard_id: String,
        /// Its sequence number in that shard.
        sequence_number: String,
    },
    /// Not written (e.g. `ProvisionedThroughputExceededException`); the client may retry it.
    Failed {
        /// Kinesis error code.
        error_code: String,
        /// Kinesis error message.
        error_message: String,
    },
}

/// Why the stream took none of the records.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SinkError {
    /// The stream is over its throughput; `429`, with `Retry-After` when known.
    #[error("throttled: {message}")]
    Throttled {
        /// What the stream said.
        message: String,
        /// When to try again.
        retry_after: Option<Duration>,
    },
    /// The stream failed; `503`.
    #[error("stream unavailable: {0}")]
    Unavailable(String),
}

pub mod gateway_json;
pub mod memory;

/// Where accepted records go: PutRecords semantics (one result per entry, in order).
pub trait RecordSink: Send + Sync + 'static {
    /// Appends the entries; the results are in entry order.
    fn put_records(
        &self,
        entries: Vec<RecordEntry>,
    ) -> impl Future<Output = Result<Vec<RecordResult>, SinkError>> + Send;
}

struct AppState<S> {
    config: ApiConfig,
    sink: Arc<S>,
}

/// The API's routes over `sink`.
pub fn router<S: RecordSink>(config: ApiConfig, sink: Arc<S>) -> Router {
    let state = Arc::new(AppState { config, sink });
    Router::new()
        .route("/v1/orders", post(put_order::<S>))
        .route("/v1/orders/batch", post(put_batch::<S>))
        .route("/orders", post(put_legacy::<S>))
        .layer(DefaultBodyLimit::max(MAX_BODY_BYTES))
        .with_state(state)
}

/// An API error: status plus the JSON body of the contract.
#[derive(Debug)]
pub enum ApiError {
    /// 403: missing or wrong API key.
    Forbidden,
    /// 400: the body fails validation; every problem as `pointer: rule`.
    Invalid(Vec<String>),
    /// 413: over the body or order size limit.
    TooLarge(String),
    /// 429: the stream throttled the whole request.
    Throttled(Option<Duration>),
    /// 503: the stream failed (details logged, not echoed).
    Unavailable,
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let json = |status: StatusCode, body: serde_json::Value| {
            (
                status,
                [("content-type", "application/json")],
                body.to_string(),
            )
                .into_response()
        };
        match self {
            ApiError::Forbidden => json(
                StatusCode::FORBIDDEN,
                serde_json::json!({"message": "Forbidden"}),
            ),
            ApiError::Invalid(errors) => json(
                StatusCode::BAD_REQUEST,
                serde_json::json!({"message": "Invalid request body", "errors": errors}),
            ),
            ApiError::TooLarge(message) => json(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({"message": message}),
            ),
            ApiError::Throttled(retry_after) => {
                let mut response = json(
                    StatusCode::TOO_MANY_REQUESTS,
                    serde_json::json!({"message": "Too Many Requests"}),
                );
                if let Some(after) = retry_after {
                    let seconds = after.as_secs_f64().ceil().max(1.0) as u64;
                    response
                        .headers_mut()
                        .insert("retry-after", HeaderValue::from(seconds));
                }
                response
            }
            ApiError::Unavailable => json(
                StatusCode::SERVICE_UNAVAILABLE,
                serde_json::json!({"message": "Service Unavailable"}),
            ),
        }
    }
}

impl From<SinkError> for ApiError {
    fn from(error: SinkError) -> Self {
        match error {
            SinkError::Throttled { retry_after, .. } => ApiError::Throttled(retry_after),
            SinkError::Unavailable(message) => {
                tracing::error!(error = %message, "stream write failed");
                ApiError::Unavailable
            }
        }
    }
}

/// The request body, or `413` in the contract's shape when it is over [`MAX_BODY_BYTES`].
fn body_bytes(body: Result<Bytes, BytesRejection>) -> Result<Bytes, ApiError> {
    body.map_err(|rejection| match rejection.status() {
        StatusCode::PAYLOAD_TOO_LARGE => ApiError::TooLarge(format!(
            "request body over the limit of {MAX_BODY_BYTES} bytes"
        )),
        _ => ApiError::Invalid(vec![format!("/: could not read the body: {rejection}")]),
    })
}

/// Checks `x-api-key` in constant time for equal lengths.
fn authorise(headers: &HeaderMap, config: &ApiConfig) -> Result<(), ApiError> {
    let given = headers
        .get("x-api-key")
        .map(HeaderValue::as_bytes)
        .unwrap_or_default();
    let expected = config.api_key.as_bytes();
    let same = given.len() == expected.len()
        && given
            .iter()
            .zip(expected)
            .fold(0u8, |diff, (a, b)| diff | (a ^ b))
            == 0;
    if same && !expected.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Forbidden)
    }
}

/// Validates one order; its errors are reported under `parent` (`""` or `/orders/3`).
fn check_order(bytes: &[u8], parent: &str) -> Result<String, ApiError> {
    match parse_order(bytes) {
        Ok(order) => Ok(order.customer_id.into_owned()),
        Err(InvalidOrder::TooLarge { size }) => Err(ApiError::TooLarge(format!(
            "{}: order is {size} bytes, over the limit of {MAX_ORDER_BYTES} bytes",
            if parent.is_empty() { "/" } else { parent }
        ))),
        Err(error) => Err(ApiError::Invalid(error.messages(parent))),
    }
}

/// A record result that is a throttling failure.
fn is_throttled(result: &RecordResult) -> bool {
    matches!(result, RecordResult::Failed { error_code, .. } if error_code == "ProvisionedThroughputExceededException")
}

async fn put_order<S: RecordSink>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorise(&headers, &state.config)?;
    let body = body_bytes(body)?;
    let partition_key = check_order(&body, "")?;
    let entry = RecordEntry {
        partition_key,
        data: body.to_vec(),
    };
    let written = put_one(&*state.sink, entry).await?;
    Ok(axum::Json(serde_json::json!({
        "shard_id": written.0,
        "sequence_number": written.1,
    }))
    .into_response())
}

/// Writes one record; its `(shard_id, sequence_number)`, or the error the route answers.
async fn put_one<S: RecordSink>(
    sink: &S,
    entry: RecordEntry,
) -> Result<(String, String), ApiError> {
    match sink.put_records(vec![entry]).await?.pop() {
        Some(RecordResult::Written {
            shard_id,
            sequence_number,
        }) => Ok((shard_id, sequence_number)),
        Some(failed) if is_throttled(&failed) => Err(ApiError::Throttled(None)),
        Some(RecordResult::Failed { error_code, .. }) => {
            tracing::error!(error_code = %error_code, "stream refused a record");
            Err(ApiError::Unavailable)
        }
        None => {
            tracing::error!("stream answered no result for one record");
            Err(ApiError::Unavailable)
        }
    }
}

#[derive(Deserialize)]
struct BatchBody {
    orders: Vec<Box<RawValue>>,
}

/// The batch route's answer: PutRecords' own shape.
#[derive(Debug, Serialize, Deserialize, PartialEq, Eq)]
pub struct BatchResponse {
    /// Entries not written.
    pub failed_record_count: usize,
    /// One result per order, in request order.
    pub records: Vec<RecordResult>,
}

async fn put_batch<S: RecordSink>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorise(&headers, &state.config)?;
    let body = body_bytes(body)?;
    let batch: BatchBody = serde_json::from_slice(&body).map_err(|error| {
        ApiError::Invalid(vec![format!(
            "/: must be an object {{\"orders\": [...]}}: {error}"
        )])
    })?;
    if !(1..=MAX_BATCH_ORDERS).contains(&batch.orders.len()) {
        return Err(ApiError::Invalid(vec![format!(
            "/orders: must have 1 to {MAX_BATCH_ORDERS} orders"
        )]));
    }
    let mut entries = Vec::with_capacity(batch.orders.len());
    let mut errors = Vec::new();
    for (index, order) in batch.orders.iter().enumerate() {
        let bytes = order.get().as_bytes();
        match check_order(bytes, &format!("/orders/{index}")) {
            Ok(partition_key) => entries.push(RecordEntry {
                partition_key,
                // API Gateway's batch mapping stores `$input.json("$.orders[i]")`, a
                // re-serialisation, not the client's bytes: store what it stores.
                data: gateway_json::input_json(bytes).unwrap_or_else(|| bytes.to_vec()),
            }),
            Err(ApiError::Invalid(mut more)) => errors.append(&mut more),
            Err(other) => return Err(other),
        }
    }
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let results = state.sink.put_records(entries).await?;
    if results.len() != batch.orders.len() {
        tracing::error!(
            expected = batch.orders.len(),
            got = results.len(),
            "stream answered the wrong number of results"
        );
        return Err(ApiError::Unavailable);
    }
    let failed_record_count = results
        .iter()
        .filter(|r| matches!(r, RecordResult::Failed { .. }))
        .count();
    if failed_record_count == results.len() && results.iter().all(is_throttled) {
        return Err(ApiError::Throttled(None));
    }
    let status = if failed_record_count == 0 {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    Ok((
        status,
        axum::Json(BatchResponse {
            failed_record_count,
            records: results,
        }),
    )
        .into_response())
}

#[derive(Deserialize)]
#[serde(rename_all = "PascalCase")]
struct LegacyEnvelope {
    /// Accepted and ignored (the configured stream always wins); optional.
    #[serde(default)]
    stream_name: Option<String>,
    partition_key: String,
    data: String,
}

async fn put_legacy<S: RecordSink>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorise(&headers, &state.config)?;
    let body = body_bytes(body)?;
    let envelope: LegacyEnvelope = serde_json::from_slice(&body).map_err(|error| {
        ApiError::Invalid(vec![format!(
            "/: must be {{\"StreamName\", \"PartitionKey\", \"Data\"}}: {error}"
        )])
    })?;
    let mut errors = Vec::new();
    if let Some(name) = envelope
        .stream_name
        .as_deref()
        .filter(|name| *name != state.config.stream_name)
    {
        // Never used to pick a stream; noted for whoever migrates the producer.
        tracing::debug!(
            sent = name,
            configured = %state.config.stream_name,
            "legacy route: StreamName ignored, writing to the configured stream"
        );
    }
    if !(1..=256).contains(&envelope.partition_key.chars().count()) {
        errors.push("/PartitionKey: must be 1 to 256 characters".to_owned());
    }
    let data = base64::engine::general_purpose::STANDARD.decode(envelope.data.as_bytes());
    let data = match data {
        Ok(data) if data.is_empty() => {
            errors.push("/Data: must not be empty".to_owned());
            Vec::new()
        }
        Ok(data) if data.len() > MAX_ORDER_BYTES => {
            return Err(ApiError::TooLarge(format!(
                "/Data: {} bytes, over the limit of {MAX_ORDER_BYTES} bytes",
                data.len()
            )));
        }
        Ok(data) => data,
        Err(_) => {
            errors.push("/Data: must be base64".to_owned());
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let entry = RecordEntry {
        partition_key: envelope.partition_key,
        data,
    };
    let written = put_one(&*state.sink, entry).await?;
    // Kinesis' PutRecord answer, passed through by API Gateway; the stream is KMS-encrypted
    // (`tofu/modules/stream`), so Kinesis adds `EncryptionType`.
    Ok(axum::Json(serde_json::json!({
        "ShardId": written.0,
        "SequenceNumber": written.1,
        "EncryptionType": "KMS",
    }))
    .into_response())
}
