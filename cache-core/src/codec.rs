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

/// Another codec's output, LZ4-compressed when it is at least `threshold` bytes long (the
/// `compression` feature). Smaller values are stored as the inner codec writes them, so that reading
/// them costs nothing extra and other clients can still read them.
///
/// A compressed value starts with the 4 bytes `FE 4C 5A 01` (no JSON value, and only the one-byte
/// MessagePack value `-2`, starts with `FE`), then its length as a little-endian `u32`, then the LZ4
/// block. A value that claims to expand to more than [`Compressed::MAX_EXPANDED`] is refused rather
/// than allocated.
///
/// ```
/// use cache_core::{Codec, Compressed, Json};
///
/// let codec = Compressed::new(Json, 256);
/// let long = "lamp ".repeat(200);
/// let bytes = codec.encode(&long).unwrap();
/// assert!(bytes.len() < long.len() / 4);
/// assert_eq!(codec.decode::<String>(&bytes).unwrap(), long);
/// assert_eq!(codec.encode(&"short").unwrap(), b"\"short\"");
/// ```
#[cfg(feature = "compression")]
#[derive(Debug, Clone, Copy, Default)]
pub struct Compressed<C> {
    inner: C,
    threshold: usize,
}

#[cfg(feature = "compression")]
const LZ4_MAGIC: [u8; 4] = [0xFE, b'L', b'Z', 1];

#[cfg(feature = "compression")]
impl<C: Codec> Compressed<C> {
    /// The largest value decompression will produce: 512 MiB.
    pub const MAX_EXPANDED: usize = 512 << 20;

    /// `inner`'s output, compressed from `threshold` bytes on.
    pub fn new(inner: C, threshold: usize) -> Self {
        Compressed { inner, threshold }
    }
}

#[cfg(feature = "compression")]
impl<C: Codec> Codec for Compressed<C> {
    const NAME: &'static str = "lz4";

    fn encode<T: Serialize + ?Sized>(&self, value: &T) -> Result<Vec<u8>, CodecError> {
        let plain = self.inner.encode(value)?;
        if plain.len() < self.threshold {
            return Ok(plain);
        }
        let length = u32::try_from(plain.len()).map_err(|_| "a value of 4 GiB or more")?;
        let mut out = Vec::with_capacity(8 + lz4_flex::block::get_maximum_output_size(plain.len()));
        out.extend_from_slice(&LZ4_MAGIC);
        out.extend_from_slice(&length.to_le_bytes());
        out.extend_from_slice(&lz4_flex::block::compress(&plain));
        Ok(out)
    }

    fn decode<T: DeserializeOwned>(&self, bytes: &[u8]) -> Result<T, CodecError> {
        let Some(rest) = bytes.strip_prefix(&LZ4_MAGIC) else {
            return self.inner.decode(bytes);
        };
        let (length, block) = rest
            .split_first_chunk::<4>()
            .ok_or("a compressed value without its length")?;
        let length = u32::from_le_bytes(*length) as usize;
        // LZ4 expands a block at most about 255-fold: a larger claim is corrupt, and is refused
        // before the buffer it names is allocated.
        if length > Self::MAX_EXPANDED || length > block.len().saturating_mul(255) + 16 {
            return Err(format!(
                "a compressed value of {} bytes claims to expand to {length} bytes",
                block.len()
            )
            .into());
        }
        let plain = lz4_flex::block::decompress(block, length)?;
        self.inner.decode(&plain)
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

#[cfg(all(test, feature = "compression"))]
mod tests {
    use super::{Codec, Compressed, Json};

    #[test]
    fn compressed_values_round_trip_and_small_ones_stay_plain() {
        let codec = Compressed::new(Json, 64);
        for value in ["", "short", &"x".repeat(64), &"lamp ".repeat(10_000)] {
            let bytes = codec.encode(value).unwrap();
            assert_eq!(codec.decode::<String>(&bytes).unwrap(), value);
            assert_eq!(bytes.starts_with(&super::LZ4_MAGIC), value.len() + 2 >= 64);
        }
        // Values written before compression was turned on still read.
        assert_eq!(codec.decode::<String>(b"\"plain\"").unwrap(), "plain");
    }

    #[test]
    fn corrupt_compressed_values_are_errors_not_panics_or_huge_buffers() {
        let codec = Compressed::new(Json, 16);
        let good = codec.encode(&"lamp ".repeat(100)).unwrap();
        let mut lying = good.clone();
        lying[4..8].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(codec.decode::<String>(&lying).is_err());
        for cut in 0..good.len() {
            let _ = codec.decode::<String>(&good[..cut]);
        }
        let mut flipped = good.clone();
        for byte in flipped.iter_mut().skip(8) {
            *byte ^= 0x5A;
        }
        assert!(codec.decode::<String>(&flipped).is_err());
    }
}
