//! Which events a projection receives, in SQL and in memory.

use crate::store::category;
use crate::wasm::types::{self, Event};

/// The events a projection subscribes to; `None` means "no filter on this field".
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Subscription {
    /// Event types, or `None` for all.
    pub event_types: Option<Vec<String>>,
    /// Stream categories (the stream id up to its first `-`), or `None` for all.
    pub categories: Option<Vec<String>>,
}

impl From<&types::Subscription> for Subscription {
    fn from(s: &types::Subscription) -> Self {
        let some = |list: &Vec<String>| (!list.is_empty()).then(|| list.clone());
        Subscription { event_types: some(&s.event_types), categories: some(&s.categories) }
    }
}

impl Subscription {
    /// The subscription that receives every event that any of `subs` receives.
    pub fn union<'a>(subs: impl IntoIterator<Item = &'a Subscription>) -> Subscription {
        fn merge(acc: Option<Option<Vec<String>>>, next: &Option<Vec<String>>) -> Option<Option<Vec<String>>> {
            Some(match (acc, next) {
                (None, next) => next.clone(),
                (Some(None), _) | (_, None) => None,
                (Some(Some(mut a)), Some(b)) => {
                    a.extend(b.iter().cloned());
                    a.sort();
                    a.dedup();
                    Some(a)
                }
            })
        }
        let (mut types, mut categories) = (None, None);
        for sub in subs {
            types = merge(types, &sub.event_types);
            categories = merge(categories, &sub.categories);
        }
        Subscription { event_types: types.flatten(), categories: categories.flatten() }
    }

    /// Whether `event` is one this subscription receives.
    pub fn matches(&self, event: &Event) -> bool {
        let type_ok = self.event_types.as_ref().is_none_or(|t| t.contains(&event.event_type));
        type_ok && self.categories.as_ref().is_none_or(|c| c.iter().any(|c| c == category(&event.stream_id)))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sub(types: Option<&[&str]>, categories: Option<&[&str]>) -> Subscription {
        let own = |l: &[&str]| l.iter().map(|s| s.to_string()).collect();
        Subscription { event_types: types.map(own), categories: categories.map(own) }
    }

    #[test]
    fn union_is_unfiltered_where_any_member_is() {
        let a = sub(Some(&["A", "B"]), Some(&["order"]));
        let b = sub(Some(&["C", "A"]), None);
        assert_eq!(Subscription::union([&a, &b]), sub(Some(&["A", "B", "C"]), None));
        assert_eq!(Subscription::union([&a]), a);
        assert_eq!(Subscription::union([&a, &Subscription::default()]), Subscription::default());
    }
}
