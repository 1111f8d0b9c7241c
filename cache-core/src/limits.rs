//! Key, value and TTL validation shared by every backend.

use std::time::Duration;

use crate::error::{Error, ErrorKind, Result};

/// The longest TTL any store accepts: 100 years. Longer ones are almost always a unit mistake.
pub const MAX_TTL: Duration = Duration::from_secs(100 * 365 * 24 * 60 * 60);

/// Size limits a store enforces on every key and value.
///
/// Breaking a limit is an error of kind [`ErrorKind::InvalidKey`] or [`ErrorKind::ValueTooLarge`] whose
/// message names the key and the limit; nothing is written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct Limits {
    /// Longest key, in UTF-8 bytes. Default: 1024 (1 KiB).
    pub max_key_len: usize,
    /// Largest value, in bytes. Default: 64 MiB.
    pub max_value_len: usize,
}

impl Default for Limits {
    fn default() -> Self {
        Limits {
            max_key_len: 1024,
            max_value_len: 64 * 1024 * 1024,
        }
    }
}

impl Limits {
    /// Limits with the given maximum key length (bytes) and value size (bytes).
    pub const fn new(max_key_len: usize, max_value_len: usize) -> Self {
        Limits {
            max_key_len,
            max_value_len,
        }
    }

    /// Checks that `key` is not empty and not longer than `max_key_len`.
    #[inline]
    pub fn check_key(&self, key: &str) -> Result<()> {
        if key.is_empty() || key.len() > self.max_key_len {
            return Err(self.bad_key(key));
        }
        Ok(())
    }

    /// Checks that a value of `len` bytes for `key` fits `max_value_len`.
    #[inline]
    pub fn check_value(&self, key: &str, len: usize) -> Result<()> {
        if len > self.max_value_len {
            return Err(self.value_too_large(key, len));
        }
        Ok(())
    }

    // The error paths are out of line, so that the checks inline into every hot path as two compares.
    #[cold]
    #[inline(never)]
    fn bad_key(&self, key: &str) -> Error {
        if key.is_empty() {
            return Error::new(ErrorKind::InvalidKey, "key is empty");
        }
        Error::new(
            ErrorKind::InvalidKey,
            format!(
                "key {} is {} bytes, longer than max_key_len = {}",
                preview(key),
                key.len(),
                self.max_key_len
            ),
        )
    }

    #[cold]
    #[inline(never)]
    fn value_too_large(&self, key: &str, len: usize) -> Error {
        Error::new(
            ErrorKind::ValueTooLarge,
            format!(
                "value for key {} is {len} bytes, larger than max_value_len = {}",
                preview(key),
                self.max_value_len
            ),
        )
    }

    /// Checks a key and its value together.
    #[inline]
    pub fn check_entry(&self, key: &str, value_len: usize) -> Result<()> {
        self.check_key(key)?;
        self.check_value(key, value_len)
    }
}

/// Checks a TTL and returns it in whole milliseconds, rounded up (every backend has millisecond
/// precision). A zero TTL or one above [`MAX_TTL`] is [`ErrorKind::InvalidArgument`].
#[inline]
pub fn ttl_millis(ttl: Duration) -> Result<u64> {
    // Every write with a TTL comes here: integer arithmetic only, errors out of line.
    let (secs, nanos) = (ttl.as_secs(), ttl.subsec_nanos());
    if secs > MAX_TTL.as_secs() || (secs == MAX_TTL.as_secs() && nanos > 0) {
        return Err(ttl_too_long(ttl));
    }
    let millis = secs * 1_000 + u64::from(nanos.div_ceil(1_000_000));
    if millis == 0 {
        return Err(Error::invalid_argument("ttl must be greater than zero"));
    }
    Ok(millis)
}

#[cold]
fn ttl_too_long(ttl: Duration) -> Error {
    Error::invalid_argument(format!(
        "ttl of {}s is longer than the maximum of {}s (100 years)",
        ttl.as_secs(),
        MAX_TTL.as_secs()
    ))
}

/// Checks an optional TTL; see [`ttl_millis`].
#[inline]
pub fn opt_ttl_millis(ttl: Option<Duration>) -> Result<Option<u64>> {
    ttl.map(ttl_millis).transpose()
}

/// A key as it appears in messages: quoted, and cut short if long.
pub(crate) fn preview(key: &str) -> String {
    const MAX: usize = 64;
    if key.len() <= MAX {
        return format!("{key:?}");
    }
    let mut end = MAX;
    while !key.is_char_boundary(end) {
        end -= 1;
    }
    format!("{:?}…", &key[..end])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ttl_rounds_up_to_millis() {
        assert_eq!(ttl_millis(Duration::from_micros(1)).unwrap(), 1);
        assert_eq!(ttl_millis(Duration::from_millis(5)).unwrap(), 5);
        assert_eq!(ttl_millis(Duration::from_micros(5001)).unwrap(), 6);
        assert_eq!(
            ttl_millis(Duration::ZERO).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
        assert_eq!(
            ttl_millis(MAX_TTL * 2).unwrap_err().kind(),
            ErrorKind::InvalidArgument
        );
    }

    #[test]
    fn long_key_message_is_cut_at_a_char_boundary() {
        let key = "é".repeat(600);
        let err = Limits::default().check_key(&key).unwrap_err();
        assert_eq!(err.kind(), ErrorKind::InvalidKey);
        assert!(err.message().contains("max_key_len = 1024"), "{err}");
    }

    #[test]
    fn ttls_round_up_to_milliseconds_within_bounds() {
        let ms = |d: Duration| ttl_millis(d).map_err(|e| e.kind());
        assert_eq!(ms(Duration::from_nanos(1)), Ok(1));
        assert_eq!(ms(Duration::from_millis(1)), Ok(1));
        assert_eq!(ms(Duration::from_micros(1_500)), Ok(2));
        assert_eq!(ms(Duration::from_secs(2)), Ok(2_000));
        assert_eq!(ms(MAX_TTL), Ok(MAX_TTL.as_secs() * 1_000));
        assert_eq!(ms(Duration::ZERO), Err(ErrorKind::InvalidArgument));
        assert_eq!(
            ms(MAX_TTL + Duration::from_nanos(1)),
            Err(ErrorKind::InvalidArgument)
        );
        assert_eq!(ms(Duration::MAX), Err(ErrorKind::InvalidArgument));
    }
}
