//! Decoding and validating wire-format orders: the one rule set every part uses.
//!
//! [`parse_order`] reads the JSON once, leniently (every field is captured whatever its type),
//! then checks every rule of `docs/design.md` section 1 and reports *all* violations, each
//! naming the JSON pointer of the field and the rule it broke. Messages never contain the offending
//! value, so they are safe to log.

use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

use chrono::{DateTime, Utc};
use serde::Deserialize;
use serde::de::value::{MapAccessDeserializer, SeqAccessDeserializer};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, SeqAccess, Visitor};
use serde_json::value::RawValue;

mod fast;

use crate::order::{
    Amount, ItemDetails, Order, PaymentType, ProductLine, PurchaseDetails, ShippingAddress, Status,
};

/// The largest encoded order accepted, in bytes (256 KiB).
pub const MAX_ORDER_BYTES: usize = 256 * 1024;
/// The most order lines in one order.
pub const MAX_PRODUCT_LINES: usize = 100;

/// One broken rule: where (a JSON pointer) and what.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldError {
    /// JSON pointer of the field, relative to the order, e.g. `/product_details/2/quantity`.
    pub path: String,
    /// The rule, e.g. `must be an integer from 1 to 10000`.
    pub rule: String,
}

impl FieldError {
    /// The same error under a parent pointer, e.g. `/orders/3` in a batch request.
    pub fn under(&self, parent: &str) -> FieldError {
        FieldError {
            path: format!("{parent}{}", self.path),
            rule: self.rule.clone(),
        }
    }
}

impl fmt::Display for FieldError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let path = if self.path.is_empty() {
            "/"
        } else {
            &self.path
        };
        write!(f, "{path}: {}", self.rule)
    }
}

/// Why bytes are not a valid order.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidOrder {
    /// Over [`MAX_ORDER_BYTES`].
    #[error("order is {size} bytes, over the limit of {MAX_ORDER_BYTES} bytes")]
    TooLarge {
        /// Size of the input in bytes.
        size: usize,
    },
    /// Not JSON, or JSON that is not an object (the message has a position, never the input).
    #[error("not a JSON order: {0}")]
    Malformed(String),
    /// JSON that breaks one or more rules.
    #[error("{}", join_errors(.0))]
    Invalid(Vec<FieldError>),
}

impl InvalidOrder {
    /// Every problem as `pointer: rule` lines under `parent` (the root is `/`).
    pub fn messages(&self, parent: &str) -> Vec<String> {
        match self {
            InvalidOrder::Invalid(errors) => errors
                .iter()
                .map(|error| error.under(parent).to_string())
                .collect(),
            other => {
                let path = if parent.is_empty() { "/" } else { parent };
                vec![format!("{path}: {other}")]
            }
        }
    }

    /// A short, stable label for metrics and logs: `too_large`, `malformed` or `invalid`.
    pub fn kind(&self) -> &'static str {
        match self {
            InvalidOrder::TooLarge { .. } => "too_large",
            InvalidOrder::Malformed(_) => "malformed",
            InvalidOrder::Invalid(_) => "invalid",
        }
    }
}

fn join_errors(errors: &[FieldError]) -> String {
    errors
        .iter()
        .map(ToString::to_string)
        .collect::<Vec<_>>()
        .join("; ")
}

/// Decodes and validates one order from its JSON bytes.
///
/// Unknown fields are ignored; the legacy spelling `purchaise_details` is accepted.
pub fn parse_order(bytes: &[u8]) -> Result<Order<'_>, InvalidOrder> {
    parse_with(bytes, true)
}

/// [`parse_order`], with or without the fast scanner (the tests compare both).
fn parse_with(bytes: &[u8], scanner: bool) -> Result<Order<'_>, InvalidOrder> {
    if bytes.len() > MAX_ORDER_BYTES {
        return Err(InvalidOrder::TooLarge { size: bytes.len() });
    }
    // Validating UTF-8 once for the whole input is much cheaper than serde_json checking every
    // string on its own (`from_slice`); `from_str` then trusts it. simdutf8 checks 32 or 64 bytes
    // a step (AVX2, SSE 4.2 or NEON); only a refused input goes through the standard library's
    // check again, for the offset in the message.
    let text = simdutf8::basic::from_utf8(bytes).map_err(|_| {
        let valid_up_to = std::str::from_utf8(bytes).map_or_else(|e| e.valid_up_to(), str::len);
        InvalidOrder::Malformed(format!("not UTF-8: invalid byte at offset {valid_up_to}"))
    })?;
    // The common case, compact well-formed JSON of exactly the order's fields, is read by a
    // dedicated scanner; anything else (escapes, unknown or repeated fields, other JSON types,
    // malformed text) by serde_json. Both give the same wire model, checked by the same rules.
    let wire = match scanner.then(|| fast::scan_order(text)).flatten() {
        Some(order) => Nested::Object(order),
        None => serde_json::from_str(text)
            .map_err(|error| InvalidOrder::Malformed(error.to_string()))?,
    };
    let wire = match wire {
        Nested::Object(order) => order,
        Nested::Missing => unreachable!("a top-level value is never missing"),
        Nested::Wrong(kind) => {
            return Err(InvalidOrder::Invalid(vec![FieldError {
                path: String::new(),
                rule: format!("must be an object (found {kind})"),
            }]));
        }
    };
    let mut errors = Vec::new();
    let order = check_order(wire, &mut errors);
    match order {
        Some(order) if errors.is_empty() => Ok(order),
        _ => Err(InvalidOrder::Invalid(errors)),
    }
}

// ---------------------------------------------------------------------------------------------
// The lenient wire model: every field is captured with its JSON type, so validation can say what
// is wrong instead of stopping at the first type mismatch.

#[derive(Deserialize)]
struct WireOrder<'a> {
    #[serde(borrow, default)]
    customer_id: Json<'a>,
    #[serde(borrow, default)]
    order_id: Json<'a>,
    #[serde(borrow, default)]
    order_date: Json<'a>,
    #[serde(borrow, default)]
    status: Json<'a>,
    #[serde(borrow, default)]
    shipping_address: Nested<WireAddress<'a>>,
    #[serde(borrow, default, alias = "purchaise_details")]
    purchase_details: Nested<WirePurchase<'a>>,
    #[serde(borrow, default)]
    product_details: NestedList<WireLine<'a>>,
}

#[derive(Deserialize)]
struct WireAddress<'a> {
    #[serde(borrow, default)]
    street: Json<'a>,
    #[serde(borrow, default)]
    city: Json<'a>,
    #[serde(borrow, default)]
    state: Json<'a>,
    #[serde(borrow, default)]
    zip: Json<'a>,
    #[serde(borrow, default)]
    country: Json<'a>,
}

#[derive(Deserialize)]
struct WirePurchase<'a> {
    #[serde(borrow, default)]
    payment_type: Json<'a>,
    /// Kept as the raw JSON text so the amount never goes through `f64`.
    #[serde(borrow, default, deserialize_with = "raw_json")]
    amount: Option<&'a str>,
    #[serde(borrow, default)]
    currency: Json<'a>,
    #[serde(borrow, default)]
    instalments: Json<'a>,
}

#[derive(Deserialize)]
struct WireLine<'a> {
    #[serde(borrow, default)]
    product_id: Json<'a>,
    #[serde(borrow, default)]
    name: Json<'a>,
    #[serde(borrow, default)]
    quantity: Json<'a>,
    #[serde(borrow, default)]
    item_details: Nested<WireItemDetails<'a>>,
}

#[derive(Deserialize)]
struct WireItemDetails<'a> {
    #[serde(borrow, default)]
    color: Json<'a>,
    #[serde(borrow, default)]
    size: Json<'a>,
}

fn raw_json<'de, D: Deserializer<'de>>(deserializer: D) -> Result<Option<&'de str>, D::Error> {
    <&RawValue>::deserialize(deserializer).map(|raw| Some(raw.get()))
}

/// The JSON type of a value, for messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Null,
    Boolean,
    Number,
    String,
    Array,
    Object,
}

impl fmt::Display for Kind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Kind::Null => "null",
            Kind::Boolean => "boolean",
            Kind::Number => "number",
            Kind::String => "string",
            Kind::Array => "array",
            Kind::Object => "object",
        })
    }
}

/// A scalar field as found: its value if it is a string or integer, else only its type.
#[derive(Default)]
enum Json<'a> {
    #[default]
    Missing,
    Str(Cow<'a, str>),
    Unsigned(u64),
    /// A negative integer, or a number with a fraction or exponent.
    OtherNumber,
    Other(Kind),
}

impl<'de: 'a, 'a> Deserialize<'de> for Json<'a> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct JsonVisitor<'a>(PhantomData<&'a ()>);
        impl<'de: 'a, 'a> Visitor<'de> for JsonVisitor<'a> {
            type Value = Json<'a>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Json<'a>, E> {
                Ok(Json::Str(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Json<'a>, E> {
                Ok(Json::Str(Cow::Owned(v.to_owned())))
            }
            fn visit_string<E: de::Error>(self, v: String) -> Result<Json<'a>, E> {
                Ok(Json::Str(Cow::Owned(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Json<'a>, E> {
                Ok(Json::Unsigned(v))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Json<'a>, E> {
                Ok(u64::try_from(v).map_or(Json::OtherNumber, Json::Unsigned))
            }
            fn visit_f64<E: de::Error>(self, _: f64) -> Result<Json<'a>, E> {
                Ok(Json::OtherNumber)
            }
            fn visit_bool<E: de::Error>(self, _: bool) -> Result<Json<'a>, E> {
                Ok(Json::Other(Kind::Boolean))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Json<'a>, E> {
                Ok(Json::Other(Kind::Null))
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Json<'a>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Json::Other(Kind::Array))
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Json<'a>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(Json::Other(Kind::Object))
            }
        }
        deserializer.deserialize_any(JsonVisitor(PhantomData))
    }
}

/// An object field: the object decoded as `T`, or the type found instead.
#[derive(Default)]
enum Nested<T> {
    #[default]
    Missing,
    Object(T),
    Wrong(Kind),
}

/// An array-of-objects field.
#[derive(Default)]
enum NestedList<T> {
    #[default]
    Missing,
    Array(Vec<Nested<T>>),
    Wrong(Kind),
}

/// Implements the visitor methods that only record the type of a non-matching value.
macro_rules! wrong_kinds {
    ($wrong:expr) => {
        fn visit_bool<E: de::Error>(self, _: bool) -> Result<Self::Value, E> {
            Ok($wrong(Kind::Boolean))
        }
        fn visit_u64<E: de::Error>(self, _: u64) -> Result<Self::Value, E> {
            Ok($wrong(Kind::Number))
        }
        fn visit_i64<E: de::Error>(self, _: i64) -> Result<Self::Value, E> {
            Ok($wrong(Kind::Number))
        }
        fn visit_f64<E: de::Error>(self, _: f64) -> Result<Self::Value, E> {
            Ok($wrong(Kind::Number))
        }
        fn visit_str<E: de::Error>(self, _: &str) -> Result<Self::Value, E> {
            Ok($wrong(Kind::String))
        }
        fn visit_unit<E: de::Error>(self) -> Result<Self::Value, E> {
            Ok($wrong(Kind::Null))
        }
    };
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for Nested<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct NestedVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for NestedVisitor<T> {
            type Value = Nested<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_map<A: MapAccess<'de>>(self, map: A) -> Result<Nested<T>, A::Error> {
                T::deserialize(MapAccessDeserializer::new(map)).map(Nested::Object)
            }
            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Nested<T>, A::Error> {
                while seq.next_element::<IgnoredAny>()?.is_some() {}
                Ok(Nested::Wrong(Kind::Array))
            }
            wrong_kinds!(Nested::Wrong);
        }
        deserializer.deserialize_any(NestedVisitor(PhantomData))
    }
}

impl<'de, T: Deserialize<'de>> Deserialize<'de> for NestedList<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor<T>(PhantomData<T>);
        impl<'de, T: Deserialize<'de>> Visitor<'de> for ListVisitor<T> {
            type Value = NestedList<T>;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("any JSON value")
            }
            fn visit_seq<A: SeqAccess<'de>>(self, seq: A) -> Result<NestedList<T>, A::Error> {
                Vec::<Nested<T>>::deserialize(SeqAccessDeserializer::new(seq))
                    .map(NestedList::Array)
            }
            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<NestedList<T>, A::Error> {
                while map.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
                Ok(NestedList::Wrong(Kind::Object))
            }
            wrong_kinds!(NestedList::Wrong);
        }
        deserializer.deserialize_any(ListVisitor(PhantomData))
    }
}

// ---------------------------------------------------------------------------------------------
// The rules.

/// Collects errors; paths are only formatted when a rule fails.
struct Errors<'e>(&'e mut Vec<FieldError>);

impl Errors<'_> {
    fn push(&mut self, path: impl FnOnce() -> String, rule: impl Into<String>) {
        self.0.push(FieldError {
            path: path(),
            rule: rule.into(),
        });
    }
}

/// The message for a type mismatch.
fn found(json: &Json<'_>) -> String {
    match json {
        Json::Missing => "is required".to_owned(),
        Json::Str(_) => "string".to_owned(),
        Json::Unsigned(_) | Json::OtherNumber => "number".to_owned(),
        Json::Other(kind) => kind.to_string(),
    }
}

/// A string of `min..=max` characters, each accepted by `allowed`.
fn text<'a>(
    errors: &mut Errors<'_>,
    json: Json<'a>,
    path: impl FnOnce() -> String,
    max: usize,
    charset: Option<&Charset>,
) -> Option<Cow<'a, str>> {
    let rule = || match charset {
        Some(charset) => format!("must be 1 to {max} characters from {}", charset.description),
        None => format!("must be a string of 1 to {max} characters"),
    };
    match json {
        Json::Str(value) => {
            // A string of at most `max` bytes has at most `max` characters: count only longer ones.
            let length = if value.len() <= max {
                value.len()
            } else {
                value.chars().count()
            };
            // Every allowed character is ASCII, so checking bytes is checking characters: a
            // character outside ASCII has no ASCII byte.
            let chars_ok = charset.is_none_or(|charset| value.bytes().all(charset.allows));
            if (1..=max).contains(&length) && chars_ok {
                Some(value)
            } else {
                errors.push(path, rule());
                None
            }
        }
        Json::Missing => {
            errors.push(path, "is required");
            None
        }
        other => {
            errors.push(path, format!("{} (found {})", rule(), found(&other)));
            None
        }
    }
}

/// The characters a string field may hold (ASCII only), with how messages describe them.
struct Charset {
    allows: fn(u8) -> bool,
    description: &'static str,
}

/// Characters of `customer_id` and `order_id`.
const ID_CHARSET: Charset = Charset {
    allows: |b| b.is_ascii_alphanumeric() || matches!(b, b'_' | b'.' | b':' | b'-'),
    description: "A-Z a-z 0-9 _ . : -",
};

fn id<'a>(errors: &mut Errors<'_>, json: Json<'a>, path: &'static str) -> Option<Cow<'a, str>> {
    text(errors, json, || path.to_owned(), 128, Some(&ID_CHARSET))
}

/// An integer in `min..=max`.
fn integer(
    errors: &mut Errors<'_>,
    json: Json<'_>,
    path: impl FnOnce() -> String,
    min: u64,
    max: u64,
) -> Option<u64> {
    match json {
        Json::Unsigned(value) if (min..=max).contains(&value) => Some(value),
        Json::Missing => {
            errors.push(path, "is required");
            None
        }
        other => {
            let rule = format!("must be an integer from {min} to {max}");
            match other {
                Json::Unsigned(_) | Json::OtherNumber => errors.push(path, rule),
                other => errors.push(path, format!("{rule} (found {})", found(&other))),
            }
            None
        }
    }
}

/// One of a closed set of strings.
fn choice<T: std::str::FromStr>(
    errors: &mut Errors<'_>,
    json: Json<'_>,
    path: &'static str,
    choices: impl FnOnce() -> String,
) -> Option<T> {
    match json {
        Json::Str(value) => match value.parse() {
            Ok(parsed) => Some(parsed),
            Err(_) => {
                errors.push(|| path.to_owned(), format!("must be one of {}", choices()));
                None
            }
        },
        Json::Missing => {
            errors.push(|| path.to_owned(), "is required");
            None
        }
        other => {
            let rule = format!("must be one of {} (found {})", choices(), found(&other));
            errors.push(|| path.to_owned(), rule);
            None
        }
    }
}

/// The RFC 3339 shape the order date must have: `YYYY-MM-DDTHH:MM:SS[.fraction](Z|+hh:mm|-hh:mm)`,
/// upper-case `T` and `Z`, 1 to 9 fraction digits. The JSON Schema carries the same pattern.
fn is_rfc3339_with_offset(text: &str) -> bool {
    let b = text.as_bytes();
    let digits = |range: std::ops::Range<usize>| b[range].iter().all(u8::is_ascii_digit);
    if b.len() < 20 || !digits(0..4) || b[4] != b'-' || !digits(5..7) || b[7] != b'-' {
        return false;
    }
    if !digits(8..10) || b[10] != b'T' || !digits(11..13) || b[13] != b':' || !digits(14..16) {
        return false;
    }
    if b[16] != b':' || !digits(17..19) || b[17] > b'5' {
        return false;
    }
    let mut rest = &b[19..];
    if let Some(fraction) = rest.strip_prefix(b".") {
        let count = fraction.iter().take_while(|c| c.is_ascii_digit()).count();
        if !(1..=9).contains(&count) {
            return false;
        }
        rest = &fraction[count..];
    }
    match rest {
        [b'Z'] => true,
        [b'+' | b'-', h1, h2, b':', m1, m2] => {
            [h1, h2, m1, m2].iter().all(|c| c.is_ascii_digit())
                && (*h1 < b'2' || (*h1 == b'2' && *h2 <= b'3'))
                && *m1 <= b'5'
        }
        _ => false,
    }
}

/// The instant of a date-time that has [`is_rfc3339_with_offset`]'s shape, read digit by digit:
/// `None` where chrono's `DateTime::parse_from_rfc3339` refuses it (a month, day, hour or minute
/// out of range, or a day the month does not have), else the same instant (the tests compare
/// the two). chrono's parser costs about as much as the rest of an order's rules.
fn utc_of_rfc3339(text: &str) -> Option<DateTime<Utc>> {
    let b = text.as_bytes();
    let number = |range: std::ops::Range<usize>| {
        b[range]
            .iter()
            .fold(0u32, |value, digit| value * 10 + u32::from(digit - b'0'))
    };
    let date = chrono::NaiveDate::from_ymd_opt(
        i32::try_from(number(0..4)).ok()?,
        number(5..7),
        number(8..10),
    )?;
    let mut at = 19;
    let mut nanos = 0;
    if b[at] == b'.' {
        let digits = b[at + 1..]
            .iter()
            .take_while(|c| c.is_ascii_digit())
            .count();
        nanos = number(at + 1..at + 1 + digits) * 10u32.pow(9 - digits as u32);
        at += 1 + digits;
    }
    let local = date.and_hms_nano_opt(number(11..13), number(14..16), number(17..19), nanos)?;
    let offset_seconds = match b[at] {
        b'Z' => 0,
        sign => {
            let seconds = i64::from(number(at + 1..at + 3) * 3600 + number(at + 4..at + 6) * 60);
            if sign == b'-' { -seconds } else { seconds }
        }
    };
    local
        .checked_sub_signed(chrono::TimeDelta::seconds(offset_seconds))
        .map(|utc| utc.and_utc())
}

const DATE_RULE: &str = "must be an RFC 3339 date-time with an offset (Z or +hh:mm)";

fn order_date(errors: &mut Errors<'_>, json: Json<'_>) -> Option<DateTime<Utc>> {
    let path = || "/order_date".to_owned();
    match json {
        Json::Str(value) => {
            let parsed = is_rfc3339_with_offset(&value)
                .then(|| utc_of_rfc3339(&value))
                .flatten();
            match parsed {
                Some(date) => Some(date),
                None => {
                    errors.push(path, DATE_RULE);
                    None
                }
            }
        }
        Json::Missing => {
            errors.push(path, "is required");
            None
        }
        other => {
            errors.push(path, format!("{DATE_RULE} (found {})", found(&other)));
            None
        }
    }
}

fn object<T>(
    errors: &mut Errors<'_>,
    nested: Nested<T>,
    path: impl FnOnce() -> String,
) -> Option<T> {
    match nested {
        Nested::Object(value) => Some(value),
        Nested::Missing => {
            errors.push(path, "is required");
            None
        }
        Nested::Wrong(kind) => {
            errors.push(path, format!("must be an object (found {kind})"));
            None
        }
    }
}

fn check_order<'a>(wire: WireOrder<'a>, list: &mut Vec<FieldError>) -> Option<Order<'a>> {
    let mut errors = Errors(list);
    let errors = &mut errors;
    let customer_id = id(errors, wire.customer_id, "/customer_id");
    let order_id = id(errors, wire.order_id, "/order_id");
    let order_date = order_date(errors, wire.order_date);
    let status = choice::<Status>(errors, wire.status, "/status", Status::choices);
    let shipping_address = object(errors, wire.shipping_address, || "/shipping_address".into())
        .and_then(|address| check_address(errors, address));
    let purchase_details = object(errors, wire.purchase_details, || "/purchase_details".into())
        .and_then(|purchase| check_purchase(errors, purchase));
    let product_details = check_lines(errors, wire.product_details);
    Some(Order {
        customer_id: customer_id?,
        order_id: order_id?,
        order_date: order_date?,
        status: status?,
        shipping_address: shipping_address?,
        purchase_details: purchase_details?,
        product_details: product_details?,
    })
}

fn check_address<'a>(
    errors: &mut Errors<'_>,
    wire: WireAddress<'a>,
) -> Option<ShippingAddress<'a>> {
    let field = |name: &'static str| move || format!("/shipping_address/{name}");
    let street = text(errors, wire.street, field("street"), 256, None);
    let city = text(errors, wire.city, field("city"), 256, None);
    let state = text(errors, wire.state, field("state"), 256, None);
    let zip = text(errors, wire.zip, field("zip"), 16, None);
    let country = text(errors, wire.country, field("country"), 256, None);
    Some(ShippingAddress {
        street: street?,
        city: city?,
        state: state?,
        zip: zip?,
        country: country?,
    })
}

fn check_purchase<'a>(
    errors: &mut Errors<'_>,
    wire: WirePurchase<'a>,
) -> Option<PurchaseDetails<'a>> {
    let payment_type = choice::<PaymentType>(
        errors,
        wire.payment_type,
        "/purchase_details/payment_type",
        PaymentType::choices,
    );
    let amount_path = || "/purchase_details/amount".to_owned();
    let amount = match wire.amount {
        None => {
            errors.push(amount_path, "is required");
            None
        }
        Some(text) if text.starts_with(|c: char| c == '-' || c.is_ascii_digit()) => {
            match Amount::parse_json_number(text) {
                Ok(amount) => Some(amount),
                Err(error) => {
                    errors.push(amount_path, error.to_string());
                    None
                }
            }
        }
        Some(text) => {
            let kind = match text.as_bytes()[0] {
                b'"' => Kind::String,
                b'[' => Kind::Array,
                b'{' => Kind::Object,
                b'n' => Kind::Null,
                _ => Kind::Boolean,
            };
            errors.push(amount_path, format!("must be a number (found {kind})"));
            None
        }
    };
    let currency = match wire.currency {
        Json::Str(code) if code.len() == 3 && code.bytes().all(|b| b.is_ascii_uppercase()) => {
            Some(code)
        }
        Json::Missing => {
            errors.push(|| "/purchase_details/currency".into(), "is required");
            None
        }
        _ => {
            errors.push(
                || "/purchase_details/currency".into(),
                "must be three upper-case letters A-Z",
            );
            None
        }
    };
    let instalments = integer(
        errors,
        wire.instalments,
        || "/purchase_details/instalments".into(),
        1,
        60,
    );
    Some(PurchaseDetails {
        payment_type: payment_type?,
        amount: amount?,
        currency: currency?,
        instalments: u8::try_from(instalments?).ok()?,
    })
}

fn check_lines<'a>(
    errors: &mut Errors<'_>,
    wire: NestedList<WireLine<'a>>,
) -> Option<Vec<ProductLine<'a>>> {
    let path = || "/product_details".to_owned();
    let lines = match wire {
        NestedList::Array(lines) if (1..=MAX_PRODUCT_LINES).contains(&lines.len()) => lines,
        NestedList::Array(_) => {
            errors.push(path, format!("must have 1 to {MAX_PRODUCT_LINES} lines"));
            return None;
        }
        NestedList::Missing => {
            errors.push(path, "is required");
            return None;
        }
        NestedList::Wrong(kind) => {
            errors.push(path, format!("must be an array (found {kind})"));
            return None;
        }
    };
    let mut checked = Vec::with_capacity(lines.len());
    let mut all_ok = true;
    for (index, line) in lines.into_iter().enumerate() {
        let field = |name: &'static str| move || format!("/product_details/{index}/{name}");
        let Some(line) = object(errors, line, || format!("/product_details/{index}")) else {
            all_ok = false;
            continue;
        };
        let product_id = text(errors, line.product_id, field("product_id"), 128, None);
        let name = text(errors, line.name, field("name"), 256, None);
        let quantity = integer(errors, line.quantity, field("quantity"), 1, 10_000);
        let details =
            object(errors, line.item_details, field("item_details")).and_then(|details| {
                let item = |name: &'static str| {
                    move || format!("/product_details/{index}/item_details/{name}")
                };
                let color = text(errors, details.color, item("color"), 64, None);
                let size = text(errors, details.size, item("size"), 16, None);
                Some(ItemDetails {
                    color: color?,
                    size: size?,
                })
            });
        match (product_id, name, quantity, details) {
            (Some(product_id), Some(name), Some(quantity), Some(item_details)) => {
                checked.push(ProductLine {
                    product_id,
                    name,
                    quantity: u16::try_from(quantity).ok()?,
                    item_details,
                });
            }
            _ => all_ok = false,
        }
    }
    all_ok.then_some(checked)
}

#[cfg(test)]
mod tests {
    use super::*;

    use crate::fixtures::{SAMPLE_ORDER, with_field};

    fn errors_of(json: &str) -> Vec<String> {
        match parse_order(json.as_bytes()) {
            Ok(_) => vec![],
            Err(error) => error.messages(""),
        }
    }

    fn with(field: &str, value: &str) -> String {
        with_field(field, Some(serde_json::from_str(value).unwrap()))
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig::with_cases(20_000))]

        /// Date-times of the accepted shape, with digits anywhere in their ranges (months 00 to
        /// 19, days 00 to 39, hours 00 to 29, leap days, offsets up to 23:59 either way): the
        /// digit-by-digit reading gives what chrono's parser gives, instant and refusal alike.
        #[test]
        fn dates_read_digit_by_digit_are_chronos(
            text in "[0-9]{4}-[01][0-9]-[0-3][0-9]T[0-2][0-9]:[0-5][0-9]:[0-5][0-9](\\.[0-9]{1,9})?(Z|[+-]([01][0-9]|2[0-3]):[0-5][0-9])",
        ) {
            proptest::prop_assert!(is_rfc3339_with_offset(&text), "{}", text);
            let chrono = DateTime::parse_from_rfc3339(&text).ok().map(|date| date.to_utc());
            proptest::prop_assert_eq!(utc_of_rfc3339(&text), chrono, "{}", text);
        }
    }

    #[test]
    fn dates_at_the_edges_read_like_chrono() {
        for text in [
            "0000-01-01T00:00:00+23:59",
            "9999-12-31T23:59:59.999999999-23:59",
            "2024-02-29T12:00:00Z",
            "2023-02-29T12:00:00Z",
            "2100-02-29T12:00:00Z",
            "2000-02-29T12:00:00Z",
            "2024-04-31T00:00:00Z",
            "2024-12-31T24:00:00Z",
            "2024-13-01T00:00:00Z",
            "2024-00-10T00:00:00Z",
            "2024-06-00T00:00:00Z",
            "2024-06-08T18:05:03.4Z",
            "2024-06-08T18:05:03.000000001Z",
            "2024-06-08T18:05:03-00:00",
            "2024-06-08T00:30:00+01:00",
        ] {
            let chrono = DateTime::parse_from_rfc3339(text)
                .ok()
                .map(|date| date.to_utc());
            assert_eq!(utc_of_rfc3339(text), chrono, "{text}");
        }
    }

    #[test]
    fn bytes_that_are_not_utf8_are_malformed_at_their_offset() {
        let mut bytes = SAMPLE_ORDER.as_bytes().to_vec();
        let at = SAMPLE_ORDER.find("Lake").unwrap();
        bytes[at] = 0xff;
        assert_eq!(
            parse_order(&bytes).unwrap_err(),
            InvalidOrder::Malformed(format!("not UTF-8: invalid byte at offset {at}"))
        );
        // A multi-byte character cut short, at the very end.
        bytes.truncate(at);
        bytes.extend_from_slice(&[0xe2, 0x82]);
        assert_eq!(
            parse_order(&bytes).unwrap_err(),
            InvalidOrder::Malformed(format!("not UTF-8: invalid byte at offset {at}"))
        );
    }

    #[test]
    fn the_design_example_is_valid_and_borrows() {
        let order = parse_order(SAMPLE_ORDER.as_bytes()).unwrap();
        assert_eq!(order.customer_id, "user3542");
        assert!(matches!(order.customer_id, Cow::Borrowed(_)));
        assert_eq!(order.purchase_details.amount.to_fixed2(), "42.50");
        assert_eq!(order.product_details[0].item_details.size, "M");
        assert_eq!(
            crate::order::format_utc(&order.order_date),
            "2024-06-08T18:05:03.411937Z"
        );
    }

    #[test]
    fn order_date_is_normalised_to_utc() {
        let order = with("/order_date", r#""2024-06-08T23:30:00-02:00""#);
        let order = parse_order(order.as_bytes()).unwrap();
        assert_eq!(
            crate::order::format_utc(&order.order_date),
            "2024-06-09T01:30:00Z"
        );
    }

    #[test]
    fn legacy_spelling_is_accepted() {
        let legacy = SAMPLE_ORDER.replace("purchase_details", "purchaise_details");
        assert!(parse_order(legacy.as_bytes()).is_ok());
        let both = SAMPLE_ORDER.replace(
            r#""product_details""#,
            r#""purchaise_details": {}, "product_details""#,
        );
        assert!(errors_of(&both)[0].contains("duplicate field"));
    }

    #[test]
    fn ids_outside_ascii_are_refused() {
        for id in ["usé1", "u\u{0130}", "\u{ff21}", "ok\u{7f}"] {
            let json = with("/customer_id", &serde_json::to_string(id).unwrap());
            assert_eq!(
                errors_of(&json),
                vec!["/customer_id: must be 1 to 128 characters from A-Z a-z 0-9 _ . : -"],
                "{id}"
            );
        }
        let json = with("/order_id", "\"o-1_2.3:4\"");
        assert_eq!(errors_of(&json), Vec::<String>::new());
    }

    #[test]
    fn every_violation_is_named_by_path_and_rule() {
        let broken = r#"{"customer_id": "bad id!", "order_date": "2024-06-08 18:05:03",
            "status": "lost", "shipping_address": {"street": "", "city": 5, "state": "x",
            "zip": "12345678901234567", "country": "Peru"},
            "purchaise_details": {"payment_type": "cheque", "amount": 1.005, "currency": "usd",
            "instalments": 0},
            "product_details": [{"product_id": "p", "name": "n", "quantity": 2.5,
            "item_details": {"color": "red"}}, 7]}"#;
        assert_eq!(
            errors_of(broken),
            vec![
                "/customer_id: must be 1 to 128 characters from A-Z a-z 0-9 _ . : -",
                "/order_id: is required",
                "/order_date: must be an RFC 3339 date-time with an offset (Z or +hh:mm)",
                "/status: must be one of pending, confirmed, paid, shipped, delivered, cancelled, returned",
                "/shipping_address/street: must be a string of 1 to 256 characters",
                "/shipping_address/city: must be a string of 1 to 256 characters (found number)",
                "/shipping_address/zip: must be a string of 1 to 16 characters",
                "/purchase_details/payment_type: must be one of debit_card, credit_card, cash, coupon, wallet",
                "/purchase_details/amount: must have at most 2 decimal places",
                "/purchase_details/currency: must be three upper-case letters A-Z",
                "/purchase_details/instalments: must be an integer from 1 to 60",
                "/product_details/0/quantity: must be an integer from 1 to 10000",
                "/product_details/0/item_details/size: is required",
                "/product_details/1: must be an object (found number)",
            ]
        );
    }

    #[test]
    fn limits_are_inclusive() {
        assert!(errors_of(&with("/customer_id", &format!("\"{}\"", "a".repeat(128)))).is_empty());
        assert_eq!(
            errors_of(&with("/customer_id", &format!("\"{}\"", "a".repeat(129)))).len(),
            1
        );
        assert!(errors_of(&with("/purchase_details/amount", "9999999999.99")).is_empty());
        assert_eq!(
            errors_of(&with("/purchase_details/amount", "10000000000.00")),
            vec!["/purchase_details/amount: must be at most 9999999999.99"]
        );
        assert!(errors_of(&with("/purchase_details/instalments", "60")).is_empty());
        // Characters, not bytes: 16 two-byte characters are a valid zip.
        assert!(
            errors_of(&with(
                "/shipping_address/zip",
                &format!("\"{}\"", "é".repeat(16))
            ))
            .is_empty()
        );
    }

    #[test]
    fn non_objects_and_garbage_are_clear_errors() {
        assert_eq!(
            errors_of("[1,2]"),
            vec!["/: must be an object (found array)"]
        );
        assert!(
            errors_of("{")
                .first()
                .unwrap()
                .starts_with("/: not a JSON order: EOF")
        );
        assert!(
            errors_of("\u{0}")
                .first()
                .unwrap()
                .contains("not a JSON order")
        );
        let huge = format!("{{\"pad\": \"{}\"}}", "x".repeat(MAX_ORDER_BYTES));
        assert!(matches!(
            parse_order(huge.as_bytes()),
            Err(InvalidOrder::TooLarge { .. })
        ));
    }

    #[test]
    fn messages_never_echo_the_value() {
        let secret = with("/status", r#""s3cr3t-value""#);
        let secret = secret.replace("user3542", "s3cr3t id");
        for message in errors_of(&secret) {
            assert!(!message.contains("s3cr3t"), "{message}");
        }
    }

    #[test]
    fn rfc3339_shape() {
        for ok in [
            "2024-06-08T18:05:03Z",
            "2024-06-08T18:05:03.1+05:30",
            "2024-06-08T18:05:03.123456789-23:59",
        ] {
            assert!(is_rfc3339_with_offset(ok), "{ok}");
        }
        for bad in [
            "2024-06-08T18:05:03",
            "2024-06-08t18:05:03Z",
            "2024-06-08 18:05:03Z",
            "2024-06-08T18:05:60Z",
            "2024-06-08T18:05:03.Z",
            "2024-06-08T18:05:03.1234567890Z",
            "2024-06-08T18:05:03+24:00",
            "2024-06-08T18:05:03+0100",
        ] {
            assert!(!is_rfc3339_with_offset(bad), "{bad}");
        }
    }
}
