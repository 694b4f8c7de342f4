// cached({ mode: "proxy" }), part two: which responses it stores (RFC 9111
// §3, §3.5, §4.2.1, RFC 9213 CDN-Cache-Control) and the freshness lifetime
// they get. The handler plays the origin: each test writes the response
// headers it answers with; time passes through Date, Age and Expires.
import assert from "node:assert/strict";
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
  validated,
} from "./_proxy_harness.ts";

// --- Storing: what makes a response storable -----------------------------

for (
  const [what, headers] of [
    ["s-maxage", { "cache-control": "s-maxage=60" }],
    ["max-age", { "cache-control": "max-age=60" }],
    ["Expires", { expires: httpDate(60) }],
  ] as const
) {
  rule(`a response with ${what} is stored and hit`, async (backend) => {
    const { app, runs } = proxyApp({ backend }, answer(headers));
    const miss = await send(app, "/x");
    assert.equal(miss.cache, "MISS");
    assert.equal(miss.cacheStatus, "cachekit; fwd=uri-miss; stored");
    const hit = await send(app, "/x");
    assertHit(hit);
    assert.equal(hit.body, "run 1");
    assert.equal(runs(), 1);
  });
}

rule(
  "public gives a status that is not heuristically cacheable (307) a heuristic lifetime from Last-Modified",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer(
        {
          "cache-control": "public",
          date: httpDate(0),
          "last-modified": httpDate(-1000),
          location: "/y",
        },
        undefined,
        307,
      ),
    );
    assert.equal(
      (await send(app, "/x")).cacheStatus,
      "cachekit; fwd=uri-miss; stored",
    );
    const hit = await send(app, "/x");
    assertBetween(assertHit(hit), 95, 100, "ttl");
    assert.equal(hit.status, 307);
    assert.equal(runs(), 1);
  },
);

rule(
  "Last-Modified gives a 200 a heuristic lifetime of 10% of Date - Last-Modified",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ date: httpDate(0), "last-modified": httpDate(-1000) }),
    );
    await send(app, "/x");
    assertBetween(assertHit(await send(app, "/x")), 95, 100, "ttl");
    assert.equal(runs(), 1);
  },
);

rule("the heuristic lifetime is capped at one day", async (backend) => {
  const { app } = proxyApp(
    { backend },
    answer({ date: httpDate(0), "last-modified": httpDate(-100 * 86400) }),
  );
  await send(app, "/x");
  assertBetween(assertHit(await send(app, "/x")), 86395, 86400, "ttl");
});

rule(
  "a 307 gets no heuristic lifetime: with Last-Modified it is stored and revalidated",
  async (backend) => {
    const lastModified = httpDate(-1000);
    const { app, runs, seen } = proxyApp(
      { backend },
      (request, run) =>
        request.headers.get("if-modified-since") === lastModified
          ? new Response(null, { status: 304 })
          : new Response(`run ${run}`, {
            status: 307,
            headers: { "last-modified": lastModified, location: "/y" },
          }),
    );
    await send(app, "/x");
    const second = await send(app, "/x");
    assert.deepEqual([second.status, second.cache, second.body], [
      307,
      "REVALIDATED",
      "run 1",
    ]);
    assert.equal(seen[1].headers.get("if-modified-since"), lastModified);
    assert.equal(runs(), 2);
  },
);

rule(
  "a response with only a validator is stored stale and revalidated on every use",
  async (backend) => {
    const { app, runs, seen } = proxyApp({ backend }, validated({}));
    const miss = await send(app, "/x");
    assert.equal(stored(miss), true);
    for (const round of [2, 3]) {
      const again = await send(app, "/x");
      assert.deepEqual([again.status, again.cache, again.body], [
        200,
        "REVALIDATED",
        "run 1",
      ]);
      assert.equal(seen[round - 1].headers.get("if-none-match"), TAG);
    }
    assert.equal(runs(), 3);
  },
);

// --- Storing: what is never stored ---------------------------------------

for (
  const [what, headers] of [
    ["a response no-store", { "cache-control": "no-store, max-age=60" }],
    ["an unqualified private", { "cache-control": "private, max-age=60" }],
    ["a Set-Cookie", { "cache-control": "max-age=60", "set-cookie": "a=1" }],
    ["Vary: *", { "cache-control": "max-age=60", vary: "*" }],
    ["text/event-stream", {
      "cache-control": "max-age=60",
      "content-type": "text/event-stream",
    }],
  ] as const
) {
  rule(`${what} is never stored`, async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ etag: TAG, ...headers }),
    );
    const first = await send(app, "/x");
    assert.equal(stored(first), false);
    for (const [name, value] of Object.entries(headers)) {
      assert.equal(first.res.headers.get(name), value, name); // passed on
    }
    assert.equal((await send(app, "/x")).body, "run 2");
    assert.equal(runs(), 2);
  });
}

rule("a request's no-store: its response is not stored", async (backend) => {
  const { app, runs } = proxyApp(
    { backend },
    answer({ "cache-control": "max-age=60" }),
  );
  const first = await sendWith(app, "/x", { "cache-control": "no-store" });
  assert.equal(stored(first), false);
  assert.equal((await send(app, "/x")).cache, "MISS");
  assert.equal(runs(), 2);
});

rule(
  "must-understand with an understood status overrides no-store",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "must-understand, no-store, max-age=60" }),
    );
    await send(app, "/x");
    assertHit(await send(app, "/x"));
    assert.equal(runs(), 1);
  },
);

rule(
  "a request with Range is forwarded untouched and its 206 is not stored",
  async (backend) => {
    const full = "0123456789";
    const { app, runs, seen } = proxyApp(
      { backend },
      (request) =>
        request.headers.get("range") === "bytes=0-3"
          ? new Response(full.slice(0, 4), {
            status: 206,
            headers: {
              "content-range": "bytes 0-3/10",
              "cache-control": "max-age=60",
            },
          })
          : new Response(full, { headers: { "cache-control": "max-age=60" } }),
    );
    const range = { range: "bytes=0-3" };
    assert.deepEqual(
      [
        (await sendWith(app, "/x", range)).status,
        (await send(app, "/x")).cache,
      ],
      [206, "MISS"],
    );
    const hit = await send(app, "/x");
    assert.deepEqual([hit.cache, hit.body], ["HIT", full]);
    const again = await sendWith(app, "/x", range);
    assert.deepEqual([again.status, again.body], [206, "0123"]);
    assert.equal(seen[2].headers.get("range"), "bytes=0-3");
    assert.equal(runs(), 3);
  },
);

rule(
  "a request with Cookie bypasses: cachekit; fwd=bypass, nothing stored",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=60" }),
    );
    for (const _ of [1, 2]) {
      const bypassed = await sendWith(app, "/x", { cookie: "session=a" });
      assert.equal(bypassed.cache, "BYPASS");
      // RFC 9211 lets a detail parameter follow: nothing else may.
      assert.match(
        bypassed.cacheStatus ?? "",
        /^cachekit; fwd=bypass(; detail=[^;,]+)?$/,
      );
    }
    assert.equal((await send(app, "/x")).cache, "MISS");
    assert.equal(runs(), 3);
  },
);

rule(
  "with perUser, a request with Cookie is stored per cookie",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend, perUser: true },
      (request) =>
        new Response(`for ${request.headers.get("cookie")}`, {
          headers: { "cache-control": "max-age=60" },
        }),
    );
    await sendWith(app, "/x", { cookie: "s=a" });
    const a = await sendWith(app, "/x", { cookie: "s=a" });
    assert.deepEqual([a.cache, a.body], ["HIT", "for s=a"]);
    const b = await sendWith(app, "/x", { cookie: "s=b" });
    assert.deepEqual([b.cache, b.body], ["MISS", "for s=b"]);
    assert.equal(runs(), 2);
  },
);

rule(
  "a request with Authorization: a response with max-age alone is not stored",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({ "cache-control": "max-age=60" }),
    );
    const auth = { authorization: "Bearer a" };
    assert.equal(stored(await sendWith(app, "/x", auth)), false);
    assert.equal((await sendWith(app, "/x", auth)).body, "run 2");
    assert.equal(runs(), 2);
  },
);

for (
  const directives of [
    "public, max-age=60",
    "s-maxage=60",
    "must-revalidate, max-age=60",
  ]
) {
  rule(
    `a request with Authorization: a response with ${directives} is stored`,
    async (backend) => {
      const { app, runs } = proxyApp(
        { backend },
        answer({ "cache-control": directives }),
      );
      const auth = { authorization: "Bearer a" };
      assert.equal(stored(await sendWith(app, "/x", auth)), true);
      const hit = await sendWith(app, "/x", auth);
      assert.deepEqual([hit.cache, hit.body], ["HIT", "run 1"]);
      assert.equal(runs(), 1);
    },
  );
}

rule(
  "an unqualified no-cache response is stored and revalidated on every use",
  async (backend) => {
    const { app, runs, seen } = proxyApp(
      { backend },
      validated({ "cache-control": "no-cache, max-age=3600" }),
    );
    assert.equal(stored(await send(app, "/x")), true);
    const second = await send(app, "/x");
    assert.deepEqual([second.cache, second.body], ["REVALIDATED", "run 1"]);
    assert.equal(seen[1].headers.get("if-none-match"), TAG);
    assert.equal(runs(), 2);
  },
);

for (const directive of ['no-cache="x-secret"', 'private="x-secret"']) {
  rule(
    `${directive} is stored without the header it names`,
    async (backend) => {
      const { app, runs } = proxyApp(
        { backend },
        answer({
          "cache-control": `${directive}, max-age=60`,
          "x-secret": "s3cret",
          "x-other": "kept",
        }),
      );
      const miss = await send(app, "/x");
      assert.equal(miss.res.headers.get("x-secret"), "s3cret");
      const hit = await send(app, "/x");
      assert.equal(hit.cache, "HIT");
      assert.equal(hit.res.headers.get("x-secret"), null);
      assert.equal(hit.res.headers.get("x-other"), "kept");
      assert.equal(runs(), 1);
    },
  );
}

const INVALID = [
  ["max-age=-1", { "cache-control": "max-age=-1" }],
  ['max-age="60"', { "cache-control": 'max-age="60"' }],
  ["max-age=6x0", { "cache-control": "max-age=6x0" }],
  ["s-maxage=-5, max-age=3600", {
    "cache-control": "s-maxage=-5, max-age=3600",
  }],
  ["Expires: 0", { expires: "0" }],
] as const;

for (const [what, headers] of INVALID) {
  rule(
    `an invalid ${what} is stale on arrival: without a validator not stored`,
    async (backend) => {
      const { app, runs } = proxyApp({ backend }, answer(headers));
      await send(app, "/x");
      assert.equal((await send(app, "/x")).body, "run 2");
      assert.equal(runs(), 2);
    },
  );
  rule(
    `an invalid ${what} is stale on arrival: with a validator stored and revalidated`,
    async (backend) => {
      const { app, runs, seen } = proxyApp({ backend }, validated(headers));
      await send(app, "/x");
      const second = await send(app, "/x");
      assert.deepEqual([second.cache, second.body], ["REVALIDATED", "run 1"]);
      assert.equal(seen[1].headers.get("if-none-match"), TAG);
      assert.equal(runs(), 2);
    },
  );
}

// --- CDN-Cache-Control (RFC 9213) and precedence -------------------------

rule(
  "CDN-Cache-Control is used instead of Cache-Control, and passed on",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({
        "cdn-cache-control": "max-age=60",
        "cache-control": "no-store",
      }),
    );
    const miss = await send(app, "/x");
    const hit = await send(app, "/x");
    assertHit(hit);
    for (const sent of [miss, hit]) {
      assert.equal(sent.res.headers.get("cdn-cache-control"), "max-age=60");
      assert.equal(sent.res.headers.get("cache-control"), "no-store");
    }
    assert.equal(runs(), 1);
  },
);

rule(
  "a CDN-Cache-Control no-store wins over a Cache-Control max-age",
  async (backend) => {
    const { app, runs } = proxyApp(
      { backend },
      answer({
        "cdn-cache-control": "no-store",
        "cache-control": "max-age=60",
      }),
    );
    assert.equal(stored(await send(app, "/x")), false);
    assert.equal((await send(app, "/x")).body, "run 2");
    assert.equal(runs(), 2);
  },
);

rule("s-maxage wins over max-age", async (backend) => {
  const { app } = proxyApp(
    { backend },
    answer({ "cache-control": "max-age=0, s-maxage=600" }),
  );
  await send(app, "/x");
  assertBetween(assertHit(await send(app, "/x")), 595, 600, "ttl");
});

rule("max-age wins over Expires", async (backend) => {
  const { app } = proxyApp(
    { backend },
    answer({ "cache-control": "max-age=600", expires: httpDate(-10) }),
  );
  await send(app, "/x");
  assertBetween(assertHit(await send(app, "/x")), 595, 600, "ttl");
});

rule(
  "a response with only Expires is fresh for Expires - Date",
  async (backend) => {
    const { app } = proxyApp(
      { backend },
      answer({ date: httpDate(0), expires: httpDate(300) }),
    );
    await send(app, "/x");
    assertBetween(assertHit(await send(app, "/x")), 295, 300, "ttl");
  },
);

rule(
  "Expires counts from Date, not from now: an origin clock 100 s ahead",
  async (backend) => {
    const { app } = proxyApp(
      { backend },
      answer({ date: httpDate(100), expires: httpDate(200) }),
    );
    await send(app, "/x");
    assertBetween(assertHit(await send(app, "/x")), 95, 100, "ttl");
  },
);
