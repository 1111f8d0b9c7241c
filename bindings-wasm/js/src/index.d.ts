// Types of @cachekit/wasm: the same for the node, web and bundler builds.

/**
 * What a cache can hold. Strings, Uint8Arrays and JSON values round-trip exactly. Strings and
 * Uint8Arrays are kept in the JS heap (a Uint8Array is copied on `set`, and `get` returns a fresh
 * copy); other values are stored as JSON text.
 */
export type CacheValue =
  | string
  | Uint8Array
  | number
  | boolean
  | null
  | CacheValue[]
  | { [key: string]: CacheValue | undefined }
  // Anything JSON.stringify accepts (class instances with toJSON, Dates, …) is stored as its JSON.
  | object;

/** Options of `new MemoryCache(options)`. */
export interface MemoryCacheOptions {
  /** Most entries held at once; the oldest unpopular ones are evicted (S3-FIFO). Default: 10 000. */
  maxEntries?: number;
  /**
   * Most bytes held at once: UTF-8 keys plus value sizes (a string: 1 + its `length`, in UTF-16
   * code units; a Uint8Array: 1 + its length; anything else: the UTF-8 length of its JSON).
   * Default: 64 MiB. At most 1 GiB (2^30), as the wasm32 memory of all caches is at most 4 GiB;
   * more throws `ERR_INVALID_OPTION`. It also bounds a value: see `ERR_VALUE_TOO_LARGE`.
   */
  maxBytes?: number;
  /**
   * Default time to live in milliseconds for writes that give none. Default: 0, never expires.
   * Checked like a write's TTL: an invalid one throws `ERR_INVALID_TTL`.
   */
  ttl?: number;
  /** Prefix (`namespace:`) of every key; `clear()` and `keys()` only see this namespace. */
  namespace?: string;
}

/** Options of a write. */
export interface SetOptions {
  /** Time to live in milliseconds; `0`: never expires. Default: the cache's `ttl`. */
  ttl?: number;
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
  /** Bytes held now: UTF-8 keys plus value sizes, as counted for `maxBytes`. */
  bytes: number;
}

/** The `code` of every error the cache throws, for branching (`err.code === 'ERR_…'`). */
export type CacheErrorCode =
  /** TypeError: the key (or a `deletePrefix` prefix) is not a string, is empty, or has a lone surrogate. */
  | 'ERR_INVALID_KEY'
  /**
   * RangeError: the key is longer than 1024 UTF-8 bytes (with `maxBytes` under 2 KiB: half of
   * `maxBytes`, `namespace:` included).
   */
  | 'ERR_KEY_TOO_LONG'
  /**
   * RangeError: the value's size is over the value limit: the smaller of 64 MiB and `maxBytes`
   * minus the room kept for a key (1024 bytes plus `namespace:`, or half of `maxBytes` if less).
   * `maxBytes: 4096` takes values of up to 3072 bytes.
   */
  | 'ERR_VALUE_TOO_LARGE'
  /** TypeError: the value is undefined, a function, a symbol, a BigInt, a non-finite number, a
   * non-Uint8Array binary, or JSON.stringify fails on it (e.g. a cycle). */
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
  /** RangeError/TypeError: another argument is invalid (a non-integer delta, a non-function loader). */
  | 'ERR_INVALID_ARGUMENT'
  /** RangeError/TypeError: a constructor option other than `ttl` is invalid (e.g. `maxBytes` over 1 GiB). */
  | 'ERR_INVALID_OPTION'
  /** Error: the wasm memory (at most 4 GiB, shared by all caches) is full; nothing was written. */
  | 'ERR_OUT_OF_MEMORY'
  /** Error: the web build was used before `await init()`. */
  | 'ERR_NOT_INITIALIZED'
  /** Error: anything else. */
  | 'ERR_CACHE';

/** An error thrown by the cache: a TypeError, RangeError or Error with a `code`. */
export interface CacheError extends Error {
  code: CacheErrorCode;
}

/**
 * A bounded in-memory cache with per-entry TTLs, running in WebAssembly (the Rust `MemoryStore`).
 * Every method is synchronous except `getOrSet`. Bad input throws a {@link CacheError}; the cache
 * stays usable after any error.
 */
export class MemoryCache {
  constructor(options?: MemoryCacheOptions);
  /**
   * The value at `key`, or `undefined` if it is absent or expired. Counts a hit or a miss. A
   * Uint8Array comes back as a fresh copy.
   */
  get<T extends CacheValue = CacheValue>(key: string): T | undefined;
  /** Stores `value` at `key` (a Uint8Array is copied), replacing any value; may evict others. Returns the cache. */
  set(key: string, value: CacheValue, options?: SetOptions): this;
  /** Whether `key` holds a live entry (not counted as a hit or miss). */
  has(key: string): boolean;
  /** Deletes `key`; returns whether it held a live entry. */
  delete(key: string): boolean;
  /** Deletes every entry (of this namespace). */
  clear(): void;
  /**
   * Deletes every key starting with `prefix`; returns how many were deleted. A prefix with a lone
   * surrogate throws `ERR_INVALID_KEY`.
   */
  deletePrefix(prefix: string): number;
  /** Live entries now. */
  readonly size: number;
  /** A snapshot of the live keys, sorted. */
  keys(): IterableIterator<string>;
  /** Remaining time to live in ms: `Infinity` if it never expires, `undefined` if absent. */
  ttl(key: string): number | undefined;
  /** lru-cache's name for `ttl`: `0` if absent, `Infinity` if it never expires. */
  getRemainingTTL(key: string): number;
  /**
   * Adds `delta` (default 1, a safe integer) to the integer at `key` and returns the result. An
   * absent key counts from 0 and is created with `options.ttl`; an existing one keeps its TTL.
   */
  incr(key: string, delta?: number, options?: SetOptions): number;
  /**
   * The value at `key`; on a miss, `loader(key)` is called once for all concurrent callers, its
   * result is cached with `options.ttl` and returned to all of them as a later `get` would return
   * it (JSON values decoded from the stored JSON: a Date as its ISO string, -0 as 0; a Uint8Array
   * as a copy). If the loader throws or rejects, every waiter rejects with its error and nothing
   * is cached. A loader result of `undefined` resolves `undefined`; one too large to cache
   * (`ERR_VALUE_TOO_LARGE`, `ERR_OUT_OF_MEMORY`) resolves as the loader gave it; neither is
   * cached. One `set` refuses (a function, symbol, BigInt…) rejects every waiter with that
   * `ERR_INVALID_VALUE` TypeError. A `set`, `incr`, `delete`, `clear` or `deletePrefix` of `key`
   * while the loader runs wins: the result is returned but not stored.
   */
  getOrSet<T extends CacheValue | undefined = CacheValue>(
    key: string,
    loader: (key: string) => T | Promise<T>,
    options?: SetOptions,
  ): Promise<T>;
  /** Hit, miss, eviction and expiration counters, and the entries and bytes held now. */
  stats(): CacheStats;
  /** Releases the wasm memory now (otherwise released when garbage-collected). */
  free(): void;
  [Symbol.dispose](): void;
}

/** Something Keyv can listen to. */
export interface KeyvEventEmitter {
  on(event: string, listener: (...args: any[]) => void): this;
  off(event: string, listener: (...args: any[]) => void): this;
  once(event: string, listener: (...args: any[]) => void): this;
  emit(event: string, ...args: any[]): boolean;
}

/**
 * A Keyv 5 storage adapter over a {@link MemoryCache}:
 * `new Keyv({ store: new KeyvMemoryCache({ maxEntries: 10_000 }) })`. A failed call rejects with
 * the cache's error and Keyv reports it (one 'error' event); the adapter emits nothing itself.
 */
export class KeyvMemoryCache implements KeyvEventEmitter {
  constructor(cacheOrOptions?: MemoryCache | MemoryCacheOptions);
  /** The cache behind the adapter. */
  readonly cache: MemoryCache;
  /**
   * Set by Keyv. Keys are kept as `namespace:key` whether or not Keyv prefixes them
   * (`useKeyPrefix`), and `clear()` clears only this namespace (the whole cache if undefined).
   */
  namespace: string | undefined;
  opts: { dialect: string; url: string };
  get<Value = any>(key: string): Promise<Value | undefined>;
  getMany<Value = any>(keys: string[]): Promise<Array<Value | undefined>>;
  /** `ttl` in ms; absent, 0 or negative: the cache's default; `Infinity`: never expires. */
  set(key: string, value: any, ttl?: number): Promise<boolean>;
  setMany(entries: Array<{ key: string; value: any; ttl?: number }>): Promise<boolean[]>;
  delete(key: string): Promise<boolean>;
  deleteMany(keys: string[]): Promise<boolean>;
  has(key: string): Promise<boolean>;
  hasMany(keys: string[]): Promise<boolean[]>;
  clear(): Promise<void>;
  /**
   * `[key, stored value]` of the live entries of `namespace` (default: this adapter's; none: all),
   * values as Keyv stored them (`await keyv.deserializeData(raw)` decodes one). Keyv's own
   * `keyv.iterator` is undefined with this adapter: Keyv 5 wires it only for its own dialects.
   */
  iterator<Value = any>(namespace?: string): AsyncGenerator<[string, Value], void>;
  disconnect(): Promise<void>;
  on(event: string, listener: (...args: any[]) => void): this;
  off(event: string, listener: (...args: any[]) => void): this;
  once(event: string, listener: (...args: any[]) => void): this;
  emit(event: string, ...args: any[]): boolean;
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
