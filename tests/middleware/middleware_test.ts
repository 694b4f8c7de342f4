// Issue 2: the basics of cached(): GET only, 200s only, byte-exact replay,
// X-Cache and Age, the key, expiry, and validation of the options.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { MemoryBackend } from "../../backends/memory.ts";
import { cached } from "../../middleware/cached.ts";
import type { CachedOptions } from "../../middleware/types.ts";
import { backendKinds } from "../_helpers.ts";

/** A MemoryBackend on a clock the test moves by hand (milliseconds). */
function clocked(): { backend: MemoryBackend; advance(seconds: number): void } {
  let now = 1_700_000_000_000;
  const backend = new MemoryBackend({ now: () => now });
  return { backend, advance: (seconds) => now += seconds * 1000 };
}

/** An app with one cached GET route `/*` that counts its runs and answers `body ${runs}`. */
function countingApp(options: CachedOptions): {
  app: Hono;
  runs(): number;
} {
  let runs = 0;
  const app = new Hono();
  app.get("/*", cached(options), (c) => {
    runs++;
    return c.text(`body ${runs}`);
  });
  return { app, runs: () => runs };
}

/** Asserts an error message starts with a capital and ends without a period. */
function assertMessageStyle(error: unknown): void {
  assert.ok(error instanceof Error);
  assert.match(error.message, /^[A-Z]/, `message: ${error.message}`);
  assert.doesNotMatch(error.message, /\.$/, `message: ${error.message}`);
}

Deno.test("GET is cached: the second GET is a HIT and the handler runs once", async () => {
  const { app, runs } = countingApp({ backend: new MemoryBackend() });
  const first = await app.request("/x");
  const second = await app.request("/x");
  assert.equal(first.status, 200);
  assert.equal(await first.text(), "body 1");
  assert.equal(second.status, 200);
  assert.equal(await second.text(), "body 1");
  assert.equal(runs(), 1);
});

Deno.test("only GET is cached: a POST through cached() runs the handler every time", async () => {
  let runs = 0;
  const app = new Hono();
  app.post("/x", cached({ backend: new MemoryBackend() }), (c) => {
    runs++;
    return c.text(`post ${runs}`);
  });
  const first = await app.request("/x", { method: "POST" });
  const second = await app.request("/x", { method: "POST" });
  assert.equal(await first.text(), "post 1");
  assert.equal(await second.text(), "post 2");
  assert.equal(runs, 2);
});

Deno.test("only 200 is stored by default: a 201 is answered but not stored", async () => {
  let runs = 0;
  const app = new Hono();
  app.get("/x", cached({ backend: new MemoryBackend() }), (c) => {
    runs++;
    return c.text(`created ${runs}`, 201);
  });
  const first = await app.request("/x");
  const second = await app.request("/x");
  assert.equal(first.status, 201);
  assert.equal(await first.text(), "created 1");
  assert.equal(second.status, 201);
  assert.equal(await second.text(), "created 2");
  assert.equal(runs, 2);
});

Deno.test("replay is byte-exact: status, headers and a binary body with every byte value", async () => {
  // A PNG signature, then every byte value twice.
  const png = new Uint8Array(8 + 512);
  png.set([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]);
  for (let i = 0; i < 512; i++) png[8 + i] = i % 256;
  let runs = 0;
  const app = new Hono();
  app.get("/logo.png", cached({ backend: new MemoryBackend() }), () => {
    runs++;
    return new Response(png.slice(), {
      status: 200,
      headers: {
        "content-type": "image/png",
        "x-custom": "kept as is",
        "content-language": "de",
      },
    });
  });
  const miss = await app.request("/logo.png");
  const missBody = new Uint8Array(await miss.arrayBuffer());
  const hit = await app.request("/logo.png");
  const hitBody = new Uint8Array(await hit.arrayBuffer());
  assert.equal(miss.headers.get("x-cache"), "MISS");
  assert.equal(hit.headers.get("x-cache"), "HIT");
  assert.equal(runs, 1);
  for (const res of [miss, hit]) {
    assert.equal(res.status, 200);
    assert.equal(res.headers.get("content-type"), "image/png");
    assert.equal(res.headers.get("x-custom"), "kept as is");
    assert.equal(res.headers.get("content-language"), "de");
  }
  assert.deepEqual(missBody, png);
  assert.deepEqual(hitBody, png);
});

Deno.test("replay keeps the status: a stored 203 is replayed as 203", async () => {
  let runs = 0;
  const app = new Hono();
  app.get(
    "/x",
    cached({ backend: new MemoryBackend(), cacheableStatusCodes: [203] }),
    (c) => {
      runs++;
      return c.text("non-authoritative", 203);
    },
  );
  await (await app.request("/x")).body?.cancel();
  const hit = await app.request("/x");
  assert.equal(hit.headers.get("x-cache"), "HIT");
  assert.equal(hit.status, 203);
  assert.equal(await hit.text(), "non-authoritative");
  assert.equal(runs, 1);
});

Deno.test("X-Cache: MISS when a fresh response is stored, HIT with Age when served from the cache", async () => {
  const { backend } = clocked();
  const { app, runs } = countingApp({ backend, expire: 60 });
  const miss = await app.request("/x");
  assert.equal(miss.headers.get("x-cache"), "MISS");
  assert.equal(miss.headers.get("age"), null);
  assert.equal(await miss.text(), "body 1");
  const hit = await app.request("/x");
  assert.equal(hit.headers.get("x-cache"), "HIT");
  assert.equal(hit.headers.get("age"), "0");
  assert.equal(await hit.text(), "body 1");
  assert.equal(runs(), 1);
});

Deno.test("Age: integer seconds since the entry was stored (clock advanced 7 s → Age: 7)", async () => {
  const { backend, advance } = clocked();
  const { app, runs } = countingApp({ backend, expire: 60 });
  await (await app.request("/x")).text();
  advance(7.4);
  const hit = await app.request("/x");
  assert.equal(hit.headers.get("x-cache"), "HIT");
  assert.equal(hit.headers.get("age"), "7");
  assert.equal(await hit.text(), "body 1");
  assert.equal(runs(), 1);
});

Deno.test("key: query parameters are sorted, so ?a=1&b=2 and ?b=2&a=1 share an entry", async () => {
  const { app, runs } = countingApp({ backend: new MemoryBackend() });
  const first = await app.request("/x?a=1&b=2");
  const second = await app.request("/x?b=2&a=1");
  assert.equal(first.headers.get("x-cache"), "MISS");
  assert.equal(second.headers.get("x-cache"), "HIT");
  assert.equal(await second.text(), await first.text());
  assert.equal(runs(), 1);
});

Deno.test("key: different paths and different queries get different entries", async () => {
  const { app, runs } = countingApp({ backend: new MemoryBackend() });
  const urls = ["/x", "/y", "/x?a=1", "/x?a=2", "/x?b=1", "/x?a=1&a=2"];
  const bodies = [];
  for (const url of urls) {
    const res = await app.request(url);
    assert.equal(res.headers.get("x-cache"), "MISS", url);
    bodies.push(await res.text());
  }
  assert.equal(runs(), urls.length);
  assert.equal(new Set(bodies).size, urls.length);
  // Each one is a hit on its own entry.
  for (const [i, url] of urls.entries()) {
    const res = await app.request(url);
    assert.equal(res.headers.get("x-cache"), "HIT", url);
    assert.equal(await res.text(), bodies[i], url);
  }
  assert.equal(runs(), urls.length);
});

Deno.test("key: a SHA-256 digest over method, path and query, not the URL in clear", async () => {
  const backend = new MemoryBackend();
  const keys: string[] = [];
  const write = backend.writeEntry.bind(backend);
  backend.writeEntry = (key, entry, options) => {
    keys.push(key);
    return write(key, entry, options);
  };
  const { app } = countingApp({ backend, wait: true });
  await (await app.request("/secret-path?token=abc")).text();
  assert.equal(keys.length, 1);
  assert.match(keys[0], /^[0-9a-f]{64}$/);
  assert.ok(!keys[0].includes("secret-path"));
  assert.ok(!keys[0].includes("abc"));
});

Deno.test("expire: an entry expires after expire seconds and the handler runs again", async () => {
  const { backend, advance } = clocked();
  const { app, runs } = countingApp({ backend, expire: 5 });
  assert.equal((await app.request("/x")).headers.get("x-cache"), "MISS");
  advance(4);
  const fresh = await app.request("/x");
  assert.equal(fresh.headers.get("x-cache"), "HIT");
  assert.equal(await fresh.text(), "body 1");
  advance(2); // 6 s after the write
  const expired = await app.request("/x");
  assert.equal(expired.headers.get("x-cache"), "MISS");
  assert.equal(await expired.text(), "body 2");
  assert.equal(runs(), 2);
});

Deno.test("default expire is 60 s without expire or handler Cache-Control: HIT at 59 s, MISS at 61 s", async () => {
  const { backend, advance } = clocked();
  const { app, runs } = countingApp({ backend });
  assert.equal((await app.request("/x")).headers.get("x-cache"), "MISS");
  advance(59);
  const fresh = await app.request("/x");
  assert.equal(fresh.headers.get("x-cache"), "HIT");
  assert.equal(await fresh.text(), "body 1");
  advance(2); // 61 s after the write
  const expired = await app.request("/x");
  assert.equal(expired.headers.get("x-cache"), "MISS");
  assert.equal(await expired.text(), "body 2");
  assert.equal(runs(), 2);
});

for (const kind of backendKinds.filter((kind) => kind.name !== "memory")) {
  Deno.test({
    name: `MISS then HIT on PostgresBackend: ${kind.name}`,
    ignore: !kind.available,
    async fn() {
      const { backend, dispose } = await kind.open();
      try {
        const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
        let runs = 0;
        const app = new Hono();
        app.get("/bin", cached({ backend, expire: 60 }), () => {
          runs++;
          return new Response(bytes.slice(), {
            headers: { "content-type": "application/octet-stream" },
          });
        });
        const miss = await app.request("/bin");
        assert.equal(miss.headers.get("x-cache"), "MISS");
        assert.deepEqual(new Uint8Array(await miss.arrayBuffer()), bytes);
        const hit = await app.request("/bin");
        assert.equal(hit.headers.get("x-cache"), "HIT");
        assert.equal(hit.status, 200);
        assert.equal(
          hit.headers.get("content-type"),
          "application/octet-stream",
        );
        assert.deepEqual(new Uint8Array(await hit.arrayBuffer()), bytes);
        assert.equal(runs, 1);
      } finally {
        await dispose();
      }
    },
  });
}

Deno.test('invalid options: vary ["*"] throws a TypeError when the middleware is created', () => {
  for (const vary of [["*"], ["accept", "*"], "*"]) {
    const error = (() => {
      try {
        cached({ backend: new MemoryBackend(), vary });
      } catch (error) {
        return error;
      }
    })();
    assert.ok(error instanceof TypeError, `vary ${JSON.stringify(vary)}`);
    assertMessageStyle(error);
  }
});

Deno.test("invalid options: expire 0 or -1 throws a RangeError", () => {
  for (const expire of [0, -1]) {
    const error = (() => {
      try {
        cached({ backend: new MemoryBackend(), expire });
      } catch (error) {
        return error;
      }
    })();
    assert.ok(error instanceof RangeError, `expire ${expire}`);
    assertMessageStyle(error);
  }
});

Deno.test("invalid options: a missing backend throws a TypeError", () => {
  for (const options of [{}, { backend: undefined }, { expire: 10 }]) {
    const error = (() => {
      try {
        cached(options);
      } catch (error) {
        return error;
      }
    })();
    assert.ok(error instanceof TypeError, JSON.stringify(options));
    assertMessageStyle(error);
  }
});
