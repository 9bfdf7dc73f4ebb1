//! Crash safety of the twin: `kill -9` in the middle of a run, then `orderflow up` again on the
//! same data folder. Nothing acknowledged is lost; duplicates appear only where AWS would also
//! duplicate (at-least-once re-delivery of whole records); the DynamoDB state is exact; and a
//! graceful restart afterwards changes nothing.

mod support;

use std::collections::{BTreeMap, HashMap};
use std::path::Path;
use std::str::FromStr;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, NaiveDateTime, Utc};
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use datafusion::parquet::record::Field;
use orderflow_domain::{
    ColumnType, GeneratorConfig, Order, OrderGenerator, Partition, Provenance, Table, order_item,
};
use orderflow_twin::status::Status;
use rust_decimal::Decimal;
use serde_json::Value;
use support::{TwinProcess, files_under, processes_mentioning, scan_all, settings_file, temp_dir};

/// Orders per request.
const BATCH: usize = 100;
/// Concurrent senders.
const SENDERS: usize = 4;
/// Acknowledged orders before the kill, at least.
const ACKED_BEFORE_KILL: usize = 3_000;

/// What the API answered for one order.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Outcome {
    /// Written.
    Acked {
        /// The shard it went to.
        shard_id: String,
        /// Its sequence number there.
        sequence_number: String,
    },
    /// Answered as not written.
    Refused(String),
    /// The request failed or was in flight when the twin died.
    Unknown,
}

/// One order the test sent.
#[derive(Debug, Clone)]
struct Sent {
    order: Order<'static>,
    outcome: Outcome,
}

/// What the senders share.
struct Senders {
    client: reqwest::Client,
    url: String,
    api_key: String,
    generator: Mutex<OrderGenerator>,
    acked: AtomicUsize,
    /// Set just before the kill: request errors after it are expected.
    killing: AtomicBool,
    /// Request errors while the twin was supposed to be up.
    early_errors: AtomicUsize,
}

impl Senders {
    /// Sends batches until the twin is gone; every order sent with its outcome.
    async fn run(self: Arc<Self>) -> Vec<Sent> {
        let mut sent = Vec::new();
        loop {
            let orders: Vec<Order<'static>> = {
                let mut generator = self.generator.lock().unwrap();
                (0..BATCH).map(|_| generator.next_order()).collect()
            };
            let mut body = b"{\"orders\":[".to_vec();
            for (index, order) in orders.iter().enumerate() {
                if index > 0 {
                    body.push(b',');
                }
                body.extend_from_slice(&order.to_json());
            }
            body.extend_from_slice(b"]}");
            let outcomes = self.post(body).await;
            let gone = outcomes.is_none();
            let outcomes = outcomes.unwrap_or_else(|| vec![Outcome::Unknown; orders.len()]);
            assert_eq!(outcomes.len(), orders.len(), "one result per order");
            let acked = outcomes
                .iter()
                .filter(|o| matches!(o, Outcome::Acked { .. }))
                .count();
            self.acked.fetch_add(acked, Ordering::SeqCst);
            sent.extend(
                orders
                    .into_iter()
                    .zip(outcomes)
                    .map(|(order, outcome)| Sent { order, outcome }),
            );
            if gone {
                if !self.killing.load(Ordering::SeqCst) {
                    self.early_errors.fetch_add(1, Ordering::SeqCst);
                    tokio::time::sleep(Duration::from_millis(100)).await;
                    continue;
                }
                return sent;
            }
        }
    }

    /// One batch request; `None` when its outcome is unknown (connection failed or cut).
    async fn post(&self, body: Vec<u8>) -> Option<Vec<Outcome>> {
        let response = self
            .client
            .post(&self.url)
            .header("x-api-key", &self.api_key)
            .header("content-type", "application/json")
            .body(body)
            .send()
            .await
            .ok()?;
        let status = response.status().as_u16();
        let text = response.bytes().await.ok()?;
        match status {
            200 | 207 => {
                let answer: Value = serde_json::from_slice(&text).expect("a batch answer");
                let records = answer["records"].as_array().expect("records");
                let outcomes: Vec<Outcome> = records
                    .iter()
                    .map(|record| {
                        match (
                            record["shard_id"].as_str(),
                            record["sequence_number"].as_str(),
                        ) {
                            (Some(shard_id), Some(sequence_number)) => Outcome::Acked {
                                shard_id: shard_id.to_owned(),
                                sequence_number: sequence_number.to_owned(),
                            },
                            _ => Outcome::Refused(record["error_code"].to_string()),
                        }
                    })
                    .collect();
                let failed = outcomes
                    .iter()
                    .filter(|o| matches!(o, Outcome::Refused(_)))
                    .count();
                assert_eq!(answer["failed_record_count"], failed, "{answer}");
                assert_eq!(status == 200, failed == 0, "200 only when all were written");
                Some(outcomes)
            }
            // A 5xx may or may not have written anything: unknown.
            500..=599 => None,
            other => panic!(
                "the API refused a valid batch: {other} {}",
                String::from_utf8_lossy(&text)
            ),
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_mid_run_loses_nothing_acknowledged_and_restarts_exactly() {
    let started = Instant::now();
    let dir = temp_dir("crash");
    let data = dir.join("data");
    let settings = settings_file(&dir, |settings| {
        settings["consumer"]["batch_size"] = 100.into();
    });

    // 1. The twin, and senders that keep sending until it dies. Without Kinesis' throughput
    // limits: every order is either acknowledged or unknown, so the accounting below is exact
    // (`throttling.rs` tests the limits).
    let twin = TwinProcess::start(&data, &settings, &["--no-limits"]);
    let test_start = Utc::now();
    let senders = Arc::new(Senders {
        client: reqwest::Client::builder()
            .timeout(Duration::from_secs(30))
            .build()
            .unwrap(),
        url: format!("{}/v1/orders/batch", twin.endpoints.api),
        api_key: twin.api_key.clone(),
        generator: Mutex::new(OrderGenerator::new(GeneratorConfig {
            days: 2,
            ..GeneratorConfig::fixed(20_240_608)
        })),
        acked: AtomicUsize::new(0),
        killing: AtomicBool::new(false),
        early_errors: AtomicUsize::new(0),
    });
    let tasks: Vec<_> = (0..SENDERS)
        .map(|_| tokio::spawn(senders.clone().run()))
        .collect();

    // 2. Kill -9 once enough is acknowledged and the consumer and every delivery are mid-work:
    // some but not all of it is in DynamoDB and in each table. (Looked at from outside, cheaply:
    // the status route reads every Parquet file and would slow the twin down.)
    let dynamodb = twin.dynamodb();
    let (items_at_kill, rows_at_kill) = loop {
        // A guard against a hang, not a speed target (a loaded machine takes minutes).
        assert!(
            started.elapsed() < Duration::from_secs(300),
            "never reached {ACKED_BEFORE_KILL} acknowledged orders with every reader mid-work"
        );
        tokio::time::sleep(Duration::from_millis(100)).await;
        let acked = senders.acked.load(Ordering::SeqCst) as u64;
        if acked < ACKED_BEFORE_KILL as u64 {
            continue;
        }
        let items = orderflow_twin::dynamodb::count_items(&dynamodb, &twin.endpoints.table)
            .await
            .unwrap();
        let rows =
            Table::ALL.map(|table| parquet_row_count(&data.join("bucket").join(table.name())));
        let acked = senders.acked.load(Ordering::SeqCst) as u64;
        if items > 0 && items < acked && rows.iter().all(|&r| r > 0) && rows[0] < acked {
            break (items, rows);
        }
    };
    senders.killing.store(true, Ordering::SeqCst);
    twin.kill9();
    let killed_at = Instant::now();
    let mut sent: Vec<Sent> = Vec::new();
    for task in tasks {
        sent.extend(
            tokio::time::timeout(Duration::from_secs(30), task)
                .await
                .expect("the senders stop once the twin is gone")
                .unwrap(),
        );
    }
    assert_eq!(
        senders.early_errors.load(Ordering::SeqCst),
        0,
        "requests failed while the twin was up"
    );
    let count = |f: fn(&Outcome) -> bool| sent.iter().filter(|s| f(&s.outcome)).count();
    let acked = count(|o| matches!(o, Outcome::Acked { .. }));
    let refused = count(|o| matches!(o, Outcome::Refused(_)));
    let unknown = count(|o| matches!(o, Outcome::Unknown));
    println!(
        "killed after {:.1} s: {} orders sent, {acked} acknowledged, {refused} refused, {unknown} unknown",
        started.elapsed().as_secs_f64(),
        sent.len()
    );
    println!(
        "a moment before the kill: {items_at_kill} dynamodb items, parquet rows {rows_at_kill:?}"
    );
    assert_eq!(refused, 0, "with --no-limits the stream throttles nothing");
    assert!(acked >= ACKED_BEFORE_KILL);

    // The dead twin's dynalite notices and exits on its own.
    let dynamodb_dir = data.join("dynamodb");
    while !processes_mentioning(&dynamodb_dir).is_empty() {
        assert!(
            killed_at.elapsed() < Duration::from_secs(30),
            "the dead twin's dynalite is still running: {:?}",
            processes_mentioning(&dynamodb_dir)
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    println!(
        "the orphaned dynalite exited {} ms after the kill",
        killed_at.elapsed().as_millis()
    );

    // The stream holds every acknowledged record (appends are committed before they are
    // answered), and the readers' durable checkpoints are behind: the kill caught them mid-work.
    // (The dead twin's twin.json names a port another process may have taken by now.)
    std::fs::remove_file(orderflow_twin::twin::endpoints_file(&data)).unwrap();
    let at_kill = support::stopped_status(&data, Some(&settings));
    for s in &sent {
        if let Outcome::Acked {
            shard_id,
            sequence_number,
        } = &s.outcome
        {
            let shard = at_kill
                .shards
                .iter()
                .find(|shard| &shard.shard_id == shard_id)
                .unwrap();
            assert!(
                shard.latest_sequence_number.as_deref() >= Some(sequence_number.as_str()),
                "acknowledged record {sequence_number} is not in the stream after the kill"
            );
        }
    }
    let lag = |reader: &str| -> u64 { at_kill.shards.iter().map(|s| s.lag[reader]).sum() };
    let lags: BTreeMap<String, u64> = orderflow_twin::status::readers()
        .into_iter()
        .map(|reader| (reader.clone(), lag(&reader)))
        .collect();
    println!(
        "after the kill: {} records in the stream, records not yet checkpointed per reader {lags:?}",
        at_kill.shards.iter().map(|s| s.records).sum::<u64>()
    );
    assert!(
        lag(orderflow_twin::consumer::READER) > 0,
        "the consumer was mid-work"
    );

    // 3. Up again on the same data: it resumes from the checkpoints and catches up.
    let by_id: HashMap<String, &Sent> = sent
        .iter()
        .map(|s| (s.order.order_id.to_string(), s))
        .collect();
    assert_eq!(by_id.len(), sent.len(), "order ids are unique");
    let restarted = Instant::now();
    let twin = TwinProcess::start(&data, &settings, &[]);
    // Every record in the stream is an order sent once: each becomes one item and one row.
    let records = |status: &Status| status.shards.iter().map(|s| s.records).sum::<u64>();
    let caught_up = twin
        .wait_until(Duration::from_secs(60), |status| {
            status.dynamodb_items == Some(records(status))
                && status.rows("orders") >= records(status)
        })
        .await;
    assert_eq!(
        records(&caught_up),
        records(&at_kill),
        "nothing new was sent"
    );
    println!(
        "restarted and caught up in {:.1} s",
        restarted.elapsed().as_secs_f64()
    );
    // Caught up means every reader checkpointed past every record, so nothing more is coming.
    tokio::time::sleep(Duration::from_millis(1_500)).await;
    let settled = twin.status().await;
    assert_eq!(
        settled.clone().without_health(),
        caught_up.without_health(),
        "nothing changes once caught up"
    );
    assert!(
        settled.error_records.is_empty(),
        "no Firehose error output: {:?}",
        settled.error_records
    );
    assert_eq!(settled.failed_batches, 0, "no batch in the failure store");

    // 4. DynamoDB: every acknowledged order, exactly; nothing the test did not send.
    let items = scan_all(&twin.dynamodb(), &twin.endpoints.table).await;
    assert_eq!(settled.dynamodb_items, Some(items.len() as u64));
    let now = Utc::now();
    let mut in_dynamodb: HashMap<String, ()> = HashMap::new();
    let mut unknown_present = 0;
    for mut item in items {
        let Some(AttributeValue::S(order_id)) = item.get("order_id").cloned() else {
            panic!("an item without order_id: {item:?}");
        };
        let sent = by_id
            .get(&order_id)
            .unwrap_or_else(|| panic!("an item the test never sent: {order_id}"));
        let Some(AttributeValue::S(sequence_number)) = item.remove("source_sequence_number") else {
            panic!("{order_id}: no source_sequence_number");
        };
        let Some(AttributeValue::S(ingested_at)) = item.remove("ingested_at") else {
            panic!("{order_id}: no ingested_at");
        };
        let ingested_at: DateTime<Utc> = ingested_at
            .parse()
            .unwrap_or_else(|e| panic!("{order_id}: ingested_at {ingested_at}: {e}"));
        assert!(
            ingested_at >= test_start - chrono::Duration::seconds(1)
                && ingested_at <= now + chrono::Duration::seconds(1),
            "{order_id}: ingested_at {ingested_at} is not the arrival time"
        );
        match &sent.outcome {
            Outcome::Acked {
                sequence_number: acknowledged,
                ..
            } => assert_eq!(
                &sequence_number, acknowledged,
                "{order_id}: the item is not from the acknowledged record"
            ),
            Outcome::Unknown => unknown_present += 1,
            Outcome::Refused(_) => panic!("{order_id}: refused, yet written"),
        }
        let mut expected = order_item(
            &sent.order,
            &Provenance {
                ingested_at,
                source_sequence_number: &sequence_number,
            },
        );
        expected.remove("source_sequence_number");
        expected.remove("ingested_at");
        assert_eq!(
            item, expected,
            "{order_id}: the item differs from the order"
        );
        in_dynamodb.insert(order_id, ());
    }
    for s in &sent {
        if matches!(s.outcome, Outcome::Acked { .. }) {
            assert!(
                in_dynamodb.contains_key(&*s.order.order_id),
                "acknowledged order {} is missing from DynamoDB",
                s.order.order_id
            );
        }
    }
    println!(
        "dynamodb: {} items = {acked} acknowledged + {unknown_present} of {unknown} with unknown outcome",
        in_dynamodb.len()
    );

    // 5. Parquet: every acknowledged order in every table; every row exact; duplicates only as
    // whole re-delivered records.
    let mut duplicated_orders = BTreeMap::new();
    let mut leftovers = Vec::new();
    for table in Table::ALL {
        let root = data.join("bucket").join(table.name());
        leftovers.extend(
            files_under(&root, "")
                .into_iter()
                .filter(|p| !p.to_string_lossy().ends_with(".parquet")),
        );
        // order id → (expected rows, copies of each row seen)
        let mut seen: HashMap<String, BTreeMap<String, usize>> = HashMap::new();
        let mut rows = 0u64;
        for file in files_under(&root, ".parquet") {
            let partition = file
                .parent()
                .unwrap()
                .strip_prefix(&root)
                .unwrap()
                .to_string_lossy()
                .into_owned();
            for row in parquet_rows(&file) {
                rows += 1;
                let order_id = row["order_id"].as_str().expect("order_id").to_owned();
                let sent = by_id.get(&order_id).unwrap_or_else(|| {
                    panic!("{}: a row of an order never sent: {row}", table.name())
                });
                assert!(
                    !matches!(sent.outcome, Outcome::Refused(_)),
                    "{order_id}: refused, yet delivered"
                );
                assert_eq!(
                    partition,
                    Partition::of(&sent.order.order_date).hive_path(),
                    "{order_id}: in the wrong partition"
                );
                let row = canonical(table, &row);
                let expected = expected_rows(table, &sent.order);
                assert!(
                    expected.contains(&row),
                    "{}: row {row} is not one of the order's rows {expected:?}",
                    table.name()
                );
                *seen.entry(order_id).or_default().entry(row).or_default() += 1;
            }
        }
        assert_eq!(rows, settled.rows(table.name()));
        let mut duplicates = 0;
        for s in &sent {
            let order_id = &*s.order.order_id;
            let Some(copies) = seen.get(order_id) else {
                assert!(
                    !matches!(s.outcome, Outcome::Acked { .. }),
                    "{}: acknowledged order {order_id} is missing",
                    table.name()
                );
                continue;
            };
            // Each delivery holds a record's rows all together, so every row of the order has
            // the same number of copies: the number of times the record was delivered.
            let expected = expected_rows(table, &s.order);
            let times = copies.values().next().copied().unwrap();
            assert!(
                expected.iter().all(|row| copies.get(row) == Some(&times)),
                "{}: {order_id} was delivered in part: {copies:?}",
                table.name()
            );
            duplicates += times - 1;
        }
        duplicated_orders.insert(table.name(), duplicates);
    }
    println!(
        "parquet: re-delivered copies of orders per table (at-least-once): {duplicated_orders:?}"
    );
    if !leftovers.is_empty() {
        println!(
            "note: {} non-Parquet files in the table folders (interrupted writes): {leftovers:?}",
            leftovers.len()
        );
    }

    // 6. A graceful stop and start changes nothing.
    let status = twin.interrupt();
    assert!(status.success(), "Ctrl-C exits cleanly: {status:?}");
    assert!(
        !orderflow_twin::twin::endpoints_file(&data).exists(),
        "a graceful stop removes twin.json"
    );
    let twin = TwinProcess::start(&data, &settings, &[]);
    let again = twin.wait_until(Duration::from_secs(30), |_| true).await;
    assert_eq!(
        again.without_health(),
        settled.without_health(),
        "a graceful restart changes nothing"
    );
    let status = twin.interrupt();
    assert!(status.success(), "Ctrl-C exits cleanly: {status:?}");
    println!("total {:.1} s", started.elapsed().as_secs_f64());
}

/// Rows in the Parquet files under `dir` (from their footers).
fn parquet_row_count(dir: &Path) -> u64 {
    files_under(dir, ".parquet")
        .iter()
        .map(|file| {
            let reader = SerializedFileReader::new(std::fs::File::open(file).unwrap()).unwrap();
            reader.metadata().file_metadata().num_rows() as u64
        })
        .sum()
}

/// The rows of a Parquet file as JSON objects.
fn parquet_rows(file: &Path) -> Vec<Value> {
    let reader = SerializedFileReader::new(std::fs::File::open(file).unwrap())
        .unwrap_or_else(|e| panic!("{}: not a Parquet file: {e}", file.display()));
    assert!(reader.metadata().file_metadata().num_rows() > 0);
    reader
        .get_row_iter(None)
        .unwrap()
        .map(|row| {
            let row = row.unwrap();
            let object = row
                .get_column_iter()
                .map(|(name, field)| (name.clone(), field_json(field)))
                .collect();
            Value::Object(object)
        })
        .collect()
}

/// A Parquet value as JSON: timestamps and dates in the Hive text form, decimals as text.
fn field_json(field: &Field) -> Value {
    match field {
        Field::Str(text) => Value::String(text.clone()),
        Field::Int(n) => Value::from(*n),
        Field::Long(n) => Value::from(*n),
        Field::Date(days) => Value::String(
            (DateTime::UNIX_EPOCH + chrono::Duration::days(i64::from(*days)))
                .format("%Y-%m-%d")
                .to_string(),
        ),
        Field::TimestampMicros(micros) => Value::String(
            DateTime::from_timestamp_micros(*micros)
                .unwrap()
                .format("%Y-%m-%d %H:%M:%S%.6f")
                .to_string(),
        ),
        Field::Decimal(decimal) => {
            let bytes = decimal.data();
            let mut unscaled: i128 = if bytes.first().is_some_and(|b| b & 0x80 != 0) {
                -1
            } else {
                0
            };
            for &byte in bytes {
                unscaled = (unscaled << 8) | i128::from(byte);
            }
            Value::String(
                Decimal::from_i128_with_scale(unscaled, decimal.scale() as u32).to_string(),
            )
        }
        other => panic!("an unexpected Parquet value: {other:?}"),
    }
}

/// The order's rows of `table`, canonical.
fn expected_rows(table: Table, order: &Order<'_>) -> Vec<String> {
    let mut out = Vec::new();
    table.write_rows(order, &mut out);
    out.split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| canonical(table, &serde_json::from_slice(line).unwrap()))
        .collect()
}

/// A row (a Hive JSON line or a Parquet row as JSON) in one comparable text: every column of the
/// table's definition in order, timestamps to microseconds, decimals by value.
fn canonical(table: Table, row: &Value) -> String {
    let columns = &table.definition().columns;
    let object = row.as_object().expect("a row is an object");
    assert_eq!(
        object.len(),
        columns.len(),
        "{}: columns of {row}",
        table.name()
    );
    let values: Vec<String> = columns
        .iter()
        .map(|column| {
            let value = &row[&column.name];
            let text = match value {
                Value::String(text) => text.clone(),
                Value::Number(number) => number.to_string(),
                other => panic!("{}: {other}", column.name),
            };
            match column.column_type {
                ColumnType::Timestamp => {
                    NaiveDateTime::parse_from_str(&text, "%Y-%m-%d %H:%M:%S%.f")
                        .unwrap_or_else(|e| panic!("{}: {text}: {e}", column.name))
                        .format("%Y-%m-%d %H:%M:%S%.6f")
                        .to_string()
                }
                ColumnType::Decimal { .. } => Decimal::from_str(&text)
                    .unwrap_or_else(|e| panic!("{}: {text}: {e}", column.name))
                    .normalize()
                    .to_string(),
                _ => text,
            }
        })
        .collect();
    serde_json::to_string(&values).unwrap()
}
