//! Deciding what part of a representation to send (RFC 9110 §14): the request's `Range` and
//! `If-Range` headers, parsed once when the request arrives into a [`RangeRequest`], then
//! evaluated against the representation's length and validators once those are known.
//!
//! Parsing is done by `http-range-header`; this module adds the RFC's decisions on top: a stale
//! `If-Range` or an invalid or multi-range header means "send it all" (a server may always ignore
//! Range), a range starting at or past the end is unsatisfiable.
//!
//! One parsed value serves the three readers of the header, so they cannot disagree: the fill
//! that starts before the length is known ([`RangeRequest::start_hint`]), the response
//! ([`RangeRequest::evaluate`]) and the request's log line ([`RangeRequest::loggable`]).

use http::header::{IF_RANGE, RANGE};
use http::HeaderMap;
use http_range_header::{EndPosition, StartPosition};

/// What to send.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum RangeOutcome {
    /// The whole representation, `200`.
    Full,
    /// Bytes `start..=end`, `206`.
    Partial { start: u64, end: u64 },
    /// Nothing can be sent, `416` with `Content-Range: bytes */len`.
    Unsatisfiable,
}

/// The one byte range a request asks for, as far as this server honours it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
enum Spec {
    /// No `Range` header, or one the server ignores (malformed, several ranges, a last position
    /// before the first, not visible ASCII): the whole representation.
    #[default]
    Whole,
    /// `bytes=first-last`.
    FromTo { first: u64, last: u64 },
    /// `bytes=first-`.
    From(u64),
    /// `bytes=-n`: the last `n` bytes (`n` > 0).
    Suffix(u64),
}

/// A request's `Range` and `If-Range` headers, parsed once when it arrives.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub(crate) struct RangeRequest {
    /// The range asked for.
    spec: Spec,
    /// The `If-Range` header, if present and visible ASCII.
    if_range: Option<String>,
    /// The `Range` header as it is logged: the header when it is a short, plain `bytes=` spec
    /// (digits, `-`, `,`, spaces), else empty.
    loggable: String,
}

impl RangeRequest {
    /// Reads the `Range` and `If-Range` headers of a request.
    pub(crate) fn from_headers(headers: &HeaderMap) -> Self {
        let text = |name| headers.get(name).and_then(|v| v.to_str().ok());
        Self::parse(text(RANGE), text(IF_RANGE))
    }

    /// Parses a `Range` header value and an `If-Range` header value.
    pub(crate) fn parse(range: Option<&str>, if_range: Option<&str>) -> Self {
        Self {
            spec: range.map_or(Spec::Whole, spec),
            if_range: if_range.map(str::to_owned),
            loggable: range.filter(|r| is_plain(r)).unwrap_or_default().to_owned(),
        }
    }

    /// Where the first wanted byte is, to start a fill there before the length is known: the
    /// start of a `bytes=first-` or `bytes=first-last` range, else 0 (a suffix range needs the
    /// length; an ignored header asks for the whole representation).
    pub(crate) fn start_hint(&self) -> u64 {
        match self.spec {
            Spec::FromTo { first, .. } | Spec::From(first) => first,
            Spec::Whole | Spec::Suffix(_) => 0,
        }
    }

    /// What to send of a representation of `len` bytes whose strong ETag is `etag`, honouring
    /// `If-Range` (§13.1.5: only an exact strong ETag or an exact `Last-Modified` date keeps the
    /// range).
    pub(crate) fn evaluate(&self, etag: &str, last_modified: Option<&str>, len: u64) -> RangeOutcome {
        if self.spec == Spec::Whole {
            return RangeOutcome::Full;
        }
        if let Some(condition) = &self.if_range {
            let condition = condition.trim();
            let matches = if condition.starts_with('"') {
                condition == etag
            } else {
                !condition.starts_with("W/") && last_modified.is_some_and(|lm| lm == condition)
            };
            if !matches {
                return RangeOutcome::Full;
            }
        }
        match self.spec {
            Spec::Whole => RangeOutcome::Full,
            Spec::FromTo { first, .. } | Spec::From(first) if first >= len => RangeOutcome::Unsatisfiable,
            Spec::FromTo { first, last } => RangeOutcome::Partial {
                start: first,
                end: last.min(len - 1),
            },
            Spec::From(first) => RangeOutcome::Partial {
                start: first,
                end: len - 1,
            },
            Spec::Suffix(_) if len == 0 => RangeOutcome::Unsatisfiable,
            Spec::Suffix(n) => RangeOutcome::Partial {
                start: len.saturating_sub(n),
                end: len - 1,
            },
        }
    }

    /// The `Range` header for the request's log line: the header when it is a short, plain
    /// `bytes=` spec, else empty, so no arbitrary header text reaches the logs.
    pub(crate) fn loggable(&self) -> &str {
        &self.loggable
    }
}

/// The one range a `Range` header value asks for, if this server honours it.
fn spec(range: &str) -> Spec {
    let Ok(parsed) = http_range_header::parse_range_header(range.trim()) else {
        return Spec::Whole;
    };
    let [one] = parsed.ranges.as_slice() else {
        return Spec::Whole;
    };
    match (one.start, one.end) {
        (StartPosition::Index(first), EndPosition::Index(last)) if last < first => Spec::Whole,
        (StartPosition::Index(first), EndPosition::Index(last)) => Spec::FromTo { first, last },
        (StartPosition::Index(first), EndPosition::LastByte) => Spec::From(first),
        (StartPosition::FromLast(n), _) => Spec::Suffix(n),
    }
}

/// Whether a `Range` header value is a short, plain `bytes=` spec (digits, `-`, `,`, spaces).
fn is_plain(value: &str) -> bool {
    value.len() <= 64
        && value
            .strip_prefix("bytes=")
            .is_some_and(|spec| spec.bytes().all(|b| b.is_ascii_digit() || b"-, ".contains(&b)))
}

#[cfg(test)]
mod tests {
    use super::RangeOutcome::*;
    use super::*;
    use proptest::prelude::*;

    const TAG: &str = "\"v1\"";

    fn evaluate(
        range: Option<&str>,
        if_range: Option<&str>,
        etag: &str,
        last_modified: Option<&str>,
        len: u64,
    ) -> RangeOutcome {
        RangeRequest::parse(range, if_range).evaluate(etag, last_modified, len)
    }

    fn eval(range: &str) -> RangeOutcome {
        evaluate(Some(range), None, TAG, None, 1000)
    }

    #[test]
    fn single_ranges() {
        assert_eq!(eval("bytes=0-99"), Partial { start: 0, end: 99 });
        assert_eq!(eval("bytes=900-"), Partial { start: 900, end: 999 });
        assert_eq!(eval("bytes=-100"), Partial { start: 900, end: 999 });
        assert_eq!(eval("bytes=-5000"), Partial { start: 0, end: 999 });
        assert_eq!(eval("bytes=990-5000"), Partial { start: 990, end: 999 });
        assert_eq!(eval("bytes=0-"), Partial { start: 0, end: 999 });
    }

    #[test]
    fn unsatisfiable_ranges() {
        assert_eq!(eval("bytes=1000-"), Unsatisfiable);
        assert_eq!(eval("bytes=1000-2000"), Unsatisfiable);
        assert_eq!(evaluate(Some("bytes=-1"), None, TAG, None, 0), Unsatisfiable);
        assert_eq!(evaluate(Some("bytes=0-"), None, TAG, None, 0), Unsatisfiable);
    }

    #[test]
    fn malformed_and_multi_ranges_send_everything() {
        for r in [
            "bytes=abc",
            "bytes=5-2",
            "items=0-1",
            "bytes=0-1,5-9",
            "bytes=",
            "bytes=--1",
            "bytes= 0-1",
            "bytes=-0",
            "bytes=01-5",
            "bytes=+1-5",
            "bytes=99999999999999999999-",
        ] {
            assert_eq!(eval(r), Full, "{r}");
        }
        assert_eq!(evaluate(None, None, TAG, None, 1000), Full);
        assert_eq!(evaluate(None, Some(TAG), TAG, None, 1000), Full);
    }

    #[test]
    fn if_range_needs_an_exact_strong_match() {
        let lm = Some("Wed, 21 Oct 2015 07:28:00 GMT");
        assert_eq!(
            evaluate(Some("bytes=0-9"), Some(TAG), TAG, lm, 1000),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(evaluate(Some("bytes=0-9"), Some("\"v0\""), TAG, lm, 1000), Full);
        assert_eq!(evaluate(Some("bytes=0-9"), Some("W/\"v1\""), TAG, lm, 1000), Full);
        assert_eq!(
            evaluate(Some("bytes=0-9"), lm, TAG, lm, 1000),
            Partial { start: 0, end: 9 }
        );
        assert_eq!(
            evaluate(Some("bytes=0-9"), Some("Thu, 22 Oct 2015 07:28:00 GMT"), TAG, lm, 1000),
            Full
        );
    }

    #[test]
    fn the_start_hint_is_the_first_position_of_an_honoured_range() {
        let hint = |r: Option<&str>| RangeRequest::parse(r, None).start_hint();
        assert_eq!(hint(Some("bytes=500-")), 500);
        assert_eq!(hint(Some("bytes=500-600")), 500);
        assert_eq!(hint(Some("bytes=-500")), 0);
        assert_eq!(hint(Some("garbage")), 0);
        assert_eq!(hint(None), 0);
        // Headers answered with the whole body start their fill at byte 0.
        assert_eq!(hint(Some("bytes=500-600,700-")), 0);
        assert_eq!(hint(Some("bytes=600-500")), 0);
        // A stale `If-Range` is only known once the validator is: the hint keeps the range.
        assert_eq!(RangeRequest::parse(Some("bytes=7-"), Some("\"v0\"")).start_hint(), 7);
    }

    #[test]
    fn only_plain_byte_ranges_are_logged() {
        let with = |v: &str| {
            let mut h = HeaderMap::new();
            h.insert(RANGE, http::HeaderValue::from_str(v).unwrap());
            RangeRequest::from_headers(&h).loggable().to_string()
        };
        assert_eq!(with("bytes=0-99"), "bytes=0-99");
        assert_eq!(with("bytes=-5, 7-"), "bytes=-5, 7-");
        assert_eq!(with("bytes=5-2"), "bytes=5-2");
        assert_eq!(with("bytes=0-1;secret"), "");
        assert_eq!(with("items=0-1"), "");
        assert_eq!(with(&format!("bytes={}", "1".repeat(60))), "");
        assert_eq!(RangeRequest::from_headers(&HeaderMap::new()).loggable(), "");
        let mut h = HeaderMap::new();
        h.insert(RANGE, http::HeaderValue::from_bytes(b"bytes=0-\xff").unwrap());
        assert_eq!(RangeRequest::from_headers(&h).loggable(), "");
        assert_eq!(RangeRequest::from_headers(&h).evaluate(TAG, None, 10), Full);
    }

    #[test]
    fn both_headers_are_read() {
        let mut h = HeaderMap::new();
        h.insert(RANGE, http::HeaderValue::from_static("bytes=2-3"));
        h.insert(IF_RANGE, http::HeaderValue::from_static("\"v0\""));
        let range = RangeRequest::from_headers(&h);
        assert_eq!(range.evaluate(TAG, None, 10), Full);
        assert_eq!(range.evaluate("\"v0\"", None, 10), Partial { start: 2, end: 3 });
    }

    proptest! {
        /// Any header text against any length: no panic, and a partial answer lies inside the
        /// representation and starts where the hint said (for ranges that name their start).
        #[test]
        fn any_header_evaluates_safely(range in "(bytes=)?[0-9 ,-]{0,12}|\\PC{0,20}", len in 0u64..2000) {
            let request = RangeRequest::parse(Some(&range), None);
            match request.evaluate(TAG, None, len) {
                Partial { start, end } => {
                    prop_assert!(start <= end && end < len, "{range}: {start}-{end} of {len}");
                    let hint = request.start_hint();
                    prop_assert!(hint == 0 || hint == start, "{range}: hint {hint}, start {start}");
                }
                Unsatisfiable => prop_assert!(request.start_hint() >= len || len == 0),
                Full => {}
            }
        }
    }
}
