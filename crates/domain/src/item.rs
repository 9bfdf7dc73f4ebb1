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
