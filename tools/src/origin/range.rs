//! What the conditional and range headers of a request ask for, as pure functions of the header
//! values and our validators: `Range` (RFC 9110 §14), `If-Range` (§13.1.5) and `If-None-Match`
//! (§13.1.2). The request path applies them in §13.2.2 order; they are unit-tested here.

use http_range_header::{EndPosition, RangeUnsatisfiableError, StartPosition};

/// What a single `Range` header asks of a representation of a given length (RFC 9110 §14.1.2).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum RangeOutcome {
    /// No usable range: send the whole representation with `200`.
    Full,
    /// Send bytes `start..=end` with `206`.
    Partial { start: u64, end: u64 },
    /// Nothing of the representation is selected: `416`.
    Unsatisfiable,
}

/// Interprets one `Range` header value for a representation of `len` bytes (RFC 9110 §14.1.2,
/// §14.2). Only single ranges are honoured; multi-range and malformed headers are ignored (`Full`),
/// which §14.2 allows. A range whose last position is below its first is invalid, so ignored too.
pub(super) fn select_range(value: &str, len: u64) -> RangeOutcome {
    let parsed = match http_range_header::parse_range_header(value) {
        Ok(parsed) => parsed,
        // `bytes=-0` is well-formed but can never be satisfied (§14.1.2).
        Err(RangeUnsatisfiableError::ZeroSuffix) if !value.contains(',') => return RangeOutcome::Unsatisfiable,
        Err(_) => return RangeOutcome::Full,
    };
    let [range] = parsed.ranges.as_slice() else {
        return RangeOutcome::Full;
    };
    match (range.start, range.end) {
        (StartPosition::Index(start), EndPosition::Index(end)) if end < start => RangeOutcome::Full,
        (StartPosition::Index(start), _) if start >= len => RangeOutcome::Unsatisfiable,
        (StartPosition::Index(start), EndPosition::Index(end)) => RangeOutcome::Partial {
            start,
            end: end.min(len - 1),
        },
        (StartPosition::Index(start), EndPosition::LastByte) => RangeOutcome::Partial { start, end: len - 1 },
        // A suffix longer than the representation selects all of it; an empty representation
        // has no bytes to put in a 206, so it is sent whole (and empty).
        (StartPosition::FromLast(_), _) if len == 0 => RangeOutcome::Full,
        (StartPosition::FromLast(suffix), _) => RangeOutcome::Partial {
            start: len - suffix.min(len),
            end: len - 1,
        },
    }
}

/// `If-Range` (RFC 9110 §13.1.5): an entity tag must match ours by strong comparison (a weak tag
/// never does); a date must equal our `Last-Modified` exactly.
pub(super) fn if_range_matches(value: &str, etag: &str, last_modified: Option<&str>) -> bool {
    let value = value.trim();
    if value.starts_with('"') {
        value == etag
    } else if value.starts_with("W/") {
        false
    } else {
        last_modified == Some(value)
    }
}

/// `If-None-Match` (RFC 9110 §13.1.2), weak comparison: true when the client's copy is current,
/// so the answer is `304`.
pub(super) fn if_none_match_hits(value: &str, etag: &str) -> bool {
    let ours = etag.trim_start_matches("W/");
    value
        .split(',')
        .map(str::trim)
        .any(|tag| tag == "*" || tag.trim_start_matches("W/") == ours)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranges_follow_rfc_9110() {
        use RangeOutcome::{Full, Partial, Unsatisfiable};
        let cases = [
            ("bytes=0-9", 100, Partial { start: 0, end: 9 }),
            ("bytes=10-", 100, Partial { start: 10, end: 99 }),
            ("bytes=-10", 100, Partial { start: 90, end: 99 }),
            ("bytes=-500", 100, Partial { start: 0, end: 99 }),
            ("bytes=90-500", 100, Partial { start: 90, end: 99 }),
            ("bytes=99-99", 100, Partial { start: 99, end: 99 }),
            ("bytes=100-", 100, Unsatisfiable),
            ("bytes=100-200", 100, Unsatisfiable),
            ("bytes=-0", 100, Unsatisfiable),
            ("bytes=0-", 0, Unsatisfiable),
            ("bytes=-5", 0, Full),
            ("bytes=9-3", 100, Full),
            ("bytes=0-1,5-6", 100, Full),
            ("bytes=abc", 100, Full),
            ("items=0-5", 100, Full),
            ("bytes= 0-5", 100, Full),
            ("", 100, Full),
        ];
        for (header, len, expected) in cases {
            assert_eq!(select_range(header, len), expected, "{header:?} on {len} bytes");
        }
    }

    #[test]
    fn validators_compare_as_rfc_9110_says() {
        let etag = "\"a-b-c\"";
        let date = "Wed, 21 Oct 2015 07:28:00 GMT";
        assert!(if_range_matches("\"a-b-c\"", etag, Some(date)));
        assert!(!if_range_matches("\"a-b-d\"", etag, Some(date)));
        assert!(!if_range_matches("W/\"a-b-c\"", etag, Some(date)));
        assert!(if_range_matches(date, etag, Some(date)));
        assert!(!if_range_matches("Thu, 22 Oct 2015 07:28:00 GMT", etag, Some(date)));
        assert!(!if_range_matches(date, etag, None));
        assert!(if_none_match_hits("\"x\", W/\"a-b-c\"", etag));
        assert!(if_none_match_hits("*", etag));
        assert!(!if_none_match_hits("\"x\"", etag));
    }
}
