// Several app processes behind one PgBouncer in transaction mode, on the real
// server: the cross-process lock is a lease row, so one handler run serves a
// stampede; a tag purge in one process reaches the others; and local tiers
// stay coherent by polling, without LISTEN. The processes run
// tests/fixtures/pooler_server.ts with `pooler: "transaction"`.
import assert from "node:assert/strict";
import { PostgresBackend } from "../../backends/postgres.ts";
import { type FixtureServer, spawnFixture } from "../_process.ts";
import {
  dropPoolerTable,
  type PgBouncer,
  POOLER_AVAILABLE,
  startPgBouncer,
} from "../_pgbouncer.ts";
import { uniqueTable } from "../_helpers.ts";

/** A PgBouncer, `count` app processes through it on a fresh table, then cleanup. */
async function withApps(
  count: number,
  env: Record<string, string>,
  fn: (
    ports: number[],
    bouncer: PgBouncer,
    table: string,
  ) => Promise<void>,
): Promise<void> {
  const table = uniqueTable("pool");
  const bouncer = await startPgBouncer({ poolSize: 4 });
  let servers: FixtureServer[] = [];
  try {
    servers = await Promise.all(
      Array.from({ length: count }, () =>
        spawnFixture("pooler_server.ts", {
          DATABASE_URL: bouncer.url,
          TABLE: table,
          ...env,
        })),
    );
    await fn(servers.map((server) => server.port), bouncer, table);
  } finally {
    await Promise.all(servers.map((server) => server.stop()));
    await dropPoolerTable(table);
    await bouncer.stop();
  }
}

async function runsOf(
  ports: number[],
): Promise<{ runs: number; itemRuns: number }[]> {
  return await Promise.all(
    ports.map(async (port) =>
      await (await fetch(`http://127.0.0.1:${port}/runs`)).json()
    ),
  );
}

Deno.test({
  name:
    "pooler: 200 cold requests over 3 processes behind PgBouncer run the handler once, and all get its response",
  ignore: !POOLER_AVAILABLE,
  async fn() {
    await withApps(3, { DELAY_MS: "300" }, async (ports) => {
      const responses = await Promise.all(
        Array.from(
          { length: 200 },
          (_, i) =>
            fetch(`http://127.0.0.1:${ports[i % 3]}/hot`).then(async (res) => ({
              status: res.status,
              cache: res.headers.get("x-cache"),
              body: await res.text(),
            })),
        ),
      );
      const runs = (await runsOf(ports)).map((counts) => counts.runs);
      const statuses: Record<string, number> = {};
      for (const res of responses) {
        statuses[res.cache!] = (statuses[res.cache!] ?? 0) + 1;
      }
      assert.ok(responses.every((res) => res.status === 200));
      assert.equal(
        new Set(responses.map((res) => res.body)).size,
        1,
        `X-Cache counts: ${JSON.stringify(statuses)}`,
      );
      assert.equal(
        runs.reduce((a, b) => a + b, 0),
        1,
        `runs per process: ${runs}`,
      );
      assert.equal(statuses.MISS, 1, JSON.stringify(statuses));
    });
  },
});

Deno.test({
  name:
    "pooler: a tag purge made in one process behind PgBouncer makes every other process run the handler again",
  ignore: !POOLER_AVAILABLE,
  async fn() {
    await withApps(2, {}, async ([a, b]) => {
      const get = async (port: number) => {
        const res = await fetch(`http://127.0.0.1:${port}/item`);
        return { cache: res.headers.get("x-cache"), body: await res.text() };
      };
      const first = await get(a);
      assert.equal(first.cache, "MISS");
      const hit = await get(b);
      assert.deepEqual(hit, { cache: "HIT", body: first.body });
      const purge = await fetch(`http://127.0.0.1:${a}/purge`, {
        method: "POST",
      });
      assert.deepEqual(await purge.json(), { purged: 1 });
      const after = await get(b);
      assert.equal(after.cache, "MISS");
      assert.notEqual(after.body, first.body);
      assert.deepEqual(await get(a), { cache: "HIT", body: after.body });
      const counts = await runsOf([a, b]);
      assert.deepEqual(counts.map((c) => c.itemRuns), [1, 1]);
    });
  },
});

Deno.test({
  name:
    "pooler: a local tier behind PgBouncer serves from the process, and drops a value another process changed within pollInterval plus a query",
  ignore: !POOLER_AVAILABLE,
  async fn() {
    const pollSeconds = 0.2;
    await withApps(1, { POLL_INTERVAL: String(pollSeconds) }, async (
      [port],
      bouncer,
      table,
    ) => {
      // The writer is another process: this test's. Like every instance
      // sharing the namespace, it has a local tier, so its changes count.
      const writer = new PostgresBackend({
        dsn: bouncer.url,
        table,
        namespace: "pooler",
        pooler: "transaction",
        sweepInterval: 0,
        localCache: { pollInterval: pollSeconds },
      });
      try {
        const read = async () => {
          const res = await fetch(`http://127.0.0.1:${port}/version`);
          return { local: res.headers.get("x-local"), text: await res.text() };
        };
        /**
         * Reads until the app answers `text` (from its local tier when
         * `local`); resolves to the milliseconds taken.
         */
        const until = async (text: string, local = true) => {
          const start = performance.now();
          while (performance.now() - start < 5000) {
            const seen = await read();
            if (seen.text === text && (!local || seen.local === "1")) {
              return performance.now() - start;
            }
            await new Promise((resolve) => setTimeout(resolve, 10));
          }
          throw new Error(
            `Never read ${text}: ${JSON.stringify(await read())}`,
          );
        };
        await writer.set("version", "v1");
        await until("v1");
        assert.deepEqual(await read(), { local: "1", text: "v1" });
        for (const version of ["v2", "v3"]) {
          await writer.set("version", version);
          const took = await until(version);
          // The bound: one poll interval, plus the poll's own query (1 s).
          assert.ok(took < pollSeconds * 1000 + 1000, `${took} ms`);
        }
        await writer.delete("version");
        const took = await until("missing", false);
        assert.ok(took < pollSeconds * 1000 + 1000, `${took} ms`);
      } finally {
        await writer.close();
      }
    });
  },
});
