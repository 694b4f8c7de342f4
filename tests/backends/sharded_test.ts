// ShardedBackend (issue 15, part 2): placement by rendezvous hashing, the
// CacheBackend contract routed to the key's shard on every backend kind,
// fan-out of purges and statistics, failure isolation, and the checks of its
// options. The two-server and two-process tests are in
// tests/system/sharded_test.ts.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { MemoryBackend } from "../../backends/memory.ts";
import { PostgresBackend } from "../../backends/postgres.ts";
import {
  CacheShardError,
  type NamedShard,
  ShardedBackend,
} from "../../backends/sharded.ts";
import type {
  CacheBackend,
  CacheErrorContext,
  KeyLock,
} from "../../backends/types.ts";
import { Cache } from "../../middleware/cache.ts";
import { cached } from "../../middleware/cached.ts";
import {
  type BackendKind,
  backendKinds,
  DATABASE_URL,
  dropTable,
  postgresKinds,
  uniqueNamespace,
  uniqueTable,
} from "../_helpers.ts";

const quiet = () => {};

/** `n` memory shards named `s0`, `s1`, ... */
function memoryShards(n: number, namespace?: string): NamedShard[] {
  return Array.from({ length: n }, (_, i) => ({
    name: `s${i}`,
    backend: new MemoryBackend({ namespace }),
  }));
}

const KEYS = Array.from({ length: 10_000 }, (_, i) => `/items/${i}?page=1`);

/** Two shards of `kind`, each on a store of its own, behind a ShardedBackend. */
async function openSharded(kind: BackendKind, namespace = uniqueNamespace()) {
  const opened = [
    await kind.open({ namespace }),
    await kind.open({ namespace }),
  ];
  const backend = new ShardedBackend({
    shards: opened.map((shard, i) => ({
      name: `shard-${i}`,
      backend: shard.backend,
    })),
    closeShards: false,
    onError: quiet,
  });
  return {
    backend,
    shards: opened.map((shard) => shard.backend),
    async dispose() {
      await backend.close();
      for (const shard of opened) await shard.dispose();
    },
  };
}

// The contract, routed.

for (const kind of backendKinds) {
  Deno.test({
    name:
      `sharded: ${kind.name}: values and entries live on the key's shard only, and read back through the sharded backend`,
    ignore: !kind.available,
    async fn() {
      const { backend, shards, dispose } = await openSharded(kind);
      try {
        const keys = Array.from({ length: 20 }, (_, i) => `k${i}`);
        for (const key of keys) await backend.set(key, { key });
        const owners = new Set<string>();
        for (const key of keys) {
          const home = backend.shardOf(key);
          owners.add(home.name);
          const other = shards.find((shard) => shard !== home.backend)!;
          assert.deepEqual(await home.backend.get(key), { key });
          assert.equal(await other.get(key), undefined, key);
          assert.deepEqual(await backend.get(key), { key });
          assert.equal(await backend.has(key), true);
        }
        assert.equal(owners.size, 2);
        assert.equal(await backend.delete("k3"), true);
        assert.equal(await backend.has("k3"), false);
        assert.equal(await backend.delete("k3"), false);
        const body = new TextEncoder().encode("<p>hi</p>");
        await backend.writeEntry("page", { kind: 2, body, etag: '"v1"' });
        const entry = await backend.readEntry("page", { etags: ['"v1"'] });
        assert.equal(entry?.notModified, true);
        assert.equal(
          (await backend.shardOf("page").backend.readEntry("page"))?.etag,
          '"v1"',
        );
      } finally {
        await dispose();
      }
    },
  });

  Deno.test({
    name:
      `sharded: ${kind.name}: a write computed under a lookup's epoch does not land after a purge on the key's shard`,
    ignore: !kind.available,
    async fn() {
      const { backend, dispose } = await openSharded(kind);
      try {
        const body = new TextEncoder().encode("old");
        const found = await backend.lookup("report");
        assert.equal(found.entry, undefined);
        assert.equal(typeof found.epoch, "number");
        await backend.delete("report");
        await backend.writeEntry("report", { kind: 1, body }, {
          epoch: found.epoch,
        });
        assert.equal(await backend.readEntry("report"), undefined);
        const now = await backend.lookup("report");
        await backend.writeEntry("report", { kind: 1, body }, {
          epoch: now.epoch,
        });
        assert.equal((await backend.readEntry("report"))?.kind, 1);
      } finally {
        await dispose();
      }
    },
  });

  Deno.test({
    name:
      `sharded: ${kind.name}: invalidateTags and clear reach every shard, and the counts add up`,
    ignore: !kind.available,
    async fn() {
      const { backend, shards, dispose } = await openSharded(kind);
      try {
        for (let i = 0; i < 20; i++) {
          await backend.set(`t${i}`, i, { tags: [i % 2 ? "odd" : "even"] });
        }
        const perShard = await Promise.all(shards.map((s) => s.stats!()));
        assert.ok(perShard.every((stats) => (stats.entries ?? 0) > 0));
        assert.equal(await backend.invalidateTags(["odd"]), 10);
        for (let i = 0; i < 20; i++) {
          assert.equal(await backend.has(`t${i}`), i % 2 === 0, `t${i}`);
        }
        const stats = await backend.stats();
        assert.equal(stats.entries, 10);
        assert.deepEqual(stats.shards.map((shard) => shard.name), [
          "shard-0",
          "shard-1",
        ]);
        assert.equal(
          stats.shards.reduce(
            (sum, shard) => sum + (shard.stats?.entries ?? NaN),
            0,
          ),
          10,
        );
        await backend.clear();
        assert.equal((await backend.stats()).entries, 0);
      } finally {
        await dispose();
      }
    },
  });
}

Deno.test("sharded: stats sum every counter of the shards, and list each shard's own", async () => {
  const backend = new ShardedBackend({ shards: memoryShards(2) });
  for (const key of KEYS.slice(0, 10)) await backend.set(key, 1);
  for (const key of KEYS.slice(0, 20)) await backend.get(key);
  const stats = await backend.stats();
  assert.equal(stats.entries, 10);
  assert.equal(stats.hits, 10);
  assert.equal(stats.misses, 10);
  const [a, b] = stats.shards;
  assert.equal(a.stats!.hits + b.stats!.hits, 10);
  assert.equal((a.stats?.bytes ?? NaN) + (b.stats?.bytes ?? NaN), stats.bytes);
  assert.ok((a.stats?.entries ?? 0) > 0 && (b.stats?.entries ?? 0) > 0);
});

// Fan-out failures.

/** A memory shard whose purges and stats fail, as a store that is down. */
class DownBackend extends MemoryBackend {
  override clear(): Promise<void> {
    return Promise.reject(new Error("connection refused"));
  }
  override invalidateTags(): Promise<number> {
    return Promise.reject(new Error("connection refused"));
  }
  override stats(): Promise<never> {
    return Promise.reject(new Error("connection refused"));
  }
  override readEntry(): Promise<never> {
    return Promise.reject(new Error("connection refused"));
  }
}

/** A memory shard whose purges finish only when `open()` is called. */
class SlowBackend extends MemoryBackend {
  purged = false;
  #gate = Promise.withResolvers<void>();
  open(): void {
    this.#gate.resolve();
  }
  override async invalidateTags(tags: readonly string[]): Promise<number> {
    await this.#gate.promise;
    const n = await super.invalidateTags(tags);
    this.purged = true;
    return n;
  }
}

Deno.test("sharded: a failed shard's purge is reported, the others still purge, and the call rejects only once all have answered", async () => {
  const slow = new SlowBackend();
  const reports: [unknown, CacheErrorContext][] = [];
  const backend = new ShardedBackend({
    shards: [
      { name: "healthy", backend: slow },
      { name: "down", backend: new DownBackend() },
    ],
    onError: (error, context) => reports.push([error, context]),
  });
  await slow.set("x", 1, { tags: ["t"] });
  let settled = false;
  const purge = backend.invalidateTags(["t"]).finally(() => settled = true);
  await new Promise((resolve) => setTimeout(resolve, 10));
  assert.equal(settled, false, "it waits for the healthy shard");
  slow.open();
  await assert.rejects(purge, (error) => {
    assert.ok(error instanceof AggregateError);
    assert.equal(
      error.message,
      'Cannot invalidateTags: 1 of 2 shards failed: "down"',
    );
    assert.equal(error.errors.length, 1);
    assert.ok(error.errors[0] instanceof CacheShardError);
    assert.equal(error.errors[0].shard, "down");
    return true;
  });
  assert.equal(slow.purged, true);
  assert.equal(await slow.get("x"), undefined);
  assert.equal(reports.length, 1);
  const [reported, context] = reports[0];
  assert.ok(reported instanceof CacheShardError);
  assert.equal(
    reported.message,
    'Cannot invalidateTags on shard "down": connection refused',
  );
  assert.deepEqual(context, {
    operation: "invalidateTags",
    namespace: "hono_cache",
  });
});

Deno.test("sharded: clear rejects naming the failed shard, after clearing the others", async () => {
  const healthy = new MemoryBackend();
  const reports: unknown[] = [];
  const backend = new ShardedBackend({
    shards: [{ name: "a", backend: healthy }, {
      name: "b",
      backend: new DownBackend(),
    }],
    onError: (error) => reports.push(error),
  });
  await healthy.set("x", 1);
  await assert.rejects(backend.clear(), {
    name: "AggregateError",
    message: 'Cannot clear: 1 of 2 shards failed: "b"',
  });
  assert.equal(healthy.size, 0);
  assert.equal(reports.length, 1);
});

Deno.test("sharded: a shard whose stats fail is reported and left out of the sums", async () => {
  const reports: CacheErrorContext[] = [];
  const healthy = new MemoryBackend();
  const backend = new ShardedBackend({
    shards: [{ name: "a", backend: healthy }, {
      name: "b",
      backend: new DownBackend(),
    }],
    onError: (_error, context) => reports.push(context),
  });
  await healthy.set("x", 1);
  await backend.get("x");
  const stats = await backend.stats();
  assert.equal(stats.hits, 1);
  assert.equal(stats.entries, null);
  assert.equal(stats.bytes, null);
  assert.equal(
    stats.unavailable,
    'shard "b": its statistics are unavailable',
  );
  assert.equal(stats.shards[0].stats?.entries, 1);
  assert.deepEqual(stats.shards[1], { name: "b", stats: undefined });
  assert.deepEqual(reports, [{ operation: "stats", namespace: "hono_cache" }]);
});

Deno.test("sharded: a shard without invalidateTags makes invalidateTags reject with a TypeError, and purges nothing", async () => {
  const plain = new MemoryBackend();
  const tagless = {
    namespace: plain.namespace,
    get: plain.get.bind(plain),
    set: plain.set.bind(plain),
    has: plain.has.bind(plain),
    delete: plain.delete.bind(plain),
    clear: plain.clear.bind(plain),
    close: plain.close.bind(plain),
    readEntry: plain.readEntry.bind(plain),
    writeEntry: plain.writeEntry.bind(plain),
  } satisfies CacheBackend;
  const other = new MemoryBackend();
  const backend = new ShardedBackend({
    shards: [{ name: "tagged", backend: other }, {
      name: "plain",
      backend: tagless,
    }],
  });
  await other.set("x", 1, { tags: ["t"] });
  await assert.rejects(backend.invalidateTags(["t"]), {
    name: "TypeError",
    message:
      'Cannot invalidate tags: every shard must have an invalidateTags method: "plain" has none',
  });
  assert.equal(await other.get("x"), 1);
  // Without stats() of its own, the shard is listed without statistics.
  assert.deepEqual((await backend.stats()).shards[1], {
    name: "plain",
    stats: undefined,
  });
});

// Failure isolation, through the middleware.

Deno.test("sharded: with one shard failing, its keys BYPASS through cached() while the other shard's keys still HIT", async () => {
  const down = new DownBackend();
  const healthy = new MemoryBackend();
  const backend = new ShardedBackend({
    shards: [{ name: "up", backend: healthy }, { name: "down", backend: down }],
  });
  const app = new Hono();
  app.get(
    "/items/:id",
    cached({ backend, expire: 60, onError: quiet }),
    (c) => c.json({ id: c.req.param("id") }),
  );
  const paths = Array.from({ length: 12 }, (_, i) => `/items/${i}`);
  for (const path of paths) await app.request(path);
  const statuses: string[] = [];
  for (const path of paths) {
    const res = await app.request(path);
    assert.deepEqual(await res.json(), { id: path.split("/")[2] });
    statuses.push(res.headers.get("x-cache")!);
  }
  // Each path's entry is on "up" (HIT) or "down" (read fails: BYPASS).
  assert.ok(statuses.includes("HIT"), statuses.join());
  assert.ok(statuses.includes("BYPASS"), statuses.join());
  assert.equal(
    statuses.filter((status) => status === "HIT").length,
    healthy.size,
  );
});

Deno.test("sharded: the facade caches through a ShardedBackend unchanged", async () => {
  const cache = new Cache();
  const app = new Hono();
  const shards = memoryShards(2);
  cache.initApp(app, new ShardedBackend({ shards }));
  let runs = 0;
  app.get("/n/:id", cache.cached({ expire: 60 }), (c) => {
    runs++;
    return c.text(c.req.param("id"));
  });
  for (let i = 0; i < 10; i++) await app.request(`/n/${i}`);
  for (let i = 0; i < 10; i++) {
    const res = await app.request(`/n/${i}`);
    assert.equal(res.headers.get("x-cache"), "HIT");
    assert.equal(await res.text(), String(i));
  }
  assert.equal(runs, 10);
  assert.ok(shards.every((shard) => (shard.backend as MemoryBackend).size > 0));
});

// Locks.

Deno.test("sharded: lock is absent when no shard has one, so the middleware takes none", () => {
  const backend = new ShardedBackend({ shards: memoryShards(2) });
  assert.equal(backend.lock, undefined);
});

{
  const kind = postgresKinds.find((k) => k.name.includes("real server"))!;
  Deno.test({
    name:
      `sharded: ${kind.name}: lock goes to the key's shard; on a shard without locks it is acquired at once`,
    ignore: !kind.available,
    async fn() {
      const namespace = uniqueNamespace();
      const pg = await kind.open({ namespace });
      const memory = new MemoryBackend({ namespace });
      const backend = new ShardedBackend({
        shards: [{ name: "pg", backend: pg.backend }, {
          name: "mem",
          backend: memory,
        }],
        closeShards: false,
      });
      try {
        assert.equal(typeof backend.lock, "function");
        const onMemory = KEYS.find((key) =>
          backend.shardOf(key).name === "mem"
        )!;
        const onPg = KEYS.find((key) => backend.shardOf(key).name === "pg")!;
        const free: KeyLock = await backend.lock!(onMemory);
        assert.equal(free.acquired, true);
        assert.equal(free.entry, undefined);
        await free.release();
        await pg.backend.set(onPg, "there");
        const held = await backend.lock!(onPg);
        assert.equal(held.acquired, true);
        // The shard re-read the entry after taking its lock.
        assert.equal(held.entry?.kind, 0);
        await held.release();
      } finally {
        await backend.close();
        await pg.dispose();
      }
    },
  });
}

Deno.test({
  name:
    "sharded: on the real server, a key's lock held through one sharded backend is not acquired through another over the same shards",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const tables = [uniqueTable("shard"), uniqueTable("shard")];
    const open = () =>
      new ShardedBackend({
        shards: tables.map((table) => ({
          name: table,
          backend: new PostgresBackend({
            dsn: DATABASE_URL!,
            table,
            sweepInterval: 0,
          }),
        })),
        onError: quiet,
      });
    const first = open();
    const second = open();
    try {
      const keys = ["hot", ...KEYS];
      // One key on each shard.
      const probes = tables.map((table) =>
        keys.find((key) => first.shardOf(key).name === table)!
      );
      for (const key of probes) {
        const held = await first.lock!(key);
        assert.equal(held.acquired, true, key);
        const waiting = await second.lock!(key);
        assert.equal(waiting.acquired, false, key);
        await held.release();
        const next = await second.lock!(key);
        assert.equal(next.acquired, true, key);
        await next.release();
      }
    } finally {
      await first.close();
      await second.close();
      for (const table of tables) await dropTable(table);
    }
  },
});

// Options.

Deno.test("sharded: bare backends are named by their position", () => {
  const backend = new ShardedBackend({
    shards: [new MemoryBackend(), { name: "x", backend: new MemoryBackend() }],
  });
  assert.deepEqual(backend.shards.map((shard) => shard.name), ["0", "x"]);
  assert.equal(backend.namespace, "hono_cache");
  assert.ok(Object.isFrozen(backend.shards));
});

Deno.test("sharded: invalid options are rejected at construction, in one error style", () => {
  const m = () => new MemoryBackend();
  const twice = m();
  const cases: [unknown, string, string][] = [
    [undefined, "TypeError", "options must be an object: received undefined"],
    [
      { shards: [], closeShard: true },
      "TypeError",
      'unknown option "closeShard"; did you mean "closeShards"?',
    ],
    [
      { shards: [{ name: "a", backend: m(), weight: 2 }] },
      "TypeError",
      'unknown option "shards[0].weight"',
    ],
    [{}, "TypeError", "shards must be an array: received undefined"],
    [
      { shards: [] },
      "RangeError",
      "shards must hold at least one backend: received an empty array",
    ],
    [
      { shards: [m(), 42] },
      "TypeError",
      "shards[1] must be a CacheBackend or { name, backend }: received 42",
    ],
    [
      { shards: [{ name: "a", backend: {} }] },
      "TypeError",
      "shards[0].backend must be a CacheBackend: received",
    ],
    [
      { shards: [{ name: "", backend: m() }] },
      "TypeError",
      'shards[0].name must be a non-empty string: received "" (a string)',
    ],
    [
      { shards: [{ name: "a\nb", backend: m() }] },
      "TypeError",
      'shards[0].name must be a well-formed string without control characters: received "a\\nb" (a string)',
    ],
    [
      { shards: [{ name: "é".repeat(129), backend: m() }] },
      "RangeError",
      "shards[0].name must be at most 256 bytes in UTF-8",
    ],
    [
      { shards: [{ name: "a", backend: m() }, { name: "a", backend: m() }] },
      "RangeError",
      'shard names must be unique: shards[0] and shards[1] are both named "a"',
    ],
    [
      { shards: [m(), { name: "0", backend: m() }] },
      "RangeError",
      'shard names must be unique: shards[0] and shards[1] are both named "0"',
    ],
    [
      {
        shards: [{ name: "b", backend: m() }, twice, {
          name: "c",
          backend: twice,
        }],
      },
      "RangeError",
      "each backend must be given once: shards[1] and shards[2] are the same MemoryBackend",
    ],
    [
      { shards: [m(), new MemoryBackend({ namespace: "other" })] },
      "RangeError",
      'shards[1]\'s namespace must be "hono_cache", the namespace of shards[0]: received "other" (a string)',
    ],
    [
      { shards: [m()], onError: "log" },
      "TypeError",
      'onError must be a function: received "log" (a string)',
    ],
    [
      { shards: [m()], closeShards: 1 },
      "TypeError",
      "closeShards must be a boolean: received 1",
    ],
  ];
  for (const [options, name, message] of cases) {
    assert.throws(
      () => new ShardedBackend(options as never),
      (error: Error) => {
        assert.equal(error.name, name, message);
        assert.ok(
          error.message.startsWith(`Cannot create ShardedBackend: ${message}`),
          `${error.message}\nwanted: ${message}`,
        );
        return true;
      },
    );
  }
});

Deno.test("sharded: a malformed key is rejected as every backend rejects it", async () => {
  const backend = new ShardedBackend({ shards: memoryShards(2) });
  await assert.rejects(backend.get(42 as never), {
    name: "TypeError",
    message: /^Invalid key: key must be a string: received/,
  });
  await assert.rejects(backend.set("a\u0000b", 1), { name: "TypeError" });
  await assert.rejects(backend.readEntry("x".repeat(2049)), {
    name: "RangeError",
  });
  assert.throws(() => backend.shardOf(null as never), TypeError);
  await assert.rejects(backend.invalidateTags([""]), { name: "TypeError" });
});

Deno.test("sharded: a transaction is refused, since it cannot span the shards' databases", async () => {
  const backend = new ShardedBackend({ shards: memoryShards(2) });
  const transaction = { unsafe: () => Promise.resolve([]) };
  await backend.set("k", 1);
  for (
    const call of [
      () => backend.delete("k", { transaction }),
      () => backend.clear({ transaction }),
      () => backend.invalidateTags(["t"], { transaction }),
    ]
  ) {
    await assert.rejects(call(), {
      name: "TypeError",
      message: /takes no transaction: one transaction cannot span/,
    });
  }
  assert.equal(await backend.get("k"), 1);
});

// Closing.

for (const kind of postgresKinds) {
  Deno.test({
    name:
      `sharded: ${kind.name}: close closes the shards unless closeShards is false, and the sharded backend refuses work after it`,
    ignore: !kind.available,
    async fn() {
      const namespace = uniqueNamespace();
      const owned = await kind.open({ namespace });
      const shared = await kind.open({ namespace });
      try {
        const a = new ShardedBackend({ shards: [owned.backend] });
        await a.set("k", 1);
        await a.close();
        await a.close();
        await assert.rejects(owned.backend.get("k"), /is closed/);
        await assert.rejects(a.get("k"), {
          message: "Cannot get: the ShardedBackend is closed",
        });
        const b = new ShardedBackend({
          shards: [shared.backend],
          closeShards: false,
        });
        await b.set("k", 2);
        await b.close();
        assert.equal(await shared.backend.get("k"), 2);
        await assert.rejects(b.clear(), {
          message: "Cannot clear: the ShardedBackend is closed",
        });
        await assert.rejects(b.stats(), /is closed/);
      } finally {
        await owned.dispose();
        await shared.dispose();
      }
    },
  });
}

// getOrSet.

Deno.test("sharded: getOrSet computes a key once, stores it on the key's shard, and goes on without a failing shard, reporting it", async () => {
  const reports: CacheErrorContext[] = [];
  const healthy = new MemoryBackend();
  const backend = new ShardedBackend({
    shards: [{ name: "up", backend: healthy }, {
      name: "down",
      backend: new DownBackend(),
    }],
    onError: (_error, context) => reports.push(context),
  });
  const onUp = KEYS.find((key) => backend.shardOf(key).name === "up")!;
  const onDown = KEYS.find((key) => backend.shardOf(key).name === "down")!;
  let runs = 0;
  const compute = () => {
    runs++;
    return { n: runs };
  };
  const [a, b] = await Promise.all([
    backend.getOrSet(onUp, compute, { expire: 60 }),
    backend.getOrSet(onUp, compute, { expire: 60 }),
  ]);
  assert.deepEqual([a, b], [{ n: 1 }, { n: 1 }]);
  assert.deepEqual(await healthy.get(onUp), { n: 1 });
  assert.deepEqual(await backend.getOrSet(onDown, compute), { n: 2 });
  assert.ok(
    reports.some((context) =>
      context.key === onDown && context.operation === "readEntry"
    ),
    JSON.stringify(reports),
  );
});
