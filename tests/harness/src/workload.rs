//! The concurrent-writer workload of the gap test.
