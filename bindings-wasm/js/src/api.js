// The JS layer of the package, shared by the web, bundler and Node builds. Keys and values stay in
// JS: a Map from key to an integer slot, and the keys and values by slot. Every cache decision
// (admission, eviction, expiry, both bounds) is made by the Rust slot engine (`RawEngine`,
// bindings-wasm/src/lib.rs, over backend-memory's engine, which MemoryStore runs on too).
//
// A hit calls nothing in wasm: it reads the slot's expiry and bumps its frequency through typed
// arrays over wasm memory. An insert passes integers (hash, size, times) and reads back the slots
// the engine removed to make room. It uses no Node-only API: it runs in browsers, Deno and workers.

/** Header words of a RawEngine (see bindings-wasm/src/lib.rs). */
const H_LAYOUT = 0;
const H_STATE = 1;
const H_EXPIRES = 2;
const H_VICTIMS = 3;
const H_VICTIM_COUNT = 4;
const H_NEED_SLOT = 5;
const H_NEED_EXPIRY = 6;
const H_SLOTS = 7;
const H_NEED_COMPACT = 8;
/** State byte: bits 0-1 frequency (at most 3), bits 2-3 the queue (0: a free slot). */
const FREQ = 3;
const IN_QUEUE = 12;

/** RawEngine error codes. */
const RAW_VALUE_TOO_LARGE = -4;
const RAW_OUT_OF_MEMORY = -11;
/** The call removed its most entries and asks to be called again (after the victims are taken). */
const RAW_AGAIN = -13;
/** What `purge` removes at most per call. */
const VICTIMS = 256;

const NEVER = Infinity;
/** The disposals list of a cache without `dispose`: never pushed to (every push checks `dispose`). */
const NO_DISPOSALS = Object.freeze([]);
const DEFAULT_MAX_ENTRIES = 10_000;
/** A JS Map holds at most 2^24 entries. */
const MAX_ENTRIES = 2 ** 24;
/** The longest key in UTF-8 bytes. */
const MAX_KEY_BYTES = 1024;
/** The longest TTL: 100 years, in ms (cache-core's MAX_TTL). */
const MAX_TTL = 100 * 365 * 24 * 3600 * 1000;
/** Largest size one entry can be charged (the engine counts in u32). */
const MAX_ENTRY_SIZE = 2 ** 32 - 1;
/** Calls of stack `reserve` needs checked first: far more than it uses (the engine's growth). */
const STACK_PROBE = 500;

/** Recurses `depth` calls deep: throws a RangeError if the stack has not that much room. */
function stackRoom(depth) {
  return depth === 0 ? 0 : stackRoom(depth - 1) + 1;
}

// The clock object is read once; its `now` on every use, so fake timers that replace it still work.
const perf = typeof performance === 'object' && performance !== null && typeof performance.now === 'function'
  ? performance
  : Date;

const OPTIONS = new Set([
  'maxEntries', 'max', 'maxBytes', 'maxSize', 'ttl', 'sizeCalculation', 'dispose', 'onEvict',
  'allowStale', 'copy', 'fetchMethod',
]);

function fail(Ctor, code, message, cause) {
  const error = cause === undefined ? new Ctor(message) : new Ctor(message, { cause });
  error.code = code;
  return error;
}

const isWellFormed = typeof String.prototype.isWellFormed === 'function'
  ? (s) => s.isWellFormed()
  : (s) => !/[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/.test(s);

/** UTF-8 length of a well-formed string. */
function utf8Length(s) {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c <= 0xdbff) { n += 4; i++; }
    else n += 3;
  }
  return n;
}

/** Throws the documented error for a key a write cannot take. */
function checkKey(key) {
  if (typeof key !== 'string') {
    throw fail(TypeError, 'ERR_INVALID_KEY', `keys must be strings, got ${key === null ? 'null' : typeof key}`);
  }
  if (key.length === 0) throw fail(TypeError, 'ERR_INVALID_KEY', 'keys must not be empty');
  if (!isWellFormed(key)) {
    throw fail(TypeError, 'ERR_INVALID_KEY', 'keys must be well-formed Unicode (this one has a lone surrogate)');
  }
  // UTF-8 has at most three bytes per UTF-16 unit.
  if (key.length * 3 > MAX_KEY_BYTES) {
    const n = utf8Length(key);
    if (n > MAX_KEY_BYTES) {
      throw fail(RangeError, 'ERR_KEY_TOO_LONG', `key is ${n} bytes, longer than the limit of ${MAX_KEY_BYTES} bytes`);
    }
  }
}

/** FNV-1a over the key's UTF-16 units: what the engine's ghost remembers an evicted key by. */
function hashKey(key) {
  let h = 0x811c9dc5;
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key.charCodeAt(i), 0x01000193);
  return h >>> 0;
}

function checkTtl(ttl, name) {
  if (typeof ttl !== 'number') {
    throw fail(TypeError, 'ERR_INVALID_TTL', `${name} must be a number of milliseconds, got ${typeof ttl}`);
  }
  if (!(ttl >= 0) || ttl > MAX_TTL) {
    throw fail(RangeError, 'ERR_INVALID_TTL', `${name} must be from 0 to ${MAX_TTL} ms (100 years), got ${ttl}`);
  }
  return ttl;
}

function checkObject(options, what) {
  if (typeof options !== 'object' || options === null) {
    throw fail(TypeError, 'ERR_INVALID_ARGUMENT', `${what} must be an object, got ${options === null ? 'null' : typeof options}`);
  }
}

/** A whole number option from 1 to `max`, under either of its names. */
function countOption(options, name, alias, max) {
  const a = options[name];
  const b = options[alias];
  if (a !== undefined && b !== undefined) {
    throw fail(TypeError, 'ERR_INVALID_OPTION', `give ${name} or ${alias}, not both`);
  }
  const value = a ?? b;
  if (value === undefined) return undefined;
  const label = a === undefined ? alias : name;
  if (typeof value !== 'number') {
    throw fail(TypeError, 'ERR_INVALID_OPTION', `${label} must be a number, got ${typeof value}`);
  }
  if (!(Number.isInteger(value) && value >= 1 && value <= max) && !(value === Infinity && max === Infinity)) {
    throw fail(RangeError, 'ERR_INVALID_OPTION', `${label} must be a whole number from 1 to ${max}, got ${value}`);
  }
  return value;
}

function functionOption(options, name) {
  const f = options[name];
  if (f !== undefined && typeof f !== 'function') {
    throw fail(TypeError, 'ERR_INVALID_OPTION', `${name} must be a function, got ${typeof f}`);
  }
  return f;
}

function cloneValue(value) {
  try {
    return structuredClone(value);
  } catch (e) {
    throw fail(TypeError, 'ERR_INVALID_VALUE', `copy is on, and this value cannot be cloned: ${e?.message ?? e}`, e);
  }
}

/**
 * Builds the public API over one instantiated wasm-bindgen module.
 * @param raw the wasm-bindgen exports: `RawEngine` and `wasmMemory`.
 * @param options.isReady whether the module has been instantiated (the web build needs `await init()`).
 */
export function createApi(raw, { isReady = () => true } = {}) {
  // Views over wasm memory, shared by every cache of the module. Memory grows only inside a call
  // that allocates (a constructor, `reserve`), and each of those is followed by `refresh()`, so the
  // views are current whenever a hit reads them.
  let memory;
  let u8 = new Uint8Array(0);
  let u32 = new Uint32Array(0);
  let f64 = new Float64Array(0);
  function refresh() {
    if (u8.length === 0) {
      memory ??= raw.wasmMemory();
      const buffer = memory.buffer;
      u8 = new Uint8Array(buffer);
      u32 = new Uint32Array(buffer);
      f64 = new Float64Array(buffer);
    }
  }

  class MemoryCache {
    /** The engine; undefined after free(). */
    #raw;
    /** Index of the engine's header in `u32`. */
    #hdr = 0;
    /** The header's layout word when the addresses below were read. */
    #layout = -1;
    /** Byte address of the state bytes (one per slot). */
    #state = 0;
    /** Index of the expiries in `f64`, or 0 while no entry has had a TTL. */
    #exp = 0;
    #map = new Map();
    #keys = [];
    #values = [];
    #maxEntries;
    #maxBytes;
    /** Whether sizes bound the cache (maxBytes given): then every value must be measured. */
    #bounded;
    #ttl;
    #sizeCalculation;
    #dispose;
    #allowStale;
    #copy;
    #fetchMethod;
    #hits = 0;
    #misses = 0;
    #inflight = new Map();
    /** Set when a mutation was interrupted by an exception that is not ours (a stack overflow). */
    #suspect = false;

    constructor(options = {}) {
      if (!isReady()) {
        throw fail(Error, 'ERR_NOT_INITIALIZED', 'the wasm module is not loaded yet: `await init()` first');
      }
      if (options === null || typeof options !== 'object') {
        throw fail(TypeError, 'ERR_INVALID_OPTION', 'options must be an object');
      }
      for (const name of Object.keys(options)) {
        if (!OPTIONS.has(name)) {
          throw fail(TypeError, 'ERR_INVALID_OPTION', `unknown option ${JSON.stringify(name)}; the options are ${[...OPTIONS].join(', ')}`);
        }
      }
      this.#maxEntries = countOption(options, 'maxEntries', 'max', MAX_ENTRIES) ?? DEFAULT_MAX_ENTRIES;
      this.#maxBytes = countOption(options, 'maxBytes', 'maxSize', Infinity) ?? Infinity;
      if (this.#maxBytes !== Infinity && this.#maxBytes > Number.MAX_SAFE_INTEGER) {
        throw fail(RangeError, 'ERR_INVALID_OPTION', `maxBytes must be a whole number from 1 to ${Number.MAX_SAFE_INTEGER}, got ${this.#maxBytes}`);
      }
      this.#bounded = this.#maxBytes !== Infinity;
      this.#ttl = options.ttl === undefined ? 0 : checkTtl(options.ttl, 'ttl');
      this.#sizeCalculation = functionOption(options, 'sizeCalculation');
      if (options.dispose !== undefined && options.onEvict !== undefined) {
        throw fail(TypeError, 'ERR_INVALID_OPTION', 'give dispose or onEvict, not both');
      }
      this.#dispose = functionOption(options, 'dispose') ?? functionOption(options, 'onEvict');
      this.#fetchMethod = functionOption(options, 'fetchMethod');
      for (const name of ['allowStale', 'copy']) {
        if (options[name] !== undefined && typeof options[name] !== 'boolean') {
          throw fail(TypeError, 'ERR_INVALID_OPTION', `${name} must be a boolean, got ${typeof options[name]}`);
        }
      }
      this.#allowStale = options.allowStale === true;
      this.#copy = options.copy === true;
      this.#raw = this.#newEngine();
    }

    #newEngine() {
      stackRoom(STACK_PROBE);
      let engine;
      try {
        engine = new raw.RawEngine(this.#maxEntries, this.#maxBytes);
      } catch (e) {
        throw fail(Error, 'ERR_OUT_OF_MEMORY', `cannot make a cache: ${e?.message ?? e}`, e);
      }
      refresh();
      this.#hdr = engine.headerPtr() >>> 2;
      this.#layout = -1;
      this.#readLayout();
      return engine;
    }

    /** Reads the engine's array addresses again if they moved. */
    #readLayout() {
      const h = this.#hdr;
      if (u32[h + H_LAYOUT] === this.#layout) return;
      this.#layout = u32[h + H_LAYOUT];
      this.#state = u32[h + H_STATE];
      this.#exp = u32[h + H_EXPIRES] >>> 3;
    }

    /** Throws unless the cache can be used; repairs it after an interrupted mutation. */
    #ready() {
      if (this.#raw === undefined) {
        throw fail(Error, 'ERR_FREED', 'this cache was freed: make a new one');
      }
      if (this.#suspect) this.#repair();
    }

    /** The value at `key` (undefined if absent or expired). Counts a hit or a miss. */
    get(key, options) {
      const slot = this.#map.get(key);
      if (slot !== undefined) {
        const e = this.#exp;
        if (e !== 0) {
          const at = f64[e + slot];
          if (at !== NEVER && at <= perf.now()) return this.#expiredGet(key, slot, options);
        }
        const p = this.#state + slot;
        const b = u8[p];
        if ((b & FREQ) !== FREQ) u8[p] = b + 1;
        this.#hits++;
        const value = this.#values[slot];
        return this.#copy ? structuredClone(value) : value;
      }
      this.#ready();
      checkKey(key);
      this.#misses++;
      return undefined;
    }

    #expiredGet(key, slot, options) {
      this.#ready();
      const value = this.#values[slot];
      this.#misses++;
      this.#removeSlot(key, slot, true);
      const allowStale = options?.allowStale ?? this.#allowStale;
      return allowStale ? (this.#copy ? structuredClone(value) : value) : undefined;
    }

    /** The value at `key` without counting a read or touching its frequency. */
    peek(key, options) {
      const slot = this.#map.get(key);
      if (slot === undefined) {
        this.#ready();
        checkKey(key);
        return undefined;
      }
      if (this.#expired(slot) && !(options?.allowStale ?? this.#allowStale)) return undefined;
      const value = this.#values[slot];
      return this.#copy ? structuredClone(value) : value;
    }

    /** Whether `key` holds a live entry. Not a read: counts nothing and touches no frequency. */
    has(key) {
      const slot = this.#map.get(key);
      if (slot === undefined) {
        this.#ready();
        checkKey(key);
        return false;
      }
      if (this.#expired(slot)) {
        this.#ready();
        this.#removeSlot(key, slot, true);
        return false;
      }
      return true;
    }

    #expired(slot) {
      const e = this.#exp;
      if (e === 0) return false;
      const at = f64[e + slot];
      return at !== NEVER && at <= perf.now();
    }

    /**
     * Stores `value` at `key`. `options.ttl` in ms (0: never expires; default: the cache's),
     * `options.size` its size (default: see the README). `set(key, undefined)` deletes `key`.
     */
    set(key, value, options) {
      if (value === undefined) {
        this.delete(key);
        return this;
      }
      this.#ready();
      let ttl = this.#ttl;
      let size;
      if (options !== undefined) {
        checkObject(options, 'options');
        if (options.ttl !== undefined) ttl = checkTtl(options.ttl, 'ttl');
        size = options.size;
      }
      const slot = this.#map.get(key);
      if (slot === undefined) checkKey(key);
      const charge = this.#charge(key, value, size);
      if (this.#copy) value = cloneValue(value);
      const disposals = this.#dispose === undefined ? NO_DISPOSALS : [];
      this.#store(key, slot, value, charge, ttl, disposals);
      // A getOrSet load of `key` in flight must not overwrite this value.
      if (this.#inflight.size !== 0) this.#inflight.delete(key);
      this.#disposeAll(disposals);
      return this;
    }

    /** What an entry is charged: its key's length plus its value's size. */
    #charge(key, value, size) {
      let n;
      if (size !== undefined) {
        if (!(Number.isInteger(size) && size >= 0)) {
          throw fail(RangeError, 'ERR_INVALID_ARGUMENT', `size must be a whole number of bytes, got ${size}`);
        }
        n = size;
      } else if (typeof value === 'string') {
        n = 1 + value.length;
      } else if (value instanceof Uint8Array) {
        // byteLength, not length: see the Node 20 note in the README.
        n = 1 + value.byteLength;
      } else if (this.#sizeCalculation !== undefined) {
        n = this.#sizeCalculation(value, key);
        if (!(Number.isInteger(n) && n >= 0)) {
          throw fail(RangeError, 'ERR_INVALID_ARGUMENT', `sizeCalculation must return a whole number of bytes, got ${n}`);
        }
      } else if (this.#bounded) {
        n = jsonSize(value);
      } else {
        n = 0;
      }
      n += key.length;
      if (n > MAX_ENTRY_SIZE || n > this.#maxBytes) {
        throw fail(RangeError, 'ERR_VALUE_TOO_LARGE', `entry is charged ${n} bytes (key plus value), more than maxBytes (${this.#maxBytes})`);
      }
      return n;
    }

    /** Writes an entry of `charge` bytes: an update of `slot`, or an insert if it is undefined. */
    #store(key, slot, value, charge, ttl, disposals) {
      const timed = ttl !== 0 || this.#exp !== 0;
      const now = timed ? perf.now() : 0;
      const at = ttl === 0 ? NEVER : now + ttl;
      if (slot !== undefined && this.#expired(slot)) {
        this.#removeSlot(key, slot, true, disposals);
        slot = undefined;
      }
      const h = this.#hdr;
      const need = slot === undefined
        ? u32[h + H_NEED_SLOT] !== 0 || (ttl !== 0 && u32[h + H_NEED_EXPIRY] !== 0)
        : u32[h + (ttl !== 0 ? H_NEED_EXPIRY : H_NEED_COMPACT)] !== 0;
      if (need) this.#reserve(slot === undefined, ttl !== 0);
      let status;
      try {
        do {
          status = slot === undefined
            ? this.#raw.insert(hashKey(key), charge, at, now)
            : this.#raw.update(slot, charge, at, now);
          this.#takeVictims(disposals);
        } while (status === RAW_AGAIN);
        if (status >= 0) {
          if (slot === undefined) {
            this.#keys[status] = key;
            this.#values[status] = value;
            this.#map.set(key, status);
          } else {
            const old = this.#values[slot];
            this.#values[slot] = value;
            if (this.#dispose !== undefined && old !== value) disposals.push(old, key, 'set');
          }
        }
      } catch (e) {
        this.#suspect = true;
        throw e;
      }
      if (status < 0) throw this.#rawError(status);
    }

    /**
     * Lets the engine allocate (or compact) what the next insert (if `slot`) or expiry needs: the
     * only call here that allocates, so the only one made with the stack checked first.
     */
    #reserve(slot, expiry) {
      // Throws a RangeError here, before the engine is touched, if the stack is nearly full.
      stackRoom(STACK_PROBE);
      let status;
      try {
        status = this.#raw.reserve(slot, expiry);
        refresh();
        this.#readLayout();
      } catch (e) {
        this.#suspect = true;
        throw e;
      }
      if (status < 0) throw this.#rawError(status);
    }

    #rawError(status) {
      if (status === RAW_OUT_OF_MEMORY) {
        return fail(Error, 'ERR_OUT_OF_MEMORY', 'the wasm memory is full; nothing was written');
      }
      if (status === RAW_VALUE_TOO_LARGE) {
        return fail(RangeError, 'ERR_VALUE_TOO_LARGE', `entry is larger than maxBytes (${this.#maxBytes})`);
      }
      return fail(Error, 'ERR_CACHE', `the engine refused the call (code ${status})`);
    }

    /** Drops the entries the last engine call removed; their disposals go to `disposals`. */
    #takeVictims(disposals) {
      const h = this.#hdr;
      const n = u32[h + H_VICTIM_COUNT];
      if (n === 0) return;
      const at = u32[h + H_VICTIMS] >>> 2;
      const keys = this.#keys;
      const values = this.#values;
      for (let i = 0; i < n; i++) {
        const victim = u32[at + i];
        const slot = victim >>> 1;
        const key = keys[slot];
        const value = values[slot];
        keys[slot] = undefined;
        values[slot] = undefined;
        if (key !== undefined && this.#map.get(key) === slot) this.#map.delete(key);
        if (this.#dispose !== undefined) disposals.push(value, key, (victim & 1) === 1 ? 'expire' : 'evict');
      }
    }

    /** Removes the entry of `key` in `slot` (expired, or deleted). */
    #removeSlot(key, slot, expired, disposals) {
      const value = this.#values[slot];
      try {
        this.#raw.remove(slot, expired);
        this.#map.delete(key);
        this.#keys[slot] = undefined;
        this.#values[slot] = undefined;
      } catch (e) {
        this.#suspect = true;
        throw e;
      }
      if (this.#dispose === undefined) return;
      if (disposals !== undefined) disposals.push(value, key, expired ? 'expire' : 'delete');
      else this.#disposeAll([value, key, expired ? 'expire' : 'delete']);
    }

    /** Calls `dispose` for each (value, key, reason) triple; the first error is thrown after all ran. */
    #disposeAll(disposals) {
      const dispose = this.#dispose;
      if (dispose === undefined || disposals.length === 0) return;
      let error;
      for (let i = 0; i < disposals.length; i += 3) {
        try {
          dispose(disposals[i], disposals[i + 1], disposals[i + 2]);
        } catch (e) {
          error ??= { e };
        }
      }
      if (error !== undefined) throw error.e;
    }

    /** Deletes `key`; returns whether it held a live entry. */
    delete(key) {
      this.#ready();
      const slot = this.#map.get(key);
      // A getOrSet load of `key` in flight must not bring it back.
      if (this.#inflight.size !== 0) this.#inflight.delete(key);
      if (slot === undefined) {
        checkKey(key);
        return false;
      }
      const expired = this.#expired(slot);
      this.#removeSlot(key, slot, expired);
      return !expired;
    }

    /** Deletes every entry; `dispose` sees each with reason 'delete'. */
    clear() {
      this.#ready();
      const disposals = this.#dispose === undefined ? NO_DISPOSALS : [];
      if (this.#dispose !== undefined) {
        for (const [key, slot] of this.#map) disposals.push(this.#values[slot], key, 'delete');
      }
      try {
        this.#raw.clear();
        this.#map.clear();
        this.#keys = [];
        this.#values = [];
      } catch (e) {
        this.#suspect = true;
        throw e;
      }
      this.#inflight.clear();
      this.#disposeAll(disposals);
    }

    /** Deletes every key that starts with `prefix`; returns how many live entries it deleted. */
    deletePrefix(prefix) {
      this.#ready();
      if (typeof prefix !== 'string') {
        throw fail(TypeError, 'ERR_INVALID_KEY', `prefix must be a string, got ${prefix === null ? 'null' : typeof prefix}`);
      }
      if (!isWellFormed(prefix)) {
        throw fail(TypeError, 'ERR_INVALID_KEY', 'prefix must be well-formed Unicode (this one has a lone surrogate)');
      }
      const doomed = [];
      for (const [key, slot] of this.#map) if (key.startsWith(prefix)) doomed.push(key, slot);
      const disposals = this.#dispose === undefined ? NO_DISPOSALS : [];
      let deleted = 0;
      for (let i = 0; i < doomed.length; i += 2) {
        const expired = this.#expired(doomed[i + 1]);
        if (!expired) deleted++;
        this.#removeSlot(doomed[i], doomed[i + 1], expired, disposals);
      }
      for (const key of this.#inflight.keys()) {
        if (key.startsWith(prefix)) this.#inflight.delete(key);
      }
      this.#disposeAll(disposals);
      return deleted;
    }

    /** Removes every expired entry now; returns whether there were any. */
    purgeStale() {
      this.#ready();
      if (this.#exp === 0) return false;
      const disposals = this.#dispose === undefined ? NO_DISPOSALS : [];
      const now = perf.now();
      let removed = 0;
      try {
        let n;
        do {
          n = this.#raw.purge(now);
          removed += n;
          this.#takeVictims(disposals);
        } while (n === VICTIMS);
      } catch (e) {
        this.#suspect = true;
        throw e;
      }
      this.#disposeAll(disposals);
      return removed > 0;
    }

    /** Live entries now (expired ones are removed first). */
    get size() {
      this.purgeStale();
      return this.#map.size;
    }

    /** `maxEntries`, under lru-cache's name. */
    get max() {
      return this.#maxEntries;
    }

    /** `maxBytes` (Infinity: none), under lru-cache's name. */
    get maxSize() {
      return this.#maxBytes;
    }

    /** Bytes charged to the entries held (`stats().bytes`), under lru-cache's name. */
    get calculatedSize() {
      this.#ready();
      return this.#raw.bytes();
    }

    /** `[key, value]` of each live entry, oldest key first (an overwrite keeps the key's place). */
    *entries() {
      this.#ready();
      for (const [key, slot] of this.#map) {
        if (this.#expired(slot)) continue;
        const value = this.#values[slot];
        yield [key, this.#copy ? structuredClone(value) : value];
      }
    }

    /** The live keys, in the order of `entries()`. */
    *keys() {
      this.#ready();
      for (const [key, slot] of this.#map) if (!this.#expired(slot)) yield key;
    }

    /** The live values, in the order of `entries()`. */
    *values() {
      for (const [, value] of this.entries()) yield value;
    }

    /** Calls `fn.call(thisArg, value, key, cache)` for each live entry, in the order of `entries()`. */
    forEach(fn, thisArg) {
      if (typeof fn !== 'function') {
        throw fail(TypeError, 'ERR_INVALID_ARGUMENT', `forEach needs a function, got ${typeof fn}`);
      }
      for (const [key, value] of this.entries()) fn.call(thisArg, value, key, this);
    }

    [Symbol.iterator]() {
      return this.entries();
    }

    /** Remaining lifetime of `key` in ms: `Infinity` if it never expires, `undefined` if absent. */
    ttl(key) {
      const slot = this.#map.get(key);
      if (slot === undefined) {
        this.#ready();
        checkKey(key);
        return undefined;
      }
      const e = this.#exp;
      const at = e === 0 ? NEVER : f64[e + slot];
      if (at === NEVER) return NEVER;
      const left = at - perf.now();
      if (left <= 0) {
        this.#ready();
        this.#removeSlot(key, slot, true);
        return undefined;
      }
      return Math.ceil(left);
    }

    /** lru-cache's spelling of `ttl(key)`: `0` if absent, `Infinity` if it never expires. */
    getRemainingTTL(key) {
      return this.ttl(key) ?? 0;
    }

    /** Adds `delta` (a safe integer, default 1) to the integer at `key` (absent: 0); returns it. */
    incr(key, delta = 1, options) {
      this.#ready();
      if (typeof delta !== 'number') {
        throw fail(TypeError, 'ERR_INVALID_ARGUMENT', `delta must be a number, got ${typeof delta}`);
      }
      if (!Number.isSafeInteger(delta)) {
        throw fail(RangeError, 'ERR_INVALID_ARGUMENT', `delta must be a safe integer, got ${delta}`);
      }
      let ttl = this.#ttl;
      if (options !== undefined) {
        checkObject(options, 'options');
        if (options.ttl !== undefined) ttl = checkTtl(options.ttl, 'ttl');
      }
      let slot = this.#map.get(key);
      if (slot === undefined) checkKey(key);
      else if (this.#expired(slot)) {
        this.#removeSlot(key, slot, true);
        slot = undefined;
      }
      let next = delta;
      if (slot !== undefined) {
        const current = this.#values[slot];
        if (!Number.isSafeInteger(current)) {
          throw fail(TypeError, 'ERR_NOT_AN_INTEGER', 'the value at this key is not an integer number');
        }
        next = current + delta;
        if (!Number.isSafeInteger(next)) {
          throw fail(RangeError, 'ERR_OVERFLOW', `incrementing ${current} by ${delta} passes Number.MAX_SAFE_INTEGER`);
        }
        // An existing counter keeps its expiry.
        const e = this.#exp;
        const at = e === 0 ? NEVER : f64[e + slot];
        ttl = at === NEVER ? 0 : Math.max(at - perf.now(), Number.MIN_VALUE);
      }
      const charge = this.#charge(key, next, undefined);
      const disposals = this.#dispose === undefined ? NO_DISPOSALS : [];
      this.#store(key, slot, next, charge, ttl, disposals);
      if (this.#inflight.size !== 0) this.#inflight.delete(key);
      this.#disposeAll(disposals);
      return next;
    }

    /**
     * The value at `key`; on a miss, calls `loader(key)` once however many callers wait, caches
     * what it resolves to and resolves every caller with it. See the README for rejections,
     * `undefined`, too large results, and writes made while the loader runs.
     */
    async getOrSet(key, loader, options) {
      this.#ready();
      if (typeof loader !== 'function') {
        throw fail(TypeError, 'ERR_INVALID_ARGUMENT', `loader must be a function, got ${typeof loader}`);
      }
      let ttl = this.#ttl;
      if (options !== undefined) {
        checkObject(options, 'options');
        if (options.ttl !== undefined) ttl = checkTtl(options.ttl, 'ttl');
      }
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
      const value = await load.promise;
      return this.#copy && value !== undefined ? structuredClone(value) : value;
    }

    /** lru-cache's name for `getOrSet`; `loader` defaults to the `fetchMethod` option. */
    fetch(key, loader, options) {
      if (typeof loader !== 'function' && this.#fetchMethod !== undefined) {
        return this.getOrSet(key, this.#fetchMethod, loader);
      }
      return this.getOrSet(key, loader, options);
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
      if (value === undefined || this.#raw === undefined || !current) return value;
      try {
        this.set(key, value, { ttl });
      } catch (error) {
        // Cannot be cached, but the loader's value is still good: the waiters get it as it is.
        if (error?.code !== 'ERR_VALUE_TOO_LARGE' && error?.code !== 'ERR_OUT_OF_MEMORY') throw error;
      }
      return value;
    }

    /** Removes `load` from the in-flight map; returns whether it was still there. */
    #endLoad(key, load) {
      if (this.#inflight.get(key) !== load) return false;
      this.#inflight.delete(key);
      return true;
    }

    /** Counters since creation, plus the entries and bytes held now. */
    stats() {
      this.purgeStale();
      const raw = this.#raw;
      return {
        hits: this.#hits,
        misses: this.#misses,
        evictions: raw.evictions(),
        expirations: raw.expirations(),
        entries: this.#map.size,
        bytes: raw.bytes(),
      };
    }

    /** Frees the wasm memory now instead of when garbage-collected. Every later call throws ERR_FREED. */
    free() {
      const engine = this.#raw;
      this.#raw = undefined;
      this.#map.clear();
      this.#keys = [];
      this.#values = [];
      this.#inflight.clear();
      try {
        // Freeing runs the allocator, which must not be cut short: check the stack first.
        stackRoom(STACK_PROBE);
        engine?.free();
      } catch {
        // An engine interrupted mid-call cannot be freed; its memory stays with the module.
      }
    }

    [Symbol.dispose]() {
      this.free();
    }

    get [Symbol.toStringTag]() {
      return 'MemoryCache';
    }

    /**
     * After a mutation was interrupted by an exception that is not the cache's (a stack overflow
     * inside it): make the engine and the maps agree again. If the engine itself was interrupted
     * (wasm-bindgen then refuses every call on it), a new one is built from the entries JS holds.
     */
    #repair() {
      let engineOk = true;
      try {
        this.#raw.len();
      } catch {
        engineOk = false;
      }
      if (!engineOk) {
        this.#rebuild();
        this.#suspect = false;
        return;
      }
      refresh();
      this.#readLayout();
      const map = this.#map;
      const keys = this.#keys;
      // Keys whose slot the engine freed, or gave to another key.
      for (const [key, slot] of map) {
        if (keys[slot] !== key || (u8[this.#state + slot] & IN_QUEUE) === 0) map.delete(key);
      }
      // Slots the engine holds that no key maps to.
      const slots = Math.max(keys.length, u32[this.#hdr + H_SLOTS]);
      for (let slot = 0; slot < slots; slot++) {
        const inUse = (u8[this.#state + slot] & IN_QUEUE) !== 0;
        if (inUse && map.get(keys[slot]) !== slot) {
          this.#raw.remove(slot, false);
          keys[slot] = undefined;
          this.#values[slot] = undefined;
        } else if (!inUse && keys[slot] !== undefined && map.get(keys[slot]) !== slot) {
          keys[slot] = undefined;
          this.#values[slot] = undefined;
        }
      }
      this.#suspect = false;
    }

    /** A new engine holding every entry JS maps, with the expiries the old one recorded. */
    #rebuild() {
      const oldExp = this.#exp;
      const entries = [];
      for (const [key, slot] of this.#map) {
        const at = oldExp === 0 ? NEVER : f64[oldExp + slot];
        entries.push(key, this.#values[slot], at);
      }
      const old = this.#raw;
      const engine = this.#newEngine();
      this.#raw = engine;
      this.#map = new Map();
      this.#keys = [];
      this.#values = [];
      const now = perf.now();
      const disposals = this.#dispose === undefined ? NO_DISPOSALS : [];
      for (let i = 0; i < entries.length; i += 3) {
        const [key, value, at] = [entries[i], entries[i + 1], entries[i + 2]];
        let charge;
        try {
          charge = this.#charge(key, value, undefined);
        } catch {
          continue;
        }
        if (at !== NEVER && at <= now) continue;
        this.#reserve(true, at !== NEVER);
        let slot;
        do {
          slot = engine.insert(hashKey(key), charge, at, now);
          this.#takeVictims(disposals);
        } while (slot === RAW_AGAIN);
        if (slot < 0) continue;
        this.#keys[slot] = key;
        this.#values[slot] = value;
        this.#map.set(key, slot);
      }
      try {
        old.free();
      } catch {
        // Interrupted mid-call, wasm-bindgen will not free it; its memory stays with the module.
      }
      this.#disposeAll(disposals);
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
      for (const [key, value] of [...this.cache.entries()]) {
        if (key.startsWith(prefix)) yield [key, value];
      }
    }

    async disconnect() {}
  }

  return { MemoryCache, KeyvMemoryCache };
}

/** The default size of a value that is neither a string nor a Uint8Array: its JSON's length. */
function jsonSize(value) {
  let json;
  try {
    json = JSON.stringify(value);
  } catch (e) {
    throw fail(TypeError, 'ERR_INVALID_VALUE', `cannot measure this value as JSON (${e?.message ?? e}): give the cache a sizeCalculation`, e);
  }
  if (json === undefined) {
    throw fail(TypeError, 'ERR_INVALID_VALUE', `cannot measure a ${typeof value} as JSON: give the cache a sizeCalculation`);
  }
  return json.length;
}
