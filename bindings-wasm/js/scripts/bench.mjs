// `cargo xtask bench wasm`: @cachekit/wasm (the Node build) against lru-cache in one run, on the
// memory benchmark's workload: Zipf(1.0) over 100 000 keys, capacity 10 000, 64-character string
// values, cache-aside (get; on a miss, make the value and set it).
// Each round runs each peer in a fresh Node process, after a warm-up pass, and the order of the peers
// rotates: neither peer's garbage or compiled code is in the other's measurement. A peer's ops/s is
// its median over the rounds; a ratio is the median of the rounds' ratios.
// A third row is a floor, not a cache: lru-cache plus what every cache whose map lives in wasm pays
// on every get, the key's UTF-8 bytes written into wasm memory and one call into wasm with their
// length (a call that ignores them). It shows what the crossing alone costs against lru-cache.
// Usage: node --expose-gc bench.mjs <pkg dir> [run|memory <peer>]

import { execFileSync } from 'node:child_process';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LRUCache } from 'lru-cache';

const pkg = resolve(process.argv[2] ?? join(fileURLToPath(import.meta.url), '../../../pkg'));
const require = createRequire(import.meta.url);
const { MemoryCache } = require(join(pkg, 'node', 'index.cjs'));
const { RawCache, wasmMemory } = require(join(pkg, 'node', 'bindings_wasm.js'));

const KEYS = 100_000;
const CAPACITY = 10_000;
const OPS = 2_000_000;
const ROUNDS = 7;
const FLOOR = 'lru-cache + key into wasm (floor)';
const value = (i) => `${i}:`.padEnd(64, 'abcdefghijklmnopqrstuvwxyz');

const peers = {
  '@cachekit/wasm': () => {
    const c = new MemoryCache({ maxEntries: CAPACITY });
    return { get: (k) => c.get(k), set: (k, v) => c.set(k, v) };
  },
  'lru-cache': () => {
    const c = new LRUCache({ max: CAPACITY });
    return { get: (k) => c.get(k), set: (k, v) => c.set(k, v) };
  },
  [FLOOR]: () => {
    const c = new LRUCache({ max: CAPACITY });
    // The package's own key buffer and calling convention; `reserveKey(n)` does nothing for an n
    // that fits, so the call costs only the crossing.
    const raw = new RawCache(CAPACITY, NaN, NaN, '');
    const at = raw.keyPtr();
    let mem = new Uint8Array(wasmMemory().buffer);
    return {
      get: (k) => {
        if (mem.length === 0) mem = new Uint8Array(wasmMemory().buffer);
        for (let i = 0; i < k.length; i++) mem[at + i] = k.charCodeAt(i);
        raw.reserveKey(k.length);
        return c.get(k);
      },
      set: (k, v) => c.set(k, v),
    };
  },
};

// Memory of 100 000 entries, each peer in a fresh process: JS heap plus wasm memory growth.
if (process.argv[3] === 'memory') {
  const name = process.argv[4];
  globalThis.gc();
  const heap0 = process.memoryUsage().heapUsed;
  const wasm0 = wasmMemory().buffer.byteLength;
  const cache = name === 'lru-cache' ? new LRUCache({ max: KEYS }) : new MemoryCache({ maxEntries: KEYS });
  for (let i = 0; i < KEYS; i++) cache.set(`key:${i}`, value(i));
  globalThis.gc();
  const heap = process.memoryUsage().heapUsed - heap0;
  const wasm = wasmMemory().buffer.byteLength - wasm0;
  if (cache.size !== KEYS) throw new Error(`${name} holds ${cache.size} entries`);
  console.log(JSON.stringify({ heap, wasm }));
  process.exit(0);
}

// A Zipf(1.0) sequence of key ranks from a fixed seed: the same for every peer.
function zipfSequence(n, ops, seed) {
  const cdf = new Float64Array(n);
  let sum = 0;
  for (let i = 0; i < n; i++) cdf[i] = sum += 1 / (i + 1);
  for (let i = 0; i < n; i++) cdf[i] /= sum;
  let x = seed >>> 0;
  const out = new Uint32Array(ops);
  for (let j = 0; j < ops; j++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    const u = x / 4294967296;
    let lo = 0;
    let hi = n - 1;
    while (lo < hi) {
      const mid = (lo + hi) >>> 1;
      if (cdf[mid] < u) lo = mid + 1;
      else hi = mid;
    }
    out[j] = lo;
  }
  return out;
}

/** Ops/s and hit ratio of one peer on the trace, after a warm-up pass on a cache of its own. */
function run(make) {
  const keys = Array.from({ length: KEYS }, (_, i) => `key:${i}`);
  const seq = zipfSequence(KEYS, OPS, 0x9e3779b9);
  const pass = () => {
    const cache = make();
    let hits = 0;
    const t0 = performance.now();
    for (let j = 0; j < OPS; j++) {
      const i = seq[j];
      const k = keys[i];
      if (cache.get(k) === undefined) cache.set(k, value(i));
      else hits++;
    }
    const secs = (performance.now() - t0) / 1000;
    return { opsPerSec: OPS / secs, hitRatio: hits / OPS };
  };
  pass();
  globalThis.gc();
  return pass();
}

if (process.argv[3] === 'run') {
  console.log(JSON.stringify(run(peers[process.argv[4]])));
  process.exit(0);
}

/** What `mode` (run or memory) prints for `name`, from a fresh Node process. */
const inChild = (mode, name) =>
  JSON.parse(execFileSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), pkg, mode, name]).toString());

const names = Object.keys(peers);
const results = Object.fromEntries(names.map((n) => [n, []]));
for (let r = 0; r < ROUNDS; r++) {
  const order = names.map((_, i) => names[(i + r) % names.length]);
  for (const name of order) results[name].push(inChild('run', name));
}
const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const caches = names.filter((n) => n !== FLOOR);
const memory = Object.fromEntries(caches.map((n) => [n, inChild('memory', n)]));

const mb = (n) => `${(n / 2 ** 20).toFixed(1)} MB`;
const opsPerSec = (name) => results[name].map((r) => r.opsPerSec);
const base = opsPerSec('lru-cache');
/** `name`'s ops/s over lru-cache's, round by round. */
const roundRatios = (name) => opsPerSec(name).map((ops, r) => ops / base[r]);
const baseHit = results['lru-cache'][0].hitRatio;
const baseMem = memory['lru-cache'].heap + memory['lru-cache'].wasm;
console.log(`\nZipf(1.0), ${KEYS} keys, capacity ${CAPACITY}, 64-char values, cache-aside, ${OPS} ops, ${ROUNDS} rounds of a fresh process per peer (medians), node ${process.version}\n`);
console.log('| cache | ops/s | vs lru-cache | hit ratio | memory, 100 000 entries (JS heap + wasm) | vs lru-cache |');
console.log('|---|---:|---:|---:|---:|---:|');
for (const name of names) {
  const used = memory[name] && memory[name].heap + memory[name].wasm;
  const mem = used === undefined ? '- | -' : `${mb(used)} (${mb(memory[name].heap)} + ${mb(memory[name].wasm)}) | ${(used / baseMem).toFixed(2)}×`;
  console.log(`| ${name} | ${(median(opsPerSec(name)) / 1e6).toFixed(2)} M | ${median(roundRatios(name)).toFixed(2)}× | ${(results[name][0].hitRatio * 100).toFixed(2)} % | ${mem} |`);
}
const ours = '@cachekit/wasm';
const ratio = median(roundRatios(ours));
console.log();
for (const name of [ours, FLOOR]) {
  console.log(`${name} / lru-cache by round: ${roundRatios(name).map((r) => r.toFixed(2)).join(', ')}`);
}
console.log(`targets: hit ratio ≥ lru-cache's: ${results[ours][0].hitRatio >= baseHit ? 'met' : 'NOT met'}; throughput ≥ 1.0× lru-cache: ${ratio >= 1 ? 'met' : `NOT met (${ratio.toFixed(2)}×)`}`);
