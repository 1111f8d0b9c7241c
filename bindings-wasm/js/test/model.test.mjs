// Property-based tests of MemoryCache against a small reference model (fast-check): generated
// sequences of the methods (get, peek, has, set, delete, incr, ttl, getRemainingTTL, deletePrefix,
// clear, size, keys, values, purgeStale, getOrSet), with bad input, keys with lone surrogates and of the maximum length,
// values of every documented type and TTLs at the edges, checked step by step. Every thrown error
// must carry a documented `code`, and the cache must stay usable after it.
//
// Time is a fake `performance.now` (the package reads the clock object once and its `now` on
// every use). FC_RUNS sets the number of sequences (default 300).
import { test, after } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';
import { MemoryCache } from '../../pkg/node/index.mjs';

const RUNS = Number(process.env.FC_RUNS ?? 300);
const MAX_KEY_BYTES = 1024;
const MAX_TTL = 100 * 365 * 24 * 3600 * 1000;
const CODES = new Set([
  'ERR_INVALID_KEY', 'ERR_KEY_TOO_LONG', 'ERR_VALUE_TOO_LARGE', 'ERR_INVALID_VALUE', 'ERR_INVALID_TTL',
  'ERR_NOT_AN_INTEGER', 'ERR_OVERFLOW', 'ERR_INVALID_ARGUMENT', 'ERR_INVALID_OPTION',
  'ERR_OUT_OF_MEMORY', 'ERR_FREED', 'ERR_NOT_INITIALIZED', 'ERR_CACHE',
]);

let fakeNow = 1_000;
const realNow = performance.now;
performance.now = () => fakeNow;
after(() => { performance.now = realNow; });

const utf8Length = (s) => Buffer.byteLength(s, 'utf8');

// Keys: a few that collide often, unicode, exactly the limit, one byte over, and invalid ones.
const KEYS = [
  'a:1', 'a:2', 'a:b', 'b:1', 'ключ', '😀', 'k'.repeat(MAX_KEY_BYTES), 'é'.repeat(512),
  'k'.repeat(MAX_KEY_BYTES + 1), 'é'.repeat(512) + 'x', '', '\ud800', 'a\udc00b', 42, null, undefined, {},
];
const PREFIXES = ['', 'a:', 'a:b', 'b', '😀', 'z', '\ud800', 7];
const obj = { nested: { n: 1 } };
const bytes = new Uint8Array([0, 1, 255]);
const VALUES = ['', 'v', 'ünï 😀', '\ud800 lone', 0, -0, 1, -7, 2 ** 53 - 1, 1.5, NaN, Infinity, true, null, obj, [], bytes, 10n];
const TTLS = [undefined, 0, 0.5, 1, 1.5, 10, 1000, MAX_TTL, MAX_TTL + 1, -1, NaN, Infinity, '5', null];
const DELTAS = [undefined, 1, -1, 3, 2 ** 53 - 1, -(2 ** 53 - 1), 1.5, NaN, '1'];

const pick = (xs) => fc.constantFrom(...xs.map((x, i) => i)).map((i) => xs[i]);
const ops = fc.oneof(
  { weight: 4, arbitrary: fc.record({ op: fc.constant('get'), key: pick(KEYS) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('peek'), key: pick(KEYS) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('has'), key: pick(KEYS) }) },
  { weight: 5, arbitrary: fc.record({ op: fc.constant('set'), key: pick(KEYS), value: pick([...VALUES, undefined]), ttl: pick(TTLS) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('delete'), key: pick(KEYS) }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('incr'), key: pick(KEYS), delta: pick(DELTAS), ttl: pick(TTLS) }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('ttl'), key: pick(KEYS) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('getRemainingTTL'), key: pick(KEYS) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('deletePrefix'), prefix: pick(PREFIXES) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('clear') }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('size') }) },
  { weight: 3, arbitrary: fc.record({ op: fc.constant('advance'), by: pick([0.5, 1, 5, 1000]) }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('keys') }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('values') }) },
  { weight: 1, arbitrary: fc.record({ op: fc.constant('purgeStale') }) },
  { weight: 2, arbitrary: fc.record({ op: fc.constant('getOrSet'), key: pick(KEYS), value: pick(VALUES), ttl: pick(TTLS) }) },
);

const isWellFormed = (s) => !/[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/.test(s);

/** The contract as the README and index.d.ts state it. Errors are the set of allowed codes. */
class Model {
  constructor() {
    this.map = new Map();
    this.hits = 0;
    this.misses = 0;
  }

  keyError(key) {
    if (typeof key !== 'string' || key === '' || !isWellFormed(key)) return 'ERR_INVALID_KEY';
    if (utf8Length(key) > MAX_KEY_BYTES) return 'ERR_KEY_TOO_LONG';
    return undefined;
  }

  ttlError(ttl) {
    if (ttl === undefined) return undefined;
    if (typeof ttl !== 'number' || !(ttl >= 0) || ttl > MAX_TTL) return 'ERR_INVALID_TTL';
    return undefined;
  }

  live(key) {
    const e = this.map.get(key);
    if (e === undefined) return undefined;
    if (e.at !== Infinity && e.at <= fakeNow) {
      this.map.delete(key);
      return undefined;
    }
    return e;
  }

  apply(step) {
    const errors = [];
    const check = (code) => code && errors.push(code);
    switch (step.op) {
      case 'get': {
        if (check(this.keyError(step.key))) break;
        const e = this.live(step.key);
        if (e) this.hits++; else this.misses++;
        return { value: e?.value };
      }
      case 'peek':
        if (check(this.keyError(step.key))) break;
        return { value: this.live(step.key)?.value };
      case 'has':
        if (check(this.keyError(step.key))) break;
        return { value: this.live(step.key) !== undefined };
      case 'set': {
        if (step.value === undefined) {
          const deleted = this.apply({ op: 'delete', key: step.key });
          return deleted.error ? deleted : { value: 'this' };
        }
        check(this.keyError(step.key));
        check(this.ttlError(step.ttl));
        if (errors.length) break;
        const ttl = step.ttl ?? 0;
        this.live(step.key);
        this.map.set(step.key, { value: step.value, at: ttl === 0 ? Infinity : fakeNow + ttl });
        return { value: 'this' };
      }
      case 'delete': {
        if (check(this.keyError(step.key))) break;
        const existed = this.live(step.key) !== undefined;
        this.map.delete(step.key);
        return { value: existed };
      }
      case 'incr': {
        const d = step.delta ?? 1;
        if (!Number.isSafeInteger(d)) check('ERR_INVALID_ARGUMENT');
        check(this.ttlError(step.ttl));
        check(this.keyError(step.key));
        if (errors.length) break;
        const e = this.live(step.key);
        if (e === undefined) {
          const ttl = step.ttl ?? 0;
          this.map.set(step.key, { value: d, at: ttl === 0 ? Infinity : fakeNow + ttl });
          return { value: d };
        }
        if (!Number.isSafeInteger(e.value)) return { error: ['ERR_NOT_AN_INTEGER'] };
        const next = e.value + d;
        if (!Number.isSafeInteger(next)) return { error: ['ERR_OVERFLOW'] };
        e.value = next;
        return { value: next };
      }
      case 'ttl':
      case 'getRemainingTTL': {
        if (check(this.keyError(step.key))) break;
        const e = this.live(step.key);
        const left = e === undefined ? undefined : e.at === Infinity ? Infinity : Math.ceil(e.at - fakeNow);
        return { value: step.op === 'ttl' ? left : (left ?? 0) };
      }
      case 'deletePrefix': {
        const p = step.prefix;
        if (typeof p !== 'string' || !isWellFormed(p)) return { error: ['ERR_INVALID_KEY'] };
        let n = 0;
        for (const key of [...this.map.keys()]) {
          if (!key.startsWith(p)) continue;
          if (this.live(key) !== undefined) n++;
          this.map.delete(key);
        }
        return { value: n };
      }
      case 'clear':
        this.map.clear();
        return { value: undefined };
      case 'size':
        for (const key of [...this.map.keys()]) this.live(key);
        return { value: this.map.size };
      case 'advance':
        fakeNow += step.by;
        return { value: undefined };
      case 'keys':
      case 'values': {
        for (const key of [...this.map.keys()]) this.live(key);
        const live = [...this.map];
        return { value: live.map(([k, e]) => (step.op === 'keys' ? k : e.value)) };
      }
      case 'purgeStale':
        for (const key of [...this.map.keys()]) this.live(key);
        return { value: undefined };
      case 'getOrSet': {
        check(this.ttlError(step.ttl));
        if (errors.length) break;
        if (check(this.keyError(step.key))) break;
        const e = this.live(step.key);
        if (e) {
          this.hits++;
          return { value: e.value };
        }
        this.misses++;
        const ttl = step.ttl ?? 0;
        this.map.set(step.key, { value: step.value, at: ttl === 0 ? Infinity : fakeNow + ttl });
        return { value: step.value };
      }
    }
    return { error: errors };
  }
}

async function run(cache, step) {
  try {
    switch (step.op) {
      case 'keys': return { value: [...cache.keys()] };
      case 'values': return { value: [...cache.values()] };
      case 'purgeStale': cache.purgeStale(); return { value: undefined };
      case 'getOrSet': {
        const options = step.ttl === undefined ? undefined : { ttl: step.ttl };
        return { value: await cache.getOrSet(step.key, () => step.value, options) };
      }
      case 'get': return { value: cache.get(step.key) };
      case 'peek': return { value: cache.peek(step.key) };
      case 'has': return { value: cache.has(step.key) };
      case 'set': {
        const options = step.ttl === undefined ? undefined : { ttl: step.ttl };
        return { value: cache.set(step.key, step.value, options) === cache ? 'this' : 'not this' };
      }
      case 'delete': return { value: cache.delete(step.key) };
      case 'incr': {
        const options = step.ttl === undefined ? undefined : { ttl: step.ttl };
        return { value: cache.incr(step.key, step.delta, options) };
      }
      case 'ttl': return { value: cache.ttl(step.key) };
      case 'getRemainingTTL': return { value: cache.getRemainingTTL(step.key) };
      case 'deletePrefix': return { value: cache.deletePrefix(step.prefix) };
      case 'clear': return { value: cache.clear() };
      case 'size': return { value: cache.size };
      case 'advance': return { value: undefined };
    }
  } catch (e) {
    return { thrown: e };
  }
  throw new Error(`unknown step ${step.op}`);
}

const show = (x) => {
  try {
    return JSON.stringify(x, (k, v) => (typeof v === 'bigint' ? `${v}n` : typeof v === 'string' && v.length > 12 ? `${v.slice(0, 6)}…(${v.length})` : v));
  } catch {
    return String(x);
  }
};

/** Checks one answer against the model's, moving the model on. */
function agree(model, step, got) {
  const want = model.apply(step);
  if (got.thrown !== undefined) {
    const code = got.thrown?.code;
    assert.ok(CODES.has(code), `${show(step)} threw ${got.thrown} without a documented code`);
    assert.ok(want.error?.includes(code), `${show(step)} threw ${code}; the model says ${show(want)}`);
    return;
  }
  const same = (a, b) => Array.isArray(a)
    ? Array.isArray(b) && a.length === b.length && a.every((x, i) => Object.is(x, b[i]))
    : Object.is(a, b);
  if (want.error === undefined && same(want.value, got.value)) return;
  assert.fail(`${show(step)}: the cache answered ${show(got.value)}, the model ${show(want)}`);
}

async function checkSequence(steps, options, evicts) {
  fakeNow = 1_000;
  const cache = new MemoryCache(options);
  const model = new Model();
  try {
    for (const step of steps) {
      agree(model, step, await run(cache, step));
      if (evicts) {
        // An insert may evict other keys, never the one it wrote: the model forgets what the
        // cache dropped (`has` is not a read), and every later answer must match exactly.
        for (const key of [...model.map.keys()]) if (!cache.has(key)) model.map.delete(key);
        assert.ok(cache.size <= options.maxEntries, `size ${cache.size} over ${options.maxEntries}`);
      }
      const stats = cache.stats();
      assert.equal(stats.hits, model.hits, 'hits');
      assert.equal(stats.misses, model.misses, 'misses');
    }
    // Still usable after whatever was thrown.
    cache.set('after', 1);
    assert.equal(cache.get('after'), 1);
  } finally {
    cache.free();
  }
}

test('generated sequences answer as the model, bad input throws a documented code', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(ops, { maxLength: 60 }), (steps) => checkSequence(steps, { maxEntries: 10_000 }, false)),
    { numRuns: RUNS },
  );
});

test('an evicting cache answers only what the model allows and stays within maxEntries', async () => {
  await fc.assert(
    fc.asyncProperty(fc.array(ops, { maxLength: 60 }), (steps) => checkSequence(steps, { maxEntries: 3 }, true)),
    { numRuns: RUNS },
  );
});

// Fuzzing of the entry points: any options and any arguments give a result or a documented code.
const METHODS = ['get', 'peek', 'has', 'set', 'delete', 'incr', 'ttl', 'getRemainingTTL', 'deletePrefix', 'forEach'];

function documented(fn) {
  try {
    return fn();
  } catch (e) {
    assert.ok(CODES.has(e?.code), `threw ${e} without a documented code`);
    return undefined;
  }
}

test('any constructor options and any arguments give a result or a documented code', () => {
  const option = fc.oneof(fc.anything(), fc.constantFrom(0, 1, -1, 2 ** 24, 2 ** 24 + 1, 1.5, NaN, Infinity, '10'));
  const options = fc.oneof(
    fc.anything(),
    fc.record(
      { maxEntries: option, max: option, maxBytes: option, maxSize: option, ttl: option, allowStale: option, copy: option, bogus: option },
      { requiredKeys: [] },
    ),
  );
  const call = fc.tuple(fc.constantFrom(...METHODS), fc.array(fc.anything(), { maxLength: 3 }));
  fc.assert(
    fc.property(options, fc.array(call, { maxLength: 20 }), (opts, calls) => {
      const cache = documented(() => new MemoryCache(opts));
      if (cache === undefined) return;
      try {
        for (const [method, args] of calls) documented(() => cache[method](...args));
        documented(() => cache.size);
        // Still usable: a write that fits reads back.
        if (documented(() => cache.set('a', 'b', { size: 0 })) === cache) assert.equal(cache.get('a'), 'b');
      } finally {
        cache.free();
      }
    }),
    { numRuns: RUNS },
  );
});
