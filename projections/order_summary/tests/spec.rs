//! `order_summary` against the fixtures of every rule of `ORDER_DOMAIN.md`, natively.

use order_domain::fixtures::{self, Fixture, OrderSummaryRow, spec};
use order_summary::{ORDER_SUMMARY, OrderSummary};
use refract_sdk::testing::Harness;

fn check(fixture: Fixture) {
    spec::check::<OrderSummary, _>(&fixture, ORDER_SUMMARY, &fixture.order_summary, OrderSummaryRow::from_row);
}

order_domain::fixture_tests!(check);

#[test]
fn a_payload_of_the_wrong_shape_refuses_the_batch_and_names_the_event() {
    spec::check_wrong_shape_refused::<OrderSummary>(ORDER_SUMMARY);
}

#[test]
fn a_fraction_of_a_cent_is_refused() {
    spec::check_fraction_of_a_cent_refused::<OrderSummary>();
}

#[test]
fn one_upsert_per_order_per_batch() {
    let mut harness = Harness::<OrderSummary>::new();
    let ops = harness.apply(fixtures::cancel_after_confirm().events).unwrap();
    let summaries = ops.iter().filter(|op| op.table() == ORDER_SUMMARY).count();
    assert_eq!(summaries, 3, "{ops:#?}");
    assert_eq!(ops.len(), 6, "one order_summary and one order_lines upsert per order: {ops:#?}");
}
