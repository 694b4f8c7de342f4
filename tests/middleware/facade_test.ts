// Issue 2: the Cache facade: init, initApp, cached(), defaults and overrides.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { MemoryBackend } from "../../backends/memory.ts";
import type { CacheBackend } from "../../backends/types.ts";
import { Cache, cache } from "../../middleware/cache.ts";

/** A MemoryBackend on a clock the test moves by hand. */
function clocked(): { backend: MemoryBackend; advance(seconds: number): void } {
  let now = 1_700_000_000_000;
  const backend = new MemoryBackend({ now: () => now });
  return { backend, advance: (seconds) => now += seconds * 1000 };
}

Deno.test("facade: cache.cached() before init throws a clear Error", () => {
  const fresh = new Cache();
  assert.throws(
    () => fresh.cached(),
    (error: unknown) => {
      assert.ok(error instanceof Error);
      assert.match(error.message, /^Cache is not initialised/);
      assert.match(error.message, /init/);
      assert.doesNotMatch(error.message, /\.$/);
      return true;
    },
  );
  assert.throws(() => fresh.cached({ expire: 5 }), Error);
});

Deno.test("facade: init(backend) then cached() caches a route: MISS then HIT", async () => {
  const backend = new MemoryBackend();
  const facade = new Cache();
  facade.init(backend);
  assert.equal(facade.backend, backend);
  let runs = 0;
  const app = new Hono();
  app.get("/x", facade.cached(), (c) => {
    runs++;
    return c.text(`run ${runs}`);
  });
  const miss = await app.request("/x");
  const hit = await app.request("/x");
  assert.equal(miss.headers.get("x-cache"), "MISS");
  assert.equal(hit.headers.get("x-cache"), "HIT");
  assert.equal(await hit.text(), "run 1");
  assert.equal(runs, 1);
  assert.equal((await backend.stats()).entries, 1);
});

Deno.test("facade: the default cache instance works after initApp(app, backend)", async () => {
  const app = new Hono();
  cache.initApp(app, new MemoryBackend());
  assert.equal(cache.app, app);
  let runs = 0;
  app.get("/x", cache.cached({ expire: 30 }), (c) => {
    runs++;
    return c.json({ runs });
  });
  const miss = await app.request("/x");
  const hit = await app.request("/x");
  assert.equal(miss.headers.get("x-cache"), "MISS");
  assert.equal(hit.headers.get("x-cache"), "HIT");
  assert.deepEqual(await hit.json(), { runs: 1 });
  assert.equal(runs, 1);
});

Deno.test("facade: initApp gives routes the app, so staleWhileRevalidate needs no app option", () => {
  const app = new Hono();
  const facade = new Cache();
  facade.init(new MemoryBackend());
  // Without the app, stale-while-revalidate cannot refresh: refused.
  assert.throws(() => facade.cached({ staleWhileRevalidate: 10 }), TypeError);
  facade.initApp(app, new MemoryBackend());
  assert.equal(facade.app, app);
  assert.equal(typeof facade.cached({ staleWhileRevalidate: 10 }), "function");
});

Deno.test("facade: init defaults apply to every route", async () => {
  const { backend, advance } = clocked();
  const facade = new Cache();
  facade.init(backend, { expire: 10, cacheStatusHeader: "X-Facade" });
  let runs = 0;
  const app = new Hono();
  app.get("/x", facade.cached(), (c) => {
    runs++;
    return c.text(`run ${runs}`);
  });
  const miss = await app.request("/x");
  assert.equal(miss.headers.get("x-facade"), "MISS");
  assert.equal(miss.headers.get("x-cache"), null);
  advance(9);
  assert.equal((await app.request("/x")).headers.get("x-facade"), "HIT");
  advance(2); // 11 s: past the default expire of 10
  const expired = await app.request("/x");
  assert.equal(expired.headers.get("x-facade"), "MISS");
  assert.equal(await expired.text(), "run 2");
  assert.equal(runs, 2);
});

Deno.test("facade: per-route options override init defaults", async () => {
  const { backend, advance } = clocked();
  const facade = new Cache();
  facade.init(backend, { expire: 10, cacheStatusHeader: "X-Facade" });
  let runs = 0;
  const app = new Hono();
  app.get(
    "/x",
    facade.cached({ expire: 100, cacheStatusHeader: "X-Route" }),
    (c) => {
      runs++;
      return c.text(`run ${runs}`);
    },
  );
  const miss = await app.request("/x");
  assert.equal(miss.headers.get("x-route"), "MISS");
  assert.equal(miss.headers.get("x-facade"), null);
  advance(50); // past the default 10 s, within the route's 100 s
  const hit = await app.request("/x");
  assert.equal(hit.headers.get("x-route"), "HIT");
  assert.equal(await hit.text(), "run 1");
  assert.equal(runs, 1);
});

Deno.test("facade: init rejects something that is not a backend with a TypeError", () => {
  const facade = new Cache();
  for (const bad of [undefined, null, {}, { readEntry() {} }]) {
    assert.throws(
      () => facade.init(bad as unknown as CacheBackend),
      (error: unknown) => {
        assert.ok(error instanceof TypeError);
        assert.match(error.message, /^[A-Z]/);
        assert.doesNotMatch(error.message, /\.$/);
        return true;
      },
    );
  }
  // Still uninitialised.
  assert.throws(() => facade.cached(), Error);
});

Deno.test("facade: invalid per-route options throw at factory time", () => {
  const facade = new Cache();
  facade.init(new MemoryBackend());
  assert.throws(() => facade.cached({ vary: ["*"] }), TypeError);
  assert.throws(() => facade.cached({ expire: 0 }), RangeError);
  assert.throws(() => facade.cached({ expire: -1 }), RangeError);
});
