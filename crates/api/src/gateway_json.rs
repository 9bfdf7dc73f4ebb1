//! What API Gateway's `$input.json(...)` makes of a JSON value, as the batch route's mapping
//! template stores each order (`tofu/modules/ingestion_api/main.tf`, route `batch`).
//!
//! AWS documents `$input.json(x)` only as "evaluates a JSONPath expression and returns the results
//! as a JSON string" (API Gateway developer guide, "Variables for data transformations"): the value
//! is re-serialised, not copied, and the guide does not say how numbers are printed. The twin
//! therefore assumes the pessimistic reading of a Java JSON library that reads decimals as
//! `double`, and stores exactly this, so that any difference shows up locally:
//! - compact: no whitespace outside strings; members in their input order;
//! - integers (no fraction, no exponent) unchanged;
//! - every other number read as an IEEE-754 binary64 and printed like Java's `Double.toString`:
//!   the shortest digits that read back to the same double, plain decimal with at least one
//!   fractional digit for `1e-3 <= |x| < 1e7` (`42.50` -> `42.5`, `100.00` -> `100.0`), otherwise
//!   `d.dddE<exp>` (`12345678.90` -> `1.23456789E7`);
//! - strings re-escaped as JSON (same characters).
//!
//! For every valid order the values are unchanged: an amount has at most 12 significant digits,
//! which a binary64 round-trips, and the domain parser reads exponent forms exactly. Only an amount
//! spelled with more digits than a double holds (invalid anyway: more than two decimals) can be
//! rounded into a valid one on this route; `.ci/vtl/` renders the real templates with the same
//! rules.

/// `raw` (one valid JSON value) as API Gateway's `$input.json` returns it (see the module docs).
/// Returns `None` if `raw` is not valid JSON.
pub fn input_json(raw: &[u8]) -> Option<Vec<u8>> {
    let text = std::str::from_utf8(raw).ok()?;
    let mut out = String::with_capacity(text.len());
    let bytes = text.as_bytes();
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b' ' | b'\t' | b'\n' | b'\r' => i += 1,
            b'"' => {
                let end = string_end(bytes, i)?;
                let value: String = serde_json::from_str(&text[i..end]).ok()?;
                out.push_str(&serde_json::to_string(&value).ok()?);
                i = end;
            }
            b'-' | b'0'..=b'9' => {
                let end = i + bytes[i..]
                    .iter()
                    .position(|b| !matches!(b, b'-' | b'+' | b'.' | b'e' | b'E' | b'0'..=b'9'))
                    .unwrap_or(bytes.len() - i);
                out.push_str(&number(&text[i..end])?);
                i = end;
            }
            other => {
                out.push(other as char);
                i += 1;
            }
        }
    }
    // Only well-formed JSON goes in; make sure the result is too.
    serde_json::from_str::<serde::de::IgnoredAny>(&out).ok()?;
    Some(out.into_bytes())
}

/// The index just past the closing quote of the string starting at `start`.
fn string_end(bytes: &[u8], start: usize) -> Option<usize> {
    let mut i = start + 1;
    while i < bytes.len() {
        match bytes[i] {
            b'\\' => i += 2,
            b'"' => return Some(i + 1),
            _ => i += 1,
        }
    }
    None
}

/// One number token, printed as described in the module docs.
fn number(token: &str) -> Option<String> {
    if !token.contains(['.', 'e', 'E']) {
        return Some(token.to_owned());
    }
    let value: f64 = token.parse().ok()?;
    // `1e400` reads as infinity: not a JSON number any more, so the value is refused.
    value.is_finite().then(|| java_double_to_string(value))
}

/// Java's `Double.toString` for a finite double (shortest round-trip digits, JDK 19 and later).
pub fn java_double_to_string(value: f64) -> String {
    if value == 0.0 {
        return if value.is_sign_negative() {
            "-0.0"
        } else {
            "0.0"
        }
        .to_owned();
    }
    // Rust's `{:e}` prints the shortest round-trip digits: `-1.23456789e7`.
    let scientific = format!("{value:e}");
    let (mantissa, exponent) = scientific.split_once('e').expect("`{:e}` has an exponent");
    let exponent: i32 = exponent.parse().expect("an integer exponent");
    let (sign, mantissa) = match mantissa.strip_prefix('-') {
        Some(rest) => ("-", rest),
        None => ("", mantissa),
    };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    let magnitude = value.abs();
    if (1e-3..1e7).contains(&magnitude) {
        let point = exponent + 1; // digits before the decimal point
        let (whole, fraction) = if point <= 0 {
            (
                "0".to_owned(),
                format!("{}{digits}", "0".repeat((-point) as usize)),
            )
        } else if point as usize >= digits.len() {
            (
                format!("{digits}{}", "0".repeat(point as usize - digits.len())),
                String::new(),
            )
        } else {
            (
                digits[..point as usize].to_owned(),
                digits[point as usize..].to_owned(),
            )
        };
        let fraction = if fraction.is_empty() {
            "0".to_owned()
        } else {
            fraction
        };
        format!("{sign}{whole}.{fraction}")
    } else {
        let (first, rest) = digits.split_at(1);
        let rest = if rest.is_empty() { "0" } else { rest };
        format!("{sign}{first}.{rest}E{exponent}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn numbers_print_like_java_double_to_string() {
        for (input, java) in [
            (42.5, "42.5"),
            (0.1, "0.1"),
            (100.0, "100.0"),
            (0.001, "0.001"),
            (0.0001, "1.0E-4"),
            (1e7, "1.0E7"),
            (12345678.9, "1.23456789E7"),
            (9999999999.99, "9.99999999999E9"),
            (9999999.99, "9999999.99"),
            (-3.25, "-3.25"),
            (0.0, "0.0"),
        ] {
            assert_eq!(java_double_to_string(input), java, "{input}");
        }
    }

    #[test]
    fn out_of_range_numbers_are_refused_not_printed() {
        assert_eq!(input_json(b"1e400"), None);
        assert_eq!(input_json(br#"{"a":-1E999}"#), None);
        assert_eq!(input_json(b"1e-400").as_deref(), Some(&b"0.0"[..]));
    }

    #[test]
    fn input_json_is_compact_and_rewrites_only_non_integers() {
        let raw = br#"{ "a" : 42.50, "b": [1, 2 ,3], "c": "x \"y\" / \u00e9 z", "d": 12345678.90,
            "e": 7, "f": -0.10, "g": 1E2, "h": true, "i": null }"#;
        let out = String::from_utf8(input_json(raw).unwrap()).unwrap();
        assert_eq!(
            out,
            r#"{"a":42.5,"b":[1,2,3],"c":"x \"y\" / é z","d":1.23456789E7,"e":7,"f":-0.1,"g":100.0,"h":true,"i":null}"#
        );
    }

    #[test]
    fn every_valid_amount_keeps_its_value() {
        use orderflow_domain::Amount;
        for text in [
            "0",
            "0.00",
            "0.01",
            "0.10",
            "1.99",
            "42.50",
            "1000000.00",
            "9999999.99",
            "10000000",
            "12345678.90",
            "123456789.12",
            "9999999999.99",
        ] {
            let exact = Amount::parse_json_number(text).unwrap();
            let through_gateway = number(text).unwrap();
            assert_eq!(
                Amount::parse_json_number(&through_gateway).unwrap(),
                exact,
                "{text} -> {through_gateway}"
            );
        }
    }

    #[test]
    fn invalid_json_is_refused() {
        assert!(input_json(b"{\"a\": ").is_none());
        assert!(input_json(b"\xff").is_none());
    }
}
