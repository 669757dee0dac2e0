//! `revenue_by_day` against the fixtures of every rule of `ORDER_DOMAIN.md`, natively.

use order_domain::fixtures::{self, Fixture, RevenueRow};
use refract_sdk::testing::Harness;
use revenue_by_day::{REVENUE_BY_DAY, RevenueByDay};

/// The table after the fixture's events, applied in batches of `batch_size`, with a new
/// instance (empty cache) after every batch when `restart`.
fn run(fixture: &Fixture, batch_size: usize, restart: bool) -> Vec<RevenueRow> {
    let mut harness = Harness::<RevenueByDay>::new();
    for batch in fixture.events.chunks(batch_size) {
        harness
            .apply(batch.to_vec())
            .unwrap_or_else(|error| panic!("{}: {error}", fixture.name));
        if restart {
            harness.restart();
        }
    }
    let mut rows: Vec<_> = harness
        .rows(REVENUE_BY_DAY)
        .iter()
        .map(|row| RevenueRow::from_row(row).unwrap())
        .collect();
    rows.sort();
    rows
}

fn check(fixture: Fixture) {
    for (batch_size, restart) in [(usize::MAX, false), (1, false), (1, true), (3, true)] {
        assert_eq!(
            run(
                &fixture,
                batch_size.min(fixture.events.len().max(1)),
                restart
            ),
            fixture.revenue_by_day,
            "fixture {} ({}), batches of {batch_size}, restart {restart}",
            fixture.name,
            fixture.rule
        );
    }
}

macro_rules! spec {
    ($($fixture:ident),* $(,)?) => {
        $(
            #[test]
            fn $fixture() {
                check(fixtures::$fixture());
            }
        )*

        /// A fixture without a test here would be a rule left unchecked.
        #[test]
        fn every_fixture_has_a_test() {
            let tested = [$(stringify!($fixture)),*];
            for fixture in fixtures::all() {
                assert!(tested.contains(&fixture.name), "fixture {} has no test", fixture.name);
            }
        }
    };
}

spec!(
    created,
    exact_cents,
    same_product_keeps_first_price,
    item_removed_drops_the_line,
    item_removed_of_an_absent_product,
    events_before_created_are_ignored,
    latest_status_wins,
    address_and_unknown_types_are_ignored,
    second_confirmation_changes_nothing,
    cancel_after_confirm,
    utc_day_boundaries,
    reconfirm_after_cancel,
    shipped_then_cancelled,
    repeated_order_created,
    other_streams_are_ignored,
);

#[test]
fn a_payload_of_the_wrong_shape_refuses_the_batch_and_names_the_event() {
    let mut harness = Harness::<RevenueByDay>::new();
    let error = harness.apply(fixtures::wrong_shape()).unwrap_err();
    assert_eq!(error.global_position, Some(2));
    assert!(
        error.message.starts_with(
            "event 2 (ItemAdded, id e0000000-0000-4000-8000-000000000002, stream order-"
        ),
        "{}",
        error.message
    );
    assert!(
        error
            .message
            .contains("data is not a valid ItemAdded: invalid type: string \"two\", expected i64"),
        "{}",
        error.message
    );
    assert!(
        harness.rows(REVENUE_BY_DAY).is_empty(),
        "nothing of the batch is written"
    );
}

#[test]
fn a_fraction_of_a_cent_is_refused() {
    let mut harness = Harness::<RevenueByDay>::new();
    let error = harness.apply(fixtures::fraction_of_a_cent()).unwrap_err();
    assert_eq!(error.global_position, Some(2));
    assert!(
        error
            .message
            .contains("`9.999` is not a whole number of cents"),
        "{}",
        error.message
    );
}

#[test]
fn one_upsert_per_day_per_batch() {
    let mut harness = Harness::<RevenueByDay>::new();
    let ops = harness
        .apply(fixtures::cancel_after_confirm().events)
        .unwrap();
    let days = ops.iter().filter(|op| op.table() == REVENUE_BY_DAY).count();
    assert_eq!(days, 2, "{ops:#?}");
}
