//! The catalog: the app's tracks by ID, each with its backend URL and what we know of it.
//!
//! Kept in memory (read on every `/tracks/ID` request) and persisted in the index. Shared by the
//! HTTP layer and the downloader, which asks it for a track's current (possibly re-signed) URL
//! and its expected SHA-256.

use std::collections::HashMap;
use std::sync::RwLock;

use serde::{Deserialize, Serialize};

use crate::cache::TrackRow;

/// A track to register in the catalog (the body of `PUT /api/tracks/ID`).
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct TrackSpec {
    /// Where the backend serves it; may be re-signed later by registering again.
    pub url: String,
    /// Expected SHA-256 of the whole body, hex.
    #[serde(default)]
    pub sha256: Option<String>,
    /// Expected size in bytes.
    #[serde(default)]
    pub size: Option<u64>,
    /// MIME type to serve if the backend sends none.
    #[serde(default)]
    pub mime: Option<String>,
}

/// A catalog track and its cache state (the JSON of `GET /api/tracks/ID`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct TrackInfo {
    /// The track's ID.
    pub id: String,
    /// Its backend URL.
    pub url: String,
    /// Expected SHA-256, lowercase hex.
    pub sha256: Option<String>,
    /// Total size in bytes: from the backend once known, else from the catalog.
    pub size: Option<u64>,
    /// MIME type from the catalog.
    pub mime: Option<String>,
    /// Bytes cached (servable now).
    pub cached_bytes: u64,
    /// Bytes durably recorded in the index (survive a crash).
    pub recorded_bytes: u64,
    /// Every byte is cached.
    pub complete: bool,
    /// Pinned by an offline download.
    pub pinned: bool,
}

/// The catalog of tracks.
#[derive(Debug, Default)]
pub(crate) struct Catalog {
    tracks: RwLock<HashMap<String, TrackRow>>,
}

impl Catalog {
    /// A catalog holding `tracks`.
    pub(crate) fn new(tracks: Vec<TrackRow>) -> Self {
        Self {
            tracks: RwLock::new(tracks.into_iter().map(|t| (t.id.clone(), t)).collect()),
        }
    }

    /// Track `id`, if registered.
    pub(crate) fn get(&self, id: &str) -> Option<TrackRow> {
        self.tracks.read().unwrap_or_else(|p| p.into_inner()).get(id).cloned()
    }

    /// Every track, sorted by ID.
    pub(crate) fn all(&self) -> Vec<TrackRow> {
        let mut out: Vec<TrackRow> = self
            .tracks
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .values()
            .cloned()
            .collect();
        out.sort_by(|a, b| a.id.cmp(&b.id));
        out
    }

    /// Removes track `id`; whether it was registered.
    pub(crate) fn remove(&self, id: &str) -> bool {
        self.tracks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .remove(id)
            .is_some()
    }

    /// Adds or replaces a track.
    pub(crate) fn insert(&self, track: TrackRow) {
        self.tracks
            .write()
            .unwrap_or_else(|p| p.into_inner())
            .insert(track.id.clone(), track);
    }
}

/// The cache key of a catalog track: stable across re-signed URLs.
pub(crate) fn track_key(id: &str) -> String {
    format!("track:{id}")
}
