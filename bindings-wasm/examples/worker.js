// A worker-style fetch handler (Cloudflare Workers, Deno Deploy, Vercel Edge, service workers)
// that caches an origin's responses in @cachekit/wasm: concurrent misses of one path make one
// origin request, and entries live for 60 s.
//
// Deno / browsers / service workers: `init()` fetches the .wasm next to the package's JS.
// Cloudflare Workers cannot fetch it; import the module and pass it instead:
//   import wasm from '@cachekit/wasm/wasm';   // a WebAssembly.Module
//   const ready = init(wasm);
import init, { MemoryCache } from '@cachekit/wasm';

const ready = init();
let cache;

export default {
  /** `env.ORIGIN`: the origin's base URL, e.g. https://api.example.com */
  async fetch(request, env) {
    await ready;
    cache ??= new MemoryCache({ maxEntries: 10_000, maxBytes: 32 << 20, ttl: 60_000 });
    const { pathname } = new URL(request.url);
    let loaded = false;
    const body = await cache.getOrSet(pathname, async () => {
      loaded = true;
      const response = await fetch(new URL(pathname, env.ORIGIN));
      if (!response.ok) throw new Error(`origin answered ${response.status}`);
      return response.text();
    });
    return new Response(body, {
      headers: { 'content-type': 'text/plain; charset=utf-8', 'x-cache': loaded ? 'MISS' : 'HIT' },
    });
  },
};
