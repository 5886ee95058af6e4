//! Bounded waiting: the only synchronisation the tests use is "poll an observable condition until
//! it holds, with a bound", so tests assert ordering and progress, never wall-clock durations.

use std::thread;
use std::time::{Duration, Instant};

/// Polls `cond` every 20 ms until it holds; panics after `timeout` naming `what` was awaited.
///
/// Polling an observable condition with a bound is the only synchronisation the tests use.
#[track_caller]
pub fn wait_until(timeout: Duration, what: &str, cond: impl FnMut() -> bool) {
    if !poll_until(timeout, cond) {
        panic!("timed out after {timeout:?} waiting until {what}");
    }
}

/// Polls `cond` every 20 ms until it holds (`true`) or `timeout` passes (`false`), for the rare
/// wait whose expiry is an acceptable outcome rather than a failure.
pub fn poll_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let deadline = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= deadline {
            return false;
        }
        thread::sleep(Duration::from_millis(20));
    }
}
