// Assembles the npm package in bindings-wasm/pkg around the three wasm-bindgen outputs
// (pkg/web, pkg/node, pkg/bundler, already optimised by `cargo xtask wasm`) and prints its size.
// Usage: node assemble.mjs <pkg dir>

import { readFileSync, writeFileSync, mkdirSync, copyFileSync, statSync } from 'node:fs';
import { gzipSync } from 'node:zlib';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';

const js = resolve(dirname(fileURLToPath(import.meta.url)), '..');
const crate = resolve(js, '..');
const pkg = resolve(process.argv[2] ?? join(crate, 'pkg'));
// The crate inherits the workspace version.
const version = /\[workspace\.package\][^[]*?version = "([^"]+)"/s.exec(readFileSync(join(crate, '..', 'Cargo.toml'), 'utf8'))[1];

const write = (path, text) => {
  mkdirSync(dirname(join(pkg, path)), { recursive: true });
  writeFileSync(join(pkg, path), text);
};

// The shared wrapper, as ESM and as CommonJS (Node 20 cannot require() ESM).
const api = readFileSync(join(js, 'src', 'api.js'), 'utf8');
write('lib/api.js', api);
write('lib/api.cjs', `'use strict';\n${api.replace('export function createApi', 'function createApi')}\nmodule.exports = { createApi };\n`);
write('lib/package.json', '{ "type": "module" }\n');

write('web/index.js', `// The web build: browsers, Deno, edge workers. Call \`await init()\` before \`new MemoryCache()\`.
import wbgInit, { initSync as wbgInitSync, RawEngine, wasmMemory } from './bindings_wasm.js';
import { createApi } from '../lib/api.js';

let ready = false;
export const { MemoryCache, KeyvMemoryCache } = createApi({ RawEngine, wasmMemory }, { isReady: () => ready });

const plain = (x) => x !== null && typeof x === 'object' && Object.getPrototypeOf(x) === Object.prototype;

/** Loads the wasm module: by default fetched from next to this file; or pass a URL, bytes or a WebAssembly.Module. */
export async function init(input) {
  await wbgInit(input === undefined || plain(input) ? input : { module_or_path: input });
  ready = true;
}

/** Instantiates the wasm module synchronously from bytes or a WebAssembly.Module. */
export function initSync(module) {
  wbgInitSync(plain(module) ? module : { module });
  ready = true;
}

export default init;
`);
write('web/package.json', '{ "type": "module" }\n');

write('bundler/index.js', `// The bundler build (webpack 5 / Vite with wasm ESM integration): ready on import.
import { RawEngine, wasmMemory } from './bindings_wasm.js';
import { createApi } from '../lib/api.js';

export const { MemoryCache, KeyvMemoryCache } = createApi({ RawEngine, wasmMemory });
/** A no-op here (the module is loaded on import); kept so portable code can always \`await init()\`. */
export async function init() {}
export function initSync() {}
export default init;
`);
write('bundler/package.json', '{ "type": "module", "sideEffects": ["./bindings_wasm.js", "./index.js"] }\n');

write('node/index.cjs', `'use strict';
// The Node build: the wasm module is loaded synchronously on require.
// V8 11.3 (Node 20) miscompiles a function that holds an inlined call into wasm together with the
// lengths of a string and of a typed array, and segfaults on a number reaching it (see the README,
// "Node 20"). Turning that inlining off before anything is optimized makes the process immune.
if (/^11\\.3\\./.test(process.versions.v8)) {
  require('node:v8').setFlagsFromString('--no-turbo-inline-js-wasm-calls');
}
const raw = require('./bindings_wasm.js');
const { createApi } = require('../lib/api.cjs');

const { MemoryCache, KeyvMemoryCache } = createApi(raw);
/** A no-op in Node (the module is loaded on require); kept so portable code can always \`await init()\`. */
async function init() {}
function initSync() {}
module.exports = { MemoryCache, KeyvMemoryCache, init, initSync, default: init };
`);
write('node/index.mjs', `import api from './index.cjs';

export const { MemoryCache, KeyvMemoryCache, init, initSync } = api;
export default api.init;
`);
write('node/package.json', '{ "type": "commonjs" }\n');

copyFileSync(join(js, 'src', 'index.d.ts'), join(pkg, 'index.d.ts'));
copyFileSync(join(crate, 'README.md'), join(pkg, 'README.md'));

const types = './index.d.ts';
const manifest = {
  name: '@cachekit/wasm',
  version,
  description: 'A bounded in-memory cache (S3-FIFO, TTLs, byte bounds, counters, single-flight loads) in WebAssembly for Node, browsers, Deno and edge workers; with a Keyv adapter.',
  license: 'MIT OR Apache-2.0',
  type: 'module',
  types,
  main: './node/index.cjs',
  module: './bundler/index.js',
  exports: {
    '.': {
      types,
      node: { import: './node/index.mjs', require: './node/index.cjs' },
      deno: './web/index.js',
      workerd: './web/index.js',
      worker: './web/index.js',
      'edge-light': './web/index.js',
      browser: './web/index.js',
      import: './bundler/index.js',
      default: './web/index.js',
    },
    './web': { types, default: './web/index.js' },
    './bundler': { types, default: './bundler/index.js' },
    './node': { types, import: './node/index.mjs', require: './node/index.cjs' },
    './wasm': './web/bindings_wasm_bg.wasm',
    './package.json': './package.json',
  },
  files: ['index.d.ts', 'lib/', 'web/', 'node/', 'bundler/', 'README.md'],
  sideEffects: ['./bundler/bindings_wasm.js', './bundler/index.js'],
  engines: { node: '>=18' },
  keywords: ['cache', 'lru', 's3-fifo', 'ttl', 'wasm', 'webassembly', 'keyv', 'memoize'],
};
write('package.json', `${JSON.stringify(manifest, null, 2)}\n`);

// Sizes: what one target downloads (its wasm plus glue), raw and gzipped.
const gz = (path) => gzipSync(readFileSync(path), { level: 9 }).length;
const kb = (n) => `${(n / 1024).toFixed(1)} KB`;
const LIMIT = 100 * 1024;
let worst = 0;
console.log('\npackage', pkg);
console.log('target    wasm raw   wasm gz    glue+wrapper gz   total gz');
for (const dir of ['web', 'node', 'bundler']) {
  const wasm = join(pkg, dir, 'bindings_wasm_bg.wasm');
  const glue = [join(pkg, dir, 'bindings_wasm.js'), join(pkg, 'lib', 'api.js')];
  if (dir === 'bundler') glue.push(join(pkg, dir, 'bindings_wasm_bg.js'));
  const glueGz = glue.reduce((sum, f) => sum + gz(f), 0);
  const total = gz(wasm) + glueGz;
  worst = Math.max(worst, total);
  console.log(`${dir.padEnd(9)} ${kb(statSync(wasm).size).padEnd(10)} ${kb(gz(wasm)).padEnd(10)} ${kb(glueGz).padEnd(17)} ${kb(total)}`);
}
console.log(`largest target: ${kb(worst)} gzipped (target ≤ 100 KB: ${worst <= LIMIT ? 'met' : 'NOT met'})`);
if (worst > LIMIT) process.exitCode = 1;
