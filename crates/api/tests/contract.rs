//! The API contract of `docs/design.md` section 2, request by request, through the router
//! (no port bound).

use std::sync::Arc;
use std::time::Duration;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use http_body_util::BodyExt;
use orderflow_api::memory::{MemoryFaults, MemorySink};
use orderflow_api::{
    ApiConfig, MAX_BATCH_ORDERS, MAX_BODY_BYTES, MAX_PUT_RECORDS_BYTES, MAX_RECORD_BYTES,
    RecordEntry, RecordResult, RecordSink, SinkError, THROTTLED_MESSAGE, THROUGHPUT_EXCEEDED,
    router,
};
use serde_json::{Value, json};
use tower::ServiceExt;

const KEY: &str = "test-key";

const ORDER: &str = r#"{"customer_id": "user1", "order_id": "o1", "order_date": "2024-06-08T18:05:03Z",
  "status": "paid", "shipping_address": {"street": "s", "city": "c", "state": "t", "zip": "z", "country": "k"},
  "purchase_details": {"payment_type": "cash", "amount": 0.10, "currency": "EUR", "instalments": 1},
  "product_details": [{"product_id": "p", "name": "n", "quantity": 1, "item_details": {"color": "c", "size": "s"}}]}"#;

fn app(faults: MemoryFaults) -> (Router, Arc<MemorySink>) {
    let sink = Arc::new(MemorySink::new(faults));
    let config = ApiConfig {
        api_key: KEY.into(),
        stream_name: "orders".into(),
        max_batch_orders: MAX_BATCH_ORDERS,
    };
    (router(config, sink.clone()), sink)
}

async fn post(
    app: &Router,
    path: &str,
    key: Option<&str>,
    body: impl Into<Body>,
) -> (StatusCode, Value, Option<String>) {
    let mut request = Request::post(path).header("content-type", "application/json");
    if let Some(key) = key {
        request = request.header("x-api-key", key);
    }
    let response = app
        .clone()
        .oneshot(request.body(body.into()).unwrap())
        .await
        .unwrap();
    let status = response.status();
    let retry_after = response
        .headers()
        .get("retry-after")
        .map(|v| v.to_str().unwrap().to_owned());
    let bytes = response.into_body().collect().await.unwrap().to_bytes();
    (
        status,
        serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        retry_after,
    )
}

fn order_with(field: &str, value: Value) -> String {
    let mut order: Value = serde_json::from_str(ORDER).unwrap();
    order[field] = value;
    order.to_string()
}

#[tokio::test]
async fn a_missing_or_wrong_key_is_forbidden_and_writes_nothing() {
    let (app, sink) = app(MemoryFaults::default());
    for key in [None, Some("wrong"), Some("")] {
        for path in ["/v1/orders", "/v1/orders/batch", "/orders"] {
            let (status, body, _) = post(&app, path, key, ORDER).await;
            assert_eq!(status, StatusCode::FORBIDDEN);
            assert_eq!(body, json!({"message": "Forbidden"}));
        }
    }
    assert_eq!(sink.calls(), 0);
}

#[tokio::test]
async fn one_order_is_written_as_sent_with_customer_id_as_partition_key() {
    let (app, sink) = app(MemoryFaults::default());
    let (status, body, _) = post(&app, "/v1/orders", Some(KEY), ORDER).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(body["shard_id"], "shardId-000000000000");
    assert!(body["sequence_number"].is_string());
    let records = sink.records();
    assert_eq!(records.len(), 1);
    assert_eq!(records[0].partition_key, "user1");
    assert_eq!(
        records[0].data,
        ORDER.as_bytes(),
        "the exact bytes, amount text included"
    );
}

#[tokio::test]
async fn an_invalid_order_is_400_with_every_error_and_nothing_written() {
    let (app, sink) = app(MemoryFaults::default());
    let body = order_with("status", json!("lost")).replace(r#""order_id":"o1","#, "");
    let (status, answer, _) = post(&app, "/v1/orders", Some(KEY), body).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(answer["message"], "Invalid request body");
    let errors: Vec<&str> = answer["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e.as_str().unwrap())
        .collect();
    // The model's messages: the pointer of the value (the object for a missing property), the
    // rule, the value masked.
    assert_eq!(errors.len(), 2, "{errors:?}");
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/: ") && e.contains("order_id")),
        "{errors:?}"
    );
    assert!(
        errors
            .iter()
            .any(|e| e.starts_with("/status: ") && !e.contains("lost")),
        "{errors:?}"
    );
    assert_eq!(sink.calls(), 0);
}

#[tokio::test]
async fn a_batch_is_all_or_nothing_on_validation_with_paths_per_order() {
    let (app, sink) = app(MemoryFaults::default());
    let good: Value = serde_json::from_str(ORDER).unwrap();
    let bad: Value = serde_json::from_str(&order_with("order_id", json!("has space"))).unwrap();
    let (status, answer, _) = post(
        &app,
        "/v1/orders/batch",
        Some(KEY),
        json!({"orders": [good, good, good, bad]}).to_string(),
    )
    .await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(
        answer["errors"][0].as_str().unwrap().split(':').next(),
        Some("/orders/3/order_id")
    );
    assert_eq!(sink.calls(), 0);
    for (orders, rule) in [
        (json!([]), "less than 1 item"),
        (Value::Array(vec![good.clone(); 501]), "more than 500 items"),
    ] {
        let (status, answer, _) = post(
            &app,
            "/v1/orders/batch",
            Some(KEY),
            json!({"orders": orders}).to_string(),
        )
        .await;
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert_eq!(answer["errors"][0], format!("/orders: value has {rule}"));
    }
}

#[tokio::test]
async fn a_batch_answers_200_or_207_in_request_order() {
    let (app, sink) = app(MemoryFaults {
        partial_every: Some(2),
        ..MemoryFaults::default()
    });
    let orders: Vec<Value> = (0..4)
        .map(|n| serde_json::from_str(&order_with("order_id", json!(format!("o{n}")))).unwrap())
        .collect();
    let body = json!({"orders": orders}).to_string();
    let (status, answer, _) = post(&app, "/v1/orders/batch", Some(KEY), body.clone()).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(answer["failed_record_count"], 0);
    assert_eq!(answer["records"].as_array().unwrap().len(), 4);
    let (status, answer, _) = post(&app, "/v1/orders/batch", Some(KEY), body).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(answer["failed_record_count"], 2);
    let records = answer["records"].as_array().unwrap();
    assert!(records[0]["sequence_number"].is_string());
    assert_eq!(
        records[1]["error_code"],
        "ProvisionedThroughputExceededException"
    );
    assert!(records[2]["shard_id"].is_string());
    assert!(records[3]["error_message"].is_string());
    assert_eq!(sink.records().len(), 6);
}

#[tokio::test]
async fn a_throttled_stream_is_429_with_retry_after() {
    let (app, sink) = app(MemoryFaults {
        throttle_every: Some((1, Duration::from_millis(1500))),
        ..MemoryFaults::default()
    });
    let (status, _, retry_after) = post(&app, "/v1/orders", Some(KEY), ORDER).await;
    assert_eq!(status, StatusCode::TOO_MANY_REQUESTS);
    assert_eq!(retry_after.as_deref(), Some("2"));
    assert!(sink.records().is_empty());
}

/// A stream whose shards are all over their write throughput: every record of every call fails
/// with `ProvisionedThroughputExceededException`, as Kinesis answers PutRecords then.
struct Saturated;

impl RecordSink for Saturated {
    async fn put_records(&self, entries: Vec<RecordEntry>) -> Result<Vec<RecordResult>, SinkError> {
        Ok(entries
            .iter()
            .map(|_| RecordResult::Failed {
                error_code: THROUGHPUT_EXCEEDED.into(),
                error_message: "Rate exceeded for shard shardId-000000000000 in stream orders under account 000000000000.".into(),
            })
            .collect())
    }
}

/// Issue 11, item 5: what API Gateway's integration answers when Kinesis throttles. PutRecord
/// (single and legacy routes) fails whole: `429` with the integration's message. PutRecords
/// succeeds with every record failed: `207` with each record's error (the router answered `429`
/// before), so a producer handles it like any partial failure.
#[tokio::test]
async fn throttled_writes_answer_what_api_gateway_answers() {
    let config = ApiConfig {
        api_key: KEY.into(),
        stream_name: "orders".into(),
        max_batch_orders: MAX_BATCH_ORDERS,
    };
    let app = router(config, Arc::new(Saturated));
    let envelope = json!({
        "PartitionKey": "user1",
        "Data": base64::engine::general_purpose::STANDARD.encode(ORDER),
    });
    for (path, body) in [
        ("/v1/orders", ORDER.to_owned()),
        ("/orders", envelope.to_string()),
    ] {
        let (status, answer, retry_after) = post(&app, path, Some(KEY), body).await;
        assert_eq!(status, StatusCode::TOO_MANY_REQUESTS, "{path}");
        assert_eq!(answer, json!({"message": THROTTLED_MESSAGE}), "{path}");
        assert_eq!(retry_after, None, "{path}");
    }
    let order: Value = serde_json::from_str(ORDER).unwrap();
    let batch = json!({"orders": [order.clone(), order]}).to_string();
    let (status, answer, _) = post(&app, "/v1/orders/batch", Some(KEY), batch).await;
    assert_eq!(status, StatusCode::MULTI_STATUS);
    assert_eq!(answer["failed_record_count"], 2);
    for record in answer["records"].as_array().unwrap() {
        assert_eq!(record["error_code"], THROUGHPUT_EXCEEDED);
    }
}

#[tokio::test]
async fn over_the_size_limits_is_413() {
    let (app, sink) = app(MemoryFaults::default());
    // Over the order's 256 KiB rule but within Kinesis' record limit: API Gateway's model has
    // no size rule, so it is written and the consumer and transformers refuse it.
    let large_order = order_with("pad", json!("x".repeat(300 * 1024)));
    let (status, _, _) = post(&app, "/v1/orders", Some(KEY), large_order).await;
    assert_eq!(status, StatusCode::OK);
    assert_eq!(sink.records().len(), 1);
    let huge_order = order_with("pad", json!("x".repeat(MAX_RECORD_BYTES)));
    let (status, answer, _) = post(&app, "/v1/orders", Some(KEY), huge_order).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
    assert!(
        answer["message"]
            .as_str()
            .unwrap()
            .contains("over Kinesis' limit")
    );
    let (status, _, _) = post(
        &app,
        "/v1/orders/batch",
        Some(KEY),
        vec![b' '; MAX_BODY_BYTES + 1],
    )
    .await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE);
}

/// PutRecords takes at most 5 MiB per call, partition keys included: a batch of records each
/// within the 1 MiB record limit but over that in all is `413` and writes nothing, as Kinesis
/// refuses the call and API Gateway's integration answers `413`.
#[tokio::test]
async fn a_batch_over_put_records_5_mib_is_413_and_writes_nothing() {
    let (app, sink) = app(MemoryFaults::default());
    let padded: Value =
        serde_json::from_str(&order_with("pad", json!("x".repeat(900 * 1024)))).unwrap();
    let batch = |n: usize| json!({"orders": vec![padded.clone(); n]}).to_string();
    // Five records: about 4.4 MiB in all, within the limit.
    let (status, answer, _) = post(&app, "/v1/orders/batch", Some(KEY), batch(5)).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(sink.records().len(), 5);
    // Six: about 5.3 MiB, each record still under 1 MiB and the body under 10 MB.
    let body = batch(6);
    assert!(body.len() < MAX_BODY_BYTES);
    let (status, answer, _) = post(&app, "/v1/orders/batch", Some(KEY), body).await;
    assert_eq!(status, StatusCode::PAYLOAD_TOO_LARGE, "{answer}");
    let message = answer["message"].as_str().unwrap();
    assert!(message.contains("PutRecords"), "{message}");
    assert!(
        message.contains(&MAX_PUT_RECORDS_BYTES.to_string()),
        "{message}"
    );
    assert_eq!(
        sink.records().len(),
        5,
        "nothing of the refused batch is written"
    );
}

#[tokio::test]
async fn the_legacy_route_checks_only_the_envelope() {
    let (app, sink) = app(MemoryFaults::default());
    let invalid_order = br#"{"customer_id": "only this"}"#;
    let data = base64::engine::general_purpose::STANDARD.encode(invalid_order);
    let envelope = json!({"StreamName": "orders", "PartitionKey": "only this", "Data": data});
    let (status, answer, _) = post(&app, "/orders", Some(KEY), envelope.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["SequenceNumber"].is_string());
    assert_eq!(answer["EncryptionType"], "KMS", "{answer}");
    assert_eq!(sink.records()[0].data, invalid_order);
    let not_base64 = json!({"StreamName": "orders", "PartitionKey": "k", "Data": "%%%"});
    let (status, _, _) = post(&app, "/orders", Some(KEY), not_base64.to_string()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert_eq!(sink.records().len(), 1);
}

/// A legacy body that is not JSON text is refused even where the envelope has no use for it: a
/// member besides `StreamName`, `PartitionKey` and `Data` holding invalid UTF-8 or a lone
/// surrogate escape (API Gateway's model parses the whole body; found by the `api` fuzz target,
/// which got `200` for such a body).
#[tokio::test]
async fn the_legacy_route_refuses_a_body_that_is_not_json_text_in_an_unknown_member() {
    let (app, sink) = app(MemoryFaults::default());
    let data = base64::engine::general_purpose::STANDARD.encode(ORDER.as_bytes());
    let envelope = |extra: &[u8]| {
        [
            format!(r#"{{"PartitionKey": "user1", "Data": "{data}", "status": ""#).as_bytes(),
            extra,
            b"\"}",
        ]
        .concat()
    };
    let (status, answer, _) = post(&app, "/orders", Some(KEY), envelope(b"paid")).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    for extra in [&b"\x86"[..], b"\\ud800", b"\\udc00x"] {
        let (status, answer, _) = post(&app, "/orders", Some(KEY), envelope(extra)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(
            answer["errors"][0]
                .as_str()
                .unwrap()
                .starts_with("/: not valid JSON"),
            "{answer}"
        );
    }
    assert_eq!(
        sink.records().len(),
        1,
        "nothing written for a refused body"
    );
}

/// Kinesis takes partition keys of 1 to 256 Unicode characters (not bytes): the legacy route,
/// whose client names the key, takes 256 four-byte characters and refuses 257 or none, writing
/// nothing for a refused one.
#[tokio::test]
async fn the_legacy_routes_partition_key_is_1_to_256_characters() {
    let (app, sink) = app(MemoryFaults::default());
    let data = base64::engine::general_purpose::STANDARD.encode(ORDER.as_bytes());
    let envelope = |key: String| json!({"PartitionKey": key, "Data": data}).to_string();
    let longest = "\u{1F600}".repeat(256);
    assert_eq!(longest.len(), 1024, "256 characters of 4 bytes");
    let (status, answer, _) = post(&app, "/orders", Some(KEY), envelope(longest.clone())).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert_eq!(sink.records()[0].partition_key, longest);
    for key in ["\u{1F600}".repeat(257), String::new()] {
        let (status, answer, _) = post(&app, "/orders", Some(KEY), envelope(key)).await;
        assert_eq!(status, StatusCode::BAD_REQUEST, "{answer}");
        assert!(answer.to_string().contains("/PartitionKey"), "{answer}");
    }
    assert_eq!(sink.records().len(), 1);
}

/// The original Python producer of the project this one replaces sends its own stream name
/// (`ingestion-dev`); the configured stream wins and the order lands (issue 10, section 3).
#[tokio::test]
async fn the_legacy_route_ignores_the_clients_stream_name() {
    let (app, sink) = app(MemoryFaults::default());
    let order = ORDER.as_bytes();
    let data = base64::engine::general_purpose::STANDARD.encode(order);
    let seed_body = json!({"StreamName": "ingestion-dev", "PartitionKey": "user1", "Data": data});
    let (status, answer, _) = post(&app, "/orders", Some(KEY), seed_body.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    assert!(answer["SequenceNumber"].is_string(), "{answer}");
    let without_name = json!({"PartitionKey": "user1", "Data": data});
    let (status, answer, _) = post(&app, "/orders", Some(KEY), without_name.to_string()).await;
    assert_eq!(status, StatusCode::OK, "{answer}");
    let records = sink.records();
    assert_eq!(records.len(), 2);
    assert!(
        records
            .iter()
            .all(|r| r.data == order && r.partition_key == "user1")
    );
}

/// API Gateway validates with the JSON Schema only: orders the schema accepts and the Rust rules
/// refuse (`docs/design.md` section 1) are written on both order routes, as in AWS, and refused
/// downstream. Orders the schema refuses are `400` on both routes.
#[tokio::test]
async fn the_schema_decides_at_the_edge_not_the_rules() {
    let schema_valid_rule_invalid = [
        order_with("order_date", json!("2024-02-30T10:00:00Z")),
        order_with("order_date", json!("2023-02-29T10:00:00Z")),
        ORDER.replace("0.10", "0.1000000000000000055511151231257827"),
    ];
    for order in &schema_valid_rule_invalid {
        assert!(orderflow_domain::parse_order(order.as_bytes()).is_err());
        let (app, sink) = app(MemoryFaults::default());
        let (status, answer, _) = post(&app, "/v1/orders", Some(KEY), order.clone()).await;
        assert_eq!(status, StatusCode::OK, "{order}: {answer}");
        let batch = format!(r#"{{"orders": [{ORDER}, {order}]}}"#);
        let (status, answer, _) = post(&app, "/v1/orders/batch", Some(KEY), batch).await;
        assert_eq!(status, StatusCode::OK, "{order}: {answer}");
        assert_eq!(sink.records().len(), 3);
    }
    let schema_invalid = order_with("order_date", json!("2024-13-01T10:00:00Z"));
    let (app, sink) = app(MemoryFaults::default());
    let (status, _, _) = post(&app, "/v1/orders", Some(KEY), schema_invalid.clone()).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    let batch = format!(r#"{{"orders": [{ORDER}, {schema_invalid}]}}"#);
    let (status, answer, _) = post(&app, "/v1/orders/batch", Some(KEY), batch).await;
    assert_eq!(status, StatusCode::BAD_REQUEST);
    assert!(
        answer["errors"][0]
            .as_str()
            .unwrap()
            .starts_with("/orders/1/order_date: "),
        "{answer}"
    );
    assert_eq!(sink.calls(), 0);
}

/// A body not declared as JSON is `415` on every route, as API Gateway answers with the `NEVER`
/// passthrough behaviour; no `Content-Type` counts as `application/json`.
#[tokio::test]
async fn a_body_not_declared_as_json_is_415() {
    let (app, sink) = app(MemoryFaults::default());
    let legacy = json!({"PartitionKey": "k", "Data": "eA=="}).to_string();
    let batch = format!(r#"{{"orders": [{ORDER}]}}"#);
    for (path, body) in [
        ("/v1/orders", ORDER.to_owned()),
        ("/v1/orders/batch", batch.clone()),
        ("/orders", legacy.clone()),
    ] {
        for content_type in ["text/plain", "application/xml", "application/jsonx"] {
            let request = Request::post(path)
                .header("content-type", content_type)
                .header("x-api-key", KEY)
                .body(Body::from(body.clone()))
                .unwrap();
            let response = app.clone().oneshot(request).await.unwrap();
            assert_eq!(
                response.status(),
                StatusCode::UNSUPPORTED_MEDIA_TYPE,
                "{path} {content_type}"
            );
        }
        for content_type in [None, Some("application/json; charset=utf-8")] {
            let mut request = Request::post(path).header("x-api-key", KEY);
            if let Some(content_type) = content_type {
                request = request.header("content-type", content_type);
            }
            let response = app
                .clone()
                .oneshot(request.body(Body::from(body.clone())).unwrap())
                .await
                .unwrap();
            assert_eq!(response.status(), StatusCode::OK, "{path} {content_type:?}");
        }
    }
    assert_eq!(sink.records().len(), 6);
}

/// A stream whose write queue is full (the twin's stream refuses the whole call).
struct Busy;

impl RecordSink for Busy {
    async fn put_records(&self, _: Vec<RecordEntry>) -> Result<Vec<RecordResult>, SinkError> {
        Err(SinkError::Busy {
            retry_after: Duration::from_millis(1_500),
        })
    }
}

#[tokio::test]
async fn a_full_write_queue_is_503_with_retry_after_on_every_route() {
    let config = ApiConfig {
        api_key: KEY.into(),
        stream_name: "orders".into(),
        max_batch_orders: MAX_BATCH_ORDERS,
    };
    let app = router(config, Arc::new(Busy));
    let legacy = json!({"StreamName": "orders", "Data": base64::engine::general_purpose::STANDARD.encode(ORDER), "PartitionKey": "user1"}).to_string();
    let batch = format!("{{\"orders\": [{ORDER}]}}");
    for (path, body) in [
        ("/v1/orders", ORDER.to_string()),
        ("/v1/orders/batch", batch),
        ("/orders", legacy),
    ] {
        let (status, body, retry_after) = post(&app, path, Some(KEY), body).await;
        assert_eq!(status, StatusCode::SERVICE_UNAVAILABLE, "{path}: {body}");
        assert_eq!(body, json!({"message": "Service Unavailable"}), "{path}");
        // Whole seconds, rounded up.
        assert_eq!(retry_after.as_deref(), Some("2"), "{path}");
    }
}
