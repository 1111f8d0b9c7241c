//! How the typed [`Cache`](crate::Cache) turns values into bytes: JSON by default, MessagePack behind
//! the `msgpack` feature.

use std::any::type_name;
use std::error::Error as StdError;
use std::fmt::Debug;

use bytes::Bytes;
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::limits::preview;
use crate::{Error, ErrorKind, Result};

/// The error a codec reports; the facade wraps it with the key and the Rust type.
pub type CodecError = Box<dyn StdError + Send + Sync>;

/// A serialization format for the typed facade.
pub trait Codec: Send + Sync + Debug + 'static {
    /// A short name, used in error messages.
    const NAME: &'static str;

    /// Serializes a value.
    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError>;

    /// Deserializes a value.
    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError>;
}

/// JSON through `serde_json`: readable by any other client of the store. The default.
///
/// JSON has no NaN or infinity: a value holding one (anywhere inside it) is refused with
/// [`ErrorKind::Codec`] rather than written as `null`, which would not read back as a number.
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    const NAME: &'static str = "json";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        let bytes = serde_json::to_vec(value)?;
        // serde_json writes NaN and infinities as `null`: only then is the value searched for one.
        if bytes.windows(4).any(|w| w == b"null") && crate::finite::has_non_finite_float(value) {
            return Err("JSON cannot represent NaN or an infinite float".into());
        }
        Ok(bytes)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        Ok(serde_json::from_slice(bytes)?)
    }
}

/// MessagePack through `rmp-serde`, with struct fields as maps so that values stay readable across
/// versions and languages. Smaller and faster than JSON.
#[cfg(feature = "msgpack")]
#[derive(Debug, Clone, Copy, Default)]
pub struct MsgPack;

#[cfg(feature = "msgpack")]
impl Codec for MsgPack {
    const NAME: &'static str = "msgpack";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        Ok(rmp_serde::to_vec_named(value)?)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        Ok(rmp_serde::from_slice(bytes)?)
    }
}

/// Encodes `value` for `key`; a failure is an [`ErrorKind::Codec`] error naming the key and the type.
pub(crate) fn encode_for<C: Codec, T: Serialize + ?Sized>(
    codec: &C,
    key: &str,
    value: &T,
) -> Result<Bytes> {
    codec.encode(value).map(Bytes::from).map_err(|e| {
        let message = format!(
            "cannot encode a `{}` as {} for key {}",
            type_name::<T>(),
            C::NAME,
            preview(key)
        );
        Error::new(ErrorKind::Codec, message).with_source(e)
    })
}

/// Decodes the bytes stored at `key`; a failure is an [`ErrorKind::Codec`] error naming the key and
/// the type that was expected.
pub(crate) fn decode_for<C: Codec, T: DeserializeOwned>(
    codec: &C,
    key: &str,
    bytes: &[u8],
) -> Result<T> {
    codec.decode(bytes).map_err(|e| {
        let message = format!(
            "the {} value stored at key {} is not a valid `{}`",
            C::NAME,
            preview(key),
            type_name::<T>()
        );
        Error::new(ErrorKind::Codec, message).with_source(e)
    })
}

/// The error of an empty key under a namespace, which the store would take as `"{namespace}:"`.
pub(crate) fn empty_key() -> Error {
    Error::new(ErrorKind::InvalidKey, "key is empty")
}

/// `prefix` followed by `key`, in one allocation.
pub(crate) fn prefixed(prefix: &str, key: &str) -> Result<String> {
    if key.is_empty() {
        return Err(empty_key());
    }
    let mut full = String::with_capacity(prefix.len() + key.len());
    full.push_str(prefix);
    full.push_str(key);
    Ok(full)
}
