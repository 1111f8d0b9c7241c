// `cargo xtask bench wasm`: @cachekit/wasm (the Node build) against lru-cache in one run.
//
// Workloads, as users run them:
//   zipf-string   the memory benchmark's: Zipf(1.0) over 100 000 keys, capacity 10 000, 64-character
//                 string values, cache-aside (get; on a miss, make the value and set it);
//   zipf-object   the same with a 6-field object per key (an API response);
//   hot-object    1 000 keys of such objects, all cached, read 2 M times (uniformly at random).
// Memory: 100 000 entries of 64-character strings: the growth of the JS heap plus external memory
// (the backing stores of typed arrays, lru-cache's too, and wasm memory).
//
// Each round runs each peer in a fresh Node process, after a warm-up pass, and the order of the
// peers rotates: neither peer's garbage or compiled code is in the other's measurement. A peer's
// ops/s is its median over the rounds; a ratio is the median of the rounds' ratios.
//
// The floor row is not a cache: lru-cache plus what a cache whose key map lived in wasm would pay
// on every get (the key's UTF-8 bytes written into wasm memory and one call into wasm). The
// package's first design paid it; this one keeps keys in JS and makes no call on a hit.
// Usage: node --expose-gc bench.mjs <pkg dir> [run <workload> <peer> | memory <peer>]

import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { createRequire } from 'node:module';
import { join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { LRUCache } from 'lru-cache';

const pkg = resolve(process.argv[2] ?? join(fileURLToPath(import.meta.url), '../../../pkg'));
const require = createRequire(import.meta.url);
const { MemoryCache } = require(join(pkg, 'node', 'index.cjs'));
const { RawEngine, wasmMemory } = require(join(pkg, 'node', 'bindings_wasm.js'));

const KEYS = 100_000;
const CAPACITY = 10_000;
const HOT = 1_000;
const OPS = 2_000_000;
const ROUNDS = 7;
const OURS = '@cachekit/wasm';
const FLOOR = 'lru-cache + key into wasm (floor)';
const text = (i) => `${i}:`.padEnd(64, 'abcdefghijklmnopqrstuvwxyz');
const product = (i) => ({
  id: i,
  price: 1999 + (i % 100),
  stock: i % 37,
  name: `Product ${i}`,
  description: `A fine product, number ${i}, for every occasion.`,
  tags: ['tools', `shelf-${i % 12}`, 'sale'],
});

const peers = {
  [OURS]: (capacity) => {
    const c = new MemoryCache({ maxEntries: capacity });
    return { get: (k) => c.get(k), set: (k, v) => c.set(k, v) };
  },
  'lru-cache': (capacity) => {
    const c = new LRUCache({ max: capacity });
    return { get: (k) => c.get(k), set: (k, v) => c.set(k, v) };
  },
  [FLOOR]: (capacity) => {
    const c = new LRUCache({ max: capacity });
    // A spare engine's victim list (1 KiB of wasm memory nothing reads here) takes the key's
    // bytes; `len()` is the call.
    const raw = new RawEngine(1, Infinity);
    const header = new Uint32Array(wasmMemory().buffer, raw.headerPtr(), 9);
    const at = header[3];
    let mem = new Uint8Array(wasmMemory().buffer);
    return {
      get: (k) => {
        if (mem.length === 0) mem = new Uint8Array(wasmMemory().buffer);
        for (let i = 0; i < k.length && i < 1024; i++) mem[at + i] = k.charCodeAt(i);
        raw.len();
        return c.get(k);
      },
      set: (k, v) => c.set(k, v),
    };
  },
};

/** A Zipf(1.0) sequence of key ranks from a fixed seed: the same for every peer. */
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

function uniformSequence(n, ops, seed) {
  let x = seed >>> 0;
  const out = new Uint32Array(ops);
  for (let j = 0; j < ops; j++) {
    x ^= x << 13; x >>>= 0; x ^= x >>> 17; x ^= x << 5; x >>>= 0;
    out[j] = x % n;
  }
  return out;
}

const workloads = {
  'zipf-string': { keys: KEYS, capacity: CAPACITY, seq: () => zipfSequence(KEYS, OPS, 0x9e3779b9), value: text },
  'zipf-object': { keys: KEYS, capacity: CAPACITY, seq: () => zipfSequence(KEYS, OPS, 0x9e3779b9), value: product },
  'hot-object': { keys: HOT, capacity: CAPACITY, seq: () => uniformSequence(HOT, OPS, 0x2545f491), value: product, preload: true },
};

/** Ops/s and hit ratio of one peer on one workload, after a warm-up pass on a cache of its own. */
function run(workload, make) {
  const w = workloads[workload];
  const keys = Array.from({ length: w.keys }, (_, i) => `key:${i}`);
  const seq = w.seq();
  const pass = () => {
    const cache = make(w.capacity);
    if (w.preload) for (let i = 0; i < w.keys; i++) cache.set(keys[i], w.value(i));
    let hits = 0;
    const t0 = performance.now();
    for (let j = 0; j < OPS; j++) {
      const i = seq[j];
      const k = keys[i];
      if (cache.get(k) === undefined) cache.set(k, w.value(i));
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
  console.log(JSON.stringify(run(process.argv[4], peers[process.argv[5]])));
  process.exit(0);
}

// Memory of 100 000 entries, each peer in a fresh process: the growth of the JS heap and of
// external memory (typed arrays' backing stores, and wasm memory).
if (process.argv[3] === 'memory') {
  const name = process.argv[4];
  globalThis.gc();
  const before = process.memoryUsage();
  const cache = name === 'lru-cache' ? new LRUCache({ max: KEYS }) : new MemoryCache({ maxEntries: KEYS });
  for (let i = 0; i < KEYS; i++) cache.set(`key:${i}`, text(i));
  globalThis.gc();
  const after = process.memoryUsage();
  if (cache.size !== KEYS) throw new Error(`${name} holds ${cache.size} entries`);
  console.log(JSON.stringify({ heap: after.heapUsed - before.heapUsed, external: after.external - before.external }));
  process.exit(0);
}

/** What the script prints for `args`, from a fresh Node process. */
const inChild = (...args) =>
  JSON.parse(execFileSync(process.execPath, ['--expose-gc', fileURLToPath(import.meta.url), pkg, ...args]).toString());

const names = Object.keys(peers);
const results = {};
for (const workload of Object.keys(workloads)) {
  results[workload] = Object.fromEntries(names.map((n) => [n, []]));
  for (let r = 0; r < ROUNDS; r++) {
    const order = names.map((_, i) => names[(i + r) % names.length]);
    for (const name of order) results[workload][name].push(inChild('run', workload, name));
  }
}
const caches = names.filter((n) => n !== FLOOR);
const memory = Object.fromEntries(caches.map((n) => [n, inChild('memory', n)]));

const median = (xs) => [...xs].sort((a, b) => a - b)[Math.floor(xs.length / 2)];
const mb = (n) => `${(n / 2 ** 20).toFixed(1)} MB`;
const opsPerSec = (workload, name) => results[workload][name].map((r) => r.opsPerSec);
/** `name`'s ops/s over lru-cache's on `workload`, round by round. */
const roundRatios = (workload, name) => {
  const base = opsPerSec(workload, 'lru-cache');
  return opsPerSec(workload, name).map((ops, r) => ops / base[r]);
};
const ratio = (workload, name) => median(roundRatios(workload, name));
const hitRatio = (workload, name) => results[workload][name][0].hitRatio;

console.log(`\n${OPS} ops per pass, ${ROUNDS} rounds of a fresh process per peer (medians), node ${process.version}`);
console.log('zipf: Zipf(1.0) over 100 000 keys, capacity 10 000, cache-aside; hot: 1 000 cached keys read uniformly\n');
console.log('| workload | cache | ops/s | vs lru-cache | hit ratio |');
console.log('|---|---|---:|---:|---:|');
for (const workload of Object.keys(workloads)) {
  for (const name of names) {
    console.log(`| ${workload} | ${name} | ${(median(opsPerSec(workload, name)) / 1e6).toFixed(2)} M | ${ratio(workload, name).toFixed(2)}× | ${(hitRatio(workload, name) * 100).toFixed(2)} % |`);
  }
}
const used = (name) => memory[name].heap + memory[name].external;
console.log('\n| memory, 100 000 entries | JS heap + external (typed arrays, wasm) | vs lru-cache |');
console.log('|---|---:|---:|');
for (const name of caches) {
  console.log(`| ${name} | ${mb(used(name))} (${mb(memory[name].heap)} + ${mb(memory[name].external)}) | ${(used(name) / used('lru-cache')).toFixed(2)}× |`);
}
console.log();
for (const workload of Object.keys(workloads)) {
  console.log(`${workload}: ${OURS} / lru-cache by round: ${roundRatios(workload, OURS).map((r) => r.toFixed(2)).join(', ')}`);
}
const met = (ok, got) => (ok ? `met (${got})` : `NOT met (${got})`);
const points = (hitRatio('zipf-string', OURS) - hitRatio('zipf-string', 'lru-cache')) * 100;
const memRatio = used(OURS) / used('lru-cache');
console.log('\ntargets:');
console.log(`  string values ≥ 1.2× lru-cache: ${met(ratio('zipf-string', OURS) >= 1.2, `${ratio('zipf-string', OURS).toFixed(2)}×`)}`);
for (const workload of ['zipf-object', 'hot-object']) {
  console.log(`  ${workload} ≥ 1.0× lru-cache: ${met(ratio(workload, OURS) >= 1.0, `${ratio(workload, OURS).toFixed(2)}×`)}`);
}
console.log(`  hit ratio ≥ lru-cache's + 4 points: ${met(points >= 4, `+${points.toFixed(2)} points`)}`);
console.log(`  memory ≤ 1.0× lru-cache: ${met(memRatio <= 1.0, `${memRatio.toFixed(2)}×`)}`);

// The results, for `cargo xtask bench wasm` to draw (docs/bench/wasm.svg).
const target = { 'zipf-string': 1.2, 'zipf-object': 1.0, 'hot-object': 1.0 };
const chart = {
  title: '@cachekit/wasm / lru-cache (ops/s and memory)',
  better: 'higher',
  reference: 1.0,
  groups: [
    ...Object.keys(workloads).map((workload) => ({
      name: workload,
      bars: names.filter((n) => n !== 'lru-cache').map((name) => ({
        label: name,
        value: ratio(workload, name),
        text: `${ratio(workload, name).toFixed(2)}× (${(median(opsPerSec(workload, name)) / 1e6).toFixed(2)} M ops/s, hit ${(hitRatio(workload, name) * 100).toFixed(1)} %)`,
        ...(name === OURS ? { target: target[workload] } : {}),
      })),
    })),
    {
      name: 'memory, 100 000 entries: lru-cache / ours (higher: ours smaller)',
      bars: [{ label: OURS, value: 1 / memRatio, text: `${(1 / memRatio).toFixed(2)}× (${mb(used(OURS))} vs ${mb(used('lru-cache'))})`, target: 1.0 }],
    },
  ],
};
const out = join(fileURLToPath(import.meta.url), '../../../../target/bench');
mkdirSync(out, { recursive: true });
writeFileSync(join(out, 'wasm.json'), JSON.stringify(chart));
