//! Offline downloads: a persistent queue, a small worker pool, a network gate, integrity checks
//! and pins.
//!
//! A download is a reader of its resource like any player response: it walks a [`Cursor`] over
//! the whole resource, so it reuses the cache's single-flight fills (a track downloaded while it
//! plays is fetched once) and their mid-body resume. Everything else lives here: the queue in
//! the index (so it survives app kills), the choice of what runs next (priority, then age),
//! retries with backoff for what can be retried, SHA-256 verification, the pin limit, and the
//! network gate that parks downloads while the device is offline or on a metered network.
//!
//! # Layout
//! - `downloader`: the [`Downloader`] the engine holds; it opens the parts below and passes each
//!   call to the one that answers it
//! - `queue`: every download's state, the one place it changes (saved, published, versioned)
//! - `scheduler`: hands queued downloads to free workers; checks completed downloads after start
//! - `task`: one download's run; it reads its row and reports through a `Ledger`, which the
//!   queue implements
//! - `prefetch`: the first bytes of tracks, for an instant start
//! - `source`: resources reached through the cache, shared by tasks and prefetches
//! - `hls`: which rendition of an HLS stream, and which resources make it up
//! - `gate`: the network state and what it allows
//!
//! Imports run one way, downwards: `downloader` → `scheduler` → `queue` → `task` (its `Ledger`)
//! → `source` → `hls`, with `prefetch` beside `task`; the types here and `gate` sit below them all.
//!
//! [`Cursor`]: crate::cache::cursor::Cursor

mod downloader;
mod gate;
mod hls;
mod prefetch;
mod queue;
mod scheduler;
mod source;
mod task;

use std::fmt;
use std::str::FromStr;

use serde::{Deserialize, Serialize};

pub use crate::config::NetworkState;
pub(crate) use downloader::Downloader;
pub use hls::VariantChoice;

use crate::error::ParseError;

/// Where a download is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DownloadState {
    /// Waiting for a worker.
    Queued,
    /// Fetching bytes.
    Running,
    /// Parked until the network allows downloads (offline, or metered and not allowed).
    WaitingForNetwork,
    /// Paused by the app.
    Paused,
    /// Every byte is cached, verified and pinned.
    Completed,
    /// Gave up; `error` says why.
    Failed,
}

impl DownloadState {
    /// Every state, in the order of a download's life.
    pub(crate) const ALL: [Self; 6] = [
        Self::Queued,
        Self::Running,
        Self::WaitingForNetwork,
        Self::Paused,
        Self::Completed,
        Self::Failed,
    ];

    /// The wire name (SPEC §4.2), also stored in the index: `queued`, `running`,
    /// `waiting_for_network`, `paused`, `completed`, `failed`.
    pub(crate) const fn as_str(self) -> &'static str {
        match self {
            Self::Queued => "queued",
            Self::Running => "running",
            Self::WaitingForNetwork => "waiting_for_network",
            Self::Paused => "paused",
            Self::Completed => "completed",
            Self::Failed => "failed",
        }
    }

    /// The state a stored row resumes in after a restart: work that was under way (or a state
    /// this build does not know) is queued again.
    fn resumed(text: &str) -> Self {
        match text.parse() {
            Ok(Self::Running | Self::WaitingForNetwork) | Err(_) => Self::Queued,
            Ok(state) => state,
        }
    }
}

impl fmt::Display for DownloadState {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl FromStr for DownloadState {
    type Err = ParseError;

    /// Parses a wire name (exactly as [`Display`](fmt::Display) writes it).
    fn from_str(text: &str) -> Result<Self, ParseError> {
        Self::ALL.into_iter().find(|s| s.as_str() == text).ok_or_else(|| {
            ParseError::new(
                "download state",
                text,
                "queued, running, waiting_for_network, paused, completed or failed",
            )
        })
    }
}

/// A download as the app sees it (the JSON of `/api/downloads`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct DownloadInfo {
    /// The download's ID.
    pub id: String,
    /// The catalog track, if it is one.
    pub track: Option<String>,
    /// The remote URL.
    pub url: String,
    /// Where it is in its life.
    pub state: DownloadState,
    /// Bytes cached so far.
    pub bytes_done: u64,
    /// Total bytes, when known.
    pub bytes_total: Option<u64>,
    /// Why it failed, for a person to read.
    pub error: Option<String>,
    /// Higher runs first.
    pub priority: i64,
    /// Its bytes are pinned (never evicted).
    pub pinned: bool,
    /// For an HLS download: resources (playlists, segments, init sections, keys) cached so far.
    pub segments_done: Option<u64>,
    /// For an HLS download: resources it needs, once its playlists have been read.
    pub segments_total: Option<u64>,
    /// Running, but holding back its transfer while a player lacks bytes
    /// ([`LinkPolicy::Yield`](crate::LinkPolicy::Yield)); it goes on by itself.
    pub yielding: bool,
    /// Orders the snapshots of one server: of two snapshots of a download, the one with the
    /// higher version is the newer (it was read later). Listeners keep the highest per ID, so an
    /// update that arrives late never overwrites a newer state.
    pub version: u64,
    /// The app's own metadata for this download (a title, an album ID, a JSON document...):
    /// opaque text of at most [`MAX_DOWNLOAD_DATA`] bytes, kept in the index with the download
    /// and returned unchanged; `None` when the app gave none.
    pub data: Option<String>,
}

/// The largest app data ([`DownloadInfo::data`]) kept with a download, in bytes of UTF-8.
pub const MAX_DOWNLOAD_DATA: usize = 16 * 1024;

/// What to download.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum DownloadTarget {
    /// A catalog track, by ID.
    Track(String),
    /// A remote URL on an allowed origin. A URL that turns out to be an HLS playlist downloads
    /// the default (middle) rendition.
    Url(String),
    /// An HLS playlist URL and the rendition to keep offline.
    Hls {
        /// The master (or media) playlist URL.
        url: String,
        /// Which variant stream of a master playlist.
        variant: VariantChoice,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn states_survive_a_restart_as_expected() {
        assert_eq!(DownloadState::resumed("running"), DownloadState::Queued);
        assert_eq!(DownloadState::resumed("waiting_for_network"), DownloadState::Queued);
        assert_eq!(DownloadState::resumed("paused"), DownloadState::Paused);
        assert_eq!(DownloadState::resumed("completed"), DownloadState::Completed);
        assert_eq!(DownloadState::resumed("failed"), DownloadState::Failed);
        assert_eq!(DownloadState::resumed("verifying"), DownloadState::Queued);
    }

    #[test]
    fn states_round_trip_through_text_and_json() {
        let names = [
            "queued",
            "running",
            "waiting_for_network",
            "paused",
            "completed",
            "failed",
        ];
        for (s, name) in DownloadState::ALL.into_iter().zip(names) {
            assert_eq!(s.to_string(), name);
            assert_eq!(name.parse::<DownloadState>(), Ok(s));
            assert_eq!(serde_json::to_value(s).unwrap(), name);
            assert_eq!(serde_json::from_value::<DownloadState>(name.into()).unwrap(), s);
        }
    }

    #[test]
    fn unknown_states_are_a_clear_error() {
        for bad in ["", "Queued", "queued ", "waiting-for-network", "done", "\u{0}"] {
            let e = bad.parse::<DownloadState>().unwrap_err();
            let message = e.to_string();
            assert!(message.starts_with("unknown download state"), "{message}");
            assert!(message.contains("waiting_for_network"), "{message}");
        }
    }
}
