// Issue 4: stampede protection, stale entries, and failing open.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { MemoryBackend } from "../../backends/memory.ts";
import {
  CacheUnavailableError,
  PostgresBackend,
} from "../../backends/postgres.ts";
import { burstLogger } from "../../core/report.ts";
import type { CacheBackend, CacheErrorContext } from "../../backends/types.ts";
import { cached } from "../../middleware/cached.ts";
import { Cache } from "../../middleware/cache.ts";
import {
  backendKinds,
  DATABASE_URL,
  dropTable,
  uniqueTable,
  withServer,
} from "../_helpers.ts";
import { spawnFixture } from "../_process.ts";
import { startProxy } from "../_proxy.ts";

/** A promise with its resolver, for handlers a test holds open. */
function gate<T = void>(): { promise: Promise<T>; open(value: T): void } {
  let open!: (value: T) => void;
  const promise = new Promise<T>((resolve) => open = resolve);
  return { promise, open };
}

const quiet = () => {};

for (const kind of backendKinds) {
  Deno.test({
    name:
      `stampede: ${kind.name}: 50 concurrent misses for one key run the handler once`,
    ignore: !kind.available,
    async fn() {
      const { backend, dispose } = await kind.open();
      try {
        let runs = 0;
        const release = gate();
        const app = new Hono();
        app.get(
          "/hot",
          cached({ backend, expire: 60, onError: quiet }),
          async (c) => {
            runs++;
            await release.promise;
            return c.json({ token: crypto.randomUUID() });
          },
        );
        const responses = Array.from({ length: 50 }, () => app.request("/hot"));
        // Let every request reach the cache before the handler may finish.
        while (runs === 0) await new Promise((r) => setTimeout(r, 1));
        release.open();
        const done = await Promise.all(responses);
        const bodies = await Promise.all(done.map((res) => res.text()));
        assert.equal(runs, 1);
        assert.equal(new Set(bodies).size, 1);
        assert.ok(done.every((res) => res.status === 200));
      } finally {
        await dispose();
      }
    },
  });
}

Deno.test("stampede: a waiter that outwaits lockTimeout runs the handler itself", async () => {
  const backend = new MemoryBackend();
  let runs = 0;
  const secondRan = gate();
  const app = new Hono();
  app.get(
    "/slow",
    cached({ backend, expire: 60, lockTimeout: 20 }),
    async (c) => {
      runs++;
      if (runs === 1) await secondRan.promise; // the leader is stuck
      else secondRan.open();
      return c.text(`run ${runs}`);
    },
  );
  const first = app.request("/slow");
  const second = await app.request("/slow");
  assert.equal(await second.text(), "run 2");
  assert.equal((await first).status, 200);
  assert.equal(runs, 2);
});

Deno.test("stampede: a handler that throws releases its waiters, who run the handler themselves", async () => {
  const backend = new MemoryBackend();
  let runs = 0;
  const fail = gate();
  const app = new Hono();
  app.onError((_error, c) => c.text("boom", 500));
  app.get("/flaky", cached({ backend, expire: 60 }), async (c) => {
    runs++;
    if (runs === 1) {
      await fail.promise;
      throw new Error("first run fails");
    }
    return c.text("ok");
  });
  const leader = app.request("/flaky");
  while (runs === 0) await new Promise((r) => setTimeout(r, 1));
  const waiters = Array.from({ length: 3 }, () => app.request("/flaky"));
  // The waiters are parked on the leader's computation before it fails.
  await new Promise((r) => setTimeout(r, 5));
  fail.open();
  assert.equal((await leader).status, 500);
  for (const res of await Promise.all(waiters)) {
    assert.equal(res.status, 200);
    assert.equal(await res.text(), "ok");
  }
  assert.ok(runs >= 2, `the waiters ran the handler (runs: ${runs})`);
});

Deno.test({
  name:
    "stampede across processes: 200 requests over 4 instances run the handler exactly once",
  ignore: !DATABASE_URL,
  async fn() {
    const table = uniqueTable("stampede");
    // The table exists before the instances start, as in production.
    const setup = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      sweepInterval: 0,
    });
    await setup.ready();
    await setup.close();
    const servers = await Promise.all(
      Array.from({ length: 4 }, () =>
        spawnFixture("stampede_server.ts", {
          DATABASE_URL: DATABASE_URL!,
          TABLE: table,
          DELAY_MS: "300",
        })),
    );
    const ports = servers.map((server) => server.port);
    try {
      const responses = await Promise.all(
        Array.from(
          { length: 200 },
          (_, i) =>
            fetch(`http://127.0.0.1:${ports[i % 4]}/hot`).then(async (res) => ({
              status: res.status,
              cache: res.headers.get("x-cache"),
              body: await res.text(),
            })),
        ),
      );
      const runs = await Promise.all(
        ports.map(async (port) =>
          (await (await fetch(`http://127.0.0.1:${port}/runs`)).json())
            .runs as number
        ),
      );
      assert.ok(responses.every((res) => res.status === 200));
      const statuses: Record<string, number> = {};
      for (const res of responses) {
        statuses[res.cache!] = (statuses[res.cache!] ?? 0) + 1;
      }
      assert.equal(
        new Set(responses.map((res) => res.body)).size,
        1,
        `X-Cache counts: ${JSON.stringify(statuses)}`,
      );
      assert.equal(
        runs.reduce((a, b) => a + b, 0),
        1,
        `runs per instance: ${runs}`,
      );
    } finally {
      await Promise.all(servers.map((server) => server.stop()));
      await dropTable(table);
    }
  },
});

Deno.test("staleWhileRevalidate: an expired entry within the window is served at once as STALE and refreshed once in the background", async () => {
  let now = 0;
  const backend = new MemoryBackend({ now: () => now });
  let runs = 0;
  const app = new Hono();
  const local = new Cache();
  local.initApp(app, backend);
  app.get(
    "/news",
    local.cached({ expire: 10, staleWhileRevalidate: 30 }),
    (c) => {
      runs++;
      return c.text(`edition ${runs}`);
    },
  );
  assert.equal(await (await app.request("/news")).text(), "edition 1");
  now = 15_000; // 5 s past expiry, inside the 30 s window
  const staleResponses = await Promise.all(
    Array.from({ length: 5 }, () => app.request("/news")),
  );
  for (const res of staleResponses) {
    assert.equal(res.headers.get("x-cache"), "STALE");
    assert.equal(await res.text(), "edition 1");
  }
  // The refresh runs in the background; wait for its entry to land.
  const deadline = Date.now() + 2000;
  let res = await app.request("/news");
  while (res.headers.get("x-cache") !== "HIT" && Date.now() < deadline) {
    await res.body?.cancel();
    await new Promise((r) => setTimeout(r, 5));
    res = await app.request("/news");
  }
  assert.equal(res.headers.get("x-cache"), "HIT");
  assert.equal(await res.text(), "edition 2");
  assert.equal(runs, 2, "one refresh for all the stale requests");
});

Deno.test("staleWhileRevalidate: past the window the handler runs in the request", async () => {
  let now = 0;
  const backend = new MemoryBackend({ now: () => now });
  let runs = 0;
  const app = new Hono();
  app.get(
    "/news",
    cached({ backend, app, expire: 10, staleWhileRevalidate: 5 }),
    (c) => c.text(`edition ${++runs}`),
  );
  await app.request("/news");
  now = 16_000;
  const res = await app.request("/news");
  assert.equal(res.headers.get("x-cache"), "MISS");
  assert.equal(await res.text(), "edition 2");
});

Deno.test("staleWhileRevalidate: without an app the factory throws a TypeError", () => {
  assert.throws(
    () => cached({ backend: new MemoryBackend(), staleWhileRevalidate: 10 }),
    (error: Error) =>
      error instanceof TypeError &&
      /staleWhileRevalidate needs the app/.test(error.message),
  );
});

Deno.test({
  name:
    "staleWhileRevalidate across instances: two instances serving the same stale entry refresh it once",
  ignore: !DATABASE_URL,
  async fn() {
    const table = uniqueTable("swr");
    // The refresh waits until both stale responses are in, so neither can
    // be answered from the refreshed entry.
    const refreshGate = gate();
    const backends = [0, 1].map(() =>
      new PostgresBackend({ dsn: DATABASE_URL!, table, sweepInterval: 0 })
    );
    try {
      let runs = 0;
      const apps = backends.map((backend) => {
        const app = new Hono();
        app.get(
          "/feed",
          cached({
            backend,
            app,
            expire: 60,
            staleWhileRevalidate: 600,
            wait: true,
          }),
          async (c) => {
            const run = ++runs;
            if (run > 1) await refreshGate.promise;
            return c.text(`version ${run}`);
          },
        );
        return app;
      });
      assert.equal(await (await apps[0].request("/feed")).text(), "version 1");
      // Age the row by the database clock: 10 s past its 60 s lifetime.
      await withServer((sql) =>
        sql.unsafe(
          `UPDATE "${table}" SET created_at = now() - interval '70 seconds', expires_at = now() - interval '10 seconds'`,
        )
      );
      const stale = await Promise.all(apps.map((app) => app.request("/feed")));
      for (const res of stale) {
        assert.equal(res.headers.get("x-cache"), "STALE");
        assert.equal(await res.text(), "version 1");
      }
      refreshGate.open();
      const deadline = Date.now() + 3000;
      let body = "";
      while (Date.now() < deadline) {
        const res = await apps[1].request("/feed");
        body = await res.text();
        if (res.headers.get("x-cache") === "HIT") break;
        await new Promise((r) => setTimeout(r, 10));
      }
      assert.equal(body, "version 2");
      assert.equal(runs, 2, "one refresh across both instances");
    } finally {
      refreshGate.open();
      await Promise.all(backends.map((backend) => backend.close()));
      await dropTable(table);
    }
  },
});

Deno.test("staleIfError: a throwing or 5xx handler after expiry serves the stale entry and reports the error", async () => {
  let now = 0;
  const backend = new MemoryBackend({ now: () => now });
  const errors: [unknown, CacheErrorContext][] = [];
  let mode: "ok" | "throw" | "503" = "ok";
  const app = new Hono();
  app.onError((_error, c) => c.text("handler failed", 500));
  app.get(
    "/quote",
    cached({
      backend,
      expire: 10,
      staleIfError: 60,
      onError: (error, context) => errors.push([error, context]),
    }),
    (c) => {
      if (mode === "throw") throw new Error("upstream down");
      if (mode === "503") return c.text("busy", 503);
      return c.text("good quote");
    },
  );
  await app.request("/quote");
  now = 20_000;
  mode = "throw";
  let res = await app.request("/quote");
  assert.equal(res.status, 200);
  assert.equal(res.headers.get("x-cache"), "STALE");
  assert.equal(await res.text(), "good quote");
  assert.equal(errors.length, 1);
  assert.equal(errors[0][1].operation, "handler");
  assert.match(String(errors[0][0]), /upstream down/);

  mode = "503";
  res = await app.request("/quote");
  assert.equal(res.headers.get("x-cache"), "STALE");
  assert.equal(await res.text(), "good quote");

  now = 80_000; // past the 60 s window
  res = await app.request("/quote");
  assert.equal(res.status, 503);
  assert.equal(res.headers.get("x-cache"), "BYPASS");
});

/**
 * Asserts that a route cached on a backend at `dsn` answers the handler's 200
 * with BYPASS, `times` times, each within `withinMs`.
 */
async function assertBypasses(
  dsn: string,
  timeouts: { queryTimeout: number; connectTimeout: number },
  withinMs: number,
  times = 1,
): Promise<void> {
  const backend = new PostgresBackend({
    dsn,
    ...timeouts,
    sweepInterval: 0,
    onError: quiet,
  });
  try {
    const app = new Hono();
    app.get(
      "/",
      cached({ backend, onError: quiet }),
      (c) => c.text("answered"),
    );
    for (let i = 0; i < times; i++) {
      const started = performance.now();
      const res = await app.request("/");
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-cache"), "BYPASS");
      assert.equal(await res.text(), "answered");
      assert.ok(performance.now() - started < withinMs);
    }
  } finally {
    await backend.close();
  }
}

Deno.test("fail open: a backend pointed at a closed port serves the handler's 200 with BYPASS within the timeout", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close(); // nothing listens there now
  await assertBypasses(
    `postgres://postgres@127.0.0.1:${port}/test`,
    { queryTimeout: 200, connectTimeout: 500 },
    1500,
    3,
  );
});

Deno.test("fail open: a hung database (accepts, never answers) times out and the request bypasses", async () => {
  // A listener that accepts connections and never speaks: a hung server.
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  const held: Deno.Conn[] = [];
  const accepting = (async () => {
    for await (const conn of listener) held.push(conn);
  })();
  try {
    await assertBypasses(
      `postgres://postgres@127.0.0.1:${port}/test`,
      { queryTimeout: 100, connectTimeout: 200 },
      1000,
    );
  } finally {
    listener.close();
    for (const conn of held) conn.close();
    await accepting.catch(() => {});
  }
});

Deno.test("circuit breaker: after repeated failures queries are skipped for the cool-down, then one probe goes through", async () => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  let now = 0;
  const backend = new PostgresBackend({
    dsn: `postgres://postgres@127.0.0.1:${port}/test`,
    breakerThreshold: 2,
    breakerCooldown: 1000,
    now: () => now,
    sweepInterval: 0,
    onError: quiet,
  });
  try {
    for (let i = 0; i < 2; i++) {
      await assert.rejects(backend.get("k"));
    }
    assert.equal(backend.circuitOpen, true);
    const trips = backend.roundTrips;
    await assert.rejects(backend.get("k"), CacheUnavailableError);
    assert.equal(backend.roundTrips, trips, "no query while open");
    now = 1001;
    assert.equal(backend.circuitOpen, false);
    await assert.rejects(
      backend.get("k"),
      (error) => !(error instanceof CacheUnavailableError),
    );
    assert.equal(backend.circuitOpen, true, "the failed probe reopens it");
  } finally {
    await backend.close();
  }
});

Deno.test({
  name:
    "circuit breaker: a successful probe closes the circuit and recovers without a restart",
  ignore: !DATABASE_URL,
  async fn() {
    const proxy = startProxy();
    const table = uniqueTable("breaker");
    let now = 0;
    const backend = new PostgresBackend({
      dsn: proxy.dsn(DATABASE_URL!),
      table,
      breakerThreshold: 2,
      breakerCooldown: 1000,
      queryTimeout: 500,
      now: () => now,
      sweepInterval: 0,
      onError: quiet,
    });
    try {
      await backend.set("k", "v");
      proxy.cut();
      await assert.rejects(backend.get("k"));
      await assert.rejects(backend.get("k"));
      assert.equal(backend.circuitOpen, true);
      await proxy.restore();
      await assert.rejects(backend.get("k"), CacheUnavailableError);
      now = 1001;
      assert.equal(await backend.get("k"), "v");
      assert.equal(backend.circuitOpen, false);
    } finally {
      await backend.close();
      await proxy.close();
      await dropTable(table);
    }
  },
});

Deno.test({
  name:
    "fail open under load: the database goes away and comes back mid-load; every request gets its own correct body and hits resume",
  ignore: !DATABASE_URL,
  async fn() {
    const proxy = startProxy();
    const table = uniqueTable("faults");
    const errors: CacheErrorContext[] = [];
    const backend = new PostgresBackend({
      dsn: proxy.dsn(DATABASE_URL!),
      table,
      queryTimeout: 300,
      connectTimeout: 500,
      sweepInterval: 0,
      onError: (_e, context) => errors.push(context),
    });
    await backend.ready();
    const app = new Hono();
    app.get(
      "/item",
      cached({
        backend,
        expire: 60,
        onError: (_e, context) => errors.push(context),
      }),
      (c) => c.text(`item-${c.req.query("id")}`),
    );
    const server = Deno.serve(
      { hostname: "127.0.0.1", port: 0, onListen: () => {} },
      app.fetch,
    );
    const base = `http://127.0.0.1:${server.addr.port}`;
    let wrong = 0;
    let failures = 0;
    const statuses = new Map<string, number>();
    let phase: "before" | "down" | "after" = "before";
    let restoredAt = 0;
    let firstHitAfter = 0;
    let stop = false;
    const workers = Array.from({ length: 8 }, async (_, w) => {
      let i = 0;
      while (!stop) {
        const id = (w * 7 + i++) % 16;
        try {
          const res = await fetch(`${base}/item?id=${id}`);
          const body = await res.text();
          if (res.status !== 200) failures++;
          if (body !== `item-${id}`) wrong++;
          const status = res.headers.get("x-cache") ?? "none";
          statuses.set(
            `${phase}:${status}`,
            (statuses.get(`${phase}:${status}`) ?? 0) + 1,
          );
          if (phase === "after" && status === "HIT" && !firstHitAfter) {
            firstHitAfter = performance.now();
          }
        } catch {
          failures++;
        }
      }
    });
    try {
      const pause = (ms: number) => new Promise((r) => setTimeout(r, ms));
      await pause(700); // load with the database up
      phase = "down";
      proxy.cut();
      await pause(1200); // load with the database gone
      await proxy.restore();
      phase = "after";
      restoredAt = performance.now();
      const deadline = restoredAt + 4000;
      while (!firstHitAfter && performance.now() < deadline) await pause(50);
      await pause(300);
    } finally {
      stop = true;
      await Promise.all(workers);
      await server.shutdown();
      await backend.clearTable().catch(() => {});
      await backend.close();
      await proxy.close();
      await dropTable(table);
    }
    assert.equal(failures, 0, `statuses: ${JSON.stringify([...statuses])}`);
    assert.equal(wrong, 0);
    assert.ok((statuses.get("before:HIT") ?? 0) > 0, "hits before the fault");
    assert.ok(
      (statuses.get("down:BYPASS") ?? 0) > 0,
      "bypasses during the fault",
    );
    assert.ok(firstHitAfter > 0, "hits resumed");
    assert.ok(
      firstHitAfter - restoredAt < 3000,
      `hits resumed ${
        Math.round(firstHitAfter - restoredAt)
      } ms after recovery`,
    );
    assert.ok(errors.length > 0, "the faults were reported");
  },
});

Deno.test("onError default: logs once per burst, not once per request", () => {
  const lines: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => lines.push(args);
  try {
    let now = 0;
    const log = burstLogger(() => now);
    const context = { operation: "readEntry", namespace: "ns" };
    for (let i = 0; i < 100; i++) log(new Error("down"), context);
    assert.equal(lines.length, 1);
    now = 10_001;
    log(new Error("down"), context);
    assert.equal(lines.length, 2);
    assert.match(String(lines[1][0]), /99 more/);
  } finally {
    console.error = original;
  }
});

Deno.test("fail open: an onError hook that throws does not fail the request", async () => {
  const failing: CacheBackend = Object.assign(new MemoryBackend(), {
    readEntry: () => Promise.reject(new Error("read failed")),
  });
  const app = new Hono();
  app.get(
    "/",
    cached({
      backend: failing,
      onError: () => {
        throw new Error("hook failed");
      },
    }),
    (c) => c.text("fine"),
  );
  const res = await app.request("/");
  assert.equal(res.status, 200);
  assert.equal(await res.text(), "fine");
});

Deno.test("fail open: a host that does not resolve serves the handler's 200 with BYPASS within the timeout", async () => {
  await assertBypasses(
    "postgres://postgres@cachekit-no-such-host.invalid:5432/test",
    { queryTimeout: 300, connectTimeout: 500 },
    1500,
  );
});

Deno.test("fail open: a tags function that throws costs the entry, not the response", async () => {
  const backend = new MemoryBackend();
  const errors: CacheErrorContext[] = [];
  let runs = 0;
  const app = new Hono();
  app.get(
    "/",
    cached({
      backend,
      tags: () => {
        throw new Error("no tags today");
      },
      onError: (_error, context) => errors.push(context),
    }),
    (c) => c.text(`run ${++runs}`),
  );
  const first = await app.request("/");
  assert.equal(first.status, 200);
  assert.equal(first.headers.get("x-cache"), "BYPASS");
  assert.equal(await first.text(), "run 1");
  assert.equal(errors[0].operation, "tags");
  assert.equal(
    await (await app.request("/")).text(),
    "run 2",
    "nothing was stored",
  );
});
