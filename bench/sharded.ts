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
import { PostgresBackend } from "../backends/postgres.ts";
import { ShardedBackend } from "../backends/sharded.ts";
import type { CacheBackend } from "../backends/types.ts";
import { hitLoad, interleaved, median, printMedians } from "./_hits.ts";
import { startCluster } from "../tests/_cluster.ts";
import { dropTable, uniqueTable } from "../tests/_helpers.ts";

const load = hitLoad();

const url = Deno.env.get("DATABASE_URL");
if (!url) throw new Error("bench/sharded.ts needs DATABASE_URL");

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
let results: Record<string, number[]> = {};
try {
  results = await interleaved(configs, load);
} finally {
  await cluster.destroy();
  await dropTable(table);
}

printMedians(results, load, "both servers and the client");
const one = median(results["1 server, PostgresBackend"]);
const two = median(results["2 servers, ShardedBackend of 2"]);
const wrapped = median(results["1 server, ShardedBackend of 1"]);
console.log(`  ratio 2 shards / 1 server:       ${(two / one).toFixed(2)}`);
console.log(
  `  ratio ShardedBackend of 1 / bare: ${(wrapped / one).toFixed(2)}`,
);
