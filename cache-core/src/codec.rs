//! How the typed [`Cache`](crate::Cache) turns values into bytes: JSON by default, MessagePack behind
//! the `msgpack` feature.

use std::error::Error as StdError;
use std::fmt::Debug;

use serde::Serialize;
use serde::de::DeserializeOwned;

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
#[derive(Debug, Clone, Copy, Default)]
pub struct Json;

impl Codec for Json {
    const NAME: &'static str = "json";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        Ok(serde_json::to_vec(value)?)
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
