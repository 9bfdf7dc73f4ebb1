//! The consumer's one-pass event decoding against the reference it replaced: aws_lambda_events'
//! `KinesisEvent`, then each record's `approximateArrivalTimestamp` re-read from its JSON text
//! for the exact time. On AWS's sample events, edge cases and generated timestamps,
//! [`OrderRecordsEvent`] accepts exactly what the reference accepts and yields the same records.

use std::path::{Path, PathBuf};

use aws_lambda_events::event::kinesis::KinesisEvent;
use orderflow_consumer::{OrderRecordsEvent, parse_epoch_seconds};
use proptest::prelude::*;
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Value, json};

/// The reference: aws_lambda_events' decoding, each record's arrival time then read exactly from
/// its own JSON text (refused when that text is not epoch seconds).
fn reference(json: &[u8]) -> Result<KinesisEvent, String> {
    #[derive(Deserialize)]
    struct Raw<'a> {
        #[serde(borrow, rename = "Records")]
        records: Vec<RawRecord<'a>>,
    }
    #[derive(Deserialize)]
    struct RawRecord<'a> {
        #[serde(borrow)]
        kinesis: RawKinesis<'a>,
    }
    #[derive(Deserialize)]
    struct RawKinesis<'a> {
        #[serde(borrow, rename = "approximateArrivalTimestamp")]
        arrival: &'a RawValue,
    }
    let mut event: KinesisEvent = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    let raw: Raw<'_> = serde_json::from_slice(json).map_err(|e| e.to_string())?;
    for (record, raw) in event.records.iter_mut().zip(raw.records) {
        record.kinesis.approximate_arrival_timestamp.0 =
            parse_epoch_seconds(raw.kinesis.arrival.get()).ok_or("not epoch seconds")?;
    }
    Ok(event)
}

/// Both decoders on `json`: both refuse it, or both accept it with equal records. Returns
/// whether it was accepted.
fn same_decoding(json: &[u8]) -> bool {
    let theirs = reference(json);
    let ours = serde_json::from_slice::<OrderRecordsEvent>(json);
    match (theirs, ours) {
        (Ok(theirs), Ok(ours)) => {
            assert_eq!(ours.0, theirs, "on {}", String::from_utf8_lossy(json));
            true
        }
        (Err(_), Err(_)) => false,
        (theirs, ours) => panic!(
            "reference: {:?}, ours: {:?} on {}",
            theirs.err(),
            ours.err().map(|e| e.to_string()),
            String::from_utf8_lossy(json)
        ),
    }
}

/// The copied AWS samples, and every fixture of the registry's aws_lambda_events when present.
fn aws_samples() -> Vec<PathBuf> {
    let mut dirs = vec![Path::new(env!("CARGO_MANIFEST_DIR")).join("tests/aws-samples")];
    let cargo_home = std::env::var_os("CARGO_HOME")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HOME").map(|home| PathBuf::from(home).join(".cargo")));
    if let Some(Ok(registries)) = cargo_home.map(|home| home.join("registry/src").read_dir()) {
        dirs.extend(
            registries
                .flatten()
                .map(|registry| registry.path().join("aws_lambda_events-1.2.1/src/fixtures")),
        );
    }
    let mut files: Vec<PathBuf> = dirs
        .iter()
        .filter_map(|dir| dir.read_dir().ok())
        .flat_map(|entries| entries.flatten().map(|entry| entry.path()))
        .filter(|path| path.extension().is_some_and(|e| e == "json"))
        .collect();
    files.sort();
    files
}

#[test]
fn aws_sample_events_decode_alike() {
    let files = aws_samples();
    assert!(files.len() >= 2, "the copied samples are missing");
    let mut accepted = 0;
    for file in &files {
        if same_decoding(&std::fs::read(file).unwrap()) {
            accepted += 1;
        }
    }
    // At least the two Kinesis samples.
    assert!(accepted >= 2, "{accepted} of {} accepted", files.len());
    eprintln!("{} sample files, {accepted} accepted by both", files.len());
}

/// A valid event with one record, to mutate.
fn base_event() -> Value {
    json!({"Records": [{
        "kinesis": {
            "kinesisSchemaVersion": "1.0",
            "partitionKey": "c",
            "sequenceNumber": "49590338271490256608559692538361571095921575989136588898",
            "data": "SGVsbG8gV29ybGQ=",
            "approximateArrivalTimestamp": 1_717_848_000.125
        },
        "eventSource": "aws:kinesis",
        "eventVersion": "1.0",
        "eventID": "shardId-000000000000:49590338271490256608559692538361571095921575989136588898",
        "eventName": "aws:kinesis:record",
        "invokeIdentityArn": "arn:aws:iam::123456789012:role/consumer",
        "awsRegion": "us-east-1",
        "eventSourceARN": "arn:aws:kinesis:us-east-1:123456789012:stream/orders"
    }]})
}

#[test]
fn edge_cases_are_accepted_and_refused_alike() {
    // Replaces the value at `pointer`, or adds it as a member of its parent object.
    let set = |pointer: &str, value: Value| {
        let mut event = base_event();
        match event.pointer_mut(pointer) {
            Some(slot) => *slot = value,
            None => {
                let (parent, key) = pointer.rsplit_once('/').unwrap();
                let parent = event.pointer_mut(parent).unwrap().as_object_mut().unwrap();
                parent.insert(key.to_owned(), value);
            }
        }
        event
    };
    let remove = |parent: &str, key: &str| {
        let mut event = base_event();
        event
            .pointer_mut(parent)
            .unwrap()
            .as_object_mut()
            .unwrap()
            .remove(key);
        event
    };
    let arrival = |value: Value| set("/Records/0/kinesis/approximateArrivalTimestamp", value);
    let data = |value: Value| set("/Records/0/kinesis/data", value);
    let cases: Vec<(&str, Value, bool)> = vec![
        ("as is", base_event(), true),
        ("no Records", remove("", "Records"), false),
        ("Records null", set("/Records", Value::Null), false),
        ("Records an object", set("/Records", json!({})), false),
        ("no records", set("/Records", json!([])), true),
        ("a record null", set("/Records/0", Value::Null), false),
        ("no kinesis", remove("/Records/0", "kinesis"), false),
        (
            "kinesis null",
            set("/Records/0/kinesis", Value::Null),
            false,
        ),
        ("no eventID", remove("/Records/0", "eventID"), true),
        ("eventID null", set("/Records/0/eventID", Value::Null), true),
        (
            "eventID a number",
            set("/Records/0/eventID", json!(5)),
            false,
        ),
        (
            "eventID with escapes",
            set("/Records/0/eventID", json!("a\"b\\c\nd\u{1}é/:x")),
            true,
        ),
        (
            "awsRegion an object",
            set("/Records/0/awsRegion", json!({})),
            false,
        ),
        (
            "no partitionKey",
            remove("/Records/0/kinesis", "partitionKey"),
            true,
        ),
        (
            "partitionKey null",
            set("/Records/0/kinesis/partitionKey", Value::Null),
            false,
        ),
        (
            "no sequenceNumber",
            remove("/Records/0/kinesis", "sequenceNumber"),
            true,
        ),
        (
            "sequenceNumber a number",
            set("/Records/0/kinesis/sequenceNumber", json!(12)),
            false,
        ),
        (
            "encryption KMS",
            set("/Records/0/kinesis/encryptionType", json!("KMS")),
            true,
        ),
        (
            "encryption NONE",
            set("/Records/0/kinesis/encryptionType", json!("NONE")),
            true,
        ),
        (
            "encryption unknown",
            set("/Records/0/kinesis/encryptionType", json!("AES")),
            false,
        ),
        (
            "encryption null",
            set("/Records/0/kinesis/encryptionType", Value::Null),
            false,
        ),
        (
            "schema version null",
            set("/Records/0/kinesis/kinesisSchemaVersion", Value::Null),
            true,
        ),
        ("no data", remove("/Records/0/kinesis", "data"), false),
        ("data null", data(Value::Null), false),
        ("data a number", data(json!(1)), false),
        ("data empty", data(json!("")), true),
        ("data not base64", data(json!("not base64!")), false),
        ("data unpadded", data(json!("SGk")), false),
        ("data trailing bits", data(json!("SGl=")), false),
        ("data url-safe alphabet", data(json!("-_-_")), false),
        ("data with a newline", data(json!("SGVs\nbG8=")), false),
        ("data padding inside", data(json!("SQ==SQ==")), false),
        (
            "no timestamp",
            remove("/Records/0/kinesis", "approximateArrivalTimestamp"),
            false,
        ),
        ("timestamp null", arrival(Value::Null), false),
        ("timestamp a bool", arrival(json!(true)), false),
        (
            "timestamp an integer",
            arrival(json!(1_717_848_000u64)),
            true,
        ),
        ("timestamp zero", arrival(json!(0)), true),
        ("timestamp negative", arrival(json!(-5)), false),
        ("timestamp negative float", arrival(json!(-5.5)), false),
        ("timestamp a string", arrival(json!("1717848000.25")), true),
        (
            "timestamp a string, spaces",
            arrival(json!(" 1717848000")),
            false,
        ),
        (
            "timestamp a string, not a number",
            arrival(json!("soon")),
            false,
        ),
        ("timestamp a string, inf", arrival(json!("inf")), false),
        (
            "timestamp a string, exponent",
            arrival(json!("1.7e9")),
            true,
        ),
        (
            "timestamp one fraction digit",
            arrival(json!(1_717_848_000.5)),
            true,
        ),
        // aws_lambda_events takes the fraction's digits as milliseconds: six are out of range.
        (
            "timestamp micros",
            arrival(json!(1_717_848_000.123_456)),
            false,
        ),
        ("timestamp tiny", arrival(json!(1e-7)), true),
        ("timestamp huge", arrival(json!(1e300)), false),
    ];
    let mut refused = Vec::new();
    for (name, event, accepted) in &cases {
        let json = serde_json::to_vec(event).unwrap();
        let both = same_decoding(&json);
        assert_eq!(both, *accepted, "{name}: accepted {both}");
        if !both {
            refused.push(*name);
        }
    }
    // Raw JSON the `json!` values cannot spell: exponents, many digits, a repeated member.
    let text = serde_json::to_string(&base_event()).unwrap();
    let spelled = |from: &str, to: &str| {
        assert!(text.contains(from), "{from} is not in the base event");
        text.replacen(from, to, 1)
    };
    let ts = "1717848000.125";
    for (json, accepted) in [
        (spelled(ts, "1.717848000125E9"), true),
        (spelled(ts, "1717848000.1250000000000001"), true),
        (spelled(ts, "1717848000.000"), true),
        (spelled(ts, "17178480001"), true),
        (
            spelled(ts, "1717848000.125,\"approximateArrivalTimestamp\":1"),
            false,
        ),
        (spelled("\"c\"", "\"c\",\"partitionKey\":\"d\""), false),
        (
            spelled("{\"Records\"", "{\"Records\":[],\"Records\""),
            false,
        ),
        (
            spelled("\"eventName\"", "\"extra\":[1,{}],\"eventName\""),
            true,
        ),
        (spelled("SGVsbG8gV29ybGQ=", "SGVsbG8gV29ybGQ\\u003d"), true),
        (spelled("\"c\"", "\"\\u00e9\\n\""), true),
    ] {
        assert_eq!(same_decoding(json.as_bytes()), accepted, "{json}");
    }
    // Data that is not text (the data is read as bytes, not checked for UTF-8 first): a raw byte
    // that is not UTF-8 in the base64, a lone surrogate escape, an array of numbers (which
    // serde_json would read as bytes).
    let base = serde_json::to_string(&base_event()).unwrap();
    for data in [
        &b"\"SGVsbG8g\xffV29ybGQ=\""[..],
        b"\"SGVsbG8gV29ybGQ\xc3\"",
        b"\"SGVsbG8g\\ud800V29ybGQ=\"",
        b"[72,101,108]",
    ] {
        let json = [
            base.split_once("\"SGVsbG8gV29ybGQ=\"")
                .unwrap()
                .0
                .as_bytes(),
            data,
            base.split_once("\"SGVsbG8gV29ybGQ=\"")
                .unwrap()
                .1
                .as_bytes(),
        ]
        .concat();
        assert!(!same_decoding(&json), "{}", String::from_utf8_lossy(&json));
    }
    eprintln!("{} cases, refused by both: {refused:?}", cases.len());
}

proptest! {
    /// Arrival times as Kinesis and hand-written events spell them: numbers with 0 to 9 fraction
    /// digits, in exponent form, or in strings.
    #[test]
    fn arrival_times_decode_alike(
        seconds in 0u64..4_000_000_000,
        fraction in "[0-9]{0,9}",
        form in 0u8..4,
    ) {
        let number = if fraction.is_empty() {
            seconds.to_string()
        } else {
            format!("{seconds}.{fraction}")
        };
        let spelled = match form {
            0 => number,
            1 => format!("\"{number}\""),
            2 => format!("{:e}", number.parse::<f64>().unwrap()),
            _ => format!("{}E0", number),
        };
        let text = serde_json::to_string(&base_event())
            .unwrap()
            .replacen("1717848000.125", &spelled, 1);
        same_decoding(text.as_bytes());
    }
}

#[test]
fn generated_events_decode_alike() {
    let json = orderflow_consumer::sample_event(200);
    assert!(same_decoding(&json));
    let event: OrderRecordsEvent = serde_json::from_slice(&json).unwrap();
    assert_eq!(event.0.records.len(), 200);
    assert_eq!(
        event.0.records[0]
            .kinesis
            .approximate_arrival_timestamp
            .timestamp_millis(),
        1_717_848_000_125
    );
}
