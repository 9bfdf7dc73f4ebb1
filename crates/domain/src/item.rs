//! The DynamoDB item of an order (`docs/design.md` section 3).
//!
//! Every order field keeps its native type: strings as `S`, the address and payment as `M`, the
//! lines as `L` of `M`, numbers as `N` with their exact decimal text. `ingested_at` is the
//! record's Kinesis arrival time, so a re-delivered record writes the identical item.

use std::collections::HashMap;

use aws_sdk_dynamodb::types::AttributeValue;
use chrono::{DateTime, Utc};

use crate::order::{Order, format_utc};

/// Where an order came from in the stream, stored with the item.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Provenance<'a> {
    /// The Kinesis record's approximate arrival time.
    pub ingested_at: DateTime<Utc>,
    /// The Kinesis sequence number.
    pub source_sequence_number: &'a str,
}

/// The item's attribute names for the keys.
pub const PARTITION_KEY: &str = "customer_id";
/// The sort key attribute.
pub const SORT_KEY: &str = "order_id";
/// The attribute holding the Kinesis sequence number of the record an item was written from;
/// writes are conditional on it, so a replay never replaces a newer version.
pub const SOURCE_SEQUENCE_NUMBER: &str = "source_sequence_number";

/// DynamoDB's largest item, 400 KB ("The maximum item size in DynamoDB is 400 KB, which includes
/// both attribute name binary length (UTF-8 length) and attribute value lengths", DynamoDB
/// developer guide, "Quotas"), counted here as 400,000 bytes, the lower reading.
pub const MAX_ITEM_BYTES: usize = 400_000;

/// The size DynamoDB counts for `item`, by the rules of the developer guide's "DynamoDB item
/// sizes and formats": a string is its name's and its value's UTF-8 bytes; a number its name
/// plus one byte per two significant digits plus one; a list or map its name, its elements'
/// sizes, 3 bytes, and 1 byte per element (a map element's name counts as an attribute name).
pub fn item_size(item: &HashMap<String, AttributeValue>) -> usize {
    item.iter()
        .map(|(name, value)| name.len() + value_size(value))
        .sum()
}

fn value_size(value: &AttributeValue) -> usize {
    match value {
        AttributeValue::S(text) => text.len(),
        AttributeValue::N(number) => number_size(number),
        AttributeValue::B(bytes) => bytes.as_ref().len(),
        AttributeValue::Bool(_) | AttributeValue::Null(_) => 1,
        AttributeValue::L(values) => 3 + values.iter().map(|v| 1 + value_size(v)).sum::<usize>(),
        AttributeValue::M(map) => {
            3 + map
                .iter()
                .map(|(k, v)| 1 + k.len() + value_size(v))
                .sum::<usize>()
        }
        AttributeValue::Ss(texts) => texts.iter().map(String::len).sum(),
        AttributeValue::Ns(numbers) => numbers.iter().map(|n| number_size(n)).sum(),
        AttributeValue::Bs(blobs) => blobs.iter().map(|b| b.as_ref().len()).sum(),
        // Types a later SDK may add: counted as their debug text, a generous bound.
        other => format!("{other:?}").len(),
    }
}

/// One byte per two significant digits (leading and trailing zeros trimmed), plus one.
fn number_size(number: &str) -> usize {
    let digits: String = number.chars().filter(char::is_ascii_digit).collect();
    let significant = digits
        .trim_start_matches('0')
        .trim_end_matches('0')
        .len()
        .max(1);
    significant.div_ceil(2) + 1
}

fn s(value: &str) -> AttributeValue {
    AttributeValue::S(value.to_owned())
}

fn n(value: impl ToString) -> AttributeValue {
    AttributeValue::N(value.to_string())
}

/// The full item for an idempotent `PutItem`.
pub fn order_item(
    order: &Order<'_>,
    provenance: &Provenance<'_>,
) -> HashMap<String, AttributeValue> {
    let address = &order.shipping_address;
    let purchase = &order.purchase_details;
    let lines = order
        .product_details
        .iter()
        .map(|line| {
            AttributeValue::M(HashMap::from([
                ("product_id".to_owned(), s(&line.product_id)),
                ("name".to_owned(), s(&line.name)),
                ("quantity".to_owned(), n(line.quantity)),
                (
                    "item_details".to_owned(),
                    AttributeValue::M(HashMap::from([
                        ("color".to_owned(), s(&line.item_details.color)),
                        ("size".to_owned(), s(&line.item_details.size)),
                    ])),
                ),
            ]))
        })
        .collect();
    HashMap::from([
        (PARTITION_KEY.to_owned(), s(&order.customer_id)),
        (SORT_KEY.to_owned(), s(&order.order_id)),
        ("order_date".to_owned(), s(&format_utc(&order.order_date))),
        ("status".to_owned(), s(order.status.as_str())),
        (
            "shipping_address".to_owned(),
            AttributeValue::M(HashMap::from([
                ("street".to_owned(), s(&address.street)),
                ("city".to_owned(), s(&address.city)),
                ("state".to_owned(), s(&address.state)),
                ("zip".to_owned(), s(&address.zip)),
                ("country".to_owned(), s(&address.country)),
            ])),
        ),
        (
            "purchase_details".to_owned(),
            AttributeValue::M(HashMap::from([
                ("payment_type".to_owned(), s(purchase.payment_type.as_str())),
                ("amount".to_owned(), n(purchase.amount)),
                ("currency".to_owned(), s(&purchase.currency)),
                ("instalments".to_owned(), n(purchase.instalments)),
            ])),
        ),
        ("product_details".to_owned(), AttributeValue::L(lines)),
        (
            "ingested_at".to_owned(),
            s(&format_utc(&provenance.ingested_at)),
        ),
        (
            SOURCE_SEQUENCE_NUMBER.to_owned(),
            s(provenance.source_sequence_number),
        ),
    ])
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_order;

    /// Issue 15, item 4: no order the API's JSON Schema accepts can make an item over DynamoDB's
    /// 400 KB, so none is discovered too large in the consumer. The largest one: ids of 128
    /// characters (the schema's pattern is ASCII), every other string at its `maxLength` in
    /// four-byte characters, the largest numbers, 100 lines. The rules accept it too.
    #[test]
    fn the_largest_schema_valid_order_makes_an_item_under_three_quarters_of_400_kb() {
        let wide = |chars: usize| "\u{1F600}".repeat(chars);
        let id = "i".repeat(128);
        let line = serde_json::json!({
            "product_id": wide(128), "name": wide(256), "quantity": 10000,
            "item_details": {"color": wide(64), "size": wide(16)},
        });
        let order = serde_json::json!({
            "customer_id": id, "order_id": id,
            "order_date": "2024-06-08T18:05:03.123456789+23:59", "status": "cancelled",
            "shipping_address": {"street": wide(256), "city": wide(256), "state": wide(256),
                                 "zip": wide(16), "country": wide(256)},
            "purchase_details": {"payment_type": "credit_card", "amount": 9999999999.99,
                                 "currency": "USD", "instalments": 60},
            "product_details": vec![line; 100],
        });
        let json = serde_json::to_vec(&order).unwrap();
        let order = parse_order(&json).expect("the rules accept it");
        let sequence_number = "9".repeat(56);
        let item = order_item(
            &order,
            &Provenance {
                ingested_at: DateTime::parse_from_rfc3339("2024-06-09T01:30:01.250Z")
                    .unwrap()
                    .to_utc(),
                source_sequence_number: &sequence_number,
            },
        );
        let size = item_size(&item);
        println!("the largest schema-valid order's item: {size} bytes");
        assert!(size <= MAX_ITEM_BYTES * 3 / 4, "{size} bytes");
        assert!(
            size > 190_000,
            "{size} bytes: the order is not at the schema's maxima"
        );
    }

    #[test]
    fn item_sizes_follow_dynamodbs_rules() {
        // The developer guide's rules, by hand: "a" + "xyz" = 4; "n" + 1.50 (2 significant
        // digits: 1 byte, plus 1) = 3; "l" + 3 + (1 + 1) + (1 + 2) = 9; "m" + 3 + 1 + "k" + 1 = 7.
        let item = HashMap::from([
            ("a".to_owned(), s("xyz")),
            ("n".to_owned(), AttributeValue::N("1.50".into())),
            (
                "l".to_owned(),
                AttributeValue::L(vec![s("x"), AttributeValue::N("120".into())]),
            ),
            (
                "m".to_owned(),
                AttributeValue::M(HashMap::from([("k".to_owned(), s("v"))])),
            ),
        ]);
        assert_eq!(item_size(&item), 4 + 3 + 9 + 7);
        assert_eq!(number_size("0"), 2);
        assert_eq!(number_size("-0.000123"), 3);
        assert_eq!(number_size("9999999999.99"), 7);
    }

    #[test]
    fn item_has_native_types_and_exact_amount() {
        let json = r#"{"customer_id": "c1", "order_id": "o1", "order_date": "2024-06-08T23:30:00-02:00",
          "status": "paid", "shipping_address": {"street": "s", "city": "c", "state": "t", "zip": "z", "country": "k"},
          "purchase_details": {"payment_type": "cash", "amount": 0.10, "currency": "EUR", "instalments": 1},
          "product_details": [{"product_id": "p", "name": "n", "quantity": 3, "item_details": {"color": "c", "size": "s"}}]}"#;
        let order = parse_order(json.as_bytes()).unwrap();
        let arrival = DateTime::parse_from_rfc3339("2024-06-09T01:30:01.250Z")
            .unwrap()
            .to_utc();
        let item = order_item(
            &order,
            &Provenance {
                ingested_at: arrival,
                source_sequence_number: "495",
            },
        );
        assert_eq!(item["customer_id"], s("c1"));
        assert_eq!(item["order_date"], s("2024-06-09T01:30:00Z"));
        assert_eq!(item["ingested_at"], s("2024-06-09T01:30:01.250Z"));
        let purchase = item["purchase_details"].as_m().unwrap();
        assert_eq!(purchase["amount"], AttributeValue::N("0.1".into()));
        assert_eq!(purchase["instalments"], AttributeValue::N("1".into()));
        let line = item["product_details"].as_l().unwrap()[0].as_m().unwrap();
        assert_eq!(line["quantity"], AttributeValue::N("3".into()));
        assert_eq!(line["item_details"].as_m().unwrap()["size"], s("s"));
        assert_eq!(item.len(), 9);
    }
}
