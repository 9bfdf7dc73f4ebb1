//! The web console `orderflow up` serves at `/`: the pipeline as a picture with live counts and
//! health, DynamoDB lookups, the SQL queries and a free query box, and the failures with
//! redrive. One HTML page with its script and styles built into the binary (no CDN, no bundle);
//! it polls `/_twin/status` and calls the routes below.
//!
//! The page itself holds nothing; every data route needs the API key in `x-api-key`. `orderflow
//! up` prints the console's address with the key in the fragment (`/#key=...`), which the
//! browser never sends to a server; the page keeps it for the tab only (`sessionStorage`).

use std::collections::HashMap;
use std::sync::Arc;

use aws_sdk_dynamodb::types::AttributeValue;
use axum::Json;
use axum::extract::{Query, State};
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{Html, IntoResponse, Response};
use axum::routing::{get, post};
use serde::Deserialize;
use serde_json::{Value, json};

use crate::consumer::FAILURE_PREFIX;
use crate::settings::PipelineSettings;
use crate::storage::Bucket;

/// The page.
const INDEX_HTML: &str = include_str!("console/index.html");

/// The most objects one failures listing returns.
const MAX_LISTED: usize = 500;

/// What the console's routes need.
pub struct ConsoleState {
    /// The API key the data routes require.
    pub api_key: String,
    /// The bucket (tables, error output, failure store).
    pub bucket: Bucket,
    /// The settings (file extension, projection years).
    pub settings: PipelineSettings,
    /// DynamoDB and the orders table.
    pub dynamodb: aws_sdk_dynamodb::Client,
    /// The orders table's name.
    pub table: String,
}

/// The console's routes: the page at `/` and its data routes under `/_twin/console/`.
pub fn router(state: Arc<ConsoleState>) -> axum::Router {
    axum::Router::new()
        .route("/", get(index))
        .route("/_twin/console/orders", get(orders))
        .route("/_twin/console/queries", get(queries))
        .route("/_twin/console/sql", post(sql))
        .route("/_twin/console/failures", get(failures))
        .route("/_twin/console/object", get(object))
        .with_state(state)
}

async fn index() -> Response {
    ([(header::CACHE_CONTROL, "no-store")], Html(INDEX_HTML)).into_response()
}

/// Whether the request carries the API key.
fn allowed(state: &ConsoleState, headers: &HeaderMap) -> bool {
    headers.get("x-api-key").and_then(|v| v.to_str().ok()) == Some(state.api_key.as_str())
}

/// The answer to a request without the key.
fn denied() -> Response {
    (StatusCode::FORBIDDEN, "x-api-key is missing or wrong").into_response()
}

fn failed(status: StatusCode, error: &anyhow::Error) -> Response {
    (status, Json(json!({ "error": format!("{error:#}") }))).into_response()
}

#[derive(Deserialize)]
struct CustomerQuery {
    customer_id: String,
}

/// A customer's orders from DynamoDB (a `Query` on the partition key), as plain JSON.
async fn orders(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Query(query): Query<CustomerQuery>,
) -> Response {
    if !allowed(&state, &headers) {
        return denied();
    }
    let mut items = Vec::new();
    let mut start = None;
    loop {
        let page = state
            .dynamodb
            .query()
            .table_name(&state.table)
            .key_condition_expression("#pk = :pk")
            .expression_attribute_names("#pk", orderflow_domain::PARTITION_KEY)
            .expression_attribute_values(":pk", AttributeValue::S(query.customer_id.clone()))
            .set_exclusive_start_key(start)
            .send()
            .await;
        let page = match page {
            Ok(page) => page,
            Err(error) => {
                let error = anyhow::anyhow!(
                    aws_sdk_dynamodb::error::DisplayErrorContext(error).to_string()
                );
                return failed(StatusCode::BAD_GATEWAY, &error);
            }
        };
        items.extend(page.items().iter().map(item_json));
        start = page.last_evaluated_key;
        if start.is_none() {
            break;
        }
    }
    Json(json!({ "items": items })).into_response()
}

/// A DynamoDB item as plain JSON (numbers keep their exact text, as strings).
pub fn item_json(item: &HashMap<String, AttributeValue>) -> Value {
    Value::Object(
        item.iter()
            .map(|(name, value)| (name.clone(), value_json(value)))
            .collect(),
    )
}

fn value_json(value: &AttributeValue) -> Value {
    match value {
        AttributeValue::S(text) | AttributeValue::N(text) => Value::String(text.clone()),
        AttributeValue::Bool(flag) => Value::Bool(*flag),
        AttributeValue::Null(_) => Value::Null,
        AttributeValue::L(values) => Value::Array(values.iter().map(value_json).collect()),
        AttributeValue::M(map) => item_json(map),
        AttributeValue::Ss(texts) | AttributeValue::Ns(texts) => json!(texts),
        other => Value::String(format!("{other:?}")),
    }
}

/// The queries of `sql/queries/` (the twin's built-in copies): name and SQL.
async fn queries(State(state): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    if !allowed(&state, &headers) {
        return denied();
    }
    let list: Vec<Value> = crate::analytics::BUILT_IN_QUERIES
        .iter()
        .map(|(name, sql)| json!({ "name": name, "sql": sql }))
        .collect();
    Json(list).into_response()
}

#[derive(Deserialize)]
struct SqlRequest {
    sql: String,
}

/// One read-only SQL statement over the tables: columns and rows (values as text).
async fn sql(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Json(request): Json<SqlRequest>,
) -> Response {
    if !allowed(&state, &headers) {
        return denied();
    }
    let result = async {
        let context = crate::analytics::session(
            state.bucket.root(),
            &state.settings.delivery.file_extension,
            state.settings.athena.partition_projection_years,
        )
        .await?;
        let result = crate::analytics::run_read_only(&context, &request.sql).await?;
        let columns: Vec<String> = result
            .schema
            .fields()
            .iter()
            .map(|field| field.name().clone())
            .collect();
        anyhow::Ok(json!({ "columns": columns, "rows": result.to_json()? }))
    }
    .await;
    match result {
        Ok(answer) => Json(answer).into_response(),
        Err(error) => failed(StatusCode::BAD_REQUEST, &error),
    }
}

/// The failure store's batches and every table's error output: key, size, what it is.
async fn failures(State(state): State<Arc<ConsoleState>>, headers: HeaderMap) -> Response {
    if !allowed(&state, &headers) {
        return denied();
    }
    let mut objects = Vec::new();
    for prefix in [FAILURE_PREFIX, "errors"] {
        match state.bucket.list(prefix).await {
            Ok(listed) => objects.extend(listed),
            Err(error) => return failed(StatusCode::INTERNAL_SERVER_ERROR, &error),
        }
    }
    objects.sort();
    let truncated = objects.len() > MAX_LISTED;
    let list: Vec<Value> = objects
        .into_iter()
        .take(MAX_LISTED)
        .map(|(key, size)| {
            let kind = if key.starts_with(FAILURE_PREFIX) {
                "consumer failure store".to_owned()
            } else {
                // errors/{table}/{type}/...
                key.split('/')
                    .skip(1)
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(" / ")
            };
            json!({ "key": key, "size": size, "kind": kind })
        })
        .collect();
    Json(json!({ "objects": list, "truncated": truncated })).into_response()
}

#[derive(Deserialize)]
struct ObjectQuery {
    key: String,
}

/// One failure-store or error-output object, as text (nothing else in the bucket is served).
async fn object(
    State(state): State<Arc<ConsoleState>>,
    headers: HeaderMap,
    Query(query): Query<ObjectQuery>,
) -> Response {
    if !allowed(&state, &headers) {
        return denied();
    }
    let allowed = (query.key.starts_with(&format!("{FAILURE_PREFIX}/"))
        || query.key.starts_with("errors/"))
        && !query
            .key
            .split('/')
            .any(|part| part == ".." || part.is_empty());
    if !allowed {
        return failed(
            StatusCode::BAD_REQUEST,
            &anyhow::anyhow!("only failure-store and error-output objects are served"),
        );
    }
    match state.bucket.get(&query.key).await {
        Ok(bytes) => (
            [(header::CONTENT_TYPE, "text/plain; charset=utf-8")],
            String::from_utf8_lossy(&bytes).into_owned(),
        )
            .into_response(),
        Err(error) => failed(StatusCode::NOT_FOUND, &error),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn items_become_plain_json_with_exact_numbers() {
        let item = HashMap::from([
            ("customer_id".to_owned(), AttributeValue::S("c1".into())),
            (
                "purchase_details".to_owned(),
                AttributeValue::M(HashMap::from([(
                    "amount".to_owned(),
                    AttributeValue::N("12345678.90".into()),
                )])),
            ),
            (
                "lines".to_owned(),
                AttributeValue::L(vec![AttributeValue::Bool(true), AttributeValue::Null(true)]),
            ),
        ]);
        assert_eq!(
            item_json(&item),
            json!({"customer_id": "c1", "purchase_details": {"amount": "12345678.90"}, "lines": [true, null]})
        );
    }
}
