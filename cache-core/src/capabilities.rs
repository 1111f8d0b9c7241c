//! What a backend supports, so users and the conformance suite can tell.

/// Properties a [`CacheStore`](crate::CacheStore) declares. The conformance suite runs a case only when
/// the store declares what the case needs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub struct Capabilities {
    /// Entries are shared by every process that connects (Redis), rather than local to one.
    pub shared: bool,
    /// The store evicts live entries to stay within its size bounds.
    pub evicts: bool,
}

impl Capabilities {
    /// A process-local store that evicts to stay bounded (the memory store).
    pub const LOCAL_BOUNDED: Capabilities = Capabilities {
        shared: false,
        evicts: true,
    };
    /// A store shared between processes that never evicts on its own (Redis without `maxmemory`).
    pub const SHARED: Capabilities = Capabilities {
        shared: true,
        evicts: false,
    };
}
