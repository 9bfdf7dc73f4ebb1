//! The API router (`orderflow_api::router`) on arbitrary bodies and headers, over the in-memory
//! stream ([`MemorySink`]).
//!
//! Input ([`crate::frame::split_control`]): the control byte picks
//!
//! - bits 0-1: `POST /v1/orders`, `POST /v1/orders/batch`, `POST /orders` (legacy), or
//!   `GET /v1/orders`;
//! - bits 2-3: the API key: right, absent, wrong (same length), right plus one character;
//! - bits 4-6: the `Content-Type`: absent, `application/json`, with a charset, mixed case with a
//!   parameter, `text/plain`, `application/json-patch+json`, `application/jsonx`, empty;
//! - bit 7: a stream that fails every other entry of a call (a partial PutRecords failure).
//!
//! The rest of the input is the body.

use std::sync::{Arc, LazyLock};

use axum::Router;
use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use http_body_util::BodyExt;
use orderflow_api::memory::{MemoryFaults, MemorySink};
use orderflow_api::models::batch_schema;
use orderflow_api::{ApiConfig, MAX_RECORD_BYTES, RecordEntry, gateway_json, router};
use orderflow_domain::{ORDER_SCHEMA_JSON, parse_order};
use serde_json::Value;
use tower::ServiceExt;

use crate::frame;
use crate::parse_order::ORDER_MODEL;

const API_KEY: &str = "fuzz-api-key-0123456789";
/// Small, so that inputs reach the batch model's `maxItems`.
const MAX_BATCH_ORDERS: usize = 4;

/// A router and its stream.
struct Api {
    router: Router,
    sink: Arc<MemorySink>,
}

impl Api {
    fn new(faults: MemoryFaults) -> Api {
        let sink = Arc::new(MemorySink::new(faults));
        let config = ApiConfig {
            api_key: API_KEY.to_owned(),
            stream_name: "orders".to_owned(),
            max_batch_orders: MAX_BATCH_ORDERS,
        };
        Api {
            router: router(config, Arc::clone(&sink)),
            sink,
        }
    }
}

/// The healthy stream and the one with partial failures, built once (compiling the models is
/// the expensive part).
static APIS: LazyLock<[Api; 2]> = LazyLock::new(|| {
    [
        Api::new(MemoryFaults::default()),
        Api::new(MemoryFaults {
            partial_every: Some(1),
            ..MemoryFaults::default()
        }),
    ]
});

/// API Gateway's `order_batch` model, as OpenTofu builds it from the order schema.
static BATCH_MODEL: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let order: Value = serde_json::from_str(ORDER_SCHEMA_JSON).expect("the order schema is JSON");
    jsonschema::draft4::new(&batch_schema(&order, MAX_BATCH_ORDERS))
        .expect("the batch schema is valid draft 4")
});

/// Whether the legacy envelope passes API Gateway's `legacy_put_record` model
/// (`tofu/modules/ingestion_api/main.tf`, `local.legacy_schema`): an object with the strings
/// `PartitionKey` (1 to 256 characters) and `Data` (`^[A-Za-z0-9+/]+={0,2}$`), and `StreamName`,
/// when present, a string.
fn legacy_model_accepts(body: &Value) -> bool {
    let Some(envelope) = body.as_object() else {
        return false;
    };
    let key_ok = envelope
        .get("PartitionKey")
        .and_then(Value::as_str)
        .is_some_and(|key| (1..=256).contains(&key.chars().count()));
    let data_ok = envelope
        .get("Data")
        .and_then(Value::as_str)
        .is_some_and(|data| {
            let text = data.trim_end_matches('=');
            !text.is_empty()
                && data.len() - text.len() <= 2
                && text
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'+' || b == b'/')
        });
    let stream_ok = envelope.get("StreamName").is_none_or(Value::is_string);
    key_ok && data_ok && stream_ok
}

/// The records one accepted request must have written, in order, if the model accepts `body`;
/// `None` if it does not.
fn expected_records(route: u8, body: &[u8]) -> Option<Vec<RecordEntry>> {
    let value: Value = serde_json::from_slice(body).ok()?;
    let entry = |partition_key: &str, data: Vec<u8>| RecordEntry {
        partition_key: partition_key.to_owned(),
        data,
    };
    match route {
        0 => ORDER_MODEL.is_valid(&value).then(|| {
            vec![entry(
                value["customer_id"].as_str().expect("a string"),
                body.to_vec(),
            )]
        }),
        1 => BATCH_MODEL.is_valid(&value).then(|| {
            value["orders"]
                .as_array()
                .expect("an array")
                .iter()
                .map(|order| {
                    // The stored bytes are checked on their own below; this is the key.
                    entry(order["customer_id"].as_str().expect("a string"), Vec::new())
                })
                .collect()
        }),
        _ => legacy_model_accepts(&value).then(|| {
            let data = BASE64.decode(value["Data"].as_str().expect("a string"));
            let key = value["PartitionKey"].as_str().expect("a string");
            // The model admits base64 Kinesis cannot decode ("A"); such a request is refused.
            data.ok()
                .filter(|data| !data.is_empty())
                .map(|data| vec![entry(key, data)])
        })?,
    }
}

/// The API's contract (`docs/design.md` section 2) for one request:
///
/// - a wrong key is `403`, a body not declared as JSON `415`, `GET` is `405`: nothing written;
/// - `2xx` only if the route's API Gateway model (the JSON Schema, not the Rust rules) accepts
///   the body, and then exactly the request's records were written, in order: the single route
///   stores the body as sent with `customer_id` as partition key; the batch route each order as
///   `$input.json` re-serialises it (the same JSON value; a valid order stays the same order);
///   the legacy route the decoded `Data` under the given `PartitionKey`;
/// - a body the model accepts is answered `200`, or `207` naming exactly the entries the stream
///   refused (or `400` if it names a member twice, which JSON leaves undefined); anything else
///   is answered with nothing written;
/// - every answer is a JSON body.
pub fn check(input: &[u8]) {
    let (control, body) = frame::split_control(input);
    let route = control & 0b11;
    let api = &APIS[usize::from(control >> 7)];
    let (method, uri) = match route {
        0 => ("POST", "/v1/orders"),
        1 => ("POST", "/v1/orders/batch"),
        2 => ("POST", "/orders"),
        _ => ("GET", "/v1/orders"),
    };
    let mut request = Request::builder().method(method).uri(uri);
    let key_ok = match (control >> 2) & 0b11 {
        0 => {
            request = request.header("x-api-key", API_KEY);
            true
        }
        1 => false,
        2 => {
            request = request.header("x-api-key", API_KEY.replace('9', "8"));
            false
        }
        _ => {
            request = request.header("x-api-key", format!("{API_KEY}0"));
            false
        }
    };
    let content_type = [
        None,
        Some("application/json"),
        Some("application/json; charset=utf-8"),
        Some("Application/JSON ; x=y"),
        Some("text/plain"),
        Some("application/json-patch+json"),
        Some("application/jsonx"),
        Some(""),
    ][usize::from((control >> 4) & 0b111)];
    if let Some(content_type) = content_type {
        request = request.header("content-type", content_type);
    }
    let json_ok = (control >> 4) & 0b111 <= 3;
    let request = request
        .body(Body::from(body.to_vec()))
        .expect("a valid request");
    let (status, answer) = crate::block_on(async {
        let response = api
            .router
            .clone()
            .oneshot(request)
            .await
            .expect("the router is infallible");
        let status = response.status();
        let answer = response
            .into_body()
            .collect()
            .await
            .expect("an in-memory body")
            .to_bytes();
        (status, answer)
    });
    let written = api.sink.take_records();
    if route == 3 {
        assert_eq!(status, StatusCode::METHOD_NOT_ALLOWED);
        assert!(written.is_empty());
        return;
    }
    let answer: Value = serde_json::from_slice(&answer).expect("every answer is JSON");
    if !key_ok {
        assert_eq!(status, StatusCode::FORBIDDEN, "a wrong key is 403");
        assert!(written.is_empty(), "nothing written for 403");
        return;
    }
    if !json_ok {
        assert_eq!(
            status,
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "not JSON is 415"
        );
        assert!(written.is_empty(), "nothing written for 415");
        return;
    }
    let too_large = |records: &[RecordEntry]| {
        records
            .iter()
            .any(|r| r.partition_key.len() + r.data.len() > MAX_RECORD_BYTES)
    };
    let Some(expected) = expected_records(route, body).filter(|e| !too_large(e)) else {
        assert!(
            !status.is_success(),
            "{status} for a body the model refuses (route {route})"
        );
        assert!(written.is_empty(), "nothing written for {status}");
        return;
    };
    if !status.is_success() && has_duplicate_members(body) {
        // JSON leaves duplicate member names undefined (RFC 8259, section 4): the model sees the
        // last one, the route refuses the body. Refusing writes nothing, which is safe.
        assert_eq!(status, StatusCode::BAD_REQUEST);
        assert!(written.is_empty(), "nothing written for {status}");
        return;
    }
    let partial = control >> 7 == 1;
    let refused: Vec<usize> = (0..expected.len())
        .filter(|index| partial && index % 2 == 1)
        .collect();
    let expected_status = if refused.is_empty() {
        StatusCode::OK
    } else {
        StatusCode::MULTI_STATUS
    };
    assert_eq!(
        status, expected_status,
        "a body the model accepts (route {route})"
    );
    let kept: Vec<(usize, &RecordEntry)> = expected
        .iter()
        .enumerate()
        .filter(|(index, _)| !refused.contains(index))
        .collect();
    assert_eq!(written.len(), kept.len(), "one record per accepted order");
    if route == 1 {
        assert_eq!(
            answer["failed_record_count"].as_u64(),
            Some(refused.len() as u64)
        );
        let orders = &serde_json::from_slice::<Value>(body).expect("JSON")["orders"];
        for (record, (index, want)) in written.iter().zip(&kept) {
            assert_eq!(
                record.partition_key, want.partition_key,
                "order {index}: key"
            );
            check_batch_order(&orders[*index], body, *index, &record.data);
        }
    } else {
        assert_eq!(written, expected, "the record is the request's");
    }
}

/// The batch route stores `$input.json("$.orders[i]")`: compact JSON of the same value, which
/// for a valid order is the same order.
fn check_batch_order(order: &Value, body: &[u8], index: usize, stored: &[u8]) {
    let stored_value: Value = serde_json::from_slice(stored).expect("the stored order is JSON");
    assert_eq!(
        &stored_value, order,
        "order {index}: the stored value is the order"
    );
    #[derive(serde::Deserialize)]
    struct Raw<'a> {
        #[serde(borrow)]
        orders: Vec<&'a serde_json::value::RawValue>,
    }
    let raw: Raw<'_> = serde_json::from_slice(body).expect("a batch");
    let raw = raw.orders[index].get().as_bytes();
    assert_eq!(
        gateway_json::input_json(raw).as_deref(),
        Some(stored),
        "order {index}: stored as $input.json re-serialises it"
    );
    if let Ok(sent) = parse_order(raw) {
        assert_eq!(
            parse_order(stored).as_ref(),
            Ok(&sent),
            "order {index}: a valid order is stored as the same order"
        );
    }
}

/// Whether some object in the JSON `body` names a member twice.
fn has_duplicate_members(body: &[u8]) -> bool {
    use serde::de::{self, Deserialize, Deserializer, MapAccess, SeqAccess, Visitor};

    /// Any JSON value; an object with a repeated name is an error.
    struct Unique;

    impl<'de> Deserialize<'de> for Unique {
        fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Unique, D::Error> {
            deserializer.deserialize_any(UniqueVisitor)
        }
    }

    struct UniqueVisitor;

    impl<'de> Visitor<'de> for UniqueVisitor {
        type Value = Unique;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("JSON")
        }

        fn visit_bool<E>(self, _: bool) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_i64<E>(self, _: i64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_u64<E>(self, _: u64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_f64<E>(self, _: f64) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_str<E>(self, _: &str) -> Result<Unique, E> {
            Ok(Unique)
        }
        fn visit_unit<E>(self) -> Result<Unique, E> {
            Ok(Unique)
        }

        fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Unique, A::Error> {
            while seq.next_element::<Unique>()?.is_some() {}
            Ok(Unique)
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Unique, A::Error> {
            let mut names = std::collections::HashSet::new();
            while let Some(name) = map.next_key::<String>()? {
                if !names.insert(name) {
                    return Err(de::Error::custom("duplicate member"));
                }
                map.next_value::<Unique>()?;
            }
            Ok(Unique)
        }
    }

    serde_json::from_slice::<Unique>(body).is_err()
}
