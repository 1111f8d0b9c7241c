// Loads the web build in real headless Chromium from a page served on 127.0.0.1, exercises it
// (and the worker example's fetch handler), and fails on any failed check or page error.
// Usage: CHROMIUM=/usr/bin/chromium node browser-test.mjs <pkg dir>

import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync, existsSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { extname, join, normalize, resolve } from 'node:path';
import { chromium } from 'playwright-core';

const pkg = resolve(process.argv[2]);
const examples = resolve(pkg, '..', 'examples');
const executablePath = process.env.CHROMIUM ?? '/usr/bin/chromium';
const TYPES = { '.js': 'text/javascript', '.mjs': 'text/javascript', '.wasm': 'application/wasm', '.html': 'text/html', '.json': 'application/json' };

const PAGE = `<!doctype html><meta charset="utf-8"><title>@cachekit/wasm</title>
<script type="importmap">{ "imports": { "@cachekit/wasm": "/pkg/web/index.js" } }</script>
<script type="module">
import init, { MemoryCache, KeyvMemoryCache } from '@cachekit/wasm';
import worker from '/examples/worker.js';
const failures = [];
const check = (cond, what) => { if (!cond) failures.push(what); };
const throwsCode = (fn, code, Ctor) => {
  try { fn(); failures.push('no throw: ' + code); }
  catch (e) { check(e instanceof Ctor && e.code === code, code + ' got ' + e.name + ' ' + e.code + ': ' + e.message); }
};
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
try {
  throwsCode(() => new MemoryCache(), 'ERR_NOT_INITIALIZED', Error);
  await init();
  const c = new MemoryCache({ maxEntries: 100, ttl: 60000 });
  c.set('s', 'hé 😀').set('b', new Uint8Array([1, 2, 3])).set('j', { a: [1, null, 'x'] });
  check(c.get('s') === 'hé 😀', 'string');
  check(c.get('b') instanceof Uint8Array && c.get('b').join() === '1,2,3', 'bytes');
  check(JSON.stringify(c.get('j')) === '{"a":[1,null,"x"]}', 'object');
  const obj = { n: NaN, d: new Date(0) };
  c.set('o', obj);
  check(c.get('o') === obj, 'objects are kept by reference');
  const copied = new MemoryCache({ copy: true });
  copied.set('o', obj);
  check(copied.get('o') !== obj && Number.isNaN(copied.get('o').n) && copied.get('o').d instanceof Date, 'copy: structuredClone');
  const disposed = [];
  const small = new MemoryCache({ max: 1, dispose: (v, k, why) => disposed.push(k + ':' + why) });
  small.set('a', 1).set('b', 2);
  check(disposed.join() === 'a:evict', 'dispose ' + disposed.join());
  check(c.get('missing') === undefined, 'miss');
  check(c.has('s') && c.delete('s') && !c.has('s'), 'has/delete');
  check(c.incr('n', 2) === 2 && c.incr('n') === 3, 'incr');
  check(c.ttl('n') > 0 && c.ttl('n') <= 60000, 'ttl');
  c.set('short', 1, { ttl: 20 });
  await sleep(40);
  check(c.get('short') === undefined, 'expiry with the real clock');
  check([...c.keys()].join() === 'b,j,o,n', 'keys ' + [...c.keys()].join());
  for (let i = 0; i < 1000; i++) c.set('k' + i, 'v' + i);
  check(c.size <= 100, 'bounded');
  const s = c.stats();
  check(s.evictions > 0 && s.hits > 0 && s.misses > 0, 'stats ' + JSON.stringify(s));
  throwsCode(() => c.set(1, 'v'), 'ERR_INVALID_KEY', TypeError);
  throwsCode(() => c.set('k', 'v', { ttl: -1 }), 'ERR_INVALID_TTL', RangeError);
  throwsCode(() => c.set('k'.repeat(2000), 'v'), 'ERR_KEY_TOO_LONG', RangeError);
  throwsCode(() => new MemoryCache({ maxBytes: 1000 }).set('k', 'x'.repeat(5000)), 'ERR_VALUE_TOO_LARGE', RangeError);
  let calls = 0;
  const got = await Promise.all([1, 2, 3].map(() => c.getOrSet('load', async () => { calls++; await sleep(10); return 'L'; })));
  check(calls === 1 && got.join() === 'L,L,L', 'getOrSet single flight');
  const store = new KeyvMemoryCache();
  await store.set('k', 'v', 1000);
  check(await store.get('k') === 'v', 'keyv adapter');
  c.clear();
  check(c.size === 0, 'clear');
  // The worker example: the second request is served from the cache.
  const env = { ORIGIN: location.origin };
  const r1 = await worker.fetch(new Request(location.origin + '/origin/hello'), env);
  const r2 = await worker.fetch(new Request(location.origin + '/origin/hello'), env);
  check(r1.headers.get('x-cache') === 'MISS' && r2.headers.get('x-cache') === 'HIT', 'worker x-cache');
  check((await r2.text()) === 'origin says /origin/hello', 'worker body');
} catch (e) {
  failures.push('exception: ' + (e && e.stack || e));
}
window.__result = { failures };
</script>`;

const server = createServer((req, res) => {
  const url = new URL(req.url, 'http://127.0.0.1');
  if (url.pathname === '/') return send(res, 200, 'text/html', PAGE);
  if (url.pathname === '/favicon.ico') return send(res, 204, 'image/x-icon', '');
  if (url.pathname.startsWith('/origin/')) return send(res, 200, 'text/plain', `origin says ${url.pathname}`);
  const [root, rest] = url.pathname.startsWith('/pkg/') ? [pkg, url.pathname.slice(5)]
    : url.pathname.startsWith('/examples/') ? [examples, url.pathname.slice(10)] : [null, null];
  const file = root && normalize(join(root, rest));
  if (!file || !file.startsWith(root) || !existsSync(file)) return send(res, 404, 'text/plain', 'not found');
  send(res, 200, TYPES[extname(file)] ?? 'application/octet-stream', readFileSync(file));
});
function send(res, status, type, body) {
  res.writeHead(status, { 'content-type': type, 'cache-control': 'no-store' });
  res.end(body);
}
await new Promise((r) => server.listen(0, '127.0.0.1', r));
const { port } = server.address();

const profile = mkdtempSync(join(tmpdir(), 'cachekit-chromium-'));
let context;
let failed = true;
try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    args: ['--headless=new', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
      '--disable-background-networking', '--disable-component-update', '--disable-sync', '--disable-dev-shm-usage'],
  });
  const page = context.pages()[0] ?? (await context.newPage());
  const pageErrors = [];
  page.on('pageerror', (e) => pageErrors.push(String(e)));
  page.on('console', (m) => { if (m.type() === 'error') pageErrors.push(m.text()); });
  await page.goto(`http://127.0.0.1:${port}/`);
  await page.waitForFunction(() => window.__result !== undefined, null, { timeout: 30_000 });
  const { failures } = await page.evaluate(() => window.__result);
  const version = context.browser()?.version() ?? (await page.evaluate(() => navigator.userAgent));
  const all = [...failures, ...pageErrors];
  if (all.length) {
    console.error(`headless Chromium (${version}): ${all.length} failure(s):\n  ${all.join('\n  ')}`);
  } else {
    console.log(`headless Chromium (${version}): the web build and the worker example pass`);
    failed = false;
  }
} finally {
  await context?.close();
  server.close();
  rmSync(profile, { recursive: true, force: true });
}
process.exit(failed ? 1 : 0);
