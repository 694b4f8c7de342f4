// Issue 13: backend.getOrSet(key, compute, options) on every backend: one
// computation per key (in the process, and across processes through the
// lock), stale-while-revalidate, stale-if-error, and a cache that never
// makes it throw.
import assert from "node:assert/strict";
import { MemoryBackend } from "../../backends/memory.ts";
import { PostgresBackend } from "../../backends/postgres.ts";
import { getOrSet, refreshing } from "../../backends/_get_or_set.ts";
import type { CacheBackend, CacheValue } from "../../backends/types.ts";
import {
  backendKinds,
  DATABASE_URL,
  dropTable,
  pglite,
  postgresKinds,
  uniqueTable,
  withServer,
} from "../_helpers.ts";

/** A backend whose clock the test moves: entries age by `age(seconds)`. */
interface Aged {
  backend: CacheBackend;
  /** Moves every entry `seconds` into the past. */
  age(seconds: number): Promise<void>;
  dispose(): Promise<void>;
}

/** Memory on an injected clock; PostgreSQL with its rows moved back by SQL. */
const agedKinds: {
  name: string;
  available: boolean;
  open(): Promise<Aged>;
}[] = [
  {
    name: "memory",
    available: true,
    open() {
      let now = 1_700_000_000_000;
      const backend = new MemoryBackend({ now: () => now });
      return Promise.resolve({
        backend,
        age: (seconds) => Promise.resolve(void (now += seconds * 1000)),
        dispose: () => backend.close(),
      });
    },
  },
  ...postgresKinds.map((kind) => ({
    name: kind.name,
    available: kind.available,
    async open(): Promise<Aged> {
      const table = uniqueTable("gos");
      const { backend, dispose } = await kind.open({ table });
      const text = `UPDATE "${table}" SET
        created_at = created_at - $1 * interval '1 second',
        expires_at = expires_at - $1 * interval '1 second',
        stale_until = stale_until - $1 * interval '1 second'`;
      const onPglite = kind.name.includes("PGlite");
      return {
        backend,
        async age(seconds) {
          if (onPglite) await (await pglite()).query(text, [seconds]);
          else await withServer((sql) => sql.unsafe(text, [seconds]));
        },
        dispose,
      };
    },
  })),
];

/** Registers `fn` as one test per available aged kind. */
function everyAged(name: string, fn: (aged: Aged) => Promise<void>): void {
  for (const kind of agedKinds) {
    Deno.test({
      name: `${kind.name}: ${name}`,
      ignore: !kind.available,
      async fn() {
        const aged = await kind.open();
        try {
          await fn(aged);
        } finally {
          await aged.dispose();
        }
      },
    });
  }
}

/** A promise and the function that resolves it. */
function gate(): { opened: Promise<void>; open(): void } {
  let open!: () => void;
  const opened = new Promise<void>((resolve) => open = resolve);
  return { opened, open };
}

/** A compute function that counts its runs and returns `value`. */
function counting<T extends CacheValue>(value: T, wait?: Promise<void>) {
  const compute = async () => {
    compute.runs++;
    await wait;
    return value;
  };
  compute.runs = 0;
  return compute;
}

everyAged(
  "getOrSet computes a missing value once, stores it with its expiry and tags, and returns the stored value afterwards",
  async ({ backend }) => {
    const compute = counting({ name: "Ada" });
    const options = { expire: 60, tags: ["user:1"] };
    assert.deepEqual(await backend.getOrSet!("user:1", compute, options), {
      name: "Ada",
    });
    assert.deepEqual(await backend.get("user:1"), { name: "Ada" });
    const again = await backend.getOrSet!("user:1", () => {
      throw new Error("not called");
    }, options);
    assert.deepEqual(again, { name: "Ada" });
    assert.equal(compute.runs, 1);
    assert.equal(await backend.invalidateTags!(["user:1"]), 1);
  },
);

everyAged(
  "getOrSet single-flight: concurrent calls for one key in a process share one computation",
  async ({ backend }) => {
    const { opened, open } = gate();
    const compute = counting("shared", opened);
    const calls = Array.from(
      { length: 20 },
      () => backend.getOrSet!("k", compute, { expire: 60 }),
    );
    open();
    assert.deepEqual(await Promise.all(calls), Array(20).fill("shared"));
    assert.equal(compute.runs, 1);
  },
);

everyAged(
  "getOrSet staleWhileRevalidate: within the window the stale value is returned at once and recomputed once in the background",
  async ({ backend, age }) => {
    const options = { expire: 10, staleWhileRevalidate: 60 };
    await backend.getOrSet!("report", () => "v1", options);
    await age(15);
    const { opened, open } = gate();
    const compute = counting("v2", opened);
    // The refresh is held at the gate: these calls cannot have waited for it.
    const answers = await Promise.all(
      Array.from(
        { length: 5 },
        () => backend.getOrSet!("report", compute, options),
      ),
    );
    assert.deepEqual(answers, Array(5).fill("v1"));
    const refresh = refreshing(backend, "report");
    assert.ok(refresh, "a refresh runs in the background");
    open();
    await refresh;
    assert.equal(compute.runs, 1);
    assert.equal(await backend.get("report"), "v2");
    assert.equal(await backend.getOrSet!("report", compute, options), "v2");
    assert.equal(compute.runs, 1);
  },
);

everyAged(
  "getOrSet staleWhileRevalidate: past the window the caller waits for a new value",
  async ({ backend, age }) => {
    const options = { expire: 10, staleWhileRevalidate: 60 };
    await backend.getOrSet!("report", () => "v1", options);
    await age(75);
    assert.equal(await backend.getOrSet!("report", () => "v2", options), "v2");
  },
);

everyAged(
  "getOrSet staleIfError: compute throws and a stale value within the window is returned; past it, the error",
  async ({ backend, age }) => {
    const options = { expire: 10, staleIfError: 60 };
    await backend.getOrSet!("rates", () => ({ eur: 1.1 }), options);
    await age(15);
    const failing = () => Promise.reject(new Error("upstream down"));
    assert.deepEqual(await backend.getOrSet!("rates", failing, options), {
      eur: 1.1,
    });
    await age(60);
    await assert.rejects(
      backend.getOrSet!("rates", failing, options),
      /upstream down/,
    );
  },
);

for (const kind of backendKinds) {
  Deno.test({
    name:
      `${kind.name}: getOrSet propagates compute's own error, stores nothing, and computes again on the next call`,
    ignore: !kind.available,
    async fn() {
      const { backend, dispose } = await kind.open();
      try {
        const error = new Error("compute failed");
        await assert.rejects(
          backend.getOrSet!("k", () => Promise.reject(error)),
          (thrown) => thrown === error,
        );
        assert.equal(await backend.has("k"), false);
        assert.equal(await backend.getOrSet!("k", () => 2), 2);
      } finally {
        await dispose();
      }
    },
  });

  Deno.test({
    name:
      `${kind.name}: getOrSet rejects unknown options, a malformed key, a missing compute and a value JSON would change`,
    ignore: !kind.available,
    async fn() {
      const { backend, dispose } = await kind.open();
      try {
        await assert.rejects(
          // @ts-expect-error: expires is not an option
          backend.getOrSet!("k", () => 1, { expires: 10 }),
          {
            name: "TypeError",
            message:
              'Cannot get or set value: unknown option "expires"; did you mean "expire"?',
          },
        );
        await assert.rejects(
          backend.getOrSet!("a\u0000b", () => 1),
          /key must not contain NUL/,
        );
        await assert.rejects(
          // @ts-expect-error: compute is missing
          backend.getOrSet!("k"),
          /compute must be a function/,
        );
        await assert.rejects(
          backend.getOrSet!("k", () => ({ when: new Date(0) }) as never),
          {
            name: "TypeError",
            message: "Cannot store value: value.when is a Date",
          },
        );
        assert.equal(await backend.has("k"), false);
      } finally {
        await dispose();
      }
    },
  });
}

/** A port on which nothing listens. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

Deno.test("PostgresBackend: getOrSet during a database outage runs compute, returns its value and reports to onError, never throwing", async () => {
  const errors: [unknown, string][] = [];
  const backend = new PostgresBackend({
    dsn: `postgres://postgres@127.0.0.1:${closedPort()}/test`,
    sweepInterval: 0,
    connectTimeout: 500,
    onError: (error, { operation }) => errors.push([error, operation]),
  });
  try {
    const compute = counting({ ok: true });
    assert.deepEqual(await backend.getOrSet("k", compute, { expire: 5 }), {
      ok: true,
    });
    assert.deepEqual(await backend.getOrSet("k", compute), { ok: true });
    assert.equal(compute.runs, 2);
    const operations = new Set(errors.map(([, operation]) => operation));
    assert.ok(operations.has("readEntry"), [...operations].join());
    assert.ok(operations.has("writeEntry"), [...operations].join());
  } finally {
    await backend.close();
  }
});

Deno.test("the shared getOrSet on a backend whose every call rejects runs compute and reports each failure", async () => {
  const down = () => Promise.reject(new Error("store down"));
  const backend: CacheBackend = Object.assign(new MemoryBackend(), {
    lookup: down,
    readEntry: down,
    writeEntry: down,
  });
  const reported: string[] = [];
  const value = await getOrSet(
    backend,
    "k",
    () => "computed",
    { expire: 5 },
    (_error, operation, key) => reported.push(`${operation} ${key}`),
  );
  assert.equal(value, "computed");
  assert.deepEqual(reported, ["readEntry k", "writeEntry k"]);
});

Deno.test({
  name:
    "PostgresBackend on the real server: getOrSet across processes: one computes under the lock, the other waits and returns its value",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const table = uniqueTable("gos_lock");
    // Two backends, two pools, two lock sessions: as two processes.
    const open = () =>
      new PostgresBackend({ dsn: DATABASE_URL!, table, sweepInterval: 0 });
    const a = open();
    const b = open();
    try {
      await a.ready();
      await b.ready();
      const { opened, open: release } = gate();
      const started = gate();
      const first = a.getOrSet("slow", async () => {
        started.open();
        await opened;
        return "from a";
      }, { expire: 60 });
      await started.opened;
      const computeB = counting("from b");
      const sent = b.roundTrips;
      const second = b.getOrSet("slow", computeB, { expire: 60 });
      // Once b has read (a miss) and tried the lock, it waits on a's lock;
      // a then stores and releases it.
      for (let i = 0; b.roundTrips < sent + 2 && i < 500; i++) {
        await new Promise((resolve) => setTimeout(resolve, 10));
      }
      assert.ok(b.roundTrips >= sent + 2, "b read and tried the lock");
      assert.equal(computeB.runs, 0);
      release();
      assert.equal(await first, "from a");
      assert.equal(await second, "from a");
      assert.equal(computeB.runs, 0);
    } finally {
      await a.close();
      await b.close();
      await dropTable(table);
    }
  },
});
