//! The orderflow domain core: everything every part must agree on, as pure functions.
//!
//! - [`parse_order`]: the one validation rule set (wire format v1), with errors that name the JSON
//!   pointer and the rule.
//! - [`Order`] and its parts: the validated order, strings borrowed from the input.
//! - [`Table`], [`Partition`], [`table_file`]: the four analytics tables as defined in
//!   `sql/tables.json`, the rows an order becomes and its `year/month/day` partition.
//! - [`order_item`] (feature `dynamodb`): the DynamoDB item of an order.
//! - `OrderGenerator` (feature `generator`): seeded, realistic fake orders (and deliberately
//!   invalid ones), their lines from a seeded `Catalogue` of products.
//! - `fixtures` (feature `test-fixtures`): the sample order every crate's tests start from.
//! - [`decode_base64`], [`encode_base64_into`]: the records' base64 in Lambda's Kinesis and
//!   Firehose events (SIMD, exactly the `base64` crate's `STANDARD`).
//! - [`ORDER_SCHEMA_JSON`]: the order's JSON Schema (draft 4, for API Gateway), checked against
//!   [`parse_order`] by the tests.

#[cfg(feature = "generator")]
mod catalogue;
mod encoding;
#[cfg(any(test, feature = "test-fixtures"))]
pub mod fixtures;
#[cfg(feature = "generator")]
mod generate;
#[cfg(feature = "dynamodb")]
mod item;
#[cfg(feature = "lambda-logs")]
mod lambda_logs;
mod order;
mod parse;
mod tables;

#[cfg(feature = "generator")]
pub use catalogue::{CURRENCIES, Catalogue, Currency, Product};
pub use encoding::{
    base64_len, decode_base64, deserialize_base64, encode_base64_into, json_str_len, push_json_str,
};
#[cfg(feature = "generator")]
pub use generate::{GeneratorConfig, InvalidSample, OrderGenerator};
#[cfg(feature = "dynamodb")]
pub use item::{
    MAX_ITEM_BYTES, PARTITION_KEY, Provenance, SORT_KEY, SOURCE_SEQUENCE_NUMBER, item_size,
    order_item,
};
#[cfg(feature = "lambda-logs")]
pub use lambda_logs::{init_lambda_logs, lambda_log_level};
pub use order::{
    Amount, AmountError, ItemDetails, Order, PaymentType, ProductLine, PurchaseDetails,
    ShippingAddress, Status, format_utc,
};
pub use parse::{FieldError, InvalidOrder, MAX_ORDER_BYTES, MAX_PRODUCT_LINES, parse_order};
pub use tables::{
    Column, ColumnType, Partition, TABLES_JSON, Table, TableDef, TableFile, decimal_fits,
    hive_date, hive_timestamp, table_file,
};

/// The order's JSON Schema (draft 4), `crates/domain/schema/order.schema.json`: what API Gateway
/// validates request bodies against. The tests check that it accepts and rejects the same corpus
/// as [`parse_order`], apart from the documented date cases a schema cannot express.
pub const ORDER_SCHEMA_JSON: &str = include_str!("../schema/order.schema.json");
