//! Sample data generators.
