// Issue 5: bounded storage (maxEntries, maxBytes, eviction oldest first, one
// instance at a time), table upkeep settings, and stats().
import assert from "node:assert/strict";
import postgres from "postgres";
import { MemoryBackend } from "../../backends/memory.ts";
import {
  PostgresBackend,
  type PostgresBackendOptions,
} from "../../backends/postgres.ts";
import { type SqlDriver, toSqlDriver } from "../../backends/sql_driver.ts";
import type { CacheStats } from "../../backends/types.ts";
import {
  DATABASE_URL,
  dropTable,
  pglite,
  postgresKinds,
  uniqueNamespace,
  uniqueTable,
  withServer,
} from "../_helpers.ts";

type Row = Record<string, unknown>;
type Query = (text: string, params?: unknown[]) => Promise<Row[]>;

const SERVER = "postgres on the real server";

/**
 * Opens PostgresBackends of `kind` on one table (dropped at the end) and a
 * query function on the same database, runs `fn`, and closes everything.
 */
async function onTable(
  kindName: string,
  fn: (
    open: (
      options?: Omit<PostgresBackendOptions, "dsn" | "client" | "embedded">,
    ) => PostgresBackend,
    query: Query,
    table: string,
  ) => Promise<void>,
): Promise<void> {
  const table = uniqueTable("bounds");
  const opened: PostgresBackend[] = [];
  const run = async (query: Query, client: () => PostgresBackendOptions) => {
    try {
      await fn(
        (options) => {
          const backend = new PostgresBackend({
            sweepInterval: 0,
            ...options,
            table,
            ...client(),
          });
          opened.push(backend);
          return backend;
        },
        query,
        table,
      );
    } finally {
      for (const backend of opened) await backend.close();
    }
  };
  if (kindName === SERVER) {
    try {
      await withServer((sql) =>
        run(
          async (text, params) => [
            ...await sql.unsafe(text, params as never[]),
          ],
          () => ({ dsn: DATABASE_URL! }),
        )
      );
    } finally {
      await dropTable(table);
    }
  } else {
    const db = await pglite();
    try {
      await run(
        async (text, params) => (await db.query(text, params)).rows as Row[],
        () => ({ client: db }),
      );
    } finally {
      await db.query(`DROP TABLE IF EXISTS "${table}"`);
    }
  }
}

function key(i: number): string {
  return `k${String(i).padStart(5, "0")}`;
}

async function countOf(
  query: Query,
  table: string,
  namespace: string,
): Promise<{ entries: number; bytes: number }> {
  const [row] = await query(
    `SELECT count(*)::int AS entries, coalesce(sum(byte_size), 0)::int AS bytes
     FROM "${table}" WHERE namespace = $1`,
    [namespace],
  );
  return { entries: Number(row.entries), bytes: Number(row.bytes) };
}

async function keysOf(
  query: Query,
  table: string,
  namespace: string,
): Promise<string[]> {
  const rows = await query(
    `SELECT key FROM "${table}" WHERE namespace = $1 ORDER BY key`,
    [namespace],
  );
  return rows.map((row) => String(row.key));
}

/** Inserts `n` rows of `size` bytes, oldest first, straight into the table. */
async function fill(
  query: Query,
  table: string,
  namespace: string,
  n: number,
  size = 10,
): Promise<void> {
  await query(
    `INSERT INTO "${table}"
  (namespace, key, kind, value, tags, byte_size, created_at, expires_at, stale_until)
SELECT $1, 'k' || lpad(i::text, 5, '0'), 1, decode(repeat('00', $3::int), 'hex'), '{}', $3::int,
  now() - ($2::int - i) * interval '1 millisecond', 'infinity', 'infinity'
FROM generate_series(0, $2::int - 1) AS i`,
    [namespace, n, size],
  );
}

for (const kind of postgresKinds) {
  // PGlite runs every statement in this process, one at a time: a smaller
  // load of the same shape (10x the bound) keeps its run short.
  const bound = kind.name === SERVER ? 200 : 50;
  Deno.test({
    name: `bounds: ${kind.name}: with maxEntries ${bound}, writing ${
      10 * bound
    } keys keeps the namespace within 10% of the bound throughout, by background eviction alone`,
    ignore: !kind.available,
    async fn() {
      await onTable(kind.name, async (open, query, table) => {
        const namespace = uniqueNamespace("max");
        const backend = open({ namespace, maxEntries: bound });
        await backend.ready();
        const samples: number[] = [];
        for (let i = 0; i < 10 * bound; i++) {
          await backend.set(key(i), i);
          if ((i + 1) % (bound / 2) === 0) {
            samples.push((await countOf(query, table, namespace)).entries);
          }
        }
        const peak = Math.max(...samples);
        assert.ok(
          peak <= bound * 1.1,
          `the namespace grew to ${peak} entries against a bound of ${bound} (samples: ${
            samples.join(", ")
          })`,
        );
        assert.ok(
          samples.slice(4).every((n) => n >= bound * 0.9),
          `eviction went far below the bound: ${samples.join(", ")}`,
        );
        assert.ok(
          (await backend.stats()).evictions >= 8 * bound,
          "background eviction did the work",
        );
      });
    },
  });

  Deno.test({
    name:
      `bounds: ${kind.name}: eviction removes the oldest entries first: after an overflow the survivors are the most recent keys`,
    ignore: !kind.available,
    async fn() {
      await onTable(kind.name, async (open, query, table) => {
        const namespace = uniqueNamespace("oldest");
        const backend = open({ namespace, maxEntries: 200 });
        await backend.ready();
        const n = 400;
        for (let i = 0; i < n; i++) await backend.set(key(i), i);
        // Whatever the background did, what survives is a run of the newest.
        const newest = (count: number) =>
          Array.from({ length: count }, (_, i) => key(n - count + i));
        const during = await keysOf(query, table, namespace);
        assert.deepEqual(during, newest(during.length));
        // Closing waits for the background eviction in flight.
        await backend.close();
        const after = await keysOf(query, table, namespace);
        assert.deepEqual(after, newest(after.length));
        assert.ok(after.length <= 220, `${after.length} entries left`);
        // Background eviction goes down to 90% of the bound, for headroom.
        assert.ok(after.length >= 180, `${after.length} entries left`);
        const second = open({ namespace, maxEntries: 200 });
        const kept = Math.min(after.length, 200);
        assert.equal(await second.evict(), after.length - kept);
        assert.deepEqual(await keysOf(query, table, namespace), newest(kept));
        // A rewrite makes an old key new again: it outlives untouched ones.
        const oldest = newest(kept)[0];
        await second.set(oldest, "again");
        await fill(query, table, uniqueNamespace("elsewhere"), 5);
        const other = open({ namespace, maxEntries: 150 });
        assert.equal(await other.evict(), kept - 150);
        const left = await keysOf(query, table, namespace);
        assert.ok(left.includes(oldest), "the rewritten key was evicted");
        assert.deepEqual(
          left.filter((k) => k !== oldest),
          newest(149),
        );
        assert.equal(await second.get(oldest), "again");
      });
    },
  });

  Deno.test({
    name:
      `bounds: ${kind.name}: with 1 KiB values and maxBytes 50 KiB, the namespace's bytes stay within 10% of the bound during the load`,
    ignore: !kind.available,
    async fn() {
      await onTable(kind.name, async (open, query, table) => {
        const namespace = uniqueNamespace("bytes");
        // Only the byte bound: maxEntries stays at its default.
        const backend = open({ namespace, maxBytes: 50 * 1024 });
        await backend.ready();
        const value = new Uint8Array(1024).fill(7);
        const samples: number[] = [];
        for (let i = 0; i < 400; i++) {
          await backend.set(key(i), value);
          if ((i + 1) % 20 === 0) {
            samples.push((await countOf(query, table, namespace)).bytes);
          }
        }
        const peak = Math.max(...samples);
        assert.ok(
          peak <= 55 * 1024,
          `the namespace grew to ${peak} bytes against a bound of ${
            50 * 1024
          } (samples: ${samples.join(", ")})`,
        );
      });
    },
  });

  Deno.test({
    name:
      `bounds: ${kind.name}: evict() brings the namespace within maxBytes, oldest first, and returns the count`,
    ignore: !kind.available,
    async fn() {
      await onTable(kind.name, async (open, query, table) => {
        const namespace = uniqueNamespace("bytes-evict");
        const backend = open({ namespace, maxBytes: 50 * 1024 });
        await backend.ready();
        await fill(query, table, namespace, 120, 1024);
        assert.equal(await backend.evict(), 70);
        assert.deepEqual(await countOf(query, table, namespace), {
          entries: 50,
          bytes: 50 * 1024,
        });
        assert.deepEqual(
          await keysOf(query, table, namespace),
          Array.from({ length: 50 }, (_, i) => key(70 + i)),
        );
        // Within both bounds: nothing to do.
        assert.equal(await backend.evict(), 0);
        // Both bounds at once: whichever needs more evictions wins.
        const both = open({
          namespace,
          maxEntries: 40,
          maxBytes: 45 * 1024,
        });
        assert.equal(await both.evict(), 10);
        const smaller = open({
          namespace,
          maxEntries: 40,
          maxBytes: 20 * 1024,
        });
        assert.equal(await smaller.evict(), 20);
        assert.deepEqual(await countOf(query, table, namespace), {
          entries: 20,
          bytes: 20 * 1024,
        });
      });
    },
  });

  Deno.test({
    name:
      `bounds: ${kind.name}: two instances evicting an overfull namespace at once evict exactly the excess in total`,
    ignore: !kind.available,
    async fn() {
      await onTable(kind.name, async (open, query, table) => {
        const namespace = uniqueNamespace("two");
        const a = open({ namespace, maxEntries: 200 });
        const b = open({ namespace, maxEntries: 200 });
        await Promise.all([a.ready(), b.ready()]);
        // The race is timing-dependent: repeat it.
        const rounds = kind.name === SERVER ? 15 : 3;
        for (let round = 0; round < rounds; round++) {
          await query(`DELETE FROM "${table}" WHERE namespace = $1`, [
            namespace,
          ]);
          await fill(query, table, namespace, 650);
          const [fromA, fromB] = await Promise.all([a.evict(), b.evict()]);
          assert.equal(
            fromA + fromB,
            450,
            `round ${round}: A evicted ${fromA} and B ${fromB}`,
          );
          assert.equal((await countOf(query, table, namespace)).entries, 200);
          assert.deepEqual(
            await keysOf(query, table, namespace),
            Array.from({ length: 200 }, (_, i) => key(450 + i)),
          );
        }
        const [sa, sb] = await Promise.all([a.stats(), b.stats()]);
        assert.equal(sa.evictions + sb.evictions, rounds * 450);
      });
    },
  });

  // Only a server runs statements concurrently.
  if (kind.name === SERVER) {
    Deno.test({
      name:
        `bounds: ${kind.name}: evict() does not wait for rows another transaction holds, and still brings the namespace within its bound`,
      ignore: !kind.available,
      async fn() {
        await onTable(kind.name, async (open, query, table) => {
          const namespace = uniqueNamespace("raced");
          const backend = open({
            namespace,
            maxEntries: 200,
            queryTimeout: 5000,
          });
          await backend.ready();
          await fill(query, table, namespace, 650);
          let total = -1;
          await withServer((sql) =>
            sql.begin(async (tx) => {
              // Another client (a tag purge, another instance) deletes the
              // oldest rows and has not committed yet: it holds their locks.
              await tx.unsafe(
                `DELETE FROM "${table}" WHERE namespace = $1 AND key < $2`,
                [namespace, key(100)],
              );
              // The eviction completes while those rows are still locked.
              total = await backend.evict();
            })
          );
          const { entries } = await countOf(query, table, namespace);
          assert.ok(total >= 350, `evict() evicted ${total}`);
          assert.ok(
            entries <= 200,
            `evict() returned ${total} and left ${entries} entries against a bound of 200`,
          );
          // Only rows the other transaction did not hold were evicted.
          assert.equal(entries, 650 - 100 - total);
        });
      },
    });
  }

  Deno.test({
    name:
      `bounds: ${kind.name}: eviction stays in its namespace: another namespace of the table keeps its entries`,
    ignore: !kind.available,
    async fn() {
      await onTable(kind.name, async (open, query, table) => {
        const crowded = uniqueNamespace("crowded");
        const quiet = uniqueNamespace("quiet");
        const backend = open({ namespace: crowded, maxEntries: 100 });
        await backend.ready();
        await fill(query, table, quiet, 300);
        await fill(query, table, crowded, 300);
        assert.equal(await backend.evict(), 200);
        assert.equal((await countOf(query, table, crowded)).entries, 100);
        assert.equal((await countOf(query, table, quiet)).entries, 300);
      });
    },
  });

  Deno.test({
    name:
      `bounds: ${kind.name}: the table is created with fillfactor 80 and aggressive autovacuum settings`,
    ignore: !kind.available,
    async fn() {
      await onTable(kind.name, async (open, query, table) => {
        await open().ready();
        const [row] = await query(
          `SELECT reloptions FROM pg_class WHERE oid = to_regclass($1)`,
          [`"${table}"`],
        );
        const options = row.reloptions as string[];
        for (
          const option of [
            "fillfactor=80",
            "autovacuum_vacuum_scale_factor=0.02",
            "autovacuum_vacuum_insert_scale_factor=0.02",
            "autovacuum_vacuum_cost_delay=0",
          ]
        ) {
          assert.ok(
            options.includes(option),
            `${option} missing from ${options}`,
          );
        }
      });
    },
  });
}

Deno.test("bounds: maxEntries and maxBytes must be positive integers", () => {
  const client = {
    query: () => Promise.resolve([]),
    close: () => Promise.resolve(),
  };
  for (
    const options of [
      { maxEntries: 0 },
      { maxEntries: 1.5 },
      { maxBytes: -1 },
      { maxBytes: Infinity },
    ]
  ) {
    assert.throws(
      () => new PostgresBackend({ client, ...options }),
      RangeError,
    );
  }
});

/** The table's pg_stat_user_tables row, once the closed sessions' statistics have landed. */
async function tableStats(
  query: Query,
  table: string,
  landed: (row: Row) => boolean,
): Promise<Row> {
  let row: Row | undefined;
  for (let i = 0; i < 100; i++) {
    await query("SELECT pg_stat_force_next_flush()");
    [row] = await query(
      `SELECT n_tup_ins::int AS ins, n_tup_upd::int AS upd, n_tup_hot_upd::int AS hot,
         n_tup_del::int AS del, n_dead_tup::int AS dead
       FROM pg_stat_user_tables WHERE relid = to_regclass($1)`,
      [`"${table}"`],
    );
    if (row && landed(row)) return row;
    await new Promise((r) => setTimeout(r, 20));
  }
  assert.fail(`statistics never landed: ${JSON.stringify(row)}`);
}

Deno.test({
  name:
    "bounds: postgres on the real server: an overflow load leaves dead tuples only for evicted rows, fewer than the writes",
  ignore: !DATABASE_URL,
  async fn() {
    await onTable(SERVER, async (open, query, table) => {
      const namespace = uniqueNamespace("dead");
      const backend = open({ namespace, maxEntries: 200 });
      await backend.ready();
      const writes = 1000;
      for (let i = 0; i < writes; i++) await backend.set(key(i), i);
      // Closing waits for eviction in flight; a closing session flushes its
      // statistics.
      await backend.close();
      const evicted = writes - (await countOf(query, table, namespace)).entries;
      assert.ok(evicted >= writes - 220);
      const row = await tableStats(
        query,
        table,
        (row) => Number(row.ins) >= writes && Number(row.del) >= evicted,
      );
      const dead = Number(row.dead);
      assert.ok(
        dead < writes,
        `${dead} dead tuples after ${writes} writes: they grow 1:1 with writes`,
      );
      assert.ok(
        dead <= evicted,
        `${dead} dead tuples for ${evicted} evictions: writes left dead tuples of their own`,
      );
    });
  },
});

Deno.test({
  name:
    "bounds: postgres on the real server: rewriting the same keys does not bloat the table: the sweep vacuums the dead tuples away",
  ignore: !DATABASE_URL,
  async fn() {
    await onTable(SERVER, async (open, query, table) => {
      const namespace = uniqueNamespace("rewrite");
      const backend = open({ namespace });
      await backend.ready();
      const keys = 50;
      const value = new Uint8Array(1024).fill(1);
      const size = async () =>
        Number(
          (await query(`SELECT pg_total_relation_size($1)::int8 AS n`, [
            `"${table}"`,
          ]))[0]
            .n,
        );
      for (let i = 0; i < keys; i++) await backend.set(key(i), value);
      await backend.sweep();
      const first = await size();
      // Every rewrite changes indexed columns, so it adds index entries;
      // without a vacuum the indexes grow by half over these rounds.
      for (let round = 0; round < 30; round++) {
        for (let i = 0; i < keys; i++) await backend.set(key(i), value);
        await backend.sweep();
      }
      const last = await size();
      assert.ok(
        last <= first * 1.2,
        `the table and its indexes grew from ${first} to ${last} bytes over 30 rounds of rewrites`,
      );
    });
  },
});

/** A driver on `inner` that fails every query while `failing` is set. */
function flaky(inner: SqlDriver): SqlDriver & { failing: boolean } {
  const driver = {
    failing: false,
    query(text: string, params: readonly unknown[]) {
      return driver.failing
        ? Promise.reject(new Error("connection lost (simulated)"))
        : inner.query(text, params);
    },
    close: () => inner.close(),
  };
  return driver;
}

for (const kind of postgresKinds) {
  Deno.test({
    name:
      `stats: ${kind.name}: counts this process's hits, misses, stale serves, evictions and errors, and the namespace's entries and bytes from the database`,
    ignore: !kind.available,
    async fn() {
      await onTable(kind.name, async (open, query, table) => {
        const namespace = uniqueNamespace("stats");
        const writer = open({ namespace });
        const zero: CacheStats = {
          entries: 0,
          bytes: 0,
          hits: 0,
          misses: 0,
          staleServes: 0,
          evictions: 0,
          errors: 0,
          droppedWrites: 0,
        };
        assert.deepEqual(await writer.stats(), zero);
        await writer.set("a", new Uint8Array(10));
        await writer.set("b", new Uint8Array(20));
        await writer.set("c", "xyz"); // JSON "xyz" with quotes: 5 bytes
        await writer.writeEntry("s", {
          kind: 1,
          body: new Uint8Array(7),
        }, { expire: 60, staleFor: 3600 });
        // Expiry is by the database clock: move the entry past it.
        await query(
          `UPDATE "${table}" SET created_at = now() - interval '2 minutes',
             expires_at = now() - interval '1 minute' WHERE namespace = $1 AND key = 's'`,
          [namespace],
        );
        assert.equal(await writer.get("a") !== undefined, true);
        assert.equal(await writer.has("b"), true);
        assert.equal(await writer.get("missing"), undefined);
        assert.equal((await writer.readEntry("s"))?.stale, true);
        assert.deepEqual(await writer.stats(), {
          ...zero,
          entries: 4,
          bytes: 42,
          hits: 2,
          misses: 1,
          staleServes: 1,
        });

        // Evictions are counted by the instance that evicts; the sizes
        // are the database's, the same for every instance.
        const evicter = open({ namespace, maxEntries: 2 });
        assert.equal(await evicter.evict(), 2);
        const [w, e] = [await writer.stats(), await evicter.stats()];
        assert.equal(w.evictions, 0);
        assert.equal(e.evictions, 2);
        assert.equal(w.entries, 2);
        assert.equal(e.entries, 2);
        assert.equal(w.bytes, e.bytes);
        assert.equal(e.hits + e.misses, 0);
      });
    },
  });

  Deno.test({
    name:
      `stats: ${kind.name}: a failed database operation is counted in errors`,
    ignore: !kind.available,
    async fn() {
      const table = uniqueTable("bounds_err");
      let inner: SqlDriver;
      let cleanup: () => Promise<void>;
      if (kind.name === SERVER) {
        const sql = postgres(DATABASE_URL!, { max: 2, onnotice: () => {} });
        inner = toSqlDriver(sql, true);
        cleanup = () => dropTable(table);
      } else {
        const db = await pglite();
        inner = toSqlDriver(db);
        cleanup = async () => {
          await db.query(`DROP TABLE IF EXISTS "${table}"`);
        };
      }
      const driver = flaky(inner);
      const backend = new PostgresBackend({
        client: driver,
        table,
        namespace: uniqueNamespace("err"),
        sweepInterval: 0,
        onError: () => {},
      });
      try {
        await backend.ready();
        await backend.set("k", 1);
        driver.failing = true;
        await assert.rejects(backend.get("k"));
        await assert.rejects(backend.set("k2", 2));
        await assert.rejects(backend.invalidateTags(["t"]));
        driver.failing = false;
        const stats = await backend.stats();
        assert.equal(stats.errors, 3);
        assert.equal(stats.hits + stats.misses, 0);
        assert.equal(stats.entries, 1);
        assert.equal(await backend.get("k"), 1);
        assert.equal((await backend.stats()).errors, 3);
      } finally {
        await backend.close();
        await inner.close();
        await cleanup();
      }
    },
  });
}

Deno.test("stats: a PostgresBackend on a closed port still reports its counters, with the failed operations in errors", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close(); // nothing listens there now
  const backend = new PostgresBackend({
    dsn: `postgres://postgres@127.0.0.1:${port}/test`,
    sweepInterval: 0,
    queryTimeout: 500,
    connectTimeout: 500,
    onError: () => {},
  });
  try {
    await assert.rejects(backend.get("k"));
    await assert.rejects(backend.set("k", 1));
    let stats: CacheStats | undefined;
    let failure: unknown;
    try {
      stats = await backend.stats();
    } catch (error) {
      failure = error;
    }
    assert.ok(
      stats,
      `stats() rejected instead of reporting the counters: ${failure}`,
    );
    assert.ok(stats.errors >= 2, `errors: ${stats.errors}`);
    assert.equal(stats.hits + stats.misses, 0);
  } finally {
    await backend.close();
  }
});

Deno.test("stats: MemoryBackend counts hits, misses, stale serves and LRU evictions, and reports entries and bytes held", async () => {
  let now = 1_000_000;
  const backend = new MemoryBackend({ maxEntries: 3, now: () => now });
  await backend.set("a", new Uint8Array(10));
  await backend.set("b", "xyz");
  await backend.writeEntry("s", { kind: 1, body: new Uint8Array(7) }, {
    expire: 10,
    staleFor: 100,
  });
  assert.deepEqual(await backend.stats(), {
    entries: 3,
    bytes: 22,
    hits: 0,
    misses: 0,
    staleServes: 0,
    evictions: 0,
    errors: 0,
    droppedWrites: 0,
  });
  assert.ok(await backend.get("a"));
  assert.equal(await backend.get("nope"), undefined);
  now += 20_000;
  assert.equal((await backend.readEntry("s"))?.stale, true);
  await backend.set("d", 1); // evicts the least recently used: b
  await backend.set("e", 2); // then a
  assert.equal(await backend.has("b"), false);
  const stats = await backend.stats();
  assert.equal(stats.hits, 1);
  assert.equal(stats.misses, 2);
  assert.equal(stats.staleServes, 1);
  assert.equal(stats.evictions, 2);
  assert.equal(stats.entries, 3);
  assert.equal(stats.bytes, 7 + 1 + 1);
  assert.equal(stats.errors, 0);
});
