//! The `revenue_by_day` projection.
