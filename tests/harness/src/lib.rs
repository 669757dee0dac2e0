//! Test harness: a PostgreSQL database of its own for every test.
