//! One cached resource's in-memory state: what is on disk, what is being fetched, who reads.
//!
//! This is the meeting point of readers and fills. Everything lives under one short `Mutex`
//! (never held across an `.await`); changes are announced on a `watch` channel whose version
//! counter means a reader that checked the state and then waits can never miss a wake-up.

use std::collections::VecDeque;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard};

use sha2::{Digest, Sha256};
use tokio::sync::watch;
use url::Url;

use super::range_set::RangeSet;
use crate::error::Error;

/// How far ahead of a running fill a reader may be and still wait for it rather than start its
/// own fill (a seek). At typical mobile bandwidth this is well under a second of download.
pub(crate) const SOON_BYTES: u64 = 256 * 1024;

/// How far a fill may run past the furthest reader of its resource before it waits for one to
/// come closer: a client that stops reading does not make the server fetch (and store) the whole
/// resource. A few seconds of a high-bitrate stream; downloads read as fast as bytes arrive.
pub(crate) const AHEAD_BYTES: u64 = 4 * 1024 * 1024;

/// How many finished fills' outcomes are remembered for readers that waited on them.
const OUTCOMES_KEPT: usize = 16;

/// The error for bytes that went stale under a reader (the backend replaced the resource, or its
/// bytes were dropped).
pub(crate) fn stale_error() -> Error {
    crate::error::UpstreamError::protocol("the backend replaced the resource while it was being read").into()
}

/// What the backend told us about the representation the cached bytes belong to.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct Meta {
    /// Total length in bytes, once known.
    pub(crate) size: Option<u64>,
    /// The backend's ETag, verbatim (strong or weak).
    pub(crate) etag: Option<String>,
    /// The backend's `Last-Modified`, verbatim.
    pub(crate) last_modified: Option<String>,
    /// The backend's `Content-Type`.
    pub(crate) mime: Option<String>,
    /// The URL the backend redirected to, if it did: relative URIs in a playlist resolve against
    /// it, as a player that followed the redirect itself would resolve them.
    pub(crate) location: Option<String>,
}

impl Meta {
    /// The backend's ETag if it is strong (usable for `If-Range`).
    pub(crate) fn strong_etag(&self) -> Option<&str> {
        self.etag.as_deref().filter(|e| e.starts_with('"'))
    }

    /// The strong ETag served to players: the backend's strong one, else one derived from the
    /// key and whatever validators the backend gave, so it changes when they change.
    pub(crate) fn served_etag(&self, key: &str) -> String {
        if let Some(tag) = self.strong_etag() {
            return tag.to_string();
        }
        let mut h = Sha256::new();
        for part in [
            key,
            self.etag.as_deref().unwrap_or(""),
            self.last_modified.as_deref().unwrap_or(""),
        ] {
            h.update(part.as_bytes());
            h.update([0]);
        }
        h.update(self.size.unwrap_or(u64::MAX).to_le_bytes());
        format!("\"es-{}\"", &hex::encode(h.finalize())[..20])
    }

    /// Whether `newer` describes different bytes than `self` (so cached bytes are stale).
    pub(crate) fn is_replaced_by(&self, newer: &Meta) -> bool {
        if let (Some(a), Some(b)) = (&self.etag, &newer.etag) {
            return a != b;
        }
        if let (Some(a), Some(b)) = (self.size, newer.size) {
            if a != b {
                return true;
            }
        }
        matches!((&self.last_modified, &newer.last_modified), (Some(a), Some(b)) if a != b)
    }
}

/// A fill in progress: an upstream fetch writing bytes from `start` on; it has reached `pos`.
#[derive(Debug, Clone, Copy)]
pub(crate) struct FillSlot {
    pub(crate) id: u64,
    pub(crate) start: u64,
    pub(crate) pos: u64,
}

/// A player reading a resource: where it is, and where the bytes it asked for end (exclusive).
#[derive(Debug, Clone, Copy)]
pub(crate) struct PlayerPos {
    /// The reader's ID.
    pub(crate) id: u64,
    /// The next byte it reads.
    pub(crate) pos: u64,
    /// The end of its range, if it asked for one.
    pub(crate) end: Option<u64>,
}

/// The mutable part of a resource.
#[derive(Debug)]
pub(crate) struct State {
    /// Where the bytes come from (updated when a track is re-signed).
    pub(crate) url: Url,
    /// The catalog track, if this is `track:ID`.
    pub(crate) track_id: Option<String>,
    /// Validators and length; `None` until the backend has answered once.
    pub(crate) meta: Option<Meta>,
    /// Bytes written to the data file: what readers may serve.
    pub(crate) present: RangeSet,
    /// Bytes synced and recorded in the index: what survives a crash.
    pub(crate) recorded: RangeSet,
    /// Fills in progress.
    pub(crate) fills: Vec<FillSlot>,
    /// Recently finished fills: `(id, error)`; `None` means it ended without error.
    pub(crate) outcomes: VecDeque<(u64, Option<Arc<Error>>)>,
    /// Responses currently reading this resource.
    pub(crate) readers: usize,
    /// Where the players among the readers are (downloads and prefetch are not here): a
    /// resource with players is filled at playback's priority (see `priority`).
    pub(crate) players: Vec<PlayerPos>,
    /// Counted as hungry by the arbiter: a player lacks bytes ahead of it.
    pub(crate) hungry: bool,
    /// Download and prefetch handles held on this resource (see `priority`).
    pub(crate) background: usize,
    /// Prefetch handles held on this resource: its fills rank above downloads.
    pub(crate) prefetchers: usize,
    /// Where each reader is (reader ID, next byte wanted), for the read-ahead bound.
    pub(crate) positions: Vec<(u64, u64)>,
    /// Fills waiting for a reader to come closer (see [`State::far_ahead`]).
    pub(crate) fills_waiting: usize,
    /// The incarnation: unique in the cache, it names the data file and changes whenever the
    /// cached bytes are dropped (stale or lost). Readers and fills compare it (see `cache`'s
    /// invariant).
    pub(crate) generation: u64,
    /// Earlier generations whose data file vanished and whose description carries on in this
    /// one (oldest first, a few at most): a reader of one of them continues in this generation,
    /// fetching again what was lost, instead of failing its response.
    pub(crate) lost: Vec<u64>,
    /// Last access, milliseconds since the Unix epoch.
    pub(crate) last_access_ms: u64,
    /// Pinned by an offline download: never evicted.
    pub(crate) pinned: bool,
    /// Removed from the cache; holders must not write or record anything.
    pub(crate) evicted: bool,
    /// Something changed that the index does not know yet.
    pub(crate) dirty: bool,
    /// The sparse data file of this incarnation: in the cache directory, or in the downloads
    /// directory while pinned. It only moves while no fill writes it (`Cache::relocate`), and is
    /// only opened, under this state's lock.
    pub(crate) path: PathBuf,
}

impl State {
    /// The state of a resource of `url` holding no bytes yet, as incarnation `generation` with
    /// its data file at `path`.
    pub(crate) fn new(url: Url, track_id: Option<String>, generation: u64, path: PathBuf) -> Self {
        Self {
            url,
            track_id,
            meta: None,
            present: RangeSet::new(),
            recorded: RangeSet::new(),
            fills: Vec::new(),
            outcomes: VecDeque::new(),
            readers: 0,
            players: Vec::new(),
            hungry: false,
            background: 0,
            prefetchers: 0,
            positions: Vec::new(),
            fills_waiting: 0,
            generation,
            lost: Vec::new(),
            last_access_ms: crate::clock::now_ms(),
            pinned: false,
            evicted: false,
            dirty: false,
            path,
        }
    }

    /// Whether `generation` is the current incarnation of a resource still in the cache: the one
    /// check before a file is opened or a byte written for an incarnation.
    pub(crate) fn is_current(&self, generation: u64) -> bool {
        !self.evicted && self.generation == generation
    }

    /// Whether a player lacks bytes: fewer than `ahead` present from its position on, short of
    /// the end of what it asked for.
    pub(crate) fn starving(&self, ahead: u64) -> bool {
        let size = self.meta.as_ref().and_then(|m| m.size);
        !self.evicted
            && self.players.iter().any(|p| {
                let end = p.end.or(size).unwrap_or(u64::MAX);
                let want = p.pos.saturating_add(ahead).min(end);
                p.pos < end && self.present.run_end(p.pos).unwrap_or(p.pos) < want
            })
    }

    /// Whether a reader of `generation` may carry on in the current generation: its bytes were
    /// lost (not replaced), so what it reads next is the same representation, fetched again.
    pub(crate) fn continues(&self, generation: u64) -> bool {
        !self.evicted && (self.generation == generation || self.lost.contains(&generation))
    }

    /// Whether a fill at `pos` is [`AHEAD_BYTES`] or more past every reader's position (and
    /// should wait for one to come closer). A resource no reader has a position in yet (its
    /// description is being fetched) is not bounded.
    pub(crate) fn far_ahead(&self, pos: u64) -> bool {
        self.positions
            .iter()
            .map(|&(_, at)| at)
            .max()
            .is_some_and(|furthest| pos >= furthest.saturating_add(AHEAD_BYTES))
    }

    /// Whether every byte of the resource is present.
    pub(crate) fn complete(&self) -> bool {
        self.meta
            .as_ref()
            .and_then(|m| m.size)
            .is_some_and(|size| self.present.covers(0, size))
    }

    /// The fill a reader at `pos` should wait for: one that has started at or before `pos`, is
    /// at most `SOON_BYTES` behind it, and will not stop at present bytes before reaching it.
    pub(crate) fn covering_fill(&self, pos: u64) -> Option<u64> {
        self.fills
            .iter()
            .find(|f| {
                f.start <= pos
                    && pos < f.pos.saturating_add(SOON_BYTES)
                    && self.present.next_start_after(f.pos).is_none_or(|s| s > pos)
            })
            .map(|f| f.id)
    }

    /// The outcome of fill `id` if it has finished: `Some(None)` for success.
    pub(crate) fn outcome(&self, id: u64) -> Option<Option<Arc<Error>>> {
        if self.fills.iter().any(|f| f.id == id) {
            return None;
        }
        Some(
            self.outcomes
                .iter()
                .find(|(i, _)| *i == id)
                .and_then(|(_, e)| e.clone()),
        )
    }

    /// Records that fill `id` finished.
    pub(crate) fn finish_fill(&mut self, id: u64, error: Option<Arc<Error>>) {
        self.fills.retain(|f| f.id != id);
        if self.outcomes.len() == OUTCOMES_KEPT {
            self.outcomes.pop_front();
        }
        self.outcomes.push_back((id, error));
    }
}

/// One resource: its key, its data file and its shared state.
#[derive(Debug)]
pub(crate) struct Resource {
    /// Cache key: `track:ID` or the remote URL.
    pub(crate) key: String,
    state: Mutex<State>,
    changed: watch::Sender<u64>,
}

impl Resource {
    /// A resource with the given initial state.
    pub(crate) fn new(key: String, state: State) -> Self {
        Self {
            key,
            state: Mutex::new(state),
            changed: watch::Sender::new(0),
        }
    }

    /// Locks the state. Never hold the guard across an `.await`.
    pub(crate) fn lock(&self) -> MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// A receiver woken on every change.
    pub(crate) fn subscribe(&self) -> watch::Receiver<u64> {
        self.changed.subscribe()
    }

    /// Wakes every waiting reader.
    pub(crate) fn notify(&self) {
        self.changed.send_modify(|v| *v = v.wrapping_add(1));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn state() -> State {
        State::new(Url::parse("http://127.0.0.1/a").unwrap(), None, 0, PathBuf::new())
    }

    #[test]
    fn a_reader_far_ahead_of_a_fill_gets_its_own() {
        let mut st = state();
        st.fills.push(FillSlot {
            id: 1,
            start: 0,
            pos: 1000,
        });
        assert_eq!(st.covering_fill(1000), Some(1));
        assert_eq!(st.covering_fill(1000 + SOON_BYTES - 1), Some(1));
        assert_eq!(st.covering_fill(1000 + SOON_BYTES), None);
        // A fill stops at present bytes, so it does not cover what lies beyond them.
        st.present.insert(5000, 6000);
        assert_eq!(st.covering_fill(7000), None);
        assert_eq!(st.covering_fill(4000), Some(1));
    }

    #[test]
    fn outcomes_are_remembered() {
        let mut st = state();
        st.fills.push(FillSlot {
            id: 7,
            start: 0,
            pos: 0,
        });
        assert!(st.outcome(7).is_none());
        st.finish_fill(7, Some(Arc::new(Error::NoSpace)));
        assert!(matches!(st.outcome(7), Some(Some(_))));
    }

    #[test]
    fn validator_changes_are_detected() {
        let a = Meta {
            size: Some(10),
            etag: Some("\"a\"".into()),
            ..Meta::default()
        };
        let b = Meta {
            size: Some(10),
            etag: Some("\"b\"".into()),
            ..Meta::default()
        };
        assert!(a.is_replaced_by(&b));
        assert!(!a.is_replaced_by(&a.clone()));
        let no_tag = Meta {
            size: Some(10),
            ..Meta::default()
        };
        let longer = Meta {
            size: Some(11),
            ..Meta::default()
        };
        assert!(no_tag.is_replaced_by(&longer));
        assert_ne!(no_tag.served_etag("k"), longer.served_etag("k"));
        assert_eq!(a.served_etag("k"), "\"a\"");
    }
}
