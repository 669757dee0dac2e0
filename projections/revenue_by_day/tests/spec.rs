//! `revenue_by_day` against the fixtures of every rule of `ORDER_DOMAIN.md`, natively.

use order_domain::fixtures::{self, Fixture, RevenueRow, spec};
use refract_sdk::testing::Harness;
use revenue_by_day::{REVENUE_BY_DAY, RevenueByDay};

fn check(fixture: Fixture) {
    spec::check::<RevenueByDay, _>(&fixture, REVENUE_BY_DAY, &fixture.revenue_by_day, RevenueRow::from_row);
}

order_domain::fixture_tests!(check);

#[test]
fn a_payload_of_the_wrong_shape_refuses_the_batch_and_names_the_event() {
    spec::check_wrong_shape_refused::<RevenueByDay>(REVENUE_BY_DAY);
}

#[test]
fn a_fraction_of_a_cent_is_refused() {
    spec::check_fraction_of_a_cent_refused::<RevenueByDay>();
}

#[test]
fn one_upsert_per_day_per_batch() {
    let mut harness = Harness::<RevenueByDay>::new();
    let ops = harness.apply(fixtures::cancel_after_confirm().events).unwrap();
    let days = ops.iter().filter(|op| op.table() == REVENUE_BY_DAY).count();
    assert_eq!(days, 2, "{ops:#?}");
}
