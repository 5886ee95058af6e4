//! The fault switches: what the origin is told to do wrong ([`Faults`]), what is left of the
//! counted faults, the counter behind `changing_etag`, and the shared [`Link`]. One
//! [`Switchboard`] is shared by the request path, the body producers (which read the throttle and
//! the shared link live, so a new rate also applies to bodies in flight) and the control API,
//! which replaces the faults as a whole.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Mutex, MutexGuard, PoisonError};

use serde::{Deserialize, Serialize};
use tokio::time::Instant;

use super::link::Link;

/// Misbehaviours the origin can be told to show; all off by default.
///
/// Replaced as a whole at run time with `PUT /_control/faults`; fields missing from that JSON take
/// their default. Unknown fields are rejected so that a typo cannot silently switch nothing on.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct Faults {
    /// Pace file bodies at about this many bytes per second. `None` or `0`: full speed. Applies
    /// live, also to bodies already in flight.
    pub throttle_bps: Option<u64>,
    /// One link of this many bytes per second shared by the bodies of every connection (as a
    /// phone's radio link is), on top of `throttle_bps`. `None` or `0`: no shared limit. Applies
    /// live, also to bodies already in flight.
    pub shared_link_bps: Option<u64>,
    /// Abort the connection after this many body bytes of a file response (the client sees a body
    /// shorter than its `Content-Length`, or an unterminated chunked body). Only responses whose
    /// body is longer than this are cut.
    pub drop_after: Option<u64>,
    /// How many responses `drop_after` cuts before bodies are whole again. Defaults to 1.
    pub drop_times: u32,
    /// Answer the first this-many file requests with `503 Service Unavailable`.
    pub fail_first: u32,
    /// Ignore `Range` headers: always `200` with the full body.
    pub ignore_range: bool,
    /// Send bodies with chunked transfer encoding and no `Content-Length`; implies `ignore_range`
    /// and drops `Accept-Ranges`.
    pub no_content_length: bool,
    /// Give every response a different `ETag` (a per-response counter suffix).
    pub changing_etag: bool,
    /// Answer `401` unless the `Authorization` header is exactly this value.
    pub require_auth: Option<String>,
}

impl Default for Faults {
    fn default() -> Self {
        Faults {
            throttle_bps: None,
            shared_link_bps: None,
            drop_after: None,
            // One drop is what "drop after N bytes" means when nobody says how many.
            drop_times: 1,
            fail_first: 0,
            ignore_range: false,
            no_content_length: false,
            changing_etag: false,
            require_auth: None,
        }
    }
}

/// The faults in force, shared by everything that applies or replaces them.
pub(super) struct Switchboard {
    /// Current faults and how much of the counted ones is left.
    state: Mutex<FaultState>,
    /// Source of the per-response suffix for `changing_etag`.
    etag_counter: AtomicU64,
    /// The link `shared_link_bps` paces; reset whenever faults are replaced.
    link: Link,
}

/// Faults plus the remaining budget of the counted ones; reset whenever faults are replaced.
struct FaultState {
    faults: Faults,
    fails_left: u32,
    drops_left: u32,
}

impl FaultState {
    fn new(faults: Faults) -> Self {
        FaultState {
            fails_left: faults.fail_first,
            drops_left: faults.drop_times,
            faults,
        }
    }
}

impl Switchboard {
    pub(super) fn new(faults: Faults) -> Self {
        Switchboard {
            state: Mutex::new(FaultState::new(faults)),
            etag_counter: AtomicU64::new(0),
            link: Link::default(),
        }
    }

    /// The faults in force now.
    pub(super) fn get(&self) -> Faults {
        self.state().faults.clone()
    }

    /// Replaces the faults and resets the `fail_first` and `drop_times` budgets.
    pub(super) fn set(&self, faults: Faults) {
        *self.state() = FaultState::new(faults);
        self.link.reset();
    }

    /// The faults one file request runs under, and whether it spends a `fail_first` budget (and
    /// gets a `503`); both under one lock, so they agree.
    pub(super) fn for_request(&self) -> (Faults, bool) {
        let mut state = self.state();
        let fail = state.fails_left > 0;
        if fail {
            state.fails_left -= 1;
        }
        (state.faults.clone(), fail)
    }

    /// Spends one `drop_times` budget if this body is long enough to be cut; returns where.
    pub(super) fn take_drop(&self, body_len: u64, faults: &Faults) -> Option<u64> {
        let cut_at = faults.drop_after.filter(|&n| body_len > n)?;
        let mut state = self.state();
        if state.drops_left == 0 {
            return None;
        }
        state.drops_left -= 1;
        Some(cut_at)
    }

    /// The current throttle in bytes per second; `None` when off (`0` counts as off).
    pub(super) fn throttle_bps(&self) -> Option<u64> {
        self.state().faults.throttle_bps.filter(|&bps| bps > 0)
    }

    /// The shared link's rate in bytes per second; `None` when off (`0` counts as off).
    pub(super) fn shared_link_bps(&self) -> Option<u64> {
        self.state().faults.shared_link_bps.filter(|&bps| bps > 0)
    }

    /// Waits until `bytes` have crossed the shared link at `bps`, after every chunk of any
    /// connection that reserved it earlier.
    pub(super) async fn cross_link(&self, bytes: u64, bps: u64) {
        let due = self.link.reserve(Instant::now(), bytes, bps);
        tokio::time::sleep_until(due).await;
    }

    /// The `changing_etag` suffix for the next response, when `faults` asks for one.
    pub(super) fn etag_suffix(&self, faults: &Faults) -> Option<u64> {
        faults
            .changing_etag
            .then(|| self.etag_counter.fetch_add(1, Ordering::SeqCst) + 1)
    }

    fn state(&self) -> MutexGuard<'_, FaultState> {
        // The guarded data stays consistent across a panic (plain assignments), so poisoning is moot.
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }
}
