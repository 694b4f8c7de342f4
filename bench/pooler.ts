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
import { PostgresBackend } from "../backends/postgres.ts";
import { hitLoad, interleaved, median, printMedians } from "./_hits.ts";
import { uniqueTable } from "../tests/_helpers.ts";
import { dropPoolerTable, startPgBouncer } from "../tests/_pgbouncer.ts";

const load = hitLoad();

const url = Deno.env.get("DATABASE_URL");
if (!url) throw new Error("bench/pooler.ts needs DATABASE_URL");

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
let results: Record<string, number[]> = {};
try {
  results = await interleaved(configs, load);
} finally {
  await dropPoolerTable(table);
  await bouncer.stop();
}

printMedians(results, load, "PgBouncer, PostgreSQL and the client");
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
