// A lock taken with the read of a missing or stale entry (lookupOrLock) is
// either adopted by the computation or released: never left held on the
// lock session, where no other instance could take it again.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { PostgresBackend } from "../../backends/postgres.ts";
import { entryKey, urlPart } from "../../middleware/_key.ts";
import { cached } from "../../middleware/cached.ts";
import type { CachedOptions } from "../../middleware/types.ts";
import { DATABASE_URL, dropTable, uniqueTable } from "../_helpers.ts";

/** Tries `backend`'s lock on `key` until it is taken or `ms` pass. */
async function lockWithin(
  backend: PostgresBackend,
  key: string,
  ms: number,
): Promise<boolean> {
  const until = Date.now() + ms;
  while (Date.now() < until) {
    const lock = await backend.lock(key);
    if (lock.acquired) {
      await lock.release();
      return true;
    }
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
  return false;
}

Deno.test({
  name:
    "a lock taken with the read of a stale entry is released once the request answers STALE and its refresh ends: another instance takes it",
  ignore: !DATABASE_URL,
  async fn() {
    const table = uniqueTable("held");
    const a = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      sweepInterval: 0,
    });
    const b = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      sweepInterval: 0,
    });
    try {
      let runs = 0;
      let open!: () => void;
      const gate = new Promise<void>((resolve) => open = resolve);
      const app = new Hono();
      const options: CachedOptions = {
        backend: a,
        expire: 0.001,
        staleWhileRevalidate: 60,
        wait: true,
        app,
      };
      const handler = async () => {
        runs++;
        // The refresh (the second run) waits until the test lets it end.
        if (runs > 1) await gate;
        return new Response(`run ${runs}`);
      };
      app.get("/p", cached(options), handler);
      assert.equal((await app.request("/p")).headers.get("x-cache"), "MISS");
      // The entry expires by the database clock.
      await new Promise((resolve) => setTimeout(resolve, 20));
      // A route of its own, to which the key is cold: its read takes the lock.
      const cold = new Hono();
      cold.get("/p", cached(options), handler);
      const stale = await cold.request("/p");
      assert.equal(stale.headers.get("x-cache"), "STALE");
      const key = await entryKey(urlPart("http://localhost/p"), []);
      // The refresh holds the lock while it runs.
      assert.equal(await lockWithin(b, key, 100), false);
      open();
      // Once it ends, nothing of this process holds the lock any longer.
      assert.equal(await lockWithin(b, key, 3000), true);
      assert.equal(runs, 2);
    } finally {
      await a.close();
      await b.close();
      await dropTable(table);
    }
  },
});

Deno.test({
  name:
    "a lock taken with the read of a missing entry is adopted by the computation and released after its write: another instance then finds the entry",
  ignore: !DATABASE_URL,
  async fn() {
    const table = uniqueTable("held");
    const a = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      sweepInterval: 0,
    });
    const b = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      sweepInterval: 0,
    });
    try {
      const app = new Hono();
      app.get(
        "/q",
        cached({ backend: a, expire: 60, wait: true }),
        (c) => c.text("computed"),
      );
      assert.equal((await app.request("/q")).headers.get("x-cache"), "MISS");
      const key = await entryKey(urlPart("http://localhost/q"), []);
      assert.equal(await lockWithin(b, key, 3000), true);
      const lock = await b.lock(key);
      assert.ok(lock.acquired);
      assert.ok(lock.entry, "the entry written under the lock is there");
      await lock.release();
    } finally {
      await a.close();
      await b.close();
      await dropTable(table);
    }
  },
});
