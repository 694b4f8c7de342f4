// Proxy mode's primary key is the whole target URI (RFC 9111 §2): one route
// in front of several hosts never answers one host with another's response.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { MemoryBackend } from "../../backends/memory.ts";
import { cached } from "../../middleware/cached.ts";

function hostEcho(mode: "app" | "proxy"): { app: Hono; runs(): number } {
  let runs = 0;
  const app = new Hono();
  app.get("/*", cached({ backend: new MemoryBackend(), mode }), (c) => {
    runs++;
    return new Response(`page of ${new URL(c.req.url).host}`, {
      headers: { "cache-control": "max-age=60" },
    });
  });
  return { app, runs: () => runs };
}

Deno.test("proxy mode: the target host is part of the key: the same path on two hosts is two entries", async () => {
  const { app, runs } = hostEcho("proxy");
  const a = await app.request("http://a.example/y");
  const b = await app.request("http://b.example/y");
  const aAgain = await app.request("http://a.example/y");
  assert.equal(await a.text(), "page of a.example");
  assert.equal(b.headers.get("x-cache"), "MISS");
  assert.equal(await b.text(), "page of b.example");
  assert.equal(aAgain.headers.get("x-cache"), "HIT");
  assert.equal(await aAgain.text(), "page of a.example");
  assert.equal(runs(), 2);
});

Deno.test("app mode keys on the path as routed, without the host, as documented", async () => {
  const { app, runs } = hostEcho("app");
  await app.request("http://a.example/y");
  const b = await app.request("http://b.example/y");
  assert.equal(b.headers.get("x-cache"), "HIT");
  assert.equal(runs(), 1);
});

Deno.test("proxy mode: an unsafe method invalidates its URL on its own host only", async () => {
  let runs = 0;
  const app = new Hono();
  app.use("/*", cached({ backend: new MemoryBackend(), mode: "proxy" }));
  app.all("/*", (c) => {
    runs++;
    return new Response(`run ${runs} on ${new URL(c.req.url).host}`, {
      headers: { "cache-control": "max-age=60" },
    });
  });
  await app.request("http://a.example/y");
  await app.request("http://b.example/y");
  await app.request("http://a.example/y", { method: "POST" });
  const a = await app.request("http://a.example/y");
  const b = await app.request("http://b.example/y");
  assert.equal(a.headers.get("x-cache"), "MISS");
  assert.equal(b.headers.get("x-cache"), "HIT");
});

Deno.test("proxy mode: a stale entry without a validator is forwarded with the client's own conditionals, untouched", async () => {
  let now = 1_700_000_000_000;
  const backend = new MemoryBackend({ now: () => now });
  const seen: (string | null)[] = [];
  const app = new Hono();
  app.use("/*", cached({ backend, mode: "proxy" }));
  app.get("/*", (c) => {
    seen.push(c.req.header("if-none-match") ?? null);
    // Fresh for a minute, and no ETag or Last-Modified to validate with.
    return new Response("body", { headers: { "cache-control": "max-age=60" } });
  });
  assert.equal((await app.request("/s")).headers.get("x-cache"), "MISS");
  now += 120_000; // stale now, kept for a client's max-stale
  const stale = await app.request("/s", {
    headers: { "if-none-match": '"client"' },
  });
  assert.match(stale.headers.get("cache-status")!, /fwd=stale/);
  assert.deepEqual(seen, [null, '"client"']);
});
