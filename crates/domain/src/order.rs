//! The validated order (wire format v1) and its parts.
//!
//! An [`Order`] only exists after it passed the one rule set in [`crate::parse`]: every value in it
//! is within the limits of `docs/design.md` section 1. String fields borrow from the input
//! where they can, so decoding a large batch allocates little.

use std::borrow::Cow;
use std::fmt;
use std::str::FromStr;

use chrono::{DateTime, SecondsFormat, Utc};
use rust_decimal::Decimal;
use serde::{Serialize, Serializer};

/// One customer order, validated.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Order<'a> {
    /// The customer, the DynamoDB partition key and the Kinesis partition key.
    pub customer_id: Cow<'a, str>,
    /// The order, unique per customer; the DynamoDB sort key.
    pub order_id: Cow<'a, str>,
    /// When the order was placed, normalised to UTC.
    #[serde(serialize_with = "serialize_utc")]
    pub order_date: DateTime<Utc>,
    /// Where the order is in its life cycle.
    pub status: Status,
    /// Where the order goes.
    pub shipping_address: ShippingAddress<'a>,
    /// How the order is paid.
    pub purchase_details: PurchaseDetails<'a>,
    /// The order lines, 1 to 100.
    pub product_details: Vec<ProductLine<'a>>,
}

impl Order<'_> {
    /// The order with every string owned, free of the input buffer's lifetime.
    pub fn into_owned(self) -> Order<'static> {
        Order {
            customer_id: owned(self.customer_id),
            order_id: owned(self.order_id),
            order_date: self.order_date,
            status: self.status,
            shipping_address: ShippingAddress {
                street: owned(self.shipping_address.street),
                city: owned(self.shipping_address.city),
                state: owned(self.shipping_address.state),
                zip: owned(self.shipping_address.zip),
                country: owned(self.shipping_address.country),
            },
            purchase_details: PurchaseDetails {
                payment_type: self.purchase_details.payment_type,
                amount: self.purchase_details.amount,
                currency: owned(self.purchase_details.currency),
                instalments: self.purchase_details.instalments,
            },
            product_details: self
                .product_details
                .into_iter()
                .map(|line| ProductLine {
                    product_id: owned(line.product_id),
                    name: owned(line.name),
                    quantity: line.quantity,
                    item_details: ItemDetails {
                        color: owned(line.item_details.color),
                        size: owned(line.item_details.size),
                    },
                })
                .collect(),
        }
    }

    /// The order encoded as wire-format JSON (the exact amount text, `order_date` in UTC).
    pub fn to_json(&self) -> Vec<u8> {
        let mut out = Vec::with_capacity(1024);
        serde_json::to_writer(&mut out, self).expect("an order always serialises");
        out
    }
}

fn owned(value: Cow<'_, str>) -> Cow<'static, str> {
    Cow::Owned(value.into_owned())
}

/// The shipping address; every part a non-empty string.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ShippingAddress<'a> {
    /// Street and number.
    pub street: Cow<'a, str>,
    /// City.
    pub city: Cow<'a, str>,
    /// State or region.
    pub state: Cow<'a, str>,
    /// Postal code, at most 16 characters.
    pub zip: Cow<'a, str>,
    /// Country name.
    pub country: Cow<'a, str>,
}

/// Payment of the order.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct PurchaseDetails<'a> {
    /// How it is paid.
    pub payment_type: PaymentType,
    /// The order value, exact to the cent.
    pub amount: Amount,
    /// ISO 4217 code: three upper-case letters.
    pub currency: Cow<'a, str>,
    /// Number of instalments, 1 to 60.
    pub instalments: u8,
}

/// One order line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ProductLine<'a> {
    /// The product.
    pub product_id: Cow<'a, str>,
    /// The product's name.
    pub name: Cow<'a, str>,
    /// How many, 1 to 10,000.
    pub quantity: u16,
    /// Variant of the product.
    pub item_details: ItemDetails<'a>,
}

/// The variant of a product in an order line.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ItemDetails<'a> {
    /// Colour, 1 to 64 characters.
    pub color: Cow<'a, str>,
    /// Size, 1 to 16 characters.
    pub size: Cow<'a, str>,
}

/// Defines a closed set of lower-case string values with parsing and display.
macro_rules! string_enum {
    ($(#[$meta:meta])* $name:ident { $($(#[$vmeta:meta])* $variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        pub enum $name { $($(#[$vmeta])* $variant),+ }

        impl $name {
            /// Every value, in the order `docs/design.md` section 1 lists them.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The wire spelling.
            pub const fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// The wire spellings joined with `", "`, for error messages.
            pub fn choices() -> String {
                Self::ALL.iter().map(|value| value.as_str()).collect::<Vec<_>>().join(", ")
            }
        }

        impl FromStr for $name {
            type Err = ();
            fn from_str(text: &str) -> Result<Self, ()> {
                match text { $($text => Ok($name::$variant),)+ _ => Err(()) }
            }
        }

        impl fmt::Display for $name {
            fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result { f.write_str(self.as_str()) }
        }

        impl Serialize for $name {
            fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
                serializer.serialize_str(self.as_str())
            }
        }
    };
}

string_enum! {
    /// The order's life-cycle state.
    Status {
        /// Placed, not yet confirmed.
        Pending => "pending",
        /// Accepted by the shop.
        Confirmed => "confirmed",
        /// Payment received.
        Paid => "paid",
        /// Handed to the carrier.
        Shipped => "shipped",
        /// Arrived.
        Delivered => "delivered",
        /// Cancelled before delivery.
        Cancelled => "cancelled",
        /// Sent back after delivery.
        Returned => "returned",
    }
}

string_enum! {
    /// How an order is paid.
    PaymentType {
        /// Debit card.
        DebitCard => "debit_card",
        /// Credit card.
        CreditCard => "credit_card",
        /// Cash on delivery.
        Cash => "cash",
        /// Voucher.
        Coupon => "coupon",
        /// Digital wallet.
        Wallet => "wallet",
    }
}

/// A money amount from 0 to 9,999,999,999.99 with at most two decimal places, kept exact.
///
/// It is never represented as a float: it is parsed from the JSON number's text and written back
/// as decimal text.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Amount(Decimal);

impl Amount {
    /// The largest amount accepted.
    pub const MAX: Decimal = Decimal::from_parts(3_567_587_327, 232, 0, false, 2); // 999_999_999_999e-2

    /// Checks an exact decimal against the amount rules.
    pub fn new(value: Decimal) -> Result<Self, AmountError> {
        let value = value.normalize();
        if value.is_sign_negative() && !value.is_zero() {
            return Err(AmountError::Negative);
        }
        if value > Self::MAX {
            return Err(AmountError::TooLarge);
        }
        if value.scale() > 2 {
            return Err(AmountError::TooPrecise);
        }
        // `-0` normalises to a zero that still prints its sign; store a plain zero.
        Ok(Self(if value.is_zero() {
            Decimal::ZERO
        } else {
            value
        }))
    }

    /// Parses a JSON number's text (plain or with an exponent) exactly.
    pub fn parse_json_number(text: &str) -> Result<Self, AmountError> {
        let parsed = if text.contains(['e', 'E']) {
            Decimal::from_scientific(text)
        } else {
            Decimal::from_str_exact(text)
        };
        match parsed {
            Ok(value) => Self::new(value),
            Err(rust_decimal::Error::Underflow) => Err(AmountError::TooPrecise),
            Err(_) if text.starts_with('-') => Err(AmountError::Negative),
            Err(_) => Err(AmountError::TooLarge),
        }
    }

    /// The exact value.
    pub fn value(self) -> Decimal {
        self.0
    }

    /// The amount with exactly two decimals, as in `decimal(12,2)` columns: `42.50`.
    pub fn to_fixed2(self) -> String {
        let mut value = self.0;
        value.rescale(2);
        value.to_string()
    }

    /// The amount in cents.
    pub fn cents(self) -> i64 {
        let mut value = self.0;
        value.rescale(2);
        i64::try_from(value.mantissa()).expect("at most 12 digits")
    }
}

impl fmt::Display for Amount {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(&self.0, f)
    }
}

impl Serialize for Amount {
    /// Writes the exact decimal as a JSON number (not a string, not through `f64`).
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        exact_number(&self.0.to_string()).serialize(serializer)
    }
}

/// A JSON number token with the given decimal text, written verbatim by serde_json.
pub(crate) fn exact_number(text: &str) -> Box<serde_json::value::RawValue> {
    serde_json::value::RawValue::from_string(text.to_owned())
        .expect("decimal text is a JSON number")
}

/// Why a number is not an [`Amount`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum AmountError {
    /// Below zero.
    #[error("must not be negative")]
    Negative,
    /// Above 9,999,999,999.99.
    #[error("must be at most 9999999999.99")]
    TooLarge,
    /// More than two decimal places (it would need rounding).
    #[error("must have at most 2 decimal places")]
    TooPrecise,
}

/// Serialises a UTC time as RFC 3339 with `Z` and only the fraction digits it needs.
pub(crate) fn serialize_utc<S: Serializer>(
    value: &DateTime<Utc>,
    serializer: S,
) -> Result<S::Ok, S::Error> {
    serializer.serialize_str(&format_utc(value))
}

/// RFC 3339 in UTC with `Z`, fraction digits as needed (0, 3, 6 or 9).
pub fn format_utc(value: &DateTime<Utc>) -> String {
    use std::fmt::Write as _;
    let mut text = crate::tables::hive_timestamp(value);
    // `yyyy-mm-dd hh:mm:ss[.fraction]` differs from RFC 3339 only in the separator and the zone.
    if text.len() >= 19 && text.as_bytes()[10] == b' ' {
        text.replace_range(10..11, "T");
        text.push('Z');
    } else {
        // Years beyond four digits: let chrono spell it.
        text.clear();
        let _ = write!(
            text,
            "{}",
            value.to_rfc3339_opts(SecondsFormat::AutoSi, true)
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn amount_keeps_exact_text_and_rejects_rounding() {
        assert_eq!(
            Amount::parse_json_number("42.5").unwrap().to_string(),
            "42.5"
        );
        assert_eq!(
            Amount::parse_json_number("42.50").unwrap().to_fixed2(),
            "42.50"
        );
        assert_eq!(
            Amount::parse_json_number("4.25e1").unwrap().to_fixed2(),
            "42.50"
        );
        assert_eq!(Amount::parse_json_number("0").unwrap().to_fixed2(), "0.00");
        assert_eq!(Amount::parse_json_number("-0").unwrap().to_string(), "0");
        assert_eq!(
            Amount::parse_json_number("9999999999.99").unwrap().cents(),
            999_999_999_999
        );
        assert_eq!(
            Amount::parse_json_number("1.001"),
            Err(AmountError::TooPrecise)
        );
        assert_eq!(
            Amount::parse_json_number("0.1000000000000000055511151231257827"),
            Err(AmountError::TooPrecise)
        );
        assert_eq!(
            Amount::parse_json_number("10000000000"),
            Err(AmountError::TooLarge)
        );
        assert_eq!(
            Amount::parse_json_number("1e400"),
            Err(AmountError::TooLarge)
        );
        assert_eq!(
            Amount::parse_json_number("-0.01"),
            Err(AmountError::Negative)
        );
        // Trailing zeros are not extra precision: 1.500 is exactly 1.5.
        assert_eq!(
            Amount::parse_json_number("1.500").unwrap().to_fixed2(),
            "1.50"
        );
    }

    #[test]
    fn amount_serialises_as_exact_json_number() {
        let amount = Amount::parse_json_number("1234567890.12").unwrap();
        assert_eq!(serde_json::to_string(&amount).unwrap(), "1234567890.12");
    }

    #[test]
    fn utc_format_is_chronos_rfc3339() {
        for text in [
            "2024-06-08T18:05:03Z",
            "2024-06-08T18:05:03.5Z",
            "2024-06-08T23:30:00.411937-02:00",
            "0001-01-01T00:00:00.000000001Z",
        ] {
            let time = DateTime::parse_from_rfc3339(text).unwrap().to_utc();
            assert_eq!(
                format_utc(&time),
                time.to_rfc3339_opts(SecondsFormat::AutoSi, true),
                "{text}"
            );
        }
    }

    #[test]
    fn enums_round_trip_their_spelling() {
        for status in Status::ALL {
            assert_eq!(status.as_str().parse::<Status>(), Ok(*status));
        }
        for payment in PaymentType::ALL {
            assert_eq!(payment.as_str().parse::<PaymentType>(), Ok(*payment));
        }
        assert!("Pending".parse::<Status>().is_err());
    }
}
