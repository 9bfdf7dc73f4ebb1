//! The shop the fake orders come from: a seeded catalogue of products, each with a stable id,
//! name, category and a unit price per currency, in the currency's minor units (cents, or whole
//! yen). Some products sell much more than others, so the demo's queries have best sellers.

use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use rust_decimal::Decimal;

/// A currency the generator sells in: its code, its minor units per major unit as a power of
/// ten, and how many of its minor units one US cent is worth (a fixed, illustrative rate).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Currency {
    /// ISO 4217 code.
    pub code: &'static str,
    /// Decimal places of its minor unit (2 for cents, 0 for yen).
    pub decimals: u32,
    /// Minor units per US cent.
    per_us_cent: f64,
}

/// The currencies orders are paid in.
pub const CURRENCIES: [Currency; 5] = [
    Currency {
        code: "USD",
        decimals: 2,
        per_us_cent: 1.0,
    },
    Currency {
        code: "EUR",
        decimals: 2,
        per_us_cent: 0.92,
    },
    Currency {
        code: "GBP",
        decimals: 2,
        per_us_cent: 0.79,
    },
    Currency {
        code: "BRL",
        decimals: 2,
        per_us_cent: 5.4,
    },
    Currency {
        code: "JPY",
        decimals: 0,
        per_us_cent: 1.55,
    },
];

/// A category, the things it sells and their price range in US cents.
struct Category {
    name: &'static str,
    things: &'static [&'static str],
    cents: (i64, i64),
}

const CATEGORIES: [Category; 8] = [
    Category {
        name: "Apparel",
        things: &["Shirt", "Jacket", "Hoodie", "Dress", "Scarf", "Chinos"],
        cents: (1_500, 12_000),
    },
    Category {
        name: "Footwear",
        things: &["Sneakers", "Boots", "Sandals", "Loafers", "Slippers"],
        cents: (3_000, 18_000),
    },
    Category {
        name: "Home",
        things: &["Lamp", "Cushion", "Rug", "Vase", "Blanket", "Clock"],
        cents: (1_000, 25_000),
    },
    Category {
        name: "Kitchen",
        things: &[
            "Mug",
            "Kettle",
            "Skillet",
            "Knife Set",
            "Teapot",
            "Cutting Board",
        ],
        cents: (800, 15_000),
    },
    Category {
        name: "Outdoor",
        things: &["Tent", "Backpack", "Water Bottle", "Hammock", "Headlamp"],
        cents: (1_500, 40_000),
    },
    Category {
        name: "Electronics",
        things: &[
            "Headphones",
            "Speaker",
            "Charger",
            "Keyboard",
            "Mouse",
            "Webcam",
        ],
        cents: (1_500, 50_000),
    },
    Category {
        name: "Beauty",
        things: &["Face Cream", "Shampoo", "Perfume", "Lip Balm", "Sunscreen"],
        cents: (500, 8_000),
    },
    Category {
        name: "Toys",
        things: &["Puzzle", "Kite", "Robot Kit", "Board Game", "Plush Bear"],
        cents: (700, 9_000),
    },
];

const STYLES: [&str; 12] = [
    "Classic", "Urban", "Cozy", "Compact", "Deluxe", "Everyday", "Vintage", "Smart", "Eco",
    "Premium", "Travel", "Mini",
];

/// One product.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Product {
    /// `p00042`.
    pub id: String,
    /// `Cozy Blanket`.
    pub name: String,
    /// `Home`.
    pub category: &'static str,
    /// Unit price in US cents; other currencies at [`Currency`]'s rate, see [`Product::price`].
    pub us_cents: i64,
}

impl Product {
    /// The unit price in `currency`'s minor units (at least one).
    pub fn minor_units(&self, currency: &Currency) -> i64 {
        ((self.us_cents as f64 * currency.per_us_cent).round() as i64).max(1)
    }

    /// The unit price in `currency`, with its decimal places (`12.34`, or `1913` yen).
    pub fn price(&self, currency: &Currency) -> Decimal {
        Decimal::new(self.minor_units(currency), currency.decimals)
    }
}

/// The catalogue: the same products for the same seed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Catalogue {
    products: Vec<Product>,
}

impl Catalogue {
    /// Products in a catalogue.
    pub const SIZE: usize = 400;

    /// The catalogue of `seed`.
    pub fn new(seed: u64) -> Self {
        let rng = &mut StdRng::seed_from_u64(seed ^ 0xCA7A_1060);
        let products = (0..Self::SIZE)
            .map(|index| {
                let category = &CATEGORIES[rng.random_range(0..CATEGORIES.len())];
                let thing = category.things[rng.random_range(0..category.things.len())];
                let style = STYLES[rng.random_range(0..STYLES.len())];
                // Prices end in .99 (or a whole number of yen), as shops price them.
                let dollars = rng.random_range(category.cents.0 / 100..=category.cents.1 / 100);
                Product {
                    id: format!("p{index:05}"),
                    name: format!("{style} {thing}"),
                    category: category.name,
                    us_cents: dollars * 100 + 99,
                }
            })
            .collect();
        Catalogue { products }
    }

    /// Every product, by id.
    pub fn products(&self) -> &[Product] {
        &self.products
    }

    /// A product drawn with a skew: the first products of the catalogue sell far more than the
    /// last (the chance of product `i` falls like `1 / sqrt(i)`), so there are best sellers.
    pub fn draw(&self, rng: &mut StdRng) -> &Product {
        let u: f64 = rng.random_range(0.0..1.0);
        let index = ((u * u) * self.products.len() as f64) as usize;
        &self.products[index.min(self.products.len() - 1)]
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn the_same_seed_makes_the_same_catalogue_with_stable_names_and_prices() {
        let catalogue = Catalogue::new(7);
        assert_eq!(catalogue, Catalogue::new(7));
        assert_ne!(catalogue, Catalogue::new(8));
        assert_eq!(catalogue.products().len(), Catalogue::SIZE);
        for (index, product) in catalogue.products().iter().enumerate() {
            assert_eq!(product.id, format!("p{index:05}"));
            assert_eq!(product.us_cents % 100, 99);
            assert!(CATEGORIES.iter().any(|c| c.name == product.category
                && c.things.iter().any(|t| product.name.ends_with(t))));
        }
    }

    #[test]
    fn prices_are_in_each_currencys_minor_units() {
        let product = Product {
            id: "p00001".into(),
            name: "Cozy Blanket".into(),
            category: "Home",
            us_cents: 4_999,
        };
        let price = |code: &str| {
            product
                .price(CURRENCIES.iter().find(|c| c.code == code).unwrap())
                .to_string()
        };
        assert_eq!(price("USD"), "49.99");
        assert_eq!(price("EUR"), "45.99");
        assert_eq!(price("BRL"), "269.95");
        assert_eq!(price("JPY"), "7748", "no cents in yen");
    }

    #[test]
    fn some_products_sell_far_more_than_others() {
        let catalogue = Catalogue::new(1);
        let rng = &mut StdRng::seed_from_u64(1);
        let mut sold: HashMap<&str, u32> = HashMap::new();
        for _ in 0..20_000 {
            *sold.entry(&catalogue.draw(rng).id).or_default() += 1;
        }
        let mut counts: Vec<u32> = sold.into_values().collect();
        counts.sort_unstable_by(|a, b| b.cmp(a));
        // The best seller sells many times the median product.
        assert!(counts[0] > 10 * counts[counts.len() / 2], "{counts:?}");
    }
}
