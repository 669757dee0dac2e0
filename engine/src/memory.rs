//! A signal from the engine to whatever keeps the process's allocator trim: a large amount of
//! memory has just been freed (a projection caught up and its grown instance was dropped), so
//! now is the time to hand free pages back to the system rather than at the next periodic trim.
//!
//! The library only raises the signal; the binary decides what to do with it (with glibc it
//! calls `malloc_trim`, see `main.rs`).

use std::sync::{Condvar, Mutex, PoisonError};
use std::time::Duration;

static FREED: Mutex<bool> = Mutex::new(false);
static WAKE: Condvar = Condvar::new();

/// Says that a large amount of memory was just freed.
pub fn freed() {
    *FREED.lock().unwrap_or_else(PoisonError::into_inner) = true;
    WAKE.notify_all();
}

/// Waits until [`freed`] is called, or at most `timeout`; `true` when it was called (since
/// the last wait returned).
pub fn wait_freed(timeout: Duration) -> bool {
    let guard = FREED.lock().unwrap_or_else(PoisonError::into_inner);
    let (mut guard, _) =
        WAKE.wait_timeout_while(guard, timeout, |freed| !*freed).unwrap_or_else(PoisonError::into_inner);
    std::mem::take(&mut *guard)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_wait_returns_early_once_memory_is_freed() {
        let waiter = std::thread::spawn(|| wait_freed(Duration::from_secs(60)));
        // Whether the waiter is already waiting or not, the signal is kept until it looks.
        freed();
        assert!(waiter.join().unwrap());
    }
}
