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

Deno.test("facade: cache.wrap(fn) caches results per arguments: the same arguments run fn once, others run it again", async () => {
  const appCache = new Cache();
  appCache.init(new MemoryBackend());
  let runs = 0;
  async function findUser(id: number, options: { full: boolean }) {
    runs++;
    return await Promise.resolve({ id, full: options.full, run: runs });
  }
  const cachedUser = appCache.wrap(findUser, { expire: 60 });
  assert.equal(cachedUser.name, "findUser");
  const first = await cachedUser(1, { full: true });
  assert.deepEqual(first, { id: 1, full: true, run: 1 });
  assert.deepEqual(await cachedUser(1, { full: true }), first);
  assert.equal(runs, 1);
  await cachedUser(1, { full: false });
  await cachedUser(2, { full: true });
  assert.equal(runs, 3);
});

Deno.test("facade: wrap's default key is a SHA-256 of the name and the arguments, object keys sorted", async () => {
  const backend = new MemoryBackend();
  const appCache = new Cache();
  appCache.init(backend);
  let runs = 0;
  function search(query: Record<string, unknown>) {
    runs++;
    return { hits: Object.keys(query).length };
  }
  const cachedSearch = appCache.wrap(search);
  await cachedSearch({ a: 1, b: { y: 2, x: 1 } });
  await cachedSearch({ b: { x: 1, y: 2 }, a: 1 });
  assert.equal(runs, 1);
  const json = JSON.stringify(["search", [{ a: 1, b: { x: 1, y: 2 } }]]);
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(json)),
  );
  const hex = Array.from(digest, (b) => b.toString(16).padStart(2, "0"))
    .join("");
  assert.deepEqual(await backend.get(`wrap:search:${hex}`), { hits: 2 });
});

Deno.test("facade: wrap with key and tags stores under that key with those tags", async () => {
  const backend = new MemoryBackend();
  const appCache = new Cache();
  appCache.init(backend);
  const cachedOrder = appCache.wrap(
    (id: number, userId: number) => ({ id, userId }),
    { key: (id) => `order:${id}`, tags: (_id, userId) => [`user:${userId}`] },
  );
  assert.deepEqual(await cachedOrder(7, 42), { id: 7, userId: 42 });
  assert.deepEqual(await backend.get("order:7"), { id: 7, userId: 42 });
  assert.equal(await backend.invalidateTags(["user:42"]), 1);
});

Deno.test("facade: wrap of a function without a name and no key is a TypeError", () => {
  const appCache = new Cache();
  appCache.init(new MemoryBackend());
  assert.throws(() => appCache.wrap((x: number) => x), {
    name: "TypeError",
    message:
      "Cannot wrap function: an anonymous function needs options.key, or a name",
  });
});

Deno.test("facade: wrap rejects unknown options with the nearest valid one, and arguments the default key cannot encode", async () => {
  const appCache = new Cache();
  appCache.init(new MemoryBackend());
  function load(x: unknown) {
    return String(x);
  }
  assert.throws(
    // @ts-expect-error: expires is not an option
    () => appCache.wrap(load, { expires: 5 }),
    {
      name: "TypeError",
      message:
        'Cannot wrap function: unknown option "expires"; did you mean "expire"?',
    },
  );
  assert.throws(() => appCache.wrap(load, { expire: -1 }), RangeError);
  await assert.rejects(appCache.wrap(load)(new Map()), {
    name: "TypeError",
    message:
      "Cannot call load: an argument is Map, which has no stable JSON form for the default key: pass options.key to wrap()",
  });
});

Deno.test("facade: a wrapped function passes fn's error through, and runs fn when the backend is down", async () => {
  const appCache = new Cache();
  const down = () => Promise.reject(new Error("store down"));
  const failing = Object.assign(new MemoryBackend(), {
    lookup: down,
    readEntry: down,
    writeEntry: down,
  });
  appCache.init(failing);
  const original = console.error;
  const lines: unknown[] = [];
  console.error = (line: unknown) => void lines.push(line);
  try {
    let runs = 0;
    const compute = appCache.wrap(function compute(n: number) {
      runs++;
      if (n < 0) throw new RangeError("negative");
      return n * 2;
    });
    assert.equal(await compute(2), 4);
    assert.equal(await compute(2), 4);
    assert.equal(runs, 2);
    await assert.rejects(compute(-1), RangeError);
    assert.ok(lines.length >= 1, "the failures were reported");
  } finally {
    console.error = original;
  }
});
