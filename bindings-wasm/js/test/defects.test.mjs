// Regression tests of defects found by probing the built package as a hostile but realistic user
// would (each failed before its fix). PKG=<dir> runs them against another build of the package.
import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawnSync } from 'node:child_process';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { resolve } from 'node:path';

const pkg = resolve(process.env.PKG ?? fileURLToPath(new URL('../../pkg/', import.meta.url)));
const entry = pathToFileURL(resolve(pkg, 'node/index.mjs')).href;
const { MemoryCache } = await import(entry);
const wasmMemory = () => (globalThis.__cachekitMemory ??= (() => {
  // The module's memory, through the wasm-bindgen glue of the Node build.
  const glue = resolve(pkg, 'node/bindings_wasm.js');
  return import(pathToFileURL(glue).href).then((m) => (m.default ?? m).wasmMemory());
})());
const code = (c, Ctor = Error) => (e) => e instanceof Ctor && e.code === c;

/** Runs `source` (an ES module that imports the package as PKG) in a fresh Node process. */
function runFresh(source, flags = []) {
  const program = source.replaceAll('PKG', JSON.stringify(entry));
  return spawnSync(process.execPath, [...flags, '--input-type=module', '-e', program], { encoding: 'utf8' });
}

// Node 20's V8 (11.3) miscompiled `set` once it had seen a string, a Uint8Array and a number: a
// segfault (exit 139) in 3-5 runs of 10 by default and 10 of 10 with --no-concurrent-recompilation.
test('mixed-type hot loops do not crash Node, in fresh processes, with and without concurrent recompilation', () => {
  const loops = [
    `const vals = ['hello', new Uint8Array([1, 2, 3]), 42];
     for (let i = 0; i < 1e5; i++) c.set('k' + (i % 1000), vals[i % 3]);`,
    `const vals = [new Uint8Array(4), 7, 'x'.repeat(20), { a: 1 }, [1, 2], 1.5, null, true];
     for (let i = 0; i < 1e5; i++) { const k = 'k' + (i % 500); c.set(k, vals[i % vals.length]); c.get(k); c.has(k); }`,
    `const vals = ['s', new Uint8Array([9]), 3];
     for (let i = 0; i < 1e5; i++) { const k = 'k' + (i % 300); if (c.get(k) === undefined) c.set(k, vals[i % 3], { ttl: 60000 }); c.incr('n'); }`,
  ];
  for (const flags of [[], ['--no-concurrent-recompilation']]) {
    for (const loop of loops) {
      for (let run = 0; run < 3; run++) {
        const result = runFresh(`import { MemoryCache } from PKG;
          const c = new MemoryCache();
          ${loop}
          console.log('ok');`, flags);
        assert.equal(result.status, 0, `${flags.join(' ') || 'default flags'}, run ${run}: exit ${result.status} signal ${result.signal}\n${result.stderr}\n${loop}`);
        assert.equal(result.stdout.trim(), 'ok');
      }
    }
  }
});

// The cause, without any of the package's code: V8 11.3 miscompiles a function that holds an
// inlined call into wasm together with the lengths of a string and of a typed array, once a number
// reaches it. Run bare, this program segfaults on Node 20 (4 runs of 4 with
// --no-concurrent-recompilation); Node 18, 22 and 24 run it. Loading the package first makes the
// process immune (its Node build turns V8's JS-to-wasm inlining off on V8 11.3).
const V8_11_3_REPRODUCER = `
const bytes = Uint8Array.from(atob('AGFzbQEAAAABCQFgBH9/f3wBfwMCAQAHBQEBZgAACgYBBABBAAs='), (c) => c.charCodeAt(0));
const { instance } = await WebAssembly.instantiate(bytes); // (func (export "f") (param i32 i32 i32 f64) (result i32))
const wasm = instance.exports;
function f(value, k) {
  if (typeof value === 'string') wasm.f(8, k, 1 + value.length, -1);
  else if (value instanceof Uint8Array) wasm.f(8, k, value.length + 1, -1);
  else wasm.f(8, k, 3, -1);
}
const vals = ['hello', new Uint8Array([1, 2, 3]), 42];
for (let i = 0; i < 1e6; i++) f(vals[i % 3], i);
console.log('ok');`;

test('once the package is loaded, the V8 11.3 miscompilation cannot crash the process, even in code that is not ours', () => {
  for (const flags of [[], ['--no-concurrent-recompilation']]) {
    for (let run = 0; run < 3; run++) {
      const result = runFresh(`import PKG;\n${V8_11_3_REPRODUCER}`, flags);
      assert.equal(result.status, 0, `${flags.join(' ') || 'default flags'}, run ${run}: exit ${result.status} signal ${result.signal}\n${result.stderr}`);
      assert.equal(result.stdout.trim(), 'ok');
    }
  }
});

// After clear(), or after a call that threw ERR_INVALID_KEY, the wrapper's "same key as last time"
// shortcut matched `undefined`: set(undefined, v) overwrote the last key used, delete(undefined)
// deleted it, and has/ttl/getRemainingTTL read it.
test('an undefined key never reaches the previous key', () => {
  for (const prepare of [(c) => c.clear(), (c) => assert.throws(() => c.set('', 'x'), code('ERR_INVALID_KEY', TypeError))]) {
    const c = new MemoryCache();
    c.set('alice', 'Alice', { ttl: 60_000 });
    c.get('alice');
    prepare(c);
    c.set('alice', 'Alice', { ttl: 60_000 });
    for (const call of [
      () => c.set(undefined, 'Bob'),
      () => c.delete(undefined),
      () => c.has(undefined),
      () => c.ttl(undefined),
      () => c.getRemainingTTL(undefined),
      () => c.get(undefined),
      () => c.incr(undefined),
    ]) {
      assert.throws(call, code('ERR_INVALID_KEY', TypeError), call.toString());
    }
    assert.equal(c.get('alice'), 'Alice');
    assert.equal(c.size, 1);
  }
});

// A RangeError (stack overflow) inside a call left the cache answering every later call with
// "recursive use of an object detected", and no code.
test('a stack overflow inside a call leaves the cache usable, with its entries', () => {
  const c = new MemoryCache({ maxEntries: 1000, ttl: 60_000 });
  c.set('keep', 'me');
  let overflows = 0;
  // Different frame sizes move the point of overflow across the calls' code, the wasm part too.
  const deep = [
    function a(n) { c.set(`k${n % 150}`, n); return a(n + 1) + 1; },
    function b(n, x = n * 2, y = x + 1) { c.get('keep'); c.set(`k${n % 150}`, `v${y}`, { ttl: 1000 + (n % 7) }); return b(n + 1) + x; },
    function d(n) { c.delete(`k${n % 150}`); c.incr(`n${n % 3}`); c.has('keep'); return d(n + 1) + 1; },
  ];
  for (let i = 0; i < 300; i++) {
    try {
      deep[i % deep.length](i);
    } catch (e) {
      assert.ok(e instanceof RangeError, String(e));
      overflows++;
    }
    // Usable after each one.
    c.set('after', i);
    assert.equal(c.get('after'), i);
  }
  assert.equal(overflows, 300);
  assert.equal(c.get('keep'), 'me');
  const s = c.stats();
  assert.ok(s.entries <= 1000 && s.entries === c.size, JSON.stringify(s));
});

test('a clock that throws does not break the cache', () => {
  const c = new MemoryCache({ ttl: 60_000 });
  c.set('a', 1);
  const now = performance.now;
  performance.now = () => {
    throw new Error('clock broke');
  };
  try {
    for (const call of [() => c.set('b', 2), () => c.get('a'), () => c.incr('n'), () => c.ttl('a'), () => c.size]) {
      try {
        call();
      } catch (e) {
        assert.equal(e.message, 'clock broke');
      }
    }
  } finally {
    performance.now = now;
  }
  c.set('c', 3);
  assert.equal(c.get('c'), 3);
  assert.equal(c.get('a'), 1);
  assert.ok(c.ttl('c') > 59_000);
});

// 14.7 M small entries with maxEntries 2**32 - 1 trapped (`unreachable`) with 2.6 GB of wasm memory
// for 200 MB charged, and killed the cache: about 342 bytes of wasm memory per entry.
test('wasm memory is bounded by the options, and options that could not be are refused', async () => {
  for (const options of [{ maxEntries: 2 ** 32 - 1 }, { maxEntries: 2 ** 24 + 1 }, { max: 2 ** 40 }]) {
    assert.throws(() => new MemoryCache(options), code('ERR_INVALID_OPTION', RangeError), JSON.stringify(options));
  }
  const memory = await wasmMemory();
  const before = memory.buffer.byteLength;
  const entries = 200_000;
  const c = new MemoryCache({ maxEntries: entries, ttl: 600_000 });
  for (let i = 0; i < 3 * entries; i++) c.set(`k${i}`, i % 2 === 0 ? 'v' : i);
  const grown = memory.buffer.byteLength - before;
  assert.equal(c.size, entries);
  // The engine keeps 17 bytes per slot, 25 with TTLs, plus 8 per expiry record and what growing
  // its arrays leaves behind (the README says "about 60 bytes per entry with TTLs").
  assert.ok(grown <= 64 * entries + (1 << 20), `wasm memory grew by ${grown} bytes for ${entries} entries`);
  c.free();
});

// Documented behaviour that did not hold.
test('nested NaN, Infinity, undefined and Uint8Array read back exactly', () => {
  const c = new MemoryCache();
  const value = { a: NaN, b: Infinity, c: undefined, d: new Uint8Array([1, 2, 3]), e: [-0, null] };
  c.set('o', value);
  assert.deepEqual(c.get('o'), value);
  assert.ok(Object.is(c.get('o').e[0], -0));
});

test('getOrSet refuses a TTL over the maximum before it runs the loader, as set does', async () => {
  const c = new MemoryCache();
  let ran = 0;
  await assert.rejects(c.getOrSet('k', () => ++ran, { ttl: 1e15 }), code('ERR_INVALID_TTL', RangeError));
  assert.throws(() => c.set('k', 1, { ttl: 1e15 }), code('ERR_INVALID_TTL', RangeError));
  assert.equal(ran, 0);
});

test('deletePrefix of a non-string throws ERR_INVALID_KEY, as index.d.ts says', () => {
  const c = new MemoryCache();
  for (const prefix of [5, undefined, null, {}]) {
    assert.throws(() => c.deletePrefix(prefix), code('ERR_INVALID_KEY', TypeError));
  }
});

test('a call after free() throws an error with a code', async () => {
  const c = new MemoryCache();
  c.set('a', 1);
  c.free();
  for (const call of [() => c.get('a'), () => c.set('a', 1), () => c.delete('a'), () => c.has('a'), () => c.clear(), () => c.stats(), () => c.size, () => c.incr('n')]) {
    assert.throws(call, code('ERR_FREED'), call.toString());
  }
  await assert.rejects(c.getOrSet('a', () => 1), code('ERR_FREED'));
  c.free();
});

test('unknown constructor options are refused, and lru-cache names are honoured', () => {
  for (const options of [{ maxEntrys: 2 }, { namespace: 'x' }, { updateAgeOnGet: true }]) {
    assert.throws(() => new MemoryCache(options), code('ERR_INVALID_OPTION', TypeError), JSON.stringify(options));
  }
  const c = new MemoryCache({ max: 2 });
  for (let i = 0; i < 5; i++) c.set(`k${i}`, i);
  assert.equal(c.size, 2);
});
