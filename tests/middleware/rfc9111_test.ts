// RFC 9111 in cached()'s default mode: bodiless statuses, statuses it does
// not store, HEAD, Date, Age, Expires, invalid max-age, quoted directives,
// a client's no-cache across processes, and invalidation by unsafe methods.
// Each rule runs on memory, PGlite and the real server where it applies.
import assert from "node:assert/strict";
import { type Context, Hono } from "hono";
import { MemoryBackend } from "../../backends/memory.ts";
import type { CacheBackend } from "../../backends/types.ts";
import { cached } from "../../middleware/cached.ts";
import { parseCacheControl } from "../../middleware/_http.ts";
import type { CachedOptions } from "../../middleware/types.ts";
import { backendKinds } from "../_helpers.ts";

/** Registers the test `name` once per available backend kind. */
function onEveryBackend(
  name: string,
  fn: (backend: CacheBackend) => Promise<void>,
): void {
  for (const kind of backendKinds) {
    Deno.test({
      name: `${name}: ${kind.name}`,
      ignore: !kind.available,
      async fn() {
        const { backend, dispose } = await kind.open();
        try {
          await fn(backend);
        } finally {
          await dispose();
        }
      },
    });
  }
}

/**
 * An app whose route `/*` (all methods) is cached with `options` (writes
 * awaited) and answers through `respond`, counting its runs.
 */
function appWith(
  options: CachedOptions,
  respond: (c: Context, run: number) => Response | Promise<Response>,
): { app: Hono; runs(): number } {
  let runs = 0;
  const app = new Hono();
  app.all("/*", cached({ wait: true, ...options }), (c) => respond(c, ++runs));
  return { app, runs: () => runs };
}

/** Requests `url`; resolves to the response, its X-Cache and body text. */
async function send(
  app: Hono,
  url: string,
  init?: RequestInit,
): Promise<{ res: Response; cache: string | null; body: string }> {
  const res = await app.request(url, init);
  return { res, cache: res.headers.get("x-cache"), body: await res.text() };
}

/** An IMF-fixdate `seconds` from now. */
function httpDate(seconds: number, from = Date.now()): string {
  return new Date(from + seconds * 1000).toUTCString();
}

// --- G: statuses without a body -------------------------------------------

for (const status of [204, 205]) {
  onEveryBackend(
    `a ${status} listed in cacheableStatusCodes is stored and replayed without a body`,
    async (backend) => {
      const { app, runs } = appWith(
        { backend, cacheableStatusCodes: [200, status] },
        () => new Response(null, { status, headers: { "x-a": "1" } }),
      );
      const miss = await send(app, "/x");
      const hit = await send(app, "/x");
      assert.deepEqual([miss.res.status, miss.cache, miss.body], [
        status,
        "MISS",
        "",
      ]);
      assert.deepEqual([hit.res.status, hit.cache, hit.body], [
        status,
        "HIT",
        "",
      ]);
      assert.equal(hit.res.body, null);
      assert.equal(hit.res.headers.get("x-a"), "1");
      assert.equal(runs(), 1);
    },
  );
}

// --- I: statuses cached() does not store ----------------------------------

/** A loopback origin answering every request with `status` and "odd". */
function oddOrigin(status: number): { url: string; close(): void } {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const reply = new TextEncoder().encode(
    `HTTP/1.1 ${status} Odd\r\ncontent-length: 3\r\nconnection: close\r\n\r\nodd`,
  );
  (async () => {
    for await (const conn of listener) {
      (async () => {
        try {
          await conn.read(new Uint8Array(8192));
          await conn.write(reply);
        } finally {
          conn.close();
        }
      })();
    }
  })().catch(() => {});
  const port = (listener.addr as Deno.NetAddr).port;
  return { url: `http://127.0.0.1:${port}/`, close: () => listener.close() };
}

onEveryBackend(
  "a status above 599 from an origin passes through cached() untouched, as without it",
  async (backend) => {
    const origin = oddOrigin(600);
    try {
      const app = new Hono();
      app.use("/x", cached({ backend, wait: true }));
      app.get("/x", () => fetch(origin.url));
      const plain = new Hono();
      plain.get("/x", () => fetch(origin.url));
      const expected = await send(plain, "/x");
      for (let round = 0; round < 2; round++) {
        const got = await send(app, "/x");
        assert.deepEqual([got.res.status, got.body], [
          expected.res.status,
          expected.body,
        ]);
        assert.equal(got.res.status, 600);
      }
    } finally {
      origin.close();
    }
  },
);

onEveryBackend(
  "a status 299 that is not listed passes through with its body and is not stored",
  async (backend) => {
    const { app, runs } = appWith(
      { backend },
      (_, run) => new Response(`odd ${run}`, { status: 299 }),
    );
    const first = await send(app, "/x");
    const second = await send(app, "/x");
    assert.deepEqual([first.res.status, first.body], [299, "odd 1"]);
    assert.deepEqual([second.res.status, second.body], [299, "odd 2"]);
    assert.equal(runs(), 2);
  },
);

// --- F: HEAD --------------------------------------------------------------

onEveryBackend(
  "a HEAD miss never creates the GET entry: the next GET gets the whole body",
  async (backend) => {
    const { app, runs } = appWith({ backend }, (c, run) =>
      // Like a proxying route: the origin answers HEAD without a body.
      c.req.raw.method === "HEAD"
        ? new Response(null, { headers: { "content-type": "text/plain" } })
        : c.text(`full body ${run}`));
    const head = await send(app, "/x", { method: "HEAD" });
    assert.equal(head.body, "");
    const get = await send(app, "/x");
    assert.equal(get.body, "full body 2");
    assert.equal(get.cache, "MISS");
    const hit = await send(app, "/x");
    assert.deepEqual([hit.cache, hit.body], ["HIT", "full body 2"]);
    assert.equal(runs(), 2);
  },
);

onEveryBackend(
  "a HEAD never shrinks a stored GET entry",
  async (backend) => {
    const { app } = appWith(
      { backend, honorRequestCacheControl: true },
      (c, run) =>
        c.req.raw.method === "HEAD"
          ? new Response(null)
          : c.text(`full body ${run}`),
    );
    assert.equal((await send(app, "/x")).body, "full body 1");
    await send(app, "/x", {
      method: "HEAD",
      headers: { "cache-control": "no-cache" },
    });
    const hit = await send(app, "/x");
    assert.deepEqual([hit.cache, hit.body], ["HIT", "full body 1"]);
  },
);

// --- E: Date --------------------------------------------------------------

onEveryBackend("a hit replays the stored Date", async (backend) => {
  const date = httpDate(-5);
  const { app } = appWith(
    { backend },
    (c) => c.text("dated", 200, { date }),
  );
  const miss = await send(app, "/x");
  const hit = await send(app, "/x");
  assert.equal(hit.cache, "HIT");
  assert.equal(miss.res.headers.get("date"), date);
  assert.equal(hit.res.headers.get("date"), date);
});

onEveryBackend(
  "a response without Date is stored with the Date of its miss, replayed on hits",
  async (backend) => {
    const { app } = appWith({ backend }, (c) => c.text("undated"));
    const miss = await send(app, "/x");
    const date = miss.res.headers.get("date");
    assert.ok(date && !Number.isNaN(Date.parse(date)), String(date));
    const hit = await send(app, "/x");
    assert.equal(hit.cache, "HIT");
    assert.equal(hit.res.headers.get("date"), date);
  },
);

// --- B: Age ---------------------------------------------------------------

onEveryBackend(
  "a response that arrives already stale by its Age is not stored",
  async (backend) => {
    const { app, runs } = appWith(
      { backend },
      (c, run) =>
        c.text(`run ${run}`, 200, {
          "cache-control": "max-age=3600",
          age: "7200",
        }),
    );
    await send(app, "/x");
    const second = await send(app, "/x");
    assert.equal(second.body, "run 2");
    assert.equal(runs(), 2);
  },
);

onEveryBackend(
  "a hit's Age is the received Age plus the time resident",
  async (backend) => {
    const { app } = appWith({ backend }, (c) =>
      c.text("aged", 200, {
        "cache-control": "max-age=3600",
        age: "100",
      }));
    const miss = await send(app, "/x");
    assert.equal(miss.res.headers.get("age"), "100");
    const hit = await send(app, "/x");
    assert.equal(hit.cache, "HIT");
    const age = Number(hit.res.headers.get("age"));
    assert.ok(age >= 100 && age <= 102, String(age));
  },
);

Deno.test("a hit's Age grows with the time resident on top of the received Age", async () => {
  let now = 1_700_000_000_000;
  const backend = new MemoryBackend({ now: () => now });
  const { app } = appWith(
    { backend },
    (c) => c.text("aged", 200, { "cache-control": "max-age=3600", age: "100" }),
  );
  await send(app, "/x");
  now += 30_000;
  const hit = await send(app, "/x");
  assert.equal(hit.res.headers.get("age"), "130");
});

// --- A: Expires -----------------------------------------------------------

Deno.test("freshness comes from Expires - Date when there is no max-age", async () => {
  let now = 1_700_000_000_000;
  const backend = new MemoryBackend({ now: () => now });
  const { app, runs } = appWith(
    { backend },
    (c, run) =>
      c.text(`run ${run}`, 200, {
        date: httpDate(0, now),
        expires: httpDate(300, now),
      }),
  );
  await send(app, "/x");
  now += 200_000; // past the 60 s default, within Expires
  assert.equal((await send(app, "/x")).cache, "HIT");
  now += 101_000;
  assert.equal((await send(app, "/x")).body, "run 2");
  assert.equal(runs(), 2);
});

for (
  const [rule, expires] of [
    ["an Expires in the past", httpDate(-10)],
    ['an invalid Expires "0"', "0"],
    ["an Expires with a 2-digit year", "Sunday, 06-Nov-94 08:49:37 GMT"],
    ["an Expires in a zone other than GMT", "Sun, 06 Nov 2044 08:49:37 +0100"],
  ]
) {
  onEveryBackend(
    `${rule} means already expired: the response is not stored`,
    async (backend) => {
      const { app, runs } = appWith(
        { backend },
        (c, run) => c.text(`run ${run}`, 200, { expires }),
      );
      await send(app, "/x");
      assert.equal((await send(app, "/x")).body, "run 2");
      assert.equal(runs(), 2);
    },
  );
}

onEveryBackend(
  "expire rules over an Expires in the past",
  async (backend) => {
    const { app, runs } = appWith(
      { backend, expire: 60 },
      (c, run) => c.text(`run ${run}`, 200, { expires: httpDate(-10) }),
    );
    await send(app, "/x");
    assert.equal((await send(app, "/x")).cache, "HIT");
    assert.equal(runs(), 1);
  },
);

// --- C: invalid max-age ---------------------------------------------------

for (
  const value of [
    "max-age=-1",
    'max-age="3600"',
    "max-age=12abc",
    "s-maxage=-5, max-age=3600",
  ]
) {
  onEveryBackend(
    `an invalid delta-seconds (${value}) means stale: not stored, not the 60 s default`,
    async (backend) => {
      const { app, runs } = appWith(
        { backend },
        (c, run) => c.text(`run ${run}`, 200, { "cache-control": value }),
      );
      await send(app, "/x");
      assert.equal((await send(app, "/x")).body, "run 2");
      assert.equal(runs(), 2);
    },
  );
}

// --- J: quoted directive values -------------------------------------------

Deno.test("a quoted directive value with commas is one directive", () => {
  const directives = parseCacheControl(
    'no-cache="set-cookie, x-a", max-age=60, x-ext="a, \\"b, c\\"", public',
  );
  assert.deepEqual([...directives.keys()], [
    "no-cache",
    "max-age",
    "x-ext",
    "public",
  ]);
  assert.equal(directives.get("max-age"), "60");
});

onEveryBackend(
  'a directive named inside a quoted value (x-ext="a, no-store") does not apply',
  async (backend) => {
    const { app, runs } = appWith(
      { backend },
      (c, run) =>
        c.text(`run ${run}`, 200, {
          "cache-control": 'max-age=600, x-ext="a, no-store, b"',
        }),
    );
    await send(app, "/x");
    assert.equal((await send(app, "/x")).cache, "HIT");
    assert.equal(runs(), 1);
  },
);

// --- H: a client's no-cache -----------------------------------------------

onEveryBackend(
  "a client's no-cache, honoured, never gets a HIT, even through the cross-process lock",
  async (backend) => {
    const { app, runs } = appWith(
      { backend, honorRequestCacheControl: true },
      (c, run) => c.text(`run ${run}`),
    );
    assert.equal((await send(app, "/x")).cache, "MISS");
    const fresh = await send(app, "/x", {
      headers: { "cache-control": "no-cache" },
    });
    assert.notEqual(fresh.cache, "HIT");
    assert.equal(fresh.body, "run 2");
    assert.equal(runs(), 2);
  },
);

// --- D: unsafe methods invalidate -----------------------------------------

for (const method of ["POST", "PUT", "DELETE", "PATCH", "PURGE-ME"]) {
  onEveryBackend(
    `a ${method} answered without error invalidates the stored entry of its URL`,
    async (backend) => {
      const { app, runs } = appWith(
        { backend },
        (c, run) => c.text(`run ${run}`),
      );
      await send(app, "/api/item?b=2&a=1");
      assert.equal((await send(app, "/api/item?a=1&b=2")).cache, "HIT");
      const unsafe = await send(app, "/api/item?a=1&b=2", { method });
      assert.equal(unsafe.cache, null); // it passes through untouched
      const after = await send(app, "/api/item?b=2&a=1");
      assert.deepEqual([after.cache, after.body], ["MISS", "run 3"]);
      assert.equal(runs(), 3);
    },
  );
}

onEveryBackend(
  "an unsafe method through app.use() invalidates, and an error answer does not",
  async (backend) => {
    let version = 1;
    const app = new Hono();
    app.use("/api/*", cached({ backend, wait: true }));
    app.get("/api/doc", (c) => c.text(`v${version}`));
    app.put("/api/doc", (c) => {
      if (c.req.header("x-fail")) return c.text("rejected", 409);
      version++;
      return c.body(null, 204);
    });
    assert.equal((await send(app, "/api/doc")).body, "v1");
    await send(app, "/api/doc", { method: "PUT", headers: { "x-fail": "1" } });
    assert.deepEqual(
      [(await send(app, "/api/doc")).cache, (await send(app, "/api/doc")).body],
      ["HIT", "v1"],
    );
    await send(app, "/api/doc", { method: "PUT" });
    const after = await send(app, "/api/doc");
    assert.deepEqual([after.cache, after.body], ["MISS", "v2"]);
  },
);

onEveryBackend(
  "an unsafe method invalidates same-origin Location and Content-Location, not other origins'",
  async (backend) => {
    const { app } = appWith({ backend }, (c, run) => {
      if (c.req.method !== "POST") return c.text(`run ${run}`);
      return c.text("created", 201, {
        location: "/items/1",
        "content-location": "http://localhost/items/2",
      });
    });
    const other = await send(app, "/items/3");
    for (const path of ["/items/1", "/items/2", "/items/3"]) {
      await send(app, path);
      assert.equal((await send(app, path)).cache, "HIT", path);
    }
    assert.equal(other.cache, "MISS");
    const post = await app.request("/items", { method: "POST" });
    await post.body?.cancel();
    assert.equal((await send(app, "/items/1")).cache, "MISS");
    assert.equal((await send(app, "/items/2")).cache, "MISS");
    assert.equal((await send(app, "/items/3")).cache, "HIT");
  },
);

onEveryBackend(
  "a Location on another origin invalidates nothing of this one",
  async (backend) => {
    const { app } = appWith(
      { backend },
      (c, run) =>
        c.req.method === "POST"
          ? c.text("moved", 201, { location: "http://elsewhere.test/items/1" })
          : c.text(`run ${run}`),
    );
    await send(app, "/items/1");
    const post = await app.request("/items", { method: "POST" });
    await post.body?.cancel();
    assert.equal((await send(app, "/items/1")).cache, "HIT");
  },
);
