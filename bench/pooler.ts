// Hits per second through cached() on PostgreSQL directly, and through a
// PgBouncer in transaction mode (pool_mode = transaction, default_pool_size
// 4) with `pooler: "transaction"`; also that option without the pooler, to
// tell the cost of the extra hop from the cost of unprepared statements.
// Rounds are interleaved, each in another order; the medians and their
// ratios are printed. Runs in under a minute:
//
//   deno run --allow-all bench/pooler.ts [--duration=3] [--rounds=3] [--concurrency=64]
//
// Needs DATABASE_URL and pgbouncer (apt-get install pgbouncer). PgBouncer,
// the app and PostgreSQL share the machine's cores.
import { parseArgs } from "node:util";
import { Hono } from "hono";
import { PostgresBackend } from "../backends/postgres.ts";
import { cached } from "../middleware/cached.ts";
import { uniqueTable } from "../tests/_helpers.ts";
import { dropPoolerTable, startPgBouncer } from "../tests/_pgbouncer.ts";

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
if (!url) throw new Error("bench/pooler.ts needs DATABASE_URL");

/** Hits per second of `backend` through cached(), over `durationMs`. */
async function hitsPerSecond(backend: PostgresBackend): Promise<number> {
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

const DIRECT = "direct";
const POOLED = "through PgBouncer, pooler: transaction";
const UNPREPARED = "direct, pooler: transaction";
const bouncer = await startPgBouncer({ poolSize: 4 });
const table = uniqueTable("bench_pooler");
const open = (dsn: string, pooler: "none" | "transaction") =>
  new PostgresBackend({ dsn, table, pooler, sweepInterval: 0, maxSize: 8 });
const configs: Record<string, () => PostgresBackend> = {
  [DIRECT]: () => open(url, "none"),
  [POOLED]: () => open(bouncer.url, "transaction"),
  [UNPREPARED]: () => open(url, "transaction"),
};
const results: Record<string, number[]> = {};
try {
  const names = Object.keys(configs);
  for (let round = 0; round < rounds; round++) {
    // Each round starts with another configuration: no order is favoured.
    const order = names.map((_, i) => names[(i + round) % names.length]);
    for (const name of order) {
      const backend = configs[name]();
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
  await dropPoolerTable(table);
  await bouncer.stop();
}

const cpus = navigator.hardwareConcurrency;
console.log(
  `\nHits/s through cached(), ${concurrency} concurrent, ${rounds} x ${
    durationMs / 1000
  } s each, median (${cpus} cores shared by PgBouncer, PostgreSQL and the client):`,
);
for (const [name, rates] of Object.entries(results)) {
  console.log(`  ${name.padEnd(40)} ${Math.round(median(rates))}`);
}
const direct = median(results[DIRECT]);
console.log(
  `  ratio through PgBouncer / direct:        ${
    (median(results[POOLED]) / direct).toFixed(2)
  }`,
);
console.log(
  `  ratio unprepared / direct (no pooler):   ${
    (median(results[UNPREPARED]) / direct).toFixed(2)
  }`,
);
