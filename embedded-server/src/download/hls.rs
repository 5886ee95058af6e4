//! Offline download of an HLS rendition: which rendition, and which resources it is made of.
//!
//! A download of a master playlist keeps one variant stream (the lowest, the highest, the best
//! under a bandwidth cap, or by default the middle one) plus the audio rendition its `AUDIO`
//! group plays by default; a download of a media playlist keeps that playlist. Every resource
//! they name — media playlists, segments (byte-range segments share their resource), `EXT-X-MAP`
//! init sections and `EXT-X-KEY` keys — becomes a member of the download: fetched through the
//! cache like anything else, then pinned together. The choice is pure and unit-tested here; the
//! task does the fetching.

use std::fmt;
use std::str::FromStr;

use m3u8_rs::{MasterPlaylist, MediaPlaylist, Playlist};
use serde::de::{self, Deserializer, IgnoredAny, MapAccess, Visitor};
use serde::{Deserialize, Serialize};
use url::Url;

use crate::error::{Error, ParseError, UpstreamCause, UpstreamError};

/// Which rendition of a master playlist to download.
///
/// As text ([`Display`](fmt::Display), [`FromStr`]; the Kotlin API's and the index's form):
/// `lowest`, `highest`, `middle`, `max:BPS`. As JSON (SPEC §7a, `POST /api/downloads`): `"lowest"`,
/// `"highest"`, `"middle"` or `{"max_bandwidth": BPS}`, and the text forms are read too.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum VariantChoice {
    /// The lowest bandwidth.
    Lowest,
    /// The highest bandwidth.
    Highest,
    /// The highest bandwidth at or under this many bits per second (the lowest if none is).
    MaxBandwidth(u64),
    /// The middle one by bandwidth: a sensible default between data use and quality.
    #[default]
    Middle,
}

/// The forms of [`VariantChoice`] as text, for error messages.
const VARIANT_FORMS: &str = "lowest, highest, middle or max:BITS_PER_SECOND";

impl fmt::Display for VariantChoice {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Lowest => f.write_str("lowest"),
            Self::Highest => f.write_str("highest"),
            Self::MaxBandwidth(bps) => write!(f, "max:{bps}"),
            Self::Middle => f.write_str("middle"),
        }
    }
}

impl FromStr for VariantChoice {
    type Err = ParseError;

    /// Parses `lowest`, `highest`, `middle` or `max:BPS` (BPS in decimal digits; `max:0` keeps the
    /// lowest, like any cap under every variant).
    fn from_str(text: &str) -> Result<Self, ParseError> {
        match text {
            "lowest" => Ok(Self::Lowest),
            "highest" => Ok(Self::Highest),
            "middle" => Ok(Self::Middle),
            _ => text
                .strip_prefix("max:")
                .filter(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()))
                .and_then(|n| n.parse().ok())
                .map(Self::MaxBandwidth)
                .ok_or_else(|| ParseError::new("variant", text, VARIANT_FORMS)),
        }
    }
}

impl<'de> Deserialize<'de> for VariantChoice {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct Choice;

        impl<'de> Visitor<'de> for Choice {
            type Value = VariantChoice;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                write!(f, "{VARIANT_FORMS}, or {{\"max_bandwidth\": BITS_PER_SECOND}}")
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<VariantChoice, E> {
                text.parse().map_err(E::custom)
            }

            fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<VariantChoice, A::Error> {
                const FIELDS: &[&str] = &["max_bandwidth"];
                let Some(key) = map.next_key::<String>()? else {
                    return Err(de::Error::missing_field("max_bandwidth"));
                };
                if key != "max_bandwidth" {
                    return Err(de::Error::unknown_field(&key, FIELDS));
                }
                let bps = map.next_value()?;
                if let Some(more) = map.next_key::<String>()? {
                    let _: IgnoredAny = map.next_value()?;
                    return Err(de::Error::unknown_field(&more, FIELDS));
                }
                Ok(VariantChoice::MaxBandwidth(bps))
            }
        }

        deserializer.deserialize_any(Choice)
    }
}

/// Parses a playlist the backend sent.
pub(crate) fn parse(bytes: &[u8]) -> Result<Playlist, Error> {
    m3u8_rs::parse_playlist_res(bytes)
        // m3u8-rs's error borrows the bytes: only its verdict can be kept.
        .map_err(|_| UpstreamError::protocol("the backend sent a playlist that does not parse").into())
}

/// The media playlists to download from a master: the chosen variant's, then its default audio
/// rendition's (if it has its own URI).
pub(crate) fn choose(master: &MasterPlaylist, base: &Url, choice: VariantChoice) -> Result<Vec<Url>, Error> {
    let mut variants: Vec<_> = master
        .variants
        .iter()
        .filter(|v| !v.is_i_frame && !v.uri.is_empty())
        .collect();
    variants.sort_by_key(|v| v.bandwidth);
    let chosen = match choice {
        VariantChoice::Lowest => variants.first(),
        VariantChoice::Highest => variants.last(),
        VariantChoice::MaxBandwidth(cap) => variants.iter().rev().find(|v| v.bandwidth <= cap).or(variants.first()),
        VariantChoice::Middle => variants.get(variants.len().saturating_sub(1) / 2),
    }
    .ok_or_else(|| Error::from(UpstreamError::protocol("the master playlist names no variant stream")))?;
    let mut out = vec![join(base, &chosen.uri)?];
    if let Some(group) = &chosen.audio {
        let in_group: Vec<_> = master
            .alternatives
            .iter()
            .filter(|a| &a.group_id == group && a.uri.is_some())
            .collect();
        let audio = in_group.iter().find(|a| a.default).or(in_group.first());
        if let Some(uri) = audio.and_then(|a| a.uri.as_deref()) {
            let url = join(base, uri)?;
            if !out.contains(&url) {
                out.push(url);
            }
        }
    }
    Ok(out)
}

/// Every resource a media playlist needs, in order, without repeats: init sections, keys and
/// segments.
pub(crate) fn resources(media: &MediaPlaylist, base: &Url) -> Result<Vec<Url>, Error> {
    let mut out: Vec<Url> = Vec::new();
    let mut push = |url: Url| {
        if !out.contains(&url) {
            out.push(url);
        }
    };
    for segment in &media.segments {
        if let Some(map) = &segment.map {
            push(join(base, &map.uri)?);
        }
        if let Some(uri) = segment.key.as_ref().and_then(|k| k.uri.as_deref()) {
            let url = join(base, uri)?;
            if matches!(url.scheme(), "http" | "https") {
                push(url);
            }
        }
        push(join(base, &segment.uri)?);
    }
    Ok(out)
}

fn join(base: &Url, uri: &str) -> Result<Url, Error> {
    base.join(uri.trim()).map_err(|e| {
        UpstreamError::Protocol(UpstreamCause::new(
            format!("the playlist names a bad URI {uri:?}: {e}"),
            e,
        ))
        .into()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MASTER: &str = "#EXTM3U
#EXT-X-MEDIA:TYPE=AUDIO,GROUP-ID=\"aud\",NAME=\"en\",DEFAULT=YES,URI=\"audio/en.m3u8\"
#EXT-X-STREAM-INF:BANDWIDTH=256000,AUDIO=\"aud\"
hi/index.m3u8
#EXT-X-STREAM-INF:BANDWIDTH=64000
lo/index.m3u8?sig=1
#EXT-X-STREAM-INF:BANDWIDTH=128000
/mid/index.m3u8
#EXT-X-I-FRAME-STREAM-INF:BANDWIDTH=10000,URI=\"iframes.m3u8\"
";

    fn master() -> MasterPlaylist {
        match m3u8_rs::parse_playlist_res(MASTER.as_bytes()).unwrap() {
            Playlist::MasterPlaylist(m) => m,
            Playlist::MediaPlaylist(_) => panic!("expected a master"),
        }
    }

    #[test]
    fn variants_are_chosen_by_bandwidth() {
        let base = Url::parse("http://h/album/master.m3u8").unwrap();
        let m = master();
        assert_eq!(
            choose(&m, &base, VariantChoice::Lowest).unwrap()[0].as_str(),
            "http://h/album/lo/index.m3u8?sig=1"
        );
        assert_eq!(
            choose(&m, &base, VariantChoice::Middle).unwrap()[0].as_str(),
            "http://h/mid/index.m3u8"
        );
        let highest = choose(&m, &base, VariantChoice::Highest).unwrap();
        assert_eq!(
            highest.iter().map(Url::as_str).collect::<Vec<_>>(),
            ["http://h/album/hi/index.m3u8", "http://h/album/audio/en.m3u8"]
        );
        assert_eq!(
            choose(&m, &base, VariantChoice::MaxBandwidth(200_000)).unwrap()[0].as_str(),
            "http://h/mid/index.m3u8"
        );
        assert_eq!(
            choose(&m, &base, VariantChoice::MaxBandwidth(1)).unwrap()[0].as_str(),
            "http://h/album/lo/index.m3u8?sig=1"
        );
    }

    #[test]
    fn media_resources_include_maps_keys_and_dedupe_byte_ranges() {
        let text = "#EXTM3U
#EXT-X-TARGETDURATION:2
#EXT-X-MAP:URI=\"init.mp4\"
#EXT-X-KEY:METHOD=AES-128,URI=\"https://keys.example/k1\"
#EXTINF:2,
#EXT-X-BYTERANGE:1000@0
all.mp4
#EXTINF:2,
#EXT-X-BYTERANGE:1000@1000
all.mp4
#EXTINF:2,
seg3.m4s
#EXT-X-ENDLIST
";
        let media = match m3u8_rs::parse_playlist_res(text.as_bytes()).unwrap() {
            Playlist::MediaPlaylist(m) => m,
            Playlist::MasterPlaylist(_) => panic!("expected a media playlist"),
        };
        let base = Url::parse("http://h/a/index.m3u8").unwrap();
        let got: Vec<String> = resources(&media, &base)
            .unwrap()
            .iter()
            .map(|u| u.to_string())
            .collect();
        assert_eq!(
            got,
            [
                "http://h/a/init.mp4",
                "https://keys.example/k1",
                "http://h/a/all.mp4",
                "http://h/a/seg3.m4s"
            ]
        );
    }

    #[test]
    fn choices_round_trip_through_text_and_json() {
        for (c, text) in [
            (VariantChoice::Lowest, "lowest"),
            (VariantChoice::Highest, "highest"),
            (VariantChoice::MaxBandwidth(96000), "max:96000"),
            (VariantChoice::MaxBandwidth(0), "max:0"),
            (VariantChoice::MaxBandwidth(u64::MAX), "max:18446744073709551615"),
            (VariantChoice::Middle, "middle"),
        ] {
            assert_eq!(c.to_string(), text);
            assert_eq!(text.parse::<VariantChoice>(), Ok(c));
            let json = serde_json::to_value(c).unwrap();
            assert_eq!(serde_json::from_value::<VariantChoice>(json).unwrap(), c);
            assert_eq!(serde_json::from_value::<VariantChoice>(text.into()).unwrap(), c);
        }
    }

    #[test]
    fn every_json_form_of_the_spec_is_read() {
        let read = |v: serde_json::Value| serde_json::from_value::<VariantChoice>(v);
        assert_eq!(read(serde_json::json!("lowest")).unwrap(), VariantChoice::Lowest);
        assert_eq!(read(serde_json::json!("highest")).unwrap(), VariantChoice::Highest);
        assert_eq!(read(serde_json::json!("middle")).unwrap(), VariantChoice::Middle);
        assert_eq!(
            read(serde_json::json!({"max_bandwidth": 500_000})).unwrap(),
            VariantChoice::MaxBandwidth(500_000)
        );
        assert_eq!(
            serde_json::to_value(VariantChoice::MaxBandwidth(7)).unwrap(),
            serde_json::json!({"max_bandwidth": 7})
        );
        assert_eq!(serde_json::to_value(VariantChoice::Lowest).unwrap(), "lowest");
    }

    #[test]
    fn bad_choices_are_a_clear_error() {
        for bad in [
            "",
            "Lowest",
            "max:",
            "max:-1",
            "max:+5",
            "max:1e6",
            "max: 5",
            "max:99999999999999999999",
            "best",
        ] {
            let message = bad.parse::<VariantChoice>().unwrap_err().to_string();
            assert!(message.starts_with("unknown variant"), "{bad}: {message}");
            assert!(message.contains("max:BITS_PER_SECOND"), "{bad}: {message}");
        }
        for bad in [
            serde_json::json!("best"),
            serde_json::json!({"max_bandwidth": -1}),
            serde_json::json!({"max_bandwidth": "5"}),
            serde_json::json!({"min_bandwidth": 5}),
            serde_json::json!({"max_bandwidth": 5, "extra": 1}),
            serde_json::json!({}),
            serde_json::json!(5),
            serde_json::json!(null),
            serde_json::json!(["lowest"]),
        ] {
            assert!(serde_json::from_value::<VariantChoice>(bad.clone()).is_err(), "{bad}");
        }
    }
}
