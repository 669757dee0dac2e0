//! The lines of an order: what both read models need to compute an order's total.

use std::collections::BTreeMap;

use refract_sdk::{Cents, Error};
use serde::{Deserialize, Serialize};

use crate::ItemAdded;

/// The largest total `numeric(12,2)` holds, in cents.
const MAX_TOTAL: Cents = Cents::new(999_999_999_999);

/// One line of an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct Line {
    /// Σ quantity of the `ItemAdded` events of the product.
    pub quantity: i64,
    /// The unit price of the line's first `ItemAdded`.
    pub unit_price: Cents,
}

/// The lines of an order, by product id. Stored as a `jsonb` column:
/// `{"p1": {"quantity": 2, "unit_price": "9.99"}}`.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(transparent)]
pub struct Lines(BTreeMap<String, Line>);

impl Lines {
    /// Adds an item: a new line, or more of an existing one at the price first recorded
    /// for it. An error for a quantity that is not > 0, a negative price, or a total beyond
    /// `numeric(12,2)`; the lines are then unchanged.
    pub fn add(&mut self, item: ItemAdded) -> Result<(), Error> {
        if item.quantity <= 0 {
            return Err(Error::msg(format!("quantity {} is not > 0", item.quantity)));
        }
        if item.price < Cents::ZERO {
            return Err(Error::msg(format!("price {} is negative", item.price)));
        }
        let line = self.0.get(&item.product_id).copied().unwrap_or(Line { quantity: 0, unit_price: item.price });
        let quantity =
            line.quantity.checked_add(item.quantity).ok_or_else(|| Error::msg("the line's quantity overflows"))?;
        let line = Line { quantity, ..line };
        // The total with this line changed, checked before anything is.
        let mut others = self.0.iter().filter(|(product_id, _)| **product_id != item.product_id);
        let total = others.try_fold(line.unit_price.checked_mul(line.quantity)?, |total, (_, other)| {
            total.checked_add(other.unit_price.checked_mul(other.quantity)?)
        })?;
        if total > MAX_TOTAL {
            return Err(Error::msg(format!("the order's total exceeds numeric(12,2): {total}")));
        }
        self.0.insert(item.product_id, line);
        Ok(())
    }

    /// Removes the line of `product_id`; `None` when the order has no such line.
    pub fn remove(&mut self, product_id: &str) -> Option<Line> {
        self.0.remove(product_id)
    }

    /// Σ quantity × unit price, exactly.
    pub fn total(&self) -> Result<Cents, Error> {
        self.0
            .values()
            .try_fold(Cents::ZERO, |total, line| total.checked_add(line.unit_price.checked_mul(line.quantity)?))
    }

    /// Σ quantity.
    pub fn item_count(&self) -> i64 {
        self.0.values().map(|line| line.quantity).sum()
    }
}

#[cfg(test)]
mod tests {
    use refract_sdk::{Json, Row, Value};

    use super::*;

    fn item(product_id: &str, quantity: i64, cents: i64) -> ItemAdded {
        ItemAdded { product_id: product_id.into(), quantity, price: Cents::new(cents) }
    }

    #[test]
    fn an_existing_line_keeps_its_first_price() {
        let mut lines = Lines::default();
        lines.add(item("p1", 1, 500)).unwrap();
        lines.add(item("p1", 2, 700)).unwrap();
        assert_eq!(lines.total().unwrap(), Cents::new(1500));
        assert_eq!(lines.item_count(), 3);
        assert_eq!(lines.remove("p1"), Some(Line { quantity: 3, unit_price: Cents::new(500) }));
        assert_eq!(lines.remove("p1"), None);
    }

    #[test]
    fn invalid_items_change_nothing() {
        let mut lines = Lines::default();
        lines.add(item("p1", 1, 500)).unwrap();
        let before = lines.clone();
        assert!(lines.add(item("p2", 0, 100)).is_err());
        assert!(lines.add(item("p2", 1, -1)).is_err());
        assert!(lines.add(item("p2", 1, 999_999_999_999)).is_err());
        assert_eq!(lines, before);
    }

    #[test]
    fn lines_round_trip_through_a_jsonb_column() {
        let mut lines = Lines::default();
        lines.add(item("p1", 2, 999)).unwrap();
        // As `State::put_json` writes it.
        let value = Value::json(&lines).unwrap();
        assert_eq!(value, Value::Json(r#"{"p1":{"quantity":2,"unit_price":"9.99"}}"#.into()));
        // As PostgreSQL returns jsonb: reformatted.
        let row = Row::new().with("lines", Value::Json(r#"{"p1": {"quantity": 2, "unit_price": "9.99"}}"#.into()));
        assert_eq!(row.get::<Json<Lines>>("lines").unwrap().0, lines);
    }
}
