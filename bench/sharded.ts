// Hits per second through cached() on one PostgreSQL server, and on a
// ShardedBackend over two: the test server (DATABASE_URL) and a throwaway
// cluster started with initdb/pg_ctl. Rounds are interleaved so that both
// see the same machine, each round in another order; the medians and their
// ratios are printed. Runs in under a minute:
//
//   deno run --allow-all bench/sharded.ts [--duration=3] [--rounds=3] [--concurrency=64]
//
// On one machine both servers share its cores: the ratio then measures what
// sharding costs or saves there, not what two machines would give.
import { parseArgs } from "node:util";
import { Hono } from "hono";
import { PostgresBackend } from "../backends/postgres.ts";
import { ShardedBackend } from "../backends/sharded.ts";
import type { CacheBackend } from "../backends/types.ts";
import { cached } from "../middleware/cached.ts";
import { startCluster } from "../tests/_cluster.ts";
import { dropTable, uniqueTable } from "../tests/_helpers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    duration: { type: "string", default: "3" },
    rounds: { type: "string", default: "3" },
    concurrency: { type: "string", default: "64" },
  },
});
const durationMs = Number(values.duration) * 1000;
const rounds = Number(values.rounds);
const concurrency = Number(values.concurrency);
const PATHS = Array.from({ length: 1000 }, (_, i) => `/items/${i}`);

const url = Deno.env.get("DATABASE_URL");
if (!url) throw new Error("bench/sharded.ts needs DATABASE_URL");

/** Hits per second of `backend` through cached(), over `durationMs`. */
async function hitsPerSecond(backend: CacheBackend): Promise<number> {
  const app = new Hono();
  app.get(
    "/items/:id",
    cached({ backend, expire: 3600 }),
    (c) => c.json({ id: c.req.param("id"), padding: "x".repeat(512) }),
  );
  for (const path of PATHS) await app.request(path); // warm: every path stored
  let hits = 0;
  let others = 0;
  const end = performance.now() + durationMs;
  const started = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async (_, worker) => {
    for (let i = worker; performance.now() < end; i += concurrency) {
      const res = await app.request(PATHS[i % PATHS.length]);
      await res.arrayBuffer();
      if (res.headers.get("x-cache") === "HIT") hits++;
      else others++;
    }
  }));
  if (others > 0) console.error(`  (${others} requests were not hits)`);
  return hits / ((performance.now() - started) / 1000);
}

const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1];

const cluster = await startCluster();
const table = uniqueTable("bench_sharded");
const shard = (dsn: string) =>
  new PostgresBackend({ dsn, table, sweepInterval: 0, maxSize: 8 });
const configs: Record<string, () => CacheBackend> = {
  "1 server, PostgresBackend": () => shard(url),
  "1 server, ShardedBackend of 1": () =>
    new ShardedBackend({ shards: [{ name: "server", backend: shard(url) }] }),
  "2 servers, ShardedBackend of 2": () =>
    new ShardedBackend({
      shards: [
        { name: "server", backend: shard(url) },
        { name: "cluster", backend: shard(cluster.url) },
      ],
    }),
};
const results: Record<string, number[]> = {};
try {
  const names = Object.keys(configs);
  for (let round = 0; round < rounds; round++) {
    // Each round starts with another configuration: no order is favoured.
    const order = names.map((_, i) => names[(i + round) % names.length]);
    for (const name of order) {
      const open = configs[name];
      const backend = open();
      try {
        await backend.clear();
        const rate = await hitsPerSecond(backend);
        (results[name] ??= []).push(rate);
        console.error(
          `round ${round + 1}: ${name}: ${Math.round(rate)} hits/s`,
        );
      } finally {
        await backend.close();
      }
    }
  }
} finally {
  await cluster.destroy();
  await dropTable(table);
}

const cpus = navigator.hardwareConcurrency;
console.log(
  `\nHits/s through cached(), ${concurrency} concurrent, ${rounds} x ${
    durationMs / 1000
  } s each, median (${cpus} cores shared by both servers and the client):`,
);
for (const [name, rates] of Object.entries(results)) {
  console.log(`  ${name.padEnd(32)} ${Math.round(median(rates))}`);
}
const one = median(results["1 server, PostgresBackend"]);
const two = median(results["2 servers, ShardedBackend of 2"]);
const wrapped = median(results["1 server, ShardedBackend of 1"]);
console.log(`  ratio 2 shards / 1 server:       ${(two / one).toFixed(2)}`);
console.log(
  `  ratio ShardedBackend of 1 / bare: ${(wrapped / one).toFixed(2)}`,
);
