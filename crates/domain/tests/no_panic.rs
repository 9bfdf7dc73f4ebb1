//! No input makes the rule set panic: arbitrary bytes, deep nesting, huge numbers, every field
//! replaced by arbitrary JSON.

use orderflow_domain::fixtures::SAMPLE_ORDER;
use orderflow_domain::{GeneratorConfig, InvalidOrder, OrderGenerator, parse_order};
use proptest::prelude::*;
use serde_json::Value;

/// Every JSON pointer to a value in the base order.
fn pointers() -> Vec<String> {
    fn walk(value: &Value, path: String, out: &mut Vec<String>) {
        match value {
            Value::Object(map) => map
                .iter()
                .for_each(|(k, v)| walk(v, format!("{path}/{k}"), out)),
            Value::Array(items) => items
                .iter()
                .enumerate()
                .for_each(|(i, v)| walk(v, format!("{path}/{i}"), out)),
            _ => {}
        }
        out.push(path);
    }
    let mut out = Vec::new();
    walk(
        &serde_json::from_str(SAMPLE_ORDER).unwrap(),
        String::new(),
        &mut out,
    );
    out.retain(|p| !p.is_empty());
    out
}

fn arbitrary_json() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(Value::from),
        any::<f64>().prop_map(Value::from),
        ".{0,300}".prop_map(Value::String),
    ];
    leaf.prop_recursive(4, 64, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::hash_map(".{0,10}", inner, 0..8)
                .prop_map(|m| Value::Object(m.into_iter().collect())),
        ]
    })
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2_000))]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..2_000)) {
        let _ = parse_order(&bytes);
    }

    #[test]
    fn any_field_replaced_by_any_json_never_panics(index in 0usize..40, value in arbitrary_json()) {
        let pointers = pointers();
        let pointer = &pointers[index % pointers.len()];
        let mut order: Value = serde_json::from_str(SAMPLE_ORDER).unwrap();
        *order.pointer_mut(pointer).unwrap() = value;
        if let Err(InvalidOrder::Invalid(errors)) = parse_order(order.to_string().as_bytes()) {
            prop_assert!(!errors.is_empty());
        }
    }

    #[test]
    fn huge_and_odd_numbers_never_panic(digits in "-?[0-9]{1,400}(\\.[0-9]{0,400})?([eE][-+]?[0-9]{1,5})?") {
        for (field, old) in [("amount", "42.5"), ("instalments", "3"), ("quantity", "2")] {
            let body = replaced(SAMPLE_ORDER, &format!("\"{field}\": {old}"), &format!("\"{field}\": {digits}"));
            let _ = parse_order(body.as_bytes());
        }
    }

    /// Valid generated orders with a few bytes overwritten, inserted or removed: unlike arbitrary
    /// bytes, these get past the first token and reach the rules. An accepted one re-encodes to
    /// an order that parses back the same.
    #[test]
    fn near_valid_orders_never_panic(
        seed in any::<u64>(),
        edits in prop::collection::vec((any::<prop::sample::Index>(), 0u8..3, any::<u8>()), 1..4),
    ) {
        let mut generator = OrderGenerator::new(GeneratorConfig::fixed(seed));
        let mut body = generator.next_order().to_json();
        for (at, kind, byte) in edits {
            let at = at.index(body.len() + 1);
            match kind {
                0 if at < body.len() => body[at] = byte,
                1 => body.insert(at, byte),
                _ if at < body.len() => { body.remove(at); }
                _ => body.push(byte),
            }
        }
        match parse_order(&body) {
            Ok(order) => {
                let encoded = order.to_json();
                let again = parse_order(&encoded);
                prop_assert_eq!(again.as_ref(), Ok(&order));
            }
            Err(InvalidOrder::Invalid(errors)) => prop_assert!(!errors.is_empty()),
            Err(_) => {}
        }
    }
}

/// `base` with its one occurrence of `from` replaced by `to`; fails if `from` is not there once,
/// so an edited fixture cannot silently turn a test into a no-op.
fn replaced(base: &str, from: &str, to: &str) -> String {
    assert_eq!(
        base.matches(from).count(),
        1,
        "`{from}` occurs once in the base order"
    );
    base.replacen(from, to, 1)
}

#[test]
fn deep_nesting_is_an_error_not_a_stack_overflow() {
    for open in ["[", "{\"a\":"] {
        let body = open.repeat(50_000); // under the 256 KiB limit, far over serde_json's depth limit
        assert!(matches!(
            parse_order(body.as_bytes()),
            Err(InvalidOrder::Malformed(_))
        ));
        let nested = replaced(
            SAMPLE_ORDER,
            "\"credit_card\"",
            &format!("{}1", "[".repeat(10_000)),
        );
        assert!(parse_order(nested.as_bytes()).is_err());
    }
}
