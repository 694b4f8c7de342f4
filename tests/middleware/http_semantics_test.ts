// Issue 3: HTTP semantics of cached(): which requests are cached, which
// responses are stored, keys, ETags, Cache-Control, X-Cache, streaming, the
// two hono/cache CVEs, and failing open.
import assert from "node:assert/strict";
import { type Context, Hono } from "hono";
import { MemoryBackend } from "../../backends/memory.ts";
import type {
  CacheBackend,
  CacheEntry,
  CacheErrorContext,
  CacheValue,
  ReadEntryOptions,
  SetOptions,
  StoredEntry,
  WriteEntryOptions,
} from "../../backends/types.ts";
import { cached } from "../../middleware/cached.ts";
import type { CachedOptions } from "../../middleware/types.ts";
import { backendKinds, pglite, withServer } from "../_helpers.ts";

const encoder = new TextEncoder();

/** A MemoryBackend on a clock the test moves by hand (milliseconds). */
function clocked(): { backend: MemoryBackend; advance(seconds: number): void } {
  let now = 1_700_000_000_000;
  const backend = new MemoryBackend({ now: () => now });
  return { backend, advance: (seconds) => now += seconds * 1000 };
}

/** A promise with its resolver. */
function gate<T = void>(): { promise: Promise<T>; open(value: T): void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => open = resolve);
  return { promise, open };
}

/** The strong ETag cached() gives a body: the quoted base64url SHA-256. */
async function strongTag(body: string | Uint8Array): Promise<string> {
  const bytes = typeof body === "string" ? encoder.encode(body) : body;
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", bytes as Uint8Array<ArrayBuffer>),
  );
  const base64 = btoa(String.fromCharCode(...digest));
  return `"${
    base64.replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "")
  }"`;
}

/**
 * An app whose route `/*` (all methods) is cached with `options` and answers
 * through `respond`, counting its runs.
 */
function appWith(
  options: CachedOptions,
  respond: (c: Context, run: number) => Response | Promise<Response> = (
    c,
    run,
  ) => c.text(`body ${run}`),
): { app: Hono; runs(): number } {
  let runs = 0;
  const app = new Hono();
  app.onError((_, c) => c.text("handler failed", 500));
  app.all("/*", cached(options), (c) => respond(c, ++runs));
  return { app, runs: () => runs };
}

/** Requests `url` and resolves to the X-Cache value and the body text. */
async function get(
  app: Hono,
  url: string,
  headers?: HeadersInit,
): Promise<{ cache: string | null; body: string; res: Response }> {
  const res = await app.request(url, { headers });
  return { cache: res.headers.get("x-cache"), body: await res.text(), res };
}

// --- Requests -------------------------------------------------------------

Deno.test("requests: GET is cached", async () => {
  const { app, runs } = appWith({ backend: new MemoryBackend() });
  assert.deepEqual(
    [(await get(app, "/x")).cache, (await get(app, "/x")).cache],
    ["MISS", "HIT"],
  );
  assert.equal(runs(), 1);
});

Deno.test("requests: HEAD after a GET is a HIT from the GET entry, same status and headers, no body", async () => {
  const { app, runs } = appWith(
    { backend: new MemoryBackend() },
    (c, run) => {
      c.header("x-custom", "yes");
      return c.json({ run }, 200);
    },
  );
  const miss = await app.request("/x");
  assert.deepEqual(await miss.json(), { run: 1 });
  const hit = await app.request("/x");
  await hit.body?.cancel();
  const head = await app.request("/x", { method: "HEAD" });
  assert.equal(runs(), 1);
  assert.equal(head.headers.get("x-cache"), "HIT");
  assert.equal(head.status, hit.status);
  for (const name of ["content-type", "x-custom", "etag", "x-cache"]) {
    assert.equal(head.headers.get(name), hit.headers.get(name), name);
  }
  assert.ok(head.headers.get("etag"));
  assert.equal(await head.text(), "");
});

for (const method of ["POST", "PUT", "DELETE"]) {
  Deno.test(`requests: ${method} passes through untouched: the handler runs each time, no X-Cache`, async () => {
    const { app, runs } = appWith({ backend: new MemoryBackend() });
    const first = await app.request("/x", { method });
    const second = await app.request("/x", { method });
    assert.equal(await first.text(), "body 1");
    assert.equal(await second.text(), "body 2");
    assert.equal(first.headers.get("x-cache"), null);
    assert.equal(second.headers.get("x-cache"), null);
    assert.equal(runs(), 2);
  });
}

for (
  const [name, value] of [["Authorization", "Bearer user-a"], [
    "Cookie",
    "session=user-a",
  ]]
) {
  Deno.test(`requests: ${name} bypasses the cache by default: neither read nor stored`, async () => {
    const { app, runs } = appWith(
      { backend: new MemoryBackend() },
      (c, run) =>
        c.text(
          c.req.header(name) ? `private ${run}` : `anonymous ${run}`,
        ),
    );
    assert.deepEqual(
      { ...(await get(app, "/x")), res: undefined },
      { cache: "MISS", body: "anonymous 1", res: undefined },
    );
    const credentialed = await get(app, "/x", { [name]: value });
    assert.equal(credentialed.cache, "BYPASS");
    assert.equal(credentialed.body, "private 2"); // the handler ran: not read
    assert.equal(runs(), 2);
    const anonymous = await get(app, "/x");
    assert.equal(anonymous.cache, "HIT");
    assert.equal(anonymous.body, "anonymous 1"); // not stored over it
    // Nor stored when the cache is empty.
    const first = await get(app, "/y", { [name]: value });
    assert.equal(first.cache, "BYPASS");
    const after = await get(app, "/y");
    assert.equal(after.cache, "MISS");
    assert.equal(after.body, "anonymous 4");
  });
}

/** Who an Authorization header names, for the per-user tests. */
const users: Record<string, string> = {
  "Bearer tok-alice-0123456789": "alice",
  "Bearer tok-bob-9876543210": "bob",
};

function perUserResponder(c: Context, run: number): Response {
  const who = users[c.req.header("authorization") ?? ""] ?? "anonymous";
  return c.text(`hello ${who} (run ${run})`);
}

Deno.test("requests: perUser keeps one entry per credential, each user hitting their own", async () => {
  const { app, runs } = appWith(
    { backend: new MemoryBackend(), perUser: true },
    perUserResponder,
  );
  const alice = { authorization: "Bearer tok-alice-0123456789" };
  const bob = { authorization: "Bearer tok-bob-9876543210" };
  const a1 = await get(app, "/me", alice);
  const b1 = await get(app, "/me", bob);
  assert.deepEqual([a1.cache, a1.body], ["MISS", "hello alice (run 1)"]);
  assert.deepEqual([b1.cache, b1.body], ["MISS", "hello bob (run 2)"]);
  const a2 = await get(app, "/me", alice);
  const b2 = await get(app, "/me", bob);
  assert.deepEqual([a2.cache, a2.body], ["HIT", "hello alice (run 1)"]);
  assert.deepEqual([b2.cache, b2.body], ["HIT", "hello bob (run 2)"]);
  // Cookies are credentials too.
  const c1 = await get(app, "/me", { cookie: "session=one" });
  const c2 = await get(app, "/me", { cookie: "session=two" });
  assert.deepEqual([c1.cache, c2.cache], ["MISS", "MISS"]);
  assert.equal(runs(), 4);
});

Deno.test("requests: perUser never stores the credential in clear (memory writes)", async () => {
  const backend = new MemoryBackend();
  const written: string[] = [];
  const write = backend.writeEntry.bind(backend);
  backend.writeEntry = (key, entry, options) => {
    written.push(
      key,
      entry.meta ?? "",
      entry.etag ?? "",
      new TextDecoder().decode(entry.body),
      JSON.stringify(options ?? {}),
    );
    return write(key, entry, options);
  };
  const { app } = appWith(
    { backend, perUser: true, wait: true },
    perUserResponder,
  );
  await get(app, "/me", { authorization: "Bearer tok-alice-0123456789" });
  await get(app, "/me", { cookie: "session=cookie-secret-42" });
  assert.ok(written.length > 0);
  for (const text of written) {
    assert.ok(!text.includes("tok-alice-0123456789"), text);
    assert.ok(!text.includes("cookie-secret-42"), text);
  }
});

for (const kind of backendKinds.filter((kind) => kind.name !== "memory")) {
  Deno.test({
    name:
      `requests: perUser never stores the credential in clear: ${kind.name} table`,
    ignore: !kind.available,
    async fn() {
      const table = `peruser_${crypto.randomUUID().slice(0, 8)}`;
      const { backend, dispose } = await kind.open({ table });
      try {
        const { app, runs } = appWith(
          { backend, perUser: true, wait: true },
          perUserResponder,
        );
        const alice = { authorization: "Bearer tok-alice-0123456789" };
        const bob = { authorization: "Bearer tok-bob-9876543210" };
        assert.equal((await get(app, "/me", alice)).cache, "MISS");
        assert.equal((await get(app, "/me", bob)).cache, "MISS");
        const again = await get(app, "/me", alice);
        assert.deepEqual(
          [again.cache, again.body],
          ["HIT", "hello alice (run 1)"],
        );
        assert.equal(runs(), 2);
        const select =
          `SELECT t::text AS row, key, meta, encode(value, 'hex') AS value FROM "${table}" t`;
        const rows = (kind.name.includes("PGlite")
          ? (await (await pglite()).query<Record<string, string>>(select))
            .rows
          : await withServer((sql) =>
            sql.unsafe(select)
          )) as Record<
            string,
            string
          >[];
        assert.equal(rows.length, 2);
        for (const token of ["tok-alice-0123456789", "tok-bob-9876543210"]) {
          const hex = Array.from(encoder.encode(token))
            .map((byte) => byte.toString(16).padStart(2, "0")).join("");
          for (const row of rows) {
            for (const column of ["row", "key", "meta", "value"]) {
              assert.ok(!String(row[column]).includes(token), column);
              assert.ok(!String(row[column]).includes(hex), column);
            }
          }
        }
      } finally {
        await dispose();
      }
    },
  });
}

Deno.test('requests: vary ["accept-language"] separates entries by its value and sets Vary', async () => {
  const { app, runs } = appWith(
    { backend: new MemoryBackend(), vary: ["accept-language"] },
    (c, run) => c.text(`${c.req.header("accept-language")} ${run}`),
  );
  const en = await get(app, "/x", { "accept-language": "en" });
  const de = await get(app, "/x", { "accept-language": "de" });
  const enAgain = await get(app, "/x", { "accept-language": "en" });
  const deAgain = await get(app, "/x", { "accept-language": "de" });
  assert.deepEqual([en.cache, en.body], ["MISS", "en 1"]);
  assert.deepEqual([de.cache, de.body], ["MISS", "de 2"]);
  assert.deepEqual([enAgain.cache, enAgain.body], ["HIT", "en 1"]);
  assert.deepEqual([deAgain.cache, deAgain.body], ["HIT", "de 2"]);
  assert.equal(runs(), 2);
  for (const { res } of [en, de, enAgain, deAgain]) {
    assert.match(res.headers.get("vary") ?? "", /accept-language/i);
  }
});

Deno.test('requests: vary ["*"] throws a TypeError', () => {
  assert.throws(
    () => cached({ backend: new MemoryBackend(), vary: ["*"] }),
    TypeError,
  );
});

Deno.test("requests: client Cache-Control no-cache and no-store are ignored by default", async () => {
  const { app, runs } = appWith({ backend: new MemoryBackend() });
  await get(app, "/x");
  for (const value of ["no-cache", "no-store", "no-cache, no-store"]) {
    const res = await get(app, "/x", { "cache-control": value });
    assert.deepEqual([res.cache, res.body], ["HIT", "body 1"], value);
  }
  assert.equal(runs(), 1);
});

Deno.test("requests: honorRequestCacheControl: no-cache re-runs the handler and refreshes the entry", async () => {
  const { app, runs } = appWith({
    backend: new MemoryBackend(),
    honorRequestCacheControl: true,
  });
  assert.equal((await get(app, "/x")).body, "body 1");
  const refreshed = await get(app, "/x", { "cache-control": "no-cache" });
  assert.deepEqual([refreshed.cache, refreshed.body], ["MISS", "body 2"]);
  const plain = await get(app, "/x");
  assert.deepEqual([plain.cache, plain.body], ["HIT", "body 2"]);
  assert.equal(runs(), 2);
});

Deno.test("requests: honorRequestCacheControl: no-store bypasses, neither read nor stored", async () => {
  const { app, runs } = appWith({
    backend: new MemoryBackend(),
    honorRequestCacheControl: true,
  });
  const noStore = { "cache-control": "no-store" };
  const first = await get(app, "/x", noStore);
  assert.deepEqual([first.cache, first.body], ["BYPASS", "body 1"]);
  const plain = await get(app, "/x");
  assert.deepEqual([plain.cache, plain.body], ["MISS", "body 2"]); // not stored
  const second = await get(app, "/x", noStore);
  assert.deepEqual([second.cache, second.body], ["BYPASS", "body 3"]); // not read
  const hit = await get(app, "/x");
  assert.deepEqual([hit.cache, hit.body], ["HIT", "body 2"]); // not overwritten
  assert.equal(runs(), 3);
});

Deno.test("requests: keyGenerator replaces the URL part of the key", async () => {
  const { app, runs } = appWith({
    backend: new MemoryBackend(),
    keyGenerator: (c) => `item:${c.req.query("id")}`,
  });
  const a = await get(app, "/a?id=1&tracking=x");
  const b = await get(app, "/b?id=1");
  const other = await get(app, "/a?id=2");
  assert.deepEqual([a.cache, a.body], ["MISS", "body 1"]);
  assert.deepEqual([b.cache, b.body], ["HIT", "body 1"]);
  assert.deepEqual([other.cache, other.body], ["MISS", "body 2"]);
  assert.equal(runs(), 2);
});

Deno.test("requests: the default key ignores the Host, so two hosts share an entry", async () => {
  const { app, runs } = appWith({ backend: new MemoryBackend() });
  const a = await get(app, "http://a.example/x");
  const b = await get(app, "http://b.example/x");
  assert.deepEqual([a.cache, b.cache], ["MISS", "HIT"]);
  assert.equal(b.body, a.body);
  assert.equal(runs(), 1);
});

Deno.test('requests: vary ["host"] separates entries by host', async () => {
  const { app, runs } = appWith({
    backend: new MemoryBackend(),
    vary: ["host"],
  });
  const a = await get(app, "http://a.example/x");
  const b = await get(app, "http://b.example/x");
  assert.deepEqual([a.cache, a.body], ["MISS", "body 1"]);
  assert.deepEqual([b.cache, b.body], ["MISS", "body 2"]);
  const aAgain = await get(app, "http://a.example/x");
  assert.deepEqual([aAgain.cache, aAgain.body], ["HIT", "body 1"]);
  assert.equal(runs(), 2);
});

// --- Responses never stored -------------------------------------------------

const unstorable: [string, Record<string, string>][] = [
  ["Set-Cookie", { "set-cookie": "session=abc; HttpOnly" }],
  ["Cache-Control: private", { "cache-control": "private, max-age=60" }],
  ["Cache-Control: no-store", { "cache-control": "no-store" }],
  ["Cache-Control: no-cache", { "cache-control": "no-cache" }],
  ["Vary: *", { vary: "*" }],
  ["Vary naming a request header not in the key", {
    vary: "Accept-Encoding",
  }],
];

for (const [rule, headers] of unstorable) {
  Deno.test(`responses: ${rule} is never stored`, async () => {
    const { app, runs } = appWith(
      { backend: new MemoryBackend() },
      (c, run) => {
        for (const [name, value] of Object.entries(headers)) {
          c.header(name, value);
        }
        return c.text(`body ${run}`);
      },
    );
    const first = await get(app, "/x");
    const second = await get(app, "/x");
    assert.deepEqual([first.cache, first.body], ["BYPASS", "body 1"]);
    assert.deepEqual([second.cache, second.body], ["BYPASS", "body 2"]);
    assert.equal(runs(), 2);
  });
}

Deno.test('responses: Vary: Accept-Encoding is stored when vary: ["accept-encoding"] keys on it', async () => {
  const { app, runs } = appWith(
    { backend: new MemoryBackend(), vary: ["accept-encoding"] },
    (c, run) => {
      c.header("vary", "Accept-Encoding");
      return c.text(`body ${run}`);
    },
  );
  const gzip = { "accept-encoding": "gzip" };
  const first = await get(app, "/x", gzip);
  const second = await get(app, "/x", gzip);
  const br = await get(app, "/x", { "accept-encoding": "br" });
  assert.deepEqual([first.cache, second.cache, br.cache], [
    "MISS",
    "HIT",
    "MISS",
  ]);
  assert.equal(second.body, "body 1");
  assert.equal(runs(), 2);
});

Deno.test("status: only cacheableStatusCodes are stored, by default 200 only (a 404 is not)", async () => {
  const { app, runs } = appWith(
    { backend: new MemoryBackend() },
    (c, run) => c.text(`missing ${run}`, 404),
  );
  const first = await get(app, "/x");
  const second = await get(app, "/x");
  assert.equal(first.res.status, 404);
  assert.deepEqual([first.cache, second.cache], ["BYPASS", "BYPASS"]);
  assert.equal(second.body, "missing 2");
  assert.equal(runs(), 2);
});

Deno.test("status: a 404 is stored when cacheableStatusCodes is [200, 404]", async () => {
  const { app, runs } = appWith(
    { backend: new MemoryBackend(), cacheableStatusCodes: [200, 404] },
    (c, run) => c.text(`missing ${run}`, 404),
  );
  const first = await get(app, "/x");
  const second = await get(app, "/x");
  assert.deepEqual([first.cache, second.cache], ["MISS", "HIT"]);
  assert.equal(second.res.status, 404);
  assert.equal(second.body, "missing 1");
  assert.equal(runs(), 1);
});

Deno.test("status: a 500 from the handler is never stored, even when listed", async () => {
  const { app, runs } = appWith(
    { backend: new MemoryBackend(), cacheableStatusCodes: [200, 500] },
    (c, run) => c.text(`failed ${run}`, 500),
  );
  const first = await get(app, "/x");
  const second = await get(app, "/x");
  assert.equal(first.res.status, 500);
  assert.deepEqual([first.cache, second.cache], ["BYPASS", "BYPASS"]);
  assert.equal(second.body, "failed 2");
  assert.equal(runs(), 2);
});

Deno.test("status: a handler that throws is never stored", async () => {
  const { app, runs } = appWith(
    { backend: new MemoryBackend(), cacheableStatusCodes: [200, 500] },
    () => {
      throw new Error("boom");
    },
  );
  const first = await get(app, "/x");
  const second = await get(app, "/x");
  assert.equal(first.res.status, 500);
  assert.equal(second.res.status, 500);
  assert.notEqual(second.cache, "HIT");
  assert.equal(runs(), 2);
});

// --- Size -----------------------------------------------------------------

const big = Uint8Array.from({ length: 2048 }, (_, i) => (i * 7) % 256);

Deno.test("size: a body of 2 × maxBodySize with Content-Length is served intact and not stored", async () => {
  const { app, runs } = appWith(
    { backend: new MemoryBackend(), maxBodySize: 1024 },
    () =>
      new Response(big.slice(), {
        headers: {
          "content-type": "application/octet-stream",
          "content-length": String(big.byteLength),
        },
      }),
  );
  for (const run of [1, 2]) {
    const res = await app.request("/x");
    assert.equal(res.headers.get("x-cache"), "BYPASS");
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), big);
    assert.equal(runs(), run);
  }
});

Deno.test("size: a body of 2 × maxBodySize streamed in chunks without Content-Length is served intact and not stored", async () => {
  const { app, runs } = appWith(
    { backend: new MemoryBackend(), maxBodySize: 1024 },
    () => {
      let offset = 0;
      const stream = new ReadableStream<Uint8Array>({
        pull(controller) {
          if (offset >= big.byteLength) return controller.close();
          controller.enqueue(big.slice(offset, offset + 100));
          offset += 100;
        },
      });
      return new Response(stream, {
        headers: { "content-type": "application/octet-stream" },
      });
    },
  );
  for (const run of [1, 2]) {
    const res = await app.request("/x");
    assert.equal(res.headers.get("content-length"), null);
    assert.equal(res.headers.get("x-cache"), "BYPASS");
    assert.deepEqual(new Uint8Array(await res.arrayBuffer()), big);
    assert.equal(runs(), run);
  }
});

// --- Streaming --------------------------------------------------------------

Deno.test("streaming: text/event-stream streams through unbuffered and is not stored", async () => {
  const firstRead = gate();
  let runs = 0;
  const app = new Hono();
  app.get("/events", cached({ backend: new MemoryBackend() }), () => {
    const run = ++runs;
    const stream = new ReadableStream<Uint8Array>({
      async start(controller) {
        controller.enqueue(encoder.encode(`data: first ${run}\n\n`));
        // The stream cannot end before the client has read the first event:
        // a middleware that buffered the body would deadlock here.
        if (run === 1) await firstRead.promise;
        controller.enqueue(encoder.encode(`data: last ${run}\n\n`));
        controller.close();
      },
    });
    return new Response(stream, {
      headers: { "content-type": "text/event-stream" },
    });
  });
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen() {} },
    app.fetch,
  );
  const abort = new AbortController();
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    const url = `http://127.0.0.1:${server.addr.port}/events`;
    const timeout = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new Error("SSE: the first event never arrived")),
        5000,
      );
    });
    const exchange = (async () => {
      const res = await fetch(url, { signal: abort.signal });
      assert.equal(res.headers.get("x-cache"), "BYPASS");
      const reader = res.body!.pipeThrough(new TextDecoderStream())
        .getReader();
      let text = "";
      while (!text.includes("\n\n")) {
        const { done, value } = await reader.read();
        assert.ok(!done, "the stream ended before the first event");
        text += value;
      }
      // The first event came while the handler still holds the stream open.
      assert.equal(text, "data: first 1\n\n");
      firstRead.open();
      while (true) {
        const { done, value } = await reader.read();
        if (done) break;
        text += value;
      }
      return text;
    })();
    const text = await Promise.race([exchange, timeout]);
    assert.equal(text, "data: first 1\n\ndata: last 1\n\n");
    // Not stored: the next request runs the handler again.
    const again = await fetch(url, { signal: abort.signal });
    assert.equal(again.headers.get("x-cache"), "BYPASS");
    assert.equal(await again.text(), "data: first 2\n\ndata: last 2\n\n");
    assert.equal(runs, 2);
  } finally {
    clearTimeout(timer);
    firstRead.open();
    abort.abort();
    await server.shutdown();
  }
});

// --- ETag -------------------------------------------------------------------

Deno.test('etag: every stored entry has a strong ETag "<base64url sha256 of body>"', async () => {
  const body = Uint8Array.from({ length: 300 }, (_, i) => (i * 31) % 256);
  const { app } = appWith(
    { backend: new MemoryBackend() },
    () => new Response(body.slice()),
  );
  const expected = await strongTag(body);
  const miss = await app.request("/x");
  await miss.body?.cancel();
  const hit = await app.request("/x");
  await hit.body?.cancel();
  assert.equal(miss.headers.get("x-cache"), "MISS");
  assert.equal(hit.headers.get("x-cache"), "HIT");
  assert.equal(miss.headers.get("etag"), expected);
  assert.equal(hit.headers.get("etag"), expected);
  assert.match(expected, /^"[A-Za-z0-9_-]{43}"$/);
});

Deno.test("etag: the handler's own ETag is kept", async () => {
  const { app } = appWith({ backend: new MemoryBackend() }, (c) => {
    c.header("etag", 'W/"v42"');
    return c.text("versioned");
  });
  const miss = await get(app, "/x");
  const hit = await get(app, "/x");
  assert.equal(hit.cache, "HIT");
  assert.equal(miss.res.headers.get("etag"), 'W/"v42"');
  assert.equal(hit.res.headers.get("etag"), 'W/"v42"');
  const notModified = await app.request("/x", {
    headers: { "if-none-match": '"v42"' },
  });
  assert.equal(notModified.status, 304);
  await notModified.body?.cancel();
});

/** If-None-Match values that match the body `body 1`, by their rule. */
async function matchingConditions(): Promise<[string, string][]> {
  const tag = await strongTag("body 1");
  return [
    ["the exact tag", tag],
    ["weak comparison W/", `W/${tag}`],
    ["a list", `"a", ${tag}, "b"`],
    ["*", "*"],
  ];
}

for (
  const [rule, index] of [
    ["the exact tag", 0],
    ["weak comparison W/", 1],
    ['a list "a", "b"', 2],
    ["*", 3],
  ] as const
) {
  Deno.test(`etag: If-None-Match matching by ${rule} → 304 with no body, on a hit and on a miss`, async () => {
    const value = (await matchingConditions())[index][1];
    const { app, runs } = appWith({ backend: new MemoryBackend() });
    const onMiss = await app.request("/x", {
      headers: { "if-none-match": value },
    });
    assert.equal(onMiss.headers.get("x-cache"), "MISS");
    assert.equal(onMiss.status, 304);
    assert.equal(await onMiss.text(), "");
    assert.equal(onMiss.headers.get("etag"), await strongTag("body 1"));
    const onHit = await app.request("/x", {
      headers: { "if-none-match": value },
    });
    assert.equal(onHit.headers.get("x-cache"), "HIT");
    assert.equal(onHit.status, 304);
    assert.equal(await onHit.text(), "");
    // The miss stored the entry all the same.
    const plain = await get(app, "/x");
    assert.deepEqual([plain.res.status, plain.body], [200, "body 1"]);
    assert.equal(runs(), 1);
  });
}

Deno.test("etag: a non-matching If-None-Match → 200 with the body", async () => {
  const { app } = appWith({ backend: new MemoryBackend() });
  const conditional = { "if-none-match": '"nope", W/"other"' };
  const miss = await get(app, "/x", conditional);
  const hit = await get(app, "/x", conditional);
  assert.deepEqual([miss.res.status, miss.cache, miss.body], [
    200,
    "MISS",
    "body 1",
  ]);
  assert.deepEqual([hit.res.status, hit.cache, hit.body], [
    200,
    "HIT",
    "body 1",
  ]);
});

for (const kind of backendKinds.filter((kind) => kind.name !== "memory")) {
  Deno.test({
    name:
      `etag: a 304 on a hit does not transfer the stored body: ${kind.name}`,
    ignore: !kind.available,
    async fn() {
      const { backend, dispose } = await kind.open();
      try {
        // The middleware reads through lookup() where a backend has it.
        const reads: (StoredEntry | undefined)[] = [];
        const lookup = backend.lookup!.bind(backend);
        backend.lookup = async (key, options) => {
          const found = await lookup(key, options);
          reads.push(found.entry);
          return found;
        };
        const body = "x".repeat(5000);
        const { app, runs } = appWith(
          { backend, wait: true },
          (c) => c.text(body),
        );
        const miss = await get(app, "/x");
        assert.equal(miss.body, body);
        const tag = await strongTag(body);
        assert.equal(miss.res.headers.get("etag"), tag);
        reads.length = 0;
        const res = await app.request("/x", {
          headers: { "if-none-match": `W/${tag}` },
        });
        assert.equal(res.status, 304);
        assert.equal(res.headers.get("x-cache"), "HIT");
        assert.equal(res.headers.get("etag"), tag);
        assert.equal(await res.text(), "");
        assert.equal(runs(), 1);
        // The backend was asked with the client's tags and sent no body.
        const entry = reads.at(-1);
        assert.ok(entry);
        assert.equal(entry.notModified, true);
        assert.equal(entry.body.byteLength, 0);
      } finally {
        await dispose();
      }
    },
  });
}

// --- Cache-Control and TTL ---------------------------------------------------

Deno.test("cacheControl option: set on MISS and HIT, max-age reduced by the Age on a hit", async () => {
  const { backend, advance } = clocked();
  const { app, runs } = appWith({
    backend,
    cacheControl: "public, max-age=60",
    expire: 60,
  }, (c, run) => {
    c.header("cache-control", "no-transform");
    return c.text(`body ${run}`);
  });
  const miss = await get(app, "/x");
  assert.equal(miss.cache, "MISS");
  assert.equal(miss.res.headers.get("cache-control"), "public, max-age=60");
  advance(10);
  const hit = await get(app, "/x");
  assert.equal(hit.cache, "HIT");
  assert.equal(hit.res.headers.get("age"), "10");
  assert.equal(hit.res.headers.get("cache-control"), "public, max-age=50");
  assert.equal(runs(), 1);
});

Deno.test("TTL from the handler: Cache-Control max-age=30 without expire → fresh at 29 s, expired at 31 s", async () => {
  const { backend, advance } = clocked();
  const { app, runs } = appWith({ backend }, (c, run) => {
    c.header("cache-control", "max-age=30");
    return c.text(`body ${run}`);
  });
  assert.equal((await get(app, "/x")).cache, "MISS");
  advance(29);
  assert.deepEqual(
    [(await get(app, "/x")).cache, runs()],
    ["HIT", 1],
  );
  advance(2);
  const expired = await get(app, "/x");
  assert.deepEqual([expired.cache, expired.body], ["MISS", "body 2"]);
});

Deno.test("TTL from the handler: s-maxage=10 wins over max-age=100 (expired at 11 s)", async () => {
  const { backend, advance } = clocked();
  const { app } = appWith({ backend }, (c, run) => {
    c.header("cache-control", "s-maxage=10, max-age=100");
    return c.text(`body ${run}`);
  });
  assert.equal((await get(app, "/x")).cache, "MISS");
  advance(9);
  assert.equal((await get(app, "/x")).cache, "HIT");
  advance(2);
  const expired = await get(app, "/x");
  assert.deepEqual([expired.cache, expired.body], ["MISS", "body 2"]);
});

// --- X-Cache ----------------------------------------------------------------

Deno.test("X-Cache: every response through cached() says HIT, MISS or BYPASS", async () => {
  const { app } = appWith({ backend: new MemoryBackend() });
  assert.equal((await get(app, "/x")).cache, "MISS");
  assert.equal((await get(app, "/x")).cache, "HIT");
  assert.equal(
    (await get(app, "/x", { authorization: "Bearer t" })).cache,
    "BYPASS",
  );
});

Deno.test('X-Cache: the header name is configurable (cacheStatusHeader: "X-My-Cache")', async () => {
  const { app } = appWith({
    backend: new MemoryBackend(),
    cacheStatusHeader: "X-My-Cache",
  });
  const miss = await app.request("/x");
  const hit = await app.request("/x");
  const bypass = await app.request("/x", { headers: { cookie: "a=b" } });
  assert.equal(miss.headers.get("x-my-cache"), "MISS");
  assert.equal(hit.headers.get("x-my-cache"), "HIT");
  assert.equal(bypass.headers.get("x-my-cache"), "BYPASS");
  for (const res of [miss, hit, bypass]) {
    assert.equal(res.headers.get("x-cache"), null);
    await res.body?.cancel();
  }
});

Deno.test("X-Cache: cacheStatusHeader: false sends no status header, and caching still works", async () => {
  const { app, runs } = appWith({
    backend: new MemoryBackend(),
    cacheStatusHeader: false,
  });
  const miss = await app.request("/x");
  const hit = await app.request("/x");
  const bypass = await app.request("/x", { headers: { cookie: "a=b" } });
  for (const res of [miss, hit, bypass]) {
    assert.equal(res.headers.get("x-cache"), null);
    for (const [, value] of res.headers) {
      assert.ok(!["HIT", "MISS", "BYPASS", "STALE"].includes(value));
    }
    await res.body?.cancel();
  }
  assert.ok(hit.headers.has("age")); // the hit came from the cache
  assert.equal(runs(), 2); // the miss, and the bypass
});

// --- CVE regressions (hono/cache, 2026) ---------------------------------------

/** A route whose responses carry `Cache-Control: <directive>` and name the caller. */
function privateApp(directive: string, perUser: boolean) {
  return appWith({ backend: new MemoryBackend(), perUser }, (c, run) => {
    c.header("cache-control", directive);
    const who = c.req.header("authorization") ?? "anonymous";
    return c.text(`${who} secret ${run}`);
  });
}

for (const directive of ["private", "no-store"]) {
  Deno.test(`CVE: a Cache-Control: ${directive} response is never served to another request`, async () => {
    const { app, runs } = privateApp(directive, false);
    const first = await get(app, "/account");
    const second = await get(app, "/account");
    assert.deepEqual([first.cache, first.body], [
      "BYPASS",
      "anonymous secret 1",
    ]);
    assert.deepEqual([second.cache, second.body], [
      "BYPASS",
      "anonymous secret 2",
    ]);
    assert.equal(runs(), 2);
  });

  Deno.test(`CVE: with perUser, a Cache-Control: ${directive} response is never served to another user`, async () => {
    const { app } = privateApp(directive, true);
    const alice = await get(app, "/me", { authorization: "alice" });
    const bob = await get(app, "/me", { authorization: "bob" });
    const aliceAgain = await get(app, "/me", { authorization: "alice" });
    const bobAgain = await get(app, "/me", { authorization: "bob" });
    assert.equal(alice.body, "alice secret 1");
    assert.equal(bob.body, "bob secret 2");
    assert.match(aliceAgain.body, /^alice secret/);
    assert.match(bobAgain.body, /^bob secret/);
  });

  Deno.test(`CVE: with perUser, a Cache-Control: ${directive} response to an anonymous request is never served to another anonymous request`, async () => {
    const { app, runs } = privateApp(directive, true);
    const first = await get(app, "/account");
    const second = await get(app, "/account");
    assert.equal(first.body, "anonymous secret 1");
    assert.notEqual(second.cache, "HIT");
    assert.equal(second.body, "anonymous secret 2");
    assert.equal(runs(), 2);
  });
}

for (
  const [header, credential] of [["Authorization", "authorization"], [
    "Cookie",
    "cookie",
  ]]
) {
  Deno.test(`CVE: a Vary: ${header} response is never stored or served across users, perUser off`, async () => {
    const { app, runs } = appWith(
      { backend: new MemoryBackend() },
      (c, run) => {
        c.header("vary", header);
        return c.text(`${c.req.header(credential) ?? "anonymous"} ${run}`);
      },
    );
    const anonymous = await get(app, "/x");
    assert.deepEqual([anonymous.cache, anonymous.body], [
      "BYPASS",
      "anonymous 1",
    ]);
    const alice = await get(app, "/x", { [credential]: "alice" });
    const bob = await get(app, "/x", { [credential]: "bob" });
    const anonymousAgain = await get(app, "/x");
    assert.equal(alice.body, "alice 2");
    assert.equal(bob.body, "bob 3");
    assert.deepEqual([anonymousAgain.cache, anonymousAgain.body], [
      "BYPASS",
      "anonymous 4",
    ]);
    assert.equal(runs(), 4);
  });

  Deno.test(`CVE: a Vary: ${header} response with perUser on: each user sees only their own`, async () => {
    const { app, runs } = appWith(
      { backend: new MemoryBackend(), perUser: true },
      (c, run) => {
        c.header("vary", header);
        return c.text(`${c.req.header(credential) ?? "anonymous"} ${run}`);
      },
    );
    const sequence = ["alice", "bob", "alice", "bob", undefined, "alice"];
    const expected = ["alice 1", "bob 2", "alice 1", "bob 2", "anonymous 3"];
    expected.push("alice 1");
    for (const [i, who] of sequence.entries()) {
      const res = await get(app, "/x", who ? { [credential]: who } : {});
      assert.equal(res.body, expected[i], `request ${i}`);
    }
    assert.equal(runs(), 3);
  });
}

// --- Failing open -------------------------------------------------------------

/** A backend whose entry reads and/or writes reject: a faulty store. */
class FaultyBackend implements CacheBackend {
  readonly namespace = "faulty";
  #inner = new MemoryBackend();
  constructor(readonly failing: { read: boolean; write: boolean }) {}
  get(key: string): Promise<CacheValue | undefined> {
    return this.#inner.get(key);
  }
  set(key: string, value: CacheValue, options?: SetOptions): Promise<void> {
    return this.#inner.set(key, value, options);
  }
  has(key: string): Promise<boolean> {
    return this.#inner.has(key);
  }
  delete(key: string): Promise<boolean> {
    return this.#inner.delete(key);
  }
  clear(): Promise<void> {
    return this.#inner.clear();
  }
  close(): Promise<void> {
    return this.#inner.close();
  }
  readEntry(
    key: string,
    options?: ReadEntryOptions,
  ): Promise<StoredEntry | undefined> {
    if (this.failing.read) {
      return Promise.reject(new Error("read failed: database down"));
    }
    return this.#inner.readEntry(key, options);
  }
  writeEntry(
    key: string,
    entry: CacheEntry,
    options?: WriteEntryOptions,
  ): Promise<void> {
    if (this.failing.write) {
      return Promise.reject(new Error("write failed: database down"));
    }
    return this.#inner.writeEntry(key, entry, options);
  }
}

Deno.test("fail-open: readEntry and writeEntry reject → the handler's 200 with X-Cache: BYPASS, onError told", async () => {
  const errors: [unknown, CacheErrorContext][] = [];
  const { app, runs } = appWith({
    backend: new FaultyBackend({ read: true, write: true }),
    onError: (error, context) => errors.push([error, context]),
  });
  for (const run of [1, 2]) {
    const res = await get(app, "/x");
    assert.equal(res.res.status, 200);
    assert.deepEqual([res.cache, res.body], ["BYPASS", `body ${run}`]);
  }
  assert.equal(runs(), 2);
  assert.ok(errors.length >= 2);
  const [error, context] = errors[0];
  assert.ok(error instanceof Error);
  assert.equal(error.message, "read failed: database down");
  assert.equal(context.operation, "readEntry");
  assert.equal(context.namespace, "faulty");
});

Deno.test("fail-open: writeEntry rejects → the handler's 200 with X-Cache: BYPASS, onError told", async () => {
  const errors: [unknown, CacheErrorContext][] = [];
  const { app, runs } = appWith({
    backend: new FaultyBackend({ read: false, write: true }),
    wait: true,
    onError: (error, context) => errors.push([error, context]),
  });
  const res = await get(app, "/x");
  assert.equal(res.res.status, 200);
  assert.deepEqual([res.cache, res.body], ["BYPASS", "body 1"]);
  assert.equal(runs(), 1);
  assert.equal(errors.length, 1);
  const [error, context] = errors[0];
  assert.ok(error instanceof Error);
  assert.equal(error.message, "write failed: database down");
  assert.equal(context.operation, "writeEntry");
  assert.equal(typeof context.key, "string");
});

Deno.test("fail-open: readEntry rejects (writes work) → the handler's 200 with X-Cache: BYPASS, onError told", async () => {
  const errors: [unknown, CacheErrorContext][] = [];
  const { app, runs } = appWith({
    backend: new FaultyBackend({ read: true, write: false }),
    onError: (error, context) => errors.push([error, context]),
  });
  const res = await get(app, "/x");
  assert.equal(res.res.status, 200);
  assert.deepEqual([res.cache, res.body], ["BYPASS", "body 1"]);
  assert.equal(runs(), 1);
  assert.deepEqual(errors.map(([, context]) => context.operation), [
    "readEntry",
  ]);
});
