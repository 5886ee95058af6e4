//! Deciding what part of a representation to send (RFC 9110 §14): a pure function over the
//! request's `Range` and `If-Range` headers and the representation's length and validators.
//!
//! Parsing is done by `http-range-header`; this module adds the RFC's decisions on top: a stale
//! `If-Range` or an invalid or multi-range header means "send it all" (a server may always ignore
//! Range), a range starting at or past the end is unsatisfiable.

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

/// Evaluates `range` (the `Range` header) against a representation of `len` bytes whose strong
/// ETag is `etag`, honouring `If-Range` (§13.1.5: only an exact strong ETag or an exact
/// `Last-Modified` date keeps the range).
pub(crate) fn evaluate(
    range: Option<&str>,
    if_range: Option<&str>,
    etag: &str,
    last_modified: Option<&str>,
    len: u64,
) -> RangeOutcome {
    let Some(range) = range else {
        return RangeOutcome::Full;
    };
    if let Some(condition) = if_range {
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
    let Ok(parsed) = http_range_header::parse_range_header(range.trim()) else {
        return RangeOutcome::Full;
    };
    let [one] = parsed.ranges.as_slice() else {
        return RangeOutcome::Full;
    };
    match (one.start, one.end) {
        (StartPosition::Index(a), EndPosition::Index(b)) if b < a => RangeOutcome::Full,
        (StartPosition::Index(a), _) if a >= len => RangeOutcome::Unsatisfiable,
        (StartPosition::Index(a), EndPosition::Index(b)) => RangeOutcome::Partial {
            start: a,
            end: b.min(len - 1),
        },
        (StartPosition::Index(a), EndPosition::LastByte) => RangeOutcome::Partial { start: a, end: len - 1 },
        (StartPosition::FromLast(_), _) if len == 0 => RangeOutcome::Unsatisfiable,
        (StartPosition::FromLast(n), _) => RangeOutcome::Partial {
            start: len.saturating_sub(n),
            end: len - 1,
        },
    }
}

#[cfg(test)]
mod tests {
    use super::RangeOutcome::*;
    use super::*;

    const TAG: &str = "\"v1\"";

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
        ] {
            assert_eq!(eval(r), Full, "{r}");
        }
        assert_eq!(evaluate(None, None, TAG, None, 1000), Full);
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
}
