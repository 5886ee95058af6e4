//! The shared link: one rate over the body bytes of every connection, as a phone's radio link
//! carries everything the device fetches at once. `throttle_bps` paces each body on its own, so
//! two readers get twice the rate; with `shared_link_bps` they split one rate, and a player and
//! two downloads contend for bandwidth on loopback as they would on mobile data.
//!
//! The link is modelled as a serial line: a chunk occupies it for `bytes / rate` seconds, after
//! the chunks reserved before it, and leaves when that time is over. Reservations are first come,
//! first served, and each body reserves one small chunk at a time, so concurrent bodies take
//! turns chunk by chunk (round robin), as flows roughly do on a real bottleneck. An idle link
//! saves up no credit: after a pause the next chunk still takes its own transmission time, like a
//! token bucket whose burst is one chunk. The time is passed in, so the arithmetic is tested
//! without a clock.

use std::sync::{Mutex, PoisonError};
use std::time::Duration;

use tokio::time::Instant;

/// When the link is free again; `None` until the first reservation (or after a reset).
#[derive(Debug, Default)]
pub(super) struct Link {
    free_at: Mutex<Option<Instant>>,
}

impl Link {
    /// Reserves the link for `bytes` at `bps` bytes per second, after everything reserved before,
    /// and returns the moment those bytes have crossed it (when the caller may hand them over).
    pub(super) fn reserve(&self, now: Instant, bytes: u64, bps: u64) -> Instant {
        let mut free_at = self.free_at.lock().unwrap_or_else(PoisonError::into_inner);
        let start = free_at.map_or(now, |busy_until| busy_until.max(now));
        let end = start.checked_add(transfer_time(bytes, bps)).unwrap_or(start);
        *free_at = Some(end);
        end
    }

    /// Forgets the reservations made so far (the rate was replaced): new ones start from now.
    /// Bodies already waiting for their reserved moment keep it.
    pub(super) fn reset(&self) {
        *self.free_at.lock().unwrap_or_else(PoisonError::into_inner) = None;
    }
}

/// How long `bytes` occupy a link of `bps` bytes per second (`bps` is never 0: off is `None`).
fn transfer_time(bytes: u64, bps: u64) -> Duration {
    let nanos = u128::from(bytes) * 1_000_000_000 / u128::from(bps.max(1));
    Duration::from_nanos(u64::try_from(nanos).unwrap_or(u64::MAX))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn chunks_cross_one_after_another_at_the_link_rate() {
        let link = Link::default();
        let t0 = Instant::now();
        // Three bodies ask at the same moment: they leave in turn, one chunk time apart.
        assert_eq!(link.reserve(t0, 1000, 10_000), t0 + Duration::from_millis(100));
        assert_eq!(link.reserve(t0, 1000, 10_000), t0 + Duration::from_millis(200));
        assert_eq!(link.reserve(t0, 500, 10_000), t0 + Duration::from_millis(250));
        // A request while the link is busy queues behind what is reserved.
        let later = t0 + Duration::from_millis(220);
        assert_eq!(link.reserve(later, 1000, 10_000), t0 + Duration::from_millis(350));
    }

    #[test]
    fn an_idle_link_saves_no_credit() {
        let link = Link::default();
        let t0 = Instant::now();
        link.reserve(t0, 1000, 10_000);
        let after_pause = t0 + Duration::from_secs(5);
        assert_eq!(
            link.reserve(after_pause, 1000, 10_000),
            after_pause + Duration::from_millis(100)
        );
    }

    #[test]
    fn a_reset_starts_from_now() {
        let link = Link::default();
        let t0 = Instant::now();
        link.reserve(t0, 1_000_000, 1);
        link.reset();
        assert_eq!(link.reserve(t0, 1000, 1_000_000), t0 + Duration::from_millis(1));
    }
}
