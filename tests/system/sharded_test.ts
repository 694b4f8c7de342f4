// ShardedBackend on two real servers (issue 15, part 2): the test server and
// a throwaway cluster (tests/_cluster.ts) that a test can stop. Keys spread
// evenly, a third shard takes only its share, a stopped shard fails open for
// its own keys only, tag purges reach every server, and two processes
// (tests/fixtures/sharded_server.ts) compute each key once between them.
// Needs DATABASE_URL.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { MemoryBackend } from "../../backends/memory.ts";
import { PostgresBackend } from "../../backends/postgres.ts";
import { CacheShardError, ShardedBackend } from "../../backends/sharded.ts";
import { cached, invalidateTags } from "../../middleware/mod.ts";
import { entryKey, urlPart } from "../../middleware/_key.ts";
import { type Cluster, startCluster } from "../_cluster.ts";
import {
  DATABASE_URL,
  dropTable,
  uniqueNamespace,
  uniqueTable,
} from "../_helpers.ts";
import { spawnFixture } from "../_process.ts";
import { NAMESPACE } from "../fixtures/sharded_server.ts";

const quiet = () => {};
const KEYS = Array.from({ length: 1000 }, (_, i) => `item:${i}`);

/** The test server and a throwaway cluster, with shards on a fresh table. */
interface Servers {
  cluster: Cluster;
  namespace: string;
  /** A PostgresBackend on the test server (`"server"`) or the cluster. */
  shard(where: "server" | "cluster", table?: string): PostgresBackend;
  /** A ShardedBackend over the shards "server" and "cluster". */
  sharded(onError?: (error: unknown) => void): ShardedBackend;
}

/** Runs `fn` with both servers; closes what it opened and drops its tables. */
async function withServers(fn: (servers: Servers) => Promise<void>) {
  const cluster = await startCluster();
  const table = uniqueTable("sharded");
  const tables = new Set([table]);
  const opened: { close(): Promise<void> }[] = [];
  const namespace = uniqueNamespace("sharded");
  const shard = (where: "server" | "cluster", name = table) => {
    tables.add(name);
    const backend = new PostgresBackend({
      dsn: where === "server" ? DATABASE_URL! : cluster.url,
      table: name,
      namespace,
      sweepInterval: 0,
      connectTimeout: 1000,
      queryTimeout: 1000,
      onError: quiet,
    });
    opened.push(backend);
    return backend;
  };
  try {
    await fn({
      cluster,
      namespace,
      shard,
      sharded(onError = quiet) {
        const backend = new ShardedBackend({
          shards: [
            { name: "server", backend: shard("server") },
            { name: "cluster", backend: shard("cluster") },
          ],
          onError,
        });
        opened.push(backend);
        return backend;
      },
    });
  } finally {
    await Promise.allSettled(opened.map((backend) => backend.close()));
    await cluster.destroy();
    for (const name of tables) await dropTable(name);
  }
}

/** Each shard's entries, by name, from its own database. */
async function entriesOf(
  backend: ShardedBackend,
): Promise<Map<string, number>> {
  const { shards } = await backend.stats();
  return new Map(shards.map((s) => [s.name, s.stats?.entries ?? NaN]));
}

Deno.test({
  name:
    "sharded system: 1,000 keys over two servers put 40-60 % on each, each key on its shard's server",
  ignore: DATABASE_URL === undefined,
  async fn() {
    await withServers(async ({ sharded }) => {
      const backend = sharded();
      await Promise.all(KEYS.map((key, i) => backend.set(key, i)));
      const entries = await entriesOf(backend);
      assert.equal(entries.get("server")! + entries.get("cluster")!, 1000);
      for (const [name, count] of entries) {
        assert.ok(count >= 400 && count <= 600, `${name}: ${count}`);
      }
      for (const key of KEYS.slice(0, 50)) {
        const home = backend.shardOf(key);
        const away = backend.shards.find((s) => s !== home)!;
        assert.equal(await home.backend.get(key), KEYS.indexOf(key));
        assert.equal(await away.backend.get(key), undefined);
      }
      const values = await Promise.all(KEYS.map((key) => backend.get(key)));
      assert.deepEqual(values, KEYS.map((_, i) => i));
    });
  },
});

Deno.test({
  name:
    "sharded system: adding a third shard moves 25-40 % of the keys, all to it, none between the first two",
  ignore: DATABASE_URL === undefined,
  async fn() {
    await withServers(async ({ sharded, shard }) => {
      const two = sharded();
      await Promise.all(KEYS.map((key, i) => two.set(key, i)));
      const [server, cluster] = two.shards;
      // The new shard is listed first: the order of the shards is free.
      const three = new ShardedBackend({
        shards: [
          { name: "third", backend: shard("server", uniqueTable("third")) },
          server,
          cluster,
        ],
        closeShards: false,
      });
      let moved = 0;
      for (const key of KEYS) {
        const before = two.shardOf(key).name;
        const after = three.shardOf(key).name;
        if (after === before) continue;
        moved++;
        assert.equal(after, "third", `${key} moved from ${before} to ${after}`);
      }
      assert.ok(moved >= 250 && moved <= 400, `moved ${moved}`);
      // Read through the three shards: the keys that stayed are still there,
      // the moved ones are misses on the new, empty shard.
      const values = await Promise.all(KEYS.map((key) => three.get(key)));
      KEYS.forEach((key, i) => {
        const stayed = two.shardOf(key).name === three.shardOf(key).name;
        assert.equal(values[i], stayed ? i : undefined, key);
      });
    });
  },
});

Deno.test({
  name:
    "sharded system: with the cluster stopped, its keys BYPASS through cached() while the server's keys still HIT, and a tag purge still purges the server",
  ignore: DATABASE_URL === undefined,
  async fn() {
    await withServers(async ({ cluster, sharded }) => {
      const reports: unknown[] = [];
      const backend = sharded((error) => reports.push(error));
      const app = new Hono();
      app.get(
        "/items/:id",
        cached({
          backend,
          expire: 60,
          tags: () => ["items"],
          onError: quiet,
        }),
        (c) => c.json({ id: c.req.param("id") }),
      );
      const paths = Array.from({ length: 20 }, (_, i) => `/items/${i}`);
      const homes = await Promise.all(
        paths.map(async (path) =>
          backend.shardOf(await entryKey(urlPart(path), [])).name
        ),
      );
      assert.ok(homes.includes("server") && homes.includes("cluster"));
      const statuses = async () => {
        const seen: string[] = [];
        for (const path of paths) {
          const res = await app.request(path);
          assert.deepEqual(await res.json(), { id: path.slice(7) });
          seen.push(res.headers.get("x-cache")!);
        }
        return seen;
      };
      assert.deepEqual(await statuses(), paths.map(() => "MISS"));
      assert.deepEqual(await statuses(), paths.map(() => "HIT"));

      await cluster.stop("fast");
      assert.deepEqual(
        await statuses(),
        homes.map((home) => home === "server" ? "HIT" : "BYPASS"),
      );

      // The purge reaches the server; the stopped cluster is reported.
      await assert.rejects(invalidateTags(backend, ["items"]), (error) => {
        assert.ok(error instanceof AggregateError);
        assert.deepEqual(
          error.errors.map((e: CacheShardError) => e.shard),
          ["cluster"],
        );
        return true;
      });
      assert.ok(
        reports.some((error) =>
          error instanceof CacheShardError && error.shard === "cluster" &&
          error.operation === "invalidateTags"
        ),
      );
      const server = backend.shards[0].backend;
      for (const [i, path] of paths.entries()) {
        if (homes[i] !== "server") continue;
        const key = await entryKey(urlPart(path), []);
        assert.equal(await server.readEntry(key), undefined, path);
      }
    });
  },
});

Deno.test({
  name:
    "sharded system: a tag purge removes the tagged entries on both servers, and only those",
  ignore: DATABASE_URL === undefined,
  async fn() {
    await withServers(async ({ sharded }) => {
      const backend = sharded();
      await Promise.all(
        KEYS.slice(0, 200).map((key, i) =>
          backend.set(key, i, { tags: [i % 2 ? "odd" : "even", "all"] })
        ),
      );
      const before = await entriesOf(backend);
      assert.ok(before.get("server")! > 50 && before.get("cluster")! > 50);
      assert.equal(await backend.invalidateTags(["odd"]), 100);
      const values = await Promise.all(
        KEYS.slice(0, 200).map((key) => backend.get(key)),
      );
      values.forEach((value, i) =>
        assert.equal(value, i % 2 ? undefined : i, KEYS[i])
      );
      const after = await entriesOf(backend);
      assert.equal(after.get("server")! + after.get("cluster")!, 100);
      assert.ok(after.get("server")! < before.get("server")!);
      assert.ok(after.get("cluster")! < before.get("cluster")!);
      assert.equal(await backend.invalidateTags(["all"]), 100);
      assert.equal((await backend.stats()).entries, 0);
    });
  },
});

Deno.test({
  name:
    "sharded system: 2 processes computing the same keys on both shards run each key's handler once between them",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const cluster = await startCluster();
    const table = uniqueTable("sharded_mp");
    const servers: { stop(): Promise<void> }[] = [];
    try {
      // The tables exist before the instances start, as in production.
      for (const dsn of [DATABASE_URL!, cluster.url]) {
        const setup = new PostgresBackend({
          dsn,
          table,
          namespace: NAMESPACE,
          sweepInterval: 0,
        });
        await setup.ready();
        await setup.close();
      }
      const env = {
        DATABASE_URL: DATABASE_URL!,
        CLUSTER_URL: cluster.url,
        TABLE: table,
        DELAY_MS: "300",
      };
      const [one, two] = await Promise.all([
        spawnFixture("sharded_server.ts", env),
        spawnFixture("sharded_server.ts", env),
      ]);
      servers.push(one, two);
      // Placement needs only the shards' names and the namespace.
      const placement = new ShardedBackend({
        shards: ["server", "cluster"].map((name) => ({
          name,
          backend: new MemoryBackend({ namespace: NAMESPACE }),
        })),
      });
      const ids = Array.from({ length: 6 }, (_, i) => String(i));
      const homes = await Promise.all(
        ids.map(async (id) =>
          placement.shardOf(await entryKey(urlPart(`/hot/${id}`), [])).name
        ),
      );
      assert.ok(homes.includes("server") && homes.includes("cluster"));
      const responses = await Promise.all(
        ids.flatMap((id) =>
          Array.from(
            { length: 20 },
            (_, i) =>
              fetch(`http://127.0.0.1:${[one, two][i % 2].port}/hot/${id}`)
                .then(async (res) => ({
                  id,
                  status: res.status,
                  ...await res.json(),
                })),
          )
        ),
      );
      assert.ok(responses.every((res) => res.status === 200));
      const runs = await Promise.all(
        [one, two].map(async ({ port }) =>
          (await (await fetch(`http://127.0.0.1:${port}/runs`))
            .json()) as Record<
              string,
              number
            >
        ),
      );
      for (const id of ids) {
        const total = (runs[0][id] ?? 0) + (runs[1][id] ?? 0);
        assert.equal(total, 1, `id ${id}: runs ${JSON.stringify(runs)}`);
        const tokens = new Set(
          responses.filter((res) => res.id === id).map((res) => res.token),
        );
        assert.equal(tokens.size, 1, `id ${id}`);
      }
    } finally {
      await Promise.all(servers.map((server) => server.stop()));
      await cluster.destroy();
      await dropTable(table);
    }
  },
});
