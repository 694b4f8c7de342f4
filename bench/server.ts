// One benchmark configuration served on 127.0.0.1. Env: MODE, COST_MS,
// DATABASE_URL, TABLE. Prints {"port": N} once warm; ends when stdin closes.
//
// Modes: plain (no cache), hono_cache (hono/cache on the Deno Cache API),
// memory, postgres, postgres_local (PostgresBackend with the local tier).
import { Hono } from "hono";
import { cache as honoCache } from "hono/cache";
import { cached } from "../middleware/cached.ts";
import { MemoryBackend } from "../backends/memory.ts";
import { PostgresBackend } from "../backends/postgres.ts";
import type { CacheBackend } from "../backends/types.ts";

const mode = Deno.env.get("MODE") ?? "plain";
const cost = Number(Deno.env.get("COST_MS") ?? 0);
const body = JSON.stringify({
  items: Array.from({ length: 20 }, (_, i) => ({ id: i, name: `item ${i}` })),
});

async function handler(c: { json: (v: unknown) => Response }) {
  if (cost > 0) await new Promise((resolve) => setTimeout(resolve, cost));
  return c.json(JSON.parse(body));
}

let backend: (CacheBackend & { close(): Promise<void> }) | undefined;
const app = new Hono();
if (mode === "hono_cache") {
  app.get(
    "/data",
    honoCache({
      cacheName: `bench-${Date.now()}`,
      wait: true,
      cacheControl: "max-age=3600",
    }),
    handler,
  );
} else if (mode === "plain") {
  app.get("/data", handler);
} else {
  backend = mode === "memory" ? new MemoryBackend() : new PostgresBackend({
    dsn: Deno.env.get("DATABASE_URL")!,
    table: Deno.env.get("TABLE") ?? "cachekit_bench",
    namespace: `bench-${mode}`,
    maxSize: 10,
    sweepInterval: 0,
    localCache: mode === "postgres_local"
      ? { maxEntries: 1000, maxAge: 60 }
      : undefined,
  });
  if (backend instanceof PostgresBackend) await backend.ready();
  app.get("/data", cached({ backend, expire: 3600, wait: true }), handler);
}

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: () => {},
}, app.fetch);
// Warm: store the entry (and fill the local tier) before load starts.
for (let i = 0; i < 3; i++) {
  await (await fetch(`http://127.0.0.1:${server.addr.port}/data`)).text();
}
console.log(JSON.stringify({ port: server.addr.port }));
for await (const _ of Deno.stdin.readable) { /* keep serving */ }
await server.shutdown();
await backend?.close();
