// Issue 13 on the middleware side: mistakes fail loudly where they are made,
// analytics cookies do not defeat the cache, per-user keys can name the
// cookies that identify a user, and Cache-Status is there in app mode too.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { MemoryBackend } from "../../backends/memory.ts";
import type { CacheErrorContext } from "../../backends/types.ts";
import { cached } from "../../middleware/cached.ts";
import type { CachedOptions } from "../../middleware/types.ts";

/** An app with one cached route `/*` that counts its runs and echoes its cookie. */
function countingApp(options: CachedOptions): {
  app: Hono;
  runs(): number;
} {
  let runs = 0;
  const app = new Hono();
  app.all("/*", cached(options), (c) => {
    runs++;
    return c.text(`run ${runs} for ${c.req.header("cookie") ?? "nobody"}`);
  });
  return { app, runs: () => runs };
}

Deno.test("unknown cached() options: a typo is a TypeError that names the nearest valid option", () => {
  assert.throws(
    () => cached({ backend: new MemoryBackend(), expir: 60 } as CachedOptions),
    {
      name: "TypeError",
      message:
        'Cannot create cached middleware: unknown option "expir"; did you mean "expire"?',
    },
  );
});

Deno.test("unknown cached() options: other libraries' names for expire (ttl, maxAge) point to expire", () => {
  for (const name of ["ttl", "maxAge"]) {
    assert.throws(
      () =>
        cached(
          { backend: new MemoryBackend(), [name]: 60 } as CachedOptions,
        ),
      {
        name: "TypeError",
        message:
          `Cannot create cached middleware: unknown option "${name}"; did you mean "expire"?`,
      },
    );
  }
});

Deno.test("unknown cached() options: a name near none lists the valid options", () => {
  assert.throws(
    () =>
      cached(
        { backend: new MemoryBackend(), cacheName: "x" } as CachedOptions,
      ),
    (error: unknown) => {
      assert.ok(error instanceof TypeError);
      assert.match(
        error.message,
        /^Cannot create cached middleware: unknown option "cacheName": the options are backend, mode, /,
      );
      return true;
    },
  );
});

Deno.test("cached() on a POST route says once, through onError, that only GET and HEAD are cached", async () => {
  const reports: [string, CacheErrorContext][] = [];
  const { app, runs } = countingApp({
    backend: new MemoryBackend(),
    onError: (error, context) =>
      reports.push([(error as Error).message, context]),
  });
  for (let i = 0; i < 3; i++) {
    assert.equal((await app.request("/x", { method: "POST" })).status, 200);
  }
  assert.equal(runs(), 3);
  assert.equal(reports.length, 1);
  assert.equal(
    reports[0][0],
    "cached() on POST /x: only GET and HEAD are cached",
  );
  assert.equal(reports[0][1].operation, "method");
});

Deno.test("cached() on a GET route reports nothing about methods", async () => {
  const reports: string[] = [];
  const { app } = countingApp({
    backend: new MemoryBackend(),
    onError: (error) => reports.push((error as Error).message),
  });
  await app.request("/x");
  await app.request("/x");
  assert.deepEqual(reports, []);
});

Deno.test("any cookie bypasses by default, even an analytics one", async () => {
  const { app, runs } = countingApp({ backend: new MemoryBackend() });
  for (let i = 0; i < 2; i++) {
    const res = await app.request("/x", { headers: { cookie: "_ga=1" } });
    assert.equal(res.headers.get("x-cache"), "BYPASS");
  }
  assert.equal(runs(), 2);
});

Deno.test("ignoreCookies: ignored cookies, by name or pattern, neither bypass nor enter the key", async () => {
  const { app, runs } = countingApp({
    backend: new MemoryBackend(),
    ignoreCookies: ["_ga", /^_utm/],
  });
  const first = await app.request("/x", {
    headers: { cookie: "_ga=1; _utm_source=ad" },
  });
  const second = await app.request("/x", { headers: { cookie: "_ga=2" } });
  const third = await app.request("/x");
  assert.deepEqual(
    [first, second, third].map((res) => res.headers.get("x-cache")),
    ["MISS", "HIT", "HIT"],
  );
  assert.equal(runs(), 1);
});

Deno.test("ignoreCookies: a cookie not ignored still bypasses", async () => {
  const { app, runs } = countingApp({
    backend: new MemoryBackend(),
    ignoreCookies: ["_ga"],
  });
  for (let i = 0; i < 2; i++) {
    const res = await app.request("/x", {
      headers: { cookie: "_ga=1; session=abc" },
    });
    assert.equal(res.headers.get("x-cache"), "BYPASS");
  }
  assert.equal(runs(), 2);
});

Deno.test("perUser: { cookies } keys on the named cookies only: one user's entry never answers another", async () => {
  const { app, runs } = countingApp({
    backend: new MemoryBackend(),
    perUser: { cookies: ["session"] },
  });
  const alice = await app.request("/me", {
    headers: { cookie: "session=alice; _ga=1" },
  });
  const aliceAgain = await app.request("/me", {
    headers: { cookie: "_ga=2; session=alice" },
  });
  const bob = await app.request("/me", {
    headers: { cookie: "session=bob; _ga=1" },
  });
  assert.equal(alice.headers.get("x-cache"), "MISS");
  assert.equal(aliceAgain.headers.get("x-cache"), "HIT");
  assert.equal(await aliceAgain.text(), "run 1 for session=alice; _ga=1");
  assert.equal(bob.headers.get("x-cache"), "MISS");
  assert.equal(await bob.text(), "run 2 for session=bob; _ga=1");
  assert.equal(runs(), 2);
});

Deno.test("perUser and ignoreCookies are checked at construction", () => {
  assert.throws(
    () =>
      cached({
        backend: new MemoryBackend(),
        perUser: { cookies: "session" } as unknown as { cookies: string[] },
      }),
    {
      name: "TypeError",
      message:
        "Cannot create cached middleware: perUser must be a boolean or { cookies: [names of the cookies that identify a user] }: received an object with key cookies",
    },
  );
  assert.throws(
    () =>
      cached({
        backend: new MemoryBackend(),
        perUser: { cookies: ["session"], cookie: [] } as unknown as {
          cookies: string[];
        },
      }),
    {
      name: "TypeError",
      message:
        'Cannot create cached middleware: unknown option "perUser.cookie"; did you mean "perUser.cookies"?',
    },
  );
  assert.throws(
    () =>
      cached({
        backend: new MemoryBackend(),
        ignoreCookies: "_ga" as unknown as string[],
      }),
    { name: "TypeError" },
  );
});

Deno.test("Cache-Status in app mode: off by default, on with cacheStatus, named by a string", async () => {
  const plain = countingApp({ backend: new MemoryBackend() });
  assert.equal(
    (await plain.app.request("/x")).headers.get("cache-status"),
    null,
  );
  const named = countingApp({
    backend: new MemoryBackend(),
    cacheStatus: "edge-1",
  });
  const statuses = [];
  const requests: Record<string, string>[] = [{}, {}, { cookie: "s=1" }];
  for (const headers of requests) {
    statuses.push(
      (await named.app.request("/x", { headers })).headers.get("cache-status"),
    );
  }
  assert.deepEqual(statuses, [
    "edge-1; fwd=uri-miss; stored",
    "edge-1; hit",
    "edge-1; fwd=bypass",
  ]);
});

Deno.test("cacheStatus and mode are checked at construction", () => {
  assert.throws(
    () => cached({ backend: new MemoryBackend(), cacheStatus: "two words" }),
    { name: "TypeError" },
  );
  assert.throws(
    () =>
      cached({
        backend: new MemoryBackend(),
        mode: "shared" as unknown as "proxy",
      }),
    {
      name: "TypeError",
      message:
        'Cannot create cached middleware: mode must be "app" or "proxy": received "shared" (a string)',
    },
  );
  assert.throws(
    () =>
      cached({
        backend: new MemoryBackend(),
        mode: "proxy",
        cacheControl: "public, max-age=60",
      }),
    { name: "TypeError" },
  );
});
