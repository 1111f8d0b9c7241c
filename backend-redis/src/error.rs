//! The one place where redis-rs errors become [`cache_core::Error`]s.

use std::time::Duration;

use cache_core::{Error, ErrorKind};
use redis::{RedisError, ServerErrorKind};

/// Maps a redis-rs error from operation `op` (on `key`, if any) to a cache error with the right kind
/// and retryable flag. Messages name the operation and key, never a password.
pub(crate) fn map_redis_error(err: RedisError, op: &str, key: Option<&str>) -> Error {
    let on = match key {
        Some(key) => format!("{op} of key {key:?}"),
        None => op.to_owned(),
    };
    let detail = err.detail().unwrap_or_default().to_owned();
    let code = err.code().unwrap_or_default().to_owned();
    let (kind, retryable, message) = match err.kind() {
        redis::ErrorKind::AuthenticationFailed => (
            ErrorKind::Authentication,
            false,
            format!("{on}: Redis refused the credentials (wrong user name or password)"),
        ),
        redis::ErrorKind::Server(ServerErrorKind::NoPerm) => (
            ErrorKind::Authentication,
            false,
            format!("{on}: the Redis ACL user lacks permission ({code} {detail})"),
        ),
        _ if code == "WRONGPASS" || code == "NOAUTH" => (
            ErrorKind::Authentication,
            false,
            format!("{on}: Redis refused the credentials ({code} {detail})"),
        ),
        _ if code == "WRONGTYPE" => (
            ErrorKind::WrongType,
            false,
            format!("{on}: the key holds another type of value (WRONGTYPE)"),
        ),
        _ if detail.contains("not a number (NaN)") => (
            ErrorKind::InvalidArgument,
            false,
            format!("{on}: the resulting score would be NaN"),
        ),
        _ if detail.contains("not an integer") => (
            ErrorKind::NotAnInteger,
            false,
            format!("{on}: the stored value is not a decimal i64 counter"),
        ),
        _ if detail.contains("would overflow") => (
            ErrorKind::Overflow,
            false,
            format!("{on}: the result would overflow an i64"),
        ),
        redis::ErrorKind::InvalidClientConfig => (
            ErrorKind::Config,
            false,
            format!("{on}: invalid Redis client configuration"),
        ),
        _ if err.is_timeout() => (
            ErrorKind::Timeout,
            true,
            format!("{on}: Redis did not answer in time"),
        ),
        _ if err.is_io_error()
            || err.is_connection_dropped()
            || err.is_connection_refusal()
            || err.is_unrecoverable_error() =>
        {
            (
                ErrorKind::Connection,
                true,
                format!("{on}: cannot reach Redis"),
            )
        }
        redis::ErrorKind::Server(
            ServerErrorKind::BusyLoading
            | ServerErrorKind::TryAgain
            | ServerErrorKind::ClusterDown
            | ServerErrorKind::MasterDown
            | ServerErrorKind::ReadOnly
            | ServerErrorKind::Moved
            | ServerErrorKind::Ask,
        )
        | redis::ErrorKind::ClusterConnectionNotFound
        | redis::ErrorKind::MasterNameNotFoundBySentinel
        | redis::ErrorKind::EmptySentinelList => (
            ErrorKind::Connection,
            true,
            format!("{on}: Redis is not ready to serve ({code} {detail})"),
        ),
        _ => (
            ErrorKind::Backend,
            false,
            format!("{on}: Redis returned an error"),
        ),
    };
    Error::new(kind, message)
        .with_retryable(retryable)
        .with_source(err)
}

/// The error of a command that did not finish within `timeout`.
pub(crate) fn timed_out(op: &str, key: Option<&str>, timeout: Duration) -> Error {
    let on = match key {
        Some(key) => format!("{op} of key {key:?}"),
        None => op.to_owned(),
    };
    Error::new(
        ErrorKind::Timeout,
        format!("{on}: Redis did not answer within the command timeout of {timeout:?}"),
    )
    .with_retryable(true)
}

/// A reply of an unexpected shape.
pub(crate) fn unexpected(op: &str, what: &str) -> Error {
    Error::new(
        ErrorKind::Backend,
        format!("{op}: unexpected reply from Redis ({what})"),
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn wrong_password_is_an_authentication_error_that_says_so() {
        let err = RedisError::from((redis::ErrorKind::AuthenticationFailed, "WRONGPASS"));
        let mapped = map_redis_error(err, "connect to 127.0.0.1:6379", None);
        assert_eq!(mapped.kind(), ErrorKind::Authentication);
        assert!(!mapped.is_retryable());
        assert!(mapped.message().contains("password"), "{mapped}");
    }

    #[test]
    fn dropped_connection_is_a_retryable_connection_error() {
        let io = std::io::Error::new(std::io::ErrorKind::ConnectionReset, "reset by peer");
        let mapped = map_redis_error(RedisError::from(io), "get", Some("k"));
        assert_eq!(mapped.kind(), ErrorKind::Connection);
        assert!(mapped.is_retryable());
        assert!(mapped.message().contains("\"k\""), "{mapped}");
    }

    #[test]
    fn io_timeout_is_a_retryable_timeout() {
        let io = std::io::Error::new(std::io::ErrorKind::TimedOut, "timed out");
        let mapped = map_redis_error(RedisError::from(io), "set", Some("k"));
        assert_eq!(mapped.kind(), ErrorKind::Timeout);
        assert!(mapped.is_retryable());
        assert!(timed_out("get", None, Duration::from_millis(5)).is_retryable());
    }
}
