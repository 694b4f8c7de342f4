// PostgresBackend with `pooler: "transaction"`, through a real PgBouncer in
// transaction mode in front of the test server: its options, its leases
// (the cross-process locks without sessions), and its local tier kept
// coherent by polling a change counter instead of LISTEN.
import assert from "node:assert/strict";
import {
  PostgresBackend,
  type PostgresBackendOptions,
} from "../../backends/postgres.ts";
import { DATABASE_URL, uniqueTable, withServer } from "../_helpers.ts";
import {
  dropPoolerTable,
  type PgBouncer,
  POOLER_AVAILABLE,
  startPgBouncer,
} from "../_pgbouncer.ts";

/** A PgBouncer, and `count` pooler backends through it on one fresh table. */
async function withBackends(
  count: number,
  options: Partial<PostgresBackendOptions>,
  fn: (
    backends: PostgresBackend[],
    table: string,
    bouncer: PgBouncer,
  ) => Promise<void>,
): Promise<void> {
  const table = uniqueTable("pt");
  const bouncer = await startPgBouncer({ poolSize: 2 });
  const backends = Array.from({ length: count }, () =>
    new PostgresBackend({
      dsn: bouncer.url,
      table,
      namespace: "pooled",
      pooler: "transaction",
      sweepInterval: 0,
      ...options,
    }));
  try {
    await Promise.all(backends.map((backend) => backend.ready()));
    await fn(backends, table, bouncer);
  } finally {
    await Promise.all(backends.map((backend) => backend.close()));
    await dropPoolerTable(table);
    await bouncer.stop();
  }
}

/** The keys of `table`'s leases on the test server, directly. */
function leasesOf(table: string): Promise<string[]> {
  return withServer(async (sql) =>
    (await sql.unsafe(`SELECT key FROM "${table}_leases" ORDER BY key`)).map(
      (row) => String(row.key),
    )
  );
}

/** Moves every lease of `table` into the past, as if `leaseTimeout` passed. */
function expireLeases(table: string): Promise<void> {
  return withServer(async (sql) => {
    await sql.unsafe(
      `UPDATE "${table}_leases" SET expires_at = now() - interval '1 second'`,
    );
  });
}

Deno.test("pooler: options are checked at construction", () => {
  const dsn = "postgres://u@127.0.0.1:1/db";
  assert.throws(
    () => new PostgresBackend({ dsn, pooler: "session" as "transaction" }),
    {
      name: "TypeError",
      message:
        'Cannot create PostgresBackend: pooler must be "none" or "transaction": received "session" (a string)',
    },
  );
  for (const leaseTimeout of [0, -1, 1.5, NaN]) {
    assert.throws(
      () => new PostgresBackend({ dsn, pooler: "transaction", leaseTimeout }),
      RangeError,
      "leaseTimeout must be a positive integer",
    );
  }
  assert.throws(
    () =>
      new PostgresBackend({
        dsn,
        pooler: "transaction",
        localCache: { pollInterval: 0 },
      }),
    RangeError,
    "localCache.pollInterval must be a positive number of seconds",
  );
  assert.throws(
    () =>
      new PostgresBackend(
        { dsn, poolr: "transaction" } as PostgresBackendOptions,
      ),
    TypeError,
    'unknown option "poolr"; did you mean "pooler"?',
  );
  assert.throws(
    () =>
      new PostgresBackend({
        dsn,
        localCache: { pollIntervl: 1 },
      } as PostgresBackendOptions),
    TypeError,
    'did you mean "localCache.pollInterval"?',
  );
});

Deno.test({
  name:
    "pooler: a lock is a lease row held by one caller at a time, gone once released, then taken by the next",
  ignore: !POOLER_AVAILABLE,
  async fn() {
    await withBackends(2, {}, async ([a, b], table) => {
      const first = await a.lock("k");
      assert.equal(first.acquired, true);
      assert.deepEqual(await leasesOf(table), ["k"]);
      const second = await b.lock("k");
      assert.equal(second.acquired, false);
      assert.equal((await a.lock("k")).acquired, false, "not reentrant");
      assert.equal((await b.lock("other")).acquired, true);
      await first.release();
      await first.release();
      assert.deepEqual(await leasesOf(table), ["other"]);
      const third = await b.lock("k");
      assert.equal(third.acquired, true);
      assert.equal(third.entry, undefined);
      await third.release();
    });
  },
});

Deno.test({
  name:
    "pooler: the lease taken after a holder wrote and released comes with the entry it wrote",
  ignore: !POOLER_AVAILABLE,
  async fn() {
    await withBackends(2, {}, async ([a, b]) => {
      const held = await a.lock("page");
      assert.equal(held.acquired, true);
      assert.equal((await b.lock("page")).acquired, false);
      await a.set("page", { body: "computed once" }, { expire: 60 });
      await held.release();
      const next = await b.lock("page");
      assert.equal(next.acquired, true);
      assert.ok(next.entry, "the entry read after the lease");
      assert.equal(next.entry.stale, false);
      assert.deepEqual(
        JSON.parse(new TextDecoder().decode(next.entry.body)),
        { body: "computed once" },
      );
      await next.release();
    });
  },
});

Deno.test({
  name:
    "pooler: a lease whose holder never released is taken over once it expired, and the sweep deletes expired leases",
  ignore: !POOLER_AVAILABLE,
  async fn() {
    await withBackends(2, { leaseTimeout: 60_000 }, async ([a, b], table) => {
      // The holder "crashed": it never releases.
      assert.equal((await a.lock("k")).acquired, true);
      assert.equal((await a.lock("gone")).acquired, true);
      assert.equal((await b.lock("k")).acquired, false);
      await expireLeases(table);
      const taken = await b.lock("k");
      assert.equal(taken.acquired, true);
      assert.equal(await b.sweep(), 0);
      assert.deepEqual(await leasesOf(table), ["k"]);
      await taken.release();
      assert.deepEqual(await leasesOf(table), []);
    });
  },
});

Deno.test({
  name:
    "pooler: 50 concurrent lock attempts on one key through 2 server connections take it once",
  ignore: !POOLER_AVAILABLE,
  async fn() {
    await withBackends(3, { maxSize: 4 }, async (backends) => {
      const locks = await Promise.all(
        Array.from({ length: 50 }, (_, i) => backends[i % 3].lock("hot")),
      );
      assert.equal(locks.filter((lock) => lock.acquired).length, 1);
      await Promise.all(locks.map((lock) => lock.release()));
    });
  },
});

Deno.test({
  name:
    "pooler: getOrSet computes once across instances, and eviction keeps the namespace within maxEntries",
  ignore: !POOLER_AVAILABLE,
  async fn() {
    await withBackends(2, { maxEntries: 20 }, async ([a, b]) => {
      let runs = 0;
      const compute = async () => {
        runs++;
        await new Promise((resolve) => setTimeout(resolve, 100));
        return "value";
      };
      const values = await Promise.all([
        a.getOrSet("once", compute, { expire: 60 }),
        b.getOrSet("once", compute, { expire: 60 }),
      ]);
      assert.deepEqual(values, ["value", "value"]);
      assert.equal(runs, 1);
      for (let i = 0; i < 40; i++) await a.set(`k${i}`, i);
      await a.evict();
      const stats = await b.stats();
      assert.ok(
        stats.entries !== null && stats.entries <= 20,
        `${stats.entries}`,
      );
    });
  },
});

Deno.test({
  name:
    "pooler: a local tier serves without a statement, keeps its copies after its own writes, and drops them after another instance's",
  ignore: !POOLER_AVAILABLE,
  async fn() {
    const localCache = { pollInterval: 0.05 };
    await withBackends(2, { localCache }, async ([a, b]) => {
      /** Resolves once `backend` polled twice more. */
      const polled = async (backend: PostgresBackend) => {
        const target = backend.roundTrips + 2;
        while (backend.roundTrips < target) {
          await new Promise((resolve) => setTimeout(resolve, 10));
        }
      };
      /** Whether `key` is served by `backend` without a statement. */
      const local = async (backend: PostgresBackend, key: string) => {
        await backend.get(key);
        const before = backend.roundTrips;
        const value = await backend.get(key);
        return backend.roundTrips === before ? value : undefined;
      };
      await a.set("x", "x1");
      await polled(b);
      assert.equal(await b.get("x"), "x1");
      assert.equal(await local(b, "x"), "x1");
      // B's own write counts, but does not drop B's other copies.
      await b.set("y", "y1");
      await polled(b);
      const before = b.roundTrips;
      assert.equal(await b.get("x"), "x1");
      assert.equal(b.roundTrips, before, "x still served from B's tier");
      // A's write drops B's copies at B's next poll.
      await a.set("x", "x2");
      await polled(b);
      assert.equal(await b.get("x"), "x2");
      await a.invalidateTags(["none"]);
      await a.clear();
      await polled(b);
      assert.equal(await b.get("x"), undefined);
    });
  },
});

Deno.test({
  name:
    "pooler: while the change counter cannot be read, the local tier serves nothing",
  ignore: !POOLER_AVAILABLE,
  async fn() {
    const localCache = { pollInterval: 0.05 };
    const errors: unknown[] = [];
    await withBackends(1, {
      localCache,
      queryTimeout: 200,
      onError: (error) => errors.push(error),
    }, async ([a], _table, bouncer) => {
      await a.set("x", "x1");
      assert.equal(await a.get("x"), "x1");
      await bouncer.stop();
      const start = performance.now();
      let served: unknown = "x1";
      while (served === "x1" && performance.now() - start < 5000) {
        served = await a.get("x").catch((error) => error);
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.ok(served instanceof Error, `still served: ${served}`);
      assert.ok(errors.length > 0);
    });
  },
});

Deno.test({
  name:
    "pooler: without the option, no lease table is made: locks stay on a session (the control)",
  ignore: !POOLER_AVAILABLE || DATABASE_URL === undefined,
  async fn() {
    // The control of the lease tests: the default mode opens a lock session
    // and leaves no lease table.
    const table = uniqueTable("pt");
    const backend = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      sweepInterval: 0,
    });
    try {
      const lock = await backend.lock("k");
      assert.equal(lock.acquired, true);
      const [row] = await withServer(async (sql) => [
        ...await sql.unsafe(
          `SELECT to_regclass($1) IS NULL AS none`,
          [`"${table}_leases"`],
        ),
      ]);
      assert.equal(row.none, true);
      await lock.release();
    } finally {
      await backend.close();
      await dropPoolerTable(table);
    }
  },
});
