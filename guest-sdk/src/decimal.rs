//! Exact decimal arithmetic on the text form of `numeric` values.
//!
//! Kept private: authors use [`Cents`](crate::Cents) for money; the SDK needs general decimals
//! only to add `numeric` values (the `add` merge) and to compare them by value.

use std::cmp::Ordering;
use std::fmt;

/// `units × 10^-scale`, exactly.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Decimal {
    units: i128,
    scale: u32,
}

/// More fraction digits than any PostgreSQL `numeric` we meet; keeps `10^scale` inside i128.
const MAX_SCALE: u32 = 30;

impl Decimal {
    pub(crate) const fn new(units: i128, scale: u32) -> Self {
        Decimal { units, scale }
    }

    /// Parses `-12.30`, `10`, `0.1`, `1.5e1`, `9.990`, keeping the scale as written (`9.990`
    /// has three fraction digits). `None` when it is not such a number or does not fit.
    pub(crate) fn parse(text: &str) -> Option<Decimal> {
        let (negative, unsigned) = match text.as_bytes().first()? {
            b'-' => (true, &text[1..]),
            b'+' => (false, &text[1..]),
            _ => (false, text),
        };
        let (mantissa, exponent) = match unsigned.split_once(['e', 'E']) {
            Some((mantissa, exponent)) => (mantissa, exponent.parse::<i32>().ok()?),
            None => (unsigned, 0),
        };
        let (whole, fraction) = mantissa.split_once('.').unwrap_or((mantissa, ""));
        let digits = |part: &str| part.bytes().all(|b| b.is_ascii_digit());
        if (whole.is_empty() && fraction.is_empty()) || !digits(whole) || !digits(fraction) {
            return None;
        }
        // In u64 while it fits (i128 arithmetic is slow in wasm): 19 digits always do.
        let (mut digits, mut units) = (whole.bytes().chain(fraction.bytes()), 0_u64);
        for byte in digits.by_ref().take(19) {
            units = units * 10 + u64::from(byte - b'0');
        }
        let mut units = i128::from(units);
        for byte in digits {
            units = units.checked_mul(10)?.checked_add(i128::from(byte - b'0'))?;
        }
        let scale = i64::try_from(fraction.len()).ok()? - i64::from(exponent);
        let decimal = if scale < 0 {
            let factor = 10_i128.checked_pow(u32::try_from(-scale).ok()?)?;
            Decimal::new(units.checked_mul(factor)?, 0)
        } else {
            Decimal::new(units, u32::try_from(scale).ok()?)
        };
        (decimal.scale <= MAX_SCALE).then_some(if negative { decimal.negated() } else { decimal })
    }

    pub(crate) fn units(self) -> i128 {
        self.units
    }

    fn negated(self) -> Decimal {
        Decimal::new(-self.units, self.scale)
    }

    /// The same value without trailing fraction zeros.
    fn normalized(mut self) -> Decimal {
        while self.scale > 0 && self.units % 10 == 0 {
            self.units /= 10;
            self.scale -= 1;
        }
        self
    }

    /// The same value with exactly `scale` fraction digits; `None` if that loses digits.
    pub(crate) fn rescaled(self, scale: u32) -> Option<Decimal> {
        if scale >= self.scale {
            let factor = 10_i128.checked_pow(scale - self.scale)?;
            Some(Decimal::new(self.units.checked_mul(factor)?, scale))
        } else {
            let factor = 10_i128.checked_pow(self.scale - scale)?;
            (self.units % factor == 0).then(|| Decimal::new(self.units / factor, scale))
        }
    }

    /// `self + other`, with the larger scale of the two (as PostgreSQL adds `numeric`s).
    pub(crate) fn checked_add(self, other: Decimal) -> Option<Decimal> {
        let scale = self.scale.max(other.scale);
        let (a, b) = (self.rescaled(scale)?, other.rescaled(scale)?);
        Some(Decimal::new(a.units.checked_add(b.units)?, scale))
    }

    /// Compares by value: `1.5` equals `1.50`.
    pub(crate) fn cmp_value(self, other: Decimal) -> Ordering {
        let scale = self.scale.max(other.scale);
        match (self.rescaled(scale), other.rescaled(scale)) {
            (Some(a), Some(b)) => a.units.cmp(&b.units),
            // Only values near the i128 limit get here; their sign and size decide.
            _ => (self.units.signum(), self.scale).cmp(&(other.units.signum(), other.scale)),
        }
    }

    /// A canonical form for hashing: equal values give equal keys.
    pub(crate) fn canonical(self) -> (i128, u32) {
        let normalized = self.normalized();
        (normalized.units, normalized.scale)
    }
}

/// Room for any decimal's text: a sign, the 39 digits of |i128::MIN|, a point, and the zeros a
/// scale up to `MAX_SCALE` may need before them.
pub(crate) const TEXT_LEN: usize = 42 + MAX_SCALE as usize;

impl Decimal {
    /// `-12.30` written into `buffer`, right-aligned: at least one digit before the point,
    /// exactly `scale` after it. On the stack, without `fmt`: a projection formats a value
    /// for every amount it stores.
    pub(crate) fn write(self, buffer: &mut [u8; TEXT_LEN]) -> &str {
        let scale = self.scale as usize;
        debug_assert!(scale <= MAX_SCALE as usize, "every decimal keeps its scale within MAX_SCALE");
        let mut start = buffer.len();
        let mut push = |byte: u8| {
            start -= 1;
            buffer[start] = byte;
        };
        let mut written = 0;
        let mut digit = |digit: u8| {
            push(b'0' + digit);
            written += 1;
            if written == scale {
                push(b'.');
            }
            written
        };
        // Digit by digit from the right, in u64 once the rest fits (i128 division is slow in
        // wasm), and at least one digit before the point.
        let mut wide = self.units.unsigned_abs();
        while wide > u128::from(u64::MAX) {
            digit((wide % 10) as u8);
            wide /= 10;
        }
        let mut narrow = wide as u64;
        while digit((narrow % 10) as u8) <= scale || narrow >= 10 {
            narrow /= 10;
        }
        if self.units < 0 {
            push(b'-');
        }
        std::str::from_utf8(&buffer[start..]).expect("ASCII digits")
    }
}

impl fmt::Display for Decimal {
    /// `-12.30`: at least one digit before the point, exactly `scale` after it.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.write(&mut [0; TEXT_LEN]))
    }
}

#[cfg(test)]
mod tests {
    use super::Decimal;

    fn parse(text: &str) -> String {
        Decimal::parse(text).map(|d| d.to_string()).unwrap_or_else(|| "invalid".into())
    }

    #[test]
    fn parses_json_and_numeric_forms_exactly() {
        assert_eq!(parse("9.99"), "9.99");
        assert_eq!(parse("9.990"), "9.990");
        assert_eq!(parse("-0.05"), "-0.05");
        assert_eq!(parse("1e1"), "10");
        assert_eq!(parse("1.5E1"), "15");
        assert_eq!(parse("25e-3"), "0.025");
        assert_eq!(parse(".5"), "0.5");
        assert_eq!(parse("10."), "10");
        for bad in ["", "-", ".", "1.2.3", "abc", "1e", "0x10", "1 ", "--1"] {
            assert_eq!(parse(bad), "invalid", "{bad:?}");
        }
    }

    #[test]
    fn displays_every_scale_and_the_extremes() {
        // What std's integer formatting gives, padded and split at the scale.
        let reference = |units: i128, scale: usize| {
            let digits = format!("{:0>width$}", units.unsigned_abs(), width = scale + 1);
            let (whole, fraction) = digits.split_at(digits.len() - scale);
            let sign = if units < 0 { "-" } else { "" };
            if scale == 0 { format!("{sign}{whole}") } else { format!("{sign}{whole}.{fraction}") }
        };
        for units in [0, 1, -1, 5, -5, 999, 1_000, -12_30, i128::from(i64::MAX), i128::MAX, i128::MIN, i128::MIN + 1] {
            for scale in [0, 1, 2, 3, 18, 29, super::MAX_SCALE] {
                let shown = Decimal::new(units, scale).to_string();
                assert_eq!(shown, reference(units, scale as usize), "{units} at scale {scale}");
            }
        }
        assert_eq!(Decimal::new(-5, 2).to_string(), "-0.05");
    }

    #[test]
    fn adds_with_the_larger_scale() {
        let add = |a: &str, b: &str| {
            Decimal::parse(a).unwrap().rescaled(2).unwrap().checked_add(Decimal::parse(b).unwrap()).unwrap().to_string()
        };
        assert_eq!(add("0.1", "0.2"), "0.30");
        assert_eq!(add("100.00", "-100"), "0.00");
        assert_eq!(add("-1.5", "0.25"), "-1.25");
    }

    #[test]
    fn compares_by_value() {
        let a = Decimal::parse("1.50").unwrap();
        let b = Decimal::parse("1.5").unwrap();
        assert_eq!(a.cmp_value(b), std::cmp::Ordering::Equal);
        assert_eq!(a.canonical(), b.canonical());
        assert!(Decimal::parse("-2").unwrap().cmp_value(a).is_lt());
    }
}
