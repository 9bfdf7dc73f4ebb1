//! The four analytics tables: their definition (read from `sql/tables.json`, the one source of
//! truth), the rows an order becomes, and the Hive partition of an order.
//!
//! Rows are written as newline-delimited JSON in the shape Firehose's Hive JSON SerDe reads:
//! timestamps as `yyyy-mm-dd hh:mm:ss[.f]` (what `java.sql.Timestamp::valueOf` parses), dates as
//! `yyyy-mm-dd`, decimals as exact JSON numbers with their scale.

use std::fmt;
use std::str::FromStr;
use std::sync::LazyLock;

use chrono::{DateTime, Datelike, Timelike, Utc};
use serde::Deserialize;

use crate::encoding::push_json_str;
use crate::order::Order;

/// The table file's text, embedded at build time from `sql/tables.json`.
pub const TABLES_JSON: &str = include_str!("../../../sql/tables.json");

/// The parsed table file (`sql/tables.json`).
#[derive(Debug, Clone, Deserialize)]
pub struct TableFile {
    /// Glue database name prefix; the environment name follows it (`orderflow_prod`).
    pub database_prefix: String,
    /// Partition columns shared by every table, in path order.
    pub partition_keys: Vec<Column>,
    /// The tables.
    pub tables: Vec<TableDef>,
}

/// One table of the table file.
#[derive(Debug, Clone, Deserialize)]
pub struct TableDef {
    /// Table name (underscores only).
    pub name: String,
    /// What one row is.
    pub comment: String,
    /// Data columns in file order (partition columns excluded).
    pub columns: Vec<Column>,
}

/// A column: name and Glue/Hive type.
#[derive(Debug, Clone, Deserialize)]
pub struct Column {
    /// Column name.
    pub name: String,
    /// Glue/Hive type name, e.g. `string`, `decimal(12,2)`.
    #[serde(rename = "type")]
    pub column_type: ColumnType,
    /// Optional description.
    #[serde(default)]
    pub comment: Option<String>,
}

/// The column types the tables use.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ColumnType {
    /// `string`
    String,
    /// `int` (32-bit signed)
    Int,
    /// `date`
    Date,
    /// `timestamp` (no zone; UTC by convention)
    Timestamp,
    /// `decimal(precision,scale)`
    Decimal {
        /// Total digits.
        precision: u8,
        /// Digits after the point.
        scale: u8,
    },
}

impl FromStr for ColumnType {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        match text {
            "string" => Ok(ColumnType::String),
            "int" => Ok(ColumnType::Int),
            "date" => Ok(ColumnType::Date),
            "timestamp" => Ok(ColumnType::Timestamp),
            _ => {
                let inner = text
                    .strip_prefix("decimal(")
                    .and_then(|rest| rest.strip_suffix(')'))
                    .ok_or_else(|| format!("unsupported column type `{text}`"))?;
                let (precision, scale) = inner
                    .split_once(',')
                    .and_then(|(p, s)| Some((p.trim().parse().ok()?, s.trim().parse().ok()?)))
                    .ok_or_else(|| format!("bad decimal type `{text}`"))?;
                Ok(ColumnType::Decimal { precision, scale })
            }
        }
    }
}

impl fmt::Display for ColumnType {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            ColumnType::String => f.write_str("string"),
            ColumnType::Int => f.write_str("int"),
            ColumnType::Date => f.write_str("date"),
            ColumnType::Timestamp => f.write_str("timestamp"),
            ColumnType::Decimal { precision, scale } => write!(f, "decimal({precision},{scale})"),
        }
    }
}

impl<'de> Deserialize<'de> for ColumnType {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let text = String::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

impl ColumnType {
    /// Whether a JSON value is of this type exactly as the Hive JSON SerDe would read it, with no
    /// coercion: a string for `string`, an integer in range for `int`, `yyyy-mm-dd` for `date`,
    /// `yyyy-mm-dd hh:mm:ss[.fffffffff]` for `timestamp`, and a number that fits for `decimal`.
    /// `null` is accepted for every type (a missing value).
    pub fn accepts(&self, value: &serde_json::Value) -> bool {
        use serde_json::Value;
        match (self, value) {
            (_, Value::Null) => true,
            (ColumnType::String, Value::String(_)) => true,
            (ColumnType::Int, Value::Number(n)) => {
                n.as_i64().is_some_and(|v| i32::try_from(v).is_ok())
            }
            (ColumnType::Date, Value::String(s)) => {
                chrono::NaiveDate::parse_from_str(s, "%Y-%m-%d").is_ok() && s.len() == 10
            }
            (ColumnType::Timestamp, Value::String(s)) => {
                chrono::NaiveDateTime::parse_from_str(s, "%Y-%m-%d %H:%M:%S%.f").is_ok()
            }
            (ColumnType::Decimal { precision, scale }, Value::Number(n)) => {
                let text = n.to_string();
                decimal_fits(&text, *precision, *scale)
            }
            _ => false,
        }
    }
}

/// Whether decimal text fits `decimal(precision, scale)` without rounding.
pub fn decimal_fits(text: &str, precision: u8, scale: u8) -> bool {
    let Ok(value) = rust_decimal::Decimal::from_str_exact(text) else {
        return false;
    };
    let value = value.normalize();
    let integer_digits = value
        .trunc()
        .abs()
        .to_string()
        .trim_start_matches('0')
        .len();
    value.scale() <= u32::from(scale) && integer_digits <= usize::from(precision - scale)
}

static TABLE_FILE: LazyLock<TableFile> =
    LazyLock::new(|| serde_json::from_str(TABLES_JSON).expect("sql/tables.json is valid (tested)"));

/// The table file, parsed once.
pub fn table_file() -> &'static TableFile {
    &TABLE_FILE
}

/// The four tables the transformers feed.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Table {
    /// One row per order.
    Orders,
    /// One row per order line.
    ProductDetails,
    /// One row per order: payment.
    PurchaseDetails,
    /// One row per order: shipping address.
    ShippingAddresses,
}

impl Table {
    /// All four, in table-file order.
    pub const ALL: [Table; 4] = [
        Table::Orders,
        Table::ProductDetails,
        Table::PurchaseDetails,
        Table::ShippingAddresses,
    ];

    /// The table's name in the table file, Glue and SQL.
    pub const fn name(self) -> &'static str {
        match self {
            Table::Orders => "orders",
            Table::ProductDetails => "product_details",
            Table::PurchaseDetails => "purchase_details",
            Table::ShippingAddresses => "shipping_addresses",
        }
    }

    /// The table's definition from the table file.
    pub fn definition(self) -> &'static TableDef {
        table_file()
            .tables
            .iter()
            .find(|table| table.name == self.name())
            .expect("every Table is in sql/tables.json (tested)")
    }

    /// Appends the order's rows for this table to `out` as JSON lines; returns how many rows.
    ///
    /// The lines are written by hand, byte for byte what serde_json writes for the row structs
    /// (the tests compare both on generated orders): the transformers write a row for every
    /// record, and serde's generic string escaping was most of their time.
    pub fn write_rows(self, order: &Order<'_>, out: &mut Vec<u8>) -> usize {
        let ids = |out: &mut Vec<u8>| {
            out.extend_from_slice(b"{\"customer_id\":");
            push_json_str(out, &order.customer_id);
            out.extend_from_slice(b",\"order_id\":");
            push_json_str(out, &order.order_id);
        };
        match self {
            Table::Orders => {
                ids(out);
                // Dates are digits and `-: .`, which JSON strings take unescaped.
                out.extend_from_slice(b",\"order_timestamp\":\"");
                push_hive_timestamp(out, &order.order_date);
                out.extend_from_slice(b"\",\"order_date\":\"");
                push_hive_date(out, &order.order_date);
                out.extend_from_slice(b"\",\"status\":");
                push_json_str(out, order.status.as_str());
            }
            Table::ProductDetails => {
                for (index, line) in order.product_details.iter().enumerate() {
                    ids(out);
                    out.extend_from_slice(b",\"line_number\":");
                    push_u32(out, index as u32 + 1);
                    out.extend_from_slice(b",\"product_id\":");
                    push_json_str(out, &line.product_id);
                    out.extend_from_slice(b",\"name\":");
                    push_json_str(out, &line.name);
                    out.extend_from_slice(b",\"quantity\":");
                    push_u32(out, line.quantity.into());
                    out.extend_from_slice(b",\"color\":");
                    push_json_str(out, &line.item_details.color);
                    out.extend_from_slice(b",\"size\":");
                    push_json_str(out, &line.item_details.size);
                    out.extend_from_slice(b"}\n");
                }
                return order.product_details.len();
            }
            Table::PurchaseDetails => {
                let purchase = &order.purchase_details;
                ids(out);
                out.extend_from_slice(b",\"payment_type\":");
                push_json_str(out, purchase.payment_type.as_str());
                out.extend_from_slice(b",\"amount\":");
                // A JSON number token, written verbatim (serde_json's RawValue does the same).
                out.extend_from_slice(purchase.amount.to_fixed2().as_bytes());
                out.extend_from_slice(b",\"currency\":");
                push_json_str(out, &purchase.currency);
                out.extend_from_slice(b",\"instalments\":");
                push_u32(out, purchase.instalments.into());
            }
            Table::ShippingAddresses => {
                let address = &order.shipping_address;
                ids(out);
                for (key, value) in [
                    (&b",\"country\":"[..], &*address.country),
                    (b",\"state\":", &*address.state),
                    (b",\"city\":", &*address.city),
                    (b",\"street\":", &*address.street),
                    (b",\"zip\":", &*address.zip),
                ] {
                    out.extend_from_slice(key);
                    push_json_str(out, value);
                }
            }
        }
        out.extend_from_slice(b"}\n");
        1
    }
}

/// Appends `value` in decimal, as serde_json writes an unsigned integer.
fn push_u32(out: &mut Vec<u8>, value: u32) {
    let (digits, start) = decimal(value, 0);
    out.extend_from_slice(&digits[start..]);
}

impl fmt::Display for Table {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.name())
    }
}

impl FromStr for Table {
    type Err = String;
    fn from_str(text: &str) -> Result<Self, String> {
        Table::ALL
            .into_iter()
            .find(|table| table.name() == text)
            .ok_or_else(|| format!("unknown table `{text}` (expected one of orders, product_details, purchase_details, shipping_addresses)"))
    }
}

/// `yyyy-mm-dd hh:mm:ss[.fraction]` in UTC, the `java.sql.Timestamp::valueOf` form.
pub fn hive_timestamp(value: &DateTime<Utc>) -> String {
    ascii(|out| push_hive_timestamp(out, value))
}

/// [`hive_timestamp`], appended to `out`.
fn push_hive_timestamp(out: &mut Vec<u8>, value: &DateTime<Utc>) {
    push_hive_date(out, value);
    let (nanos, time) = (value.nanosecond() % 1_000_000_000, value.time());
    out.push(b' ');
    push_padded(out, time.hour(), 2);
    out.push(b':');
    push_padded(out, time.minute(), 2);
    out.push(b':');
    push_padded(out, time.second(), 2);
    // The fraction with 3, 6 or 9 digits, as chrono's `%.f` writes it (none when zero).
    let (fraction, width) = match nanos {
        0 => return,
        n if n % 1_000_000 == 0 => (n / 1_000_000, 3),
        n if n % 1_000 == 0 => (n / 1_000, 6),
        n => (n, 9),
    };
    out.push(b'.');
    push_padded(out, fraction, width);
}

/// `yyyy-mm-dd` of a UTC time.
pub fn hive_date(value: &DateTime<Utc>) -> String {
    ascii(|out| push_hive_date(out, value))
}

/// [`hive_date`], appended to `out`.
fn push_hive_date(out: &mut Vec<u8>, value: &DateTime<Utc>) {
    push_year(out, value.year());
    out.push(b'-');
    push_padded(out, value.month(), 2);
    out.push(b'-');
    push_padded(out, value.day(), 2);
}

/// The text `write` appends to an empty buffer (digits and punctuation only).
fn ascii(write: impl FnOnce(&mut Vec<u8>)) -> String {
    let mut out = Vec::with_capacity(32);
    write(&mut out);
    String::from_utf8(out).expect("digits and punctuation are ASCII")
}

/// A year as `format!("{:04}")` writes it (a sign before the padding when negative).
fn push_year(out: &mut Vec<u8>, year: i32) {
    match u32::try_from(year) {
        Ok(year) => push_padded(out, year, 4),
        Err(_) => {
            use std::io::Write as _;
            let _ = write!(out, "{year:04}");
        }
    }
}

/// `value` in decimal, zero-padded to `width` digits, as `format!("{value:0width$}")` writes it,
/// without the formatting machinery (dates are written for every record the transformers answer).
fn push_padded(out: &mut Vec<u8>, value: u32, width: usize) {
    if width == 2 && value < 100 {
        // Months, days, hours, minutes and seconds.
        out.extend_from_slice(&[b'0' + (value / 10) as u8, b'0' + (value % 10) as u8]);
        return;
    }
    let (digits, start) = decimal(value, width);
    out.extend_from_slice(&digits[start..]);
}

/// The decimal digits of `value`, zero-padded to `width` (at most 10), right-aligned in the
/// array, and where they start.
fn decimal(value: u32, width: usize) -> ([u8; 10], usize) {
    let mut digits = [b'0'; 10];
    let mut at = digits.len();
    let mut rest = value;
    loop {
        at -= 1;
        digits[at] = b'0' + (rest % 10) as u8;
        rest /= 10;
        if rest == 0 {
            break;
        }
    }
    (digits, at.min(digits.len().saturating_sub(width)))
}

/// The Hive partition of an order: `year`, `month`, `day` of `order_date` in UTC, zero-padded.
/// The digits are kept inline (no allocation per record).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct Partition {
    /// The year's text (four digits, or `format!("{:04}")`'s form outside 0 to 9999: a sign
    /// or a fifth digit), then the month's two digits, then the day's.
    text: [u8; Partition::CAPACITY],
    /// How many bytes of `text` the year takes.
    year_len: u8,
}

impl Partition {
    /// Room for any year chrono can hold (`-262143` to `262142`), the month and the day.
    const CAPACITY: usize = 11;

    /// The partition of a UTC time.
    pub fn of(date: &DateTime<Utc>) -> Self {
        let mut text = [0; Partition::CAPACITY];
        let year_len = match u32::try_from(date.year()) {
            Ok(year) if year <= 9999 => {
                let (digits, start) = decimal(year, 4);
                text[..4].copy_from_slice(&digits[start..]);
                4
            }
            _ => {
                let year = format!("{:04}", date.year());
                text[..year.len()].copy_from_slice(year.as_bytes());
                year.len()
            }
        };
        let two_digits = |value: u32| [b'0' + (value / 10) as u8, b'0' + (value % 10) as u8];
        text[year_len..year_len + 2].copy_from_slice(&two_digits(date.month()));
        text[year_len + 2..year_len + 4].copy_from_slice(&two_digits(date.day()));
        Partition {
            text,
            year_len: u8::try_from(year_len).expect("a year is at most 7 characters"),
        }
    }

    /// The year: four digits (`format!("{:04}")` outside 0 to 9999).
    pub fn year(&self) -> &str {
        self.part(0, usize::from(self.year_len))
    }

    /// The month: two digits.
    pub fn month(&self) -> &str {
        let at = usize::from(self.year_len);
        self.part(at, at + 2)
    }

    /// The day: two digits.
    pub fn day(&self) -> &str {
        let at = usize::from(self.year_len) + 2;
        self.part(at, at + 2)
    }

    fn part(&self, from: usize, to: usize) -> &str {
        std::str::from_utf8(&self.text[from..to]).expect("digits and a sign are ASCII")
    }

    /// The key/value pairs in path order, as Firehose's `partitionKeys` metadata carries them.
    pub fn keys(&self) -> [(&'static str, &str); 3] {
        [
            ("year", self.year()),
            ("month", self.month()),
            ("day", self.day()),
        ]
    }

    /// The Hive path segment `year=2024/month=06/day=08`.
    pub fn hive_path(&self) -> String {
        format!(
            "year={}/month={}/day={}",
            self.year(),
            self.month(),
            self.day()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::order::exact_number;
    use crate::parse::parse_order;
    use serde::Serialize;

    // The rows as serde_json writes them: the reference `Table::write_rows` must equal.
    fn write_line(out: &mut Vec<u8>, row: &impl Serialize) {
        serde_json::to_writer(&mut *out, row).expect("rows always serialise");
        out.push(b'\n');
    }

    /// A row of `orders`.
    #[derive(Serialize)]
    struct OrderRow<'o> {
        customer_id: &'o str,
        order_id: &'o str,
        order_timestamp: String,
        order_date: String,
        status: &'static str,
    }

    impl<'o> OrderRow<'o> {
        fn new(order: &'o Order<'_>) -> Self {
            OrderRow {
                customer_id: &order.customer_id,
                order_id: &order.order_id,
                order_timestamp: hive_timestamp(&order.order_date),
                order_date: hive_date(&order.order_date),
                status: order.status.as_str(),
            }
        }
    }

    /// A row of `product_details`.
    #[derive(Serialize)]
    struct ProductDetailRow<'o> {
        customer_id: &'o str,
        order_id: &'o str,
        line_number: u32,
        product_id: &'o str,
        name: &'o str,
        quantity: u16,
        color: &'o str,
        size: &'o str,
    }

    /// A row of `purchase_details`.
    #[derive(Serialize)]
    struct PurchaseDetailRow<'o> {
        customer_id: &'o str,
        order_id: &'o str,
        payment_type: &'static str,
        amount: Box<serde_json::value::RawValue>,
        currency: &'o str,
        instalments: u8,
    }

    /// A row of `shipping_addresses`.
    #[derive(Serialize)]
    struct ShippingAddressRow<'o> {
        customer_id: &'o str,
        order_id: &'o str,
        country: &'o str,
        state: &'o str,
        city: &'o str,
        street: &'o str,
        zip: &'o str,
    }

    /// The rows of `order` for `table` as the row structs serialise them.
    fn reference_rows(table: Table, order: &Order<'_>) -> Vec<u8> {
        let mut out = Vec::new();
        let ids = (&*order.customer_id, &*order.order_id);
        match table {
            Table::Orders => write_line(&mut out, &OrderRow::new(order)),
            Table::ProductDetails => {
                for (index, line) in order.product_details.iter().enumerate() {
                    write_line(
                        &mut out,
                        &ProductDetailRow {
                            customer_id: ids.0,
                            order_id: ids.1,
                            line_number: index as u32 + 1,
                            product_id: &line.product_id,
                            name: &line.name,
                            quantity: line.quantity,
                            color: &line.item_details.color,
                            size: &line.item_details.size,
                        },
                    );
                }
            }
            Table::PurchaseDetails => {
                let purchase = &order.purchase_details;
                write_line(
                    &mut out,
                    &PurchaseDetailRow {
                        customer_id: ids.0,
                        order_id: ids.1,
                        payment_type: purchase.payment_type.as_str(),
                        amount: exact_number(&purchase.amount.to_fixed2()),
                        currency: &purchase.currency,
                        instalments: purchase.instalments,
                    },
                );
            }
            Table::ShippingAddresses => {
                let address = &order.shipping_address;
                write_line(
                    &mut out,
                    &ShippingAddressRow {
                        customer_id: ids.0,
                        order_id: ids.1,
                        country: &address.country,
                        state: &address.state,
                        city: &address.city,
                        street: &address.street,
                        zip: &address.zip,
                    },
                );
            }
        }
        out
    }

    /// The hand-written rows are byte for byte serde_json's, on generated orders and on
    /// strings every escape path of serde_json takes (quotes, backslashes, control
    /// characters, DEL and non-ASCII, which it leaves alone).
    #[test]
    fn hand_written_rows_are_serde_jsons_byte_for_byte() {
        let mut orders: Vec<Vec<u8>> = Vec::new();
        let mut generator = crate::OrderGenerator::new(crate::GeneratorConfig::fixed(20_261_204));
        orders.extend((0..2_000).map(|_| generator.next_order().to_json()));
        for text in [
            "say \"hi\"",
            "back\\slash",
            "tab\tnew\nline\r",
            "\u{1}\u{1f}",
            "del\u{7f}",
            "Zürich 東京 🚚",
            "",
            "/slash",
        ] {
            for path in [
                "/customer_id",
                "/product_details/0/name",
                "/product_details/0/item_details/color",
                "/shipping_address/street",
                "/purchase_details/currency",
            ] {
                orders.push(
                    crate::fixtures::with_field(path, Some(serde_json::Value::from(text)))
                        .into_bytes(),
                );
            }
        }
        let mut compared = 0;
        for json in &orders {
            let Ok(order) = parse_order(json) else {
                continue;
            };
            for table in Table::ALL {
                let mut out = Vec::new();
                let count = table.write_rows(&order, &mut out);
                let reference = reference_rows(table, &order);
                assert_eq!(
                    String::from_utf8_lossy(&out),
                    String::from_utf8_lossy(&reference),
                    "{table} rows of {}",
                    String::from_utf8_lossy(json)
                );
                assert_eq!(count, reference.iter().filter(|&&b| b == b'\n').count());
                compared += 1;
            }
        }
        // Edits the rules refuse (an empty or control-character id) are skipped; most must stay.
        assert!(compared >= 4 * 2_020, "only {compared} comparisons");
    }

    const ORDER: &str = r#"{"customer_id": "c1", "order_id": "o1",
      "order_date": "2024-06-08T23:30:00.5-02:00", "status": "paid",
      "shipping_address": {"street": "4 Elm St", "city": "Lake Anna", "state": "Ohio", "zip": "85921", "country": "Peru"},
      "purchase_details": {"payment_type": "wallet", "amount": 1234567890.1, "currency": "EUR", "instalments": 60},
      "product_details": [
        {"product_id": "p1", "name": "a", "quantity": 2, "item_details": {"color": "Azure", "size": "M"}},
        {"product_id": "p2", "name": "b \"quoted\"", "quantity": 10000, "item_details": {"color": "Red", "size": "XL"}}
      ]}"#;

    fn rows(table: Table) -> Vec<serde_json::Value> {
        let order = parse_order(ORDER.as_bytes()).unwrap();
        let mut out = Vec::new();
        let count = table.write_rows(&order, &mut out);
        let rows: Vec<_> = out
            .split(|b| *b == b'\n')
            .filter(|line| !line.is_empty())
            .map(|line| serde_json::from_slice(line).unwrap())
            .collect();
        assert_eq!(rows.len(), count);
        rows
    }

    #[test]
    fn the_table_file_defines_exactly_the_four_tables() {
        let names: Vec<_> = table_file()
            .tables
            .iter()
            .map(|t| t.name.as_str())
            .collect();
        assert_eq!(names, Table::ALL.map(Table::name));
        let keys: Vec<_> = table_file()
            .partition_keys
            .iter()
            .map(|c| c.name.as_str())
            .collect();
        assert_eq!(keys, ["year", "month", "day"]);
        for table in &table_file().tables {
            let columns: Vec<_> = table.columns.iter().map(|c| c.name.as_str()).collect();
            assert_eq!(
                &columns[..2],
                ["customer_id", "order_id"],
                "{} joins on both ids",
                table.name
            );
            assert!(
                table
                    .name
                    .chars()
                    .all(|c| c.is_ascii_lowercase() || c == '_')
            );
        }
    }

    #[test]
    fn rows_follow_the_table_file_column_for_column() {
        for table in Table::ALL {
            for row in rows(table) {
                let object = row.as_object().unwrap();
                let columns = &table.definition().columns;
                let mut names: Vec<_> = object.keys().map(String::as_str).collect();
                let mut expected: Vec<_> = columns.iter().map(|c| c.name.as_str()).collect();
                names.sort_unstable();
                expected.sort_unstable();
                assert_eq!(names, expected, "{table}");
                for column in columns {
                    let value = &object[&column.name];
                    assert!(!value.is_null(), "{table}.{} is null", column.name);
                    assert!(
                        column.column_type.accepts(value),
                        "{table}.{}: {value}",
                        column.name
                    );
                }
            }
        }
    }

    #[test]
    fn row_values_are_exact() {
        let orders = rows(Table::Orders);
        assert_eq!(orders[0]["order_timestamp"], "2024-06-09 01:30:00.500");
        assert_eq!(orders[0]["order_date"], "2024-06-09");
        let lines = rows(Table::ProductDetails);
        assert_eq!(lines.len(), 2);
        assert_eq!(lines[1]["line_number"], 2);
        assert_eq!(lines[1]["name"], "b \"quoted\"");
        let order = parse_order(ORDER.as_bytes()).unwrap();
        let mut out = Vec::new();
        Table::PurchaseDetails.write_rows(&order, &mut out);
        assert!(
            String::from_utf8(out)
                .unwrap()
                .contains(r#""amount":1234567890.10,"#)
        );
    }

    #[test]
    fn hive_timestamps_match_chronos_own_format() {
        for text in [
            "2024-06-08T18:05:03Z",
            "2024-06-08T18:05:03.5Z",
            "2024-06-08T18:05:03.411937Z",
            "2024-06-08T18:05:03.000000001Z",
            "0999-01-02T03:04:05.120Z",
        ] {
            let time = DateTime::parse_from_rfc3339(text).unwrap().to_utc();
            let chrono_text = time.format("%Y-%m-%d %H:%M:%S%.f").to_string();
            assert_eq!(hive_timestamp(&time), chrono_text, "{text}");
            assert_eq!(hive_date(&time), time.format("%Y-%m-%d").to_string());
        }
    }

    #[test]
    fn padded_digits_are_formats_own() {
        for width in [2, 3, 4, 6, 9] {
            for value in (0..100_000).chain([999_999, 1_000_000, 123_456_789, u32::MAX]) {
                let mut text = b"x".to_vec();
                push_padded(&mut text, value, width);
                assert_eq!(
                    String::from_utf8(text).unwrap(),
                    format!("x{value:0width$}"),
                    "{value} in {width}"
                );
            }
        }
        for year in [
            -262_143, -10_000, -999, -5, 0, 7, 999, 2024, 9_999, 10_000, 262_142,
        ] {
            assert_eq!(ascii(|out| push_year(out, year)), format!("{year:04}"));
        }
    }

    #[test]
    fn dates_and_partitions_match_chronos_own_format() {
        let mut day = DateTime::parse_from_rfc3339("1999-12-25T23:59:59.999Z")
            .unwrap()
            .to_utc();
        for _ in 0..1_000 {
            let partition = Partition::of(&day);
            assert_eq!(
                partition.hive_path(),
                day.format("year=%Y/month=%m/day=%d").to_string()
            );
            assert_eq!(hive_date(&day), day.format("%Y-%m-%d").to_string());
            day += chrono::TimeDelta::try_hours(221).unwrap() + chrono::TimeDelta::nanoseconds(7);
        }
        let extremes = [chrono::NaiveDate::MIN.year(), chrono::NaiveDate::MAX.year()];
        for year in [-44, 0, 9_999, 10_000, 12_345].into_iter().chain(extremes) {
            let date = chrono::NaiveDate::from_ymd_opt(year, 3, 1)
                .unwrap()
                .and_hms_opt(0, 0, 0)
                .unwrap()
                .and_utc();
            // Outside 0 to 9999, `format!`'s padding, as before (chrono's `%Y` adds a sign).
            assert_eq!(hive_date(&date), format!("{year:04}-03-01"));
            assert_eq!(Partition::of(&date).year(), format!("{year:04}"));
        }
    }

    #[test]
    fn partition_is_the_utc_day() {
        let order = parse_order(ORDER.as_bytes()).unwrap();
        let partition = Partition::of(&order.order_date);
        assert_eq!(partition.hive_path(), "year=2024/month=06/day=09");
    }

    #[test]
    fn column_types_are_strict() {
        use serde_json::json;
        let decimal: ColumnType = "decimal(12,2)".parse().unwrap();
        assert_eq!(
            decimal,
            ColumnType::Decimal {
                precision: 12,
                scale: 2
            }
        );
        assert_eq!(decimal.to_string(), "decimal(12,2)");
        assert!(decimal.accepts(&json!(9999999999.99)));
        assert!(!decimal.accepts(&json!(1.005)));
        assert!(!decimal.accepts(&json!("1.00")));
        assert!(!decimal.accepts(&json!(99999999999u64)));
        assert!(ColumnType::Int.accepts(&json!(5)));
        assert!(!ColumnType::Int.accepts(&json!(5.5)));
        assert!(!ColumnType::Int.accepts(&json!(4_000_000_000u64)));
        assert!(!ColumnType::String.accepts(&json!(5)));
        assert!(ColumnType::Date.accepts(&json!("2024-06-08")));
        assert!(!ColumnType::Date.accepts(&json!("2024-6-8")));
        assert!(ColumnType::Timestamp.accepts(&json!("2024-06-08 18:05:03.411937")));
        assert!(!ColumnType::Timestamp.accepts(&json!("2024-06-08T18:05:03Z")));
        assert!("varchar".parse::<ColumnType>().is_err());
    }
}
