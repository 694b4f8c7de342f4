// cached({ mode: "proxy" }), part three: how stored responses are served
// (RFC 9111 §4, RFC 9211 Cache-Status): hits, Vary, the request's directives,
// client conditionals, invalidation by unsafe methods, concurrency, and a
// database that is down. The handler plays the origin; time passes through
// Age in the past. Revalidation and stale answers: proxy_revalidation_test.ts.
import assert from "node:assert/strict";
import { PostgresBackend } from "../../backends/postgres.ts";
import {
  answer,
  assertBetween,
  assertHit,
  assertStale,
  members,
  ours,
  proxyApp,
  rule,
  send,
  sendWith,
  STALE_BY_40,
  stored,
  TAG,
  until,
  validated,
} from "./_proxy_harness.ts";

// --- Hits and Cache-Status ------------------------------------------------

rule(
  "a fresh entry is a HIT: cachekit; hit; ttl=<remaining seconds>",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=600" }),
    );
    const miss = await send(app, "/x");
    assert.deepEqual([miss.cache, miss.cacheStatus], [
      "MISS",
      "cachekit; fwd=uri-miss; stored",
    ]);
    const hit = await send(app, "/x");
    assertBetween(assertHit(hit), 595, 600, "ttl");
    assert.equal(hit.body, "run 1");
    assert.equal(runs(), 1);
  },
);

rule(
  "a miss that is not stored says fwd=uri-miss without stored",
  async (backend) => {
    const { app } = proxyApp(
      { backend },
      answer({ "cache-control": "no-store" }),
    );
    const miss = await send(app, "/x");
    assert.match(miss.cacheStatus ?? "", /^cachekit; fwd=uri-miss(;|$)/);
    assert.equal(stored(miss), false);
  },
  true,
);

rule(
  "an upstream Cache-Status is kept and ours is appended as the last member",
  async (backend) => {
    const { app } = proxyApp(
      { backend },
      answer({
        "cache-control": "max-age=60",
        "cache-status": "origin-cache; hit",
      }),
    );
    const miss = await send(app, "/x");
    assert.equal(
      miss.cacheStatus,
      "origin-cache; hit, cachekit; fwd=uri-miss; stored",
    );
    const hit = await send(app, "/x");
    const [upstream, ...rest] = members(hit.cacheStatus);
    assert.equal(upstream.name, "origin-cache");
    assert.equal(rest.length, 1, `Cache-Status ${hit.cacheStatus}`);
    assertHit({ ...hit, cacheStatus: hit.cacheStatus!.split(", ")[1] });
  },
  true,
);

// --- Vary -----------------------------------------------------------------

/** An origin that answers in the request's Accept-Language, varying on it. */
const byLanguage = (request: Request, run: number): Response =>
  new Response(`${request.headers.get("accept-language")} run ${run}`, {
    headers: { "cache-control": "max-age=60", vary: "Accept-Language" },
  });

rule(
  "Vary: other values of the named header are a vary-miss, stored alongside; both variants hit",
  async (backend) => {
    const { app, runs } = proxyApp({ backend }, byLanguage);
    const en = { "accept-language": "en" };
    const fr = { "accept-language": "fr" };
    assert.equal(
      (await sendWith(app, "/x", en)).cacheStatus,
      "cachekit; fwd=uri-miss; stored",
    );
    const frMiss = await sendWith(app, "/x", fr);
    assert.deepEqual([frMiss.cache, frMiss.cacheStatus, frMiss.body], [
      "MISS",
      "cachekit; fwd=vary-miss; stored",
      "fr run 2",
    ]);
    const enHit = await sendWith(app, "/x", en);
    const frHit = await sendWith(app, "/x", fr);
    assertHit(enHit);
    assertHit(frHit);
    assert.deepEqual([enHit.body, frHit.body], ["en run 1", "fr run 2"]);
    assert.equal(runs(), 2);
  },
);

rule(
  "Vary may name any request header, without the vary option; an absent header is a value",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      (request, run) =>
        new Response(`${request.headers.get("x-variant")} run ${run}`, {
          headers: { "cache-control": "max-age=60", vary: "X-Variant" },
        }),
    );
    await send(app, "/x");
    const a = await sendWith(app, "/x", { "x-variant": "a" });
    assert.deepEqual([a.cacheStatus, a.body], [
      "cachekit; fwd=vary-miss; stored",
      "a run 2",
    ]);
    assert.equal((await send(app, "/x")).body, "null run 1");
    assert.equal(
      (await sendWith(app, "/x", { "x-variant": "a" })).cache,
      "HIT",
    );
    assert.equal(runs(), 2);
  },
);

rule(
  "Vary on two headers: a request must match both to hit",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({
        "cache-control": "max-age=60",
        vary: "Accept-Language, X-Variant",
      }),
    );
    await sendWith(app, "/x", { "accept-language": "en", "x-variant": "a" });
    const half = await sendWith(app, "/x", {
      "accept-language": "en",
      "x-variant": "b",
    });
    assert.equal(half.body, "run 2");
    const both = await sendWith(app, "/x", {
      "accept-language": "en",
      "x-variant": "a",
    });
    assert.deepEqual([both.cache, both.body], ["HIT", "run 1"]);
    assert.equal(runs(), 2);
  },
);

// --- The request's directives ---------------------------------------------

rule(
  "a request's no-store is forwarded and leaves the stored entry alone",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=60" }),
    );
    await send(app, "/x");
    const forwarded = await sendWith(app, "/x", {
      "cache-control": "no-store",
    });
    assert.equal(forwarded.body, "run 2");
    assert.deepEqual([(await send(app, "/x")).body, runs()], ["run 1", 2]);
  },
);

rule(
  "a request's no-cache revalidates a fresh entry with the origin: fwd=request",
  async (backend) => {
    const { app, runs, seen } = proxyApp(
      { backend },
      validated({ "cache-control": "max-age=600" }),
    );
    await send(app, "/x");
    const revalidated = await sendWith(app, "/x", {
      "cache-control": "no-cache",
    });
    assert.deepEqual([revalidated.status, revalidated.body], [200, "run 1"]);
    assert.equal(ours(revalidated.cacheStatus).params.get("fwd"), "request");
    assert.equal(seen[1].headers.get("if-none-match"), TAG);
    assert.equal(runs(), 2);
  },
);

rule(
  "Pragma: no-cache without Cache-Control is a request's no-cache",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=600" }),
    );
    await send(app, "/x");
    const forwarded = await sendWith(app, "/x", { pragma: "no-cache" });
    assert.equal(forwarded.body, "run 2");
    assert.equal(ours(forwarded.cacheStatus).params.get("fwd"), "request");
    assert.equal(runs(), 2);
  },
  true,
);

rule(
  "Pragma: no-cache is ignored when the request has Cache-Control",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=600" }),
    );
    await send(app, "/x");
    assertHit(
      await sendWith(app, "/x", {
        pragma: "no-cache",
        "cache-control": "max-age=3600",
      }),
    );
    assert.equal(runs(), 1);
  },
  true,
);

rule(
  "honorRequestCacheControl: false ignores a request's no-cache",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend, honorRequestCacheControl: false },
      answer({ "cache-control": "max-age=600" }),
    );
    await send(app, "/x");
    assertHit(await sendWith(app, "/x", { "cache-control": "no-cache" }));
    assert.equal(runs(), 1);
  },
  true,
);

rule(
  "a request's max-age=N: an entry older than N seconds is not used",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=3600", age: "100" }),
    );
    await send(app, "/x");
    assertHit(await sendWith(app, "/x", { "cache-control": "max-age=500" }));
    const older = await sendWith(app, "/x", { "cache-control": "max-age=50" });
    assert.equal(older.body, "run 2");
    assert.equal(runs(), 2);
  },
);

rule(
  "a request's min-fresh=N: an entry fresh for less than N more seconds is not used",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=600" }),
    );
    await send(app, "/x");
    assertHit(await sendWith(app, "/x", { "cache-control": "min-fresh=60" }));
    const needsMore = await sendWith(app, "/x", {
      "cache-control": "min-fresh=3600",
    });
    assert.equal(needsMore.body, "run 2");
    assert.equal(runs(), 2);
  },
);

rule(
  "a request's max-stale=N serves an entry up to N s past expiry: STALE, ttl=-K",
  async (backend) => {
    const { app, runs } = proxyApp({ backend }, validated(STALE_BY_40));
    await send(app, "/x");
    const stale = await sendWith(app, "/x", {
      "cache-control": "max-stale=3600",
    });
    assertBetween(assertStale(stale), -45, -40, "ttl");
    assert.equal(stale.body, "run 1");
    assert.equal(runs(), 1);
    const tooOld = await sendWith(app, "/x", {
      "cache-control": "max-stale=10",
    });
    assert.notEqual(tooOld.cache, "STALE");
    assert.equal(runs(), 2);
  },
);

rule(
  "a request's max-stale without a value serves any stale entry",
  async (backend) => {
    const { app, runs } = proxyApp({ backend }, validated(STALE_BY_40));
    await send(app, "/x");
    assertStale(await sendWith(app, "/x", { "cache-control": "max-stale" }));
    assert.equal(runs(), 1);
  },
  true,
);

for (
  const [what, directives] of [
    ["must-revalidate", "max-age=60, must-revalidate"],
    ["proxy-revalidate", "max-age=60, proxy-revalidate"],
    ["s-maxage", "s-maxage=60"],
    ["no-cache", "no-cache"],
  ]
) {
  rule(
    `a request's max-stale is refused for a response with ${what}`,
    async (backend) => {
      const { app, runs, seen } = proxyApp(
        { backend },
        validated({ "cache-control": directives, age: "100" }),
      );
      await send(app, "/x");
      const second = await sendWith(app, "/x", {
        "cache-control": "max-stale",
      });
      assert.deepEqual([second.cache, second.body], ["REVALIDATED", "run 1"]);
      assert.equal(seen[1].headers.get("if-none-match"), TAG);
      assert.equal(runs(), 2);
    },
    true,
  );
}

rule(
  "only-if-cached: 504 when nothing usable is stored, the handler not run",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=60" }),
    );
    const none = await sendWith(app, "/x", {
      "cache-control": "only-if-cached",
    });
    assert.equal(none.status, 504);
    assert.equal(runs(), 0);
    await send(app, "/x");
    const fresh = await sendWith(app, "/x", {
      "cache-control": "only-if-cached",
    });
    assertHit(fresh);
    assert.equal(runs(), 1);
  },
  true,
);

rule(
  "only-if-cached: a stale entry is not usable: 504, the origin not asked",
  async (backend) => {
    const { app, runs } = proxyApp({ backend }, validated(STALE_BY_40));
    await send(app, "/x");
    const stale = await sendWith(app, "/x", {
      "cache-control": "only-if-cached",
    });
    assert.equal(stale.status, 504);
    assert.equal(runs(), 1);
  },
  true,
);

// --- The client's conditionals on a hit -------------------------------------

rule(
  "a client's If-None-Match matching the stored ETag, weakly, gets a 304 without a body",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=600", etag: TAG }),
    );
    await send(app, "/x");
    for (const tag of [TAG, `W/${TAG}`, `"other", ${TAG}`]) {
      const notModified = await sendWith(app, "/x", { "if-none-match": tag });
      assert.deepEqual([notModified.status, notModified.body], [304, ""], tag);
    }
    const other = await sendWith(app, "/x", { "if-none-match": '"other"' });
    assert.deepEqual([other.status, other.body], [200, "run 1"]);
    assert.equal(runs(), 1);
  },
);

rule(
  "a client's If-Modified-Since at or after the stored Last-Modified gets a 304",
  async (backend) => {
    const lastModified = new Date(Date.now() - 3600_000).toUTCString();
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=600", "last-modified": lastModified }),
    );
    await send(app, "/x");
    for (const since of [lastModified, new Date().toUTCString()]) {
      const sent = await sendWith(app, "/x", { "if-modified-since": since });
      assert.deepEqual([sent.status, sent.body], [304, ""], since);
    }
    const earlier = new Date(Date.parse(lastModified) - 1000).toUTCString();
    assert.equal(
      (await sendWith(app, "/x", { "if-modified-since": earlier })).status,
      200,
    );
    assert.equal(runs(), 1);
  },
  true,
);

rule(
  "a client's If-None-Match takes precedence over If-Modified-Since",
  async (backend) => {
    const lastModified = new Date(Date.now() - 3600_000).toUTCString();
    const { app } = proxyApp(
      { backend },
      answer({
        "cache-control": "max-age=600",
        etag: TAG,
        "last-modified": lastModified,
      }),
    );
    await send(app, "/x");
    const sent = await sendWith(app, "/x", {
      "if-none-match": '"other"',
      "if-modified-since": new Date().toUTCString(),
    });
    assert.deepEqual([sent.status, sent.body], [200, "run 1"]);
  },
  true,
);

// --- Unsafe methods invalidate (§4.4) --------------------------------------

rule(
  "an unsafe method answered without error invalidates every stored variant of its URL",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      (request, run) =>
        request.method === "POST"
          ? new Response(null, { status: 204 })
          : byLanguage(request, run),
    );
    for (const language of ["en", "fr"]) {
      await sendWith(app, "/x", { "accept-language": language });
    }
    await send(app, "/x", { method: "POST" });
    for (const language of ["en", "fr"]) {
      const after = await sendWith(app, "/x", { "accept-language": language });
      assert.equal(after.cache, "MISS", language);
    }
    assert.equal(runs(), 5);
  },
);

rule(
  "an unsafe method invalidates same-origin Location and Content-Location, not other origins'",
  async (backend) => {
    const { app } = proxyApp(
      { backend },
      (request, run) =>
        request.method === "POST"
          ? new Response("created", {
            status: 201,
            headers: {
              location: "/items/1",
              "content-location": "http://localhost/items/2",
            },
          })
          : new Response(`run ${run}`, {
            headers: { "cache-control": "max-age=60" },
          }),
    );
    for (const path of ["/items/1", "/items/2", "/items/3"]) {
      await send(app, path);
    }
    await send(app, "/items", { method: "POST" });
    assert.equal((await send(app, "/items/1")).cache, "MISS");
    assert.equal((await send(app, "/items/2")).cache, "MISS");
    assert.equal((await send(app, "/items/3")).cache, "HIT");
  },
  true,
);

rule(
  "an unsafe method answered with an error invalidates nothing",
  async (backend) => {
    const { app } = proxyApp(
      { backend },
      (request, run) =>
        request.method === "PUT"
          ? new Response("conflict", { status: 409 })
          : new Response(`run ${run}`, {
            headers: { "cache-control": "max-age=60" },
          }),
    );
    await send(app, "/x");
    await send(app, "/x", { method: "PUT" });
    assert.equal((await send(app, "/x")).cache, "HIT");
  },
  true,
);

// --- Concurrency and faults -------------------------------------------------

rule("concurrent misses of one URL run the origin once", async (backend) => {
  let release!: () => void;
  const held = new Promise<void>((resolve) => release = resolve);
  const { app, runs } = proxyApp({ backend }, async (_, run) => {
    await held;
    return new Response(`run ${run}`, {
      headers: { "cache-control": "max-age=60" },
    });
  });
  const pending = Array.from({ length: 10 }, () => send(app, "/x"));
  try {
    await until("the origin's first run", () => runs() >= 1);
  } finally {
    release();
  }
  const bodies = (await Promise.all(pending)).map((sent) => sent.body);
  assert.deepEqual(new Set(bodies), new Set(["run 1"]));
  assert.equal(runs(), 1);
});

rule(
  "a request that outwaits lockTimeout runs the origin itself",
  async (backend) => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => release = resolve);
    const { app, runs } = proxyApp(
      { backend, lockTimeout: 50 },
      async (_, run) => {
        if (run === 1) await held;
        return new Response(`run ${run}`, {
          headers: { "cache-control": "max-age=60" },
        });
      },
    );
    const first = send(app, "/x");
    try {
      await until("the origin's first run", () => runs() >= 1);
      const second = await send(app, "/x");
      assert.equal(second.body, "run 2");
    } finally {
      release();
    }
    assert.equal((await first).body, "run 1");
  },
  true,
);

Deno.test("proxy mode: a database that is down: the handler answers every request, never a 500 because of the cache", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close(); // nothing listens there now
  const backend = new PostgresBackend({
    dsn: `postgres://postgres@127.0.0.1:${port}/test`,
    queryTimeout: 200,
    connectTimeout: 500,
    sweepInterval: 0,
    onError: () => {},
  });
  try {
    const { app, runs, errors } = proxyApp(
      { backend },
      validated({ "cache-control": "max-age=60" }),
    );
    for (const run of [1, 2, 3]) {
      const sent = await send(app, "/x");
      assert.deepEqual([sent.status, sent.body], [200, `run ${run}`]);
    }
    assert.equal(runs(), 3);
    assert.ok(errors.length >= 1);
  } finally {
    await backend.close();
  }
});
