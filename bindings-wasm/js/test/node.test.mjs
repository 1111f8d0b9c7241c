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
  await assert.rejects(c.getOrSet('u', () => undefined), code('ERR_INVALID_VALUE', TypeError));
  assert.equal(c.has('u'), false);
  await assert.rejects(c.getOrSet('k', 'not a function'), code('ERR_INVALID_ARGUMENT', TypeError));
  await assert.rejects(c.getOrSet(1, () => 1), code('ERR_INVALID_KEY', TypeError));
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

test('the Keyv adapter emits store errors to Keyv', async () => {
  const store = new KeyvMemoryCache(new MemoryCache({ maxBytes: 1_000 }));
  const keyv = new Keyv({ store });
  const errors = [];
  keyv.on('error', (e) => errors.push(e));
  assert.equal(await keyv.set('big', 'x'.repeat(5_000)), false);
  assert.ok(errors.length >= 1 && errors.every((e) => e.code === 'ERR_VALUE_TOO_LARGE'));
  let onceCalls = 0;
  store.once('ping', () => onceCalls++);
  store.emit('ping');
  store.emit('ping');
  assert.equal(onceCalls, 1);
});
