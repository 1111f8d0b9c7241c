// Types of @cachekit/wasm: the same for the node, web and bundler builds.

/** Why `dispose` is called: evicted for room, expired, deleted (or cleared), or replaced by a `set`. */
export type DisposeReason = 'evict' | 'expire' | 'delete' | 'set';

/** Options of `new MemoryCache(options)`. Any other option throws `ERR_INVALID_OPTION`. */
export interface MemoryCacheOptions<K extends string = string, V = unknown> {
  /** Most entries held at once (S3-FIFO evicts the rest). 1 to 2^24 (a JS Map's limit). Default: 10 000. */
  maxEntries?: number;
  /** lru-cache's name for `maxEntries` (give one of the two). */
  max?: number;
  /**
   * Most bytes charged at once (see `sizeCalculation`). Default: none (only `maxEntries` bounds
   * the cache). A whole number from 1 to 2^53 − 1.
   */
  maxBytes?: number;
  /** lru-cache's name for `maxBytes` (give one of the two). */
  maxSize?: number;
  /**
   * Default time to live in milliseconds for writes that give none. Default: 0, never expires.
   * Checked like a write's TTL: an invalid one throws `ERR_INVALID_TTL`.
   */
  ttl?: number;
  /**
   * The size of a value that is not a string or a Uint8Array, a whole number of bytes. Without it
   * such values are charged their `JSON.stringify` length when the cache has a `maxBytes`, and
   * nothing otherwise. Strings are charged 1 + `length`, Uint8Arrays 1 + `byteLength`; every key
   * its `length`.
   */
  sizeCalculation?: (value: V, key: K) => number;
  /** Called with each value that leaves the cache, after it has left. */
  dispose?: (value: V, key: K, reason: DisposeReason) => void;
  /** Another name for `dispose` (give one of the two). */
  onEvict?: (value: V, key: K, reason: DisposeReason) => void;
  /** Reads of an expired entry return its value once (and remove it). Default: false. */
  allowStale?: boolean;
  /**
   * Value semantics: `set` stores a `structuredClone` of the value, and every read returns a
   * fresh one. Default: false, values are kept by reference, as lru-cache keeps them.
   */
  copy?: boolean;
  /** The loader of `fetch(key)` when it is called without one (lru-cache's `fetchMethod`). */
  fetchMethod?: (key: K) => V | undefined | Promise<V | undefined>;
}

/** Options of a write. */
export interface SetOptions {
  /** Time to live in milliseconds; `0`: never expires. Default: the cache's `ttl`. */
  ttl?: number;
  /** The value's size in bytes, instead of its default or `sizeCalculation`. */
  size?: number;
}

/** Options of a read. */
export interface GetOptions {
  /** Return an expired entry's value once (and remove it). Default: the cache's `allowStale`. */
  allowStale?: boolean;
}

/** `stats()`: counters since creation, plus what the cache holds now. */
export interface CacheStats {
  /** Reads (`get`, `getOrSet`) that found a live entry. */
  hits: number;
  /** Reads that found nothing, or an expired entry. */
  misses: number;
  /** Live entries removed to respect `maxEntries` or `maxBytes`. */
  evictions: number;
  /** Entries removed because their TTL passed. */
  expirations: number;
  /** Entries held now. */
  entries: number;
  /** Bytes charged to the entries held now (see `sizeCalculation`). */
  bytes: number;
}

/** The `code` of every error the cache throws, for branching (`err.code === 'ERR_…'`). */
export type CacheErrorCode =
  /** TypeError: the key (or a `deletePrefix` prefix) is not a string, is empty, or has a lone surrogate. */
  | 'ERR_INVALID_KEY'
  /** RangeError: the key is longer than 1024 UTF-8 bytes. */
  | 'ERR_KEY_TOO_LONG'
  /** RangeError: the entry is charged more than `maxBytes` (or 2^32 − 1 bytes). Nothing changes. */
  | 'ERR_VALUE_TOO_LARGE'
  /**
   * TypeError: with `maxBytes` and no `sizeCalculation`, a value JSON cannot measure (a
   * function, a symbol, a BigInt, a cycle); with `copy`, one `structuredClone` cannot copy.
   */
  | 'ERR_INVALID_VALUE'
  /**
   * RangeError (TypeError if not a number): a TTL (of a write or the `ttl` option) that is
   * negative, NaN, infinite or over 100 years.
   */
  | 'ERR_INVALID_TTL'
  /** TypeError: `incr` on a value that is not an integer number. */
  | 'ERR_NOT_AN_INTEGER'
  /** RangeError: `incr` would go beyond Number.MAX_SAFE_INTEGER. */
  | 'ERR_OVERFLOW'
  /** RangeError/TypeError: another argument is invalid (a non-integer delta or size, a non-function loader). */
  | 'ERR_INVALID_ARGUMENT'
  /** RangeError/TypeError: a constructor option is unknown or invalid (`ttl` aside). */
  | 'ERR_INVALID_OPTION'
  /** Error: the wasm memory is full; nothing was written. */
  | 'ERR_OUT_OF_MEMORY'
  /** Error: the cache was freed with `free()`. */
  | 'ERR_FREED'
  /** Error: the web build was used before `await init()`. */
  | 'ERR_NOT_INITIALIZED'
  /** Error: anything else. */
  | 'ERR_CACHE';

/** An error thrown by the cache: a TypeError, RangeError or Error with a `code`. */
export interface CacheError extends Error {
  code: CacheErrorCode;
}

/**
 * A bounded in-memory cache with per-entry TTLs. Keys and values stay in JS; the eviction and
 * expiry policy (S3-FIFO) runs in WebAssembly. Every method is synchronous except `getOrSet` and
 * `fetch`. Bad input throws a {@link CacheError}; the cache stays usable after any error.
 */
export class MemoryCache<V = unknown, K extends string = string> implements Iterable<[K, V]> {
  constructor(options?: MemoryCacheOptions<K, V>);
  /**
   * The value at `key`, or `undefined` if it is absent or expired. The stored value itself (a copy
   * with `copy: true`). Counts a hit or a miss.
   */
  get(key: K, options?: GetOptions): V | undefined;
  /** The value at `key` without counting a read or raising its frequency. */
  peek(key: K, options?: GetOptions): V | undefined;
  /** Stores `value` at `key`, replacing any value; may evict others. `undefined` deletes `key`. Returns the cache. */
  set(key: K, value: V | undefined, options?: SetOptions): this;
  /** Whether `key` holds a live entry (not counted as a hit or miss). */
  has(key: K): boolean;
  /** Deletes `key`; returns whether it held a live entry. */
  delete(key: K): boolean;
  /** Deletes every entry. */
  clear(): void;
  /** Deletes every key that starts with `prefix`; returns how many live entries it deleted. */
  deletePrefix(prefix: string): number;
  /** Removes every expired entry now; returns whether there were any. */
  purgeStale(): boolean;
  /** Live entries (expired ones are removed first). */
  readonly size: number;
  /** `maxEntries`. */
  readonly max: number;
  /** `maxBytes` (`Infinity`: none). */
  readonly maxSize: number;
  /** Bytes charged to the entries held (as `stats().bytes`). */
  readonly calculatedSize: number;
  /** `[key, value]` of each live entry, oldest key first (an overwrite keeps the key's place). */
  entries(): IterableIterator<[K, V]>;
  /** The live keys, in the order of `entries()`. */
  keys(): IterableIterator<K>;
  /** The live values, in the order of `entries()`. */
  values(): IterableIterator<V>;
  /** Calls `fn` with each live entry, in the order of `entries()`. */
  forEach<T>(fn: (this: T, value: V, key: K, cache: this) => void, thisArg?: T): void;
  [Symbol.iterator](): IterableIterator<[K, V]>;
  /** Milliseconds `key` has left: `Infinity` if it never expires, `undefined` if absent. */
  ttl(key: K): number | undefined;
  /** lru-cache's spelling of `ttl`: `0` if absent, `Infinity` if it never expires. */
  getRemainingTTL(key: K): number;
  /**
   * Adds `delta` (a safe integer, default 1) to the integer number at `key` (0 if absent) and
   * returns the result. A new counter gets `options.ttl`; an existing one keeps its TTL.
   */
  incr(key: K, delta?: number, options?: SetOptions): number;
  /**
   * The value at `key`; on a miss, calls `loader(key)` once for all concurrent callers, caches
   * what it resolves to (unless `undefined`) and resolves every caller with it. A rejection
   * rejects every waiter and caches nothing.
   */
  getOrSet(key: K, loader: (key: K) => V | undefined | Promise<V | undefined>, options?: SetOptions): Promise<V | undefined>;
  /** lru-cache's name for `getOrSet`; without a loader it uses the `fetchMethod` option. */
  fetch(key: K, loader: (key: K) => V | undefined | Promise<V | undefined>, options?: SetOptions): Promise<V | undefined>;
  fetch(key: K, options?: SetOptions): Promise<V | undefined>;
  /** Counters since creation, plus entries and bytes held now. */
  stats(): CacheStats;
  /** Frees the wasm memory now instead of at garbage collection. Later calls throw `ERR_FREED`. */
  free(): void;
  [Symbol.dispose](): void;
}

/**
 * A Keyv 5 storage adapter over a MemoryCache: `new Keyv({ store: new KeyvMemoryCache() })`.
 * Keys are kept as `namespace:key`; `clear()` clears this namespace only.
 */
export class KeyvMemoryCache {
  constructor(cacheOrOptions?: MemoryCache | MemoryCacheOptions);
  /** Set by Keyv: its namespace. */
  namespace: string | undefined;
  readonly opts: { dialect: string; url: string };
  readonly cache: MemoryCache;
  get<T>(key: string): Promise<T | undefined>;
  getMany<T>(keys: string[]): Promise<Array<T | undefined>>;
  set(key: string, value: unknown, ttl?: number): Promise<boolean>;
  setMany(entries: Array<{ key: string; value: unknown; ttl?: number }>): Promise<boolean[]>;
  delete(key: string): Promise<boolean>;
  deleteMany(keys: string[]): Promise<boolean>;
  has(key: string): Promise<boolean>;
  hasMany(keys: string[]): Promise<boolean[]>;
  clear(): Promise<void>;
  iterator(namespace?: string): AsyncGenerator<[string, unknown]>;
  disconnect(): Promise<void>;
  on(event: string, listener: (...args: unknown[]) => void): this;
  off(event: string, listener: (...args: unknown[]) => void): this;
  once(event: string, listener: (...args: unknown[]) => void): this;
  emit(event: string, ...args: unknown[]): boolean;
}

/** Where `init` can load the wasm module from (web build); ignored by the node and bundler builds. */
export type InitInput =
  | RequestInfo
  | URL
  | Response
  | BufferSource
  | WebAssembly.Module
  | { module_or_path: RequestInfo | URL | Response | BufferSource | WebAssembly.Module };

/**
 * Loads the wasm module. Required before `new MemoryCache()` with the web build (browsers, Deno,
 * workers); a no-op with the node and bundler builds, so portable code always awaits it.
 * By default the web build fetches `bindings_wasm_bg.wasm` next to its JS; edge workers pass the
 * imported `WebAssembly.Module`.
 */
export function init(input?: InitInput | Promise<InitInput>): Promise<void>;
/** Synchronous `init` from bytes or a compiled module (web build). */
export function initSync(module: BufferSource | WebAssembly.Module | { module: BufferSource | WebAssembly.Module }): void;
export default init;
