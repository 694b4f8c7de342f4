// A reverse proxy for real: a Hono app with hono/proxy behind
// cached({ mode: "proxy" }), served by Deno.serve, in front of an origin
// server the test starts, and real fetch() requests to it. The origin counts
// its hits per path. Every response of the front carries our Cache-Status.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { proxy } from "hono/proxy";
import type { CacheBackend } from "../../backends/types.ts";
import { cached } from "../../middleware/cached.ts";
import { closedPort, listen, type Origin, startOrigin } from "./_origin.ts";
import { assertBetween, ours, rule, ttlOf } from "./_proxy_harness.ts";

/** What the handler answers when the origin cannot be reached. */
const BAD_GATEWAY = "Bad gateway: the origin is unreachable";

/**
 * The front: `/p/*` cached in proxy mode and proxied to `upstream` with
 * hono/proxy; an error of the handler (the origin refusing connections)
 * becomes a 502.
 */
function frontApp(backend: CacheBackend, upstream: string): Hono {
  const app = new Hono();
  app.onError((_, c) => c.text(BAD_GATEWAY, 502));
  app.use("/p/*", cached({ backend, mode: "proxy", app, onError: () => {} }));
  app.all("/p/*", (c) =>
    proxy(
      `${upstream}${c.req.path.slice(2)}${new URL(c.req.url).search}`,
      c.req.raw,
    ));
  return app;
}

/** One response of the front, read. */
interface Got {
  status: number;
  cache: string | null;
  cacheStatus: string;
  body: string;
  headers: Headers;
}

/** Fetches `url`; asserts that the response carries our Cache-Status member. */
async function get(url: string, headers?: HeadersInit): Promise<Got> {
  return await request(url, { headers });
}

/** Sends `init` to `url`; asserts that the response carries our Cache-Status. */
async function request(url: string, init: RequestInit): Promise<Got> {
  const res = await fetch(url, init);
  const body = await res.text();
  const cacheStatus = res.headers.get("cache-status");
  assert.ok(cacheStatus, `No Cache-Status on ${init.method ?? "GET"} ${url}`);
  ours(cacheStatus);
  return {
    status: res.status,
    cache: res.headers.get("x-cache"),
    cacheStatus,
    body,
    headers: res.headers,
  };
}

/**
 * Registers `rule` on every backend kind: an origin, and the front in front
 * of it, both listening; `fn` gets the origin and the front's `/p` URL.
 */
function behindProxy(
  name: string,
  fn: (origin: Origin, front: string) => Promise<void>,
): void {
  rule(`behind hono/proxy, a real origin: ${name}`, async (backend) => {
    const origin = startOrigin();
    const front = listen(frontApp(backend, origin.url));
    try {
      await fn(origin, `${front.url}/p`);
    } finally {
      await front.close();
      await origin.close();
    }
  });
}

/** Response headers the origin's routes share: a body no one compresses. */
const BINARY = { "content-type": "application/octet-stream" };

/** Whether `header` names the entity tag `tag`, compared weakly. */
function sameTag(header: string | null, tag: string): boolean {
  return header?.replace(/^W\//, "") === tag;
}

behindProxy(
  "a MISS, then a HIT; the origin is hit once",
  async (origin, front) => {
    origin.route("/page", (_, hit) =>
      new Response(`page ${hit}`, {
        headers: { ...BINARY, "cache-control": "max-age=60" },
      }));
    const miss = await get(`${front}/page`);
    assert.deepEqual([miss.status, miss.cache, miss.body], [
      200,
      "MISS",
      "page 1",
    ]);
    assert.equal(miss.cacheStatus, "cachekit; fwd=uri-miss; stored");
    const hit = await get(`${front}/page`);
    assert.deepEqual([hit.status, hit.cache, hit.body], [200, "HIT", "page 1"]);
    assert.match(hit.cacheStatus, /^cachekit; hit; ttl=\d+$/);
    assertBetween(ttlOf(hit.cacheStatus), 55, 60, "ttl");
    assert.equal(origin.hits("/page"), 1);
  },
);

behindProxy(
  "revalidation: the origin sees If-None-Match and answers 304, the client gets 200 with the stored body",
  async (origin, front) => {
    origin.route(
      "/doc",
      (request) =>
        sameTag(request.headers.get("if-none-match"), '"d1"')
          ? new Response(null, {
            status: 304,
            headers: { etag: '"d1"', "cache-control": "max-age=0" },
          })
          : new Response("the stored body", {
            headers: { ...BINARY, etag: '"d1"', "cache-control": "max-age=0" },
          }),
    );
    const miss = await get(`${front}/doc`);
    assert.deepEqual([miss.cache, miss.body], ["MISS", "the stored body"]);
    const revalidated = await get(`${front}/doc`);
    assert.deepEqual(
      [revalidated.status, revalidated.cache, revalidated.body],
      [200, "REVALIDATED", "the stored body"],
    );
    assert.equal(
      revalidated.cacheStatus,
      "cachekit; fwd=stale; fwd-status=304; stored",
    );
    assert.equal(origin.hits("/doc"), 2);
    const conditional = origin.requests("/doc")[1].get("if-none-match");
    assert.ok(sameTag(conditional, '"d1"'), String(conditional));
  },
);

behindProxy(
  "Vary: Accept-Language: two variants, each stored and hit; the origin is hit twice",
  async (origin, front) => {
    origin.route("/greet", (request) => {
      const french = request.headers.get("accept-language") === "fr";
      return new Response(french ? "bonjour" : "hello", {
        headers: {
          ...BINARY,
          "cache-control": "max-age=60",
          vary: "Accept-Language",
          "content-language": french ? "fr" : "en",
        },
      });
    });
    const en = { "accept-language": "en" };
    const fr = { "accept-language": "fr" };
    const enMiss = await get(`${front}/greet`, en);
    assert.deepEqual([enMiss.cache, enMiss.body], ["MISS", "hello"]);
    const frMiss = await get(`${front}/greet`, fr);
    assert.deepEqual([frMiss.cache, frMiss.body], ["MISS", "bonjour"]);
    assert.equal(frMiss.cacheStatus, "cachekit; fwd=vary-miss; stored");
    const enHit = await get(`${front}/greet`, en);
    const frHit = await get(`${front}/greet`, fr);
    assert.deepEqual([enHit.cache, enHit.body], ["HIT", "hello"]);
    assert.deepEqual([frHit.cache, frHit.body], ["HIT", "bonjour"]);
    assert.equal(frHit.headers.get("content-language"), "fr");
    assert.equal(origin.hits("/greet"), 2);
  },
);

behindProxy(
  "stale-if-error: the origin answers 503, the client gets the stored 200 as STALE",
  async (origin, front) => {
    origin.route("/flaky", (_, hit) =>
      hit === 1
        ? new Response("good copy", {
          headers: {
            ...BINARY,
            etag: '"f1"',
            "cache-control": "max-age=60, stale-if-error=3600",
            age: "100",
          },
        })
        : new Response("down for maintenance", { status: 503 }));
    assert.equal((await get(`${front}/flaky`)).body, "good copy");
    const stale = await get(`${front}/flaky`);
    assert.deepEqual([stale.status, stale.cache, stale.body], [
      200,
      "STALE",
      "good copy",
    ]);
    const member = ours(stale.cacheStatus);
    assert.equal(member.params.get("fwd"), "stale");
    assert.equal(member.params.get("fwd-status"), "503");
    assert.equal(origin.hits("/flaky"), 2);
  },
);

behindProxy(
  "an origin that goes down: a fresh entry is a HIT, a stale one within stale-if-error STALE, the rest the handler's 502",
  async (origin, front) => {
    origin.route("/fresh", () =>
      new Response("fresh copy", {
        headers: { ...BINARY, "cache-control": "max-age=60" },
      }));
    origin.route("/stale", () =>
      new Response("stale copy", {
        headers: {
          ...BINARY,
          etag: '"s1"',
          "cache-control": "max-age=60, stale-if-error=3600",
          age: "100",
        },
      }));
    await get(`${front}/fresh`);
    await get(`${front}/stale`);
    await origin.close(); // connections are refused from now on
    const fresh = await get(`${front}/fresh`);
    assert.deepEqual([fresh.cache, fresh.body], ["HIT", "fresh copy"]);
    const stale = await get(`${front}/stale`);
    assert.deepEqual([stale.status, stale.cache, stale.body], [
      200,
      "STALE",
      "stale copy",
    ]);
    const unknown = await get(`${front}/never-fetched`);
    assert.deepEqual([unknown.status, unknown.body], [502, BAD_GATEWAY]);
    assert.notEqual(unknown.cache, "HIT");
  },
);

rule(
  "behind hono/proxy, an origin that is down from the start: every request gets the handler's 502, never a 500 from the cache",
  async (backend) => {
    const front = listen(frontApp(backend, `http://127.0.0.1:${closedPort()}`));
    try {
      for (const _ of [1, 2]) {
        const got = await get(`${front.url}/p/page`);
        assert.deepEqual([got.status, got.body], [502, BAD_GATEWAY]);
        assert.equal(ours(got.cacheStatus).params.get("stored"), undefined);
      }
    } finally {
      await front.close();
    }
  },
);

behindProxy(
  "Range passes through: the origin sees it, the client gets its 206, nothing is stored",
  async (origin, front) => {
    origin.route(
      "/file",
      (request) =>
        request.headers.get("range") === "bytes=0-4"
          ? new Response("01234", {
            status: 206,
            headers: {
              ...BINARY,
              "content-range": "bytes 0-4/10",
              "cache-control": "max-age=60",
            },
          })
          : new Response("0123456789", {
            headers: { ...BINARY, "cache-control": "max-age=60" },
          }),
    );
    const range = { range: "bytes=0-4" };
    const partial = await get(`${front}/file`, range);
    assert.deepEqual([partial.status, partial.body], [206, "01234"]);
    assert.equal(partial.headers.get("content-range"), "bytes 0-4/10");
    assert.equal(origin.requests("/file")[0].get("range"), "bytes=0-4");
    assert.equal((await get(`${front}/file`)).cache, "MISS");
    const full = await get(`${front}/file`);
    assert.deepEqual([full.cache, full.body], ["HIT", "0123456789"]);
    const again = await get(`${front}/file`, range);
    assert.deepEqual([again.status, again.body], [206, "01234"]);
    assert.equal(origin.hits("/file"), 3);
  },
);

behindProxy(
  "a HEAD after a GET is a HIT without a body; a POST invalidates the path",
  async (origin, front) => {
    origin.route(
      "/item",
      (request, hit) =>
        request.method === "POST"
          ? new Response(null, { status: 204 })
          : new Response(`item ${hit}`, {
            headers: { ...BINARY, "cache-control": "max-age=60" },
          }),
    );
    assert.equal((await get(`${front}/item`)).body, "item 1");
    const head = await request(`${front}/item`, { method: "HEAD" });
    assert.deepEqual([head.status, head.cache, head.body], [200, "HIT", ""]);
    const post = await fetch(`${front}/item`, { method: "POST" });
    await post.body?.cancel();
    assert.equal(post.status, 204);
    const after = await get(`${front}/item`);
    assert.deepEqual([after.cache, after.body], ["MISS", "item 3"]);
    assert.equal(origin.hits("/item"), 3);
  },
);
