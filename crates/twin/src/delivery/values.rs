//! JSON values read for Parquet conversion: one line's object entries (keys decoded, values as
//! raw JSON text) and each value read exactly for its column type (the rules are in
//! [`super::conversion`]'s documentation).

use std::borrow::Cow;
use std::fmt;

use chrono::{Datelike, NaiveDate, NaiveDateTime, Timelike};
use serde::de::{self, DeserializeSeed, Deserializer, MapAccess, Visitor};
use serde_json::value::RawValue;

use super::conversion::{ConversionError, JsonKind, Mismatch};

/// Parses one line as a JSON object into `entries`: decoded keys, values as raw JSON text.
pub(super) fn read_object<'r>(
    line: &'r [u8],
    line_number: usize,
    entries: &mut Vec<(Cow<'r, str>, &'r RawValue)>,
) -> Result<(), ConversionError> {
    entries.clear();
    let mut deserializer = serde_json::Deserializer::from_slice(line);
    Entries(entries)
        .deserialize(&mut deserializer)
        .and_then(|()| deserializer.end())
        .map_err(|error| match error.classify() {
            // The line starts with a JSON value of another kind.
            serde_json::error::Category::Data => ConversionError::NotAnObject { line: line_number },
            _ => ConversionError::NotJson {
                line: line_number,
                at: error.column(),
            },
        })
}

/// Collects a JSON object's entries.
struct Entries<'v, 'de>(&'v mut Vec<(Cow<'de, str>, &'de RawValue)>);

impl<'de> DeserializeSeed<'de> for Entries<'_, 'de> {
    type Value = ();

    fn deserialize<D: Deserializer<'de>>(self, deserializer: D) -> Result<(), D::Error> {
        deserializer.deserialize_map(self)
    }
}

impl<'de> Visitor<'de> for Entries<'_, 'de> {
    type Value = ();

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<(), A::Error> {
        while let Some(Text(key)) = map.next_key()? {
            let value: &'de RawValue = map.next_value()?;
            self.0.push((key, value));
        }
        Ok(())
    }
}

/// A decoded JSON string, borrowed from the input when it has no escapes.
struct Text<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Text<'de> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_str(TextVisitor)
    }
}

struct TextVisitor;

impl<'de> Visitor<'de> for TextVisitor {
    type Value = Text<'de>;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a JSON string")
    }

    fn visit_borrowed_str<E: de::Error>(self, text: &'de str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Borrowed(text)))
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(text.to_owned())))
    }

    fn visit_string<E: de::Error>(self, text: String) -> Result<Text<'de>, E> {
        Ok(Text(Cow::Owned(text)))
    }
}

/// The kind of a raw JSON value (already validated by serde_json); `None` for `null`.
pub(super) fn kind(raw: &str) -> Option<JsonKind> {
    match raw.as_bytes().first() {
        Some(b'n') => None,
        Some(b'"') => Some(JsonKind::String),
        Some(b't' | b'f') => Some(JsonKind::Bool),
        Some(b'[') => Some(JsonKind::Array),
        Some(b'{') => Some(JsonKind::Object),
        _ => Some(JsonKind::Number),
    }
}

/// A raw JSON string value, decoded; `None` for `null`.
///
/// serde_json checks a raw value's escapes only for their form (`\u` and four hex digits), not
/// whether they make Unicode text, so decoding can still fail: a lone surrogate.
pub(super) fn json_string(raw: &str) -> Result<Option<Cow<'_, str>>, Mismatch> {
    match kind(raw) {
        None => Ok(None),
        Some(JsonKind::String) => {
            let Text(text) = serde_json::from_str(raw).map_err(|_| Mismatch::NotUnicode)?;
            Ok(Some(text))
        }
        Some(other) => Err(Mismatch::WrongKind(other)),
    }
}

/// A raw JSON value for an `int`; `None` for `null`.
pub(super) fn int(raw: &str) -> Result<Option<i32>, Mismatch> {
    match kind(raw) {
        None => Ok(None),
        Some(JsonKind::Number) if raw.contains(['.', 'e', 'E']) => Err(Mismatch::NotAnInteger),
        // The JSON grammar leaves only an optional `-` and digits: a parse error is an overflow.
        Some(JsonKind::Number) => raw.parse().map(Some).map_err(|_| Mismatch::OutOfRange),
        Some(other) => Err(Mismatch::WrongKind(other)),
    }
}

/// Days from 0001-01-01 (day 1) to 1970-01-01, as chrono's `num_days_from_ce` counts.
pub(super) const UNIX_EPOCH_DAYS_FROM_CE: i32 = 719_163;

/// A `yyyy-mm-dd` date as days since 1970-01-01 (the rule of [`ColumnType::accepts`]).
pub(super) fn date_days(text: &str) -> Result<i32, Mismatch> {
    if text.len() != 10 {
        return Err(Mismatch::BadDate);
    }
    let date = NaiveDate::parse_from_str(text, "%Y-%m-%d").map_err(|_| Mismatch::BadDate)?;
    Ok(date.num_days_from_ce() - UNIX_EPOCH_DAYS_FROM_CE)
}

/// A `yyyy-mm-dd hh:mm:ss[.fraction]` timestamp as microseconds since 1970-01-01 00:00:00 (the
/// rule of [`ColumnType::accepts`], plus at most 9 fraction digits and none finer than
/// microseconds).
pub(super) fn timestamp_micros(text: &str) -> Result<i64, Mismatch> {
    let time = NaiveDateTime::parse_from_str(text, "%Y-%m-%d %H:%M:%S%.f")
        .map_err(|_| Mismatch::BadTimestamp)?;
    if text
        .rsplit_once('.')
        .is_some_and(|(_, fraction)| fraction.len() > 9)
    {
        return Err(Mismatch::BadTimestamp);
    }
    if time.nanosecond() % 1_000 != 0 {
        return Err(Mismatch::SubMicrosecond);
    }
    Ok(time.and_utc().timestamp_micros())
}

/// The exact value of a JSON number literal times 10^scale, if it fits `decimal(precision, scale)`
/// without rounding.
pub(super) fn decimal_unscaled(text: &str, precision: u8, scale: u8) -> Result<i128, Mismatch> {
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text),
    };
    let (mantissa, exponent) = unsigned.split_once(['e', 'E']).unwrap_or((unsigned, ""));
    let exponent: i64 = match exponent.as_bytes().first().copied() {
        None => 0,
        Some(sign) => {
            let (negative_exponent, digits) = match sign {
                b'-' => (true, &exponent[1..]),
                b'+' => (false, &exponent[1..]),
                _ => (false, exponent),
            };
            // Only digits are left: a parse error is an overflow. Saturate far beyond any
            // precision (and any line length), keeping the arithmetic below in range.
            let magnitude = digits
                .parse::<i64>()
                .unwrap_or(i64::MAX)
                .min(i64::from(u32::MAX));
            if negative_exponent {
                -magnitude
            } else {
                magnitude
            }
        }
    };
    let (integer, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    let digits = || integer.bytes().chain(fraction.bytes());
    let total = integer.len() + fraction.len();
    let leading = digits().take_while(|&digit| digit == b'0').count();
    if leading == total {
        return Ok(0);
    }
    let trailing = digits().rev().take_while(|&digit| digit == b'0').count();
    let significant = total - leading - trailing;
    // The value is the significant digits times 10^power.
    let power = exponent - fraction.len() as i64 + trailing as i64;
    let scale = i64::from(scale);
    if power < -scale {
        return Err(Mismatch::TooManyFractionDigits);
    }
    // Digits of the value at the column's scale; only integer digits can make it exceed the
    // precision, fraction digits being at most `scale` now.
    let shift = power + scale;
    if significant as i64 + shift > i64::from(precision) {
        return Err(Mismatch::TooManyIntegerDigits);
    }
    let mut unscaled: i128 = 0;
    for digit in digits().skip(leading).take(significant) {
        unscaled = unscaled
            .checked_mul(10)
            .and_then(|value| value.checked_add(i128::from(digit - b'0')))
            .ok_or(Mismatch::TooManyIntegerDigits)?;
    }
    for _ in 0..shift {
        unscaled = unscaled
            .checked_mul(10)
            .ok_or(Mismatch::TooManyIntegerDigits)?;
    }
    Ok(if negative { -unscaled } else { unscaled })
}
