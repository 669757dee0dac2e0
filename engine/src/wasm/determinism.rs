//! The clocks and randomness a guest sees: derived from the batch it is applying, never from
//! the host, so that replaying the same events gives the same read model whatever the guest
//! does (a Rust `HashMap` seeds itself from `wasi:random/insecure-seed`; other languages read
//! the clock or random numbers behind the author's back).

use std::convert::Infallible;
use std::sync::Arc;
use std::sync::atomic::{AtomicI64, AtomicU64, Ordering};
use std::time::Duration;

use rand_core::TryRng;
use wasmtime_wasi::{HostMonotonicClock, HostWallClock, WasiCtxBuilder};

/// What a batch determines: the time (its last event's timestamp) and the random seed (from
/// the projection's name and the batch's first position).
#[derive(Debug, Clone, Default)]
pub(crate) struct BatchEnvironment {
    wall_micros: Arc<AtomicI64>,
    monotonic_nanos: Arc<AtomicU64>,
    random: Arc<AtomicU64>,
    name_hash: u64,
}

impl BatchEnvironment {
    /// The environment of the projection `name`, installed into `wasi`.
    pub(crate) fn install(name: &str, wasi: &mut WasiCtxBuilder) -> Self {
        let environment = BatchEnvironment { name_hash: fnv1a(name.as_bytes()), ..Default::default() };
        wasi.wall_clock(WallClock(environment.wall_micros.clone()))
            .monotonic_clock(MonotonicClock(environment.monotonic_nanos.clone()))
            .secure_random(SplitMix(environment.random.clone()))
            .insecure_random(SplitMix(environment.random.clone()))
            .insecure_random_seed(u128::from(environment.name_hash) << 64 | u128::from(!environment.name_hash));
        environment
    }

    /// Sets the environment for a batch whose first event is at `first_position` and whose
    /// last event was recorded at `timestamp_micros`.
    pub(crate) fn start_batch(&self, first_position: i64, timestamp_micros: i64) {
        self.wall_micros.store(timestamp_micros, Ordering::Relaxed);
        // A monotonic clock never goes back, even if recorded times do.
        let nanos = u64::try_from(timestamp_micros).unwrap_or(0).saturating_mul(1000);
        self.monotonic_nanos.fetch_max(nanos, Ordering::Relaxed);
        self.random
            .store(self.name_hash ^ (first_position as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15), Ordering::Relaxed);
    }
}

/// 64-bit FNV-1a: a fixed hash, the same in every process (unlike std's `RandomState`).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |hash, byte| (hash ^ u64::from(*byte)).wrapping_mul(0x0100_0000_01b3))
}

struct WallClock(Arc<AtomicI64>);

impl HostWallClock for WallClock {
    fn resolution(&self) -> Duration {
        Duration::from_micros(1)
    }

    fn now(&self) -> Duration {
        Duration::from_micros(u64::try_from(self.0.load(Ordering::Relaxed)).unwrap_or(0))
    }
}

struct MonotonicClock(Arc<AtomicU64>);

impl HostMonotonicClock for MonotonicClock {
    fn resolution(&self) -> u64 {
        1000
    }

    fn now(&self) -> u64 {
        self.0.load(Ordering::Relaxed)
    }
}

/// SplitMix64 over a shared state: small, fast and fully determined by its seed.
struct SplitMix(Arc<AtomicU64>);

impl TryRng for SplitMix {
    type Error = Infallible;

    fn try_next_u32(&mut self) -> Result<u32, Infallible> {
        Ok((self.try_next_u64()? >> 32) as u32)
    }

    fn try_next_u64(&mut self) -> Result<u64, Infallible> {
        let mut z = self.0.fetch_add(0x9E37_79B9_7F4A_7C15, Ordering::Relaxed).wrapping_add(0x9E37_79B9_7F4A_7C15);
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        Ok(z ^ (z >> 31))
    }

    fn try_fill_bytes(&mut self, dst: &mut [u8]) -> Result<(), Infallible> {
        for chunk in dst.chunks_mut(8) {
            chunk.copy_from_slice(&self.try_next_u64()?.to_le_bytes()[..chunk.len()]);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn draws(environment: &BatchEnvironment) -> Vec<u64> {
        let mut rng = SplitMix(environment.random.clone());
        (0..4).map(|_| rng.try_next_u64().unwrap()).collect()
    }

    #[test]
    fn a_batch_determines_time_and_randomness() {
        let mut builder = WasiCtxBuilder::new();
        let a = BatchEnvironment::install("orders", &mut builder);
        let b = BatchEnvironment::install("orders", &mut WasiCtxBuilder::new());
        a.start_batch(42, 1_700_000_000_000_000);
        b.start_batch(42, 1_700_000_000_000_000);
        assert_eq!(draws(&a), draws(&b), "same projection, same batch");
        assert_eq!(WallClock(a.wall_micros.clone()).now(), Duration::from_secs(1_700_000_000));
        b.start_batch(43, 1_700_000_000_000_000);
        a.start_batch(42, 1_700_000_000_000_000);
        assert_ne!(draws(&a), draws(&b), "another batch");
        let other = BatchEnvironment::install("revenue", &mut WasiCtxBuilder::new());
        other.start_batch(42, 0);
        a.start_batch(42, 0);
        assert_ne!(draws(&a), draws(&other), "another projection");
    }

    #[test]
    fn the_monotonic_clock_never_goes_back() {
        let environment = BatchEnvironment::install("p", &mut WasiCtxBuilder::new());
        let clock = MonotonicClock(environment.monotonic_nanos.clone());
        environment.start_batch(1, 2_000);
        environment.start_batch(2, 1_000);
        assert_eq!(clock.now(), 2_000_000);
    }
}
