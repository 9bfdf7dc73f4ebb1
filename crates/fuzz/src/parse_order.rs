//! `parse_order` on arbitrary bytes.

use std::borrow::Cow;
use std::sync::LazyLock;

use orderflow_domain::{InvalidOrder, MAX_ORDER_BYTES, ORDER_SCHEMA_JSON, parse_order};

/// The order's JSON Schema (API Gateway's `order` model), compiled once.
pub(crate) static ORDER_MODEL: LazyLock<jsonschema::Validator> = LazyLock::new(|| {
    let schema: serde_json::Value =
        serde_json::from_str(ORDER_SCHEMA_JSON).expect("the order schema is JSON");
    jsonschema::draft4::new(&schema).expect("the order schema is valid draft 4")
});

/// Invariants of [`parse_order`] on `data`, whatever it is:
///
/// - inputs over [`MAX_ORDER_BYTES`] are `TooLarge`, and only they;
/// - `Invalid` names at least one rule, each at a JSON pointer (empty or starting with `/`);
/// - an accepted order is also accepted by the JSON Schema (API Gateway's model): the schema may
///   be weaker than the rules (`docs/design.md` section 1), never stricter. Unknown members are
///   ignored without decoding their strings, so an accepted order may hold a `\u` escape of a
///   lone surrogate there, which JSON's grammar admits and serde_json cannot decode into a
///   value: the schema judges the order with each such escape read as U+FFFD
///   ([`without_lone_surrogates`]), which parses to the same order;
/// - an accepted order's wire encoding ([`orderflow_domain::Order::to_json`]) parses back to the
///   same order, and encodes to the same bytes again.
pub fn check(data: &[u8]) {
    let result = parse_order(data);
    assert_eq!(
        matches!(result, Err(InvalidOrder::TooLarge { .. })),
        data.len() > MAX_ORDER_BYTES,
        "TooLarge exactly for inputs over {MAX_ORDER_BYTES} bytes"
    );
    let order = match result {
        Ok(order) => order,
        Err(InvalidOrder::Invalid(errors)) => {
            assert!(!errors.is_empty(), "an Invalid order names a broken rule");
            for error in &errors {
                assert!(
                    error.path.is_empty() || error.path.starts_with('/'),
                    "an error's path is a JSON pointer: {:?}",
                    error.path
                );
            }
            return;
        }
        Err(_) => return,
    };
    let text = std::str::from_utf8(data).expect("an accepted order is UTF-8");
    let decodable = without_lone_surrogates(text);
    let value: serde_json::Value =
        serde_json::from_str(&decodable).expect("an accepted order is JSON");
    if decodable != text {
        assert_eq!(
            parse_order(decodable.as_bytes()).as_ref(),
            Ok(&order),
            "lone surrogates only in members the rules ignore"
        );
    }
    let schema_errors: Vec<String> = ORDER_MODEL
        .iter_errors(&value)
        .map(|error| format!("{}: {}", error.instance_path().as_str(), error.masked()))
        .collect();
    assert!(
        schema_errors.is_empty(),
        "parse_order accepts an order the JSON Schema refuses: {schema_errors:?}"
    );
    let encoded = order.to_json();
    let again = parse_order(&encoded).expect("an accepted order's encoding is accepted");
    assert_eq!(
        again, order,
        "the encoding of an order parses to the same order"
    );
    assert_eq!(again.to_json(), encoded, "encoding is stable");
}

/// `text` (JSON) with every `\u` escape of a lone surrogate (a high one not followed by a low
/// one, or a low one on its own) replaced by `\ufffd`; other escapes as they are.
pub(crate) fn without_lone_surrogates(text: &str) -> Cow<'_, str> {
    let bytes = text.as_bytes();
    let unit = |at: usize| {
        (bytes.get(at) == Some(&b'\\') && bytes.get(at + 1) == Some(&b'u'))
            .then(|| text.get(at + 2..at + 6))
            .flatten()
            .and_then(|hex| u16::from_str_radix(hex, 16).ok())
    };
    let (high, low) = (0xD800..0xDC00, 0xDC00..0xE000);
    let mut out = String::new();
    let (mut at, mut copied) = (0, 0);
    while at < bytes.len() {
        if bytes[at] != b'\\' {
            at += 1;
            continue;
        }
        let Some(first) = unit(at) else {
            // `\\`, `\"`, `\n`...: two characters.
            at += 2;
            continue;
        };
        if high.contains(&first) && unit(at + 6).is_some_and(|second| low.contains(&second)) {
            at += 12;
        } else if high.contains(&first) || low.contains(&first) {
            out.push_str(&text[copied..at]);
            out.push_str("\\ufffd");
            at += 6;
            copied = at;
        } else {
            at += 6;
        }
    }
    if copied == 0 {
        return Cow::Borrowed(text);
    }
    out.push_str(&text[copied..]);
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::without_lone_surrogates;

    #[test]
    fn lone_surrogates_become_replacement_characters() {
        for (text, expected) in [
            (r#"{"a":"x"}"#, r#"{"a":"x"}"#),
            (r#"{"a":"\ud83d\ude00"}"#, r#"{"a":"\ud83d\ude00"}"#),
            (r#"{"a":"\ud800"}"#, r#"{"a":"\ufffd"}"#),
            (r#"{"a":"\udc00\ud800x"}"#, r#"{"a":"\ufffd\ufffdx"}"#),
            (r#"{"a":"\ud800\u0041"}"#, r#"{"a":"\ufffd\u0041"}"#),
            (r#"{"a":"\\ud800"}"#, r#"{"a":"\\ud800"}"#),
        ] {
            assert_eq!(without_lone_surrogates(text), expected, "{text}");
        }
    }
}
