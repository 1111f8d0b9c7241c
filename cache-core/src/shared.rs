//! What an in-process store needs to hand out typed hits without decoding or allocating: keys in
//! two parts ([`PrefixedKey`]) and decoded values kept next to their bytes ([`SharedObject`]).

use std::any::Any;
use std::fmt;
use std::sync::Arc;

/// A namespace prefix and a key, looked up as `prefix + key` without building that `String`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixedKey<'a> {
    /// The namespace prefix, e.g. `"users:"`; may be empty.
    pub prefix: &'a str,
    /// The caller's key.
    pub key: &'a str,
}

/// Joined keys up to this many bytes are built on the stack.
const STACK_KEY: usize = 128;

impl<'a> PrefixedKey<'a> {
    /// `prefix + key`.
    pub fn new(prefix: &'a str, key: &'a str) -> Self {
        PrefixedKey { prefix, key }
    }

    /// Runs `f` on `prefix + key`, joined in a stack buffer (on the heap only past 128 bytes).
    #[inline]
    pub fn with_joined<R>(&self, f: impl FnOnce(&str) -> R) -> R {
        if self.prefix.is_empty() {
            return f(self.key);
        }
        // Two valid UTF-8 strings joined are valid UTF-8.
        self.with_joined_bytes(|joined| f(std::str::from_utf8(joined).expect("joined UTF-8")))
    }

    /// [`with_joined`](Self::with_joined) as bytes, for stores that hash and compare keys as bytes
    /// and so need no UTF-8 check.
    #[inline]
    pub fn with_joined_bytes<R>(&self, f: impl FnOnce(&[u8]) -> R) -> R {
        if self.prefix.is_empty() {
            return f(self.key.as_bytes());
        }
        let len = self.prefix.len() + self.key.len();
        if len > STACK_KEY {
            return f(self.joined_on_heap().as_bytes());
        }
        let mut buf = [0u8; STACK_KEY];
        buf[..self.prefix.len()].copy_from_slice(self.prefix.as_bytes());
        buf[self.prefix.len()..len].copy_from_slice(self.key.as_bytes());
        f(&buf[..len])
    }

    #[cold]
    fn joined_on_heap(self) -> String {
        let mut joined = String::with_capacity(self.prefix.len() + self.key.len());
        joined.push_str(self.prefix);
        joined.push_str(self.key);
        joined
    }

    /// `prefix + key` as a `String`.
    pub fn to_joined(&self) -> String {
        self.joined_on_heap()
    }
}

/// A decoded value that an in-process store keeps next to its encoded bytes, so that a read of the
/// same type hands it out, shared, without running the codec. Cheap to clone.
///
/// The value is behind an [`Arc`], so nobody can change it in place: every reader sees the value
/// as it was written, until the key is written again.
#[derive(Clone)]
pub struct SharedObject {
    value: Arc<dyn Any + Send + Sync>,
    /// The [`Codec::NAME`](crate::Codec::NAME) of the bytes it was decoded from or encoded to:
    /// a reader with another codec decodes the bytes, as it would without the object.
    codec: &'static str,
}

impl SharedObject {
    /// Wraps a value whose encoding by the codec named `codec` is stored next to it.
    pub fn new<T: Any + Send + Sync>(value: Arc<T>, codec: &'static str) -> Self {
        SharedObject { value, codec }
    }

    /// The value, if it is a `T` and was paired with bytes of the codec named `codec`.
    pub fn downcast<T: Any + Send + Sync>(&self, codec: &'static str) -> Option<Arc<T>> {
        if !same_codec(self.codec, codec) {
            return None;
        }
        self.value.clone().downcast::<T>().ok()
    }

    /// Whether the value is a `T` paired with bytes of the codec named `codec`, without cloning it.
    pub fn is<T: Any>(&self, codec: &'static str) -> bool {
        same_codec(self.codec, codec) && (*self.value).is::<T>()
    }
}

/// Codec names compared by address first: the same codec's `NAME` is usually the same constant.
#[inline]
fn same_codec(a: &'static str, b: &'static str) -> bool {
    std::ptr::eq(a, b) || a == b
}

impl fmt::Debug for SharedObject {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SharedObject")
            .field("codec", &self.codec)
            .finish_non_exhaustive()
    }
}

/// What a value written through the typed facade is kept as, shared, for later reads: itself for a
/// `Clone` type, a `String` for a `str`, a `Vec` for a slice. Implemented for those; nothing else
/// needs it.
pub trait ToShared {
    /// The owned type that reads of the key get without decoding.
    type Owned: Any + Send + Sync;

    /// An owned, shared copy.
    fn to_shared(&self) -> Arc<Self::Owned>;
}

impl<T: Clone + Send + Sync + 'static> ToShared for T {
    type Owned = T;

    fn to_shared(&self) -> Arc<T> {
        Arc::new(self.clone())
    }
}

impl ToShared for str {
    type Owned = String;

    fn to_shared(&self) -> Arc<String> {
        Arc::new(self.to_owned())
    }
}

impl<U: Clone + Send + Sync + 'static> ToShared for [U] {
    type Owned = Vec<U>;

    fn to_shared(&self) -> Arc<Vec<U>> {
        Arc::new(self.to_vec())
    }
}
