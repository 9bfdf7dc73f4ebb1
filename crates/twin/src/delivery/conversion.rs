//! Newline-delimited JSON rows to an Arrow [`RecordBatch`] for one table, as strictly as
//! Firehose's record format conversion with the Hive JSON SerDe
//! (`org.apache.hive.hcatalog.data.JsonSerDe`) reads them, and never more leniently: where Hive
//! would coerce (a float truncated into an `int`, a decimal rounded to its scale), this is an
//! error for the record.
//!
//! The rules, per value, are those of [`ColumnType::accepts`] (the domain's statement of what the
//! tables accept), plus what Arrow needs:
//!
//! - `null` is accepted for every column, and a column whose key is missing is null.
//! - `string`: a JSON string. `int`: a JSON integer literal (no fraction, no exponent) in the
//!   32-bit range; `-0` is 0, as Hive reads it (serde_json reads it as the float -0.0, so
//!   [`ColumnType::accepts`], which cannot tell it from `-0.0`, refuses it). `date`: a
//!   `yyyy-mm-dd` string (exactly 10 characters, a real calendar day).
//!   `timestamp`: a `yyyy-mm-dd hh:mm:ss[.fraction]` string (no zone, UTC by convention) with at
//!   most 9 fraction digits, and no precision finer than microseconds (Arrow and Parquet keep
//!   microseconds; a finer value would be silently truncated). `decimal(p,s)`: a JSON number
//!   whose exact literal text fits without rounding: at most `s` fraction digits (trailing zeros
//!   do not count) and at most `p - s` integer digits.
//! - Decimal literals are read from the exact JSON text (serde_json's `raw_value`), never through
//!   `f64`. (Without serde_json's `arbitrary_precision`, which this workspace does not enable,
//!   [`ColumnType::accepts`] goes through `f64` and may accept a literal of more than 17
//!   significant digits that is only close to a fitting value; the exact reading rejects it. The
//!   domain code never writes such literals.) Exponent notation is read exactly too (`1.25e1`).
//! - Keys are matched to columns case-insensitively (Hive lowercases field names); keys that
//!   match no column are ignored, as Hive's JSON SerDe does by default (Hive's `_colN` positional
//!   aliases are not supported: they are unknown keys here). A column given twice in one object
//!   (e.g. `amount` and `Amount`) is an error, deliberately stricter than Hive's last-one-wins:
//!   it is always a transformer bug.
//! - Each non-empty line must be exactly one JSON object (trailing JSON whitespace allowed);
//!   lines that are empty or hold only spaces, tabs and carriage returns are skipped.
//! - A string whose `\u` escapes make no Unicode text (a lone surrogate, `"\ud800"`: JSON's
//!   grammar admits it) is an error in a key or a column's value; under a key that matches no
//!   column it is ignored with the rest of that value.
//!
//! Errors say which line (1-based, within the record), which column and which rule, never the
//! value: values can be personal data.

use std::fmt;
use std::ops::Range;
use std::sync::Arc;

use anyhow::{Context, Result};
use datafusion::arrow::array::{
    ArrayRef, Date32Builder, Decimal128Builder, Int32Builder, StringBuilder,
    TimestampMicrosecondBuilder,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema, SchemaRef, TimeUnit};
use datafusion::arrow::record_batch::RecordBatch;
use datafusion::parquet::arrow::ArrowWriter;
use datafusion::parquet::basic::Compression;
use datafusion::parquet::file::properties::WriterProperties;
use orderflow_domain::{ColumnType, Table, TableDef};

use super::values::{
    date_days, decimal_unscaled, int, json_string, kind, read_object, timestamp_micros,
};

/// Arrow type of a column type: String→Utf8, Int→Int32, Date→Date32,
/// Timestamp→Timestamp(Microsecond, None), Decimal{p,s}→Decimal128(p,s).
///
/// # Panics
///
/// If a decimal's scale exceeds 127 (no Arrow decimal has one; the table file's types are
/// tested).
pub fn arrow_type(column_type: ColumnType) -> DataType {
    match column_type {
        ColumnType::String => DataType::Utf8,
        ColumnType::Int => DataType::Int32,
        ColumnType::Date => DataType::Date32,
        ColumnType::Timestamp => DataType::Timestamp(TimeUnit::Microsecond, None),
        ColumnType::Decimal { precision, scale } => DataType::Decimal128(
            precision,
            i8::try_from(scale).expect("a decimal scale of at most 127"),
        ),
    }
}

/// The Arrow schema of a table's data columns (no partition columns), all nullable, in
/// table-file order.
pub fn table_schema(table: Table) -> SchemaRef {
    let fields: Vec<Field> = table
        .definition()
        .columns
        .iter()
        .map(|column| Field::new(&column.name, arrow_type(column.column_type), true))
        .collect();
    Arc::new(Schema::new(fields))
}

/// Why one record's rows could not be converted (what, where, why; never the value itself, it
/// can be personal data).
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum ConversionError {
    /// A line is not valid JSON (a syntax error, truncated, or trailing characters).
    #[error("line {line}: not valid JSON (parsing failed at byte column {at})")]
    NotJson {
        /// 1-based line number within the record.
        line: usize,
        /// 1-based byte column within the line where parsing failed.
        at: usize,
    },
    /// A line is JSON but not an object (an array, a string, a number...).
    #[error("line {line}: not a JSON object")]
    NotAnObject {
        /// 1-based line number within the record.
        line: usize,
    },
    /// Two keys of one object name the same column (keys match case-insensitively).
    #[error("line {line}: column `{column}` is given more than once")]
    DuplicateColumn {
        /// 1-based line number within the record.
        line: usize,
        /// The column's name in the table file.
        column: String,
    },
    /// A value is not of its column's type; nothing is coerced.
    #[error("line {line}, column `{column}`: expected {expected}, {mismatch}")]
    TypeMismatch {
        /// 1-based line number within the record.
        line: usize,
        /// The column's name in the table file.
        column: String,
        /// The column's Glue/Hive type, e.g. `decimal(12,2)`.
        expected: String,
        /// What is wrong with the value.
        mismatch: Mismatch,
    },
}

/// What is wrong with a value for its column (never the value itself).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mismatch {
    /// The JSON value is of another kind (a string for an `int`, a number for a `string`...).
    WrongKind(JsonKind),
    /// A number with a fraction or an exponent for an `int` (even `1.0`).
    NotAnInteger,
    /// An integer outside the 32-bit range of `int`.
    OutOfRange,
    /// More fraction digits than the decimal's scale: it would need rounding.
    TooManyFractionDigits,
    /// More integer digits than the decimal's precision minus its scale.
    TooManyIntegerDigits,
    /// A string that is not a `yyyy-mm-dd` calendar date.
    BadDate,
    /// A string that is not a `yyyy-mm-dd hh:mm:ss[.fraction]` timestamp (up to 9 digits).
    BadTimestamp,
    /// A timestamp with precision finer than microseconds.
    SubMicrosecond,
    /// A string whose `\u` escapes are not Unicode characters (a lone surrogate, such as
    /// `"\ud800"`): JSON's grammar admits it, but it decodes to no text.
    NotUnicode,
}

impl fmt::Display for Mismatch {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Mismatch::WrongKind(kind) => write!(f, "got a JSON {kind}"),
            Mismatch::NotAnInteger => f.write_str("got a number with a fraction or an exponent"),
            Mismatch::OutOfRange => f.write_str("got an integer outside the 32-bit range"),
            Mismatch::TooManyFractionDigits => {
                f.write_str("got more fraction digits than the scale (it would need rounding)")
            }
            Mismatch::TooManyIntegerDigits => {
                f.write_str("got more integer digits than precision minus scale")
            }
            Mismatch::BadDate => f.write_str("got a string that is not a yyyy-mm-dd date"),
            Mismatch::BadTimestamp => {
                f.write_str("got a string that is not a yyyy-mm-dd hh:mm:ss[.fraction] timestamp")
            }
            Mismatch::SubMicrosecond => f.write_str("got a timestamp finer than microseconds"),
            Mismatch::NotUnicode => {
                f.write_str("got a string with a \\u escape that is no Unicode character")
            }
        }
    }
}

/// The kind of a non-null JSON value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JsonKind {
    /// `true` or `false`.
    Bool,
    /// A number.
    Number,
    /// A string.
    String,
    /// An array.
    Array,
    /// An object.
    Object,
}

impl fmt::Display for JsonKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            JsonKind::Bool => "boolean",
            JsonKind::Number => "number",
            JsonKind::String => "string",
            JsonKind::Array => "array",
            JsonKind::Object => "object",
        })
    }
}

/// Accumulates rows of one table; each `push_record` is all-or-nothing: if any row of the record
/// fails, nothing of that record is appended and the error is returned.
pub struct RowBatchBuilder {
    table: Table,
    definition: &'static TableDef,
    schema: SchemaRef,
    columns: Vec<ColumnData>,
    /// Per column: whether the current object already gave it (reset per row).
    seen: Vec<bool>,
    rows: usize,
}

impl fmt::Debug for RowBatchBuilder {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RowBatchBuilder")
            .field("table", &self.table)
            .field("rows", &self.rows)
            .finish_non_exhaustive()
    }
}

impl RowBatchBuilder {
    /// An empty builder for `table`'s data columns ([`table_schema`]).
    pub fn new(table: Table) -> Self {
        let definition = table.definition();
        RowBatchBuilder {
            table,
            definition,
            schema: table_schema(table),
            columns: definition
                .columns
                .iter()
                .map(|column| ColumnData::new(column.column_type))
                .collect(),
            seen: vec![false; definition.columns.len()],
            rows: 0,
        }
    }

    /// The table this builder converts rows of.
    pub fn table(&self) -> Table {
        self.table
    }

    /// The schema of the batches [`finish`](Self::finish) builds ([`table_schema`]).
    pub fn schema(&self) -> SchemaRef {
        Arc::clone(&self.schema)
    }

    /// `rows`: one record's transformed data, newline-delimited JSON objects (trailing newline
    /// optional, empty lines ignored). Returns number of rows appended.
    ///
    /// # Errors
    ///
    /// The first line that fails the rules of the [module](self); then nothing of the record is
    /// appended.
    pub fn push_record(&mut self, rows: &[u8]) -> Result<usize, ConversionError> {
        match self.stage(rows) {
            Ok(count) => {
                for column in &mut self.columns {
                    column.commit();
                }
                self.rows += count;
                Ok(count)
            }
            Err(error) => {
                for column in &mut self.columns {
                    column.discard();
                }
                Err(error)
            }
        }
    }

    /// Rows appended since the last [`finish`](Self::finish).
    pub fn len(&self) -> usize {
        self.rows
    }

    /// Whether no row was appended since the last [`finish`](Self::finish).
    pub fn is_empty(&self) -> bool {
        self.rows == 0
    }

    /// Builds the batch and resets the builder.
    pub fn finish(&mut self) -> RecordBatch {
        let arrays: Vec<ArrayRef> = self.columns.iter_mut().map(ColumnData::finish).collect();
        self.rows = 0;
        RecordBatch::try_new(Arc::clone(&self.schema), arrays)
            .expect("the column builders follow the schema")
    }

    /// Parses and checks every line of a record into the columns' pending values.
    fn stage(&mut self, rows: &[u8]) -> Result<usize, ConversionError> {
        let mut entries = Vec::new();
        let mut count = 0;
        for (index, line) in rows.split(|&byte| byte == b'\n').enumerate() {
            let line_number = index + 1;
            if line.iter().all(|byte| matches!(byte, b' ' | b'\t' | b'\r')) {
                continue;
            }
            read_object(line, line_number, &mut entries)?;
            for column in &mut self.columns {
                column.start_row();
            }
            self.seen.fill(false);
            for (key, value) in &entries {
                let Some(position) = self.column_position(key) else {
                    continue;
                };
                let column = &self.definition.columns[position];
                if std::mem::replace(&mut self.seen[position], true) {
                    return Err(ConversionError::DuplicateColumn {
                        line: line_number,
                        column: column.name.clone(),
                    });
                }
                self.columns[position]
                    .set(value.get())
                    .map_err(|mismatch| ConversionError::TypeMismatch {
                        line: line_number,
                        column: column.name.clone(),
                        expected: column.column_type.to_string(),
                        mismatch,
                    })?;
            }
            count += 1;
        }
        Ok(count)
    }

    /// The column a key names: exactly, or after lowercasing (Hive lowercases field names).
    fn column_position(&self, key: &str) -> Option<usize> {
        let columns = &self.definition.columns;
        columns
            .iter()
            .position(|column| column.name == key)
            .or_else(|| {
                if key.chars().any(char::is_uppercase) {
                    let lower = key.to_lowercase();
                    columns.iter().position(|column| column.name == lower)
                } else {
                    None
                }
            })
    }
}

/// One column: its Arrow builder and the values of the record being staged, which reach the
/// builder only once the whole record is valid.
enum ColumnData {
    String {
        builder: StringBuilder,
        /// The staged strings, concatenated.
        text: String,
        /// Per staged row: the value's range in `text`, or null.
        pending: Vec<Option<Range<usize>>>,
    },
    Int {
        builder: Int32Builder,
        pending: Vec<Option<i32>>,
    },
    Date {
        builder: Date32Builder,
        /// Days since 1970-01-01.
        pending: Vec<Option<i32>>,
    },
    Timestamp {
        builder: TimestampMicrosecondBuilder,
        /// Microseconds since 1970-01-01 00:00:00.
        pending: Vec<Option<i64>>,
    },
    Decimal {
        builder: Decimal128Builder,
        precision: u8,
        scale: u8,
        /// The value times 10^scale.
        pending: Vec<Option<i128>>,
    },
}

impl ColumnData {
    fn new(column_type: ColumnType) -> Self {
        match column_type {
            ColumnType::String => ColumnData::String {
                builder: StringBuilder::new(),
                text: String::new(),
                pending: Vec::new(),
            },
            ColumnType::Int => ColumnData::Int {
                builder: Int32Builder::new(),
                pending: Vec::new(),
            },
            ColumnType::Date => ColumnData::Date {
                builder: Date32Builder::new(),
                pending: Vec::new(),
            },
            ColumnType::Timestamp => ColumnData::Timestamp {
                builder: TimestampMicrosecondBuilder::new(),
                pending: Vec::new(),
            },
            ColumnType::Decimal { precision, scale } => ColumnData::Decimal {
                builder: Decimal128Builder::new().with_data_type(arrow_type(column_type)),
                precision,
                scale,
                pending: Vec::new(),
            },
        }
    }

    /// Stages a new row, null until [`set`](Self::set).
    fn start_row(&mut self) {
        match self {
            ColumnData::String { pending, .. } => pending.push(None),
            ColumnData::Int { pending, .. } | ColumnData::Date { pending, .. } => {
                pending.push(None)
            }
            ColumnData::Timestamp { pending, .. } => pending.push(None),
            ColumnData::Decimal { pending, .. } => pending.push(None),
        }
    }

    /// Sets the staged row's value from its raw JSON text.
    fn set(&mut self, raw: &str) -> Result<(), Mismatch> {
        match self {
            ColumnData::String { text, pending, .. } => {
                let value = json_string(raw)?.map(|value| {
                    let start = text.len();
                    text.push_str(&value);
                    start..text.len()
                });
                set_last(pending, value);
            }
            ColumnData::Int { pending, .. } => set_last(pending, int(raw)?),
            ColumnData::Date { pending, .. } => {
                let value = json_string(raw)?.map(|text| date_days(&text)).transpose()?;
                set_last(pending, value);
            }
            ColumnData::Timestamp { pending, .. } => {
                let value = json_string(raw)?
                    .map(|text| timestamp_micros(&text))
                    .transpose()?;
                set_last(pending, value);
            }
            ColumnData::Decimal {
                precision,
                scale,
                pending,
                ..
            } => {
                let value = match kind(raw) {
                    None => None,
                    Some(JsonKind::Number) => Some(decimal_unscaled(raw, *precision, *scale)?),
                    Some(other) => return Err(Mismatch::WrongKind(other)),
                };
                set_last(pending, value);
            }
        }
        Ok(())
    }

    /// Moves the staged rows into the builder.
    fn commit(&mut self) {
        match self {
            ColumnData::String {
                builder,
                text,
                pending,
            } => {
                for value in pending.drain(..) {
                    match value {
                        Some(range) => builder.append_value(&text[range]),
                        None => builder.append_null(),
                    }
                }
                text.clear();
            }
            ColumnData::Int { builder, pending } => {
                builder.extend_from_iter_option(pending.drain(..));
            }
            ColumnData::Date { builder, pending } => {
                builder.extend_from_iter_option(pending.drain(..));
            }
            ColumnData::Timestamp { builder, pending } => {
                builder.extend_from_iter_option(pending.drain(..));
            }
            ColumnData::Decimal {
                builder, pending, ..
            } => builder.extend_from_iter_option(pending.drain(..)),
        }
    }

    /// Drops the staged rows.
    fn discard(&mut self) {
        match self {
            ColumnData::String { text, pending, .. } => {
                text.clear();
                pending.clear();
            }
            ColumnData::Int { pending, .. } | ColumnData::Date { pending, .. } => pending.clear(),
            ColumnData::Timestamp { pending, .. } => pending.clear(),
            ColumnData::Decimal { pending, .. } => pending.clear(),
        }
    }

    /// The column's array; the builder is left empty.
    fn finish(&mut self) -> ArrayRef {
        match self {
            ColumnData::String { builder, .. } => Arc::new(builder.finish()),
            ColumnData::Int { builder, .. } => Arc::new(builder.finish()),
            ColumnData::Date { builder, .. } => Arc::new(builder.finish()),
            ColumnData::Timestamp { builder, .. } => Arc::new(builder.finish()),
            ColumnData::Decimal { builder, .. } => Arc::new(builder.finish()),
        }
    }
}

fn set_last<T>(pending: &mut [Option<T>], value: Option<T>) {
    if let Some(slot) = pending.last_mut() {
        *slot = value;
    }
}

/// A Snappy-compressed Parquet file holding `batch`.
pub fn parquet_bytes(batch: &RecordBatch) -> Result<Vec<u8>> {
    let properties = WriterProperties::builder()
        .set_compression(Compression::SNAPPY)
        .set_created_by(concat!("orderflow-twin ", env!("CARGO_PKG_VERSION")).to_owned())
        .build();
    let mut writer = ArrowWriter::try_new(Vec::new(), batch.schema(), Some(properties))
        .context("starting a Parquet file")?;
    writer.write(batch).context("writing Parquet rows")?;
    writer.into_inner().context("finishing a Parquet file")
}

#[cfg(test)]
mod tests {
    use super::*;
    use chrono::NaiveDate;
    use datafusion::arrow::array::{Array, AsArray};
    use datafusion::arrow::datatypes::{
        Date32Type, Decimal128Type, Int32Type, TimestampMicrosecondType,
    };
    use orderflow_domain::{decimal_fits, parse_order, table_file};

    /// The sample order of the domain's table tests.
    const ORDER: &str = r#"{"customer_id": "c1", "order_id": "o1",
      "order_date": "2024-06-08T23:30:00.5-02:00", "status": "paid",
      "shipping_address": {"street": "4 Elm St", "city": "Lake Anna", "state": "Ohio", "zip": "85921", "country": "Peru"},
      "purchase_details": {"payment_type": "wallet", "amount": 1234567890.1, "currency": "EUR", "instalments": 60},
      "product_details": [
        {"product_id": "p1", "name": "a", "quantity": 2, "item_details": {"color": "Azure", "size": "M"}},
        {"product_id": "p2", "name": "b \"quoted\"", "quantity": 10000, "item_details": {"color": "Red", "size": "XL"}}
      ]}"#;

    fn domain_rows(table: Table) -> (Vec<u8>, usize) {
        let order = parse_order(ORDER.as_bytes()).unwrap();
        let mut out = Vec::new();
        let count = table.write_rows(&order, &mut out);
        (out, count)
    }

    fn domain_batch(table: Table) -> RecordBatch {
        let (rows, count) = domain_rows(table);
        let mut builder = RowBatchBuilder::new(table);
        assert_eq!(builder.push_record(&rows), Ok(count));
        assert_eq!(builder.len(), count);
        let batch = builder.finish();
        assert_eq!(batch.num_rows(), count);
        assert_eq!(batch.schema(), table_schema(table));
        batch
    }

    fn strings(batch: &RecordBatch, name: &str) -> Vec<Option<String>> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_string::<i32>()
            .iter()
            .map(|value| value.map(str::to_owned))
            .collect()
    }

    fn ints(batch: &RecordBatch, name: &str) -> Vec<Option<i32>> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<Int32Type>()
            .iter()
            .collect()
    }

    fn decimals(batch: &RecordBatch, name: &str) -> Vec<Option<i128>> {
        batch
            .column_by_name(name)
            .unwrap()
            .as_primitive::<Decimal128Type>()
            .iter()
            .collect()
    }

    fn some(values: &[&str]) -> Vec<Option<String>> {
        values
            .iter()
            .map(|value| Some((*value).to_owned()))
            .collect()
    }

    #[test]
    fn table_schema_has_the_table_file_columns_in_order() {
        assert_eq!(table_file().tables.len(), Table::ALL.len());
        for table in Table::ALL {
            let schema = table_schema(table);
            let columns = &table.definition().columns;
            let names: Vec<_> = schema.fields().iter().map(|f| f.name().as_str()).collect();
            let expected: Vec<_> = columns.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(names, expected, "{table}");
            for (field, column) in schema.fields().iter().zip(columns) {
                assert!(field.is_nullable());
                assert_eq!(field.data_type(), &arrow_type(column.column_type));
                if let DataType::Decimal128(precision, scale) = field.data_type() {
                    // A valid Arrow decimal, and one whose unscaled values fit i128.
                    assert!(
                        Decimal128Builder::new()
                            .with_precision_and_scale(*precision, *scale)
                            .is_ok()
                    );
                }
            }
        }
        assert_eq!(
            table_schema(Table::PurchaseDetails)
                .field_with_name("amount")
                .unwrap()
                .data_type(),
            &DataType::Decimal128(12, 2)
        );
    }

    #[test]
    fn arrow_types() {
        assert_eq!(arrow_type(ColumnType::String), DataType::Utf8);
        assert_eq!(arrow_type(ColumnType::Int), DataType::Int32);
        assert_eq!(arrow_type(ColumnType::Date), DataType::Date32);
        assert_eq!(
            arrow_type(ColumnType::Timestamp),
            DataType::Timestamp(TimeUnit::Microsecond, None)
        );
        assert_eq!(
            arrow_type(ColumnType::Decimal {
                precision: 12,
                scale: 2
            }),
            DataType::Decimal128(12, 2)
        );
    }

    #[test]
    fn orders_rows_convert_exactly() {
        let batch = domain_batch(Table::Orders);
        assert_eq!(strings(&batch, "customer_id"), some(&["c1"]));
        assert_eq!(strings(&batch, "order_id"), some(&["o1"]));
        assert_eq!(strings(&batch, "status"), some(&["paid"]));
        // 2024-06-08T23:30:00.5-02:00 is 2024-06-09 01:30:00.5 UTC.
        let timestamps = batch
            .column_by_name("order_timestamp")
            .unwrap()
            .as_primitive::<TimestampMicrosecondType>();
        assert_eq!(timestamps.value(0), 1_717_896_600_500_000);
        let dates = batch
            .column_by_name("order_date")
            .unwrap()
            .as_primitive::<Date32Type>();
        assert_eq!(dates.value(0), 19_883);
        assert_eq!(dates.value_as_date(0), NaiveDate::from_ymd_opt(2024, 6, 9));
    }

    #[test]
    fn product_details_rows_convert_exactly() {
        let batch = domain_batch(Table::ProductDetails);
        assert_eq!(batch.num_rows(), 2);
        assert_eq!(strings(&batch, "order_id"), some(&["o1", "o1"]));
        assert_eq!(ints(&batch, "line_number"), [Some(1), Some(2)]);
        assert_eq!(strings(&batch, "product_id"), some(&["p1", "p2"]));
        assert_eq!(strings(&batch, "name"), some(&["a", "b \"quoted\""]));
        assert_eq!(ints(&batch, "quantity"), [Some(2), Some(10_000)]);
        assert_eq!(strings(&batch, "color"), some(&["Azure", "Red"]));
        assert_eq!(strings(&batch, "size"), some(&["M", "XL"]));
    }

    #[test]
    fn purchase_details_rows_convert_exactly() {
        let batch = domain_batch(Table::PurchaseDetails);
        assert_eq!(strings(&batch, "payment_type"), some(&["wallet"]));
        let amount = batch.column_by_name("amount").unwrap();
        assert_eq!(amount.data_type(), &DataType::Decimal128(12, 2));
        assert_eq!(decimals(&batch, "amount"), [Some(123_456_789_010)]);
        assert_eq!(
            amount.as_primitive::<Decimal128Type>().value_as_string(0),
            "1234567890.10"
        );
        assert_eq!(strings(&batch, "currency"), some(&["EUR"]));
        assert_eq!(ints(&batch, "instalments"), [Some(60)]);
    }

    #[test]
    fn shipping_addresses_rows_convert_exactly() {
        let batch = domain_batch(Table::ShippingAddresses);
        assert_eq!(strings(&batch, "customer_id"), some(&["c1"]));
        assert_eq!(strings(&batch, "country"), some(&["Peru"]));
        assert_eq!(strings(&batch, "state"), some(&["Ohio"]));
        assert_eq!(strings(&batch, "city"), some(&["Lake Anna"]));
        assert_eq!(strings(&batch, "street"), some(&["4 Elm St"]));
        assert_eq!(strings(&batch, "zip"), some(&["85921"]));
    }

    #[test]
    fn records_accumulate_until_finish_which_resets() {
        let mut builder = RowBatchBuilder::new(Table::ProductDetails);
        assert!(builder.is_empty());
        assert_eq!(builder.table(), Table::ProductDetails);
        let (rows, _) = domain_rows(Table::ProductDetails);
        assert_eq!(builder.push_record(&rows), Ok(2));
        assert_eq!(builder.push_record(&rows), Ok(2));
        assert_eq!(builder.push_record(b""), Ok(0));
        assert_eq!(builder.len(), 4);
        assert!(!builder.is_empty());
        let batch = builder.finish();
        assert_eq!(batch.num_rows(), 4);
        assert_eq!(
            ints(&batch, "line_number"),
            [Some(1), Some(2), Some(1), Some(2)]
        );
        assert!(builder.is_empty());
        let empty = builder.finish();
        assert_eq!(empty.num_rows(), 0);
        assert_eq!(empty.schema(), builder.schema());
        assert_eq!(builder.push_record(&rows), Ok(2));
        assert_eq!(builder.finish().num_rows(), 2);
    }

    const GOOD_PURCHASE: &str = r#"{"customer_id":"c1","order_id":"o1","payment_type":"card","amount":12.50,"currency":"EUR","instalments":1}"#;
    const GOOD_ORDER: &str = r#"{"customer_id":"c1","order_id":"o1","order_timestamp":"2024-06-08 18:05:03.411937","order_date":"2024-06-08","status":"paid"}"#;

    /// `base` with `"column":<old>` replaced by `"column":<value>`.
    fn with_value(base: &str, column: &str, value: &str) -> String {
        let mut row: serde_json::Map<String, serde_json::Value> =
            serde_json::from_str(base).unwrap();
        row.remove(column).unwrap();
        let mut line = serde_json::to_string(&row).unwrap();
        line.pop();
        format!("{line},\"{column}\":{value}}}")
    }

    /// Pushes `good` then `bad` as one record after a good record, checks the error is the
    /// expected one and nothing of the record was appended, then that a good record still is.
    fn assert_rejected(table: Table, good: &str, bad: &str, expected: &ConversionError) {
        let mut builder = RowBatchBuilder::new(table);
        assert_eq!(builder.push_record(good.as_bytes()), Ok(1));
        let record = format!("{good}\n{bad}\n");
        assert_eq!(
            builder.push_record(record.as_bytes()).as_ref(),
            Err(expected),
            "{bad}"
        );
        assert_eq!(builder.len(), 1, "{bad}");
        assert_eq!(builder.push_record(good.as_bytes()), Ok(1));
        let batch = builder.finish();
        assert_eq!(batch.num_rows(), 2);
        for column in batch.columns() {
            assert_eq!(column.len(), 2);
            assert_eq!(column.null_count(), 0, "{bad}");
        }
    }

    fn mismatch(column: &str, expected: &str, mismatch: Mismatch) -> ConversionError {
        ConversionError::TypeMismatch {
            line: 2,
            column: column.to_owned(),
            expected: expected.to_owned(),
            mismatch,
        }
    }

    #[test]
    fn type_mismatches_reject_the_whole_record() {
        use JsonKind as K;
        use Mismatch as M;
        let purchase_cases = [
            (
                "instalments",
                r#""1""#,
                mismatch("instalments", "int", M::WrongKind(K::String)),
            ),
            (
                "currency",
                "5",
                mismatch("currency", "string", M::WrongKind(K::Number)),
            ),
            (
                "currency",
                "true",
                mismatch("currency", "string", M::WrongKind(K::Bool)),
            ),
            (
                "currency",
                r#"["EUR"]"#,
                mismatch("currency", "string", M::WrongKind(K::Array)),
            ),
            (
                "currency",
                r#"{"a":1}"#,
                mismatch("currency", "string", M::WrongKind(K::Object)),
            ),
            (
                "instalments",
                "1.5",
                mismatch("instalments", "int", M::NotAnInteger),
            ),
            (
                "instalments",
                "1.0",
                mismatch("instalments", "int", M::NotAnInteger),
            ),
            (
                "instalments",
                "1e0",
                mismatch("instalments", "int", M::NotAnInteger),
            ),
            (
                "instalments",
                "2147483648",
                mismatch("instalments", "int", M::OutOfRange),
            ),
            (
                "instalments",
                "-2147483649",
                mismatch("instalments", "int", M::OutOfRange),
            ),
            (
                "instalments",
                "123456789012345678901234567890",
                mismatch("instalments", "int", M::OutOfRange),
            ),
            (
                "amount",
                "12.505",
                mismatch("amount", "decimal(12,2)", M::TooManyFractionDigits),
            ),
            (
                "amount",
                "1.005",
                mismatch("amount", "decimal(12,2)", M::TooManyFractionDigits),
            ),
            (
                "amount",
                "1e-3",
                mismatch("amount", "decimal(12,2)", M::TooManyFractionDigits),
            ),
            (
                "amount",
                "99999999999",
                mismatch("amount", "decimal(12,2)", M::TooManyIntegerDigits),
            ),
            (
                "amount",
                "1e10",
                mismatch("amount", "decimal(12,2)", M::TooManyIntegerDigits),
            ),
            (
                "amount",
                "1e99999999999999999999",
                mismatch("amount", "decimal(12,2)", M::TooManyIntegerDigits),
            ),
            (
                "amount",
                "0.1000000000000000055511151231257827",
                mismatch("amount", "decimal(12,2)", M::TooManyFractionDigits),
            ),
            (
                "amount",
                r#""12.50""#,
                mismatch("amount", "decimal(12,2)", M::WrongKind(K::String)),
            ),
        ];
        for (column, value, expected) in &purchase_cases {
            let bad = with_value(GOOD_PURCHASE, column, value);
            assert_rejected(Table::PurchaseDetails, GOOD_PURCHASE, &bad, expected);
        }
        let order_cases = [
            (
                "order_date",
                r#""2024-6-8""#,
                mismatch("order_date", "date", M::BadDate),
            ),
            (
                "order_date",
                r#""2024-02-30""#,
                mismatch("order_date", "date", M::BadDate),
            ),
            (
                "order_date",
                r#""2024-06-08 00:00:00""#,
                mismatch("order_date", "date", M::BadDate),
            ),
            (
                "order_date",
                "20240608",
                mismatch("order_date", "date", M::WrongKind(K::Number)),
            ),
            (
                "order_timestamp",
                r#""2024-06-08T18:05:03Z""#,
                mismatch("order_timestamp", "timestamp", M::BadTimestamp),
            ),
            (
                "order_timestamp",
                r#""2024-06-08""#,
                mismatch("order_timestamp", "timestamp", M::BadTimestamp),
            ),
            (
                "order_timestamp",
                r#""2024-06-08 18:05:03.1234567891""#,
                mismatch("order_timestamp", "timestamp", M::BadTimestamp),
            ),
            (
                "order_timestamp",
                r#""2024-06-08 18:05:03.000000001""#,
                mismatch("order_timestamp", "timestamp", M::SubMicrosecond),
            ),
            (
                "order_timestamp",
                r#""2024-06-08 18:05:03.4119371""#,
                mismatch("order_timestamp", "timestamp", M::SubMicrosecond),
            ),
        ];
        for (column, value, expected) in &order_cases {
            let bad = with_value(GOOD_ORDER, column, value);
            assert_rejected(Table::Orders, GOOD_ORDER, &bad, expected);
        }
    }

    /// A `\u` escape that is no Unicode character (a lone surrogate) passes serde_json's raw
    /// value check but decodes to no text: an error for the record, in every column read as a
    /// string, where it used to panic (found by the `columnar` fuzz target).
    #[test]
    fn a_lone_surrogate_escape_is_an_error_not_a_panic() {
        for (column, value, expected) in [
            ("status", r#""\ud800Olive""#, "string"),
            ("status", r#""\udc00""#, "string"),
            ("status", r#""\ud800\u0041""#, "string"),
            ("order_date", r#""\ud800""#, "date"),
            ("order_timestamp", r#""2024-06-08 \udfff""#, "timestamp"),
        ] {
            let bad = with_value(GOOD_ORDER, column, value);
            let expected = mismatch(column, expected, Mismatch::NotUnicode);
            assert_rejected(Table::Orders, GOOD_ORDER, &bad, &expected);
        }
        // A surrogate pair is one character.
        let mut builder = RowBatchBuilder::new(Table::Orders);
        let pair = with_value(GOOD_ORDER, "status", r#""\ud83d\ude00""#);
        assert_eq!(builder.push_record(pair.as_bytes()), Ok(1));
        assert_eq!(strings(&builder.finish(), "status"), some(&["\u{1F600}"]));
        // In a key it is not JSON text; under a key that names no column it is ignored.
        let open = GOOD_ORDER.strip_suffix('}').unwrap();
        let result = builder.push_record(format!(r#"{open},"\ud800":1}}"#).as_bytes());
        assert!(
            matches!(result, Err(ConversionError::NotJson { line: 1, .. })),
            "{result:?}"
        );
        let ignored = format!(r#"{open},"note":{{"a":["\ud800"]}}}}"#);
        assert_eq!(builder.push_record(ignored.as_bytes()), Ok(1));
        assert_eq!(strings(&builder.finish(), "status"), some(&["paid"]));
    }

    #[test]
    fn malformed_lines_reject_the_whole_record() {
        for (bad, expected) in [
            ("[1, 2]", ConversionError::NotAnObject { line: 2 }),
            (r#""a string""#, ConversionError::NotAnObject { line: 2 }),
            ("42", ConversionError::NotAnObject { line: 2 }),
            ("null", ConversionError::NotAnObject { line: 2 }),
            (
                r#"{"customer_id": "c1""#,
                ConversionError::NotJson { line: 2, at: 20 },
            ),
            (
                r#"{"customer_id": c1}"#,
                ConversionError::NotJson { line: 2, at: 17 },
            ),
            (
                r#"{"a": 1} {"b": 2}"#,
                ConversionError::NotJson { line: 2, at: 10 },
            ),
            (
                r#"{"currency": "EUR", "Currency": "USD"}"#,
                ConversionError::DuplicateColumn {
                    line: 2,
                    column: "currency".to_owned(),
                },
            ),
            (
                r#"{"amount": null, "amount": 1}"#,
                ConversionError::DuplicateColumn {
                    line: 2,
                    column: "amount".to_owned(),
                },
            ),
        ] {
            assert_rejected(Table::PurchaseDetails, GOOD_PURCHASE, bad, &expected);
        }
        // Invalid UTF-8 inside a string.
        let mut builder = RowBatchBuilder::new(Table::PurchaseDetails);
        let result = builder.push_record(b"{\"currency\": \"\xff\"}");
        assert!(
            matches!(result, Err(ConversionError::NotJson { line: 1, .. })),
            "{result:?}"
        );
        assert!(builder.is_empty());
    }

    #[test]
    fn lenient_where_hive_is_and_exact_values() {
        let record = concat!(
            "\n",
            r#"{"customer_id": "c\u0031", "ORDER_ID": "o1", "amount": 1.25e1, "note": {"nested": [1, "x"]}, "instalments": null}"#,
            "\r\n",
            "   \n",
            r#"{"amount": -0.5, "payment_type": "card", "instalments": -2147483648, "currency": "\u20ac"}"#,
            "\n",
            r#"{"amount": 1.2300, "instalments": 2147483647}"#,
            "\n",
            r#"{"amount": 9999999999.99, "instalments": -0}"#,
            "\n",
            r#"{"amount": 0.00}"#,
        );
        let mut builder = RowBatchBuilder::new(Table::PurchaseDetails);
        assert_eq!(builder.push_record(record.as_bytes()), Ok(5));
        let batch = builder.finish();
        assert_eq!(
            strings(&batch, "customer_id"),
            [Some("c1".to_owned()), None, None, None, None]
        );
        assert_eq!(
            strings(&batch, "order_id"),
            [Some("o1".to_owned()), None, None, None, None]
        );
        assert_eq!(
            strings(&batch, "currency"),
            [None, Some("€".to_owned()), None, None, None]
        );
        assert_eq!(
            decimals(&batch, "amount"),
            [
                Some(1_250),
                Some(-50),
                Some(123),
                Some(999_999_999_999),
                Some(0)
            ]
        );
        assert_eq!(
            ints(&batch, "instalments"),
            [None, Some(i32::MIN), Some(i32::MAX), Some(0), None]
        );
    }

    #[test]
    fn timestamps_and_dates_convert_exactly() {
        let cases = [
            ("1970-01-01 00:00:00", "1970-01-01", 0, 0),
            ("1970-01-01 00:00:00.000001", "1970-01-02", 1, 1),
            (
                "2024-06-08 18:05:03.5",
                "2024-06-08",
                1_717_869_903_500_000,
                19_882,
            ),
            (
                "2024-06-08 18:05:03.411937",
                "2024-06-08",
                1_717_869_903_411_937,
                19_882,
            ),
            (
                "2024-06-08 18:05:03.411937000",
                "2024-06-08",
                1_717_869_903_411_937,
                19_882,
            ),
            ("1969-12-31 23:59:59.999999", "1969-12-31", -1, -1),
        ];
        for (timestamp, date, micros, days) in cases {
            assert_eq!(timestamp_micros(timestamp), Ok(micros), "{timestamp}");
            assert_eq!(date_days(date), Ok(days), "{date}");
            let line = with_value(
                &with_value(GOOD_ORDER, "order_timestamp", &format!("\"{timestamp}\"")),
                "order_date",
                &format!("\"{date}\""),
            );
            let mut builder = RowBatchBuilder::new(Table::Orders);
            assert_eq!(builder.push_record(line.as_bytes()), Ok(1));
            let batch = builder.finish();
            let column = batch.column_by_name("order_timestamp").unwrap();
            assert_eq!(
                column.as_primitive::<TimestampMicrosecondType>().value(0),
                micros
            );
            let column = batch.column_by_name("order_date").unwrap();
            assert_eq!(column.as_primitive::<Date32Type>().value(0), days);
        }
    }

    #[test]
    fn exact_decimals_agree_with_the_domain_rule_on_plain_literals() {
        for text in [
            "0",
            "-0",
            "0.00",
            "12.5",
            "12.50",
            "12.505",
            "1.005",
            "1.000",
            "0.001",
            "0.01",
            "100",
            "-5.5",
            "1234567890.10",
            "9999999999.99",
            "-9999999999.99",
            "10000000000",
            "99999999999",
        ] {
            let exact = decimal_unscaled(text, 12, 2);
            assert_eq!(exact.is_ok(), decimal_fits(text, 12, 2), "{text}");
            let value: serde_json::Value = serde_json::from_str(text).unwrap();
            let column_type = ColumnType::Decimal {
                precision: 12,
                scale: 2,
            };
            assert_eq!(exact.is_ok(), column_type.accepts(&value), "{text}");
        }
        assert_eq!(decimal_unscaled("12.5", 12, 2), Ok(1_250));
        assert_eq!(decimal_unscaled("-0.01", 12, 2), Ok(-1));
        assert_eq!(decimal_unscaled("5", 3, 0), Ok(5));
        assert_eq!(decimal_unscaled("5E+2", 3, 0), Ok(500));
        assert_eq!(
            decimal_unscaled("5e3", 3, 0),
            Err(Mismatch::TooManyIntegerDigits)
        );
        assert_eq!(decimal_unscaled("0.5e1", 3, 0), Ok(5));
        assert_eq!(decimal_unscaled("0e99999999999999999999", 3, 0), Ok(0));
        assert_eq!(
            decimal_unscaled("99999999999999999999999999999999999999", 38, 0),
            Ok(10_i128.pow(38) - 1)
        );
        assert_eq!(
            decimal_unscaled("0.99999999999999999999999999999999999999", 38, 38),
            Ok(10_i128.pow(38) - 1)
        );
    }

    #[test]
    fn the_domain_rows_are_what_accepts_accepts() {
        // Every value the domain writes is accepted both by the domain rule and here.
        for table in Table::ALL {
            let (rows, count) = domain_rows(table);
            for line in rows.split(|b| *b == b'\n').filter(|line| !line.is_empty()) {
                let row: serde_json::Value = serde_json::from_slice(line).unwrap();
                for column in &table.definition().columns {
                    assert!(column.column_type.accepts(&row[&column.name]));
                }
            }
            assert_eq!(RowBatchBuilder::new(table).push_record(&rows), Ok(count));
        }
    }

    #[test]
    fn errors_never_show_the_value() {
        let mut builder = RowBatchBuilder::new(Table::ShippingAddresses);
        for line in [
            r#"{"zip": ["jane.doe@example.com"]}"#,
            r#"{"street": 12345678}"#,
            r#"{"street": jane.doe@example.com}"#,
            r#""jane.doe@example.com""#,
        ] {
            let error = builder.push_record(line.as_bytes()).unwrap_err();
            let text = error.to_string();
            assert!(!text.contains("jane"), "{text}");
            assert!(!text.contains("12345678"), "{text}");
            assert!(!format!("{error:?}").contains("jane"));
        }
        let error = builder
            .push_record(br#"{"zip": 85921}"#)
            .unwrap_err()
            .to_string();
        assert_eq!(
            error,
            "line 1, column `zip`: expected string, got a JSON number"
        );
    }
}
