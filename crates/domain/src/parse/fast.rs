//! A scanner for the common shape of an order: one JSON object with only the order's own fields,
//! each at most once, strings without escapes, integers as plain digits, objects and arrays where
//! the order has them. It builds the same lenient wire model as serde_json would for that text,
//! and gives up (`None`) on anything else, which serde_json then reads: escapes, unknown, legacy
//! or repeated fields, `null`, booleans, signed or fractional integers, other types in object
//! places, and malformed JSON, whose messages only serde_json produces. The parent module's tests
//! check on generated, invalid and mutated orders that both readers give the same result.

use std::borrow::Cow;

use super::{
    Json, Nested, NestedList, WireAddress, WireItemDetails, WireLine, WireOrder, WirePurchase,
};

/// A cursor over the input.
struct Scanner<'a> {
    text: &'a str,
    at: usize,
}

/// Gives up on the fast path.
macro_rules! need {
    ($condition:expr) => {
        if !$condition {
            return None;
        }
    };
}

impl<'a> Scanner<'a> {
    fn bytes(&self) -> &'a [u8] {
        self.text.as_bytes()
    }

    /// Skips JSON whitespace and returns the next byte without consuming it.
    fn peek(&mut self) -> Option<u8> {
        let bytes = self.bytes();
        while let Some(&b) = bytes.get(self.at) {
            if !matches!(b, b' ' | b'\n' | b'\r' | b'\t') {
                return Some(b);
            }
            self.at += 1;
        }
        None
    }

    /// Consumes `byte` after optional whitespace.
    fn eat(&mut self, byte: u8) -> Option<()> {
        need!(self.peek()? == byte);
        self.at += 1;
        Some(())
    }

    /// A string without escapes or control characters, after optional whitespace.
    fn string(&mut self) -> Option<&'a str> {
        // Compact JSON has the quote right at the cursor; only look for whitespace otherwise.
        if self.bytes().get(self.at) == Some(&b'"') {
            self.at += 1;
        } else {
            self.eat(b'"')?;
        }
        let start = self.at;
        let end = start + string_end(&self.bytes()[start..])?;
        need!(self.bytes()[end] == b'"');
        // A quote is ASCII, so `end` is a character boundary.
        let value = &self.text[start..end];
        self.at = end + 1;
        Some(value)
    }

    /// Whether the byte at the cursor ends a number (what may follow a value in an object or an
    /// array, or the end of the input).
    fn at_delimiter(&self) -> bool {
        matches!(
            self.bytes().get(self.at),
            None | Some(b' ' | b'\n' | b'\r' | b'\t' | b',' | b'}' | b']')
        )
    }

    /// An unsigned integer in plain digits that fits in `u64`, as serde_json reads it into
    /// `visit_u64`. Anything else (signs, fractions, exponents, leading zeros, overflow) gives up.
    fn unsigned(&mut self) -> Option<u64> {
        let bytes = self.bytes();
        let start = self.at;
        while bytes.get(self.at).is_some_and(u8::is_ascii_digit) {
            self.at += 1;
        }
        let digits = &self.text[start..self.at];
        need!(!digits.is_empty() && (digits == "0" || !digits.starts_with('0')));
        need!(self.at_delimiter());
        digits.parse().ok()
    }

    /// A number token in the JSON grammar, as its text (what serde_json's `RawValue` holds).
    fn number_text(&mut self) -> Option<&'a str> {
        let bytes = self.bytes();
        let start = self.at;
        let digits = |at: &mut usize| {
            let from = *at;
            while bytes.get(*at).is_some_and(u8::is_ascii_digit) {
                *at += 1;
            }
            *at - from
        };
        let mut at = self.at;
        if bytes.get(at) == Some(&b'-') {
            at += 1;
        }
        let int_start = at;
        let int_digits = digits(&mut at);
        need!(int_digits == 1 || (int_digits > 1 && bytes[int_start] != b'0'));
        if bytes.get(at) == Some(&b'.') {
            at += 1;
            need!(digits(&mut at) > 0);
        }
        if matches!(bytes.get(at), Some(b'e' | b'E')) {
            at += 1;
            if matches!(bytes.get(at), Some(b'+' | b'-')) {
                at += 1;
            }
            need!(digits(&mut at) > 0);
        }
        self.at = at;
        need!(self.at_delimiter());
        Some(&self.text[start..at])
    }

    /// A scalar field: a string or an unsigned integer; anything else gives up.
    fn scalar(&mut self) -> Option<Json<'a>> {
        match self.peek()? {
            b'"' => Some(Json::Str(Cow::Borrowed(self.string()?))),
            b'0'..=b'9' => Some(Json::Unsigned(self.unsigned()?)),
            _ => None,
        }
    }

    /// Consumes `"key":` when the input continues with exactly those bytes (compact JSON), and
    /// nothing otherwise.
    fn literal_key(&mut self, key: &str) -> bool {
        let key = key.as_bytes();
        let rest = &self.bytes()[self.at..];
        let found = rest.len() > key.len() + 2
            && rest[0] == b'"'
            && rest[key.len() + 1] == b'"'
            && rest[key.len() + 2] == b':'
            && equal_words(&rest[1..=key.len()], key);
        if found {
            self.at += key.len() + 3;
        }
        found
    }

    /// The members of an object whose only allowed keys are `keys`: calls `member` with each
    /// key's index in `keys` (the cursor then at its value), after the opening brace is consumed
    /// by the caller. A key outside `keys` or a repeated one gives up (serde rejects a repeated
    /// field). Writers usually put the keys in the order of `keys`, so the key expected next is
    /// compared as bytes first, and only a different one is read as a string and looked up.
    fn members<const N: usize>(
        &mut self,
        keys: &[&str; N],
        mut member: impl FnMut(&mut Self, usize) -> Option<()>,
    ) -> Option<()> {
        let mut seen = 0u32;
        if self.peek()? == b'}' {
            self.at += 1;
            return Some(());
        }
        let mut next = 0;
        loop {
            let index = match keys.get(next) {
                Some(key) if self.literal_key(key) => next,
                _ => {
                    let key = self.string()?;
                    self.eat(b':')?;
                    keys.iter().position(|known| *known == key)?
                }
            };
            let bit = 1 << index;
            need!(seen & bit == 0);
            seen |= bit;
            member(self, index)?;
            next = index + 1;
            match self.peek()? {
                b',' => self.at += 1,
                b'}' => {
                    self.at += 1;
                    return Some(());
                }
                _ => return None,
            }
        }
    }

    /// An object field read by `read`, or gives up if the value is not an object.
    fn object<T>(&mut self, read: impl FnOnce(&mut Self) -> Option<T>) -> Option<Nested<T>> {
        self.eat(b'{')?;
        read(self).map(Nested::Object)
    }

    fn address(&mut self) -> Option<WireAddress<'a>> {
        let mut address = WireAddress {
            street: Json::Missing,
            city: Json::Missing,
            state: Json::Missing,
            zip: Json::Missing,
            country: Json::Missing,
        };
        self.members(
            &["street", "city", "state", "zip", "country"],
            |s, index| {
                let slot = match index {
                    0 => &mut address.street,
                    1 => &mut address.city,
                    2 => &mut address.state,
                    3 => &mut address.zip,
                    _ => &mut address.country,
                };
                *slot = s.scalar()?;
                Some(())
            },
        )?;
        Some(address)
    }

    fn purchase(&mut self) -> Option<WirePurchase<'a>> {
        let mut purchase = WirePurchase {
            payment_type: Json::Missing,
            amount: None,
            currency: Json::Missing,
            instalments: Json::Missing,
        };
        let keys = ["payment_type", "amount", "currency", "instalments"];
        self.members(&keys, |s, index| {
            match index {
                0 => purchase.payment_type = s.scalar()?,
                1 => {
                    need!(matches!(s.peek()?, b'-' | b'0'..=b'9'));
                    purchase.amount = Some(s.number_text()?);
                }
                2 => purchase.currency = s.scalar()?,
                _ => purchase.instalments = s.scalar()?,
            }
            Some(())
        })?;
        Some(purchase)
    }

    fn item_details(&mut self) -> Option<WireItemDetails<'a>> {
        let mut details = WireItemDetails {
            color: Json::Missing,
            size: Json::Missing,
        };
        self.members(&["color", "size"], |s, index| {
            let slot = match index {
                0 => &mut details.color,
                _ => &mut details.size,
            };
            *slot = s.scalar()?;
            Some(())
        })?;
        Some(details)
    }

    fn line(&mut self) -> Option<WireLine<'a>> {
        let mut line = WireLine {
            product_id: Json::Missing,
            name: Json::Missing,
            quantity: Json::Missing,
            item_details: Nested::Missing,
        };
        let keys = ["product_id", "name", "quantity", "item_details"];
        self.members(&keys, |s, index| {
            match index {
                0 => line.product_id = s.scalar()?,
                1 => line.name = s.scalar()?,
                2 => line.quantity = s.scalar()?,
                _ => line.item_details = s.object(Self::item_details)?,
            }
            Some(())
        })?;
        Some(line)
    }

    fn lines(&mut self) -> Option<NestedList<WireLine<'a>>> {
        self.eat(b'[')?;
        let mut lines = Vec::with_capacity(4);
        if self.peek()? == b']' {
            self.at += 1;
            return Some(NestedList::Array(lines));
        }
        loop {
            lines.push(self.object(Self::line)?);
            match self.peek()? {
                b',' => self.at += 1,
                b']' => {
                    self.at += 1;
                    return Some(NestedList::Array(lines));
                }
                _ => return None,
            }
        }
    }

    fn order(&mut self) -> Option<WireOrder<'a>> {
        let mut order = WireOrder {
            customer_id: Json::Missing,
            order_id: Json::Missing,
            order_date: Json::Missing,
            status: Json::Missing,
            shipping_address: Nested::Missing,
            purchase_details: Nested::Missing,
            product_details: NestedList::Missing,
        };
        self.eat(b'{')?;
        let keys = [
            "customer_id",
            "order_id",
            "order_date",
            "status",
            "shipping_address",
            "purchase_details",
            "product_details",
        ];
        self.members(&keys, |s, index| {
            match index {
                0 => order.customer_id = s.scalar()?,
                1 => order.order_id = s.scalar()?,
                2 => order.order_date = s.scalar()?,
                3 => order.status = s.scalar()?,
                4 => order.shipping_address = s.object(Self::address)?,
                5 => order.purchase_details = s.object(Self::purchase)?,
                _ => order.product_details = s.lines()?,
            }
            Some(())
        })?;
        need!(self.peek().is_none());
        Some(order)
    }
}

/// The index of the first quote, backslash or control character (below 0x20) in `bytes`: where a
/// plain string ends, or where the fast path gives up. Eight bytes at a time: each test flags the
/// high bit of a matching byte, and a false flag (a borrow) can only sit above a true one, so the
/// lowest flag is the first match.
fn string_end(bytes: &[u8]) -> Option<usize> {
    const ONES: u64 = u64::from_le_bytes([1; 8]);
    const HIGHS: u64 = u64::from_le_bytes([0x80; 8]);
    /// The high bit of every zero byte of `word` (and maybe of bytes above one).
    const fn zero_bytes(word: u64) -> u64 {
        word.wrapping_sub(ONES) & !word & HIGHS
    }
    let mut chunks = bytes.chunks_exact(8);
    for (index, chunk) in chunks.by_ref().enumerate() {
        let word = u64::from_le_bytes(chunk.try_into().expect("eight bytes"));
        let found = zero_bytes(word ^ (ONES * u64::from(b'"')))
            | zero_bytes(word ^ (ONES * u64::from(b'\\')))
            | (word.wrapping_sub(ONES * 0x20) & !word & HIGHS);
        if found != 0 {
            return Some(index * 8 + (found.trailing_zeros() / 8) as usize);
        }
    }
    let rest = chunks.remainder();
    rest.iter()
        .position(|&b| b == b'"' || b == b'\\' || b < 0x20)
        .map(|at| bytes.len() - rest.len() + at)
}

/// `a == b` for two slices of the same length, compared four or eight bytes a step (the last
/// word overlapping the one before it) instead of by a call to `memcmp`: keys are short.
fn equal_words(a: &[u8], b: &[u8]) -> bool {
    debug_assert_eq!(a.len(), b.len());
    let n = a.len();
    let u32_at = |s: &[u8], at: usize| u32::from_le_bytes(s[at..at + 4].try_into().expect("4"));
    let u64_at = |s: &[u8], at: usize| u64::from_le_bytes(s[at..at + 8].try_into().expect("8"));
    match n {
        0..4 => a == b,
        4..8 => u32_at(a, 0) == u32_at(b, 0) && u32_at(a, n - 4) == u32_at(b, n - 4),
        _ => {
            let mut at = 0;
            while at + 8 < n {
                if u64_at(a, at) != u64_at(b, at) {
                    return false;
                }
                at += 8;
            }
            u64_at(a, n - 8) == u64_at(b, n - 8)
        }
    }
}

/// The wire model of `text` if it has the common shape (see the module documentation).
pub(super) fn scan_order(text: &str) -> Option<WireOrder<'_>> {
    Scanner { text, at: 0 }.order()
}

#[cfg(test)]
mod tests {
    use proptest::prelude::*;

    use super::super::parse_with;
    use crate::{GeneratorConfig, OrderGenerator};

    /// Both readers give the same order or the same errors for `bytes`.
    fn same(bytes: &[u8]) -> Result<(), TestCaseError> {
        prop_assert_eq!(
            parse_with(bytes, true),
            parse_with(bytes, false),
            "{}",
            String::from_utf8_lossy(bytes)
        );
        Ok(())
    }

    /// 50 valid and 50 invalid generated orders.
    static GENERATED: std::sync::LazyLock<Vec<Vec<u8>>> = std::sync::LazyLock::new(|| {
        let mut generator = OrderGenerator::new(GeneratorConfig::fixed(3));
        let mut orders: Vec<Vec<u8>> = (0..50).map(|_| generator.next_order().to_json()).collect();
        orders.extend((0..50).map(|_| generator.invalid_order().body));
        orders
    });

    proptest! {
        /// The eight-bytes-at-a-time search finds what a byte-by-byte one finds, wherever the
        /// match falls in a word, for ASCII and multi-byte text.
        #[test]
        fn string_end_finds_the_first_stop(text in "[a-z\"\\\\\\x00-\\x1f\\x7f-\\x{10ffff}]{0,40}") {
            let bytes = text.as_bytes();
            let naive = bytes.iter().position(|&b| b == b'"' || b == b'\\' || b < 0x20);
            prop_assert_eq!(super::string_end(bytes), naive);
        }
    }

    proptest! {
        /// The word-wise comparison agrees with `==` at every length a key can have, wherever
        /// the two slices differ.
        #[test]
        fn equal_words_is_slice_equality(
            a in prop::collection::vec(any::<u8>(), 0..40),
            flip in any::<prop::sample::Index>(),
            bit in 0u8..8,
            differ: bool,
        ) {
            let mut b = a.clone();
            if differ && !b.is_empty() {
                let at = flip.index(b.len());
                b[at] ^= 1 << bit;
            }
            prop_assert_eq!(super::equal_words(&a, &b), a == b);
        }
    }

    #[test]
    fn generated_orders_take_the_fast_path() {
        let mut generator = OrderGenerator::new(GeneratorConfig::fixed(4));
        for _ in 0..200 {
            let json = generator.next_order().to_json();
            let text = std::str::from_utf8(&json).unwrap();
            assert!(super::scan_order(text).is_some(), "{text}");
            same(&json).unwrap();
        }
    }

    #[test]
    fn hand_picked_shapes_read_alike() {
        let valid = r#"{"customer_id":"c1","order_id":"o1","order_date":"2024-06-08T18:05:03Z","status":"paid","shipping_address":{"street":"s","city":"c","state":"t","zip":"z","country":"k"},"purchase_details":{"payment_type":"cash","amount":42.5,"currency":"USD","instalments":3},"product_details":[{"product_id":"p","name":"n","quantity":2,"item_details":{"color":"c","size":"s"}}]}"#;
        let cases = [
            valid.to_owned(),
            format!(" \n\t{valid}\r\n "),
            valid.replace(':', " : ").replace(',', " , "),
            valid.replace("42.5", "-0"),
            valid.replace("42.5", "0"),
            valid.replace("42.5", "01"),
            valid.replace("42.5", "1e2"),
            valid.replace("42.5", "1E-2"),
            valid.replace("42.5", "1.e2"),
            valid.replace("42.5", "-"),
            valid.replace("42.5", "\"42.5\""),
            valid.replace("42.5", "null"),
            valid.replace("42.5", "42.5.1"),
            valid.replace("\"quantity\":2", "\"quantity\":2.0"),
            valid.replace("\"quantity\":2", "\"quantity\":-2"),
            valid.replace("\"quantity\":2", "\"quantity\":02"),
            valid.replace("\"quantity\":2", "\"quantity\":0"),
            valid.replace("\"quantity\":2", "\"quantity\":99999999999999999999"),
            valid.replace("\"quantity\":2", "\"quantity\":18446744073709551615"),
            valid.replace("\"quantity\":2", "\"quantity\":true"),
            valid.replace("\"quantity\":2", "\"quantity\":2x"),
            valid.replace("\"c1\"", "\"c\\u0031\""),
            valid.replace("\"c1\"", "\"c\\n1\""),
            valid.replace("\"c1\"", "\"c\u{1}1\""),
            valid.replace("\"c1\"", "\"ç1\""),
            valid.replace("\"c1\"", "\"\""),
            valid.replace("\"c1\"", "1"),
            valid.replace("\"c1\"", "{}"),
            valid.replace("\"order_id\"", "\"customer_id\""),
            valid.replace("\"zip\"", "\"zipx\""),
            valid.replace("\"city\"", "\"cit\""),
            valid.replace("\"city\"", "\"city \""),
            valid.replace("\"city\":", "\"city\" :"),
            valid.replace("\"state\"", "\"street\""),
            valid.replace("\"size\"", "\"color\""),
            valid.replace("\"order_id\":\"o1\",", ""),
            valid.replace("\"order_id\"", "\"other\""),
            valid.replace("\"purchase_details\"", "\"purchaise_details\""),
            valid.replace("{\"street\"", "[{\"street\"").replace("\"k\"}", "\"k\"}]"),
            valid.replace("\"size\":\"s\"", "\"size\":\"s\",\"size\":\"m\""),
            valid.replace("\"size\":\"s\"}", "\"size\":\"s\",}"),
            valid.replace("}}]", "}},]"),
            valid.replace("[{\"product_id\"", "[1,{\"product_id\""),
            valid.replace(
                "\"product_details\":[{\"product_id\":\"p\",\"name\":\"n\",\"quantity\":2,\"item_details\":{\"color\":\"c\",\"size\":\"s\"}}]",
                "\"product_details\":[]",
            ),
            format!("{valid}x"),
            format!("{valid}{{}}"),
            valid[..valid.len() - 1].to_owned(),
            "{}".to_owned(),
            "[]".to_owned(),
            "".to_owned(),
            "{\"customer_id\"}".to_owned(),
        ];
        for case in &cases {
            same(case.as_bytes()).unwrap();
        }
    }

    /// Keys in another order than the usual one, or repeated, are read as strings and looked up:
    /// still the fast path where every key is known and appears once.
    #[test]
    fn keys_in_any_order_read_alike() {
        let valid = r#"{"customer_id":"c1","order_id":"o1","order_date":"2024-06-08T18:05:03Z","status":"paid","shipping_address":{"street":"s","city":"c","state":"t","zip":"z","country":"k"},"purchase_details":{"payment_type":"cash","amount":42.5,"currency":"USD","instalments":3},"product_details":[{"product_id":"p","name":"n","quantity":2,"item_details":{"color":"c","size":"s"}}]}"#;
        let reordered = [
            valid.replace(
                r#""customer_id":"c1","order_id":"o1""#,
                r#""order_id":"o1","customer_id":"c1""#,
            ),
            valid.replace(r#""street":"s","city":"c""#, r#""city":"c","street":"s""#),
            valid.replace(
                r#""street":"s","city":"c","state":"t","zip":"z","country":"k""#,
                r#""country":"k","zip":"z","state":"t","city":"c","street":"s""#,
            ),
            valid.replace(
                r#""amount":42.5,"currency":"USD""#,
                r#""currency":"USD","amount":42.5"#,
            ),
            valid.replace(r#""color":"c","size":"s""#, r#""size":"s","color":"c""#),
            valid.replace(
                r#""quantity":2,"item_details":{"color":"c","size":"s"}"#,
                r#""item_details":{"color":"c","size":"s"},"quantity":2"#,
            ),
            valid.replace(r#""status":"paid","#, "").replace(
                r#""product_details""#,
                r#""status":"paid","product_details""#,
            ),
        ];
        for case in &reordered {
            assert_ne!(case, valid, "the edit happened");
            assert!(super::scan_order(case).is_some(), "{case}");
            same(case.as_bytes()).unwrap();
        }
        let repeated = [
            valid.replace(r#""city":"c""#, r#""city":"c","street":"s""#),
            valid.replace(r#""size":"s""#, r#""size":"s","size":"s""#),
            valid.replace(r#""order_id":"o1""#, r#""order_id":"o1","order_id":"o1""#),
        ];
        for case in &repeated {
            assert_ne!(case, valid, "the edit happened");
            assert!(super::scan_order(case).is_none(), "{case}");
            same(case.as_bytes()).unwrap();
        }
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(3_000))]

        /// Generated orders with a byte replaced, inserted or removed somewhere.
        #[test]
        fn mutated_orders_read_alike(
            which in 0usize..100,
            at in any::<prop::sample::Index>(),
            edit in 0u8..3,
            byte in prop::sample::select(b" \t\n{}[]:,\"\\-+.eE0123456789abnlutrsfx".to_vec()),
        ) {
            let mut bytes = GENERATED[which].clone();
            let at = at.index(bytes.len() + 1);
            match edit {
                0 if at < bytes.len() => bytes[at] = byte,
                1 => bytes.insert(at, byte),
                _ if at < bytes.len() => { bytes.remove(at); }
                _ => bytes.push(byte),
            }
            same(&bytes)?;
        }
    }
}
