// One benchmark configuration served on 127.0.0.1. Env: MODE, COST_MS,
// DATABASE_URL, REDIS_URL, TABLE, NAMESPACE, WARM. Prints {"port": N} once
// warm; ends when stdin closes, after printing its counters as JSON.
//
// Routes: GET /item/:id, a trivial handler answering 1 KiB of text (after
// COST_MS milliseconds, when set), behind the mode's cache; GET /__stats, the
// counters (statements sent, writes dropped, errors reported).
//
// Modes: plain (no cache), hono_cache (hono/cache on the Deno Cache API),
// memory, postgres, postgres_local (PostgresBackend with the local tier),
// redis_naive and redis_tuned (a Redis backend through the same cached():
// the same key derivation and body encoding, ioredis defaults, or with
// enableAutoPipelining).
import { Hono } from "hono";
import { cache as honoCache } from "hono/cache";
import { cached } from "../middleware/cached.ts";
import { MemoryBackend } from "../backends/memory.ts";
import { PostgresBackend } from "../backends/postgres.ts";
import type { CacheBackend } from "../backends/types.ts";
import { RedisBackend } from "./_redis_backend.ts";

const mode = Deno.env.get("MODE") ?? "plain";
const cost = Number(Deno.env.get("COST_MS") ?? 0);
const warm = Number(Deno.env.get("WARM") ?? 0);
const namespace = Deno.env.get("NAMESPACE") ?? `bench-${mode}`;
const filler = "x".repeat(1024);

/** The trivial handler: 1 KiB of text naming the item. */
async function handler(c: {
  req: { param(name: string): string };
  text: (text: string) => Response;
}) {
  if (cost > 0) await new Promise((resolve) => setTimeout(resolve, cost));
  const head = `item ${c.req.param("id")}\n`;
  return c.text(head + filler.slice(head.length));
}

let errors = 0;
const onError = () => void errors++;

function backendOf(): (CacheBackend & { close(): Promise<void> }) | undefined {
  switch (mode) {
    case "memory":
      return new MemoryBackend();
    case "postgres":
    case "postgres_local":
      return new PostgresBackend({
        dsn: Deno.env.get("DATABASE_URL")!,
        table: Deno.env.get("TABLE") ?? "cachekit_bench",
        namespace,
        maxSize: 10,
        sweepInterval: 0,
        onError,
        localCache: mode === "postgres_local"
          ? { maxEntries: 10_000, maxAge: 60 }
          : undefined,
      });
    case "redis_naive":
    case "redis_tuned":
      return new RedisBackend({
        url: Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379",
        namespace,
        autoPipelining: mode === "redis_tuned",
      });
    default:
      return undefined;
  }
}

const backend = backendOf();
const app = new Hono();
app.get("/__stats", async (c) => {
  const stats = backend instanceof PostgresBackend
    ? await backend.stats()
    : undefined;
  return c.json({
    mode,
    errors,
    statements: backend instanceof PostgresBackend
      ? backend.roundTrips
      : undefined,
    droppedWrites: stats?.droppedWrites,
    hits: stats?.hits,
    misses: stats?.misses,
  });
});
if (mode === "hono_cache") {
  app.get(
    "/item/:id",
    honoCache({
      cacheName: `bench-${Date.now()}`,
      wait: true,
      cacheControl: "max-age=3600",
    }),
    handler,
  );
} else if (mode === "plain") {
  app.get("/item/:id", handler);
} else if (backend) {
  if (backend instanceof PostgresBackend) await backend.ready();
  if (backend instanceof RedisBackend) await backend.ready();
  app.get(
    "/item/:id",
    cached({
      backend,
      expire: 3600,
      onError,
      crossProcessLock: Deno.env.get("CROSS_PROCESS_LOCK") !== "0",
    }),
    handler,
  );
} else {
  throw new Error(`Unknown MODE: ${mode}`);
}

const server = Deno.serve({
  hostname: "127.0.0.1",
  port: 0,
  onListen: () => {},
}, app.fetch);
const base = `http://127.0.0.1:${server.addr.port}`;
// Warm: store the first WARM items (and fill the local tier) before load
// starts; twice, so that the second pass reads what the first stored.
for (let pass = 0; pass < 2; pass++) {
  for (let start = 0; start < warm; start += 32) {
    await Promise.all(
      Array.from({ length: Math.min(32, warm - start) }, async (_, i) => {
        await (await fetch(`${base}/item/${start + i}`)).arrayBuffer();
      }),
    );
  }
}
// The connections and JIT warm too, on a key outside the hit set.
for (let i = 0; i < 200; i++) {
  await (await fetch(`${base}/item/warm-${i % 4}`)).arrayBuffer();
}
console.log(JSON.stringify({ port: server.addr.port }));
for await (const _ of Deno.stdin.readable) { /* keep serving */ }
await server.shutdown();
if (backend instanceof RedisBackend) await backend.clear();
await backend?.close();
