//! Paths of the example projections built as components.
