// A purge wins over computations that began before it, across processes.
import assert from "node:assert/strict";
import { PostgresBackend } from "../../backends/postgres.ts";
import { invalidate } from "../../middleware/invalidate.ts";
import {
  backendKinds,
  DATABASE_URL,
  dropTable,
  uniqueTable,
  withServer,
} from "../_helpers.ts";
import { spawnFixture } from "../_process.ts";

/** Polls `port`'s handler runs until there are `runs` (3 s at most). */
async function runsReach(port: number, runs: number): Promise<number> {
  const stop = performance.now() + 3000;
  for (;;) {
    const seen = (await (await fetch(`http://127.0.0.1:${port}/runs`)).json())
      .runs as number;
    if (seen >= runs || performance.now() > stop) return seen;
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

Deno.test({
  name:
    "once invalidate() has resolved, no request that starts afterwards is served a value computed before it, in any process",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const table = uniqueTable("race");
    const source = uniqueTable("source");
    await withServer((sql) =>
      sql.unsafe(
        `CREATE TABLE "${source}" (v text); INSERT INTO "${source}" VALUES ('v1')`,
      ).simple()
    );
    const env = { DATABASE_URL: DATABASE_URL!, TABLE: table, SOURCE: source };
    const backend = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      namespace: "purge-race",
      sweepInterval: 0,
    });
    const one = await spawnFixture("purge_race_server.ts", {
      ...env,
      GATED: "1",
    });
    const two = await spawnFixture("purge_race_server.ts", {
      ...env,
      GATED: "0",
    });
    const report = (port: number) =>
      fetch(`http://127.0.0.1:${port}/report`).then((res) => res.text());
    try {
      await backend.ready();
      // A slow computation in process one reads the source before it changes.
      const before = report(one.port);
      assert.equal(await runsReach(one.port, 1), 1);
      await withServer((sql) => sql.unsafe(`UPDATE "${source}" SET v = 'v2'`));
      await invalidate(backend, "/report");

      // Requests that start now, in the same process and in another one.
      const sameProcess = report(one.port);
      await runsReach(one.port, 2);
      const otherProcess = report(two.port);
      await fetch(`http://127.0.0.1:${one.port}/open`, { method: "POST" });

      assert.equal(await before, "v1", "it began before the purge");
      assert.equal(await sameProcess, "v2", "a request of the same process");
      assert.equal(await otherProcess, "v2", "a request of another process");
      // What stays stored is the value computed after the purge.
      assert.equal(await report(two.port), "v2");
      assert.equal(await report(one.port), "v2");
    } finally {
      await one.stop();
      await two.stop();
      await backend.close();
      await dropTable(table);
      await withServer((sql) => sql.unsafe(`DROP TABLE "${source}"`));
    }
  },
});

Deno.test({
  name:
    "a write computed before a purge does not land after it, on every backend kind",
  async fn() {
    for (const kind of backendKinds.filter((kind) => kind.available)) {
      const { backend, dispose } = await kind.open();
      try {
        const found = await backend.lookup!("k");
        assert.equal(found.entry, undefined, kind.name);
        await backend.delete("k");
        const body = new TextEncoder().encode("old");
        await backend.writeEntry("k", { kind: 1, body }, {
          epoch: found.epoch,
        });
        assert.equal(await backend.readEntry("k"), undefined, kind.name);
        // Computed after the purge, it lands.
        const again = await backend.lookup!("k");
        await backend.writeEntry("k", { kind: 1, body }, {
          epoch: again.epoch,
        });
        assert.ok(await backend.readEntry("k"), kind.name);
      } finally {
        await dispose();
      }
    }
  },
});
