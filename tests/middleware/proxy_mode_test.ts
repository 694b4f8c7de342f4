// cached({ mode: "proxy" }), part one: its options, the methods it stores,
// and how old a stored response is (RFC 9111 §4.2.3). The handler plays the
// origin: each test writes the response headers it answers with. Time passes
// through Date, Age and Expires in the past, not through sleeps. What is
// stored (§3) is in proxy_storing_test.ts, serving (§4) in
// proxy_serving_test.ts, a real origin behind hono/proxy in
// proxy_origin_test.ts.
import assert from "node:assert/strict";
import { MemoryBackend } from "../../backends/memory.ts";
import { cached } from "../../middleware/cached.ts";
import {
  answer,
  assertBetween,
  assertHit,
  httpDate,
  proxyApp,
  rule,
  send,
  sendWith,
  stored,
  TAG,
  ttlOf,
  validated,
} from "./_proxy_harness.ts";

// --- Options --------------------------------------------------------------

Deno.test("proxy mode: cacheControl is rejected with a TypeError: the origin's headers rule", () => {
  assert.throws(
    () =>
      cached({
        backend: new MemoryBackend(),
        mode: "proxy",
        cacheControl: "public, max-age=60",
      }),
    TypeError,
  );
});

rule("Cache-Status is on by default, named cachekit", async (backend) => {
  const { app } = proxyApp(
    { backend },
    answer({ "cache-control": "max-age=60" }),
  );
  const miss = await send(app, "/x");
  assert.equal(miss.cache, "MISS");
  assert.equal(miss.cacheStatus, "cachekit; fwd=uri-miss; stored");
}, true);

rule(
  'cacheStatus: "edge" names our Cache-Status member edge',
  async (backend) => {
    const { app } = proxyApp(
      { backend, cacheStatus: "edge" },
      answer({ "cache-control": "max-age=60" }),
    );
    assert.equal(
      (await send(app, "/x")).cacheStatus,
      "edge; fwd=uri-miss; stored",
    );
    assert.match(
      (await send(app, "/x")).cacheStatus ?? "",
      /^edge; hit; ttl=\d+$/,
    );
  },
  true,
);

rule(
  "cacheStatus: false sends no Cache-Status; X-Cache stays",
  async (backend) => {
    const { app } = proxyApp(
      { backend, cacheStatus: false },
      answer({ "cache-control": "max-age=60" }),
    );
    const miss = await send(app, "/x");
    const hit = await send(app, "/x");
    assert.deepEqual([miss.cacheStatus, hit.cacheStatus], [null, null]);
    assert.deepEqual([miss.cache, hit.cache], ["MISS", "HIT"]);
  },
  true,
);

rule(
  "cacheStatusHeader names the X-Cache header, and false removes it",
  async (backend) => {
    const named = proxyApp(
      { backend, cacheStatusHeader: "X-Proxy-Cache" },
      answer({ "cache-control": "max-age=60" }),
    );
    await send(named.app, "/x");
    const hit = await send(named.app, "/x");
    assert.equal(hit.res.headers.get("x-proxy-cache"), "HIT");
    assert.equal(hit.cache, null);
    const none = proxyApp(
      { backend, cacheStatusHeader: false },
      answer({ "cache-control": "max-age=60" }),
    );
    await send(none.app, "/y");
    const quiet = await send(none.app, "/y");
    assert.equal(quiet.cache, null);
    assert.match(quiet.cacheStatus ?? "", /^cachekit; hit; ttl=\d+$/);
  },
  true,
);

rule(
  "a response with no freshness and no validator is not stored without expire",
  async (backend) => {
    const { app, runs } = proxyApp({ backend }, answer({}));
    const first = await send(app, "/x");
    assert.equal(stored(first), false);
    assert.equal((await send(app, "/x")).body, "run 2");
    assert.equal(runs(), 2);
  },
);

rule(
  "expire gives freshness to a response that carries none",
  async (backend) => {
    const { app, runs } = proxyApp({ backend, expire: 60 }, answer({}));
    assert.equal(stored(await send(app, "/x")), true);
    const hit = await send(app, "/x");
    assertBetween(assertHit(hit), 55, 60, "ttl");
    assert.equal(hit.body, "run 1");
    assert.equal(runs(), 1);
  },
);

rule(
  "expire does not override an Expires in the past: not stored",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend, expire: 60 },
      answer({ expires: httpDate(-10) }),
    );
    await send(app, "/x");
    assert.equal((await send(app, "/x")).body, "run 2");
    assert.equal(runs(), 2);
  },
);

rule(
  "expire does not override a heuristic freshness: stale by it, revalidated",
  async (backend) => {
    const lastModified = httpDate(-1000); // heuristic lifetime 100 s
    const { app, runs, seen } = proxyApp(
      { backend, expire: 3600 },
      (request, run) =>
        request.headers.get("if-modified-since") === lastModified
          ? new Response(null, { status: 304 })
          : new Response(`run ${run}`, {
            headers: { "last-modified": lastModified, age: "200" },
          }),
    );
    await send(app, "/x");
    const second = await send(app, "/x");
    assert.equal(second.cache, "REVALIDATED");
    assert.equal(second.body, "run 1");
    assert.equal(seen[1].headers.get("if-modified-since"), lastModified);
    assert.equal(runs(), 2);
  },
);

const DEFAULT_STATUSES = [
  200,
  203,
  204,
  300,
  301,
  302,
  307,
  308,
  404,
  405,
  410,
  414,
  451,
  501,
];

/** An origin answering the status its path names, with `max-age=60`. */
const byPath = (status: number, run: number) =>
  new Response(status === 204 ? null : `run ${run}`, {
    status,
    headers: { "cache-control": "max-age=60" },
  });

rule(
  "every status of the default cacheableStatusCodes is stored with max-age",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      (request, run) =>
        byPath(Number(new URL(request.url).pathname.slice(1)), run),
    );
    for (const status of DEFAULT_STATUSES) {
      await send(app, `/${status}`);
      const hit = await send(app, `/${status}`);
      assert.deepEqual(
        [hit.status, hit.cache],
        [status, "HIT"],
        String(status),
      );
    }
    assert.equal(runs(), DEFAULT_STATUSES.length);
  },
);

rule(
  "statuses outside the default list (201, 202, 206, 303, 400, 403, 500, 502, 503, 504) are not stored",
  async (backend) => {
    const statuses = [201, 202, 206, 303, 400, 403, 500, 502, 503, 504];
    const { app, runs } = proxyApp(
      { backend },
      (request, run) =>
        byPath(Number(new URL(request.url).pathname.slice(1)), run),
    );
    for (const status of statuses) {
      const first = await send(app, `/${status}`);
      assert.equal(stored(first), false, String(status));
      const second = await send(app, `/${status}`);
      assert.notEqual(second.cache, "HIT", String(status));
    }
    assert.equal(runs(), statuses.length * 2);
  },
);

rule("cacheableStatusCodes replaces the default list", async (backend) => {
  const { app, runs } = proxyApp(
    { backend, cacheableStatusCodes: [200] },
    answer({ "cache-control": "max-age=60" }, "gone", 404),
  );
  await send(app, "/x");
  assert.equal((await send(app, "/x")).status, 404);
  assert.equal(runs(), 2);
}, true);

rule(
  "a body over maxBodySize passes intact and is not stored",
  async (backend) => {
    const big = "x".repeat(100);
    const { app, runs } = proxyApp(
      { backend, maxBodySize: 16 },
      answer({ "cache-control": "max-age=60" }, big),
    );
    const first = await send(app, "/x");
    assert.equal(first.body, big);
    assert.equal(stored(first), false);
    assert.equal((await send(app, "/x")).body, big);
    assert.equal(runs(), 2);
  },
);

rule(
  "the vary option keys a request header the response does not name",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend, vary: "x-tenant" },
      (request) =>
        new Response(`tenant ${request.headers.get("x-tenant")}`, {
          headers: { "cache-control": "max-age=60" },
        }),
    );
    await sendWith(app, "/x", { "x-tenant": "a" });
    assert.equal(
      (await sendWith(app, "/x", { "x-tenant": "b" })).body,
      "tenant b",
    );
    const a = await sendWith(app, "/x", { "x-tenant": "a" });
    assert.deepEqual([a.cache, a.body], ["HIT", "tenant a"]);
    assert.equal(runs(), 2);
  },
);

rule("tags label entries: invalidateTags removes them", async (backend) => {
  const { app, runs } = proxyApp(
    { backend, tags: ["pages"] },
    answer({ "cache-control": "max-age=60" }),
  );
  await send(app, "/x");
  assert.equal((await send(app, "/x")).cache, "HIT");
  assert.ok(backend.invalidateTags, "the backend keeps tags");
  await backend.invalidateTags(["pages"]);
  const after = await send(app, "/x");
  assert.deepEqual([after.cache, after.body], ["MISS", "run 2"]);
  assert.equal(runs(), 2);
});

// --- Storing: methods -----------------------------------------------------

rule(
  "only GET responses are stored: after a POST, the GET is a MISS",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=60" }),
    );
    await send(app, "/x", { method: "POST" });
    const get = await send(app, "/x");
    assert.deepEqual([get.cache, get.body], ["MISS", "run 2"]);
    assert.equal(runs(), 2);
  },
);

rule(
  "a HEAD is answered from a fresh GET entry, without a body",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=60" }),
    );
    await send(app, "/x");
    const head = await send(app, "/x", { method: "HEAD" });
    assert.deepEqual([head.status, head.cache, head.body], [200, "HIT", ""]);
    assert.equal(runs(), 1);
  },
);

rule(
  "a HEAD without a GET entry is forwarded and never stored",
  async (backend) => {
    const { app, runs, seen } = proxyApp(
      { backend },
      (request, run) =>
        new Response(request.method === "HEAD" ? null : `run ${run}`, {
          headers: { "cache-control": "max-age=60" },
        }),
    );
    const head = await send(app, "/x", { method: "HEAD" });
    assert.equal(seen[0].method, "HEAD");
    assert.equal(stored(head), false);
    const get = await send(app, "/x");
    assert.deepEqual([get.cache, get.body], ["MISS", "run 2"]);
    assert.equal((await send(app, "/x")).body, "run 2");
    assert.equal(runs(), 2);
  },
);

// --- Age ------------------------------------------------------------------

rule("a hit's Age is the received Age, in integer seconds", async (backend) => {
  const { app } = proxyApp(
    { backend },
    answer({ "cache-control": "max-age=3600", age: "100" }),
  );
  await send(app, "/x");
  const hit = await send(app, "/x");
  assertBetween(assertHit(hit), 3495, 3500, "ttl");
  assert.match(hit.res.headers.get("age") ?? "", /^\d+$/);
  assertBetween(Number(hit.res.headers.get("age")), 100, 105, "Age");
});

rule(
  "a hit's Age counts from Date when no Age arrived (apparent age)",
  async (backend) => {
    const { app } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=3600", date: httpDate(-100) }),
    );
    await send(app, "/x");
    const hit = await send(app, "/x");
    assertBetween(Number(hit.res.headers.get("age")), 100, 105, "Age");
    assertBetween(ttlOf(hit.cacheStatus), 3495, 3500, "ttl");
  },
);

rule(
  "a hit's Age is the larger of the apparent age and the received Age",
  async (backend) => {
    const { app } = proxyApp(
      { backend },
      (request, run) => {
        const path = new URL(request.url).pathname;
        return new Response(`run ${run}`, {
          headers: {
            "cache-control": "max-age=3600",
            date: httpDate(path === "/old-date" ? -200 : -50),
            age: "100",
          },
        });
      },
    );
    for (
      const [path, low] of [["/old-date", 200], ["/old-age", 100]] as const
    ) {
      await send(app, path);
      const hit = await send(app, path);
      assert.equal(hit.cache, "HIT", path);
      assertBetween(Number(hit.res.headers.get("age")), low, low + 5, path);
    }
  },
);

rule("a hit's Age grows with the time resident", async (backend) => {
  const { app } = proxyApp(
    { backend },
    answer({ "cache-control": "max-age=3600", age: "100" }),
  );
  await send(app, "/x");
  // A real wait: resident time is the cache's own clock, and one second is
  // the smallest step Age shows.
  await new Promise((resolve) => setTimeout(resolve, 1100));
  const hit = await send(app, "/x");
  assertBetween(Number(hit.res.headers.get("age")), 101, 106, "Age");
});

for (
  const [what, headers] of [
    ["Age equal to max-age", { "cache-control": "max-age=60", age: "60" }],
    ["Age above max-age", { "cache-control": "max-age=60", age: "100" }],
    ["a Date older than max-age", {
      "cache-control": "max-age=60",
      date: httpDate(-100),
    }],
  ] as const
) {
  rule(
    `a response with ${what} is stale on arrival: without a validator not stored`,
    async (backend) => {
      const { app, runs } = proxyApp({ backend }, answer(headers));
      assert.equal(stored(await send(app, "/x")), false);
      assert.equal((await send(app, "/x")).body, "run 2");
      assert.equal(runs(), 2);
    },
  );
  rule(
    `a response with ${what} is stale on arrival: with a validator stored and revalidated`,
    async (backend) => {
      const { app, runs, seen } = proxyApp({ backend }, validated(headers));
      assert.equal(stored(await send(app, "/x")), true);
      const second = await send(app, "/x");
      assert.deepEqual([second.cache, second.body], ["REVALIDATED", "run 1"]);
      assert.equal(seen[1].headers.get("if-none-match"), TAG);
      assert.equal(runs(), 2);
    },
  );
}

rule("a hit replays the stored Date", async (backend) => {
  const date = httpDate(-5);
  const { app } = proxyApp(
    { backend },
    answer({ "cache-control": "max-age=60", date }),
  );
  await send(app, "/x");
  const hit = await send(app, "/x");
  assert.equal(hit.cache, "HIT");
  assert.equal(hit.res.headers.get("date"), date);
});
