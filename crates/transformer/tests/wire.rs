//! The Lambda's own event and response types against aws_lambda_events' on the same corpus:
//! [`FirehoseEvent`] accepts and refuses exactly the JSON that `KinesisFirehoseEvent` does, with
//! the same record ids and bytes, and [`transform_json`] writes the JSON that serde_json writes
//! for [`transform`]'s response, with the same summary.

use std::path::{Path, PathBuf};

use aws_lambda_events::event::firehose::KinesisFirehoseEvent;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use orderflow_domain::{GeneratorConfig, OrderGenerator, Table};
use orderflow_transformer::{FirehoseEvent, RESPONSE_LIMIT_BYTES, transform, transform_json};
use serde_json::{Value, json};

/// The copied AWS samples, and every fixture of the registry's aws_lambda_events when present.
fn aws_samples() -> Vec<PathBuf> {
    let mut files = json_files(&Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aws-samples"));
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    if let Some(Ok(registries)) = cargo_home.map(|home| home.join("registry/src").read_dir()) {
        for registry in registries.flatten() {
            files.extend(json_files(
                &registry.path().join("aws_lambda_events-1.2.1/src/fixtures"),
            ));
        }
    }
    files
}

fn json_files(dir: &Path) -> Vec<PathBuf> {
    let Ok(entries) = dir.read_dir() else {
        return Vec::new();
    };
    let mut files: Vec<PathBuf> = entries
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

/// Both decoders on `json`: both refuse it, or both accept it with the same ids and bytes.
/// Returns whether it was accepted. (aws_lambda_events panics on a fractional
/// `approximateArrivalTimestamp`; ours, which follows its steps, must then panic too.)
fn same_decoding(json: &[u8]) -> bool {
    let theirs = std::panic::catch_unwind(|| serde_json::from_slice::<KinesisFirehoseEvent>(json));
    let ours = std::panic::catch_unwind(|| serde_json::from_slice::<FirehoseEvent>(json));
    let (theirs, ours) = match (theirs, ours) {
        (Ok(theirs), Ok(ours)) => (theirs, ours),
        (Err(_), Err(_)) => return false,
        (theirs, ours) => panic!(
            "one decoder panicked: aws_lambda_events {}, ours {}",
            theirs.is_err(),
            ours.is_err()
        ),
    };
    match (&theirs, &ours) {
        (Ok(theirs), Ok(ours)) => {
            assert_eq!(theirs.records.len(), ours.records.len());
            for (a, b) in theirs.records.iter().zip(&ours.records) {
                assert_eq!(a.record_id, b.record_id);
                assert_eq!(a.data.0, b.data);
            }
            true
        }
        (Err(_), Err(_)) => false,
        _ => panic!(
            "aws_lambda_events: {:?}, ours: {:?} on {}",
            theirs.as_ref().err(),
            ours.as_ref().err(),
            String::from_utf8_lossy(json)
        ),
    }
}

#[test]
fn aws_sample_events_decode_alike() {
    let files = aws_samples();
    assert!(files.len() >= 3, "the copied samples are missing");
    let mut accepted = 0;
    for file in &files {
        let json = std::fs::read(file).unwrap();
        if same_decoding(&json) {
            accepted += 1;
        }
    }
    // At least the two Firehose samples (the response sample is not an event).
    assert!(accepted >= 2, "{accepted} of {} accepted", files.len());
    eprintln!("{} sample files, {accepted} accepted by both", files.len());
}

/// A valid event with one record, to mutate.
fn base_event() -> Value {
    json!({
        "invocationId": "invoked123",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/orders",
        "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
        "region": "us-east-1",
        "records": [{
            "recordId": "r1",
            "approximateArrivalTimestamp": 1_717_848_000_000u64,
            "data": "SGVsbG8gV29ybGQ=",
            "kinesisRecordMetadata": {
                "shardId": "shardId-000000000000",
                "partitionKey": "c",
                "approximateArrivalTimestamp": 1_717_848_000_000u64,
                "sequenceNumber": "49546986683135544286507457936321625675700192471156785154",
                "subsequenceNumber": 0
            }
        }]
    })
}

#[test]
fn edge_cases_are_accepted_and_refused_alike() {
    type Mutation = Box<dyn Fn(&mut Value)>;
    let set = |pointer: &'static str, value: Value| -> Mutation {
        Box::new(move |event: &mut Value| *event.pointer_mut(pointer).unwrap() = value.clone())
    };
    let remove = |parent: &'static str, key: &'static str| -> Mutation {
        Box::new(move |event: &mut Value| {
            event
                .pointer_mut(parent)
                .unwrap()
                .as_object_mut()
                .unwrap()
                .remove(key);
        })
    };
    let mutations: Vec<(&str, Mutation)> = vec![
        ("as is", Box::new(|_| {})),
        ("no records", remove("", "records")),
        ("records null", set("/records", Value::Null)),
        ("records an object", set("/records", json!({}))),
        ("no records at all", set("/records", json!([]))),
        ("invocationId null", set("/invocationId", Value::Null)),
        ("invocationId a number", set("/invocationId", json!(5))),
        ("region an object", set("/region", json!({}))),
        ("no invocationId", remove("", "invocationId")),
        ("no recordId", remove("/records/0", "recordId")),
        ("recordId null", set("/records/0/recordId", Value::Null)),
        ("recordId a number", set("/records/0/recordId", json!(7))),
        (
            "recordId with escapes",
            set("/records/0/recordId", json!("a\"b\\c\nd\u{1}é/")),
        ),
        ("no data", remove("/records/0", "data")),
        ("data null", set("/records/0/data", Value::Null)),
        ("data a number", set("/records/0/data", json!(1))),
        ("data empty", set("/records/0/data", json!(""))),
        (
            "data not base64",
            set("/records/0/data", json!("not base64!")),
        ),
        ("data unpadded", set("/records/0/data", json!("SGk"))),
        ("data trailing bits", set("/records/0/data", json!("SGl="))),
        (
            "data trailing bits, two pads",
            set("/records/0/data", json!("SR==")),
        ),
        (
            "data url-safe alphabet",
            set("/records/0/data", json!("-_-_")),
        ),
        (
            "data with a newline",
            set("/records/0/data", json!("SGVs\nbG8=")),
        ),
        (
            "data with padding inside",
            set("/records/0/data", json!("SQ==SQ==")),
        ),
        (
            "data too much padding",
            set("/records/0/data", json!("SQ===")),
        ),
        (
            "no timestamp",
            remove("/records/0", "approximateArrivalTimestamp"),
        ),
        (
            "timestamp null",
            set("/records/0/approximateArrivalTimestamp", Value::Null),
        ),
        (
            "timestamp a string",
            set(
                "/records/0/approximateArrivalTimestamp",
                json!("1717848000000"),
            ),
        ),
        (
            "timestamp a float",
            set(
                "/records/0/approximateArrivalTimestamp",
                json!(1717848000000.5),
            ),
        ),
        (
            "timestamp negative",
            set("/records/0/approximateArrivalTimestamp", json!(-5)),
        ),
        (
            "timestamp text",
            set("/records/0/approximateArrivalTimestamp", json!("soon")),
        ),
        // Every other form their `MillisecondTimestamp` reads, and refuses, and where it
        // panics (a fraction of a millisecond): the record's and the metadata's.
        (
            "timestamp zero",
            set("/records/0/approximateArrivalTimestamp", json!(0)),
        ),
        (
            "timestamp a whole float",
            set(
                "/records/0/approximateArrivalTimestamp",
                json!(1717848000000.0),
            ),
        ),
        (
            "timestamp in exponent form",
            set("/records/0/approximateArrivalTimestamp", json!(1.717848e12)),
        ),
        (
            "timestamp a string in exponent form",
            set("/records/0/approximateArrivalTimestamp", json!("1.7e12")),
        ),
        (
            "timestamp a string with a fraction",
            set("/records/0/approximateArrivalTimestamp", json!("12.25")),
        ),
        (
            "timestamp NaN text",
            set("/records/0/approximateArrivalTimestamp", json!("NaN")),
        ),
        (
            "timestamp past chrono's range",
            set("/records/0/approximateArrivalTimestamp", json!(9e18)),
        ),
        (
            "timestamp past u64",
            set("/records/0/approximateArrivalTimestamp", json!(1e30)),
        ),
        (
            "timestamp u64::MAX",
            set("/records/0/approximateArrivalTimestamp", json!(u64::MAX)),
        ),
        (
            "timestamp 2^53",
            set(
                "/records/0/approximateArrivalTimestamp",
                json!(9_007_199_254_740_992u64),
            ),
        ),
        (
            "timestamp 2^53 + 1",
            set(
                "/records/0/approximateArrivalTimestamp",
                json!(9_007_199_254_740_993u64),
            ),
        ),
        (
            "timestamp -0 as text",
            set("/records/0/approximateArrivalTimestamp", json!("-0")),
        ),
        (
            "timestamp -0.0",
            set("/records/0/approximateArrivalTimestamp", json!(-0.0)),
        ),
        (
            "timestamp true",
            set("/records/0/approximateArrivalTimestamp", json!(true)),
        ),
        (
            "timestamp an object",
            set("/records/0/approximateArrivalTimestamp", json!({"ms": 1})),
        ),
        (
            "metadata timestamp a string",
            set(
                "/records/0/kinesisRecordMetadata/approximateArrivalTimestamp",
                json!("1717848000000"),
            ),
        ),
        (
            "metadata timestamp a fraction",
            set(
                "/records/0/kinesisRecordMetadata/approximateArrivalTimestamp",
                json!(0.5),
            ),
        ),
        (
            "metadata timestamp null",
            set(
                "/records/0/kinesisRecordMetadata/approximateArrivalTimestamp",
                Value::Null,
            ),
        ),
        (
            "metadata without timestamp",
            remove(
                "/records/0/kinesisRecordMetadata",
                "approximateArrivalTimestamp",
            ),
        ),
        (
            "metadata subsequenceNumber a float",
            set(
                "/records/0/kinesisRecordMetadata/subsequenceNumber",
                json!(1.0),
            ),
        ),
        (
            "metadata subsequenceNumber negative",
            set(
                "/records/0/kinesisRecordMetadata/subsequenceNumber",
                json!(-1),
            ),
        ),
        (
            "metadata partitionKey null",
            set("/records/0/kinesisRecordMetadata/partitionKey", Value::Null),
        ),
        (
            "metadata an array",
            set("/records/0/kinesisRecordMetadata", json!([])),
        ),
        ("no metadata", remove("/records/0", "kinesisRecordMetadata")),
        (
            "metadata null",
            set("/records/0/kinesisRecordMetadata", Value::Null),
        ),
        (
            "metadata empty",
            set("/records/0/kinesisRecordMetadata", json!({})),
        ),
        (
            "metadata without subsequenceNumber",
            remove("/records/0/kinesisRecordMetadata", "subsequenceNumber"),
        ),
        (
            "metadata subsequenceNumber a string",
            set(
                "/records/0/kinesisRecordMetadata/subsequenceNumber",
                json!("1"),
            ),
        ),
        (
            "metadata shardId a number",
            set("/records/0/kinesisRecordMetadata/shardId", json!(1)),
        ),
        (
            "unknown fields",
            set("/records/0/kinesisRecordMetadata/shardId", json!("x")),
        ),
        ("a record that is null", set("/records/0", Value::Null)),
        (
            "the event an array",
            Box::new(|event: &mut Value| *event = json!([])),
        ),
    ];
    let mut accepted = 0;
    for (name, mutate) in &mutations {
        let mut event = base_event();
        mutate(&mut event);
        let json = serde_json::to_vec(&event).unwrap();
        eprintln!("{name}");
        if same_decoding(&json) {
            accepted += 1;
        }
    }
    assert!(accepted > 5 && accepted < mutations.len());
    // Shapes serde_json's `Value` cannot write: duplicate keys, escaped base64, unknown keys.
    let base = serde_json::to_string(&base_event()).unwrap();
    for text in [
        base.replace("\"data\":", "\"data\":\"SGk=\",\"data\":"),
        base.replace("\"recordId\":", "\"recordId\":\"x\",\"recordId\":"),
        base.replace("SGVsbG8gV29ybGQ=", "SGVsbG8\\/V29ybGQ="),
        base.replace("SGVsbG8gV29ybGQ=", "SGVsbG8g\\u0056\\u0032\\u0039ybGQ="),
        base.replace("\"region\":", "\"other\":{\"a\":[1,2,{}]},\"region\":"),
        base.replace("\"recordId\":", "\"x\":null,\"recordId\":"),
        base.replace("{", " { "),
        base.clone() + " x",
        base[..base.len() - 1].to_owned(),
    ] {
        same_decoding(text.as_bytes());
    }
    // Data that is not text (the data is read as bytes, not checked for UTF-8 first): a raw byte
    // that is not UTF-8 in the base64, a lone surrogate escape, an array of numbers (which
    // serde_json would read as bytes).
    for data in [
        &b"\"SGVsbG8g\xffV29ybGQ=\""[..],
        b"\"SGVsbG8gV29ybGQ\xc3\"",
        b"\"SGVsbG8g\\ud800V29ybGQ=\"",
        b"[72,101,108]",
    ] {
        let (head, tail) = base.split_once("\"SGVsbG8gV29ybGQ=\"").unwrap();
        let json = [head.as_bytes(), data, tail.as_bytes()].concat();
        assert!(!same_decoding(&json), "{}", String::from_utf8_lossy(&json));
    }
}

/// A Firehose event of `payloads` as JSON, every third record without `recordId`.
fn event_json(payloads: &[Vec<u8>]) -> Vec<u8> {
    let records: Vec<Value> = payloads
        .iter()
        .enumerate()
        .map(|(n, data)| {
            let mut record = json!({
                "approximateArrivalTimestamp": 1_717_848_000_000u64,
                "data": STANDARD.encode(data),
            });
            if n % 3 != 2 {
                record["recordId"] = json!(format!("record-{n}-\"quoted\""));
            }
            record
        })
        .collect();
    serde_json::to_vec(&json!({"invocationId": "x", "records": records})).unwrap()
}

/// Both drivers on `json`: same summary, same response JSON (as values; the `partitionKeys` map
/// has no order), same length, and the bytes we send are the bytes serde_json writes for them.
fn same_responses(json: &[u8], table: Table) {
    let theirs: KinesisFirehoseEvent = serde_json::from_slice(json).unwrap();
    let ours: FirehoseEvent = serde_json::from_slice(json).unwrap();
    let (their_response, their_summary) = transform(&theirs, table);
    let (our_response, our_summary) = transform_json(&ours, table);
    assert_eq!(their_summary, our_summary);
    let their_bytes = serde_json::to_vec(&their_response).unwrap();
    assert_eq!(their_bytes.len(), our_response.len());
    assert_eq!(their_summary.response_bytes, our_response.len());
    let their_value: Value = serde_json::from_slice(&their_bytes).unwrap();
    let our_value: Value = serde_json::from_str(our_response.as_str()).unwrap();
    assert_eq!(their_value, our_value);
    assert_eq!(
        serde_json::to_vec(&our_response).unwrap(),
        our_response.as_str().as_bytes(),
        "serde_json writes a ResponseJson verbatim"
    );
}

#[test]
fn responses_are_the_same_json_for_valid_invalid_and_odd_records() {
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(9));
    let mut payloads: Vec<Vec<u8>> = (0..60).map(|_| generator.next_order().to_json()).collect();
    payloads.insert(3, b"not json".to_vec());
    payloads.insert(5, Vec::new());
    payloads.insert(8, br#"{"customer_id": "c"}"#.to_vec());
    payloads.insert(9, vec![0xff, 0xfe, b'"']);
    for _ in 0..8 {
        payloads.push(generator.invalid_order().body);
    }
    let json = event_json(&payloads);
    for table in Table::ALL {
        same_responses(&json, table);
    }
    same_responses(&event_json(&[]), Table::Orders);
}

#[test]
fn responses_are_the_same_json_when_records_are_over_budget() {
    // product_details rows of 100 tiny lines with long ids: far more than 6 MB of rows.
    let mut order: Value = serde_json::from_slice(
        &OrderGenerator::new(GeneratorConfig::fixed(6))
            .next_order()
            .to_json(),
    )
    .unwrap();
    order["customer_id"] = "c".repeat(128).into();
    let line = json!({"product_id": "p", "name": "n", "quantity": 1, "item_details": {"color": "c", "size": "s"}});
    order["product_details"] = Value::Array(vec![line; 100]);
    // About 5.5 MB of base64 in: the records fit as they came, not as rows.
    let mut payloads: Vec<Vec<u8>> = Vec::new();
    let mut size = 0;
    while size < 5_500_000 {
        order["order_id"] = format!("{:0>128}", payloads.len()).into();
        let text = order.to_string().into_bytes();
        size += text.len() * 4 / 3 + 100;
        payloads.push(text);
    }
    let json = event_json(&payloads);
    let ours: FirehoseEvent = serde_json::from_slice(&json).unwrap();
    let (response, summary) = transform_json(&ours, Table::ProductDetails);
    assert!(summary.over_budget > 0);
    assert!(response.len() <= RESPONSE_LIMIT_BYTES);
    same_responses(&json, Table::ProductDetails);
}
