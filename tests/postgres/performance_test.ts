// Issue 6 behaviours: batched reads and writes, writes off the critical
// path, a bounded write queue, and the coherent local tier. Timings live in
// `deno task bench`; these tests count round trips and handler runs.
import assert from "node:assert/strict";
import { Hono } from "hono";
import {
  CacheQueueFullError,
  PostgresBackend,
} from "../../backends/postgres.ts";
import { type SqlDriver, toSqlDriver } from "../../backends/sql_driver.ts";
import { cached } from "../../middleware/cached.ts";
import {
  DATABASE_URL,
  dropTable,
  pglite,
  postgresKinds,
  uniqueTable,
} from "../_helpers.ts";
import { spawnFixture } from "../_process.ts";
import { startProxy } from "../_proxy.ts";

const quiet = () => {};

for (const server of postgresKinds) {
  Deno.test({
    name:
      `batched reads on ${server.name}: 64 concurrent cold-start hits use at most 4 queries`,
    ignore: !server.available,
    async fn() {
      const { backend, dispose } = await server.open();
      try {
        await backend.ready();
        let runs = 0;
        const app = new Hono();
        app.get("/item/:id", cached({ backend, wait: true }), (c) => {
          runs++;
          return c.text(`item ${c.req.param("id")}`);
        });
        for (let i = 0; i < 64; i++) await app.request(`/item/${i}`);
        assert.equal(runs, 64);
        const before = backend.roundTrips;
        const responses = await Promise.all(
          Array.from({ length: 64 }, (_, i) => app.request(`/item/${i}`)),
        );
        for (const [i, res] of responses.entries()) {
          assert.equal(res.headers.get("x-cache"), "HIT");
          assert.equal(await res.text(), `item ${i}`);
        }
        assert.equal(runs, 64);
        const queries = backend.roundTrips - before;
        assert.ok(queries <= 4, `64 hits took ${queries} queries`);
      } finally {
        await dispose();
      }
    },
  });

  Deno.test({
    name:
      `batched reads on ${server.name}: a lone lookup is one point query, and each batched lookup gets its own entry`,
    ignore: !server.available,
    async fn() {
      const { backend, dispose } = await server.open();
      try {
        await backend.ready();
        await backend.set("a", "A");
        await backend.set("b", new Uint8Array([1, 2, 3]));
        let before = backend.roundTrips;
        assert.equal(await backend.get("a"), "A");
        assert.equal(backend.roundTrips - before, 1);
        before = backend.roundTrips;
        const [a, missing, b, again] = await Promise.all([
          backend.get("a"),
          backend.get("nope"),
          backend.get("b"),
          backend.get("a"),
        ]);
        assert.equal(backend.roundTrips - before, 1);
        assert.deepEqual([a, missing, b, again], [
          "A",
          undefined,
          new Uint8Array([1, 2, 3]),
          "A",
        ]);
      } finally {
        await dispose();
      }
    },
  });

  Deno.test({
    name:
      `batched writes on ${server.name}: 32 concurrent sets share one upsert, and the last write of a key wins`,
    ignore: !server.available,
    async fn() {
      const { backend, dispose } = await server.open();
      try {
        await backend.ready();
        const before = backend.roundTrips;
        await Promise.all([
          ...Array.from(
            { length: 32 },
            (_, i) => backend.set(`k${i}`, { i }, { expire: 60, tags: ["t"] }),
          ),
          backend.set("k0", "last"),
        ]);
        assert.ok(backend.roundTrips - before <= 2);
        assert.equal(await backend.get("k0"), "last");
        assert.deepEqual(await backend.get("k31"), { i: 31 });
        assert.equal(await backend.invalidateTags(["t"]), 31);
      } finally {
        await dispose();
      }
    },
  });
}

/** A driver over PGlite whose upserts wait for `gate` while it is set. */
async function gatedDriver(): Promise<{
  driver: SqlDriver;
  hold(): void;
  release(): void;
  held(): number;
}> {
  const inner = toSqlDriver(await pglite());
  let gate: Promise<void> | undefined;
  let open = () => {};
  let waiting = 0;
  return {
    driver: {
      async query(text, params) {
        if (gate && text.startsWith("INSERT")) {
          waiting++;
          await gate;
          waiting--;
        }
        return await inner.query(text, params);
      },
      close: () => Promise.resolve(),
    },
    hold() {
      gate = new Promise((resolve) => open = resolve);
    },
    release() {
      gate = undefined;
      open();
    },
    held: () => waiting,
  };
}

/** Runs `fn` with a backend on a fresh PGlite table behind a gated driver. */
async function withGatedBackend(
  prefix: string,
  options: Partial<ConstructorParameters<typeof PostgresBackend>[0]>,
  fn: (
    backend: PostgresBackend,
    gated: Awaited<ReturnType<typeof gatedDriver>>,
    table: string,
  ) => Promise<void>,
): Promise<void> {
  const gated = await gatedDriver();
  const table = uniqueTable(prefix);
  const backend = new PostgresBackend({
    ...options,
    client: gated.driver,
    table,
    sweepInterval: 0,
  });
  try {
    await backend.ready();
    await fn(backend, gated, table);
  } finally {
    gated.release();
    await backend.close();
    await (await pglite()).query(`DROP TABLE IF EXISTS "${table}"`);
  }
}

Deno.test("writes off the critical path: a MISS is answered before its upsert completes", async () => {
  await withGatedBackend("offpath", {}, async (backend, gated, table) => {
    const app = new Hono();
    app.get("/", cached({ backend }), (c) => c.text("body"));
    gated.hold();
    const res = await app.request("/");
    assert.equal(res.headers.get("x-cache"), "MISS");
    assert.equal(await res.text(), "body");
    const { rows } = await (await pglite()).query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${table}"`,
    );
    assert.equal(rows[0].n, 0, "the upsert has not completed");
    while (gated.held() === 0) await new Promise((r) => setTimeout(r, 1));
    gated.release();
    // A read of this process waits for its own pending write.
    const hit = await app.request("/");
    assert.equal(hit.headers.get("x-cache"), "HIT");
  });
});

Deno.test("wait: true awaits the upsert before answering", async () => {
  await withGatedBackend("wait", {}, async (backend, gated) => {
    const app = new Hono();
    app.get("/", cached({ backend, wait: true }), (c) => c.text("body"));
    gated.hold();
    let answered = false;
    const pending = Promise.resolve(app.request("/")).then((res) => {
      answered = true;
      return res;
    });
    while (gated.held() === 0) await new Promise((r) => setTimeout(r, 1));
    assert.equal(answered, false, "no answer while the upsert waits");
    gated.release();
    const res = await pending;
    assert.equal(res.headers.get("x-cache"), "MISS");
  });
});

Deno.test("bounded write queue: when it is full, writes are dropped and counted, and requests still succeed", async () => {
  const errors: unknown[] = [];
  const options = { maxQueuedWrites: 2, maxBatchSize: 1 };
  await withGatedBackend("queue", options, async (backend, gated) => {
    gated.hold();
    const first = backend.set("in-flight", 1); // taken by the batcher
    while (gated.held() === 0) await new Promise((r) => setTimeout(r, 1));
    const queued = [backend.set("q1", 1), backend.set("q2", 2)];
    await assert.rejects(backend.set("dropped", 3), CacheQueueFullError);
    const app = new Hono();
    app.get(
      "/",
      cached({ backend, onError: (error) => errors.push(error) }),
      (c) => c.text("served"),
    );
    const res = await app.request("/");
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "served");
    gated.release();
    await Promise.all([first, ...queued]);
    const stats = await backend.stats();
    assert.equal(stats.droppedWrites, 2);
    assert.ok(errors.some((error) => error instanceof CacheQueueFullError));
    assert.equal(await backend.get("dropped"), undefined);
    assert.equal(await backend.get("q2"), 2);
  });
});

Deno.test("local tier: repeated hits are served without a query", async () => {
  const table = uniqueTable("local");
  const backend = new PostgresBackend({
    client: await pglite(),
    table,
    sweepInterval: 0,
    localCache: { maxEntries: 10, maxAge: 60 },
  });
  try {
    await backend.ready();
    await backend.set("k", { v: 1 }, { expire: 60 });
    assert.deepEqual(await backend.get("k"), { v: 1 }); // fills the tier
    const before = backend.roundTrips;
    for (let i = 0; i < 10; i++) {
      assert.deepEqual(await backend.get("k"), { v: 1 });
    }
    assert.equal(backend.roundTrips, before);
  } finally {
    await backend.close();
    await (await pglite()).query(`DROP TABLE IF EXISTS "${table}"`);
  }
});

Deno.test({
  name:
    "local tier across processes: after an invalidation through A, B stops serving the old body within 200 ms",
  ignore: !DATABASE_URL,
  async fn() {
    const table = uniqueTable("coherent");
    const a = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      namespace: "coherent",
      sweepInterval: 0,
      localCache: {},
    });
    await a.ready();
    const b = await spawnFixture("local_tier_server.ts", {
      DATABASE_URL: DATABASE_URL!,
      TABLE: table,
    });
    const port = b.port;
    try {
      const get = async (path: string) => {
        const res = await fetch(`http://127.0.0.1:${port}${path}`);
        return { cache: res.headers.get("x-cache"), body: await res.text() };
      };
      await a.set("version", 1);
      assert.deepEqual(await get("/version"), { cache: "MISS", body: "1" });
      assert.deepEqual(await get("/version"), { cache: "HIT", body: "1" });
      const stats = await (await fetch(`http://127.0.0.1:${port}/trips`))
        .json();
      await get("/version");
      const after = await (await fetch(`http://127.0.0.1:${port}/trips`))
        .json();
      assert.equal(after.trips, stats.trips, "B serves from its local tier");

      await a.set("version", 2); // an overwrite through A
      const changed = performance.now();
      let seen = await get("/version");
      while (seen.body !== "2" && performance.now() - changed < 1000) {
        seen = await get("/version");
      }
      const elapsed = performance.now() - changed;
      assert.equal(seen.body, "2");
      assert.ok(elapsed < 200, `B saw the overwrite after ${elapsed} ms`);

      await a.clear(); // a clear through A
      const cleared = performance.now();
      seen = await get("/version");
      while (seen.body !== "missing" && performance.now() - cleared < 1000) {
        seen = await get("/version");
      }
      assert.equal(seen.body, "missing");
      assert.ok(performance.now() - cleared < 200);
    } finally {
      await b.stop();
      await a.close();
      await dropTable(table);
    }
  },
});

Deno.test({
  name:
    "local tier: after the listening connection reconnects, local copies that could have missed a notification are discarded",
  ignore: !DATABASE_URL,
  async fn() {
    const proxy = startProxy();
    const table = uniqueTable("reconnect");
    const backend = new PostgresBackend({
      dsn: proxy.dsn(DATABASE_URL!),
      table,
      sweepInterval: 0,
      queryTimeout: 500,
      breakerThreshold: 1000,
      localCache: {},
      onError: quiet,
    });
    try {
      await backend.ready();
      await backend.set("k", "before");
      // Wait until the tier is listening and holds the entry.
      const deadline = Date.now() + 3000;
      let trips = 0;
      while (Date.now() < deadline) {
        await backend.get("k");
        trips = backend.roundTrips;
        await backend.get("k");
        if (backend.roundTrips === trips) break;
      }
      assert.equal(backend.roundTrips, trips, "served locally before the cut");
      proxy.cut();
      await proxy.restore();
      // The change made while the listener was down is not announced to it.
      await dropNotifyingWrite(table, "k", "after");
      let value: unknown = "before";
      while (value !== "after" && Date.now() < deadline + 5000) {
        value = await backend.get("k").catch(() => "before");
        if (value !== "after") await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(value, "after");
    } finally {
      await backend.close();
      await proxy.close();
      await dropTable(table);
    }
  },
});

/** Overwrites a row directly, without any announcement. */
async function dropNotifyingWrite(
  table: string,
  key: string,
  value: string,
): Promise<void> {
  const writer = new PostgresBackend({
    dsn: DATABASE_URL!,
    table,
    sweepInterval: 0,
  });
  await writer.set(key, value);
  await writer.close();
}

Deno.test({
  name:
    "round trips of a miss: one before the handler, with crossProcessLock too: the read of a cold key tries its lock, and the re-read after the lock is pipelined behind it",
  ignore: !DATABASE_URL,
  async fn() {
    for (const crossProcessLock of [false, true]) {
      const table = uniqueTable("trips");
      const backend = new PostgresBackend({
        dsn: DATABASE_URL!,
        table,
        sweepInterval: 0,
      });
      try {
        await backend.ready();
        let before = 0;
        let atHandler = -1;
        const app = new Hono();
        app.get(
          "/",
          cached({ backend, crossProcessLock, wait: true }),
          (c) => {
            atHandler = backend.roundTrips - before;
            return c.text("computed");
          },
        );
        before = backend.roundTrips;
        const res = await app.request("/");
        assert.equal(res.headers.get("x-cache"), "MISS");
        // roundTrips counts statements: with crossProcessLock, the read that
        // tries the lock and the re-read after it are two statements sent
        // together on the lock session, and no pool read goes before them.
        assert.equal(atHandler, crossProcessLock ? 2 : 1);
      } finally {
        await backend.close();
        await dropTable(table);
      }
    }
  },
});

Deno.test({
  name:
    "batched locks: 32 concurrent lock attempts share one round trip of two statements, and their releases one statement",
  ignore: !DATABASE_URL,
  async fn() {
    const table = uniqueTable("lockbatch");
    const options = { dsn: DATABASE_URL!, table, sweepInterval: 0 };
    const a = new PostgresBackend(options);
    const b = new PostgresBackend(options);
    try {
      await a.ready();
      await b.ready();
      await a.set("k3", "stored", { expire: 60 });
      // The lock session is opened by a first attempt, outside the count.
      await (await a.lock("warm")).release();
      const keys = Array.from({ length: 32 }, (_, i) => `k${i}`);
      let before = a.roundTrips;
      const locks = await Promise.all(keys.map((key) => a.lock(key)));
      assert.equal(a.roundTrips - before, 2, "one lockMany and one re-read");
      assert.ok(locks.every((lock) => lock.acquired));
      // The re-read after the lock sees what is stored, for its key only.
      assert.deepEqual(
        locks.map((lock) => lock.entry !== undefined),
        keys.map((key) => key === "k3"),
      );
      // Held across processes: another backend's session is refused.
      assert.equal((await b.lock("k7")).acquired, false);
      before = a.roundTrips;
      await Promise.all(locks.map((lock) => lock.release()));
      assert.equal(a.roundTrips - before, 1, "one unlockMany");
      const retaken = await b.lock("k7");
      assert.equal(retaken.acquired, true);
      await retaken.release();
    } finally {
      await a.close();
      await b.close();
      await dropTable(table);
    }
  },
});

Deno.test({
  name:
    "batched locks: a key locked twice in one batch is held until both locks are released",
  ignore: !DATABASE_URL,
  async fn() {
    const table = uniqueTable("lockreentrant");
    const options = { dsn: DATABASE_URL!, table, sweepInterval: 0 };
    const a = new PostgresBackend(options);
    const b = new PostgresBackend(options);
    try {
      await a.ready();
      await b.ready();
      const [first, second] = await Promise.all([a.lock("k"), a.lock("k")]);
      assert.equal(first.acquired && second.acquired, true);
      await first.release();
      assert.equal((await b.lock("k")).acquired, false, "still held once");
      await second.release();
      const taken = await b.lock("k");
      assert.equal(taken.acquired, true);
      await taken.release();
    } finally {
      await a.close();
      await b.close();
      await dropTable(table);
    }
  },
});
