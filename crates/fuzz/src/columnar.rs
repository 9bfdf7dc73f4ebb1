//! The twin's JSON-to-Arrow conversion (`orderflow_twin::delivery::conversion`) on arbitrary rows, and the
//! Parquet files the twin writes from its batches.
//!
//! Input ([`crate::frame::split_control`]): the control byte picks the table (`Table::ALL[c % 4]`),
//! the rest is one record's data (newline-delimited JSON rows).

use bytes::Bytes;
use chrono::{NaiveDate, NaiveDateTime};
use datafusion::arrow::array::{Array, AsArray};
use datafusion::arrow::compute::concat_batches;
use datafusion::arrow::datatypes::{
    Date32Type, Decimal128Type, Int32Type, TimestampMicrosecondType,
};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::arrow_reader::ParquetRecordBatchReaderBuilder;
use orderflow_domain::{ColumnType, Table};
use orderflow_twin::delivery::conversion::parquet_bytes;
use orderflow_twin::delivery::conversion::{RowBatchBuilder, table_schema};
use rust_decimal::Decimal;
use serde_json::Value;
use serde_json::value::RawValue;

use crate::frame;

/// Whether a line holds no row (only spaces, tabs and carriage returns).
fn blank(line: &[u8]) -> bool {
    line.iter().all(|byte| matches!(byte, b' ' | b'\t' | b'\r'))
}

/// One line's object: its members in order, keys decoded, values as their JSON text; `None` if
/// the line is not one JSON object.
///
/// Values are not decoded here: JSON's grammar admits a `\u` escape that makes no Unicode text
/// (a lone surrogate, `"\ud800"`), which serde_json refuses to decode into a string. The twin
/// ignores the value of a key that names no column, as Hive does, so such a value there does
/// not refuse the row; only the values of columns are decoded (in [`check`]).
fn members(line: &[u8]) -> Option<Vec<(String, Box<RawValue>)>> {
    use serde::de::{Deserializer, MapAccess, Visitor};

    struct Members;

    impl<'de> Visitor<'de> for Members {
        type Value = Vec<(String, Box<RawValue>)>;

        fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("a JSON object")
        }

        fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Self::Value, A::Error> {
            let mut members = Vec::new();
            while let Some(entry) = map.next_entry()? {
                members.push(entry);
            }
            Ok(members)
        }
    }

    let mut deserializer = serde_json::Deserializer::from_slice(line);
    let members = (&mut deserializer).deserialize_map(Members).ok()?;
    deserializer.end().ok()?;
    Some(members)
}

/// Whether `key` names the column `name` (Hive lowercases field names).
fn names(key: &str, name: &str) -> bool {
    key == name || key.to_lowercase() == name
}

/// The conversion's contract (`crates/twin/src/delivery/conversion.rs`):
///
/// - a record is all or nothing: refused, it leaves the builder empty;
/// - accepted, it yields one row per non-blank line, in the table's schema
///   ([`table_schema`], from `sql/tables.json`);
/// - never more lenient than the domain's statement of what the tables accept: every value of
///   an accepted row's columns decodes (serde_json) and passes [`ColumnType::accepts`] (save an
///   `int`'s `-0`, which it cannot tell from `-0.0`), at most one key names each column, and the
///   Arrow value is the JSON value (a missing key or `null` is null); the values of other keys
///   are ignored ([`members`]);
/// - the twin's Parquet file of the batch reads back as the same batch.
pub fn check(input: &[u8]) {
    let (control, rows) = frame::split_control(input);
    let table = Table::ALL[usize::from(control) % Table::ALL.len()];
    let mut builder = RowBatchBuilder::new(table);
    let result = builder.push_record(rows);
    let batch = builder.finish();
    assert_eq!(
        batch.schema(),
        table_schema(table),
        "the batch has the table's schema"
    );
    let count = match result {
        Err(_) => {
            assert_eq!(batch.num_rows(), 0, "a refused record appends nothing");
            return;
        }
        Ok(count) => count,
    };
    let lines: Vec<&[u8]> = rows.split(|b| *b == b'\n').filter(|l| !blank(l)).collect();
    assert_eq!(count, lines.len(), "one row per non-blank line");
    assert_eq!(batch.num_rows(), count);
    let columns = &table.definition().columns;
    for (row, line) in lines.iter().enumerate() {
        let Some(object) = members(line) else {
            panic!("line {}: an accepted row is one JSON object", row + 1);
        };
        for (index, column) in columns.iter().enumerate() {
            let mut given = object.iter().filter(|(key, _)| names(key, &column.name));
            let raw = given.next().map(|(_, raw)| raw.get());
            let value = raw.map_or(Value::Null, |raw| {
                serde_json::from_str(raw).unwrap_or_else(|error| {
                    panic!(
                        "line {}: column {} holds JSON that does not decode: {error}",
                        row + 1,
                        column.name
                    )
                })
            });
            let value = &value;
            assert!(
                given.next().is_none(),
                "line {}: two keys name column {}",
                row + 1,
                column.name
            );
            // The one literal the domain's rule cannot judge: serde_json reads the integer `-0`
            // as the float -0.0 (keeping its sign), so `accepts` refuses it for `int`, as it must
            // refuse `-0.0`, which reads the same. Hive reads `-0` as the integer 0, and the twin
            // deliberately does too (`lenient_where_hive_is_and_exact_values`); the Arrow value
            // is checked below all the same.
            let negative_zero_int =
                column.column_type == ColumnType::Int && raw.map(str::trim) == Some("-0");
            assert!(
                negative_zero_int || column.column_type.accepts(value),
                "line {}: column {} ({}) holds a value the domain's rules refuse",
                row + 1,
                column.name,
                column.column_type
            );
            check_value(batch.column(index).as_ref(), row, column.column_type, value);
        }
    }
    if count > 0 {
        let file = parquet_bytes(&batch).expect("an accepted batch writes to Parquet");
        let reader = ParquetRecordBatchReaderBuilder::try_new(Bytes::from(file))
            .expect("the twin's Parquet file opens")
            .build()
            .expect("the twin's Parquet file reads");
        let read: Vec<RecordBatch> = reader
            .collect::<Result<_, _>>()
            .expect("every row group reads");
        let read = concat_batches(&batch.schema(), &read).expect("same schema");
        assert!(read == batch, "the Parquet file holds the batch");
    }
}

/// The Arrow value at `row` of `array` is the JSON `value`.
fn check_value(array: &dyn Array, row: usize, column_type: ColumnType, value: &Value) {
    if value.is_null() {
        assert!(array.is_null(row), "row {row}: null stays null");
        return;
    }
    assert!(array.is_valid(row), "row {row}: a value is not null");
    let same = match column_type {
        ColumnType::String => Some(array.as_string::<i32>().value(row)) == value.as_str(),
        ColumnType::Int => {
            Some(f64::from(array.as_primitive::<Int32Type>().value(row))) == value.as_f64()
        }
        ColumnType::Date => {
            let date = NaiveDate::parse_from_str(value.as_str().unwrap_or_default(), "%Y-%m-%d")
                .expect("accepted");
            let epoch = NaiveDate::from_ymd_opt(1970, 1, 1).expect("a date");
            i64::from(array.as_primitive::<Date32Type>().value(row)) == (date - epoch).num_days()
        }
        ColumnType::Timestamp => {
            let time = NaiveDateTime::parse_from_str(
                value.as_str().unwrap_or_default(),
                "%Y-%m-%d %H:%M:%S%.f",
            )
            .expect("accepted");
            array.as_primitive::<TimestampMicrosecondType>().value(row)
                == time.and_utc().timestamp_micros()
        }
        ColumnType::Decimal { scale, .. } => {
            let text = value.to_string();
            let mut decimal = Decimal::from_str_exact(&text)
                .or_else(|_| Decimal::from_scientific(&text))
                .expect("an accepted decimal reads");
            decimal.rescale(u32::from(scale));
            array.as_primitive::<Decimal128Type>().value(row) == decimal.mantissa()
        }
    };
    assert!(
        same,
        "row {row}: the Arrow value is the JSON value ({column_type})"
    );
}
