// cached({ mode: "proxy" }), part four: stale entries (RFC 9111 §4.2.4,
// §4.3, §5.2.2, RFC 5861): conditional requests to the origin and its 304 or
// 200, must-revalidate and its kin, stale-while-revalidate and
// stale-if-error. The handler plays the origin; entries are made stale on
// arrival by an Age in the past.
import assert from "node:assert/strict";
import {
  answer,
  assertBetween,
  assertHit,
  assertStale,
  ours,
  proxyApp,
  type Respond,
  rule,
  send,
  sendWith,
  STALE_BY_40,
  stored,
  TAG,
  until,
  validated,
} from "./_proxy_harness.ts";

// --- Revalidation -----------------------------------------------------------

rule(
  "a stale entry is revalidated: the handler sees the stored ETag and Last-Modified, not the client's",
  async (backend) => {
    const lastModified = new Date(Date.now() - 3600_000).toUTCString();
    const { app, seen } = proxyApp(
      { backend },
      validated({ ...STALE_BY_40, "last-modified": lastModified }),
    );
    await send(app, "/x");
    await sendWith(app, "/x", {
      "if-none-match": '"client"',
      "if-modified-since": new Date().toUTCString(),
    });
    assert.equal(seen[1].headers.get("if-none-match"), TAG);
    assert.equal(seen[1].headers.get("if-modified-since"), lastModified);
  },
);

rule(
  "a 304 answers with the stored body, headers updated: REVALIDATED, fwd=stale; fwd-status=304; stored",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      validated({
        ...STALE_BY_40,
        "x-version": "1",
        "content-type": "text/plain",
      }, {
        "x-version": "2",
        "content-length": "0",
      }),
    );
    await send(app, "/x");
    const revalidated = await send(app, "/x");
    assert.deepEqual(
      [revalidated.status, revalidated.cache, revalidated.body],
      [
        200,
        "REVALIDATED",
        "run 1",
      ],
    );
    assert.equal(
      revalidated.cacheStatus,
      "cachekit; fwd=stale; fwd-status=304; stored",
    );
    assert.equal(revalidated.res.headers.get("x-version"), "2");
    // Content-Length is the one header of a 304 that says nothing of the
    // stored body: it never replaces the stored one.
    assert.notEqual(revalidated.res.headers.get("content-length"), "0");
    assert.equal(revalidated.res.headers.get("content-type"), "text/plain");
    assert.equal(runs(), 2);
  },
);

rule(
  "a 304's freshness updates the entry: the next request is a HIT",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      validated(STALE_BY_40, { "cache-control": "max-age=600" }),
    );
    await send(app, "/x");
    assert.equal((await send(app, "/x")).cache, "REVALIDATED");
    const hit = await send(app, "/x");
    assertBetween(assertHit(hit), 595, 600, "ttl");
    assert.deepEqual([hit.body, hit.res.headers.get("cache-control")], [
      "run 1",
      "max-age=600",
    ]);
    assert.equal(runs(), 2);
  },
);

rule(
  "a client's If-None-Match matching a stale entry's ETag gets a 304 once the origin answers 304",
  async (backend) => {
    const { app, runs, seen } = proxyApp({ backend }, validated(STALE_BY_40));
    await send(app, "/x");
    const sent = await sendWith(app, "/x", { "if-none-match": TAG });
    assert.deepEqual([sent.status, sent.body], [304, ""]);
    assert.equal(seen[1].headers.get("if-none-match"), TAG);
    assert.equal(runs(), 2);
  },
);

rule(
  "a stale variant is revalidated with its own ETag, and answers with its own body",
  async (backend) => {
    const { app, seen } = proxyApp({ backend }, (request, run) => {
      const language = request.headers.get("accept-language");
      const tag = `"${language}"`;
      const headers = { ...STALE_BY_40, vary: "Accept-Language", etag: tag };
      return request.headers.get("if-none-match") === tag
        ? new Response(null, { status: 304, headers })
        : new Response(`${language} run ${run}`, { headers });
    });
    const en = { "accept-language": "en" };
    const fr = { "accept-language": "fr" };
    await sendWith(app, "/x", en);
    await sendWith(app, "/x", fr);
    const frAgain = await sendWith(app, "/x", fr);
    assert.deepEqual([frAgain.cache, frAgain.body], [
      "REVALIDATED",
      "fr run 2",
    ]);
    assert.equal(seen[2].headers.get("if-none-match"), '"fr"');
    const enAgain = await sendWith(app, "/x", en);
    assert.deepEqual([enAgain.cache, enAgain.body], [
      "REVALIDATED",
      "en run 1",
    ]);
    assert.equal(seen[3].headers.get("if-none-match"), '"en"');
  },
);

rule("a 304 revalidation replays the stored status", async (backend) => {
  const { app } = proxyApp(
    { backend },
    (request, run) =>
      request.headers.get("if-none-match") === TAG
        ? new Response(null, { status: 304, headers: { etag: TAG } })
        : new Response(`missing ${run}`, {
          status: 404,
          headers: { etag: TAG, ...STALE_BY_40 },
        }),
  );
  await send(app, "/x");
  const revalidated = await send(app, "/x");
  assert.deepEqual([revalidated.status, revalidated.cache, revalidated.body], [
    404,
    "REVALIDATED",
    "missing 1",
  ]);
}, true);

rule(
  "a 200 during revalidation replaces the entry: fwd=stale; fwd-status=200; stored",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      (_, run) =>
        new Response(`run ${run}`, {
          headers: run === 1
            ? { etag: TAG, ...STALE_BY_40 }
            : { etag: '"v2"', "cache-control": "max-age=600" },
        }),
    );
    await send(app, "/x");
    const replaced = await send(app, "/x");
    assert.deepEqual([replaced.cache, replaced.body], ["MISS", "run 2"]);
    assert.equal(
      replaced.cacheStatus,
      "cachekit; fwd=stale; fwd-status=200; stored",
    );
    const hit = await send(app, "/x");
    assert.deepEqual([hit.cache, hit.body], ["HIT", "run 2"]);
    assert.equal(runs(), 2);
  },
);

rule(
  "the handler may read the conditional through c.req.header() at call time",
  async (backend) => {
    const { app } = proxyApp(
      { backend },
      (_, run, c) =>
        c.req.header("if-none-match") === TAG
          ? c.body(null, 304, { etag: TAG })
          : c.text(`run ${run}`, 200, { etag: TAG, ...STALE_BY_40 }),
    );
    await send(app, "/x");
    const revalidated = await send(app, "/x");
    assert.deepEqual([revalidated.cache, revalidated.body], [
      "REVALIDATED",
      "run 1",
    ]);
  },
  true,
);

rule(
  "a stale entry without a validator is forwarded as a miss: fwd=stale",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=2", age: "1" }),
    );
    assert.equal(stored(await send(app, "/x")), true);
    // A real wait: the entry must become stale in the cache, not on arrival,
    // and a validator would make it revalidated instead.
    await new Promise((resolve) => setTimeout(resolve, 1100));
    const forwarded = await send(app, "/x");
    assert.deepEqual([forwarded.cache, forwarded.body], ["MISS", "run 2"]);
    assert.equal(ours(forwarded.cacheStatus).params.get("fwd"), "stale");
    assert.equal(runs(), 2);
  },
);

// --- Never stale: must-revalidate, proxy-revalidate, s-maxage --------------

for (
  const [what, freshness] of [
    ["must-revalidate", "max-age=60, must-revalidate"],
    ["proxy-revalidate", "max-age=60, proxy-revalidate"],
    ["s-maxage", "s-maxage=60"],
  ]
) {
  rule(
    `${what} is never served stale within stale-while-revalidate`,
    async (backend) => {
      const { app, runs, seen } = proxyApp(
        { backend },
        validated({
          "cache-control": `${freshness}, stale-while-revalidate=3600`,
          age: "100",
        }),
        true,
      );
      await send(app, "/x");
      const second = await send(app, "/x");
      assert.deepEqual([second.cache, second.body], ["REVALIDATED", "run 1"]);
      assert.equal(seen[1].headers.get("if-none-match"), TAG);
      assert.equal(runs(), 2);
    },
  );

  rule(
    `${what} is never served stale on error, within stale-if-error`,
    async (backend) => {
      const { app } = proxyApp(
        { backend, staleIfError: 3600 },
        (_, run) =>
          run === 1
            ? new Response("run 1", {
              headers: {
                etag: TAG,
                "cache-control": `${freshness}, stale-if-error=3600`,
                age: "100",
              },
            })
            : new Response("unavailable", { status: 503 }),
      );
      await send(app, "/x");
      const failed = await send(app, "/x");
      assert.deepEqual([failed.status, failed.body], [503, "unavailable"]);
      assert.notEqual(failed.cache, "STALE");
    },
  );
}

rule("a fresh must-revalidate entry is served as usual", async (backend) => {
  const { app, runs } = proxyApp(
    { backend },
    answer({ "cache-control": "max-age=600, must-revalidate" }),
  );
  await send(app, "/x");
  assertHit(await send(app, "/x"));
  assert.equal(runs(), 1);
}, true);

// --- stale-while-revalidate (RFC 5861) -------------------------------------

rule(
  "stale-while-revalidate: the stale entry answers at once, and one background refresh runs through app.fetch",
  async (backend) => {
    let release!: () => void;
    const held = new Promise<void>((resolve) => release = resolve);
    // Released by the test, or by this timer: a request that waits for the
    // origin instead of answering stale then fails the test, not hangs it.
    const timer = setTimeout(() => release(), 3000);
    const { app, runs } = proxyApp(
      { backend },
      async (_, run) => {
        if (run === 1) {
          return new Response("run 1", {
            headers: {
              etag: TAG,
              "cache-control": "max-age=60, stale-while-revalidate=3600",
              age: "100",
            },
          });
        }
        await held; // the refresh, held until the stale answers are in
        return new Response(`run ${run}`, {
          headers: { etag: '"v2"', "cache-control": "max-age=600" },
        });
      },
      true,
    );
    try {
      await send(app, "/x");
      for (const _ of [1, 2, 3]) {
        const stale = await send(app, "/x");
        assertStale(stale);
        assert.equal(stale.body, "run 1");
      }
      await until("the background refresh", () => runs() >= 2);
      // A real wait, short: a second refresh would have started by now.
      await new Promise((resolve) => setTimeout(resolve, 100));
      assert.equal(runs(), 2);
    } finally {
      release();
      clearTimeout(timer);
    }
    await until("the refreshed entry", async () => {
      const sent = await send(app, "/x");
      return sent.cache === "HIT" && sent.body === "run 2";
    });
    assert.equal(runs(), 2);
  },
);

rule(
  "stale-while-revalidate: the background refresh of a variant carries that variant's request headers",
  async (backend) => {
    const { app, runs, seen } = proxyApp({ backend }, (request, run) => {
      const language = request.headers.get("accept-language");
      const headers: Record<string, string> = run <= 2
        ? {
          "cache-control": "max-age=60, stale-while-revalidate=3600",
          age: "100",
        }
        : { "cache-control": "max-age=600" };
      return new Response(`${language} run ${run}`, {
        headers: { ...headers, vary: "Accept-Language", etag: `"${run}"` },
      });
    }, true);
    const en = { "accept-language": "en" };
    const fr = { "accept-language": "fr" };
    await sendWith(app, "/x", en);
    await sendWith(app, "/x", fr);
    const stale = await sendWith(app, "/x", fr);
    assertStale(stale);
    assert.equal(stale.body, "fr run 2");
    await until("the refreshed fr variant", async () => {
      const sent = await sendWith(app, "/x", fr);
      return sent.cache === "HIT" && sent.body === "fr run 3";
    });
    assert.equal(seen[2].headers.get("accept-language"), "fr");
    assert.equal(runs(), 3);
    // The en variant is still the stale one, refreshed on its own.
    assert.equal((await sendWith(app, "/x", en)).body, "en run 1");
    await until("the refreshed en variant", async () => {
      const sent = await sendWith(app, "/x", en);
      return sent.cache === "HIT" && sent.body === "en run 4";
    });
  },
);

rule(
  "stale-while-revalidate without an app: revalidated in the request",
  async (backend) => {
    const { app, runs, seen } = proxyApp(
      { backend },
      validated({
        "cache-control": "max-age=60, stale-while-revalidate=3600",
        age: "100",
      }),
    );
    await send(app, "/x");
    const second = await send(app, "/x");
    assert.deepEqual([second.cache, second.body], ["REVALIDATED", "run 1"]);
    assert.equal(seen[1].headers.get("if-none-match"), TAG);
    assert.equal(runs(), 2);
  },
);

rule(
  "the staleWhileRevalidate option applies to a response without the directive",
  async (backend) => {
    const { app } = proxyApp(
      { backend, staleWhileRevalidate: 3600 },
      validated(STALE_BY_40, { "cache-control": "max-age=600" }),
      true,
    );
    await send(app, "/x");
    assertStale(await send(app, "/x"));
    await until(
      "the refreshed entry",
      async () => (await send(app, "/x")).cache === "HIT",
    );
  },
  true,
);

rule(
  "a response's own stale-while-revalidate wins over the option",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend, staleWhileRevalidate: 3600 },
      validated({
        "cache-control": "max-age=60, stale-while-revalidate=10",
        age: "100",
      }),
      true,
    );
    await send(app, "/x");
    // 40 s past expiry: outside its own 10 s window.
    assert.equal((await send(app, "/x")).cache, "REVALIDATED");
    assert.equal(runs(), 2);
  },
  true,
);

// --- stale-if-error (RFC 5861) ---------------------------------------------

/** An origin that answers a stale-if-error response, then fails with `fail`. */
function failingLater(fail: () => Response, windowSeconds = 3600): Respond {
  return (_, run) =>
    run === 1
      ? new Response("run 1", {
        headers: {
          etag: TAG,
          "cache-control": `max-age=60, stale-if-error=${windowSeconds}`,
          age: "100",
        },
      })
      : fail();
}

for (const status of [500, 502, 503, 504]) {
  rule(
    `stale-if-error: a ${status} within the window is answered with the stale entry`,
    async (backend) => {
      const { app } = proxyApp(
        { backend },
        failingLater(() => new Response("failed", { status })),
      );
      await send(app, "/x");
      const stale = await send(app, "/x");
      assert.deepEqual([stale.status, stale.cache, stale.body], [
        200,
        "STALE",
        "run 1",
      ]);
      const member = ours(stale.cacheStatus);
      assert.equal(member.params.get("fwd"), "stale");
      assert.equal(member.params.get("fwd-status"), String(status));
    },
  );
}

rule(
  "stale-if-error: a handler that throws within the window gets the stale entry",
  async (backend) => {
    const { app } = proxyApp(
      { backend },
      failingLater(() => {
        throw new TypeError("connection refused");
      }),
    );
    await send(app, "/x");
    const stale = await send(app, "/x");
    assert.deepEqual([stale.status, stale.cache, stale.body], [
      200,
      "STALE",
      "run 1",
    ]);
  },
);

rule(
  "stale-if-error: past the window the error passes through",
  async (backend) => {
    const { app } = proxyApp(
      { backend },
      failingLater(() => new Response("failed", { status: 503 }), 10),
    );
    await send(app, "/x");
    const failed = await send(app, "/x");
    assert.deepEqual([failed.status, failed.body], [503, "failed"]);
    assert.notEqual(failed.cache, "STALE");
  },
  true,
);

rule(
  "the staleIfError option applies to a response without the directive",
  async (backend) => {
    const { app } = proxyApp(
      { backend, staleIfError: 3600 },
      (_, run) =>
        run === 1
          ? new Response("run 1", { headers: { etag: TAG, ...STALE_BY_40 } })
          : new Response("failed", { status: 503 }),
    );
    await send(app, "/x");
    const stale = await send(app, "/x");
    assert.deepEqual([stale.cache, stale.body], ["STALE", "run 1"]);
  },
  true,
);
