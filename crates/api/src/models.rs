//! The request models: what API Gateway validates a body against before anything is written
//! (`tofu/modules/ingestion_api/main.tf`, the `order` and `order_batch` models and the `body`
//! request validator).
//!
//! API Gateway validates with the order's JSON Schema (draft 4, `crates/domain/schema/
//! order.schema.json`), not with the Rust rule set: "API Gateway ... validate[s] the payload
//! against the specified JSON schema" (API Gateway developer guide, "Request validation for REST
//! APIs"). The router does the same, with the same document, so an order the schema accepts and
//! the rules refuse (`docs/design.md` section 1, "What the JSON Schema does not check") gets `200`
//! here as in AWS and is refused downstream by the consumer and the transformers.
//!
//! Messages name the JSON pointer of the value and the schema rule it broke, with the value
//! itself masked, so they are safe to log. API Gateway's own messages are its validator's
//! (`README.md`, "How the twin differs from AWS").

use jsonschema::Validator;
use serde_json::{Map, Value};

/// The compiled models of the order and batch routes.
pub struct Models {
    order: Validator,
    batch: Validator,
}

impl std::fmt::Debug for Models {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Models")
    }
}

impl Models {
    /// The models for batches of 1 to `max_batch_orders` orders (`api.max_batch_orders` in
    /// `tofu/pipeline.json`).
    pub fn new(max_batch_orders: usize) -> Models {
        let order: Value = serde_json::from_str(orderflow_domain::ORDER_SCHEMA_JSON)
            .expect("the committed order schema is JSON (checked by the domain tests)");
        let compile = |schema: &Value| {
            jsonschema::draft4::new(schema)
                .expect("the committed order schema is valid draft 4 (checked by the domain tests)")
        };
        Models {
            batch: compile(&batch_schema(&order, max_batch_orders)),
            order: compile(&order),
        }
    }

    /// Every way `order` breaks the order model, as `pointer: rule` lines; empty when it is valid.
    pub fn order_errors(&self, order: &Value) -> Vec<String> {
        messages(&self.order, order)
    }

    /// Every way `batch` breaks the batch model (`/orders/3/order_id: ...`).
    pub fn batch_errors(&self, batch: &Value) -> Vec<String> {
        messages(&self.batch, batch)
    }
}

/// The batch model built from the order schema, exactly as `tofu/modules/ingestion_api/main.tf`
/// builds `local.batch_schema`: `{"orders": [order, ...]}` with 1 to `max_batch_orders` items;
/// the order's `definitions` move to the root so its `#/definitions/...` references resolve.
pub fn batch_schema(order_schema: &Value, max_batch_orders: usize) -> Value {
    let items: Map<String, Value> = order_schema
        .as_object()
        .into_iter()
        .flatten()
        .filter(|(key, _)| !matches!(key.as_str(), "$schema" | "definitions"))
        .map(|(key, value)| (key.clone(), value.clone()))
        .collect();
    serde_json::json!({
        "$schema": order_schema["$schema"],
        "title": "orderflow order batch",
        "type": "object",
        "required": ["orders"],
        "definitions": order_schema["definitions"],
        "properties": {
            "orders": {
                "type": "array",
                "minItems": 1,
                "maxItems": max_batch_orders,
                "items": items,
            }
        }
    })
}

fn messages(validator: &Validator, value: &Value) -> Vec<String> {
    validator
        .iter_errors(value)
        .map(|error| {
            let pointer = error.instance_path().as_str();
            let pointer = if pointer.is_empty() { "/" } else { pointer };
            format!("{pointer}: {}", error.masked())
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    const ORDER: &str = r#"{"customer_id": "user1", "order_id": "o1", "order_date": "2024-02-30T10:00:00Z",
      "status": "paid", "shipping_address": {"street": "s", "city": "c", "state": "t", "zip": "z", "country": "k"},
      "purchase_details": {"payment_type": "cash", "amount": 0.10, "currency": "EUR", "instalments": 1},
      "product_details": [{"product_id": "p", "name": "n", "quantity": 1, "item_details": {"color": "c", "size": "s"}}]}"#;

    #[test]
    fn the_schema_decides_not_the_rules() {
        let models = Models::new(500);
        let order: Value = serde_json::from_str(ORDER).unwrap();
        assert!(orderflow_domain::parse_order(ORDER.as_bytes()).is_err());
        assert_eq!(models.order_errors(&order), Vec::<String>::new());
    }

    #[test]
    fn errors_name_the_pointer_and_mask_the_value() {
        let models = Models::new(2);
        let mut order: Value = serde_json::from_str(ORDER).unwrap();
        order["status"] = "secret-status".into();
        let batch = serde_json::json!({"orders": [order.clone(), order.clone(), order]});
        let errors = models.batch_errors(&batch);
        assert!(
            errors.iter().any(|e| e.starts_with("/orders: ")),
            "{errors:?}"
        );
        assert_eq!(
            errors
                .iter()
                .filter(|e| e.starts_with("/orders/") && e.contains("/status: "))
                .count(),
            3,
            "{errors:?}"
        );
        assert!(errors.iter().all(|e| !e.contains("secret")), "{errors:?}");
    }
}
