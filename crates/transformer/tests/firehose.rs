//! The transformer driver on Firehose events in their wire format (`docs/design.md` section 5).

use aws_lambda_events::event::firehose::{KinesisFirehoseEvent, KinesisFirehoseResponse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{TimeZone, Utc};
use orderflow_domain::{GeneratorConfig, OrderGenerator, Table, parse_order};
use orderflow_transformer::{RESPONSE_LIMIT_BYTES, transform};
use serde_json::{Value, json};

/// A Firehose transformation event as Firehose sends it (Kinesis stream as source).
fn firehose_event(payloads: &[Vec<u8>]) -> KinesisFirehoseEvent {
    let records: Vec<Value> = payloads
        .iter()
        .enumerate()
        .map(|(n, data)| {
            json!({
                "recordId": format!("49546986683135544286507457936321625675700192471156785154{n:06}"),
                "approximateArrivalTimestamp": 1_717_848_000_000u64 + n as u64,
                "data": STANDARD.encode(data),
                "kinesisRecordMetadata": {
                    "shardId": "shardId-000000000000",
                    "partitionKey": "c",
                    "approximateArrivalTimestamp": 1_717_848_000_000u64 + n as u64,
                    "sequenceNumber": format!("4954698668313554428650745793632162567570019247115678{n:04}"),
                    "subsequenceNumber": 0
                }
            })
        })
        .collect();
    serde_json::from_value(json!({
        "invocationId": "invoked123",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/orders",
        "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
        "region": "us-east-1",
        "records": records
    }))
    .expect("a valid Firehose event")
}

fn generated(count: usize, seed: u64) -> Vec<Vec<u8>> {
    let now = Utc.with_ymd_and_hms(2024, 6, 8, 12, 0, 0).unwrap();
    let mut generator = OrderGenerator::new(GeneratorConfig {
        seed,
        customers: 100,
        days: 40,
        now,
    });
    (0..count)
        .map(|_| generator.next_order().to_json())
        .collect()
}

/// The response as Lambda would send it back to Firehose (JSON), decoded again.
fn over_the_wire(response: &KinesisFirehoseResponse) -> (Value, usize) {
    let text = serde_json::to_string(response).unwrap();
    (serde_json::from_str(&text).unwrap(), text.len())
}

fn lines_of(record: &Value) -> Vec<Value> {
    let data = STANDARD.decode(record["data"].as_str().unwrap()).unwrap();
    data.split(|b| *b == b'\n')
        .filter(|l| !l.is_empty())
        .map(|l| serde_json::from_slice(l).unwrap())
        .collect()
}

#[test]
fn one_answer_per_record_same_ids_same_order() {
    let mut payloads = generated(20, 1);
    payloads.insert(3, b"not json at all".to_vec());
    payloads.insert(7, br#"{"customer_id": "c"}"#.to_vec());
    let event = firehose_event(&payloads);
    for table in Table::ALL {
        let (response, summary) = transform(&event, table);
        let ids: Vec<_> = response
            .records
            .iter()
            .map(|r| r.record_id.clone())
            .collect();
        let expected: Vec<_> = event.records.iter().map(|r| r.record_id.clone()).collect();
        assert_eq!(ids, expected, "{table}");
        assert_eq!(
            (summary.ok, summary.invalid, summary.dropped),
            (20, 2, 0),
            "{table}"
        );
        let results: Vec<_> = response
            .records
            .iter()
            .map(|r| r.result.clone().unwrap())
            .collect();
        assert_eq!(results[3], "ProcessingFailed");
        assert_eq!(results[7], "ProcessingFailed");
        assert_eq!(results.iter().filter(|r| *r == "Ok").count(), 20);
    }
}

#[test]
fn processing_failed_returns_the_original_bytes_without_partition_keys() {
    let original = b"\xff\xfe{ binary garbage".to_vec();
    let event = firehose_event(std::slice::from_ref(&original));
    let (response, _) = transform(&event, Table::Orders);
    let (wire, _) = over_the_wire(&response);
    let record = &wire["records"][0];
    assert_eq!(record["result"], "ProcessingFailed");
    assert_eq!(
        STANDARD.decode(record["data"].as_str().unwrap()).unwrap(),
        original
    );
    assert!(
        record["metadata"]["partitionKeys"]
            .as_object()
            .is_none_or(|keys| keys.is_empty())
    );
}

#[test]
fn partition_keys_are_the_utc_day_of_order_date() {
    let mut order: Value = serde_json::from_slice(&generated(1, 2)[0]).unwrap();
    order["order_date"] = "2024-06-08T23:30:00-02:00".into();
    let event = firehose_event(&[order.to_string().into_bytes()]);
    for table in Table::ALL {
        let (response, _) = transform(&event, table);
        let (wire, _) = over_the_wire(&response);
        let keys = &wire["records"][0]["metadata"]["partitionKeys"];
        assert_eq!(
            keys,
            &json!({"year": "2024", "month": "06", "day": "09"}),
            "{table}"
        );
    }
}

#[test]
fn product_details_emits_one_object_per_line_in_one_record() {
    let payloads = generated(50, 3);
    let event = firehose_event(&payloads);
    let (response, summary) = transform(&event, Table::ProductDetails);
    let (wire, _) = over_the_wire(&response);
    let mut total_lines = 0;
    for (payload, record) in payloads.iter().zip(wire["records"].as_array().unwrap()) {
        let order = parse_order(payload).unwrap();
        let rows = lines_of(record);
        assert_eq!(rows.len(), order.product_details.len());
        for (index, (row, line)) in rows.iter().zip(&order.product_details).enumerate() {
            assert_eq!(row["line_number"], index + 1);
            assert_eq!(row["product_id"], &*line.product_id);
            assert_eq!(row["quantity"], line.quantity);
            assert_eq!(row["color"], &*line.item_details.color);
            assert_eq!(row["order_id"], &*order.order_id);
        }
        total_lines += rows.len();
    }
    assert_eq!(summary.rows, total_lines);
}

#[test]
fn amounts_keep_their_exact_decimals() {
    let mut order: Value = serde_json::from_slice(&generated(1, 4)[0]).unwrap();
    let mut payloads = Vec::new();
    for amount in ["0.1", "1234567890.12", "9999999999.99", "7", "0.07"] {
        order["purchase_details"]["amount"] = serde_json::from_str(amount).unwrap();
        // Splice the exact text in, as a producer would send it (no float round trip).
        let text = order.to_string();
        payloads.push(text.into_bytes());
    }
    payloads.push(
        String::from_utf8(payloads[0].clone())
            .unwrap()
            .replace(r#""amount":0.1"#, r#""amount":12345678.90"#)
            .into_bytes(),
    );
    let event = firehose_event(&payloads);
    let (response, _) = transform(&event, Table::PurchaseDetails);
    let texts: Vec<String> = response
        .records
        .iter()
        .map(|r| String::from_utf8(r.data.0.clone()).unwrap())
        .collect();
    let expected = [
        "0.10",
        "1234567890.12",
        "9999999999.99",
        "7.00",
        "0.07",
        "12345678.90",
    ];
    for (text, amount) in texts.iter().zip(expected) {
        assert!(
            text.contains(&format!(r#""amount":{amount},"#)),
            "{text} should hold {amount}"
        );
    }
}

#[test]
fn every_row_matches_the_table_file() {
    let payloads = generated(300, 5);
    let event = firehose_event(&payloads);
    for table in Table::ALL {
        let (response, _) = transform(&event, table);
        let (wire, _) = over_the_wire(&response);
        let columns = &table.definition().columns;
        for record in wire["records"].as_array().unwrap() {
            for row in lines_of(record) {
                let row = row.as_object().unwrap();
                assert_eq!(row.len(), columns.len(), "{table}: {row:?}");
                for column in columns {
                    let value = row
                        .get(&column.name)
                        .unwrap_or_else(|| panic!("{table}.{} missing", column.name));
                    assert!(
                        column.column_type.accepts(value),
                        "{table}.{} = {value} is not {}",
                        column.name,
                        column.column_type
                    );
                }
            }
        }
    }
}

#[test]
fn the_response_stays_under_the_lambda_limit_and_loses_nothing() {
    // Orders that grow a lot as product_details rows: 100 tiny lines with 128-character ids.
    let mut order: Value = serde_json::from_slice(&generated(1, 6)[0]).unwrap();
    order["customer_id"] = "c".repeat(128).into();
    let line = json!({"product_id": "p", "name": "n", "quantity": 1, "item_details": {"color": "c", "size": "s"}});
    order["product_details"] = Value::Array(vec![line; 100]);
    let mut payloads = Vec::new();
    let mut size = 0;
    let mut n = 0;
    while size < 5_500_000 {
        order["order_id"] = format!("{n:0>128}").into();
        let text = order.to_string().into_bytes();
        size += text.len() * 4 / 3 + 200;
        payloads.push(text);
        n += 1;
    }
    let event = firehose_event(&payloads);
    let (response, summary) = transform(&event, Table::ProductDetails);
    let (wire, bytes) = over_the_wire(&response);
    assert!(bytes <= RESPONSE_LIMIT_BYTES, "response is {bytes} bytes");
    assert!(summary.over_budget > 0, "this event cannot fit as rows");
    assert_eq!(summary.ok + summary.over_budget, payloads.len());
    for (payload, record) in payloads.iter().zip(wire["records"].as_array().unwrap()) {
        if record["result"] == "ProcessingFailed" {
            assert_eq!(
                &STANDARD.decode(record["data"].as_str().unwrap()).unwrap(),
                payload
            );
        } else {
            assert_eq!(lines_of(record).len(), 100);
        }
    }
}
