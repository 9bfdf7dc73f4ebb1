//! The transformer driver on Firehose events in their wire format (`docs/design.md` section 5).

use aws_lambda_events::event::firehose::{KinesisFirehoseEvent, KinesisFirehoseResponse};
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use chrono::{TimeZone, Utc};
use orderflow_domain::{GeneratorConfig, MAX_PRODUCT_LINES, OrderGenerator, Table, parse_order};
use orderflow_transformer::{FirehoseEvent, RESPONSE_LIMIT_BYTES, handle_json, transform};
use serde_json::{Value, json};

/// One record of a Firehose transformation event as Firehose sends it (Kinesis stream as source).
fn firehose_record(n: usize, data: &[u8]) -> Value {
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
}

/// A Firehose transformation event of `records` as Firehose sends it (JSON).
fn firehose_event_json(records: Vec<Value>) -> Value {
    json!({
        "invocationId": "invoked123",
        "deliveryStreamArn": "arn:aws:firehose:us-east-1:123456789012:deliverystream/orders",
        "sourceKinesisStreamArn": "arn:aws:kinesis:us-east-1:123456789012:stream/orders",
        "region": "us-east-1",
        "records": records
    })
}

/// A Firehose transformation event as Firehose sends it (Kinesis stream as source).
fn firehose_event(payloads: &[Vec<u8>]) -> KinesisFirehoseEvent {
    let records = payloads
        .iter()
        .enumerate()
        .map(|(n, data)| firehose_record(n, data))
        .collect();
    serde_json::from_value(firehose_event_json(records)).expect("a valid Firehose event")
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

const MB: usize = 1024 * 1024;

/// A record as Firehose sends it from a Direct PUT source: no `kinesisRecordMetadata`, so more
/// records fit in an event.
fn direct_put_record(n: usize, data: &[u8]) -> Value {
    let mut record = firehose_record(n, data);
    record
        .as_object_mut()
        .unwrap()
        .remove("kinesisRecordMetadata");
    record
}

/// The largest event of orders from `next`, each made a record by `record`, whose JSON as
/// Firehose sends it is at most `limit` bytes.
fn event_of_size(
    limit: usize,
    record: fn(usize, &[u8]) -> Value,
    mut next: impl FnMut() -> Vec<u8>,
) -> KinesisFirehoseEvent {
    let mut size = firehose_event_json(Vec::new()).to_string().len();
    let mut records = Vec::new();
    loop {
        let record = record(records.len(), &next());
        let len = record.to_string().len() + usize::from(!records.is_empty());
        if size + len > limit {
            break;
        }
        size += len;
        records.push(record);
    }
    let json = firehose_event_json(records).to_string();
    assert_eq!(json.len(), size);
    serde_json::from_str(&json).unwrap()
}

/// Generated orders of about 700 bytes, with the legacy `purchaise_details` spelling.
fn small_orders() -> impl FnMut() -> Vec<u8> {
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(13));
    move || {
        String::from_utf8(generator.next_order().to_json())
            .unwrap()
            .replace(r#""purchase_details""#, r#""purchaise_details""#)
            .into_bytes()
    }
}

/// Generated orders with their lines repeated up to the 100-line maximum (about 12 KB each).
fn large_orders() -> impl FnMut() -> Vec<u8> {
    let mut generator = OrderGenerator::new(GeneratorConfig::fixed(14));
    move || {
        let mut order: Value = serde_json::from_slice(&generator.next_order().to_json()).unwrap();
        let lines = order["product_details"].as_array().unwrap().clone();
        order["product_details"] = lines
            .iter()
            .cycle()
            .take(MAX_PRODUCT_LINES)
            .cloned()
            .collect();
        order.to_string().into_bytes()
    }
}

/// Transforms `event` (valid orders only) for every table, checks the response contract and the
/// budget, and returns how many records came back `Ok` per table (in `Table::ALL` order).
///
/// Checked: the response is exactly `summary.response_bytes` long and at most the limit; one
/// answer per record, same id, same order; every refused record carries its original bytes and
/// its `Ok` answer would not have fitted in this response (greedy: nothing refused that fits).
fn ok_counts(event: &KinesisFirehoseEvent) -> [usize; 4] {
    Table::ALL.map(|table| {
        let (response, summary) = transform(event, table);
        let bytes = serde_json::to_string(&response).unwrap().len();
        assert_eq!(bytes, summary.response_bytes, "{table}: exact size");
        assert!(bytes <= RESPONSE_LIMIT_BYTES, "{table}: {bytes} bytes");
        assert_eq!(response.records.len(), event.records.len(), "{table}");
        let mut ok = 0;
        for (record, answer) in event.records.iter().zip(&response.records) {
            assert_eq!(answer.record_id, record.record_id, "{table}");
            match answer.result.as_deref() {
                Some("Ok") => ok += 1,
                Some("ProcessingFailed") => {
                    assert_eq!(answer.data, record.data, "{table}: original bytes");
                    let mut alone = KinesisFirehoseEvent::default();
                    alone.records.push(record.clone());
                    let (as_ok, _) = transform(&alone, table);
                    assert_eq!(as_ok.records[0].result.as_deref(), Some("Ok"));
                    let ok_len = serde_json::to_string(&as_ok.records[0]).unwrap().len();
                    let failed_len = serde_json::to_string(answer).unwrap().len();
                    assert!(
                        bytes - failed_len + ok_len > RESPONSE_LIMIT_BYTES,
                        "{table}: a record that fits was refused"
                    );
                }
                other => panic!("{table}: unexpected result {other:?}"),
            }
        }
        assert_eq!(
            (summary.ok, summary.over_budget),
            (ok, event.records.len() - ok),
            "{table}"
        );
        ok
    })
}

/// For each `(MB, records, Ok per table)` case, an event of that size of `record`s from
/// `orders` (a fresh stream each time): the records it holds and how many come back `Ok`,
/// compared all at once.
fn assert_ok_counts<F: FnMut() -> Vec<u8>>(
    cases: &[(usize, usize, [usize; 4])],
    record: fn(usize, &[u8]) -> Value,
    orders: impl Fn() -> F,
) {
    let actual: Vec<_> = cases
        .iter()
        .map(|&(mb, ..)| {
            let event = event_of_size(mb * MB, record, orders());
            (mb, event.records.len(), ok_counts(&event))
        })
        .collect();
    assert_eq!(actual, cases);
}

// Cases: (event size in MB, records in it, `Ok` per table: orders, product_details,
// purchase_details, shipping_addresses). 6 MB is the largest event Lambda delivers.

#[test]
fn small_orders_at_1_3_and_6_mb_come_back_ok_as_far_as_they_fit() {
    let cases = [
        (1, 820, [820; 4]),
        (3, 2_482, [2_482; 4]),
        (6, 4_946, [4_946; 4]),
    ];
    assert_ok_counts(&cases, firehose_record, small_orders);
}

#[test]
fn small_direct_put_orders_at_1_3_and_6_mb_come_back_ok_as_far_as_they_fit() {
    // Without Kinesis metadata a 6 MB event holds about 6,000 small orders: the case where a
    // per-record reserve refused them all.
    let cases = [
        (1, 994, [994; 4]),
        (3, 3_002, [3_002; 4]),
        (6, 5_976, [5_976; 4]),
    ];
    assert_ok_counts(&cases, direct_put_record, small_orders);
}

#[test]
fn large_orders_at_1_3_and_6_mb_come_back_ok_as_far_as_they_fit() {
    // 100-line orders: their `product_details` rows outgrow the order.
    let cases = [
        (1, 70, [70; 4]),
        (3, 209, [209; 4]),
        (6, 420, [420, 12, 420, 420]),
    ];
    assert_ok_counts(&cases, firehose_record, large_orders);
}

#[test]
fn an_event_whose_smallest_answer_is_over_the_limit_fails_the_invocation() {
    // Five 1 MB records that are not orders: their original bytes alone are 6.7 MB of base64.
    let event = firehose_event(&vec![vec![b'x'; 1_000_000]; 5]);
    let (response, summary) = transform(&event, Table::Orders);
    assert_eq!((response.records.len(), summary.invalid), (5, 5));
    let bytes = serde_json::to_string(&response).unwrap().len();
    assert_eq!(summary.response_bytes, bytes);
    assert!(bytes > RESPONSE_LIMIT_BYTES);
    // What the Lambdas run, on the event as Lambda delivers it.
    let own = |event: &KinesisFirehoseEvent| -> FirehoseEvent {
        serde_json::from_str(&serde_json::to_string(event).unwrap()).unwrap()
    };
    let error = handle_json(&own(&event), Table::Orders).unwrap_err();
    assert_eq!(error.response_bytes, bytes);
    // Just under the limit, the same records are answered.
    let event = firehose_event(&vec![vec![b'x'; 1_000_000]; 4]);
    let answered = handle_json(&own(&event), Table::Orders).unwrap();
    let answered: KinesisFirehoseResponse = serde_json::from_str(answered.as_str()).unwrap();
    assert_eq!(answered.records.len(), 4);
}

#[test]
fn the_sample_event_stays_under_its_limit_and_decodes() {
    let (event, records) = orderflow_transformer::sample_event(100_000);
    assert!(event.len() <= 100_000, "{} bytes", event.len());
    let parsed: KinesisFirehoseEvent = serde_json::from_slice(&event).unwrap();
    assert_eq!(parsed.records.len(), records);
    assert!(records > 50);
    assert!(
        parsed
            .records
            .iter()
            .all(|record| parse_order(&record.data).is_ok())
    );
}
