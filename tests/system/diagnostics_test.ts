// Issue 13: what an operator sees when something is wrong: stats() during a
// real outage (a throwaway cluster, stopped), and a role without grants,
// whose error names the grants it needs.
import assert from "node:assert/strict";
import {
  CachePermissionError,
  PostgresBackend,
} from "../../backends/postgres.ts";
import { startCluster } from "../_cluster.ts";
import {
  DATABASE_URL,
  dropTable,
  uniqueTable,
  withServer,
} from "../_helpers.ts";

Deno.test({
  name:
    "stats() during an outage reports entries and bytes as null, with the reason, instead of 0",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const cluster = await startCluster();
    const errors: string[] = [];
    const backend = new PostgresBackend({
      dsn: cluster.url,
      sweepInterval: 0,
      connectTimeout: 1000,
      queryTimeout: 1000,
      onError: (_error, { operation }) => errors.push(operation),
    });
    try {
      await backend.set("k", "v");
      const up = await backend.stats();
      assert.equal(up.entries, 1);
      assert.equal(up.unavailable, undefined);
      await cluster.stop("fast");
      const down = await backend.stats();
      assert.equal(down.entries, null);
      assert.equal(down.bytes, null);
      assert.equal(typeof down.unavailable, "string");
      assert.ok(down.unavailable!.length > 0);
      // The counters are still there.
      assert.ok(down.errors >= 1, `errors: ${down.errors}`);
      assert.ok(errors.includes("stats"), errors.join());
    } finally {
      await backend.close();
      await cluster.destroy();
    }
  },
});

Deno.test({
  name:
    "a role without grants: the permission error names the grants needed, in one line of the default log and as CachePermissionError",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const suffix = crypto.randomUUID().slice(0, 8);
    const role = `cachekit_nogrant_${suffix}`;
    const table = uniqueTable("perm");
    const roleUrl = new URL(DATABASE_URL!);
    roleUrl.username = role;
    roleUrl.password = "";
    const owner = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      sweepInterval: 0,
    });
    const opened: PostgresBackend[] = [owner];
    const lines: unknown[][] = [];
    const original = console.error;
    try {
      await owner.ready();
      await withServer((sql) => sql.unsafe(`CREATE ROLE ${role} LOGIN`));
      const grants = new RegExp(
        `Permission denied on the cache table "${table}": the role needs GRANT SELECT, INSERT, UPDATE, DELETE ON "${table}", "${table}_epochs" and GRANT EXECUTE ON FUNCTION "${table}_evict", "${table}_purge"`,
      );

      const seen: unknown[] = [];
      const hooked = new PostgresBackend({
        dsn: roleUrl.href,
        table,
        sweepInterval: 0,
        onError: (error) => seen.push(error),
      });
      opened.push(hooked);
      await assert.rejects(hooked.get("k"), (error: unknown) => {
        assert.ok(error instanceof CachePermissionError, String(error));
        assert.match(error.message, grants);
        assert.equal((error.cause as { code?: string }).code, "42501");
        return true;
      });

      console.error = (...args: unknown[]) => void lines.push(args);
      const logged = new PostgresBackend({
        dsn: roleUrl.href,
        table,
        sweepInterval: 0,
      });
      opened.push(logged);
      assert.equal(await logged.getOrSet("k", () => "computed"), "computed");
      console.error = original;
      assert.equal(lines.length, 1, JSON.stringify(lines));
      assert.equal(lines[0].length, 1, "one string: no error object, no stack");
      const line = String(lines[0][0]);
      assert.ok(!line.includes("\n"), line);
      assert.match(
        line,
        /^\[cachekit\] reading the cache failed in namespace "hono_cache": /,
      );
      assert.match(line, grants);
    } finally {
      console.error = original;
      for (const backend of opened) await backend.close();
      await dropTable(table);
      await withServer((sql) => sql.unsafe(`DROP ROLE IF EXISTS ${role}`));
    }
  },
});
