//! Timestamps and dates in the forms the WIT contract carries them (UTC, no time zones).
//!
//! A projection has no clock: the only times it sees are the events' timestamps.

use std::fmt;
use std::str::FromStr;

use crate::Error;

const MICROS_PER_SECOND: i64 = 1_000_000;
const MICROS_PER_DAY: i64 = 86_400 * MICROS_PER_SECOND;

/// An instant in UTC, in microseconds since 1970-01-01T00:00:00Z (`timestamptz`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Timestamp(i64);

impl Timestamp {
    /// The instant `micros` microseconds after the Unix epoch.
    pub const fn from_micros(micros: i64) -> Timestamp {
        Timestamp(micros)
    }

    /// Microseconds since the Unix epoch.
    pub const fn micros(self) -> i64 {
        self.0
    }

    /// The UTC calendar day of this instant.
    pub const fn date(self) -> Date {
        // Days before 1970 round down, so that 1969-12-31T23:00Z is on 1969-12-31. The
        // quotient fits in i32 for every i64 microsecond count.
        Date(self.0.div_euclid(MICROS_PER_DAY) as i32)
    }
}

impl fmt::Display for Timestamp {
    /// RFC 3339 in UTC, with a fraction only when there is one: `2024-05-01T10:00:00Z`,
    /// `2024-05-01T10:00:00.250000Z`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let date = self.date();
        let micros_of_day = self.0.rem_euclid(MICROS_PER_DAY);
        let seconds = micros_of_day / MICROS_PER_SECOND;
        let fraction = micros_of_day % MICROS_PER_SECOND;
        write!(f, "{date}T{:02}:{:02}:{:02}", seconds / 3600, seconds / 60 % 60, seconds % 60)?;
        if fraction != 0 {
            write!(f, ".{fraction:06}")?;
        }
        f.write_str("Z")
    }
}

impl FromStr for Timestamp {
    type Err = Error;

    /// Parses RFC 3339 in UTC: `2024-05-01T10:00:00Z`, with an optional fraction of up to
    /// six digits, `Z` or `+00:00`.
    fn from_str(text: &str) -> Result<Timestamp, Error> {
        let invalid =
            || Error::Value(format!("`{text}` is not an RFC 3339 UTC timestamp such as 2024-05-01T10:00:00Z"));
        let rest = text.strip_suffix('Z').or_else(|| text.strip_suffix("+00:00")).ok_or_else(invalid)?;
        let (date, time) = rest.split_once(['T', ' ']).ok_or_else(invalid)?;
        let date: Date = date.parse().map_err(|_| invalid())?;
        let (clock, fraction) = time.split_once('.').unwrap_or((time, ""));
        let mut parts = clock.split(':').map(|part| number(part, 2));
        let (Some(Some(h)), Some(Some(m)), Some(Some(s)), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            return Err(invalid());
        };
        if h > 23 || m > 59 || s > 59 || fraction.len() > 6 || (time.contains('.') && fraction.is_empty()) {
            return Err(invalid());
        }
        let micros = if fraction.is_empty() { 0 } else { number(&format!("{fraction:0<6}"), 6).ok_or_else(invalid)? };
        let seconds = i64::from(date.days()) * 86_400 + h * 3600 + m * 60 + s;
        Ok(Timestamp(seconds * MICROS_PER_SECOND + micros))
    }
}

/// A calendar day, in days since 1970-01-01 (`date`).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Date(i32);

impl Date {
    /// The day `days` days after 1970-01-01.
    pub const fn from_days(days: i32) -> Date {
        Date(days)
    }

    /// Days since 1970-01-01.
    pub const fn days(self) -> i32 {
        self.0
    }

    /// The day `year-month-day` of the proleptic Gregorian calendar; `None` when there is no
    /// such day.
    pub fn from_ymd(year: i32, month: u32, day: u32) -> Option<Date> {
        let days_in_month = match month {
            1 | 3 | 5 | 7 | 8 | 10 | 12 => 31,
            4 | 6 | 9 | 11 => 30,
            2 if year % 4 == 0 && (year % 100 != 0 || year % 400 == 0) => 29,
            2 => 28,
            _ => return None,
        };
        if !(1..=days_in_month).contains(&day) || !(-1_000_000..=1_000_000).contains(&year) {
            return None;
        }
        // Howard Hinnant's days_from_civil: count from 0000-03-01 so that the leap day
        // ends the year.
        let year = i64::from(year) - i64::from(month <= 2);
        let era = year.div_euclid(400);
        let year_of_era = year.rem_euclid(400);
        let month = i64::from(month);
        let day_of_year = (153 * (month + if month > 2 { -3 } else { 9 }) + 2) / 5 + i64::from(day) - 1;
        let day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
        i32::try_from(era * 146_097 + day_of_era - 719_468).ok().map(Date)
    }

    /// The `(year, month, day)` of this day.
    pub fn ymd(self) -> (i32, u32, u32) {
        // Hinnant's civil_from_days, the inverse of `from_ymd`.
        let z = i64::from(self.0) + 719_468;
        let era = z.div_euclid(146_097);
        let day_of_era = z.rem_euclid(146_097);
        let year_of_era = (day_of_era - day_of_era / 1460 + day_of_era / 36_524 - day_of_era / 146_096) / 365;
        let day_of_year = day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
        let mp = (5 * day_of_year + 2) / 153;
        let day = day_of_year - (153 * mp + 2) / 5 + 1;
        let month = if mp < 10 { mp + 3 } else { mp - 9 };
        let year = year_of_era + era * 400 + i64::from(month <= 2);
        // In range: an i32 day count spans about ±5.8 million years.
        (year as i32, month as u32, day as u32)
    }
}

impl fmt::Display for Date {
    /// `2024-05-01`.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let (year, month, day) = self.ymd();
        write!(f, "{year:04}-{month:02}-{day:02}")
    }
}

impl FromStr for Date {
    type Err = Error;

    /// Parses `2024-05-01`.
    fn from_str(text: &str) -> Result<Date, Error> {
        let invalid = || Error::Value(format!("`{text}` is not a date such as 2024-05-01"));
        let mut parts = text.splitn(3, '-');
        let (Some(y), Some(m), Some(d)) = (parts.next(), parts.next(), parts.next()) else {
            return Err(invalid());
        };
        let (Some(y), Some(m), Some(d)) = (number(y, 4), number(m, 2), number(d, 2)) else {
            return Err(invalid());
        };
        Date::from_ymd(y as i32, m as u32, d as u32).ok_or_else(invalid)
    }
}

/// `text` as an unsigned number of exactly `width` ASCII digits.
fn number(text: &str, width: usize) -> Option<i64> {
    (text.len() == width && text.bytes().all(|b| b.is_ascii_digit())).then(|| text.parse().ok()).flatten()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn dates_round_trip_through_the_calendar() {
        assert_eq!(Date::from_ymd(1970, 1, 1), Some(Date::from_days(0)));
        assert_eq!(Date::from_ymd(2000, 3, 1).unwrap().days(), 11_017);
        assert_eq!(Date::from_ymd(1969, 12, 31), Some(Date::from_days(-1)));
        assert_eq!(Date::from_ymd(2023, 2, 29), None);
        assert!(Date::from_ymd(2024, 2, 29).is_some());
        for days in (-800_000..800_000).step_by(997) {
            let (y, m, d) = Date::from_days(days).ymd();
            assert_eq!(Date::from_ymd(y, m, d), Some(Date::from_days(days)));
        }
        assert_eq!("2024-05-01".parse::<Date>().unwrap().to_string(), "2024-05-01");
        assert!("2024-5-1".parse::<Date>().is_err());
    }

    #[test]
    fn timestamps_parse_render_and_fall_on_utc_days() {
        let ts: Timestamp = "2024-05-01T23:59:59.999999Z".parse().unwrap();
        assert_eq!(ts.to_string(), "2024-05-01T23:59:59.999999Z");
        assert_eq!(ts.date().to_string(), "2024-05-01");
        let next = Timestamp::from_micros(ts.micros() + 1);
        assert_eq!(next.to_string(), "2024-05-02T00:00:00Z");
        assert_eq!(next.date().to_string(), "2024-05-02");
        assert_eq!("1970-01-01T00:00:00.5+00:00".parse::<Timestamp>().unwrap().micros(), 500_000);
        assert_eq!(Timestamp::from_micros(-1).date().to_string(), "1969-12-31");
        for bad in ["2024-05-01T10:00:00", "2024-05-01T24:00:00Z", "2024-05-01T10:00Z", "2024-05-01T10:00:00.Z"] {
            assert!(bad.parse::<Timestamp>().is_err(), "{bad}");
        }
    }
}
