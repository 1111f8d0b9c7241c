// node:test against the built Node package (bindings-wasm/pkg, from `cargo xtask wasm`).
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { createRequire } from 'node:module';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import Keyv from 'keyv';
import init, { MemoryCache, KeyvMemoryCache } from '../../pkg/node/index.mjs';

const pkg = fileURLToPath(new URL('../../pkg/', import.meta.url));
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
const code = (c, Ctor = Error) => (e) => e instanceof Ctor && e.code === c;

test('package.json exports point at files that exist, and require() works', () => {
  const manifest = JSON.parse(readFileSync(join(pkg, 'package.json'), 'utf8'));
  const values = (x) => (typeof x === 'string' ? [x] : Object.values(x).flatMap(values));
  const targets = values(manifest.exports);
  for (const t of [...targets, manifest.types, manifest.main]) assert.ok(existsSync(join(pkg, t)), t);
  const cjs = createRequire(import.meta.url)(join(pkg, 'node/index.cjs'));
  assert.equal(cjs.MemoryCache, MemoryCache, 'the ESM and CJS entries share one module');
});

test('init is a no-op in Node', async () => {
  await init();
});

test('strings, bytes and JSON values round-trip exactly', () => {
  const c = new MemoryCache();
  const values = [
    '', 'hello', 'ünïcödé 😀', '\ud800 lone surrogate', '0', '42', 'true', 'x'.repeat(100_000),
    new Uint8Array(), new Uint8Array([0, 1, 2, 255]),
    0, 1, -1, 1.5, -0.25, 1e21, 2 ** 53, Number.MAX_VALUE, Number.MIN_VALUE,
    true, false, null, [], {}, [1, 'a', null, { b: [true] }], { nested: { deep: 'é' } },
  ];
  values.forEach((v, i) => c.set(`k${i}`, v));
  values.forEach((v, i) => assert.deepEqual(c.get(`k${i}`), v, `value ${i}`));
  assert.equal(typeof c.get('k4'), 'string', 'a string of digits stays a string');
  const copy = c.get('k9');
  copy[0] = 99;
  assert.deepEqual(c.get('k9'), new Uint8Array([0, 1, 2, 255]), 'returned bytes are a copy');
  assert.equal(Object.getPrototypeOf(copy), Uint8Array.prototype);
  const big = new Uint8Array(3 << 20).fill(7);
  c.set('big', big);
  assert.deepEqual(c.get('big'), big);
  assert.equal(c.get('missing'), undefined);
  // JSON semantics inside objects: undefined members are dropped, Dates become strings.
  c.set('obj', { a: undefined, d: new Date(0) });
  assert.deepEqual(c.get('obj'), { d: '1970-01-01T00:00:00.000Z' });
});

test('a Uint8Array is copied on set, and every get returns a fresh copy', () => {
  const c = new MemoryCache();
  const bytes = new Uint8Array([1, 2, 3]);
  c.set('b', bytes);
  bytes[0] = 9;
  assert.deepEqual(c.get('b'), new Uint8Array([1, 2, 3]), 'a later change by the caller does not reach the cache');
  assert.notEqual(c.get('b'), c.get('b'));
  c.set('buf', Buffer.from('hi'));
  assert.equal(Object.getPrototypeOf(c.get('buf')), Uint8Array.prototype);
  // Sizes are charged as documented: 1 + length (UTF-16 code units) for strings, 1 + length for
  // bytes, the UTF-8 length of the JSON for anything else.
  const s = new MemoryCache({ maxEntries: 10 });
  s.set('k', 'é😀').set('b', new Uint8Array(10)).set('j', ['é']);
  assert.equal(s.stats().bytes, 1 + (1 + 3) + 1 + (1 + 10) + 1 + 6);
});

test('values stay right while slots are freed and reused (evictions, deletes, overwrites, expiry)', async () => {
  // A small cache under a random mix of operations: whatever `get` returns must be what was last
  // stored under that key, so a slot handed back too early or to the wrong key would show.
  const c = new MemoryCache({ maxEntries: 50, maxBytes: 4_000 });
  const model = new Map();
  let x = 12345;
  const rand = (n) => {
    x = (x * 1103515245 + 12345) >>> 0;
    return (x >>> 8) % n;
  };
  let hits = 0;
  for (let i = 0; i < 20_000; i++) {
    const key = `k${rand(200)}`;
    const op = rand(100);
    if (op < 45) {
      const got = c.get(key);
      if (got !== undefined) {
        hits++;
        assert.deepEqual(got, model.get(key), `get ${key} at step ${i}`);
      }
    } else if (op < 80) {
      const kind = rand(4);
      const v = kind === 0 ? new Uint8Array([i & 255, rand(256)]) : kind === 1 ? { i } : `${key}=${i}`.repeat(1 + rand(8));
      c.set(key, v, rand(10) === 0 ? { ttl: 1 } : undefined);
      model.set(key, v);
    } else if (op < 90) {
      c.delete(key);
      model.delete(key);
    } else if (op < 95) {
      try {
        model.set(key, c.incr(key));
      } catch (e) {
        assert.equal(e.code, 'ERR_NOT_AN_INTEGER');
      }
    } else if (op === 99 && rand(20) === 0) {
      c.clear();
      model.clear();
    } else if (op === 98) {
      await sleep(2);
    }
  }
  assert.ok(hits > 1_000, `${hits} hits`);
  assert.ok(c.stats().evictions > 0);
  assert.ok(c.stats().bytes <= 4_000);
});

test('has, delete, clear, size, keys, deletePrefix', () => {
  const c = new MemoryCache();
  assert.equal(c.set('a', 1), c, 'set returns the cache');
  c.set('b', 2).set('user:1', 'x').set('user:2', 'y');
  assert.equal(c.has('a'), true);
  assert.equal(c.has('zz'), false);
  assert.equal(c.size, 4);
  assert.deepEqual([...c.keys()], ['a', 'b', 'user:1', 'user:2']);
  assert.equal(c.delete('a'), true);
  assert.equal(c.delete('a'), false);
  assert.equal(c.deletePrefix('user:'), 2);
  assert.deepEqual([...c.keys()], ['b']);
  c.clear();
  assert.equal(c.size, 0);
  assert.equal(c.get('b'), undefined);
});

test('namespaces isolate keys, clear and keys', () => {
  const c = new MemoryCache({ namespace: 'app' });
  c.set('k', 'v');
  assert.deepEqual([...c.keys()], ['k']);
  assert.equal(c.get('k'), 'v');
  c.clear();
  assert.equal(c.size, 0);
});

test('TTLs: per write, default, ttl() and getRemainingTTL()', async () => {
  const c = new MemoryCache({ ttl: 60_000 });
  c.set('default', 1);
  c.set('short', 1, { ttl: 30 });
  c.set('forever', 1, { ttl: 0 });
  assert.ok(c.ttl('default') > 59_000 && c.ttl('default') <= 60_000);
  assert.equal(c.ttl('forever'), Infinity);
  assert.equal(c.getRemainingTTL('forever'), Infinity);
  assert.equal(c.ttl('missing'), undefined);
  assert.equal(c.getRemainingTTL('missing'), 0);
  await sleep(60);
  assert.equal(c.get('short'), undefined);
  assert.equal(c.has('short'), false);
  assert.equal(c.size, 2);
  assert.equal(c.stats().expirations, 1);
});

test('incr counts, keeps numbers readable and checks its input', () => {
  const c = new MemoryCache();
  assert.equal(c.incr('n'), 1);
  assert.equal(c.incr('n', 41), 42);
  assert.equal(c.incr('n', -50), -8);
  assert.equal(c.get('n'), -8);
  c.set('m', 10);
  assert.equal(c.incr('m', 5), 15);
  c.incr('t', 1, { ttl: 60_000 });
  assert.ok(c.ttl('t') > 0 && c.ttl('t') <= 60_000);
  assert.throws(() => c.incr('n', 1.5), code('ERR_INVALID_ARGUMENT', RangeError));
  assert.throws(() => c.incr('n', '1'), code('ERR_INVALID_ARGUMENT', TypeError));
  c.set('s', 'text');
  assert.throws(() => c.incr('s'), code('ERR_NOT_AN_INTEGER', TypeError));
  c.set('f', 1.5);
  assert.throws(() => c.incr('f'), code('ERR_NOT_AN_INTEGER', TypeError));
  c.set('max', Number.MAX_SAFE_INTEGER);
  assert.throws(() => c.incr('max'), code('ERR_OVERFLOW', RangeError));
  assert.equal(c.get('max'), Number.MAX_SAFE_INTEGER, 'a refused incr changes nothing');
});

test('stats count hits, misses, evictions, entries and bytes', () => {
  const c = new MemoryCache({ maxEntries: 100 });
  for (let i = 0; i < 1_000; i++) c.set(`k${i}`, 'v');
  c.get('k999');
  c.get('nope');
  const s = c.stats();
  assert.equal(s.hits, 1);
  assert.equal(s.misses, 1);
  assert.ok(s.evictions >= 900, `${s.evictions}`);
  assert.ok(s.entries <= 100 && s.entries === c.size);
  assert.ok(s.bytes > 0);
  assert.deepEqual(Object.keys(s), ['hits', 'misses', 'evictions', 'expirations', 'entries', 'bytes']);
});

test('maxBytes bounds the bytes held', () => {
  const c = new MemoryCache({ maxBytes: 10_000 });
  for (let i = 0; i < 1_000; i++) c.set(`k${i}`, 'x'.repeat(100));
  assert.ok(c.stats().bytes <= 10_000);
});

test('getOrSet calls the loader once for concurrent misses', async () => {
  const c = new MemoryCache();
  let calls = 0;
  const loader = async (key) => {
    calls++;
    await sleep(20);
    return `loaded ${key}`;
  };
  const results = await Promise.all(Array.from({ length: 10 }, () => c.getOrSet('k', loader, { ttl: 60_000 })));
  assert.equal(calls, 1);
  assert.deepEqual(results, Array(10).fill('loaded k'));
  assert.equal(c.get('k'), 'loaded k');
  assert.ok(c.ttl('k') <= 60_000);
  assert.equal(await c.getOrSet('k', loader), 'loaded k');
  assert.equal(calls, 1, 'a hit does not call the loader');
  assert.equal(await c.getOrSet('sync', () => 5), 5, 'a loader may return a plain value');
});

test('a rejected loader rejects every waiter and caches nothing', async () => {
  const c = new MemoryCache();
  let calls = 0;
  const boom = new Error('origin down');
  const loader = async () => {
    calls++;
    await sleep(10);
    throw boom;
  };
  const settled = await Promise.allSettled(Array.from({ length: 5 }, () => c.getOrSet('k', loader)));
  assert.equal(calls, 1);
  for (const s of settled) assert.deepEqual(s, { status: 'rejected', reason: boom });
  assert.equal(c.has('k'), false);
  assert.equal(await c.getOrSet('k', () => 'ok'), 'ok', 'the next call loads again');
  await assert.rejects(c.getOrSet('k', 'not a function'), code('ERR_INVALID_ARGUMENT', TypeError));
  await assert.rejects(c.getOrSet(1, () => 1), code('ERR_INVALID_KEY', TypeError));
});

test('getOrSet: a loader that throws synchronously rejects like an async one, and is not kept', async () => {
  const c = new MemoryCache();
  let calls = 0;
  const boom = new Error('sync boom');
  const loader = () => {
    calls++;
    throw boom;
  };
  for (let i = 0; i < 3; i++) await assert.rejects(c.getOrSet('k', loader), (e) => e === boom);
  assert.equal(calls, 3, 'every call after a failure loads again');
  assert.equal(await c.getOrSet('k', () => 'ok'), 'ok');
  assert.equal(c.get('k'), 'ok');
  // Concurrent callers of a loader that throws at once share its rejection.
  calls = 0;
  const settled = await Promise.allSettled([c.getOrSet('s', loader), c.getOrSet('s', loader)]);
  assert.deepEqual(settled.map((r) => r.status), ['rejected', 'rejected']);
  assert.equal(await c.getOrSet('s', () => 1), 1);
});

test('getOrSet does not store its result over a set, incr, delete, clear or deletePrefix made while it loaded', async () => {
  const c = new MemoryCache();
  const slow = (value) => () => sleep(15).then(() => value);
  const cases = [
    ['set', (key) => c.set(key, 'newer'), 'newer'],
    ['incr', (key) => c.incr(key, 7), 7],
    ['delete', (key) => c.delete(key), undefined],
    ['clear', () => c.clear(), undefined],
    ['deletePrefix', (key) => c.deletePrefix(key.slice(0, 3)), undefined],
  ];
  for (const [name, write, expected] of cases) {
    const key = `${name}:k`;
    const pending = c.getOrSet(key, slow('loaded'));
    write(key);
    assert.equal(await pending, 'loaded', `${name}: the waiters still get the loaded value`);
    assert.equal(c.get(key), expected, `${name}: the newer write (or removal) stays`);
  }
  // After a removal, the next getOrSet loads afresh instead of joining the stale load.
  let calls = 0;
  const counted = () => sleep(15).then(() => ++calls);
  const first = c.getOrSet('again', counted);
  c.delete('again');
  const second = c.getOrSet('again', counted);
  assert.deepEqual(await Promise.all([first, second]), [1, 2]);
  assert.equal(c.get('again'), 2);
  // A load that nothing interrupted is stored; other keys' writes do not interrupt it.
  const p = c.getOrSet('mine', slow('mine'));
  c.set('other', 1);
  c.delete('other2');
  c.deletePrefix('zzz');
  assert.equal(await p, 'mine');
  assert.equal(c.get('mine'), 'mine');
});

test('getOrSet resolves what a later get returns; undefined and too-large results are not cached', async () => {
  const c = new MemoryCache({ maxBytes: 4096 });
  const date = new Date(0);
  const first = await c.getOrSet('d', async () => ({ at: date, n: -0 }));
  assert.deepEqual(first, { at: '1970-01-01T00:00:00.000Z', n: 0 }, 'the first call returns the JSON form');
  assert.deepEqual(first, c.get('d'));
  assert.ok(Object.is(await c.getOrSet('z', () => -0), 0));
  assert.ok(Object.is(c.get('z'), 0));
  const bytes = new Uint8Array([1, 2, 3]);
  const got = await c.getOrSet('b', () => bytes);
  assert.notEqual(got, bytes, 'bytes come back as a copy, as from get');
  assert.equal(Object.getPrototypeOf(await c.getOrSet('buf', () => Buffer.from('hi'))), Uint8Array.prototype);
  got[0] = 9;
  assert.deepEqual(c.get('b'), new Uint8Array([1, 2, 3]));
  // undefined: resolved, nothing cached, the next call loads again.
  let calls = 0;
  assert.equal(await c.getOrSet('u', () => { calls++; return undefined; }), undefined);
  assert.equal(await c.getOrSet('u', async () => { calls++; return undefined; }), undefined);
  assert.equal(calls, 2);
  assert.equal(c.has('u'), false);
  // Too large to cache: resolved with the value, nothing cached.
  const big = 'x'.repeat(5_000);
  assert.equal(await c.getOrSet('big', () => big), big);
  const bigJson = { s: big };
  assert.equal(await c.getOrSet('bigJson', () => bigJson), bigJson);
  const bigBytes = new Uint8Array(5_000);
  assert.equal(await c.getOrSet('bigBytes', () => bigBytes), bigBytes);
  assert.deepEqual([c.has('big'), c.has('bigJson'), c.has('bigBytes')], [false, false, false]);
  // A value set() refuses as a type rejects every waiter and caches nothing.
  for (const bad of [() => 1, Symbol('s'), 10n, NaN]) {
    const settled = await Promise.allSettled([c.getOrSet('bad', async () => bad), c.getOrSet('bad', async () => bad)]);
    for (const s of settled) {
      assert.equal(s.status, 'rejected', String(bad));
      assert.ok(code('ERR_INVALID_VALUE', TypeError)(s.reason), String(bad));
    }
    assert.equal(c.has('bad'), false);
  }
  assert.equal(await c.getOrSet('bad', () => 'fine'), 'fine', 'usable after');
});

test('getOrSet after a stale load still resolves the JSON form', async () => {
  const c = new MemoryCache();
  const pending = c.getOrSet('k', () => sleep(10).then(() => ({ at: new Date(0) })));
  c.set('k', 'newer');
  assert.deepEqual(await pending, { at: '1970-01-01T00:00:00.000Z' });
  assert.equal(c.get('k'), 'newer');
});

test('bad input throws errors to branch on, and the cache stays usable', () => {
  const c = new MemoryCache({ maxBytes: 1 << 20 });
  c.set('ok', 'still here');
  const cases = [
    [() => c.set(1, 'v'), 'ERR_INVALID_KEY', TypeError],
    [() => c.get(null), 'ERR_INVALID_KEY', TypeError],
    [() => c.has({}), 'ERR_INVALID_KEY', TypeError],
    [() => c.delete(Symbol('k')), 'ERR_INVALID_KEY', TypeError],
    [() => c.get(''), 'ERR_INVALID_KEY', TypeError],
    [() => c.get('\ud800'), 'ERR_INVALID_KEY', TypeError],
    [() => c.set('k'.repeat(1025), 'v'), 'ERR_KEY_TOO_LONG', RangeError],
    [() => c.get('é'.repeat(600)), 'ERR_KEY_TOO_LONG', RangeError],
    [() => c.set('k', 'x'.repeat(2 << 20)), 'ERR_VALUE_TOO_LARGE', RangeError],
    [() => c.set('k', new Uint8Array(2 << 20)), 'ERR_VALUE_TOO_LARGE', RangeError],
    [() => c.set('k', 'é'.repeat(1_100_000)), 'ERR_VALUE_TOO_LARGE', RangeError],
    [() => c.set('k', ['é'.repeat(600_000)]), 'ERR_VALUE_TOO_LARGE', RangeError],
    [() => c.set('k', 'v', { ttl: -1 }), 'ERR_INVALID_TTL', RangeError],
    [() => c.set('k', 'v', { ttl: NaN }), 'ERR_INVALID_TTL', RangeError],
    [() => c.set('k', 'v', { ttl: Infinity }), 'ERR_INVALID_TTL', RangeError],
    [() => c.set('k', 'v', { ttl: 1e15 }), 'ERR_INVALID_TTL', RangeError],
    [() => c.set('k', 'v', { ttl: '10' }), 'ERR_INVALID_TTL', TypeError],
    [() => c.incr('k', 1, { ttl: -5 }), 'ERR_INVALID_TTL', RangeError],
    [() => c.set('k', 'v', 5), 'ERR_INVALID_ARGUMENT', TypeError],
    [() => c.set('k', undefined), 'ERR_INVALID_VALUE', TypeError],
    [() => c.set('k', () => 1), 'ERR_INVALID_VALUE', TypeError],
    [() => c.set('k', Symbol('v')), 'ERR_INVALID_VALUE', TypeError],
    [() => c.set('k', 10n), 'ERR_INVALID_VALUE', TypeError],
    [() => c.set('k', NaN), 'ERR_INVALID_VALUE', TypeError],
    [() => c.set('k', new Float64Array(2)), 'ERR_INVALID_VALUE', TypeError],
    [() => { const o = {}; o.o = o; c.set('k', o); }, 'ERR_INVALID_VALUE', TypeError],
    [() => c.deletePrefix(1), 'ERR_INVALID_ARGUMENT', TypeError],
    [() => new MemoryCache({ maxEntries: 0 }), 'ERR_INVALID_OPTION', RangeError],
    [() => new MemoryCache({ maxEntries: 1.5 }), 'ERR_INVALID_OPTION', RangeError],
    [() => new MemoryCache({ maxEntries: NaN }), 'ERR_INVALID_OPTION', RangeError],
    [() => new MemoryCache({ maxBytes: -1 }), 'ERR_INVALID_OPTION', RangeError],
    [() => new MemoryCache({ maxEntries: '10' }), 'ERR_INVALID_OPTION', TypeError],
    [() => new MemoryCache({ namespace: 5 }), 'ERR_INVALID_OPTION', TypeError],
    [() => new MemoryCache({ ttl: -1 }), 'ERR_INVALID_TTL', RangeError],
    [() => new MemoryCache({ ttl: Infinity }), 'ERR_INVALID_TTL', RangeError],
    [() => new MemoryCache(5), 'ERR_INVALID_OPTION', TypeError],
  ];
  for (const [fn, errorCode, Ctor] of cases) {
    assert.throws(fn, code(errorCode, Ctor), `${fn} should throw ${Ctor.name} ${errorCode}`);
    assert.equal(c.get('ok'), 'still here', `usable after ${fn}`);
  }
  assert.equal(c.has('k'), false, 'nothing was written by a failed call');
  c.set('k', 'fine');
  assert.equal(c.get('k'), 'fine');
});

test('deletePrefix refuses a prefix with a lone surrogate instead of matching U+FFFD', () => {
  const c = new MemoryCache();
  c.set('\ufffdkey', 1);
  c.set('\ud800\udc00pair', 2);
  assert.throws(() => c.deletePrefix('\ud800'), code('ERR_INVALID_KEY', TypeError));
  assert.throws(() => c.deletePrefix('a\udc00'), code('ERR_INVALID_KEY', TypeError));
  assert.equal(c.size, 2, 'nothing was deleted');
  assert.equal(c.deletePrefix('\ud800\udc00'), 1, 'a well-formed pair is fine');
  assert.equal(c.get('\ufffdkey'), 1);
});

test('an invalid constructor ttl is always ERR_INVALID_TTL, as for writes', () => {
  for (const ttl of [-1, NaN, Infinity, 1e15, 3_153_600_000_001]) {
    assert.throws(() => new MemoryCache({ ttl }), code('ERR_INVALID_TTL', RangeError), `ttl ${ttl}`);
  }
  assert.throws(() => new MemoryCache({ ttl: '5' }), code('ERR_INVALID_TTL', TypeError));
  const c = new MemoryCache({ ttl: 3_153_600_000_000 });
  c.set('k', 1);
  assert.ok(c.ttl('k') > 3e12, '100 years is allowed');
});

test('maxBytes is capped at 1 GiB, well inside the 4 GiB wasm32 address space', () => {
  const max = 2 ** 30;
  const c = new MemoryCache({ maxBytes: max });
  c.set('k', { v: 1 });
  assert.equal(c.get('k').v, 1);
  for (const maxBytes of [max + 1, 2 ** 32 - 1, 2 ** 40]) {
    assert.throws(() => new MemoryCache({ maxBytes }), (e) => code('ERR_INVALID_OPTION', RangeError)(e) && e.message.includes(String(max)), `maxBytes ${maxBytes}`);
  }
});

test('RawCache refuses to grow a scratch buffer past its cap with an error code, not a trap', () => {
  const { RawCache } = createRequire(import.meta.url)(join(pkg, 'node/bindings_wasm.js'));
  const raw = new RawCache(NaN, NaN, NaN, '');
  const cap = raw.valCap();
  assert.equal(raw.reserveVal(2 ** 32 - 1), -4, 'ERR_VALUE_TOO_LARGE');
  assert.equal(raw.reserveVal(2 ** 27), -4, 'larger than the largest value');
  assert.equal(raw.valCap(), cap, 'the buffer is unchanged');
  assert.equal(raw.reserveKey(2 ** 32 - 1), -4);
  assert.equal(raw.reserveVal(5_000), 0);
  assert.ok(raw.valCap() >= 5_000);
  raw.free();
  // The package maps the out-of-memory code like every other one.
  const c = new MemoryCache();
  c.set('k', 'still usable');
  assert.equal(c.get('k'), 'still usable');
});

test('ERR_VALUE_TOO_LARGE: values over maxBytes minus the room kept for a key are refused', () => {
  // maxBytes 4096 keeps 1024 bytes for a key: values (strings charged 1 + length) up to 3072.
  const c = new MemoryCache({ maxBytes: 4096 });
  c.set('a', 'x'.repeat(3071));
  assert.throws(() => c.set('b', 'x'.repeat(3072)), code('ERR_VALUE_TOO_LARGE', RangeError));
  assert.throws(() => c.set('b', new Uint8Array(3072)), code('ERR_VALUE_TOO_LARGE', RangeError));
  c.set('j', ['x'.repeat(3068)]); // 3072 bytes of JSON
  assert.throws(() => c.set('j', ['x'.repeat(3069)]), code('ERR_VALUE_TOO_LARGE', RangeError));
  // A namespace's `ns:` prefix is part of the room kept.
  const n = new MemoryCache({ maxBytes: 4096, namespace: 'ns' });
  n.set('a', 'x'.repeat(3068));
  assert.throws(() => n.set('a', 'x'.repeat(3069)), code('ERR_VALUE_TOO_LARGE', RangeError));
  // Under 2 KiB, half of maxBytes.
  const s = new MemoryCache({ maxBytes: 1000 });
  s.set('a', 'x'.repeat(499));
  assert.throws(() => s.set('a', 'x'.repeat(500)), code('ERR_VALUE_TOO_LARGE', RangeError));
});

test('free() releases the cache', () => {
  const c = new MemoryCache();
  c.set('k', 'v');
  c.free();
  assert.throws(() => c.get('k'));
});

test('Keyv uses it as a store: get, set with ttl, delete, clear, has, getMany, deleteMany', async () => {
  const store = new KeyvMemoryCache({ maxEntries: 1_000 });
  const keyv = new Keyv({ store, namespace: 'users' });
  const errors = [];
  keyv.on('error', (e) => errors.push(e));
  assert.equal(await keyv.set('a', { name: 'Ada' }), true);
  assert.deepEqual(await keyv.get('a'), { name: 'Ada' });
  assert.equal(store.cache.has('users:a'), true, 'Keyv prefixes keys with its namespace');
  await keyv.set('short', 'x', 30);
  assert.ok(store.cache.ttl('users:short') <= 30);
  await keyv.set('b', 2);
  assert.deepEqual(await keyv.get(['a', 'b', 'nope']), [{ name: 'Ada' }, 2, undefined]);
  assert.equal(await keyv.has('a'), true);
  assert.equal(await keyv.has('nope'), false);
  await sleep(50);
  assert.equal(await keyv.get('short'), undefined);
  assert.equal(await keyv.delete('a'), true);
  assert.equal(await keyv.delete('a'), false);
  assert.equal(await keyv.delete(['b']), true);
  // clear() clears this namespace only. Keyv sets `store.namespace`, so each Keyv gets its own
  // adapter; adapters may share one MemoryCache.
  const other = new Keyv({ store: new KeyvMemoryCache(store.cache), namespace: 'other' });
  await other.set('x', 1);
  await keyv.set('c', 3);
  await keyv.clear();
  assert.equal(await keyv.get('c'), undefined);
  assert.equal(await other.get('x'), 1);
  await keyv.set('many1', 1);
  await keyv.set('many2', 2);
  assert.deepEqual(await keyv.setMany([{ key: 'm3', value: 3 }, { key: 'm4', value: 4, ttl: 1000 }]), [true, true]);
  assert.equal(await keyv.get('m4'), 4);
  assert.deepEqual(await store.getMany(['users:many1', 'users:zz']), [await store.get('users:many1'), undefined]);
  assert.equal(await store.deleteMany(['users:many1', 'users:many2']), true);
  assert.deepEqual(await store.hasMany(['users:many1', 'users:m3']), [false, true]);
  const seen = [];
  for await (const [k] of store.iterator('users')) seen.push(k);
  assert.deepEqual(seen.sort(), ['users:m3', 'users:m4']);
  await keyv.disconnect();
  assert.deepEqual(errors, []);
});

test('a store failure reaches Keyv once: one error event, set returns false', async () => {
  const store = new KeyvMemoryCache(new MemoryCache({ maxBytes: 1_000 }));
  const keyv = new Keyv({ store });
  const errors = [];
  keyv.on('error', (e) => errors.push(e));
  assert.equal(await keyv.set('big', 'x'.repeat(5_000)), false);
  assert.equal(errors.length, 1);
  assert.equal(errors[0].code, 'ERR_VALUE_TOO_LARGE');
  assert.equal(await keyv.delete('k'.repeat(2_000)), false);
  assert.equal(errors.length, 2);
  assert.equal(errors[1].code, 'ERR_KEY_TOO_LONG');
  // The adapter's own calls reject with the cache's error.
  await assert.rejects(store.set('big', 'x'.repeat(5_000)), code('ERR_VALUE_TOO_LARGE', RangeError));
  assert.equal(errors.length, 2, 'the adapter emits nothing itself');
  let onceCalls = 0;
  store.once('ping', () => onceCalls++);
  store.emit('ping');
  store.emit('ping');
  assert.equal(onceCalls, 1);
});

test('Keyv clear() clears its namespace with useKeyPrefix false as with the default', async () => {
  const cache = new MemoryCache();
  const users = new Keyv({ store: new KeyvMemoryCache(cache), namespace: 'users', useKeyPrefix: false });
  const other = new Keyv({ store: new KeyvMemoryCache(cache), namespace: 'other' });
  await users.set('a', 1);
  await other.set('a', 2);
  assert.equal(await users.get('a'), 1);
  assert.equal(await other.get('a'), 2, 'namespaces stay apart in a shared cache');
  assert.deepEqual([...cache.keys()], ['other:a', 'users:a']);
  await users.clear();
  assert.equal(await users.get('a'), undefined);
  assert.equal(await other.get('a'), 2);
  // Without a namespace on the store, keys are kept as given and clear() clears the cache.
  const plainStore = new KeyvMemoryCache();
  const plain = new Keyv({ store: plainStore, useKeyPrefix: false });
  plainStore.namespace = undefined;
  await plain.set('a', 1);
  assert.deepEqual([...plainStore.cache.keys()], ['a']);
  await plain.clear();
  assert.equal(plainStore.cache.size, 0);
});

test('Keyv set with an Infinity ttl stores without expiry', async () => {
  const store = new KeyvMemoryCache({ ttl: 60_000 });
  const keyv = new Keyv({ store });
  assert.equal(await keyv.set('forever', 1, Infinity), true);
  assert.equal(await keyv.get('forever'), 1);
  assert.equal(store.cache.ttl('keyv:forever'), Infinity);
  await keyv.set('default', 1);
  assert.ok(store.cache.ttl('keyv:default') <= 60_000, 'no ttl: the cache default');
});

test('the adapter iterates its namespace (Keyv itself wires no iterator for it)', async () => {
  const store = new KeyvMemoryCache();
  const keyv = new Keyv({ store, namespace: 'users' });
  await keyv.set('a', { n: 1 });
  await new Keyv({ store: new KeyvMemoryCache(store.cache), namespace: 'other' }).set('b', 2);
  assert.equal(keyv.iterator, undefined);
  const seen = [];
  for await (const [key, raw] of store.iterator()) seen.push([key, (await keyv.deserializeData(raw)).value]);
  assert.deepEqual(seen, [['users:a', { n: 1 }]]);
});
