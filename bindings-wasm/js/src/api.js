// The thin JS layer over the wasm `RawCache` (bindings-wasm/src/lib.rs), shared by the web, bundler
// and Node builds. It does only what JS must do: type checks, keeping string and byte values in the
// JS heap, encoding JSON values into wasm memory, building Error objects from Rust's error codes,
// and merging concurrent `getOrSet` loads (a JS Promise cannot live in the wasm store). Every cache
// decision (bounds, eviction, TTLs, counters, key and value limits) is made in Rust. It uses no
// Node-only API: it runs in browsers, Deno and edge workers.
//
// Values (see "Values: handles to the JS heap, or inline bytes" in lib.rs):
//   strings and Uint8Arrays  stay in this wrapper's value table (an array plus a free list of slot
//                            numbers); Rust stores the slot number, charged as the value's size
//                            (1 + its length in UTF-16 code units, or 1 + its byte length), and tells us which
//                            slots it has let go of (`drainFreed`) before we reuse them.
//   anything else            JSON text, stored in Rust (numbers start with '-' or a digit, so
//                            `incr` counters are plain decimal integers and read back as numbers)

const MISS = -1;
/** `RawCache.get`: an inline (JSON) value is in the value buffer. */
const INLINE = -10;

/** Error codes returned by `RawCache`, with the JS error class and `code` each becomes. */
const CODES = new Map([
  [-2, [TypeError, 'ERR_INVALID_KEY']],
  [-3, [RangeError, 'ERR_KEY_TOO_LONG']],
  [-4, [RangeError, 'ERR_VALUE_TOO_LARGE']],
  [-5, [RangeError, 'ERR_INVALID_TTL']],
  [-6, [TypeError, 'ERR_NOT_AN_INTEGER']],
  [-7, [RangeError, 'ERR_OVERFLOW']],
  [-8, [RangeError, 'ERR_INVALID_ARGUMENT']],
  [-9, [Error, 'ERR_CACHE']],
  [-11, [Error, 'ERR_OUT_OF_MEMORY']],
]);

/** The longest key in UTF-8 bytes (`Limits::default().max_key_len`). */
const MAX_KEY_BYTES = 1024;
/** Scratch buffers that grew past this for one large value are shrunk back after use. */
const SHRINK_ABOVE = 1 << 20;

const encoder = new TextEncoder();
const decoder = new TextDecoder('utf-8', { ignoreBOM: true });

function fail(Ctor, code, message, cause) {
  const error = cause === undefined ? new Ctor(message) : new Ctor(message, { cause });
  error.code = code;
  return error;
}

/** A `{ ttl }` option: -1 for "the cache's default", else milliseconds (0: never expires). */
function ttlOption(options) {
  if (options === undefined || options === null) return -1;
  if (typeof options !== 'object') {
    throw fail(TypeError, 'ERR_INVALID_ARGUMENT', `options must be an object, got ${typeof options}`);
  }
  const ttl = options.ttl;
  if (ttl === undefined) return -1;
  return checkTtl(ttl, 'ttl');
}

function checkTtl(ttl, name) {
  if (typeof ttl !== 'number') {
    throw fail(TypeError, 'ERR_INVALID_TTL', `${name} must be a number of milliseconds, got ${typeof ttl}`);
  }
  if (!(ttl >= 0) || ttl === Infinity) {
    throw fail(RangeError, 'ERR_INVALID_TTL', `${name} must be a finite, non-negative number of milliseconds, got ${ttl}`);
  }
  return ttl;
}

function numberOption(options, name) {
  const value = options[name];
  if (value === undefined) return NaN;
  if (typeof value !== 'number') {
    throw fail(TypeError, 'ERR_INVALID_OPTION', `${name} must be a number, got ${typeof value}`);
  }
  if (Number.isNaN(value)) throw fail(RangeError, 'ERR_INVALID_OPTION', `${name} must not be NaN`);
  return value;
}

/** Portable text codecs over a Uint8Array view of wasm memory (browsers, Deno, workers). */
const portable = {
  view: (buffer) => new Uint8Array(buffer),
  decode: (buf, start, end) => decoder.decode(buf.subarray(start, end)),
  encodeInto: (text, buf, start, end) => encoder.encodeInto(text, buf.subarray(start, end)).written,
};

const isWellFormed = typeof String.prototype.isWellFormed === 'function'
  ? (s) => s.isWellFormed()
  : (s) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

/**
 * Builds the public API over one instantiated wasm-bindgen module.
 * @param raw the wasm-bindgen exports: `RawCache` and `wasmMemory`.
 * @param options.isReady whether the module has been instantiated (the web build needs `await init()`).
 * @param options.codec faster text codecs for one platform (the Node build passes Buffer's);
 *   `{ view(ArrayBuffer), decode(view, start, end), encodeInto(text, view, start, end) }`.
 */
export function createApi(raw, { isReady = () => true, codec = portable } = {}) {
  const { decode, encodeInto } = codec;
  let memory;
  let mem = new Uint8Array(0);
  /**
   * The current view of wasm memory (growing memory detaches the old one, whose length reads 0).
   * `length`, not `byteLength`: V8 inlines the former but calls out for the latter on views of
   * wasm memory (about 10 ns against 2 ns, and this runs on every call).
   */
  function view() {
    if (mem.length === 0) {
      memory ??= raw.wasmMemory();
      mem = codec.view(memory.buffer);
    }
    return mem;
  }
  /** UTF-8 bytes `start..end` of wasm memory as a string. */
  function decodeUtf8(buf, start, end) {
    if (end - start > 8) return decode(buf, start, end);
    let s = '';
    for (let i = start; i < end; i++) {
      const c = buf[i];
      if (c > 0x7f) return decode(buf, start, end);
      s += String.fromCharCode(c);
    }
    return s;
  }

  class MemoryCache {
    #raw;
    #keyPtr = 0;
    #keyCap = 0;
    #valPtr = 0;
    #valCap = 0;
    /** The key whose bytes are in the key buffer now, so `get` then `set` encodes it once. */
    #lastKey = undefined;
    #lastKeyLen = 0;
    #inflight = new Map();
    #maxValue = undefined;
    /** The string and Uint8Array values, by slot number; Rust stores the slot numbers. */
    #values = [];
    /** Slots Rust has let go of, free for the next value. */
    #free = [];
    /** Address of Rust's drain flag: non-zero when freed slots are waiting to be taken back. */
    #flagAddr = 0;

    constructor(options = {}) {
      if (!isReady()) {
        throw fail(Error, 'ERR_NOT_INITIALIZED', 'the wasm module is not loaded yet: `await init()` first');
      }
      if (options === null || typeof options !== 'object') {
        throw fail(TypeError, 'ERR_INVALID_OPTION', 'options must be an object');
      }
      const maxEntries = numberOption(options, 'maxEntries');
      const maxBytes = numberOption(options, 'maxBytes');
      const ttl = options.ttl === undefined ? undefined : checkTtl(options.ttl, 'ttl');
      const namespace = options.namespace ?? '';
      if (typeof namespace !== 'string') {
        throw fail(TypeError, 'ERR_INVALID_OPTION', `namespace must be a string, got ${typeof namespace}`);
      }
      try {
        this.#raw = new raw.RawCache(maxEntries, maxBytes, NaN, namespace);
      } catch (e) {
        throw fail(RangeError, 'ERR_INVALID_OPTION', e?.message ?? String(e), e);
      }
      // Set apart so that a TTL over the maximum is ERR_INVALID_TTL, as in writes.
      const status = ttl === undefined ? 0 : this.#raw.setDefaultTtl(ttl);
      if (status < 0) {
        const error = this.#error(status);
        this.free();
        throw error;
      }
      this.#refreshKey();
      this.#refreshVal();
      this.#flagAddr = this.#raw.drainFlagPtr();
    }

    #refreshKey() {
      this.#keyPtr = this.#raw.keyPtr();
      this.#keyCap = this.#raw.keyCap();
    }

    #refreshVal() {
      this.#valPtr = this.#raw.valPtr();
      this.#valCap = this.#raw.valCap();
    }

    #error(code) {
      const [Ctor, name] = CODES.get(code) ?? [Error, 'ERR_CACHE'];
      return fail(Ctor, name, this.#raw.errorMessage());
    }

    /** Writes `key` as UTF-8 into the key buffer (unless it is there already); returns its byte length. */
    #key(key) {
      return key === this.#lastKey ? this.#lastKeyLen : this.#encodeKey(key);
    }

    /**
     * Writes `key` as UTF-8 into the key buffer; returns its byte length. `get` calls this rather
     * than `#key`: a read rarely repeats the previous key, and comparing two distinct strings of
     * one length compares their characters.
     */
    #encodeKey(key) {
      this.#lastKey = undefined;
      if (typeof key !== 'string') {
        throw fail(TypeError, 'ERR_INVALID_KEY', `keys must be strings, got ${key === null ? 'null' : typeof key}`);
      }
      const n = key.length;
      // UTF-8 never has fewer bytes than UTF-16 code units.
      if (n > MAX_KEY_BYTES) {
        throw fail(RangeError, 'ERR_KEY_TOO_LONG', `key is at least ${n} bytes, longer than the limit of ${MAX_KEY_BYTES} bytes`);
      }
      if (n * 3 > this.#keyCap) {
        const status = this.#raw.reserveKey(n * 3);
        if (status < 0) throw this.#error(status);
        this.#refreshKey();
      }
      const buf = view();
      const p = this.#keyPtr;
      let i = 0;
      for (; i < n; i++) {
        const c = key.charCodeAt(i);
        if (c > 0x7f) break;
        buf[p + i] = c;
      }
      let len = i;
      if (i < n) {
        if (!isWellFormed(key)) {
          throw fail(TypeError, 'ERR_INVALID_KEY', 'keys must be well-formed Unicode (this one has a lone surrogate)');
        }
        len = encodeInto(key, buf, p, p + this.#keyCap);
      }
      this.#lastKey = key;
      this.#lastKeyLen = len;
      return len;
    }

    /** Encodes `value` (neither a string nor a Uint8Array) as JSON into the value buffer; returns its length. */
    #json(value) {
      if (value === undefined || typeof value === 'function' || typeof value === 'symbol') {
        throw fail(TypeError, 'ERR_INVALID_VALUE', `cannot cache ${value === undefined ? 'undefined' : `a ${typeof value}`}: values are strings, Uint8Arrays and JSON values`);
      }
      if (typeof value === 'number' && !Number.isFinite(value)) {
        throw fail(TypeError, 'ERR_INVALID_VALUE', `cannot cache ${value}: JSON has no non-finite numbers`);
      }
      if (ArrayBuffer.isView(value) || value instanceof ArrayBuffer) {
        throw fail(TypeError, 'ERR_INVALID_VALUE', 'binary values must be Uint8Arrays');
      }
      let json;
      try {
        json = JSON.stringify(value);
      } catch (e) {
        throw fail(TypeError, 'ERR_INVALID_VALUE', `cannot cache this value as JSON: ${e?.message ?? e}`, e);
      }
      if (json === undefined) {
        throw fail(TypeError, 'ERR_INVALID_VALUE', 'cannot cache this value: JSON.stringify returned undefined');
      }
      return this.#text(0, json);
    }

    /** Throws ERR_VALUE_TOO_LARGE before growing a buffer for a value Rust would refuse anyway. */
    #checkSize(n) {
      this.#maxValue ??= this.#raw.maxValueLen();
      if (n > this.#maxValue) {
        throw fail(RangeError, 'ERR_VALUE_TOO_LARGE', `value is at least ${n} bytes encoded, larger than the limit of ${this.#maxValue} bytes`);
      }
    }

    /** `tag` (0: none) then `text` as UTF-8 into the value buffer; returns the length. */
    #text(tag, text) {
      const start = tag === 0 ? 0 : 1;
      const n = text.length;
      if (start + n * 3 > this.#valCap) {
        // UTF-8 has at least as many bytes as UTF-16 has units, and at most three times as many.
        this.#checkSize(start + n);
        if (n > 4096) {
          const bytes = encoder.encode(text);
          this.#checkSize(start + bytes.length);
          if (start + bytes.length > this.#valCap) this.#growVal(start + bytes.length);
          const buf = view();
          if (start) buf[this.#valPtr] = tag;
          buf.set(bytes, this.#valPtr + start);
          return start + bytes.length;
        }
        this.#growVal(start + n * 3);
      }
      const buf = view();
      const p = this.#valPtr;
      if (start) buf[p] = tag;
      const q = p + start;
      if (n > 24) return start + encodeInto(text, buf, q, p + this.#valCap);
      for (let i = 0; i < n; i++) {
        const c = text.charCodeAt(i);
        if (c > 0x7f) return start + encodeInto(text, buf, q, p + this.#valCap);
        buf[q + i] = c;
      }
      return start + n;
    }

    #growVal(n) {
      const status = this.#raw.reserveVal(n);
      if (status < 0) throw this.#error(status);
      this.#refreshVal();
    }

    /** Decodes the inline (JSON) value Rust left in the value buffer. */
    #inline() {
      const len = this.#raw.valueLen();
      if (len > this.#valCap) this.#refreshVal();
      const p = this.#valPtr;
      const value = JSON.parse(decodeUtf8(view(), p, p + len));
      if (len > SHRINK_ABOVE) this.#shrink();
      return value;
    }

    /** Takes back the slots Rust has let go of: drops their values and reuses the slots. */
    #drain() {
      const n = this.#raw.drainFreed();
      if (n === 0) return;
      const p = this.#raw.freedPtr();
      const buf = view();
      const values = this.#values;
      const free = this.#free;
      for (let q = p; q < p + 4 * n; q += 4) {
        const slot = buf[q] | (buf[q + 1] << 8) | (buf[q + 2] << 16) | (buf[q + 3] << 24);
        values[slot] = undefined;
        free.push(slot);
      }
    }

    /** Drains if Rust's flag says enough freed slots (or a large value's) are waiting. */
    #maybeDrain() {
      if (view()[this.#flagAddr] !== 0) this.#drain();
    }

    /** The value at `key`, or `undefined` if it is absent or expired. */
    get(key) {
      const n = this.#raw.get(this.#encodeKey(key));
      if (n >= 0) {
        const value = this.#values[n];
        // Bytes: a copy, so the caller cannot change the cached value.
        return typeof value === 'string' ? value : value.slice();
      }
      if (n === MISS) {
        // Reading an expired entry reclaims it.
        this.#maybeDrain();
        return undefined;
      }
      if (n === INLINE) return this.#inline();
      throw this.#error(n);
    }

    #shrink() {
      this.#raw.shrink();
      this.#refreshKey();
      this.#refreshVal();
      this.#lastKey = undefined;
    }

    /** Stores `value` at `key`; `options.ttl` in ms (0: never expires; default: the cache's). */
    set(key, value, options) {
      const ttl = options === undefined ? -1 : ttlOption(options);
      if (typeof value === 'string') {
        // Charged 1 + its length: reading the text to count UTF-8 bytes would cost more than the
        // rest of the write (a fresh string is often a rope that has to be flattened first).
        this.#setHandle(key, value, 1 + value.length, ttl);
      } else if (value instanceof Uint8Array) {
        const n = value.length + 1;
        this.#checkSize(n);
        // A copy, as a plain Uint8Array: later changes to the caller's array do not reach the cache.
        this.#setHandle(key, new Uint8Array(value), n, ttl);
      } else {
        this.#setInline(key, this.#json(value), ttl);
      }
      // A getOrSet load of `key` in flight must not overwrite this value.
      if (this.#inflight.size !== 0) this.#inflight.delete(key);
      return this;
    }

    /** Stores the `vlen` bytes of JSON in the value buffer at `key`. */
    #setInline(key, vlen, ttl) {
      const status = this.#raw.set(this.#key(key), vlen, ttl);
      if (this.#valCap > SHRINK_ABOVE || this.#keyCap > SHRINK_ABOVE) this.#shrink();
      if (status < 0) throw this.#error(status);
      this.#maybeDrain();
    }

    /** Puts `value` in a free slot and stores the slot at `key`, charged `weight` bytes. */
    #setHandle(key, value, weight, ttl) {
      const klen = this.#key(key);
      const values = this.#values;
      const free = this.#free;
      const slot = free.length === 0 ? values.length : free.pop();
      values[slot] = value;
      const status = this.#raw.setHandle(klen, slot, weight, ttl);
      if (status < 0) {
        const error = this.#error(status);
        // A refused write frees the slot at once.
        this.#drain();
        throw error;
      }
      this.#maybeDrain();
    }

    /** Whether `key` holds a live entry. Does not count as a hit or a miss. */
    has(key) {
      const status = this.#raw.has(this.#key(key));
      if (status < 0) throw this.#error(status);
      return status === 1;
    }

    /** Deletes `key`; returns whether it held a live entry. */
    delete(key) {
      const status = this.#raw.delete(this.#key(key));
      if (status < 0) throw this.#error(status);
      this.#drain();
      // A getOrSet load of `key` in flight must not bring it back.
      this.#inflight.delete(key);
      return status === 1;
    }

    /** Deletes every entry (of this cache's namespace). */
    clear() {
      this.#raw.clear();
      this.#lastKey = undefined;
      this.#drain();
      this.#inflight.clear();
    }

    /** Deletes every key that starts with `prefix`; returns how many it deleted. */
    deletePrefix(prefix) {
      if (typeof prefix !== 'string') {
        throw fail(TypeError, 'ERR_INVALID_ARGUMENT', `prefix must be a string, got ${typeof prefix}`);
      }
      // wasm-bindgen would turn a lone surrogate into U+FFFD and match other keys.
      if (!isWellFormed(prefix)) {
        throw fail(TypeError, 'ERR_INVALID_KEY', 'prefix must be well-formed Unicode (this one has a lone surrogate)');
      }
      const deleted = this.#raw.deletePrefix(prefix);
      this.#drain();
      for (const key of this.#inflight.keys()) {
        if (key.startsWith(prefix)) this.#inflight.delete(key);
      }
      return deleted;
    }

    /** Live entries now. */
    get size() {
      const size = this.#raw.size();
      this.#drain();
      return size;
    }

    /** An iterator over a snapshot of the live keys (sorted). */
    keys() {
      return this.#raw.keys()[Symbol.iterator]();
    }

    /** Remaining lifetime of `key` in ms: `Infinity` if it never expires, `undefined` if absent. */
    ttl(key) {
      const left = this.#raw.ttl(this.#key(key));
      if (left < 0) {
        if (left === MISS) return undefined;
        throw this.#error(left);
      }
      return left;
    }

    /** lru-cache's spelling of `ttl(key)`: `0` if absent, `Infinity` if it never expires. */
    getRemainingTTL(key) {
      return this.ttl(key) ?? 0;
    }

    /** Adds `delta` (a safe integer, default 1) to the integer at `key` (absent: 0); returns it. */
    incr(key, delta = 1, options) {
      if (typeof delta !== 'number') {
        throw fail(TypeError, 'ERR_INVALID_ARGUMENT', `delta must be a number, got ${typeof delta}`);
      }
      const ttl = ttlOption(options);
      const status = this.#raw.incr(this.#key(key), delta, ttl);
      if (status < 0) throw this.#error(status);
      this.#maybeDrain();
      if (this.#inflight.size !== 0) this.#inflight.delete(key);
      return this.#raw.number();
    }

    /**
     * The value at `key`; on a miss, calls `loader(key)` once however many callers wait, caches
     * what it resolves to and resolves every caller with it, as `get` would read it back. A
     * loader that throws or rejects rejects every waiter and caches nothing. See the README for
     * `undefined`, too large and invalid results, and writes made while the loader runs.
     */
    async getOrSet(key, loader, options) {
      if (typeof loader !== 'function') {
        throw fail(TypeError, 'ERR_INVALID_ARGUMENT', `loader must be a function, got ${typeof loader}`);
      }
      const ttl = ttlOption(options);
      const hit = this.get(key);
      if (hit !== undefined) return hit;
      let load = this.#inflight.get(key);
      // No promise yet: the loader itself called getOrSet(key); it gets a load of its own.
      if (load?.promise === undefined) {
        // Registered before the loader runs, so that one that throws at once finds and removes it.
        load = { promise: undefined };
        this.#inflight.set(key, load);
        load.promise = this.#load(key, loader, ttl, load);
      }
      return load.promise;
    }

    async #load(key, loader, ttl, load) {
      let value;
      try {
        value = await loader(key);
      } catch (error) {
        this.#endLoad(key, load);
        throw error;
      }
      // A set, incr, delete, clear or deletePrefix of `key` meanwhile removed `load`: keep theirs.
      const current = this.#endLoad(key, load);
      // Like lru-cache's fetch: nothing to cache.
      if (value === undefined || this.#raw === undefined) return value;
      return this.#settle(key, value, ttl, current);
    }

    /** Removes `load` from the in-flight map; returns whether it was still there. */
    #endLoad(key, load) {
      if (this.#inflight.get(key) !== load) return false;
      this.#inflight.delete(key);
      return true;
    }

    /** A loaded value as `get` would read it back; stored at `key` if `store`. */
    #settle(key, value, ttl, store) {
      try {
        if (typeof value === 'string') {
          if (store) this.#setHandle(key, value, 1 + value.length, ttl);
          return value;
        }
        if (value instanceof Uint8Array) {
          const n = value.length + 1;
          this.#checkSize(n);
          if (store) this.#setHandle(key, new Uint8Array(value), n, ttl);
          return new Uint8Array(value);
        }
        const vlen = this.#json(value);
        const p = this.#valPtr;
        // The JSON just encoded, decoded: what a later hit returns (a Date as its string, -0 as 0).
        const read = JSON.parse(decodeUtf8(view(), p, p + vlen));
        if (store) this.#setInline(key, vlen, ttl);
        else if (this.#valCap > SHRINK_ABOVE) this.#shrink();
        return read;
      } catch (error) {
        // Cannot be cached, but the loader's value is still good: the waiters get it as it is.
        if (error?.code === 'ERR_VALUE_TOO_LARGE' || error?.code === 'ERR_OUT_OF_MEMORY') return value;
        throw error;
      }
    }

    /** Counters since creation, plus the entries and bytes held now. */
    stats() {
      const [hits, misses, evictions, expirations, entries, bytes] = this.#raw.stats();
      this.#drain();
      return { hits, misses, evictions, expirations, entries, bytes };
    }

    /** Frees the wasm memory now instead of when garbage-collected. The cache is unusable after. */
    free() {
      this.#raw?.free();
      this.#raw = undefined;
      this.#values = [];
      this.#free = [];
      this.#inflight.clear();
    }

    [Symbol.dispose]() {
      this.free();
    }

    get [Symbol.toStringTag]() {
      return 'MemoryCache';
    }
  }

  /** Keyv's `ttl` of `Infinity`: stored without expiry. */
  const NO_EXPIRY = Object.freeze({ ttl: 0 });

  /** A Keyv `ttl` (ms) as `set` options: none, 0 or negative means the cache's default. */
  function keyvTtl(ttl) {
    if (typeof ttl !== 'number' || !(ttl > 0)) return undefined;
    return ttl === Infinity ? NO_EXPIRY : { ttl };
  }

  /**
   * A Keyv 5 storage adapter: `new Keyv({ store: new KeyvMemoryCache({ maxEntries: 10_000 }) })`.
   * Like the official adapters, a failed call rejects and Keyv reports it (its 'error' event).
   */
  class KeyvMemoryCache {
    /**
     * Set by Keyv: its namespace. Keys are kept as `namespace:key` whether Keyv prefixes them (by
     * default) or not (`useKeyPrefix: false`), so `clear()` clears exactly this namespace.
     */
    namespace = undefined;
    opts;
    cache;
    #listeners = new Map();

    constructor(cacheOrOptions = {}) {
      this.cache = cacheOrOptions instanceof MemoryCache ? cacheOrOptions : new MemoryCache(cacheOrOptions);
      this.opts = { dialect: 'cachekit-wasm', url: 'cachekit-wasm://memory' };
    }

    /** `key` under this namespace, as Keyv's own prefixing makes it (a key that has it is kept). */
    #key(key) {
      const ns = this.namespace;
      if (!ns || typeof key !== 'string' || key.startsWith(`${ns}:`)) return key;
      return `${ns}:${key}`;
    }

    on(event, listener) {
      const list = this.#listeners.get(event) ?? [];
      list.push(listener);
      this.#listeners.set(event, list);
      return this;
    }

    off(event, listener) {
      const list = this.#listeners.get(event);
      if (list) this.#listeners.set(event, list.filter((l) => l !== listener));
      return this;
    }

    once(event, listener) {
      const wrapped = (...args) => {
        this.off(event, wrapped);
        listener(...args);
      };
      return this.on(event, wrapped);
    }

    emit(event, ...args) {
      const list = this.#listeners.get(event);
      if (!list || list.length === 0) return false;
      for (const listener of [...list]) listener(...args);
      return true;
    }

    async get(key) {
      return this.cache.get(this.#key(key));
    }

    async getMany(keys) {
      return keys.map((key) => this.cache.get(this.#key(key)));
    }

    async set(key, value, ttl) {
      this.cache.set(this.#key(key), value, keyvTtl(ttl));
      return true;
    }

    async setMany(entries) {
      return entries.map(({ key, value, ttl }) => {
        this.cache.set(this.#key(key), value, keyvTtl(ttl));
        return true;
      });
    }

    async delete(key) {
      return this.cache.delete(this.#key(key));
    }

    async deleteMany(keys) {
      return keys.map((key) => this.cache.delete(this.#key(key))).every(Boolean);
    }

    async has(key) {
      return this.cache.has(this.#key(key));
    }

    async hasMany(keys) {
      return keys.map((key) => this.cache.has(this.#key(key)));
    }

    /** Clears this namespace only (the whole cache without one). */
    async clear() {
      if (this.namespace) this.cache.deletePrefix(`${this.namespace}:`);
      else this.cache.clear();
    }

    /** `[key, stored value]` of each live entry of `namespace` (default: this one; none: all). */
    async *iterator(namespace = this.namespace) {
      const prefix = namespace ? `${namespace}:` : '';
      for (const key of this.cache.keys()) {
        if (!key.startsWith(prefix)) continue;
        const value = this.cache.get(key);
        if (value !== undefined) yield [key, value];
      }
    }

    async disconnect() {}
  }

  return { MemoryCache, KeyvMemoryCache };
}
