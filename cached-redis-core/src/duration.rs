//! Duration strings shared by the environment (`CACHE_DEFAULT_TTL`, …) and
//! the `ttl = "15m"` attribute option.
//!
//! The parser is a `const fn` so that the attribute's literal is checked by
//! the very same code at compile time (a bad literal fails const evaluation)
//! and the two can never disagree.

use std::time::Duration;

/// Why a duration string was rejected.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DurationError {
    /// The string was empty.
    #[error("empty duration")]
    Empty,
    /// The string did not start with a decimal number.
    #[error("expected a whole number, optionally followed by ms, s, m, h or d")]
    NotANumber,
    /// The number was followed by something other than `ms`, `s`, `m`, `h` or `d`.
    #[error("unknown unit: expected ms, s, m, h or d")]
    UnknownUnit,
    /// The duration was zero; a zero TTL would cache nothing.
    #[error("duration must be greater than zero")]
    Zero,
    /// The duration does not fit in 64-bit milliseconds.
    #[error("duration is too large")]
    Overflow,
}

impl DurationError {
    /// The message as a `&'static str`, usable in const panics.
    pub const fn as_str(self) -> &'static str {
        match self {
            DurationError::Empty => "empty duration",
            DurationError::NotANumber => {
                "expected a whole number, optionally followed by ms, s, m, h or d"
            }
            DurationError::UnknownUnit => "unknown unit: expected ms, s, m, h or d",
            DurationError::Zero => "duration must be greater than zero",
            DurationError::Overflow => "duration is too large",
        }
    }
}

/// Parses `"3600"` (seconds), `"500ms"`, `"90s"`, `"15m"`, `"1h"` or `"1d"`.
///
/// Zero is rejected: a cache entry that expires at once is always a mistake.
///
/// ```
/// use std::time::Duration;
/// use cached_redis_core::advanced::parse_duration;
///
/// assert_eq!(parse_duration("15m"), Ok(Duration::from_secs(900)));
/// assert_eq!(parse_duration("3600"), Ok(Duration::from_secs(3600)));
/// assert!(parse_duration("0s").is_err());
/// ```
pub const fn parse_duration(text: &str) -> Result<Duration, DurationError> {
    let bytes = text.as_bytes();
    if bytes.is_empty() {
        return Err(DurationError::Empty);
    }
    let mut value: u64 = 0;
    let mut i = 0;
    while i < bytes.len() && bytes[i].is_ascii_digit() {
        value = match value.checked_mul(10) {
            Some(v) => match v.checked_add((bytes[i] - b'0') as u64) {
                Some(v) => v,
                None => return Err(DurationError::Overflow),
            },
            None => return Err(DurationError::Overflow),
        };
        i += 1;
    }
    if i == 0 {
        return Err(DurationError::NotANumber);
    }
    let unit_ms: u64 = match unit(bytes, i) {
        Some(ms) => ms,
        None => return Err(DurationError::UnknownUnit),
    };
    if value == 0 {
        return Err(DurationError::Zero);
    }
    match value.checked_mul(unit_ms) {
        Some(ms) => Ok(Duration::from_millis(ms)),
        None => Err(DurationError::Overflow),
    }
}

/// Milliseconds per unit for the suffix starting at `start`.
const fn unit(bytes: &[u8], start: usize) -> Option<u64> {
    let rest = bytes.len() - start;
    if rest == 0 {
        return Some(1000);
    }
    if rest == 2 && bytes[start] == b'm' && bytes[start + 1] == b's' {
        return Some(1);
    }
    if rest != 1 {
        return None;
    }
    match bytes[start] {
        b's' => Some(1000),
        b'm' => Some(60 * 1000),
        b'h' => Some(60 * 60 * 1000),
        b'd' => Some(24 * 60 * 60 * 1000),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_every_unit() {
        let cases = [
            ("7", 7_000),
            ("250ms", 250),
            ("90s", 90_000),
            ("15m", 900_000),
            ("1h", 3_600_000),
            ("1d", 86_400_000),
        ];
        for (text, ms) in cases {
            assert_eq!(
                parse_duration(text),
                Ok(Duration::from_millis(ms)),
                "{text}"
            );
        }
    }

    #[test]
    fn rejects_malformed_input() {
        let cases = [
            ("", DurationError::Empty),
            ("m", DurationError::NotANumber),
            ("-5s", DurationError::NotANumber),
            (" 5s", DurationError::NotANumber),
            ("5 s", DurationError::UnknownUnit),
            ("5w", DurationError::UnknownUnit),
            ("5sec", DurationError::UnknownUnit),
            ("1.5h", DurationError::UnknownUnit),
            ("0", DurationError::Zero),
            ("0ms", DurationError::Zero),
            ("99999999999999999999", DurationError::Overflow),
            ("999999999999999999d", DurationError::Overflow),
        ];
        for (text, err) in cases {
            assert_eq!(parse_duration(text), Err(err), "{text:?}");
        }
    }

    #[test]
    fn const_messages_match_display() {
        for err in [
            DurationError::Empty,
            DurationError::NotANumber,
            DurationError::UnknownUnit,
            DurationError::Zero,
            DurationError::Overflow,
        ] {
            assert_eq!(err.as_str(), err.to_string());
        }
    }
}
