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
//! Every request needs `x-api-key` (`403`) and a JSON body (`Content-Type` absent or
//! `application/json`, otherwise `415`, as API Gateway's `NEVER` passthrough answers). A body
//! that fails its model is `400` with every error (`/orders/3/order_id: ...`) and writes nothing.
//! The models are API Gateway's: the order's JSON Schema ([`models`]), not the Rust rule set, so
//! an order the schema accepts and the rules refuse is written, and refused downstream, as in
//! AWS. `413` over API Gateway's body limit or Kinesis' record limit; `429` when the stream
//! throttles a single record (PutRecord) or a whole call, and `207` for a batch with throttled
//! records, even all of them (PutRecords itself succeeds), as API Gateway answers; `5xx` when the
//! stream fails. Never `200` for a failure. The partition key is the order's
//! `customer_id`; the stream is fixed by configuration, never taken from the client.

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
use serde::{Deserialize, Serialize};
use serde_json::value::RawValue;

/// API Gateway's request payload limit (10 MB); larger bodies get `413`.
pub const MAX_BODY_BYTES: usize = 10 * 1024 * 1024;
/// The most orders in one batch request can ever hold: PutRecords' 500 records per call. The
/// configured limit ([`ApiConfig::max_batch_orders`], `api.max_batch_orders`) is at most this.
pub const MAX_BATCH_ORDERS: usize = 500;
/// Kinesis' error code for a write over a shard's throughput, per record in a PutRecords answer
/// or for a whole PutRecord call.
pub const THROUGHPUT_EXCEEDED: &str = "ProvisionedThroughputExceededException";
/// The `429` body API Gateway's integration answers when Kinesis throttles
/// (`kinesis_4xx_template` in `tofu/modules/ingestion_api/main.tf`); the router answers the same.
pub const THROTTLED_MESSAGE: &str =
    "Too many requests: the stream is throttling writes, retry with backoff";
/// Kinesis' record limit, partition key and data together: "Each record in the request can be
/// as large as 1 MiB ... The record size limit applies to the total size of the partition key
/// and data blob" (Kinesis API reference, PutRecords; 1 MiB is a stream's default maximum record
/// size). Kinesis refuses a larger record, which the API answers with `413`.
pub const MAX_RECORD_BYTES: usize = 1024 * 1024;
/// Kinesis' limit for one PutRecords call, partition keys included: "Each record in the request
/// can be as large as 1 MiB, up to a limit of 5 MiB for the entire request, including partition
/// keys" (Kinesis API reference, PutRecords). Kinesis refuses a larger call as a whole with
/// HTTP 400 `InvalidArgumentException` ("Records size exceeds 5 MB limit", as reported in
/// aws/amazon-kinesis-streams-for-fluent-bit issue 21 and snowplow/enrich issue 685), which API
/// Gateway's integration answers with `413` (`kinesis_4xx_template`); the router does the same
/// before writing anything.
pub const MAX_PUT_RECORDS_BYTES: usize = 5 * 1024 * 1024;

/// How the API is set up.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ApiConfig {
    /// The key every request must carry in `x-api-key`.
    pub api_key: String,
    /// The stream every record goes to. The legacy route's `StreamName` is accepted and ignored:
    /// this name always wins, so existing producers work whatever name they send.
    pub stream_name: String,
    /// The most orders in one batch (`api.max_batch_orders` in `tofu/pipeline.json`, 1 to
    /// [`MAX_BATCH_ORDERS`]).
    pub max_batch_orders: usize,
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
    /// The stream's write queue is full: nothing was taken; `503` with `Retry-After`.
    #[error("stream busy: the write queue is full")]
    Busy {
        /// When to try again.
        retry_after: Duration,
    },
}

pub mod gateway_json;
pub mod memory;
pub mod models;

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
    models: models::Models,
    sink: Arc<S>,
}

/// The API's routes over `sink`.
///
/// # Panics
/// If `config.max_batch_orders` is not 1 to [`MAX_BATCH_ORDERS`] (the twin checks its settings
/// before it gets here, OpenTofu in its variable validation).
pub fn router<S: RecordSink>(config: ApiConfig, sink: Arc<S>) -> Router {
    assert!(
        (1..=MAX_BATCH_ORDERS).contains(&config.max_batch_orders),
        "max_batch_orders must be 1 to {MAX_BATCH_ORDERS}"
    );
    let models = models::Models::new(config.max_batch_orders);
    let state = Arc::new(AppState {
        config,
        models,
        sink,
    });
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
    /// 415: the body is not declared as JSON.
    UnsupportedMediaType,
    /// 413: over the body or order size limit.
    TooLarge(String),
    /// 429: the stream throttled the whole request.
    Throttled(Option<Duration>),
    /// 503: the stream failed (details logged, not echoed).
    Unavailable,
    /// 503 with `Retry-After`: the stream cannot take more writes now; nothing was written.
    Busy(Duration),
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
            ApiError::UnsupportedMediaType => json(
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                serde_json::json!({"message": "Unsupported Media Type"}),
            ),
            ApiError::TooLarge(message) => json(
                StatusCode::PAYLOAD_TOO_LARGE,
                serde_json::json!({"message": message}),
            ),
            ApiError::Throttled(retry_after) => {
                let mut response = json(
                    StatusCode::TOO_MANY_REQUESTS,
                    serde_json::json!({"message": THROTTLED_MESSAGE}),
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
            ApiError::Busy(after) => {
                let mut response = json(
                    StatusCode::SERVICE_UNAVAILABLE,
                    serde_json::json!({"message": "Service Unavailable"}),
                );
                let seconds = after.as_secs_f64().ceil().max(1.0) as u64;
                response
                    .headers_mut()
                    .insert("retry-after", HeaderValue::from(seconds));
                response
            }
        }
    }
}

impl From<SinkError> for ApiError {
    fn from(error: SinkError) -> Self {
        match error {
            SinkError::Throttled { retry_after, .. } => ApiError::Throttled(retry_after),
            SinkError::Busy { retry_after } => ApiError::Busy(retry_after),
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

/// `415` unless the body is declared as JSON. API Gateway treats a request without
/// `Content-Type` as `application/json` and refuses any type without a mapping template with
/// "HTTP 415 Unsupported Media Type" under the `NEVER` passthrough behaviour (API Gateway
/// developer guide, "Method request behavior for payloads without mapping templates").
/// Parameters (`; charset=utf-8`) are ignored.
fn require_json(headers: &HeaderMap) -> Result<(), ApiError> {
    let Some(value) = headers.get(axum::http::header::CONTENT_TYPE) else {
        return Ok(());
    };
    let essence = value
        .to_str()
        .ok()
        .and_then(|value| value.split(';').next())
        .map(str::trim);
    match essence {
        Some(essence) if essence.eq_ignore_ascii_case("application/json") => Ok(()),
        _ => Err(ApiError::UnsupportedMediaType),
    }
}

/// The body as JSON, or `400`.
fn json_body(body: &[u8]) -> Result<serde_json::Value, ApiError> {
    serde_json::from_slice(body)
        .map_err(|error| ApiError::Invalid(vec![format!("/: not valid JSON: {error}")]))
}

/// `errors` as a `400`, or nothing.
fn reject(errors: Vec<String>) -> Result<(), ApiError> {
    if errors.is_empty() {
        Ok(())
    } else {
        Err(ApiError::Invalid(errors))
    }
}

/// One stream record, or `413` when Kinesis would refuse its size ([`MAX_RECORD_BYTES`]).
fn record(partition_key: &str, data: Vec<u8>, pointer: &str) -> Result<RecordEntry, ApiError> {
    let size = partition_key.len() + data.len();
    if size > MAX_RECORD_BYTES {
        return Err(ApiError::TooLarge(format!(
            "{pointer}: record is {size} bytes with its partition key, over Kinesis' limit of \
             {MAX_RECORD_BYTES} bytes"
        )));
    }
    Ok(RecordEntry {
        partition_key: partition_key.to_owned(),
        data,
    })
}

/// `413` when the records together are over PutRecords' per-call limit
/// ([`MAX_PUT_RECORDS_BYTES`]): nothing of the batch is written.
fn check_call_size(entries: &[RecordEntry]) -> Result<(), ApiError> {
    let size: usize = entries
        .iter()
        .map(|entry| entry.partition_key.len() + entry.data.len())
        .sum();
    if size > MAX_PUT_RECORDS_BYTES {
        return Err(ApiError::TooLarge(format!(
            "/orders: the batch is {size} bytes of records with their partition keys, over \
             Kinesis' limit of {MAX_PUT_RECORDS_BYTES} bytes for one PutRecords call; send \
             fewer orders per request"
        )));
    }
    Ok(())
}

/// The `customer_id` of an order the model accepted (a string by the schema).
fn customer_id(order: &serde_json::Value) -> &str {
    order["customer_id"].as_str().unwrap_or_default()
}

/// A record result that is a throttling failure.
fn is_throttled(result: &RecordResult) -> bool {
    matches!(result, RecordResult::Failed { error_code, .. } if error_code == THROUGHPUT_EXCEEDED)
}

async fn put_order<S: RecordSink>(
    State(state): State<Arc<AppState<S>>>,
    headers: HeaderMap,
    body: Result<Bytes, BytesRejection>,
) -> Result<Response, ApiError> {
    authorise(&headers, &state.config)?;
    require_json(&headers)?;
    let body = body_bytes(body)?;
    let order = json_body(&body)?;
    reject(state.models.order_errors(&order))?;
    let entry = record(customer_id(&order), body.to_vec(), "/")?;
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
    require_json(&headers)?;
    let body = body_bytes(body)?;
    let value = json_body(&body)?;
    reject(state.models.batch_errors(&value))?;
    // The model holds, so this is `{"orders": [object, ...]}`; each order's own text is kept
    // for the record.
    let batch: BatchBody = serde_json::from_slice(&body)
        .map_err(|error| ApiError::Invalid(vec![format!("/: {error}")]))?;
    let mut entries = Vec::with_capacity(batch.orders.len());
    for (index, order) in batch.orders.iter().enumerate() {
        let bytes = order.get().as_bytes();
        // API Gateway's batch mapping stores `$input.json("$.orders[i]")`, a re-serialisation,
        // not the client's bytes: store what it stores.
        let data = gateway_json::input_json(bytes).unwrap_or_else(|| bytes.to_vec());
        entries.push(record(
            customer_id(&value["orders"][index]),
            data,
            &format!("/orders/{index}"),
        )?);
    }
    check_call_size(&entries)?;
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
    // Even with every record throttled: PutRecords succeeded, and API Gateway's response template
    // answers `207` whenever `FailedRecordCount` is above zero.
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
    require_json(&headers)?;
    let body = body_bytes(body)?;
    // The whole body must be JSON, as for the other routes and API Gateway's model: the
    // envelope's own parse skips members it does not know without checking their text (invalid
    // UTF-8, a lone surrogate escape).
    json_body(&body)?;
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
        Ok(data) => data,
        Err(_) => {
            errors.push("/Data: must be base64".to_owned());
            Vec::new()
        }
    };
    if !errors.is_empty() {
        return Err(ApiError::Invalid(errors));
    }
    let entry = record(&envelope.partition_key, data, "/Data")?;
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
