// A table dropped under a running backend, or lost when the server crashed
// before its creation was flushed (synchronous_commit = off), is made again:
// the statement that finds it gone fails, and the next one recreates it.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { PostgresBackend } from "../../backends/postgres.ts";
import { cached } from "../../middleware/cached.ts";
import {
  DATABASE_URL,
  dropTable,
  dropTableSql,
  uniqueTable,
  withServer,
} from "../_helpers.ts";

Deno.test({
  name:
    "a table dropped under a running backend is made again: after one failed statement, writes and reads work",
  ignore: !DATABASE_URL,
  async fn() {
    const table = uniqueTable("lost");
    const errors: string[] = [];
    const backend = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      sweepInterval: 0,
      breakerThreshold: 100,
      onError: (error) => errors.push(String(error)),
    });
    try {
      await backend.set("k", 1);
      assert.equal(await backend.get("k"), 1);
      await withServer((sql) => sql.unsafe(dropTableSql(table)));
      // The statement that finds the table gone fails: the cache is empty.
      await assert.rejects(backend.set("k", 2));
      await backend.set("k", 3);
      assert.equal(await backend.get("k"), 3);
    } finally {
      await backend.close();
      await dropTable(table);
    }
  },
});

Deno.test({
  name:
    "a route keeps caching after its table was dropped: a request or two bypass, then MISS and HIT again",
  ignore: !DATABASE_URL,
  async fn() {
    const table = uniqueTable("lost");
    const backend = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      sweepInterval: 0,
      breakerThreshold: 100,
      onError: () => {},
    });
    let runs = 0;
    const app = new Hono();
    app.get(
      "/*",
      cached({ backend, wait: true, onError: () => {} }),
      (c) => c.text(`run ${++runs}`),
    );
    try {
      assert.equal((await app.request("/a")).headers.get("x-cache"), "MISS");
      assert.equal((await app.request("/a")).headers.get("x-cache"), "HIT");
      await withServer((sql) => sql.unsafe(dropTableSql(table)));
      const statuses: (string | null)[] = [];
      for (let i = 0; i < 6; i++) {
        statuses.push((await app.request("/b")).headers.get("x-cache"));
      }
      // Bypasses while the table is found gone, then cached again.
      assert.ok(statuses.includes("MISS"), `${statuses}`);
      assert.equal(statuses.at(-1), "HIT", `${statuses}`);
    } finally {
      await backend.close();
      await dropTable(table);
    }
  },
});
