//! Money as a whole number of cents.

use std::fmt;
use std::str::FromStr;

use serde::de::{self, Deserializer, Visitor};
use serde::{Deserialize, Serialize, Serializer};

use crate::Error;
use crate::decimal::{Decimal, TEXT_LEN};

/// An exact amount of money in cents, for `numeric(p, 2)` columns.
///
/// Arithmetic is checked (an overflow is an [`Error`], never a wrapped value), and the value
/// renders as the exact decimal text the WIT `numeric` carries (`Cents::new(1230)` is
/// `"12.30"`).
///
/// Deserializes from a JSON number (`9.99`, `10`, `1e1`, `9.990`) or a decimal string, and
/// refuses an amount that is not a whole number of cents (`9.999`). JSON numbers are read
/// through `f64` and converted back with the shortest text that names the same `f64`, which
/// is exactly the number as written for anything up to 15 significant digits (enough for
/// `numeric(13, 2)`), so `0.1 + 0.2` is `0.30` here and never `0.30000000000000004`.
/// Serializes as a decimal string (`"12.30"`), so that state stored as JSON stays exact.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Cents(i64);

impl Cents {
    /// Zero.
    pub const ZERO: Cents = Cents(0);

    /// `cents` cents: `Cents::new(999)` is 9.99.
    pub const fn new(cents: i64) -> Cents {
        Cents(cents)
    }

    /// The amount in cents.
    pub const fn cents(self) -> i64 {
        self.0
    }

    /// `self + other`; an error on overflow.
    pub fn checked_add(self, other: Cents) -> Result<Cents, Error> {
        self.0.checked_add(other.0).map(Cents).ok_or_else(|| overflow(self, "+", other.0))
    }

    /// `self - other`; an error on overflow.
    pub fn checked_sub(self, other: Cents) -> Result<Cents, Error> {
        self.0.checked_sub(other.0).map(Cents).ok_or_else(|| overflow(self, "-", other.0))
    }

    /// `self × factor` (a quantity); an error on overflow.
    pub fn checked_mul(self, factor: i64) -> Result<Cents, Error> {
        self.0.checked_mul(factor).map(Cents).ok_or_else(|| overflow(self, "×", factor))
    }

    /// `12.30`, written into `buffer`.
    pub(crate) fn write(self, buffer: &mut [u8; TEXT_LEN]) -> &str {
        Decimal::new(i128::from(self.0), 2).write(buffer)
    }
}

fn overflow(left: Cents, op: &str, right: i64) -> Error {
    Error::Value(format!("{left} {op} {right} overflows the cents range"))
}

impl std::ops::Neg for Cents {
    type Output = Cents;

    fn neg(self) -> Cents {
        // i64::MIN cents cannot come from parsing (its magnitude is not a valid amount).
        Cents(self.0.saturating_neg())
    }
}

impl fmt::Display for Cents {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.write(&mut [0; TEXT_LEN]))
    }
}

impl FromStr for Cents {
    type Err = Error;

    /// Parses `12.30`, `-0.5`, `10`, `1e1`; an error when the text is not a number or not a
    /// whole number of cents.
    fn from_str(text: &str) -> Result<Cents, Error> {
        let decimal = Decimal::parse(text).ok_or_else(|| Error::Value(format!("`{text}` is not a decimal number")))?;
        let cents =
            decimal.rescaled(2).ok_or_else(|| Error::Value(format!("`{text}` is not a whole number of cents")))?;
        i64::try_from(cents.units()).map(Cents).map_err(|_| Error::Value(format!("`{text}` is out of the cents range")))
    }
}

impl Serialize for Cents {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(self.write(&mut [0; TEXT_LEN]))
    }
}

impl<'de> Deserialize<'de> for Cents {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Cents, D::Error> {
        deserializer.deserialize_any(CentsVisitor)
    }
}

struct CentsVisitor;

impl Visitor<'_> for CentsVisitor {
    type Value = Cents;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("an amount of money with at most 2 decimal places")
    }

    fn visit_i64<E: de::Error>(self, units: i64) -> Result<Cents, E> {
        units.checked_mul(100).map(Cents).ok_or_else(|| E::custom(format!("{units} is out of the cents range")))
    }

    fn visit_u64<E: de::Error>(self, units: u64) -> Result<Cents, E> {
        let units = i64::try_from(units).map_err(|_| E::custom(format!("{units} is out of the cents range")))?;
        self.visit_i64(units)
    }

    fn visit_f64<E: de::Error>(self, number: f64) -> Result<Cents, E> {
        if !number.is_finite() {
            return Err(E::custom(format!("{number} is not an amount of money")));
        }
        // Below 10^13 (15 significant digits with the cents) every amount with at most two
        // decimals is the only one that reads as its f64: when the nearest whole number of
        // cents reads as the same f64, it is the number as written.
        let cents = (number * 100.0).round();
        if number.abs() < 1e13 && cents / 100.0 == number {
            return Ok(Cents(cents as i64));
        }
        // Otherwise the text: `Display` of an f64 is the shortest text that reads back as the
        // same f64, and it never uses an exponent: for a JSON number with up to 15 significant
        // digits that text is the number as written.
        self.visit_str(&number.to_string())
    }

    fn visit_str<E: de::Error>(self, text: &str) -> Result<Cents, E> {
        text.parse().map_err(E::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::Cents;

    fn from_json(json: &str) -> Result<Cents, String> {
        serde_json::from_str::<Cents>(json).map_err(|e| e.to_string())
    }

    #[test]
    fn json_numbers_become_exact_cents() {
        assert_eq!(from_json("9.99"), Ok(Cents::new(999)));
        assert_eq!(from_json("0.1"), Ok(Cents::new(10)));
        assert_eq!(from_json("10"), Ok(Cents::new(1000)));
        assert_eq!(from_json("9.990"), Ok(Cents::new(999)));
        assert_eq!(from_json("1e1"), Ok(Cents::new(1000)));
        assert_eq!(from_json("-0.05"), Ok(Cents::new(-5)));
        assert_eq!(from_json("1234567890.12"), Ok(Cents::new(123_456_789_012)));
        assert_eq!(from_json("\"12.30\""), Ok(Cents::new(1230)));
        assert!(from_json("9.999").unwrap_err().contains("not a whole number of cents"));
        assert!(from_json("\"abc\"").is_err());
        assert!(from_json("true").is_err());
    }

    #[test]
    fn every_amount_written_with_two_decimals_reads_exactly() {
        // Amounts of every magnitude up to 15 significant digits (numeric(15, 2), beyond the
        // fast path's 10^13), written as text by integer formatting, never through f64.
        let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
        for i in 0..200_000 {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            let cents = (seed % 10_u64.pow(3 + i % 13)) as i64 * if i % 3 == 0 { -1 } else { 1 };
            let sign = if cents < 0 { "-" } else { "" };
            let (whole, fraction) = (cents.unsigned_abs() / 100, cents.unsigned_abs() % 100);
            assert_eq!(from_json(&format!("{sign}{whole}.{fraction:02}")), Ok(Cents::new(cents)));
            // A third decimal, within the 15 significant digits an f64 keeps apart.
            if whole < 10_u64.pow(12) {
                let third = format!("{sign}{whole}.{fraction:02}{}", 1 + i % 9);
                assert!(from_json(&third).is_err(), "{third} is not a whole number of cents");
            }
        }
    }

    #[test]
    fn sums_stay_exact_where_f64_drifts() {
        let sum = ["0.1", "0.2"].iter().map(|p| from_json(p).unwrap()).try_fold(Cents::ZERO, Cents::checked_add);
        assert_eq!(sum.unwrap().to_string(), "0.30");
        assert_eq!(Cents::new(999).checked_mul(3).unwrap().to_string(), "29.97");
    }

    #[test]
    fn renders_the_numeric_text() {
        assert_eq!(Cents::new(0).to_string(), "0.00");
        assert_eq!(Cents::new(5).to_string(), "0.05");
        assert_eq!(Cents::new(-5).to_string(), "-0.05");
        assert_eq!(Cents::new(-1230).to_string(), "-12.30");
        assert_eq!(serde_json::to_string(&Cents::new(1230)).unwrap(), "\"12.30\"");
    }

    #[test]
    fn overflow_is_an_error() {
        assert!(Cents::new(i64::MAX).checked_add(Cents::new(1)).is_err());
        assert!(Cents::new(i64::MAX / 2).checked_mul(3).is_err());
    }
}
