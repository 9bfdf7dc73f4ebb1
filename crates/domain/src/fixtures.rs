//! Test fixtures (feature `test-fixtures`, and the crate's own tests): one valid sample order and
//! a helper that changes one field of it, so the tests of every crate start from the same order.

use serde_json::Value;

/// A valid order in wire format v1 (`docs/design.md`, section 1): one product line, a
/// microsecond `order_date`, an amount with one decimal place.
pub const SAMPLE_ORDER: &str = r#"{
  "customer_id": "user3542", "order_id": "o04560",
  "order_date": "2024-06-08T18:05:03.411937Z", "status": "pending",
  "shipping_address": {"street": "4 Elm St", "city": "Lake Anna", "state": "Ohio", "zip": "85921", "country": "Peru"},
  "purchase_details": {"payment_type": "credit_card", "amount": 42.5, "currency": "USD", "instalments": 3},
  "product_details": [
    {"product_id": "p00042", "name": "clear", "quantity": 2, "item_details": {"color": "Azure", "size": "M"}}
  ]
}"#;

/// [`SAMPLE_ORDER`] with the member at the JSON pointer `path` set to `value`, or removed for
/// `None`, as compact JSON.
///
/// # Panics
///
/// If the parent of `path` is not an object of the sample order: a test's typo must fail the
/// test, not leave the order unchanged.
pub fn with_field(path: &str, value: Option<Value>) -> String {
    let mut order: Value = serde_json::from_str(SAMPLE_ORDER).expect("the sample order is JSON");
    let (parent, field) = path
        .rsplit_once('/')
        .unwrap_or_else(|| panic!("`{path}` is a JSON pointer"));
    let parent = order
        .pointer_mut(parent)
        .and_then(Value::as_object_mut)
        .unwrap_or_else(|| panic!("`{path}`: the sample order has no object at `{parent}`"));
    match value {
        Some(value) => {
            parent.insert(field.to_owned(), value);
        }
        None => {
            assert!(
                parent.remove(field).is_some(),
                "`{path}`: the sample order has no such member to remove"
            );
        }
    }
    order.to_string()
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::{SAMPLE_ORDER, with_field};
    use crate::parse_order;

    #[test]
    fn the_sample_is_valid_and_edits_land_where_they_point() {
        assert!(parse_order(SAMPLE_ORDER.as_bytes()).is_ok());
        let edited = with_field("/purchase_details/instalments", Some(json!(7)));
        assert_eq!(
            parse_order(edited.as_bytes())
                .unwrap()
                .purchase_details
                .instalments,
            7
        );
        let removed = with_field("/status", None);
        assert!(!removed.contains("\"status\""));
    }

    #[test]
    #[should_panic(expected = "no object at")]
    fn a_pointer_into_nothing_fails_the_test() {
        with_field("/purchase_detail/amount", Some(json!(1)));
    }
}
