//! The committed JSON Schema (what API Gateway validates) and the Rust rule set accept and reject
//! the same corpus of orders. The few cases a JSON Schema cannot express are listed explicitly and
//! pinned: the schema lets them through, the Rust rules (consumer, transformers) reject them.

use orderflow_domain::fixtures::{SAMPLE_ORDER, with_field};
use orderflow_domain::{GeneratorConfig, ORDER_SCHEMA_JSON, OrderGenerator, parse_order};
use serde_json::{Value, json};

fn validator() -> jsonschema::Validator {
    let schema: Value = serde_json::from_str(ORDER_SCHEMA_JSON).expect("the schema is JSON");
    jsonschema::draft4::new(&schema).expect("the schema is valid draft 4")
}

fn text(length: usize) -> Value {
    Value::String("x".repeat(length))
}

/// `(case, body, valid)`: the corpus both validators must agree on.
fn corpus() -> Vec<(String, String, bool)> {
    let mut cases: Vec<(String, String, bool)> = Vec::new();
    let mut case =
        |name: &str, body: String, valid: bool| cases.push((name.to_owned(), body, valid));
    case("design example", SAMPLE_ORDER.to_owned(), true);
    case(
        "legacy spelling",
        SAMPLE_ORDER.replace("purchase_details", "purchaise_details"),
        true,
    );
    case(
        "unknown fields ignored",
        with_field("/extra", Some(json!({"a": 1}))),
        true,
    );
    case("array instead of object", "[1, 2]".into(), false);
    case("string instead of object", "\"order\"".into(), false);
    for (id_field, _) in [("/customer_id", 0), ("/order_id", 1)] {
        case(
            "id 128 characters",
            with_field(id_field, Some(text(128))),
            true,
        );
        case(
            "id all allowed characters",
            with_field(id_field, Some("Az09_.:-".into())),
            true,
        );
        case("id empty", with_field(id_field, Some("".into())), false);
        case(
            "id 129 characters",
            with_field(id_field, Some(text(129))),
            false,
        );
        case(
            "id with space",
            with_field(id_field, Some("a b".into())),
            false,
        );
        case(
            "id non-ascii",
            with_field(id_field, Some("ü".into())),
            false,
        );
        case("id number", with_field(id_field, Some(json!(5))), false);
        case("id null", with_field(id_field, Some(Value::Null)), false);
        case("id missing", with_field(id_field, None), false);
    }
    for (date, valid) in [
        ("2024-06-08T18:05:03Z", true),
        ("2024-06-08T18:05:03+05:30", true),
        ("2024-06-08T18:05:03.1-23:59", true),
        ("2024-06-08T18:05:03.123456789Z", true),
        ("2024-02-29T00:00:00Z", true),
        ("2024-06-08t18:05:03Z", false),
        ("2024-06-08 18:05:03Z", false),
        ("2024-06-08T18:05:03", false),
        ("2024-13-01T00:00:00Z", false),
        ("2024-06-08T24:00:00Z", false),
        ("2024-06-08T23:59:60Z", false),
        ("2024-06-08T18:05:03.1234567890Z", false),
        ("2024-06-08T18:05:03+0530", false),
        ("08/06/2024", false),
    ] {
        case(
            &format!("order_date {date}"),
            with_field("/order_date", Some(date.into())),
            valid,
        );
    }
    case(
        "order_date number",
        with_field("/order_date", Some(json!(1717848000))),
        false,
    );
    for status in [
        "pending",
        "confirmed",
        "paid",
        "shipped",
        "delivered",
        "cancelled",
        "returned",
    ] {
        case(status, with_field("/status", Some(status.into())), true);
    }
    case(
        "status capitalised",
        with_field("/status", Some("Pending".into())),
        false,
    );
    case("status missing", with_field("/status", None), false);
    case(
        "address missing",
        with_field("/shipping_address", None),
        false,
    );
    case(
        "address array",
        with_field("/shipping_address", Some(json!([]))),
        false,
    );
    case(
        "street empty",
        with_field("/shipping_address/street", Some("".into())),
        false,
    );
    case(
        "street 256",
        with_field("/shipping_address/street", Some(text(256))),
        true,
    );
    case(
        "street 257",
        with_field("/shipping_address/street", Some(text(257))),
        false,
    );
    case(
        "zip 16",
        with_field("/shipping_address/zip", Some(text(16))),
        true,
    );
    case(
        "zip 16 multi-byte",
        with_field("/shipping_address/zip", Some("é".repeat(16).into())),
        true,
    );
    case(
        "zip 17",
        with_field("/shipping_address/zip", Some(text(17))),
        false,
    );
    case(
        "city number",
        with_field("/shipping_address/city", Some(json!(7))),
        false,
    );
    case(
        "country missing",
        with_field("/shipping_address/country", None),
        false,
    );
    case(
        "purchase missing",
        with_field("/purchase_details", None),
        false,
    );
    case(
        "both spellings",
        SAMPLE_ORDER.replace(r#""status""#, r#""purchaise_details": {}, "status""#),
        false,
    );
    case(
        "payment type unknown",
        with_field("/purchase_details/payment_type", Some("cheque".into())),
        false,
    );
    for payment in ["debit_card", "credit_card", "cash", "coupon", "wallet"] {
        case(
            payment,
            with_field("/purchase_details/payment_type", Some(payment.into())),
            true,
        );
    }
    for (amount, valid) in [
        ("0", true),
        ("0.07", true),
        ("0.29", true),
        ("1.1", true),
        ("19.99", true),
        ("1234567.89", true),
        ("9999999999.99", true),
        ("4.25e1", true),
        ("1.005", false),
        ("0.001", false),
        ("-0.01", false),
        ("10000000000", false),
        ("1e400", false),
        ("\"42.5\"", false),
        ("null", false),
    ] {
        case(
            &format!("amount {amount}"),
            with_field("/purchase_details/amount", Some(Value::Null))
                .replace(r#""amount":null"#, &format!(r#""amount":{amount}"#)),
            valid,
        );
    }
    case(
        "currency lower",
        with_field("/purchase_details/currency", Some("usd".into())),
        false,
    );
    case(
        "currency short",
        with_field("/purchase_details/currency", Some("US".into())),
        false,
    );
    case(
        "currency long",
        with_field("/purchase_details/currency", Some("USDX".into())),
        false,
    );
    for (instalments, valid) in [
        (json!(1), true),
        (json!(60), true),
        (json!(0), false),
        (json!(61), false),
        (json!(1.5), false),
        (json!("3"), false),
    ] {
        case(
            &format!("instalments {instalments}"),
            with_field("/purchase_details/instalments", Some(instalments)),
            valid,
        );
    }
    let line = json!({"product_id": "p", "name": "n", "quantity": 1, "item_details": {"color": "c", "size": "s"}});
    case(
        "no lines",
        with_field("/product_details", Some(json!([]))),
        false,
    );
    case(
        "100 lines",
        with_field(
            "/product_details",
            Some(Value::Array(vec![line.clone(); 100])),
        ),
        true,
    );
    case(
        "101 lines",
        with_field(
            "/product_details",
            Some(Value::Array(vec![line.clone(); 101])),
        ),
        false,
    );
    case(
        "line not an object",
        with_field("/product_details", Some(json!([5]))),
        false,
    );
    case(
        "lines an object",
        with_field("/product_details", Some(json!({}))),
        false,
    );
    for (field, value, valid) in [
        ("quantity", json!(0), false),
        ("quantity", json!(10000), true),
        ("quantity", json!(10001), false),
        ("quantity", json!(2.5), false),
        ("name", json!(""), false),
        ("name", text(256), true),
        ("name", text(257), false),
        ("product_id", text(128), true),
        ("product_id", text(129), false),
        ("item_details", json!(null), false),
    ] {
        let mut broken = line.clone();
        broken[field] = value.clone();
        case(
            &format!("line {field} {value}"),
            with_field("/product_details", Some(json!([line, broken]))),
            valid,
        );
    }
    for (field, length, valid) in [
        ("color", 64, true),
        ("color", 65, false),
        ("size", 16, true),
        ("size", 17, false),
    ] {
        let mut broken = line.clone();
        broken["item_details"][field] = text(length);
        case(
            &format!("{field} {length}"),
            with_field("/product_details", Some(json!([broken]))),
            valid,
        );
    }
    let mut generator = OrderGenerator::new(GeneratorConfig {
        customers: 100,
        ..GeneratorConfig::fixed(11)
    });
    for n in 0..200 {
        case(
            &format!("generated {n}"),
            String::from_utf8(generator.next_order().to_json()).unwrap(),
            true,
        );
        let invalid = generator.invalid_order();
        case(
            invalid.reason,
            String::from_utf8(invalid.body).unwrap(),
            false,
        );
    }
    cases
}

#[test]
fn schema_and_rust_rules_agree_on_the_corpus() {
    let validator = validator();
    let mut disagreements = Vec::new();
    let corpus = corpus();
    for (name, body, valid) in &corpus {
        let rust = parse_order(body.as_bytes()).is_ok();
        // A number serde_json cannot hold (1e400) is not a document the validator can accept.
        let schema =
            serde_json::from_str::<Value>(body).is_ok_and(|instance| validator.is_valid(&instance));
        if rust != *valid || schema != *valid {
            disagreements.push(format!(
                "{name}: expected {valid}, rust {rust}, schema {schema}"
            ));
        }
    }
    assert!(
        disagreements.is_empty(),
        "{} of {} cases disagree:\n{}",
        disagreements.len(),
        corpus.len(),
        disagreements.join("\n")
    );
}

/// What a JSON Schema cannot say: calendar validity and decimal digits beyond `f64`. API Gateway
/// lets these through; the consumer and transformers reject them (so they end up skipped and in
/// the Firehose error prefix, not lost).
#[test]
fn known_gaps_are_only_the_documented_ones() {
    let validator = validator();
    for (name, body) in [
        (
            "February 30",
            with_field("/order_date", Some("2023-02-30T00:00:00Z".into())),
        ),
        (
            "February 29 in a common year",
            with_field("/order_date", Some("2023-02-29T00:00:00Z".into())),
        ),
        (
            "April 31",
            with_field("/order_date", Some("2024-04-31T00:00:00Z".into())),
        ),
        (
            "amount digits beyond f64",
            SAMPLE_ORDER.replace(
                r#""amount": 42.5"#,
                r#""amount": 0.1000000000000000055511151231257827"#,
            ),
        ),
    ] {
        let instance: Value = serde_json::from_str(&body).unwrap();
        assert!(
            validator.is_valid(&instance),
            "{name}: the schema would now reject it; move it to the corpus"
        );
        assert!(
            parse_order(body.as_bytes()).is_err(),
            "{name}: the Rust rules must reject it"
        );
    }
}
