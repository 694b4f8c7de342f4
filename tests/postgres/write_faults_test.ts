// Writes under contention and past their deadline, on the real server.
import assert from "node:assert/strict";
import {
  CacheOutcomeUnknownError,
  CacheTimeoutError,
  PostgresBackend,
} from "../../backends/postgres.ts";
import {
  DATABASE_URL,
  dropTable,
  uniqueNamespace,
  uniqueTable,
  withServer,
} from "../_helpers.ts";

/** Resolves once no statement on `table` is running on the server (20 s at most). */
async function settled(table: string): Promise<void> {
  await withServer(async (sql) => {
    for (let i = 0; i < 200; i++) {
      const [{ n }] = await sql`SELECT count(*)::int AS n FROM pg_stat_activity
        WHERE state <> 'idle' AND pid <> pg_backend_pid()
          AND query LIKE ${`%"${table}"%`}`;
      if (n === 0) return;
      await new Promise((resolve) => setTimeout(resolve, 100));
    }
    throw new Error(`Statements on ${table} still running after 20 s`);
  });
}

Deno.test({
  name:
    "concurrent write batches of two instances never deadlock, whatever order their keys come in",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const table = uniqueTable("dl");
    const namespace = uniqueNamespace();
    const open = () =>
      new PostgresBackend({
        dsn: DATABASE_URL!,
        table,
        namespace,
        sweepInterval: 0,
        maxSize: 4,
        // Far above PostgreSQL's 1 s deadlock_timeout: a deadlock shows up
        // as a deadlock error, not as a timeout.
        queryTimeout: 10_000,
      });
    const a = open();
    const b = open();
    try {
      await Promise.all([a.ready(), b.ready()]);
      const keys = Array.from({ length: 100 }, (_, i) => `k${i}`);
      const reversed = [...keys].reverse();
      let rejected = 0;
      let firstError: unknown;
      for (let round = 0; round < 15; round++) {
        const writes = [
          ...keys.map((key) => a.set(key, { round, by: "a" })),
          ...reversed.map((key) => b.set(key, { round, by: "b" })),
        ];
        for (const result of await Promise.allSettled(writes)) {
          if (result.status === "rejected") {
            rejected++;
            firstError ??= result.reason;
          }
        }
      }
      assert.equal(rejected, 0, `writes rejected, first: ${firstError}`);
      assert.equal(a.circuitOpen || b.circuitOpen, false);
      const value = await a.get("k42") as { round: number };
      assert.equal(value.round, 14);
    } finally {
      await Promise.all([a.close(), b.close()]);
      await dropTable(table);
    }
  },
});

Deno.test({
  name:
    "a write reported as timed out never commits: it is cancelled, or its outcome is reported unknown",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const table = uniqueTable("to");
    const backend = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      sweepInterval: 0,
      queryTimeout: 50,
      breakerThreshold: 100,
    });
    try {
      await backend.ready();
      // 50 MB takes far longer than 50 ms to send and store.
      const big = new Uint8Array(50 * 1024 * 1024).fill(7);
      const outcomes: string[] = [];
      for (let i = 0; i < 2; i++) {
        const key = `big${i}`;
        const started = performance.now();
        const outcome = await backend.set(key, big).then(
          () => "committed",
          (error) => {
            if (error instanceof CacheOutcomeUnknownError) return "unknown";
            assert.ok(
              error instanceof CacheTimeoutError,
              `unexpected ${error}`,
            );
            return "timed out";
          },
        );
        const took = performance.now() - started;
        outcomes.push(outcome);
        // Whatever was reported stays true once the server is done with it.
        await settled(table);
        const present = await withServer(async (sql) =>
          (await sql.unsafe(
            `SELECT 1 FROM "${table}" WHERE key = $1`,
            [key],
          )).length === 1
        );
        if (outcome === "timed out") assert.equal(present, false, key);
        if (outcome === "committed") {
          assert.equal(present, true, key);
          assert.ok(took > 50, `${key} committed within the deadline`);
        }
      }
      // The deadline was really passed: not every write just committed.
      assert.ok(
        outcomes.some((outcome) => outcome !== "committed"),
        outcomes.join(),
      );
    } finally {
      await backend.close();
      await dropTable(table);
    }
  },
});
