//! API Gateway's mapping templates, taken from `tofu/modules/ingestion_api/main.tf` (the `routes`
//! and `kinesis_*_template` locals, evaluated as OpenTofu would with a stream name), rendered by a
//! Velocity engine (airspeed, `.ci/vtl/`) with API Gateway's `$input`, `$util` and `$context`,
//! and compared with what the twin's API (`orderflow_api::router`, the router the twin serves)
//! stores and answers for the same request:
//! - every request template renders valid JSON of the Kinesis PutRecord / PutRecords request
//!   shape, with the configured stream;
//! - the records' `PartitionKey` and base64-decoded `Data` equal the twin's records exactly, in
//!   order, for a corpus of valid requests (single, batch, legacy; whitespace, unicode, escapes,
//!   numbers such as `42.50`, `100.00`, `1e2`, `12345678.90`);
//! - the success response templates, fed Kinesis' answer for the twin's results, give the
//!   twin's body and status (`207` when some records failed); the error templates give JSON and
//!   the statuses the twin uses.
//!
//! What `$input.json` does to numbers is not documented by AWS; `.ci/vtl/render.py` assumes the
//! same as `crates/api/src/gateway_json.rs` (checked against each other below), so the batch
//! comparison proves the template and the twin agree under that assumption, not what AWS prints.
//!
//! Without the Velocity engine (no PyPI) the tests print a loud SKIPPED line and pass; with
//! `CI=true` they fail instead.

mod support;

use std::collections::BTreeMap;
use std::io::Write;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, OnceLock};

use axum::body::Body;
use axum::http::{Request, StatusCode};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hcl::eval::{Context, Evaluate};
use hcl::expr::Expression;
use http_body_util::BodyExt;
use orderflow_api::memory::{MemoryFaults, MemorySink};
use orderflow_api::{ApiConfig, RecordEntry, router};
use serde_json::{Value, json};
use tower::ServiceExt;

const STREAM: &str = "orderflow-test-orders";
const KEY: &str = "test-key";
const MODULE: &str = "tofu/modules/ingestion_api/main.tf";

// --- the templates, from the .tf file ------------------------------------------------------------

/// One route's templates, as OpenTofu would pass them to API Gateway.
struct Route {
    request: String,
    response: String,
}

struct Templates {
    routes: BTreeMap<String, Route>,
    kinesis_4xx: String,
    kinesis_5xx: String,
}

/// Evaluates the templates in the `locals` of the module with `var.stream_name = STREAM`. Only
/// the template attributes are evaluated: the rest of `routes` refers to resources.
fn templates() -> Templates {
    let file = support::tf_file(MODULE);
    let locals = file.locals();
    let mut context = Context::new();
    context.declare_var(
        "var",
        hcl::Value::from_iter([("stream_name".to_owned(), hcl::Value::from(STREAM))]),
    );
    let evaluate = |expr: &Expression, what: &str| -> String {
        match expr.evaluate(&context) {
            Ok(hcl::Value::String(text)) => text,
            Ok(other) => panic!("{MODULE}: {what} is not a string: {other:?}"),
            Err(error) => panic!("{MODULE}: {what} does not evaluate: {error}"),
        }
    };
    let Some(Expression::Object(routes)) = locals.get("routes") else {
        panic!("{MODULE}: local.routes is not an object");
    };
    let mut out = BTreeMap::new();
    for (key, value) in routes {
        let name = support::object_key(key).expect("route names are identifiers");
        let Expression::Object(route) = value else {
            panic!("{MODULE}: route {name} is not an object");
        };
        let attribute = |attribute: &str| {
            route
                .iter()
                .find(|(key, _)| support::object_key(key).as_deref() == Some(attribute))
                .map(|(_, expr)| evaluate(expr, &format!("routes.{name}.{attribute}")))
                .unwrap_or_else(|| panic!("{MODULE}: routes.{name} has no {attribute}"))
        };
        out.insert(
            name.clone(),
            Route {
                request: attribute("request"),
                response: attribute("response"),
            },
        );
    }
    let local = |name: &str| {
        evaluate(
            locals
                .get(name)
                .unwrap_or_else(|| panic!("{MODULE}: no local.{name}")),
            &format!("local.{name}"),
        )
    };
    Templates {
        routes: out,
        kinesis_4xx: local("kinesis_4xx_template"),
        kinesis_5xx: local("kinesis_5xx_template"),
    }
}

// --- the Velocity engine ---------------------------------------------------------------------------

/// The venv's python, installed (or reused) once per test process by `.ci/vtl/install`; `None`
/// (after a loud SKIPPED line) when it cannot be installed outside CI.
fn python() -> Option<&'static PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let script = support::repo_root().join(".ci/vtl/install");
            let outcome = Command::new("bash").arg(&script).output();
            let problem = match outcome {
                Ok(output) if output.status.success() => {
                    let path = String::from_utf8_lossy(&output.stdout).trim().to_owned();
                    return Some(PathBuf::from(path));
                }
                Ok(output) => format!(
                    "{} failed ({}): {}",
                    script.display(),
                    output.status,
                    String::from_utf8_lossy(&output.stderr).trim()
                ),
                Err(error) => format!("cannot run bash {}: {error}", script.display()),
            };
            if std::env::var("CI").is_ok_and(|ci| ci == "true") {
                panic!("the Velocity engine is required in CI (CI=true): {problem}");
            }
            eprintln!(
                "\n==================================================================\n\
                 SKIPPED: mapping_templates: no Velocity engine, the API Gateway\n\
                 templates were NOT rendered: {problem}\n\
                 ==================================================================\n"
            );
            None
        })
        .as_ref()
}

/// One template to render with a request (or integration response) body.
struct Job {
    template: String,
    body: String,
}

/// What the engine made of a job.
#[derive(Debug)]
struct Rendered {
    output: String,
    status_override: Option<u16>,
}

/// Renders every job in one run of `.ci/vtl/render.py`; `None` when the engine is missing.
fn render(jobs: &[Job]) -> Option<Vec<Result<Rendered, String>>> {
    let python = python()?;
    let request = json!({
        "jobs": jobs.iter().map(|job| json!({
            "template": job.template,
            "body": job.body,
            "params": {"path": {}, "querystring": {}, "header": {"Content-Type": "application/json"}},
            "context": {"httpMethod": "POST", "stage": "prod"},
        })).collect::<Vec<_>>()
    });
    let mut child = Command::new(python)
        .arg(support::repo_root().join(".ci/vtl/render.py"))
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("the venv's python starts");
    child
        .stdin
        .take()
        .expect("piped stdin")
        .write_all(request.to_string().as_bytes())
        .expect("render.py reads its jobs");
    let output = child.wait_with_output().expect("render.py finishes");
    assert!(
        output.status.success(),
        "render.py failed: {}",
        String::from_utf8_lossy(&output.stderr)
    );
    let answer: Value = serde_json::from_slice(&output.stdout).expect("render.py answers JSON");
    let results = answer["results"].as_array().expect("a results array");
    assert_eq!(results.len(), jobs.len(), "one result per job");
    Some(
        results
            .iter()
            .map(|result| match result.get("error") {
                Some(error) => Err(error.as_str().unwrap_or_default().to_owned()),
                None => Ok(Rendered {
                    output: result["output"].as_str().expect("output").to_owned(),
                    status_override: result["status_override"]
                        .as_u64()
                        .map(|status| u16::try_from(status).expect("an HTTP status")),
                }),
            })
            .collect(),
    )
}

// --- the twin's API --------------------------------------------------------------------------------

/// What the twin's API did with one request.
struct TwinAnswer {
    status: StatusCode,
    body: Value,
    records: Vec<RecordEntry>,
}

/// Sends `body` to `path` of a fresh twin API over an in-memory stream.
async fn twin(path: &str, body: &[u8], faults: MemoryFaults) -> TwinAnswer {
    let sink = Arc::new(MemorySink::new(faults));
    let config = ApiConfig {
        api_key: KEY.into(),
        stream_name: STREAM.into(),
        max_batch_orders: orderflow_api::MAX_BATCH_ORDERS,
    };
    let request = Request::post(path)
        .header("content-type", "application/json")
        .header("x-api-key", KEY)
        .body(Body::from(body.to_vec()))
        .expect("a request");
    let response = router(config, sink.clone())
        .oneshot(request)
        .await
        .expect("the router answers");
    let status = response.status();
    let bytes = response
        .into_body()
        .collect()
        .await
        .expect("a body")
        .to_bytes();
    TwinAnswer {
        status,
        body: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        records: sink.records(),
    }
}

// --- the corpus ------------------------------------------------------------------------------------

/// A valid order; `street` and `amount` are JSON text as the client writes them.
fn order(customer: &str, amount: &str, street: &str) -> String {
    format!(
        r#"{{"customer_id":"{customer}","order_id":"o-{customer}","order_date":"2024-06-08T18:05:03Z","status":"paid","shipping_address":{{"street":"{street}","city":"Lisboa","state":"L","zip":"1000-001","country":"PT"}},"purchase_details":{{"payment_type":"credit_card","amount":{amount},"currency":"EUR","instalments":3}},"product_details":[{{"product_id":"p-1","name":"Caneca","quantity":2,"item_details":{{"color":"azul","size":"M"}}}}]}}"#
    )
}

/// Orders that exercise what a re-serialisation can change.
fn orders() -> Vec<(&'static str, String)> {
    vec![
        ("compact", order("user1", "0.10", "Rua A 1")),
        ("amount 42.50", order("user2", "42.50", "Rua B 2")),
        ("amount 100.00", order("user3", "100.00", "Rua C 3")),
        ("amount 1e2", order("user4", "1e2", "Rua D 4")),
        (
            "amount 12345678.90",
            order("user5", "12345678.90", "Rua E 5"),
        ),
        ("amount 9999999999.99", order("u6", "9999999999.99", "R 6")),
        ("integer amount", order("user7", "7", "Rua G 7")),
        (
            "unicode and escapes",
            order(
                "cust.a:b-c_d",
                "19.99",
                r#"Rua S\u00e3o Jo\u00e3o, 42 \"B\" \\ \/ 東京 😀 \ud83d\ude00 tab\there \u001f \u007f \u2028"#,
            ),
        ),
        (
            "escaped customer id",
            order(r"user\u0031\u0030", "5.5", "Rua J 10"),
        ),
        (
            "whitespace-laden, unknown fields",
            "{\n\t\"customer_id\" : \"user11\" ,\r\n  \"order_id\": \"o11\",  \"order_date\":\"2024-06-08T18:05:03.123+01:00\",\n  \"status\":\"pending\",\n  \"shipping_address\" : { \"street\" : \"  spaced  street  \", \"city\":\"c\",\"state\":\"s\",\"zip\":\"z\",\"country\":\"k\" },\n  \"purchase_details\" : { \"payment_type\" : \"cash\" , \"amount\" : 0.00 , \"currency\" : \"USD\" , \"instalments\" : 1 } ,\n  \"product_details\" : [ { \"product_id\":\"p\",\"name\":\"n\",\"quantity\":10000,\"item_details\":{\"color\":\"c\",\"size\":\"s\"} } ],\n  \"note\" : { \"big\": 123456789012345678901234567890, \"neg\": -0.0, \"tiny\": 1E-7, \"exp\": 2.5e+3, \"list\": [ 1 , 2.0 , true , false , null ] }\n}\n"
                .to_owned(),
        ),
    ]
}

/// `(case, route, path, body)` for every request of the corpus.
fn requests() -> Vec<(String, &'static str, &'static str, Vec<u8>)> {
    let orders = orders();
    let mut requests = Vec::new();
    for (name, order) in &orders {
        requests.push((
            format!("single: {name}"),
            "single",
            "/v1/orders",
            order.clone().into_bytes(),
        ));
    }
    let all: Vec<&str> = orders.iter().map(|(_, order)| order.as_str()).collect();
    requests.push((
        "batch: every order, compact".into(),
        "batch",
        "/v1/orders/batch",
        format!(r#"{{"orders":[{}]}}"#, all.join(",")).into_bytes(),
    ));
    requests.push((
        "batch: every order, whitespace-laden".into(),
        "batch",
        "/v1/orders/batch",
        format!(
            "{{ \"orders\" :\n [\n  {}\n ] ,\n \"extra\": 1.50 }}\n",
            all.join(" ,\n\t ")
        )
        .into_bytes(),
    ));
    requests.push((
        "batch: one order".into(),
        "batch",
        "/v1/orders/batch",
        format!(r#"{{"orders":[{}]}}"#, orders[1].1).into_bytes(),
    ));
    let many: Vec<String> = (0..120)
        .map(|i| {
            order(
                &format!("c{}", i % 17),
                &format!("{}.{:02}", i * 37, i % 100),
                "R",
            )
        })
        .collect();
    requests.push((
        "batch: 120 orders".into(),
        "batch",
        "/v1/orders/batch",
        format!(r#"{{"orders":[{}]}}"#, many.join(",")).into_bytes(),
    ));
    let legacy = |stream: Option<&str>, key: &str, data: &[u8]| {
        let mut envelope = serde_json::Map::new();
        if let Some(stream) = stream {
            envelope.insert("StreamName".into(), stream.into());
        }
        envelope.insert("PartitionKey".into(), key.into());
        envelope.insert("Data".into(), STANDARD.encode(data).into());
        Value::Object(envelope).to_string().into_bytes()
    };
    let order = orders[0].1.as_bytes();
    for (name, stream, key, data) in [
        (
            "legacy: the seed producer's body",
            Some("orders-stream"),
            "user1",
            order,
        ),
        ("legacy: no StreamName", None, "user1", order),
        (
            "legacy: another stream's name",
            Some("not-this-one"),
            "user1",
            order,
        ),
        (
            "legacy: single quote in the key",
            Some(STREAM),
            "o'brien",
            order,
        ),
        (
            "legacy: quotes, backslash, slash",
            Some(STREAM),
            r#"a"b\c/d"#,
            order,
        ),
        (
            "legacy: backslash before a quote",
            Some(STREAM),
            r"x\'y",
            order,
        ),
        ("legacy: unicode key", Some(STREAM), "São 東京 😀", order),
        (
            "legacy: control characters in the key",
            Some(STREAM),
            "tab\there\u{1}",
            order,
        ),
        (
            "legacy: 256-character key",
            Some(STREAM),
            &"k".repeat(256),
            order,
        ),
        (
            "legacy: binary data (+ and / in base64)",
            Some(STREAM),
            "k",
            &[0xfb, 0xff, 0xbf, 0xfe, 0x00],
        ),
    ] {
        requests.push((
            name.to_owned(),
            "legacy",
            "/orders",
            legacy(stream, key, data),
        ));
    }
    requests
}

// --- checks ------------------------------------------------------------------------------------------

/// The records of a rendered PutRecord (`single`, `legacy`) or PutRecords (`batch`) request,
/// after checking the request's shape; `Err` names what is wrong.
fn kinesis_records(route: &str, output: &str) -> Result<Vec<RecordEntry>, String> {
    let request: Value =
        serde_json::from_str(output).map_err(|error| format!("not valid JSON ({error})"))?;
    let object = request.as_object().ok_or("not a JSON object")?;
    if object.get("StreamName") != Some(&Value::from(STREAM)) {
        return Err(format!(
            "StreamName is {:?}, not {STREAM:?}",
            object.get("StreamName")
        ));
    }
    let record = |value: &Value, allowed: &[&str]| -> Result<RecordEntry, String> {
        let fields = value.as_object().ok_or("a record is not an object")?;
        if let Some(extra) = fields.keys().find(|key| !allowed.contains(&key.as_str())) {
            return Err(format!("unexpected member {extra}"));
        }
        let key = fields
            .get("PartitionKey")
            .and_then(Value::as_str)
            .ok_or("PartitionKey is not a string")?;
        // Kinesis: "Minimum length of 1. Maximum length of 256." (Unicode characters).
        if !(1..=256).contains(&key.chars().count()) {
            return Err(format!(
                "PartitionKey has {} characters",
                key.chars().count()
            ));
        }
        let data = fields
            .get("Data")
            .and_then(Value::as_str)
            .ok_or("Data is not a string")?;
        let data = STANDARD
            .decode(data)
            .map_err(|error| format!("Data is not base64: {error}"))?;
        // Kinesis: the data blob "can be up to 1 MB".
        if data.is_empty() || data.len() > 1024 * 1024 {
            return Err(format!("Data has {} bytes", data.len()));
        }
        Ok(RecordEntry {
            partition_key: key.to_owned(),
            data,
        })
    };
    match route {
        "batch" => {
            if let Some(extra) = object
                .keys()
                .find(|key| !["StreamName", "Records"].contains(&key.as_str()))
            {
                return Err(format!("unexpected member {extra}"));
            }
            let records = object
                .get("Records")
                .and_then(Value::as_array)
                .ok_or("Records is not an array")?;
            if !(1..=500).contains(&records.len()) {
                return Err(format!(
                    "{} records (PutRecords takes 1 to 500)",
                    records.len()
                ));
            }
            records
                .iter()
                .map(|value| record(value, &["PartitionKey", "Data"]))
                .collect()
        }
        _ => Ok(vec![record(
            &request,
            &["StreamName", "PartitionKey", "Data"],
        )?]),
    }
}

/// Where two record lists first differ, for the failure message.
fn first_difference(rendered: &[RecordEntry], twin: &[RecordEntry]) -> String {
    if rendered.len() != twin.len() {
        return format!(
            "{} records rendered, the twin stored {}",
            rendered.len(),
            twin.len()
        );
    }
    for (index, (a, b)) in rendered.iter().zip(twin).enumerate() {
        if a.partition_key != b.partition_key {
            return format!(
                "record {index}: PartitionKey {:?} rendered, the twin's is {:?}",
                a.partition_key, b.partition_key
            );
        }
        if a.data != b.data {
            return format!(
                "record {index}: Data differs\n  rendered: {}\n  twin:     {}",
                String::from_utf8_lossy(&a.data),
                String::from_utf8_lossy(&b.data)
            );
        }
    }
    "none".into()
}

#[tokio::test]
async fn request_templates_write_exactly_the_records_the_twin_writes() {
    let templates = templates();
    let requests = requests();
    let jobs: Vec<Job> = requests
        .iter()
        .map(|(_, route, _, body)| Job {
            template: templates.routes[*route].request.clone(),
            body: String::from_utf8(body.clone()).expect("UTF-8 bodies"),
        })
        .collect();
    let Some(rendered) = render(&jobs) else {
        return;
    };
    let mut failures = Vec::new();
    let mut compared = 0;
    for ((case, route, path, body), rendered) in requests.iter().zip(rendered) {
        let answer = twin(path, body, MemoryFaults::default()).await;
        if answer.status != StatusCode::OK {
            failures.push(format!(
                "{case}: the twin answered {} {}",
                answer.status, answer.body
            ));
            continue;
        }
        let rendered = match rendered {
            Ok(rendered) => rendered,
            Err(error) => {
                failures.push(format!(
                    "{case}: the {route} request template fails: {error}"
                ));
                continue;
            }
        };
        match kinesis_records(route, &rendered.output) {
            Ok(records) if records == answer.records => compared += records.len(),
            Ok(records) => failures.push(format!(
                "{case}: the deployed mapping and the twin differ: {}",
                first_difference(&records, &answer.records)
            )),
            Err(problem) => failures.push(format!(
                "{case}: the {route} request template renders a bad Kinesis request: {problem}\n{}",
                rendered.output
            )),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
    assert!(compared >= 150, "only {compared} records compared");
    eprintln!(
        "mapping_templates: {} requests, {compared} records identical",
        requests.len()
    );
}

/// Kinesis' answer (PutRecord or PutRecords) for the twin's results, as the integration gets it.
fn kinesis_answer(route: &str, twin_body: &Value) -> Value {
    let written = |result: &Value| json!({"ShardId": result["shard_id"], "SequenceNumber": result["sequence_number"]});
    match route {
        "batch" => {
            let records: Vec<Value> = twin_body["records"]
                .as_array()
                .expect("the twin's records")
                .iter()
                .map(|result| match result.get("error_code") {
                    Some(code) => {
                        json!({"ErrorCode": code, "ErrorMessage": result["error_message"]})
                    }
                    None => written(result),
                })
                .collect();
            json!({"FailedRecordCount": twin_body["failed_record_count"], "Records": records, "EncryptionType": "KMS"})
        }
        "legacy" => {
            json!({"ShardId": twin_body["ShardId"], "SequenceNumber": twin_body["SequenceNumber"], "EncryptionType": "KMS"})
        }
        _ => {
            let mut answer = written(twin_body);
            answer["EncryptionType"] = "KMS".into();
            answer
        }
    }
}

#[tokio::test]
async fn success_response_templates_answer_what_the_twin_answers() {
    let templates = templates();
    let order = orders()[7].1.clone();
    let batch = format!(r#"{{"orders":[{order},{order},{order},{order},{order}]}}"#);
    let legacy =
        json!({"StreamName": STREAM, "PartitionKey": "k", "Data": STANDARD.encode(&order)});
    let mut cases = Vec::new();
    for (case, route, path, body, faults) in [
        (
            "single",
            "single",
            "/v1/orders",
            order.clone(),
            MemoryFaults::default(),
        ),
        (
            "batch, all written",
            "batch",
            "/v1/orders/batch",
            batch.clone(),
            MemoryFaults::default(),
        ),
        (
            "batch, every other record throttled",
            "batch",
            "/v1/orders/batch",
            batch,
            MemoryFaults {
                partial_every: Some(1),
                ..MemoryFaults::default()
            },
        ),
        (
            "legacy",
            "legacy",
            "/orders",
            legacy.to_string(),
            MemoryFaults::default(),
        ),
    ] {
        let answer = twin(path, body.as_bytes(), faults).await;
        assert!(
            answer.status.is_success(),
            "{case}: the twin answered {}",
            answer.status
        );
        cases.push((case, route, answer));
    }
    let jobs: Vec<Job> = cases
        .iter()
        .map(|(_, route, answer)| Job {
            template: templates.routes[*route].response.clone(),
            body: kinesis_answer(route, &answer.body).to_string(),
        })
        .collect();
    let Some(rendered) = render(&jobs) else {
        return;
    };
    let mut failures = Vec::new();
    for ((case, _, answer), rendered) in cases.iter().zip(rendered) {
        let rendered = match rendered {
            Ok(rendered) => rendered,
            Err(error) => {
                failures.push(format!("{case}: the response template fails: {error}"));
                continue;
            }
        };
        let status = rendered.status_override.unwrap_or(200);
        let body: Value = match serde_json::from_str(&rendered.output) {
            Ok(body) => body,
            Err(error) => {
                failures.push(format!("{case}: not JSON ({error}):\n{}", rendered.output));
                continue;
            }
        };
        if status != answer.status.as_u16() {
            failures.push(format!(
                "{case}: status {status} rendered, the twin answers {}",
                answer.status
            ));
        }
        // The legacy route passes Kinesis' answer through, EncryptionType included: the twin
        // answers the same members.
        let same = body == answer.body;
        if !same {
            failures.push(format!(
                "{case}: rendered {body}, the twin answers {}",
                answer.body
            ));
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n\n"));
}

/// Kinesis' per-record error messages are free text: whatever they contain, the batch route's
/// `207` body must stay valid JSON and carry them unchanged.
#[test]
fn batch_response_carries_any_error_message_as_valid_json() {
    let templates = templates();
    let messages = [
        "Rate exceeded for shard shardId-000000000001 in stream 'orders' under account 123456789012.",
        r#"it's "quoted" \ back/slash, tab	and é 😀"#,
    ];
    let records: Vec<Value> = messages
        .iter()
        .map(|message| json!({"ErrorCode": "InternalFailure", "ErrorMessage": message}))
        .chain([json!({"ShardId": "shardId-000000000002", "SequenceNumber": "4961"})])
        .collect();
    let jobs = [Job {
        template: templates.routes["batch"].response.clone(),
        body: json!({"FailedRecordCount": 2, "Records": records}).to_string(),
    }];
    let Some(mut rendered) = render(&jobs) else {
        return;
    };
    let rendered = rendered
        .remove(0)
        .expect("the batch response template renders");
    assert_eq!(rendered.status_override, Some(207));
    let body: Value = serde_json::from_str(&rendered.output)
        .unwrap_or_else(|error| panic!("not JSON ({error}):\n{}", rendered.output));
    let expected: Vec<Value> = messages
        .iter()
        .map(|message| json!({"error_code": "InternalFailure", "error_message": message}))
        .chain([json!({"shard_id": "shardId-000000000002", "sequence_number": "4961"})])
        .collect();
    assert_eq!(body, json!({"failed_record_count": 2, "records": expected}));
}

#[test]
fn error_templates_render_json_with_the_twins_statuses() {
    let templates = templates();
    // (Kinesis __type, status API Gateway answers, status the twin answers for the same cause)
    let cases = [
        ("ProvisionedThroughputExceededException", 429),
        ("LimitExceededException", 429),
        ("ThrottlingException", 429),
        ("InvalidArgumentException", 413),
        ("ValidationException", 413),
        ("ResourceNotFoundException", 500),
        ("KMSThrottlingException", 429),
        ("AccessDeniedException", 500),
        ("", 500),
    ];
    let mut jobs: Vec<Job> = cases
        .iter()
        .map(|(kind, _)| Job {
            template: templates.kinesis_4xx.clone(),
            body: json!({"__type": kind, "message": "it's \"bad\""}).to_string(),
        })
        .collect();
    jobs.push(Job {
        template: templates.kinesis_5xx.clone(),
        body: r#"{"__type":"InternalFailure"}"#.into(),
    });
    let Some(rendered) = render(&jobs) else {
        return;
    };
    let mut failures = Vec::new();
    for (index, rendered) in rendered.into_iter().enumerate() {
        let (kind, expected) = cases.get(index).copied().unwrap_or(("5xx", 502));
        match rendered {
            Ok(rendered) => {
                // The integration responses answer 500 (4xx) and 502 (5xx) unless overridden.
                let status =
                    rendered
                        .status_override
                        .unwrap_or(if kind == "5xx" { 502 } else { 500 });
                let json = serde_json::from_str::<Value>(&rendered.output);
                if status != expected
                    || !json.as_ref().is_ok_and(|body| body["message"].is_string())
                {
                    failures.push(format!(
                        "{kind}: status {status}, body {:?}",
                        rendered.output
                    ));
                }
                // The twin's router answers a throttled write with the same message.
                if status == 429
                    && !json
                        .as_ref()
                        .is_ok_and(|body| body["message"] == orderflow_api::THROTTLED_MESSAGE)
                {
                    failures.push(format!(
                        "{kind}: the 429 body {:?} is not the router's",
                        rendered.output
                    ));
                }
            }
            Err(error) => failures.push(format!("{kind}: {error}")),
        }
    }
    assert!(failures.is_empty(), "{}", failures.join("\n"));
}

/// The renderer's `$input.json` and the twin's `gateway_json::input_json` implement the same
/// documented assumption independently; they must print every value identically.
#[test]
fn renderer_input_json_is_the_twins_gateway_json() {
    let values = [
        r#"{"a" : 42.50, "b": [1, 2 ,3], "c": "x \"y\" \/ \u00e9 😀 \u0001 \n z", "d": 12345678.90}"#,
        r#"[0, -0, 0.0, -0.0, 1e2, 1E+2, 1e-3, 1e-4, 9999999.99, 10000000.0, 1e7, 123456789.12]"#,
        r#"[9999999999.99, 0.1, 0.01, 2.5e+3, 1.0e21, 5e-324, 1.7976931348623157e308]"#,
        r#"{"big": 123456789012345678901234567890, "neg": -17, "t": true, "f": false, "n": null}"#,
        r#"  { "nested" : { "deep" : [ { "x" : 100.00 } ] } }  "#,
    ];
    let jobs: Vec<Job> = values
        .iter()
        .map(|value| Job {
            template: "$input.json('$')".into(),
            body: (*value).into(),
        })
        .collect();
    let Some(rendered) = render(&jobs) else {
        return;
    };
    for (value, rendered) in values.iter().zip(rendered) {
        let twin = orderflow_api::gateway_json::input_json(value.as_bytes()).expect("valid JSON");
        let rendered = rendered.unwrap_or_else(|error| panic!("{value}: {error}"));
        assert_eq!(rendered.output, String::from_utf8(twin).unwrap(), "{value}");
    }
}
