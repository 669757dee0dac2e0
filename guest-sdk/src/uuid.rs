//! UUIDs in their hyphenated text form.

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

use crate::Error;

/// A UUID (`uuid`), checked and kept in lowercase hyphenated form
/// (`3f1c0e2a-5b6d-4e7f-8a9b-0c1d2e3f4a5b`), the form PostgreSQL prints.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct Uuid(String);

impl Uuid {
    /// The hyphenated, lowercase text.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl FromStr for Uuid {
    type Err = Error;

    /// Parses the hyphenated form, in either case.
    fn from_str(text: &str) -> Result<Uuid, Error> {
        let well_formed = text.len() == 36
            && text.bytes().enumerate().all(|(i, b)| match i {
                8 | 13 | 18 | 23 => b == b'-',
                _ => b.is_ascii_hexdigit(),
            });
        if well_formed {
            Ok(Uuid(text.to_ascii_lowercase()))
        } else {
            Err(Error::Value(format!("`{text}` is not a hyphenated UUID")))
        }
    }
}

impl fmt::Display for Uuid {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl Serialize for Uuid {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.serialize_str(&self.0)
    }
}

impl<'de> Deserialize<'de> for Uuid {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Uuid, D::Error> {
        let text = <std::borrow::Cow<'de, str>>::deserialize(deserializer)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::Uuid;

    #[test]
    fn accepts_hyphenated_uuids_only() {
        let uuid: Uuid = "3F1C0E2A-5B6D-4E7F-8A9B-0C1D2E3F4A5B".parse().unwrap();
        assert_eq!(uuid.as_str(), "3f1c0e2a-5b6d-4e7f-8a9b-0c1d2e3f4a5b");
        for bad in [
            "",
            "3f1c0e2a5b6d4e7f8a9b0c1d2e3f4a5b",
            "3f1c0e2a-5b6d-4e7f-8a9b-0c1d2e3f4a5g",
            "{3f1c0e2a-5b6d-4e7f-8a9b-0c1d2e3f4a5}",
            "3f1c0e2a-5b6d-4e7f-8a9b-0c1d2e3f4a5b0",
            "3f1c0e2a-5b6d-4e7f-8a9b+0c1d2e3f4a5b",
            "3f1c0e2a-5b6d-4e7f-8a9b-0c1d2e3f4a5-",
            "3f1c0e2a-5b6d-4e7f-8a9b-0c1d2e3f4a5é",
        ] {
            assert!(bad.parse::<Uuid>().is_err(), "{bad}");
        }
        let parsed: Uuid = serde_json::from_str("\"3f1c0e2a-5b6d-4e7f-8a9b-0c1d2e3f4a5b\"").unwrap();
        assert_eq!(parsed, uuid);
    }
}
