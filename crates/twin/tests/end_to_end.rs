//! End to end against the real `orderflow` binary: 5,000 generated orders (2% invalid) go in
//! through the legacy API route, and every place they end up is checked against what the domain
//! says they must become: the DynamoDB items, the Parquet files (read with the parquet crate's
//! own row reader, not with Arrow or DataFusion), the Firehose error prefix, and the results of
//! every query in `sql/queries/`, recomputed here from the orders themselves.
//!
//! Steps 1 to 3 (start, send, rebuild the orders) are the ground every later check stands on: a
//! failure there ends the test. The checks after them are independent stages ([`Stages`]): each
//! one's failure is recorded, the others still run, and the test fails at the end naming every
//! stage that failed, so a wrong DynamoDB item does not hide a wrong Parquet file.

mod support;

use std::cmp::Reverse;
use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::fs::File;
use std::future::Future;
use std::panic::AssertUnwindSafe;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_dynamodb::types::AttributeValue;
use base64::Engine;
use base64::engine::general_purpose::STANDARD as BASE64;
use chrono::{DateTime, NaiveDate, NaiveDateTime, TimeDelta, Utc};
use datafusion::parquet::basic::{
    Compression, DecimalType, IntType, LogicalType, TimeUnit, TimestampType, Type as PhysicalType,
};
use datafusion::parquet::file::reader::{FileReader, SerializedFileReader};
use datafusion::parquet::record::Field;
use futures::FutureExt;
use md5::{Digest, Md5};
use orderflow_domain::{
    ColumnType, Order, PARTITION_KEY, Partition, Provenance, SORT_KEY, Table, TableDef, order_item,
    parse_order, table_file,
};
use orderflow_producer::{RetryPolicy, Route, RunConfig, Stats, Stop, Workload, WorkloadConfig};
use rust_decimal::Decimal;
use serde_json::value::RawValue;
use tokio_util::sync::CancellationToken;

use support::{TwinProcess, files_under, query_json, repo_root, scan_all, settings_file, temp_dir};

/// Orders sent.
const ORDERS: u64 = 5_000;

/// Firehose buffering interval. Each delivery writes one file per table and day (30 days here),
/// and the orders trickle in over half a minute in a debug build: at 1 s that made some 3,500
/// tiny files and every later step (status, queries, the Parquet check, deleting them) paid per
/// file, 80 to 100 s in all; at 5 s it is some 600 to 700 files, several per partition still.
const BUFFERING_SECONDS: u64 = 5;

/// The workload: fixed seed and clock, so every run sends the same orders.
fn workload() -> WorkloadConfig {
    support::workload(20_240_608, 500, 0.02)
}

/// A key of the DynamoDB table and of every analytics row: (customer_id, order_id).
type Key = (String, String);

/// What was sent, rebuilt independently of the producer's run.
struct Sent {
    /// The valid orders, in sending order.
    valid: Vec<Order<'static>>,
    /// (customer_id, order_id) → index in `valid`.
    by_key: HashMap<Key, usize>,
    /// The invalid orders' bodies, exactly as sent.
    invalid: Vec<Vec<u8>>,
}

impl Sent {
    fn rebuild(config: &WorkloadConfig) -> Sent {
        let mut workload = Workload::new(config);
        let mut sent = Sent {
            valid: Vec::new(),
            by_key: HashMap::new(),
            invalid: Vec::new(),
        };
        for index in 0..ORDERS {
            let outgoing = workload.next_order();
            assert_eq!(outgoing.index, index);
            match outgoing.invalid_reason {
                None => {
                    let order = parse_order(&outgoing.body)
                        .unwrap_or_else(|e| panic!("order {index} is meant to be valid: {e}"))
                        .into_owned();
                    let key = (order.customer_id.to_string(), order.order_id.to_string());
                    // The generator's order ids are a bijection of its counter, so no key repeats;
                    // if one did, the expected DynamoDB item would be the last one written, which
                    // depends on arrival order: this test would then have to be rethought.
                    let previous = sent.by_key.insert(key.clone(), sent.valid.len());
                    assert!(previous.is_none(), "the workload repeats the key {key:?}");
                    sent.valid.push(order);
                }
                Some(reason) => {
                    assert!(
                        parse_order(&outgoing.body).is_err(),
                        "order {index} is meant to be invalid ({reason})"
                    );
                    sent.invalid.push(outgoing.body);
                }
            }
        }
        sent
    }

    fn order(&self, customer_id: &str, order_id: &str) -> Option<&Order<'static>> {
        self.by_key
            .get(&(customer_id.to_owned(), order_id.to_owned()))
            .map(|&index| &self.valid[index])
    }

    fn lines(&self) -> u64 {
        self.valid
            .iter()
            .map(|order| order.product_details.len() as u64)
            .sum()
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn orders_reach_dynamodb_parquet_errors_and_queries_exactly() {
    let started = Instant::now();
    let phase = |what: &str| eprintln!("[{:>5.1} s] {what}", started.elapsed().as_secs_f64());
    let test_start = Utc::now();

    // 1. The twin, with a short Firehose buffering interval.
    let data_dir = temp_dir("end-to-end");
    let settings_dir = temp_dir("end-to-end-settings");
    let settings = settings_file(&settings_dir, |settings| {
        settings["delivery"]["buffering_interval_seconds"] = BUFFERING_SECONDS.into();
    });
    // Without Kinesis' throughput limits: the exact counts below need every order sent once, and
    // a re-send after a throttled write is not told apart from one after a timeout in the
    // producer's summary. `throttling.rs` tests the limits.
    let twin = TwinProcess::start(&data_dir, &settings, &["--no-limits"]);
    phase("twin started");

    // 2. 5,000 orders through the legacy route: only the envelope is checked there, so the
    // invalid orders flow into the stream too.
    let config = RunConfig {
        endpoint: twin.endpoints.api.clone(),
        api_key: twin.api_key.clone(),
        stop: Stop::Count(ORDERS),
        rate: None,
        concurrency: 8,
        // The legacy route sends one order per request whatever the batch size.
        batch_size: 1,
        route: Route::Legacy {
            stream_name: twin.endpoints.stream.clone(),
        },
        workload: workload(),
        request_timeout: Duration::from_secs(30),
        retry: RetryPolicy::default(),
    };
    let summary = orderflow_producer::run(
        &config,
        Arc::new(Stats::default()),
        CancellationToken::new(),
    )
    .await;
    assert_eq!(summary.accepted, ORDERS, "{}", summary.to_text());
    assert_eq!(
        (summary.rejected, summary.gave_up, summary.unexpected),
        (0, 0, 0),
        "{}",
        summary.to_text()
    );
    assert!(summary.fatal.is_none(), "{}", summary.to_text());
    // The exact counts below assume every order went into the stream once: a re-sent request
    // (after a timeout or a 5xx) may have been written twice, which at-least-once allows.
    assert_eq!(summary.retried, 0, "{}", summary.to_text());
    phase(&format!("{ORDERS} orders accepted"));

    // 3. The same orders, rebuilt independently.
    let sent = Sent::rebuild(&workload());
    let valid = sent.valid.len() as u64;
    let invalid = sent.invalid.len() as u64;
    assert_eq!(valid + invalid, ORDERS);
    assert!(
        (40..=180).contains(&invalid),
        "about 2% of {ORDERS} orders are invalid, not {invalid}"
    );
    let lines = sent.lines();
    phase(&format!(
        "rebuilt: {valid} valid orders ({lines} lines), {invalid} invalid"
    ));

    // 4. Caught up: every reader at the tip, every row delivered.
    let status = twin
        .wait_until(Duration::from_secs(120), |status| {
            status.dynamodb_items.is_some_and(|items| items >= valid)
                && status.rows("orders") >= valid
                && status.rows("product_details") >= lines
                && status.rows("purchase_details") >= valid
                && status.rows("shipping_addresses") >= valid
                && Table::ALL.iter().all(|table| {
                    status
                        .error_records
                        .get(&format!("{table}/processing-failed"))
                        .is_some_and(|&records| records >= invalid)
                })
        })
        .await;
    phase("caught up");
    let mut stages = Stages::default();
    stages.check("status counts", || check_status(&status, &sent));

    // The queries run meanwhile (separate processes over the final files); step 8 checks them.
    let queries = {
        let data_dir = data_dir.to_path_buf();
        std::thread::spawn(move || run_queries(&data_dir))
    };

    // 5. DynamoDB: exactly the valid orders, each the domain's item.
    stages
        .check_async(
            "DynamoDB",
            check_dynamodb(&twin, &sent, &status, test_start),
        )
        .await;
    phase("DynamoDB checked");

    // 6. Parquet, read with the parquet crate's row API.
    let bucket = data_dir.join("bucket");
    stages.check("Parquet", || {
        let files = check_parquet(&bucket, &sent);
        phase(&format!("Parquet checked: {files} files"));
    });

    // 7. The error prefix holds exactly the invalid orders' bytes, for every table.
    stages.check("error prefix", || check_error_prefix(&bucket, &sent));
    phase("error prefix checked");

    // 8. Every query in sql/queries, against figures computed from the orders.
    stages.check("queries", || {
        let results = queries
            .join()
            .unwrap_or_else(|e| std::panic::resume_unwind(e));
        phase("queries done");
        check_queries(results, &sent);
    });
    phase("queries checked");

    // 9. Ctrl-C: a clean stop that writes nothing more (everything was delivered already).
    stages.check("clean stop", || {
        let before = files_under(&bucket, "");
        phase("stopping");
        let exit = twin.interrupt();
        assert!(exit.success(), "the twin stopped with {exit:?}");
        assert_eq!(
            files_under(&bucket, ""),
            before,
            "objects written at shutdown although every buffer was delivered"
        );
        assert!(
            !data_dir.join("twin.json").exists(),
            "twin.json is left behind after a clean stop"
        );
    });
    phase("stopped");
    stages.finish();
}

/// The independent checks of one run: each failure (a panic) is recorded with its stage's name,
/// the next stage still runs, and [`Stages::finish`] fails the test naming all of them.
#[derive(Default)]
struct Stages {
    failed: Vec<String>,
}

impl Stages {
    fn record(&mut self, stage: &str, panic: Box<dyn std::any::Any + Send>) {
        let message = panic
            .downcast_ref::<String>()
            .cloned()
            .or_else(|| panic.downcast_ref::<&str>().map(|s| (*s).to_string()))
            .unwrap_or_else(|| "(no message)".to_string());
        eprintln!("stage failed: {stage}");
        self.failed.push(format!("{stage}: {message}"));
    }

    fn check(&mut self, stage: &str, check: impl FnOnce()) {
        if let Err(panic) = std::panic::catch_unwind(AssertUnwindSafe(check)) {
            self.record(stage, panic);
        }
    }

    async fn check_async(&mut self, stage: &str, check: impl Future<Output = ()>) {
        if let Err(panic) = AssertUnwindSafe(check).catch_unwind().await {
            self.record(stage, panic);
        }
    }

    fn finish(self) {
        assert!(
            self.failed.is_empty(),
            "{} stage(s) failed:\n{}",
            self.failed.len(),
            self.failed.join("\n\n")
        );
    }
}

/// Step 4: what the status reports once caught up matches the orders sent.
fn check_status(status: &orderflow_twin::status::Status, sent: &Sent) {
    let valid = sent.valid.len() as u64;
    let invalid = sent.invalid.len() as u64;
    let lines = sent.lines();
    let report = status.to_text();
    assert_eq!(status.dynamodb_items, Some(valid), "{report}");
    for (table, rows) in [
        ("orders", valid),
        ("product_details", lines),
        ("purchase_details", valid),
        ("shipping_addresses", valid),
    ] {
        assert_eq!(status.rows(table), rows, "{table}\n{report}");
    }
    let expected_errors: BTreeMap<String, u64> = Table::ALL
        .iter()
        .map(|table| (format!("{table}/processing-failed"), invalid))
        .collect();
    assert_eq!(status.error_records, expected_errors, "{report}");
    assert_eq!(
        (status.failed_batches, status.failed_records),
        (0, 0),
        "{report}"
    );
    assert_eq!(
        status.shards.iter().map(|s| s.records).sum::<u64>(),
        ORDERS,
        "{report}"
    );
    // Rows per table and partition as the status reports them.
    for table in Table::ALL {
        let mut per_day: BTreeMap<String, u64> = BTreeMap::new();
        for order in &sent.valid {
            let rows = table.write_rows(order, &mut Vec::new()) as u64;
            *per_day
                .entry(Partition::of(&order.order_date).hive_path())
                .or_default() += rows;
        }
        let table_status = status
            .tables
            .iter()
            .find(|t| t.table == table.name())
            .unwrap();
        let reported: BTreeMap<String, u64> = table_status
            .partitions
            .iter()
            .map(|(partition, &(_, rows))| (partition.clone(), rows))
            .collect();
        assert_eq!(reported, per_day, "{table}\n{report}");
    }
}

// ---------------------------------------------------------------------------------------------
// DynamoDB

async fn check_dynamodb(
    twin: &TwinProcess,
    sent: &Sent,
    status: &orderflow_twin::status::Status,
    test_start: DateTime<Utc>,
) {
    let items = scan_all(&twin.dynamodb(), &twin.endpoints.table).await;
    assert_eq!(items.len(), sent.valid.len(), "DynamoDB items");
    let now = Utc::now();
    let mut seen = BTreeSet::new();
    let mut sequence_numbers = BTreeSet::new();
    for mut item in items {
        let customer_id = string_attribute(&item, PARTITION_KEY);
        let order_id = string_attribute(&item, SORT_KEY);
        let order = sent
            .order(&customer_id, &order_id)
            .unwrap_or_else(|| panic!("item ({customer_id}, {order_id}) was never sent valid"));
        assert!(
            seen.insert((customer_id.clone(), order_id.clone())),
            "duplicate item ({customer_id}, {order_id})"
        );

        let ingested_at = string_attribute(&item, "ingested_at");
        let arrival = DateTime::parse_from_rfc3339(&ingested_at)
            .unwrap_or_else(|e| panic!("ingested_at {ingested_at:?}: {e}"))
            .to_utc();
        assert!(
            arrival >= test_start - TimeDelta::seconds(1) && arrival <= now,
            "ingested_at {ingested_at} is not the arrival time during this test"
        );
        let sequence_number = string_attribute(&item, "source_sequence_number");
        assert!(
            sequence_number.len() == 56 && sequence_number.bytes().all(|b| b.is_ascii_digit()),
            "source_sequence_number {sequence_number:?} is not 56 digits"
        );
        assert!(
            sequence_numbers.insert(sequence_number.clone()),
            "two items carry sequence number {sequence_number}"
        );
        check_shard_routing(&customer_id, &sequence_number, status);

        let mut expected = order_item(
            order,
            &Provenance {
                ingested_at: arrival,
                source_sequence_number: &sequence_number,
            },
        );
        // The provenance attributes are written exactly as the domain spells them.
        assert_eq!(
            expected.remove("ingested_at"),
            item.remove("ingested_at"),
            "ingested_at of ({customer_id}, {order_id})"
        );
        assert_eq!(
            expected.remove("source_sequence_number"),
            item.remove("source_sequence_number")
        );
        if item != expected {
            let names: BTreeSet<&String> = item.keys().chain(expected.keys()).collect();
            let differences: Vec<String> = names
                .into_iter()
                .filter(|name| item.get(*name) != expected.get(*name))
                .map(|name| {
                    format!(
                        "  {name}: stored {:?}\n  {name}: expected {:?}",
                        item.get(name),
                        expected.get(name)
                    )
                })
                .collect();
            panic!(
                "item ({customer_id}, {order_id}) differs from order_item:\n{}",
                differences.join("\n")
            );
        }
    }
}

/// A string attribute of an item.
fn string_attribute(item: &HashMap<String, AttributeValue>, name: &str) -> String {
    match item.get(name) {
        Some(AttributeValue::S(text)) => text.clone(),
        other => panic!("item attribute {name} is {other:?}, not a string"),
    }
}

/// The record went to the shard whose hash-key range holds the MD5 of its partition key (the
/// customer id), and its sequence number is within that shard's records.
fn check_shard_routing(
    customer_id: &str,
    sequence_number: &str,
    status: &orderflow_twin::status::Status,
) {
    // Kinesis-style sequence numbers of the twin: `49`, the shard (14 digits), the position.
    let shard: usize = sequence_number[2..16].parse().unwrap();
    let position: u64 = sequence_number[16..].parse().unwrap();
    let shard_status = &status.shards[shard];
    assert_eq!(shard_status.shard_id, format!("shardId-{shard:012}"));
    assert!(
        (1..=shard_status.records).contains(&position),
        "sequence number {sequence_number} is beyond the shard's {} records",
        shard_status.records
    );
    let hash = u128::from_be_bytes(Md5::digest(customer_id.as_bytes()).into());
    let [start, end] = &shard_status.hash_key_range;
    let (start, end): (u128, u128) = (start.parse().unwrap(), end.parse().unwrap());
    assert!(
        (start..=end).contains(&hash),
        "{customer_id} (hash key {hash}) went to {} ({start}..={end})",
        shard_status.shard_id
    );
}

// ---------------------------------------------------------------------------------------------
// Parquet

/// One analytics row, every value as comparable text (`None` for null): strings as they are,
/// ints in decimal, dates `yyyy-mm-dd`, timestamps `yyyy-mm-dd hh:mm:ss[.fff]`, decimals with
/// exactly their scale's digits.
type TextRow = Vec<Option<String>>;

/// Checks every Parquet file; returns how many there are.
fn check_parquet(bucket: &Path, sent: &Sent) -> usize {
    // The bucket holds the tables of the table file and the error prefix, nothing else.
    let top: BTreeSet<String> = std::fs::read_dir(bucket)
        .unwrap()
        .map(|entry| entry.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    let mut expected_top: BTreeSet<String> =
        table_file().tables.iter().map(|t| t.name.clone()).collect();
    expected_top.insert("errors".to_owned());
    assert_eq!(top, expected_top, "the bucket's top-level folders");
    let mut file_count = 0;
    let mut actual: Vec<(&str, TextRow)> = Vec::new();
    let mut amount_cents: i128 = 0;
    for table in Table::ALL {
        let root = bucket.join(table.name());
        let files = files_under(&root, "");
        assert!(!files.is_empty(), "no files under {}", root.display());
        let columns = &table_definition(table).columns;
        let position = |name: &str| columns.iter().position(|c| c.name == name).unwrap();
        let (customer_column, order_column) = (position("customer_id"), position("order_id"));
        file_count += files.len();
        for file in files {
            let relative = file.strip_prefix(&root).unwrap();
            let parts: Vec<String> = relative
                .iter()
                .map(|part| part.to_string_lossy().into_owned())
                .collect();
            assert!(
                parts.len() == 4 && parts[3].ends_with(".parquet"),
                "unexpected object {}",
                file.display()
            );
            let folder = parts[..3].join("/");
            let reader = SerializedFileReader::new(File::open(&file).unwrap())
                .unwrap_or_else(|e| panic!("{}: {e}", file.display()));
            check_file_schema(&file, table, &reader);
            let metadata = reader.metadata();
            assert!(metadata.num_row_groups() > 0, "{}", file.display());
            for group in metadata.row_groups() {
                for column in group.columns() {
                    assert_eq!(
                        column.compression(),
                        Compression::SNAPPY,
                        "{}: column {}",
                        file.display(),
                        column.column_path()
                    );
                }
            }
            let mut rows_in_file = 0;
            for row in reader.get_row_iter(None).unwrap() {
                let row = row.unwrap_or_else(|e| panic!("{}: {e}", file.display()));
                let fields: Vec<(&String, &Field)> = row.get_column_iter().collect();
                assert_eq!(fields.len(), columns.len(), "{}", file.display());
                let mut values = TextRow::new();
                for (column, (name, field)) in columns.iter().zip(fields) {
                    assert_eq!(name, &column.name, "{}", file.display());
                    if let Field::Decimal(decimal) = field
                        && table == Table::PurchaseDetails
                        && column.name == "amount"
                    {
                        assert_eq!(decimal.scale(), 2);
                        amount_cents += unscaled(decimal.data());
                    }
                    values.push(field_text(column.column_type, field, &file, &column.name));
                }
                // The partition folder is the UTC day of the row's order.
                let (Some(customer_id), Some(order_id)) =
                    (&values[customer_column], &values[order_column])
                else {
                    panic!("{}: a row without its ids: {values:?}", file.display());
                };
                let order = sent.order(customer_id, order_id).unwrap_or_else(|| {
                    panic!(
                        "{}: row of ({customer_id}, {order_id}), never sent valid",
                        file.display()
                    )
                });
                assert_eq!(
                    folder,
                    Partition::of(&order.order_date).hive_path(),
                    "{}: row of ({customer_id}, {order_id}) dated {}",
                    file.display(),
                    order.order_date
                );
                actual.push((table.name(), values));
                rows_in_file += 1;
            }
            assert_eq!(
                rows_in_file,
                metadata.file_metadata().num_rows(),
                "{}",
                file.display()
            );
        }
    }

    let mut expected: Vec<(&str, TextRow)> = Vec::new();
    for order in &sent.valid {
        for table in Table::ALL {
            let mut out = Vec::new();
            let count = table.write_rows(order, &mut out);
            let rows = domain_rows(table, &out);
            assert_eq!(rows.len(), count);
            expected.extend(rows.into_iter().map(|row| (table.name(), row)));
        }
    }
    assert_same_multiset("Parquet rows", actual, expected);

    let sent_cents: i128 = sent
        .valid
        .iter()
        .map(|order| i128::from(order.purchase_details.amount.cents()))
        .sum();
    assert_eq!(
        amount_cents, sent_cents,
        "the purchase_details amounts do not add up to the orders' amounts"
    );
    file_count
}

/// The file's columns, in order, with the physical and logical types the table file implies.
fn check_file_schema(file: &Path, table: Table, reader: &SerializedFileReader<File>) {
    let schema = reader.metadata().file_metadata().schema_descr();
    let columns = &table_definition(table).columns;
    let names: Vec<&str> = schema.columns().iter().map(|c| c.name()).collect();
    let expected: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
    assert_eq!(names, expected, "{}: columns", file.display());
    for (column, descriptor) in columns.iter().zip(schema.columns()) {
        let physical = descriptor.physical_type();
        let logical = descriptor.logical_type_ref();
        let fits = match column.column_type {
            ColumnType::String => {
                physical == PhysicalType::BYTE_ARRAY && logical == Some(&LogicalType::String)
            }
            ColumnType::Int => {
                physical == PhysicalType::INT32
                    && matches!(
                        logical,
                        None | Some(LogicalType::Integer(IntType {
                            bit_width: 32,
                            is_signed: true
                        }))
                    )
            }
            ColumnType::Date => {
                physical == PhysicalType::INT32 && logical == Some(&LogicalType::Date)
            }
            ColumnType::Timestamp => {
                physical == PhysicalType::INT64
                    && matches!(
                        logical,
                        Some(LogicalType::Timestamp(TimestampType {
                            unit: TimeUnit::MICROS,
                            ..
                        }))
                    )
            }
            ColumnType::Decimal { precision, scale } => {
                matches!(
                    logical,
                    Some(LogicalType::Decimal(DecimalType { scale: s, precision: p }))
                        if *p == i32::from(precision) && *s == i32::from(scale)
                ) && matches!(
                    physical,
                    PhysicalType::INT32
                        | PhysicalType::INT64
                        | PhysicalType::FIXED_LEN_BYTE_ARRAY
                        | PhysicalType::BYTE_ARRAY
                )
            }
        };
        assert!(
            fits,
            "{}: column {} is {physical:?} {logical:?}; the table file says {}",
            file.display(),
            column.name,
            column.column_type
        );
    }
}

/// The table's definition, straight from `sql/tables.json`.
fn table_definition(table: Table) -> &'static TableDef {
    table_file()
        .tables
        .iter()
        .find(|t| t.name == table.name())
        .unwrap_or_else(|| panic!("{table} is not in sql/tables.json"))
}

/// A big-endian two's complement integer.
fn unscaled(bytes: &[u8]) -> i128 {
    assert!(bytes.len() <= 16);
    let negative = bytes.first().is_some_and(|b| b & 0x80 != 0);
    bytes
        .iter()
        .fold(if negative { -1 } else { 0 }, |value: i128, &byte| {
            (value << 8) | i128::from(byte)
        })
}

fn field_text(column_type: ColumnType, field: &Field, file: &Path, column: &str) -> Option<String> {
    Some(match (column_type, field) {
        (_, Field::Null) => return None,
        (ColumnType::String, Field::Str(text)) => text.clone(),
        (ColumnType::Int, Field::Int(value)) => value.to_string(),
        (ColumnType::Date, Field::Date(days)) => (NaiveDate::from_ymd_opt(1970, 1, 1).unwrap()
            + TimeDelta::days(i64::from(*days)))
        .format("%Y-%m-%d")
        .to_string(),
        (ColumnType::Timestamp, Field::TimestampMicros(micros)) => {
            DateTime::from_timestamp_micros(*micros)
                .unwrap()
                .naive_utc()
                .format("%Y-%m-%d %H:%M:%S%.f")
                .to_string()
        }
        (ColumnType::Decimal { precision, scale }, Field::Decimal(decimal)) => {
            assert_eq!(
                (decimal.precision(), decimal.scale()),
                (i32::from(precision), i32::from(scale)),
                "{}: {column}",
                file.display()
            );
            Decimal::from_i128_with_scale(unscaled(decimal.data()), u32::from(scale)).to_string()
        }
        (column_type, field) => panic!(
            "{}: column {column} ({column_type}) holds {field:?}",
            file.display()
        ),
    })
}

/// The domain's NDJSON rows (Hive SerDe shape) in the same comparable text as [`field_text`].
fn domain_rows(table: Table, ndjson: &[u8]) -> Vec<TextRow> {
    let columns = &table_definition(table).columns;
    ndjson
        .split(|&b| b == b'\n')
        .filter(|line| !line.is_empty())
        .map(|line| {
            let object: HashMap<String, Box<RawValue>> = serde_json::from_slice(line).unwrap();
            let mut names: Vec<&str> = object.keys().map(String::as_str).collect();
            let mut expected: Vec<&str> = columns.iter().map(|c| c.name.as_str()).collect();
            names.sort_unstable();
            expected.sort_unstable();
            assert_eq!(names, expected, "{table} row keys");
            columns
                .iter()
                .map(|column| {
                    let raw = object[&column.name].get();
                    if raw == "null" {
                        return None;
                    }
                    Some(match column.column_type {
                        ColumnType::String | ColumnType::Date | ColumnType::Timestamp => {
                            serde_json::from_str::<String>(raw).unwrap()
                        }
                        ColumnType::Int => raw.parse::<i32>().unwrap().to_string(),
                        ColumnType::Decimal { scale, .. } => {
                            let mut value = Decimal::from_str_exact(raw).unwrap();
                            value.rescale(u32::from(scale));
                            value.to_string()
                        }
                    })
                })
                .collect()
        })
        .collect()
}

/// `actual` and `expected` hold the same items the same number of times.
fn assert_same_multiset<T: Ord + std::fmt::Debug>(what: &str, actual: Vec<T>, expected: Vec<T>) {
    let mut counts: BTreeMap<T, i64> = BTreeMap::new();
    let (actual_len, expected_len) = (actual.len(), expected.len());
    for item in actual {
        *counts.entry(item).or_default() += 1;
    }
    for item in expected {
        *counts.entry(item).or_default() -= 1;
    }
    let differences: Vec<String> = counts
        .iter()
        .filter(|(_, count)| **count != 0)
        .take(10)
        .map(|(item, count)| {
            if *count > 0 {
                format!("  {count} extra: {item:?}")
            } else {
                format!("  {} missing: {item:?}", -count)
            }
        })
        .collect();
    assert!(
        differences.is_empty(),
        "{what}: {actual_len} found, {expected_len} expected; first differences:\n{}",
        differences.join("\n")
    );
}

// ---------------------------------------------------------------------------------------------
// Error prefix

fn check_error_prefix(bucket: &Path, sent: &Sent) {
    let errors = bucket.join("errors");
    for file in files_under(&errors, "") {
        let relative = file.strip_prefix(&errors).unwrap();
        let mut parts = relative.iter().map(|p| p.to_string_lossy().into_owned());
        let (table, kind) = (parts.next().unwrap(), parts.next().unwrap_or_default());
        assert!(
            Table::ALL.iter().any(|t| t.name() == table) && kind == "processing-failed",
            "unexpected error object {} (no format conversion may fail, every error is an \
             invalid order)",
            file.display()
        );
    }
    for table in Table::ALL {
        let root = errors.join(table.name()).join("processing-failed");
        let files = files_under(&root, "");
        assert!(
            !files.is_empty(),
            "no error objects under {}",
            root.display()
        );
        let mut raw = Vec::new();
        for file in files {
            let parts: Vec<String> = file
                .strip_prefix(&root)
                .unwrap()
                .iter()
                .map(|p| p.to_string_lossy().into_owned())
                .collect();
            assert_eq!(parts.len(), 4, "{}", file.display());
            let stream = format!("orderflow-local-{}-1-", table.name().replace('_', "-"));
            assert!(
                parts[3].starts_with(&stream),
                "{}: not named after its delivery stream",
                file.display()
            );
            let text = std::fs::read_to_string(&file).unwrap();
            let mut oldest_arrival = i64::MAX;
            for line in text.lines().filter(|line| !line.is_empty()) {
                let record: serde_json::Map<String, serde_json::Value> = serde_json::from_str(line)
                    .unwrap_or_else(|e| panic!("{}: {e}: {line}", file.display()));
                let keys: BTreeSet<&str> = record.keys().map(String::as_str).collect();
                assert_eq!(
                    keys,
                    BTreeSet::from([
                        "attemptsMade",
                        "arrivalTimestamp",
                        "errorCode",
                        "errorMessage",
                        "attemptEndingTimestamp",
                        "rawData",
                        "lambdaArn",
                    ]),
                    "{}",
                    file.display()
                );
                assert!(record["attemptsMade"].as_u64().is_some_and(|n| n >= 1));
                assert_eq!(record["errorCode"], "Lambda.ProcessingFailed");
                assert!(
                    record["errorMessage"]
                        .as_str()
                        .is_some_and(|m| !m.is_empty())
                );
                let lambda = record["lambdaArn"].as_str().unwrap();
                assert!(
                    lambda.starts_with("arn:aws:lambda:")
                        && lambda.contains(&table.name().replace('_', "-")),
                    "{lambda}"
                );
                let arrival = record["arrivalTimestamp"].as_i64().unwrap();
                let ending = record["attemptEndingTimestamp"].as_i64().unwrap();
                assert!(ending >= arrival, "{line}");
                oldest_arrival = oldest_arrival.min(arrival);
                raw.push(
                    BASE64
                        .decode(record["rawData"].as_str().unwrap())
                        .unwrap_or_else(|e| panic!("{}: rawData: {e}", file.display())),
                );
            }
            // The `!{timestamp:…}` folder is the UTC day of the oldest record of the delivery,
            // so no later than the day of the oldest error in it.
            let day = DateTime::from_timestamp_millis(oldest_arrival)
                .unwrap()
                .format("year=%Y/month=%m/day=%d")
                .to_string();
            assert!(
                parts[..3].join("/") <= day,
                "{}: folder later than its records' arrival ({day})",
                file.display()
            );
        }
        assert_same_multiset(
            &format!("rawData under {}", root.display()),
            raw,
            sent.invalid.clone(),
        );
    }
}

// ---------------------------------------------------------------------------------------------
// Queries

/// A comparable query value.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Cell {
    Text(String),
    /// Counts and sums: compared by value (`1.50` equals `1.5`).
    Num(Decimal),
    Date(NaiveDate),
    Time(NaiveDateTime),
}

/// How to read a query column's display string.
#[derive(Debug, Clone, Copy)]
enum Kind {
    Text,
    Num,
    Date,
    Time,
}

/// One ORDER BY term's value: ascending or descending.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum SortValue {
    Asc(Cell),
    Desc(Reverse<Cell>),
}

/// The rows of one sort key: those returned and every expected one.
type TieGroup = (Vec<Vec<Cell>>, Vec<Vec<Cell>>);

/// A query's expected result, in the query's column order.
struct QueryCheck {
    columns: Vec<(&'static str, Kind)>,
    rows: Vec<Vec<Cell>>,
    /// ORDER BY: (column index, descending).
    order_by: Vec<(usize, bool)>,
    limit: Option<usize>,
}

fn text(value: &str) -> Cell {
    Cell::Text(value.to_owned())
}

fn num(value: impl Into<Decimal>) -> Cell {
    Cell::Num(value.into())
}

fn money(cents: i64) -> Cell {
    Cell::Num(Decimal::new(cents, 2))
}

/// A query's name (its file stem) and its result rows.
type QueryResult = (String, Vec<serde_json::Map<String, serde_json::Value>>);

/// Runs every query in `sql/queries/` (each in its own `orderflow query`), checking
/// first that the test has a check for each of them and nothing more.
fn run_queries(data_dir: &Path) -> Vec<QueryResult> {
    let folder = repo_root().join("sql/queries");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&folder)
        .unwrap()
        .map(|entry| entry.unwrap().path())
        .filter(|path| path.extension().is_some_and(|e| e == "sql"))
        .collect();
    files.sort();
    let names: BTreeSet<String> = files
        .iter()
        .map(|f| f.file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    let checked = BTreeSet::from(QUERIES.map(str::to_owned));
    assert_eq!(
        names, checked,
        "every query in sql/queries needs a check here (and every check a query)"
    );
    // One after the other: each query already uses every core.
    files
        .iter()
        .map(|file| {
            let name = file.file_stem().unwrap().to_string_lossy().into_owned();
            let started = Instant::now();
            let rows = query_json(data_dir, file);
            eprintln!(
                "  query {name}: {} rows in {:.1} s",
                rows.len(),
                started.elapsed().as_secs_f64()
            );
            (name, rows)
        })
        .collect()
}

/// Compares each query's result with the figures computed from the orders.
fn check_queries(results: Vec<QueryResult>, sent: &Sent) {
    for (name, mut rows) in results {
        let check = match name.as_str() {
            "average_order_value" => average_order_value(sent, &mut rows),
            "best_selling_products" => best_selling_products(sent),
            "daily_revenue" => daily_revenue(sent),
            "income_per_payment_method" => income_per_payment_method(sent),
            "orders_with_shipping_address" => orders_with_shipping_address(sent),
            "sales_per_country" => sales_per_country(sent),
            "top_customers" => top_customers(sent),
            other => panic!("no check for sql/queries/{other}.sql"),
        };
        compare_query(&name, rows, check);
    }
}

/// The queries this test checks.
const QUERIES: [&str; 7] = [
    "average_order_value",
    "best_selling_products",
    "daily_revenue",
    "income_per_payment_method",
    "orders_with_shipping_address",
    "sales_per_country",
    "top_customers",
];

/// Compares a query's rows with the expected ones, honouring ORDER BY and LIMIT: the sort keys
/// must be exactly the expected ones row by row; rows whose keys tie may come in any order, and
/// where LIMIT cuts a group of ties, any of the tied rows may be the ones returned.
fn compare_query(
    name: &str,
    actual: Vec<serde_json::Map<String, serde_json::Value>>,
    check: QueryCheck,
) {
    let QueryCheck {
        columns,
        rows: mut expected,
        order_by,
        limit,
    } = check;
    let wanted: BTreeSet<&str> = columns.iter().map(|(column, _)| *column).collect();
    let actual: Vec<Vec<Cell>> = actual
        .into_iter()
        .map(|row| {
            let keys: BTreeSet<&str> = row.keys().map(String::as_str).collect();
            assert_eq!(keys, wanted, "{name}: columns");
            columns
                .iter()
                .map(|(column, kind)| {
                    let value = row[*column]
                        .as_str()
                        .unwrap_or_else(|| panic!("{name}: {column} is {}", row[*column]));
                    parse_cell(*kind, value)
                        .unwrap_or_else(|| panic!("{name}: {column} = {value:?} is not a {kind:?}"))
                })
                .collect()
        })
        .collect();
    let key = |row: &Vec<Cell>| -> Vec<SortValue> {
        order_by
            .iter()
            .map(|&(index, descending)| {
                if descending {
                    SortValue::Desc(Reverse(row[index].clone()))
                } else {
                    SortValue::Asc(row[index].clone())
                }
            })
            .collect()
    };
    expected.sort_by_cached_key(|row| (key(row), row.clone()));
    let shown = limit.map_or(expected.len(), |limit| limit.min(expected.len()));
    assert!(
        shown > 0,
        "{name}: the test expects no rows; it checks nothing"
    );
    let render = |rows: &[Vec<Cell>]| {
        rows.iter()
            .map(|row| format!("  {row:?}"))
            .collect::<Vec<_>>()
            .join("\n")
    };
    assert_eq!(
        actual.len(),
        shown,
        "{name}: rows\nactual:\n{}\nexpected:\n{}",
        render(&actual),
        render(&expected[..shown])
    );
    for (index, (got, want)) in actual.iter().zip(&expected).enumerate() {
        assert_eq!(
            key(got),
            key(want),
            "{name}: row {index} is out of order or wrong\nactual:\n{}\nexpected:\n{}",
            render(&actual),
            render(&expected[..shown])
        );
    }
    // Per sort key: (the rows returned, every expected row).
    let mut groups: BTreeMap<Vec<SortValue>, TieGroup> = BTreeMap::new();
    for row in &actual {
        groups.entry(key(row)).or_default().0.push(row.clone());
    }
    for row in &expected {
        if let Some(group) = groups.get_mut(&key(row)) {
            group.1.push(row.clone());
        }
    }
    for (sort_key, (mut got, mut tied)) in groups {
        got.sort();
        tied.sort();
        if got.len() == tied.len() {
            assert_eq!(got, tied, "{name}: rows with sort key {sort_key:?}");
        } else {
            // LIMIT cut this group of ties: any of them may be shown.
            let mut pool = tied.clone();
            for row in &got {
                let at = pool.iter().position(|candidate| candidate == row);
                let at = at
                    .unwrap_or_else(|| panic!("{name}: {row:?} is none of the tied rows {tied:?}"));
                pool.remove(at);
            }
        }
    }
}

fn parse_cell(kind: Kind, value: &str) -> Option<Cell> {
    Some(match kind {
        Kind::Text => Cell::Text(value.to_owned()),
        Kind::Num => Cell::Num(Decimal::from_str_exact(value).ok()?),
        Kind::Date => Cell::Date(NaiveDate::parse_from_str(value, "%Y-%m-%d").ok()?),
        Kind::Time => Cell::Time(
            NaiveDateTime::parse_from_str(&value.replacen(' ', "T", 1), "%Y-%m-%dT%H:%M:%S%.f")
                .ok()?,
        ),
    })
}

/// Sums per group: (orders, cents).
fn totals<K: Ord>(sent: &Sent, key: impl Fn(&Order<'static>) -> K) -> BTreeMap<K, (u64, i64)> {
    let mut totals: BTreeMap<K, (u64, i64)> = BTreeMap::new();
    for order in &sent.valid {
        let entry = totals.entry(key(order)).or_default();
        entry.0 += 1;
        entry.1 += order.purchase_details.amount.cents();
    }
    totals
}

fn average_order_value(
    sent: &Sent,
    rows: &mut [serde_json::Map<String, serde_json::Value>],
) -> QueryCheck {
    let per_currency = totals(sent, |order| order.purchase_details.currency.to_string());
    // The average is rounded to the cent: within half a cent of total / orders.
    for row in rows.iter_mut() {
        let currency = row["currency"].as_str().unwrap().to_owned();
        let (orders, cents) = per_currency[&currency];
        let exact = Decimal::new(cents, 2) / Decimal::from(orders);
        let average = row
            .remove("average_order_value")
            .and_then(|v| v.as_str().and_then(|v| Decimal::from_str_exact(v).ok()))
            .unwrap_or_else(|| panic!("average_order_value of {currency}"));
        assert!(
            (average - exact).abs() <= Decimal::new(5, 3),
            "average_order_value of {currency}: {average}, exactly {exact}"
        );
    }
    QueryCheck {
        columns: vec![
            ("currency", Kind::Text),
            ("orders", Kind::Num),
            ("total_amount", Kind::Num),
        ],
        rows: per_currency
            .into_iter()
            .map(|(currency, (orders, cents))| {
                vec![Cell::Text(currency), num(orders), money(cents)]
            })
            .collect(),
        order_by: vec![(0, false)],
        limit: None,
    }
}

fn best_selling_products(sent: &Sent) -> QueryCheck {
    // (product_id, name) → (units, distinct orders).
    let mut products: BTreeMap<(String, String), (u64, BTreeSet<&str>)> = BTreeMap::new();
    for order in &sent.valid {
        for line in &order.product_details {
            let entry = products
                .entry((line.product_id.to_string(), line.name.to_string()))
                .or_default();
            entry.0 += u64::from(line.quantity);
            entry.1.insert(&order.order_id);
        }
    }
    QueryCheck {
        columns: vec![
            ("product_id", Kind::Text),
            ("name", Kind::Text),
            ("units_sold", Kind::Num),
            ("orders", Kind::Num),
        ],
        rows: products
            .into_iter()
            .map(|((product, name), (units, orders))| {
                vec![
                    Cell::Text(product),
                    Cell::Text(name),
                    num(units),
                    num(orders.len() as u64),
                ]
            })
            .collect(),
        order_by: vec![(2, true), (0, false)],
        limit: Some(10),
    }
}

fn daily_revenue(sent: &Sent) -> QueryCheck {
    let day = |order: &Order<'static>| order.order_date.date_naive();
    let last_day = sent.valid.iter().map(day).max().unwrap();
    let per_day = totals(sent, |order| {
        (day(order), order.purchase_details.currency.to_string())
    });
    QueryCheck {
        columns: vec![
            ("order_date", Kind::Date),
            ("currency", Kind::Text),
            ("orders", Kind::Num),
            ("revenue", Kind::Num),
        ],
        rows: per_day
            .into_iter()
            .filter(|((date, _), _)| *date > last_day - TimeDelta::days(7))
            .map(|((date, currency), (orders, cents))| {
                vec![
                    Cell::Date(date),
                    Cell::Text(currency),
                    num(orders),
                    money(cents),
                ]
            })
            .collect(),
        order_by: vec![(0, false), (1, false)],
        limit: None,
    }
}

fn income_per_payment_method(sent: &Sent) -> QueryCheck {
    let per_method = totals(sent, |order| {
        (
            order.purchase_details.payment_type.as_str(),
            order.purchase_details.currency.to_string(),
        )
    });
    QueryCheck {
        columns: vec![
            ("payment_type", Kind::Text),
            ("currency", Kind::Text),
            ("orders", Kind::Num),
            ("income", Kind::Num),
        ],
        rows: per_method
            .into_iter()
            .map(|((method, currency), (orders, cents))| {
                vec![
                    text(method),
                    Cell::Text(currency),
                    num(orders),
                    money(cents),
                ]
            })
            .collect(),
        order_by: vec![(1, false), (3, true), (0, false)],
        limit: None,
    }
}

fn orders_with_shipping_address(sent: &Sent) -> QueryCheck {
    QueryCheck {
        columns: vec![
            ("order_id", Kind::Text),
            ("customer_id", Kind::Text),
            ("order_timestamp", Kind::Time),
            ("status", Kind::Text),
            ("country", Kind::Text),
            ("state", Kind::Text),
            ("city", Kind::Text),
            ("street", Kind::Text),
            ("zip", Kind::Text),
        ],
        rows: sent
            .valid
            .iter()
            .map(|order| {
                let address = &order.shipping_address;
                vec![
                    text(&order.order_id),
                    text(&order.customer_id),
                    Cell::Time(order.order_date.naive_utc()),
                    text(order.status.as_str()),
                    text(&address.country),
                    text(&address.state),
                    text(&address.city),
                    text(&address.street),
                    text(&address.zip),
                ]
            })
            .collect(),
        order_by: vec![(2, true), (0, false)],
        limit: Some(20),
    }
}

fn sales_per_country(sent: &Sent) -> QueryCheck {
    let per_country = totals(sent, |order| {
        (
            order.shipping_address.country.to_string(),
            order.purchase_details.currency.to_string(),
        )
    });
    QueryCheck {
        columns: vec![
            ("country", Kind::Text),
            ("currency", Kind::Text),
            ("orders", Kind::Num),
            ("sales", Kind::Num),
        ],
        rows: per_country
            .into_iter()
            .map(|((country, currency), (orders, cents))| {
                vec![
                    Cell::Text(country),
                    Cell::Text(currency),
                    num(orders),
                    money(cents),
                ]
            })
            .collect(),
        order_by: vec![(3, true), (0, false), (1, false)],
        limit: Some(20),
    }
}

fn top_customers(sent: &Sent) -> QueryCheck {
    let per_customer = totals(sent, |order| {
        (
            order.customer_id.to_string(),
            order.purchase_details.currency.to_string(),
        )
    });
    QueryCheck {
        columns: vec![
            ("customer_id", Kind::Text),
            ("currency", Kind::Text),
            ("orders", Kind::Num),
            ("total_spent", Kind::Num),
        ],
        rows: per_customer
            .into_iter()
            .map(|((customer, currency), (orders, cents))| {
                vec![
                    Cell::Text(customer),
                    Cell::Text(currency),
                    num(orders),
                    money(cents),
                ]
            })
            .collect(),
        order_by: vec![(3, true), (0, false), (1, false)],
        limit: Some(10),
    }
}
