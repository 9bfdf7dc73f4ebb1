//! Fake orders for load tests, the local twin and tests, fully reproducible from a seed (same
//! seed and `now`, same orders): lines drawn from a seeded [`Catalogue`] of products (stable
//! names and prices, some selling far more than others), amounts the exact sum of the lines in
//! the customer's currency's minor units (no cents in yen), each customer with a stable home
//! address (from the `fake` crate) and currency, unique order ids.
//!
//! [`OrderGenerator::invalid_order`] makes orders that break one stated rule each, to exercise the
//! error paths end to end.

use std::borrow::Cow;
use std::collections::HashMap;

use chrono::{DateTime, Duration, Utc};
use fake::Fake;
use fake::faker::address::en::{
    BuildingNumber, CityName, CountryName, StateName, StreetName, ZipCode,
};
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rust_decimal::Decimal;

use crate::catalogue::{CURRENCIES, Catalogue, Currency};
use crate::order::{
    Amount, ItemDetails, Order, PaymentType, ProductLine, PurchaseDetails, ShippingAddress, Status,
};

/// What to generate.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GeneratorConfig {
    /// Seed of the random stream.
    pub seed: u64,
    /// Size of the customer pool (`user00000` ...).
    pub customers: u32,
    /// `order_date` is spread uniformly over the `days` days before `now` (0: all at `now`).
    pub days: u32,
    /// The latest possible `order_date`.
    pub now: DateTime<Utc>,
}

impl GeneratorConfig {
    /// A config with a fixed clock, for benchmarks and tests that must see the same orders on
    /// every run: 10,000 customers, dates over the 30 days before 2024-06-08T12:00:00Z.
    pub fn fixed(seed: u64) -> Self {
        GeneratorConfig {
            seed,
            customers: 10_000,
            days: 30,
            now: DateTime::from_timestamp(1_717_848_000, 0).expect("a valid time"),
        }
    }
}

impl Default for GeneratorConfig {
    fn default() -> Self {
        GeneratorConfig {
            seed: 0,
            customers: 1_000,
            days: 30,
            now: Utc::now(),
        }
    }
}

/// A seeded stream of fake orders.
pub struct OrderGenerator {
    rng: StdRng,
    config: GeneratorConfig,
    counter: u64,
    /// Each customer ships to one address, made on first use.
    addresses: HashMap<u32, ShippingAddress<'static>>,
    catalogue: Catalogue,
}

/// One deliberately invalid order and the rule it breaks.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct InvalidSample {
    /// The encoded (invalid) order.
    pub body: Vec<u8>,
    /// The rule it breaks, e.g. `/purchase_details/amount: more than 2 decimal places`.
    pub reason: &'static str,
}

/// Colour names as shops spell them (the `fake` crate only makes colour codes).
const COLORS: [&str; 16] = [
    "Azure",
    "Black",
    "Crimson",
    "Ivory",
    "Navy",
    "Olive",
    "Teal",
    "White",
    "Charcoal",
    "Coral",
    "Mint",
    "Mustard",
    "Burgundy",
    "Sand",
    "Sky Blue",
    "Forest Green",
];
const SIZES: [&str; 8] = ["XS", "S", "M", "L", "XL", "XXL", "38", "42"];
/// Relative weights of the statuses, in [`Status::ALL`] order.
const STATUS_WEIGHTS: [u32; 7] = [20, 15, 20, 15, 22, 5, 3];

impl OrderGenerator {
    /// A generator; two with the same config produce the same orders.
    pub fn new(config: GeneratorConfig) -> Self {
        OrderGenerator {
            rng: StdRng::seed_from_u64(config.seed),
            catalogue: Catalogue::new(config.seed),
            config,
            counter: 0,
            addresses: HashMap::new(),
        }
    }

    /// The catalogue the orders' lines come from.
    pub fn catalogue(&self) -> &Catalogue {
        &self.catalogue
    }

    /// The next order id: unique within this generator (a bijection of the counter), and
    /// practically unique across seeds.
    fn next_order_id(&mut self) -> String {
        let n = self.counter;
        self.counter += 1;
        format!(
            "o{:016x}",
            mix64(n.wrapping_add(self.config.seed.wrapping_mul(0x9E37_79B9_7F4A_7C15)))
        )
    }

    /// The next valid order.
    pub fn next_order(&mut self) -> Order<'static> {
        let order_id = self.next_order_id();
        let customer = self.rng.random_range(0..self.config.customers.max(1));
        let rng = &mut self.rng;
        let span_micros = i64::from(self.config.days) * 86_400_000_000;
        let back = if span_micros > 0 {
            rng.random_range(0..span_micros)
        } else {
            0
        };
        let order_date = self.config.now - Duration::microseconds(back);

        let currency = customer_currency(self.config.seed, customer);
        let catalogue = &self.catalogue;
        let line_count = rng.random_range(1..=5usize);
        let mut total_minor_units: i64 = 0;
        let product_details = (0..line_count)
            .map(|_| {
                let product = catalogue.draw(rng);
                let quantity: u16 = rng.random_range(1..=5);
                total_minor_units += i64::from(quantity) * product.minor_units(currency);
                ProductLine {
                    product_id: Cow::Owned(product.id.clone()),
                    name: Cow::Owned(product.name.clone()),
                    quantity,
                    item_details: ItemDetails {
                        color: Cow::Borrowed(COLORS[rng.random_range(0..COLORS.len())]),
                        size: Cow::Borrowed(SIZES[rng.random_range(0..SIZES.len())]),
                    },
                }
            })
            .collect();

        let payment_type = PaymentType::ALL[rng.random_range(0..PaymentType::ALL.len())];
        let instalments = match payment_type {
            PaymentType::CreditCard => rng.random_range(1..=12),
            _ => 1,
        };
        let status = weighted_status(rng);
        let shipping_address = self
            .addresses
            .entry(customer)
            .or_insert_with(|| customer_address(self.config.seed, customer))
            .clone();
        Order {
            customer_id: Cow::Owned(format!("user{customer:05}")),
            order_id: Cow::Owned(order_id),
            order_date,
            status,
            shipping_address,
            purchase_details: PurchaseDetails {
                payment_type,
                amount: Amount::new(Decimal::new(total_minor_units, currency.decimals))
                    .expect("at most 25 units of the dearest product"),
                currency: Cow::Borrowed(currency.code),
                instalments,
            },
            product_details,
        }
    }

    /// The next deliberately invalid order: a valid one with exactly one rule broken, chosen
    /// in turn from a fixed list.
    pub fn invalid_order(&mut self) -> InvalidSample {
        let order = self.next_order();
        let mut json: serde_json::Value =
            serde_json::from_slice(&order.to_json()).expect("orders serialise to JSON");
        let kind = self.rng.random_range(0..6u32);
        let reason = match kind {
            0 => {
                json["purchase_details"]["amount"] = serde_json::json!(10.005);
                "/purchase_details/amount: more than 2 decimal places"
            }
            1 => {
                json["status"] = "lost".into();
                "/status: not one of the statuses"
            }
            2 => {
                json.as_object_mut().expect("object").remove("order_id");
                "/order_id: missing"
            }
            3 => {
                json["customer_id"] = "user with spaces".into();
                "/customer_id: characters outside A-Z a-z 0-9 _ . : -"
            }
            4 => {
                json["product_details"] = serde_json::json!([]);
                "/product_details: no lines"
            }
            _ => {
                json["order_date"] = "2024-06-08 18:05:03".into();
                "/order_date: not RFC 3339 with an offset"
            }
        };
        InvalidSample {
            body: serde_json::to_vec(&json).expect("serialises"),
            reason,
        }
    }
}

/// The currency a customer pays in: the same for a seed and customer.
fn customer_currency(seed: u64, customer: u32) -> &'static Currency {
    let pick = mix64(seed ^ (u64::from(customer) << 32 | 0xC0FF)) % CURRENCIES.len() as u64;
    &CURRENCIES[pick as usize]
}

/// The address of a customer: the same for a seed and customer, whatever order they come in.
fn customer_address(seed: u64, customer: u32) -> ShippingAddress<'static> {
    let rng = &mut StdRng::seed_from_u64(mix64(seed ^ (u64::from(customer) << 32 | 0xADD5)));
    let street = format!(
        "{} {}",
        BuildingNumber().fake_with_rng::<String, _>(rng),
        StreetName().fake_with_rng::<String, _>(rng)
    );
    ShippingAddress {
        street: Cow::Owned(street),
        city: Cow::Owned(CityName().fake_with_rng(rng)),
        state: Cow::Owned(StateName().fake_with_rng(rng)),
        zip: Cow::Owned(ZipCode().fake_with_rng(rng)),
        country: Cow::Owned(CountryName().fake_with_rng(rng)),
    }
}

fn weighted_status(rng: &mut StdRng) -> Status {
    let total: u32 = STATUS_WEIGHTS.iter().sum();
    let mut pick = rng.random_range(0..total);
    for (status, weight) in Status::ALL.iter().zip(STATUS_WEIGHTS) {
        if pick < weight {
            return *status;
        }
        pick -= weight;
    }
    Status::Pending
}

/// The SplitMix64 finaliser: a bijection on `u64` that scatters consecutive inputs.
fn mix64(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^ (z >> 31)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::parse::parse_order;
    use std::collections::HashSet;

    fn config(seed: u64) -> GeneratorConfig {
        GeneratorConfig {
            seed,
            customers: 50,
            days: 7,
            now: DateTime::parse_from_rfc3339("2024-06-08T12:00:00Z")
                .unwrap()
                .to_utc(),
        }
    }

    #[test]
    fn same_seed_same_orders_and_all_valid() {
        let mut a = OrderGenerator::new(config(7));
        let mut b = OrderGenerator::new(config(7));
        let mut ids = HashSet::new();
        for _ in 0..2_000 {
            let order = a.next_order();
            assert_eq!(order, b.next_order());
            let json = order.to_json();
            let parsed = parse_order(&json)
                .unwrap_or_else(|e| panic!("{e}: {}", String::from_utf8_lossy(&json)));
            assert_eq!(parsed, order);
            assert!(
                ids.insert(order.order_id.into_owned()),
                "order ids are unique"
            );
            assert!(order.order_date <= config(7).now);
            assert!(order.order_date > config(7).now - Duration::days(7));
        }
        assert_ne!(
            OrderGenerator::new(config(8)).next_order(),
            OrderGenerator::new(config(7)).next_order()
        );
    }

    /// Issue 14, item 5: orders look like a shop's. Each product id always has the same name;
    /// the amount is exactly the lines at the catalogue's prices in the order's currency (whole
    /// yen for JPY); a customer always pays in the same currency and ships to the same address.
    #[test]
    fn orders_come_from_the_catalogue_and_add_up() {
        let mut generator = OrderGenerator::new(config(11));
        let catalogue = generator.catalogue().clone();
        let mut names: HashMap<String, String> = HashMap::new();
        let mut customers: HashMap<String, (String, ShippingAddress<'static>)> = HashMap::new();
        let mut yen = 0;
        for _ in 0..2_000 {
            let order = generator.next_order();
            let currency = CURRENCIES
                .iter()
                .find(|c| c.code == order.purchase_details.currency)
                .unwrap();
            let mut total = Decimal::ZERO;
            for line in &order.product_details {
                let product = catalogue
                    .products()
                    .iter()
                    .find(|p| p.id == line.product_id)
                    .expect("a catalogue product");
                assert_eq!(line.name, product.name);
                let name = names
                    .entry(line.product_id.to_string())
                    .or_insert_with(|| line.name.to_string());
                assert_eq!(*name, line.name);
                total += product.price(currency) * Decimal::from(line.quantity);
            }
            assert_eq!(order.purchase_details.amount.value(), total);
            if currency.code == "JPY" {
                yen += 1;
                assert_eq!(total.fract(), Decimal::ZERO, "no cents in yen");
            }
            let seen = customers
                .entry(order.customer_id.to_string())
                .or_insert_with(|| (currency.code.to_owned(), order.shipping_address.clone()));
            assert_eq!(seen.0, currency.code);
            assert_eq!(seen.1, order.shipping_address);
        }
        assert!(yen > 0);
    }

    #[test]
    fn invalid_orders_are_rejected_for_their_stated_reason() {
        let mut generator = OrderGenerator::new(config(3));
        let mut reasons = HashSet::new();
        for _ in 0..200 {
            let sample = generator.invalid_order();
            let error = parse_order(&sample.body).expect_err(sample.reason);
            let field = sample.reason.split(':').next().unwrap();
            assert!(
                error.messages("").iter().any(|m| m.starts_with(field)),
                "{error} vs {}",
                sample.reason
            );
            reasons.insert(sample.reason);
        }
        assert_eq!(reasons.len(), 6);
    }
}
