//! The one public error type, [`Error`], and its [`ErrorKind`].

use std::error::Error as StdError;
use std::fmt;
use std::sync::Arc;

/// Shorthand for `Result<T, cache_core::Error>`.
pub type Result<T, E = Error> = std::result::Result<T, E>;

/// What went wrong, so callers can branch without parsing messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum ErrorKind {
    /// The key is empty or longer than the store's `max_key_len`.
    InvalidKey,
    /// The value is larger than the store allows.
    ValueTooLarge,
    /// An argument is out of range, e.g. a zero or absurdly long TTL.
    InvalidArgument,
    /// `incr_by` found a stored value that is not a decimal `i64`.
    NotAnInteger,
    /// `incr_by` would overflow an `i64`.
    Overflow,
    /// A value could not be encoded, or the stored bytes could not be decoded to the requested type.
    Codec,
    /// A loader passed to `get_or_insert_with` failed.
    Loader,
    /// The backend could not be reached or the connection dropped.
    Connection,
    /// The backend did not answer in time.
    Timeout,
    /// The backend refused the credentials.
    Authentication,
    /// The configuration is invalid (bad URL, unreadable certificate, ...).
    Config,
    /// The backend does not support this operation.
    Unsupported,
    /// The key holds another type than the operation works on (a list used as a hash, a
    /// collection read as a string); nothing changed.
    WrongType,
    /// Any other error reported by the backend.
    Backend,
}

impl ErrorKind {
    /// Every kind, in declaration order: `ALL[kind as usize] == kind`.
    pub const ALL: [ErrorKind; 14] = [
        ErrorKind::InvalidKey,
        ErrorKind::ValueTooLarge,
        ErrorKind::InvalidArgument,
        ErrorKind::NotAnInteger,
        ErrorKind::Overflow,
        ErrorKind::Codec,
        ErrorKind::Loader,
        ErrorKind::Connection,
        ErrorKind::Timeout,
        ErrorKind::Authentication,
        ErrorKind::Config,
        ErrorKind::Unsupported,
        ErrorKind::WrongType,
        ErrorKind::Backend,
    ];

    /// A short snake_case identifier, e.g. `"timeout"`: the `error.type` of metrics and logs.
    pub fn code(self) -> &'static str {
        match self {
            ErrorKind::InvalidKey => "invalid_key",
            ErrorKind::ValueTooLarge => "value_too_large",
            ErrorKind::InvalidArgument => "invalid_argument",
            ErrorKind::NotAnInteger => "not_an_integer",
            ErrorKind::Overflow => "overflow",
            ErrorKind::Codec => "codec",
            ErrorKind::Loader => "loader",
            ErrorKind::Connection => "connection",
            ErrorKind::Timeout => "timeout",
            ErrorKind::Authentication => "authentication",
            ErrorKind::Config => "config",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::WrongType => "wrong_type",
            ErrorKind::Backend => "backend",
        }
    }

    /// Whether an error of this kind is worth retrying by default.
    pub fn is_retryable_by_default(self) -> bool {
        matches!(self, ErrorKind::Connection | ErrorKind::Timeout)
    }
}

impl fmt::Display for ErrorKind {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let name = match self {
            ErrorKind::InvalidKey => "invalid key",
            ErrorKind::ValueTooLarge => "value too large",
            ErrorKind::InvalidArgument => "invalid argument",
            ErrorKind::NotAnInteger => "not an integer",
            ErrorKind::Overflow => "integer overflow",
            ErrorKind::Codec => "codec error",
            ErrorKind::Loader => "loader failed",
            ErrorKind::Connection => "connection error",
            ErrorKind::Timeout => "timed out",
            ErrorKind::Authentication => "authentication failed",
            ErrorKind::Config => "invalid configuration",
            ErrorKind::Unsupported => "unsupported",
            ErrorKind::WrongType => "wrong type",
            ErrorKind::Backend => "backend error",
        };
        f.write_str(name)
    }
}

/// The error of every cache operation.
///
/// It carries a [`kind`](Error::kind), a human message (naming the key or setting involved, never a
/// secret), an optional source, and whether retrying can help. It is `Clone` so that one loader failure
/// can be handed to every waiter of a single-flight load.
#[derive(Clone)]
pub struct Error(Box<Details>);

/// Boxed, so that a `Result<Arc<T>>` is two words and a cache hit moves nothing larger.
#[derive(Clone)]
struct Details {
    kind: ErrorKind,
    message: String,
    retryable: bool,
    source: Option<Arc<dyn StdError + Send + Sync>>,
}

impl Error {
    /// A new error of `kind`; retryable if the kind is retryable by default.
    pub fn new(kind: ErrorKind, message: impl Into<String>) -> Self {
        Error(Box::new(Details {
            kind,
            message: message.into(),
            retryable: kind.is_retryable_by_default(),
            source: None,
        }))
    }

    /// Attaches the underlying cause.
    pub fn with_source(mut self, source: impl Into<Box<dyn StdError + Send + Sync>>) -> Self {
        self.0.source = Some(Arc::from(source.into()));
        self
    }

    /// Overrides whether retrying can help.
    pub fn with_retryable(mut self, retryable: bool) -> Self {
        self.0.retryable = retryable;
        self
    }

    /// What went wrong.
    pub fn kind(&self) -> ErrorKind {
        self.0.kind
    }

    /// The message, without the kind prefix.
    pub fn message(&self) -> &str {
        &self.0.message
    }

    /// Whether the same call may succeed if retried (timeouts, dropped connections).
    pub fn is_retryable(&self) -> bool {
        self.0.retryable
    }

    pub(crate) fn invalid_argument(message: impl Into<String>) -> Self {
        Error::new(ErrorKind::InvalidArgument, message)
    }

    /// The [`ErrorKind::Loader`] error handed to every caller of a failed load of `key`.
    pub(crate) fn loader_failed(
        key: &str,
        source: impl Into<Box<dyn StdError + Send + Sync>>,
    ) -> Self {
        Error::new(
            ErrorKind::Loader,
            format!("loader for key {} failed", crate::limits::preview(key)),
        )
        .with_source(source)
    }
}

impl fmt::Debug for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let mut d = f.debug_struct("Error");
        d.field("kind", &self.0.kind)
            .field("message", &self.0.message)
            .field("retryable", &self.0.retryable);
        if let Some(source) = &self.0.source {
            d.field("source", source);
        }
        d.finish()
    }
}

impl fmt::Display for Error {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}: {}", self.0.kind, self.0.message)?;
        if let Some(source) = &self.0.source {
            write!(f, ": {source}")?;
        }
        Ok(())
    }
}

impl StdError for Error {
    fn source(&self) -> Option<&(dyn StdError + 'static)> {
        self.0
            .source
            .as_ref()
            .map(|s| s.as_ref() as &(dyn StdError + 'static))
    }
}

#[cfg(test)]
mod tests {
    use super::ErrorKind;

    #[test]
    fn every_kind_stands_at_its_own_index_in_all() {
        for (i, kind) in ErrorKind::ALL.iter().enumerate() {
            assert_eq!(*kind as usize, i, "{kind:?}");
        }
    }
}
