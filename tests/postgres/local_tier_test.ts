// Local tiers of two instances kept coherent by NOTIFY, on the real server.
import assert from "node:assert/strict";
import { PostgresBackend } from "../../backends/postgres.ts";
import type { CacheValue } from "../../backends/types.ts";
import { DATABASE_URL, dropTable, uniqueTable } from "../_helpers.ts";

/** Two instances with local tiers on one fresh table, closed after `fn`. */
async function withPair(
  fn: (a: PostgresBackend, b: PostgresBackend) => Promise<void>,
): Promise<void> {
  const table = uniqueTable("lt");
  const open = () =>
    new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      namespace: "local",
      sweepInterval: 0,
      localCache: {},
    });
  const a = open();
  const b = open();
  try {
    await Promise.all([a.ready(), b.ready()]);
    await fn(a, b);
  } finally {
    await Promise.all([a.close(), b.close()]);
    await dropTable(table);
  }
}

/** Resolves to what `backend` reads at `key` once it equals `want` (1 s at most). */
async function eventually(
  backend: PostgresBackend,
  key: string,
  want: CacheValue,
): Promise<CacheValue | undefined> {
  const stop = performance.now() + 1000;
  let seen = await backend.get(key);
  while (seen !== want && performance.now() < stop) {
    await new Promise((resolve) => setTimeout(resolve, 10));
    seen = await backend.get(key);
  }
  return seen;
}

Deno.test({
  name:
    "local tier: an overwrite of a key holding separator characters reaches the other instance's local copy",
  ignore: DATABASE_URL === undefined,
  async fn() {
    await withPair(async (a, b) => {
      for (const key of ["a\x1eb", "x\x1fy", "*"]) {
        await a.set(key, "v1");
        assert.equal(await b.get(key), "v1");
        assert.equal(await b.get(key), "v1", "served from B's local tier");
        await a.set(key, "v2");
        assert.equal(await eventually(b, key, "v2"), "v2", JSON.stringify(key));
      }
    });
  },
});

Deno.test({
  name:
    "local tier: writes whose announcement passes 8000 bytes succeed, and still reach the other instance",
  ignore: DATABASE_URL === undefined,
  async fn() {
    await withPair(async (a, b) => {
      // 680 three-byte characters: 2040 bytes a key, four keys a batch.
      const keys = ["甲", "乙", "丙", "丁"].map((c) => c.repeat(680));
      await Promise.all(keys.map((key) => a.set(key, "v1")));
      for (const key of keys) assert.equal(await b.get(key), "v1");
      await Promise.all(keys.map((key) => a.set(key, "v2")));
      for (const key of keys) {
        assert.equal(await eventually(b, key, "v2"), "v2");
      }
      assert.equal(a.circuitOpen, false);
    });
  },
});
