//! The `order_summary` projection.
