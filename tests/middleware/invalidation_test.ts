// Issue 5: invalidation by URL, Request, Context and tag, on every backend;
// in a caller's transaction; across instances and processes.
import assert from "node:assert/strict";
import { type Context, Hono } from "hono";
import type postgres from "postgres";
import { PostgresBackend } from "../../backends/postgres.ts";
import type { CacheBackend, CacheErrorContext } from "../../backends/types.ts";
import { Cache } from "../../middleware/cache.ts";
import { cached } from "../../middleware/cached.ts";
import { invalidate, invalidateTags } from "../../middleware/invalidate.ts";
import {
  type BackendKind,
  backendKinds,
  DATABASE_URL,
  dropTable,
  pglite,
  postgresKinds,
  uniqueNamespace,
  uniqueTable,
  withServer,
} from "../_helpers.ts";

const serverKind = backendKinds.find((kind) =>
  kind.name === "postgres on the real server"
)!;

/** A Hono app on a `new Cache()` facade, with routes that count their runs. */
interface Site {
  backend: CacheBackend;
  cache: Cache;
  app: Hono;
  /** Handler runs per path (without query). */
  runs: Map<string, number>;
  /** Cache-side errors reported to onError. */
  errors: { error: unknown; context: CacheErrorContext }[];
  /** The Context of the most recent handler run. */
  lastContext?: Context;
  /** Requests `path`, returning X-Cache and the body. */
  get(
    path: string,
    init?: RequestInit,
  ): Promise<{ status: string | null; body: string }>;
}

/**
 * Builds a site on `backend`: `/users` (untagged), `/u` (untagged),
 * `/users/:id` (tags `user:<id>` and `users`), `/posts` (tag `posts`, on a
 * direct `cached()` with a static tag list), and `POST /users` that
 * invalidates the GET entry of its own URL through its Context.
 */
function site(backend: CacheBackend, wait = true): Site {
  const cache = new Cache();
  const app = new Hono();
  const errors: Site["errors"] = [];
  const onError = (error: unknown, context: CacheErrorContext) =>
    errors.push({ error, context });
  cache.initApp(app, backend, { expire: 300, wait, onError });
  const runs = new Map<string, number>();
  const s: Site = {
    backend,
    cache,
    app,
    runs,
    errors,
    async get(path, init) {
      const res = await app.request(path, init);
      return { status: res.headers.get("x-cache"), body: await res.text() };
    },
  };
  const count = (c: Context) => {
    const path = c.req.path;
    runs.set(path, (runs.get(path) ?? 0) + 1);
    s.lastContext = c;
    return runs.get(path)!;
  };
  app.get("/users", cache.cached(), (c) => c.json({ run: count(c) }));
  app.get("/u", cache.cached(), (c) => c.json({ run: count(c) }));
  app.get(
    "/users/:id",
    cache.cached({
      tags: (c) => [`user:${c.req.param("id")}`, "users"],
    }),
    (c) => c.json({ id: c.req.param("id"), run: count(c) }),
  );
  app.get(
    "/posts",
    cached({ backend, tags: ["posts"], expire: 300, wait, onError }),
    (c) => c.json({ run: count(c) }),
  );
  app.post("/users", async (c) => {
    const removed = await cache.invalidate(c);
    return c.json({ removed });
  });
  return s;
}

function runsOf(s: Site, path: string): number {
  return s.runs.get(path) ?? 0;
}

/** Opens a backend of `kind` and a site on it; `dispose` closes both. */
async function openSite(
  kind: BackendKind,
  options: { namespace?: string; table?: string; wait?: boolean } = {},
): Promise<Site & { dispose(): Promise<void> }> {
  const { backend, dispose } = await kind.open({
    namespace: options.namespace ?? uniqueNamespace("inv"),
    table: options.table,
  });
  return Object.assign(site(backend, options.wait ?? true), { dispose });
}

for (const kind of backendKinds) {
  Deno.test({
    name:
      `invalidation: ${kind.name}: cache.invalidate("/users?id=1") removes that entry only; its next request is a MISS and runs the handler again`,
    ignore: !kind.available,
    async fn() {
      const s = await openSite(kind);
      try {
        assert.equal((await s.get("/users?id=1")).status, "MISS");
        assert.equal((await s.get("/users?id=2")).status, "MISS");
        assert.equal((await s.get("/users?id=1")).status, "HIT");
        assert.equal(runsOf(s, "/users"), 2);

        assert.equal(await s.cache.invalidate("/users?id=1"), true);
        const again = await s.get("/users?id=1");
        assert.equal(again.status, "MISS");
        assert.deepEqual(JSON.parse(again.body), { run: 3 });
        assert.equal(runsOf(s, "/users"), 3);
        // The other query string is a different entry, left alone.
        assert.equal((await s.get("/users?id=2")).status, "HIT");
        // Nothing left to remove at a URL that was never cached.
        assert.equal(await s.cache.invalidate("/users?id=3"), false);
        assert.deepEqual(s.errors, []);
      } finally {
        await s.dispose();
      }
    },
  });

  Deno.test({
    name:
      `invalidation: ${kind.name}: invalidate(backend, request) and a URL remove the entry of the Request's URL`,
    ignore: !kind.available,
    async fn() {
      const s = await openSite(kind);
      try {
        await s.get("/users?id=1");
        await s.get("/users?id=2");
        const request = new Request("http://example.test/users?id=1", {
          method: "POST",
        });
        assert.equal(await invalidate(s.backend, request), true);
        assert.equal(
          await invalidate(s.backend, new URL("http://other.test/users?id=2")),
          true,
        );
        assert.equal((await s.get("/users?id=1")).status, "MISS");
        assert.equal((await s.get("/users?id=2")).status, "MISS");
        assert.equal(runsOf(s, "/users"), 4);
      } finally {
        await s.dispose();
      }
    },
  });

  Deno.test({
    name:
      `invalidation: ${kind.name}: cache.invalidate(c) with a Context captured in a handler, or inside a POST handler, removes the GET entry of its URL`,
    ignore: !kind.available,
    async fn() {
      const s = await openSite(kind);
      try {
        await s.get("/users?id=7&tab=a");
        const captured = s.lastContext!;
        assert.ok(captured);
        assert.equal((await s.get("/users?id=7&tab=a")).status, "HIT");
        assert.equal(await s.cache.invalidate(captured), true);
        assert.equal((await s.get("/users?id=7&tab=a")).status, "MISS");
        assert.equal(runsOf(s, "/users"), 2);

        // The usual shape: a write route invalidates the GET of its own URL.
        assert.equal((await s.get("/users?id=7&tab=a")).status, "HIT");
        const post = await s.app.request("/users?tab=a&id=7", {
          method: "POST",
        });
        assert.deepEqual(await post.json(), { removed: true });
        assert.equal((await s.get("/users?id=7&tab=a")).status, "MISS");
        assert.equal(runsOf(s, "/users"), 3);
      } finally {
        await s.dispose();
      }
    },
  });

  Deno.test({
    name:
      `invalidation: ${kind.name}: query parameters are sorted as cached() sorts them (cached "/u?b=2&a=1", invalidated "/u?a=1&b=2")`,
    ignore: !kind.available,
    async fn() {
      const s = await openSite(kind);
      try {
        assert.equal((await s.get("/u?b=2&a=1")).status, "MISS");
        assert.equal((await s.get("/u?a=1&b=2")).status, "HIT");
        assert.equal(await s.cache.invalidate("/u?a=1&b=2"), true);
        const next = await s.get("/u?b=2&a=1");
        assert.equal(next.status, "MISS");
        assert.deepEqual(JSON.parse(next.body), { run: 2 });
        assert.equal(runsOf(s, "/u"), 2);
        // Repeated names keep their order: a=2&a=1 is not a=1&a=2.
        await s.get("/u?a=2&a=1");
        assert.equal(await s.cache.invalidate("/u?a=1&a=2"), false);
        assert.equal(await s.cache.invalidate("/u?a=2&a=1"), true);
      } finally {
        await s.dispose();
      }
    },
  });

  Deno.test({
    name:
      `invalidation: ${kind.name}: invalidating right after a MISS response, while its write may still be in flight, still removes the entry`,
    ignore: !kind.available,
    async fn() {
      // wait: false (the default): the MISS is answered before the write lands.
      const s = await openSite(kind, { wait: false });
      try {
        for (let round = 1; round <= 20; round++) {
          const path = `/users?id=${round}`;
          const miss = await s.app.request(path);
          assert.equal(miss.headers.get("x-cache"), "MISS");
          // Invalidate before even reading the MISS's body.
          await s.cache.invalidate(path);
          await miss.body?.cancel();
          const next = await s.get(path);
          assert.equal(
            next.status,
            "MISS",
            `round ${round}: the invalidated entry was served (${next.status}): the pending write landed after the delete`,
          );
        }
      } finally {
        await s.dispose();
      }
    },
  });

  Deno.test({
    name:
      `tags: ${kind.name}: invalidating by tag right after a MISS response, while its write may still be in flight, still removes the entry`,
    ignore: !kind.available,
    async fn() {
      const s = await openSite(kind, { wait: false });
      try {
        for (let round = 1; round <= 20; round++) {
          const path = `/users/${round}`;
          const miss = await s.app.request(path);
          assert.equal(miss.headers.get("x-cache"), "MISS");
          await s.cache.invalidateTags([`user:${round}`]);
          await miss.body?.cancel();
          const next = await s.get(path);
          assert.equal(
            next.status,
            "MISS",
            `round ${round}: the entry purged by tag was served (${next.status}): the pending write landed after the purge`,
          );
        }
      } finally {
        await s.dispose();
      }
    },
  });

  Deno.test({
    name:
      `tags: ${kind.name}: cache.invalidateTags(["user:42"]) deletes every entry carrying the tag, returns the count and leaves the others`,
    ignore: !kind.available,
    async fn() {
      const s = await openSite(kind);
      try {
        for (
          const path of ["/users/42?v=1", "/users/42?v=2", "/users/7", "/posts"]
        ) {
          assert.equal((await s.get(path)).status, "MISS");
        }
        assert.equal(await s.cache.invalidateTags(["user:42"]), 2);
        assert.equal((await s.get("/users/42?v=1")).status, "MISS");
        assert.equal((await s.get("/users/42?v=2")).status, "MISS");
        assert.equal((await s.get("/users/7")).status, "HIT");
        assert.equal((await s.get("/posts")).status, "HIT");

        // Any of several tags; the static tag of a direct cached() route.
        assert.equal(await s.cache.invalidateTags(["posts", "user:7"]), 2);
        assert.equal((await s.get("/posts")).status, "MISS");
        assert.equal((await s.get("/users/7")).status, "MISS");
        assert.equal((await s.get("/users/42?v=1")).status, "HIT");

        // The function form of invalidateTags, and a tag shared by a route.
        assert.equal(await invalidateTags(s.backend, ["users"]), 3);
        assert.equal(await s.cache.invalidateTags(["nobody"]), 0);
        assert.equal(await s.cache.invalidateTags([]), 0);
        assert.equal((await s.get("/posts")).status, "HIT");
        assert.equal((await s.get("/users/7")).status, "MISS");
      } finally {
        await s.dispose();
      }
    },
  });

  Deno.test({
    name:
      `tags: ${kind.name}: backend.invalidateTags deletes value-API entries set with any of the tags and returns the count`,
    ignore: !kind.available,
    async fn() {
      const { backend, dispose } = await kind.open({
        namespace: uniqueNamespace("tags"),
      });
      try {
        await backend.set("a", "A", { tags: ["red", "blue"] });
        await backend.set("b", { b: 1 }, { tags: ["blue"] });
        await backend.set("c", new Uint8Array([1, 2, 3]), { tags: ["green"] });
        await backend.set("d", "D");
        await backend.set("e", "E", { tags: ["red"], expire: 60 });
        assert.equal(await backend.invalidateTags!(["red"]), 2);
        assert.equal(await backend.has("a"), false);
        assert.equal(await backend.has("e"), false);
        assert.deepEqual(await backend.get("b"), { b: 1 });
        assert.equal(await backend.invalidateTags!(["blue", "green"]), 2);
        assert.equal(await backend.get("b"), undefined);
        assert.equal(await backend.get("c"), undefined);
        assert.equal(await backend.get("d"), "D");
        assert.equal(await backend.invalidateTags!(["red", "blue"]), 0);
        // A rewrite replaces the tags: the old tag no longer reaches it.
        await backend.set("d", "D2", { tags: ["old"] });
        await backend.set("d", "D3", { tags: ["new"] });
        assert.equal(await backend.invalidateTags!(["old"]), 0);
        assert.equal(await backend.get("d"), "D3");
        assert.equal(await backend.invalidateTags!(["new"]), 1);
        assert.equal(await backend.get("d"), undefined);
      } finally {
        await dispose();
      }
    },
  });
}

/** Runs statements on the database the kind's backends use. */
async function withDatabase<T>(
  kind: BackendKind,
  fn: (
    query: (text: string) => Promise<Record<string, unknown>[]>,
    transaction: (
      body: (
        query: (text: string) => Promise<Record<string, unknown>[]>,
      ) => Promise<Record<string, unknown>[]>,
    ) => Promise<Record<string, unknown>[]>,
  ) => Promise<T>,
): Promise<T> {
  if (kind === serverKind) {
    return await withServer((sql) =>
      fn(
        async (text) => [...await sql.unsafe(text)],
        async (body) =>
          await sql.begin((tx) =>
            body(async (text) => [...await tx.unsafe(text)])
          ) as Record<string, unknown>[],
      )
    );
  }
  const db = await pglite();
  return await fn(
    async (text) => (await db.query(text)).rows as Record<string, unknown>[],
    (body) =>
      db.transaction((tx) =>
        body(async (text) =>
          (await tx.query(text)).rows as Record<string, unknown>[]
        )
      ),
  );
}

for (const kind of postgresKinds) {
  Deno.test({
    name:
      `tags: ${kind.name}: the tags column has a GIN index named <table>_tags_idx`,
    ignore: !kind.available,
    async fn() {
      const table = uniqueTable("inv_gin");
      const { backend, dispose } = await kind.open({ table });
      try {
        await (backend as PostgresBackend).ready();
        const rows = await withDatabase(kind, (query) =>
          query(
            `SELECT indexname, indexdef FROM pg_indexes WHERE tablename = '${table}'`,
          ));
        const index = rows.find((row) => row.indexname === `${table}_tags_idx`);
        assert.ok(index, `no ${table}_tags_idx among ${JSON.stringify(rows)}`);
        assert.match(String(index.indexdef), /USING gin \(tags\)/);
      } finally {
        await dispose();
      }
    },
  });

  Deno.test({
    name:
      `tags: ${kind.name}: the tag purge statement can be served by the <table>_tags_idx GIN index`,
    ignore: !kind.available,
    async fn() {
      const table = uniqueTable("inv_plan");
      const { backend, dispose } = await kind.open({ table });
      try {
        await (backend as PostgresBackend).ready();
        const plan = await withDatabase(kind, async (query, transaction) => {
          // A namespace of many entries with a tag each, as a real one looks:
          // the namespace alone selects them all, the tag one of them.
          await query(`INSERT INTO "${table}"
  (namespace, key, kind, value, tags, byte_size, expires_at, stale_until)
SELECT 'x', 'k' || i, 1, '\\x00'::bytea, ARRAY['user:' || i], 1, 'infinity', 'infinity'
FROM generate_series(1, 1000) AS i`);
          await query(`ANALYZE "${table}"`);
          return await transaction(async (tx) => {
            await tx("SET LOCAL enable_seqscan = off");
            return await tx(
              `EXPLAIN DELETE FROM "${table}" WHERE namespace = 'x' AND tags && ARRAY['t']`,
            );
          });
        });
        const text = plan.map((row) => String(Object.values(row)[0])).join(
          "\n",
        );
        assert.ok(
          text.includes(`${table}_tags_idx`),
          `the plan does not use ${table}_tags_idx:\n${text}`,
        );
        // The backend's own purge deletes exactly the tagged row.
        const other = new PostgresBackend(
          kind === serverKind
            ? { dsn: DATABASE_URL!, table, namespace: "x", sweepInterval: 0 }
            : {
              client: await pglite(),
              table,
              namespace: "x",
              sweepInterval: 0,
            },
        );
        try {
          assert.equal(await other.invalidateTags(["user:500", "user:9"]), 2);
          assert.equal((await other.stats()).entries, 998);
        } finally {
          await other.close();
        }
      } finally {
        await dispose();
      }
    },
  });

  Deno.test({
    name:
      `clear: ${kind.name}: backend.clear() empties only its namespace, tag purges stay in theirs, clearTable() empties every namespace`,
    ignore: !kind.available,
    async fn() {
      const table = uniqueTable("inv_clear");
      const a = await kind.open({ table, namespace: uniqueNamespace("a") });
      const b = await kind.open({ table, namespace: uniqueNamespace("b") });
      try {
        for (const { backend } of [a, b]) {
          await backend.set("k1", 1, { tags: ["t"] });
          await backend.set("k2", 2);
        }
        // A tag purge does not cross namespaces.
        assert.equal(await a.backend.invalidateTags!(["t"]), 1);
        assert.equal(await b.backend.get("k1"), 1);

        await a.backend.clear();
        assert.equal(await a.backend.get("k2"), undefined);
        assert.equal((await a.backend.stats!()).entries, 0);
        assert.equal(await b.backend.get("k1"), 1);
        assert.equal(await b.backend.get("k2"), 2);
        assert.equal((await b.backend.stats!()).entries, 2);

        await a.backend.set("k3", 3);
        await (a.backend as PostgresBackend).clearTable();
        assert.equal(await a.backend.get("k3"), undefined);
        assert.equal(await b.backend.get("k1"), undefined);
        assert.equal(await b.backend.get("k2"), undefined);
        assert.equal((await b.backend.stats!()).entries, 0);
      } finally {
        await b.dispose();
        await a.dispose();
      }
    },
  });

  Deno.test({
    name:
      `every instance: ${kind.name}: invalidation through instance A makes instance B's next request a MISS (URL and tag)`,
    ignore: !kind.available,
    async fn() {
      const table = uniqueTable("inv_two");
      const namespace = uniqueNamespace("two");
      const a = await openSite(kind, { table, namespace });
      const b = await openSite(kind, { table, namespace });
      try {
        assert.equal((await a.get("/users?id=1")).status, "MISS");
        assert.equal((await b.get("/users?id=1")).status, "HIT");
        assert.equal((await a.get("/users/42")).status, "MISS");
        assert.equal((await b.get("/users/42")).status, "HIT");

        assert.equal(await a.cache.invalidate("/users?id=1"), true);
        assert.equal((await b.get("/users?id=1")).status, "MISS");
        assert.equal(runsOf(b, "/users"), 1);

        assert.equal(await a.cache.invalidateTags(["user:42"]), 1);
        assert.equal((await b.get("/users/42")).status, "MISS");
        assert.equal(runsOf(b, "/users/42"), 1);
        // And A sees what B wrote meanwhile.
        assert.equal((await a.get("/users?id=1")).status, "HIT");
      } finally {
        await b.dispose();
        await a.dispose();
      }
    },
  });
}

Deno.test({
  name:
    "every instance: postgres on the real server: with local tiers, B stops serving its local copy once A's invalidation is announced",
  ignore: !serverKind.available,
  async fn() {
    const table = uniqueTable("inv_local");
    const namespace = uniqueNamespace("local");
    const open = () =>
      new PostgresBackend({
        dsn: DATABASE_URL!,
        table,
        namespace,
        sweepInterval: 0,
        localCache: { maxEntries: 100, maxAge: 60 },
      });
    const a = site(open());
    const b = site(open());
    try {
      await (a.backend as PostgresBackend).ready();
      await (b.backend as PostgresBackend).ready();
      assert.equal((await a.get("/users?id=1")).status, "MISS");
      // B keeps a local copy once its listener is up: wait (bounded) until a
      // read of B no longer reaches the database.
      const bBackend = b.backend as PostgresBackend;
      let local = false;
      for (let i = 0; i < 100 && !local; i++) {
        const trips = bBackend.roundTrips;
        assert.equal((await b.get("/users?id=1")).status, "HIT");
        local = bBackend.roundTrips === trips;
        if (!local) await new Promise((r) => setTimeout(r, 10));
      }
      assert.ok(local, "B never served the entry from its local tier");
      assert.equal(await a.cache.invalidate("/users?id=1"), true);
      // The announcement travels by NOTIFY: give it a bounded time to arrive.
      const deadline = Date.now() + 3000;
      let status: string | null = "HIT";
      while (status === "HIT" && Date.now() < deadline) {
        status = (await b.get("/users?id=1")).status;
        if (status === "HIT") await new Promise((r) => setTimeout(r, 20));
      }
      assert.equal(status, "MISS");
      assert.equal(runsOf(b, "/users"), 1);
    } finally {
      await a.backend.close();
      await b.backend.close();
      await dropTable(table);
    }
  },
});

/** A backend on the real server, and its table dropped afterwards. */
async function withServerBackend(
  fn: (
    s: Site,
    sql: postgres.Sql,
    entries: () => Promise<number>,
  ) => Promise<void>,
): Promise<void> {
  const table = uniqueTable("inv_tx");
  const backend = new PostgresBackend({
    dsn: DATABASE_URL!,
    table,
    namespace: uniqueNamespace("tx"),
    sweepInterval: 0,
  });
  try {
    await backend.ready();
    await withServer((sql) =>
      fn(site(backend), sql, async () => (await backend.stats()).entries ?? -1)
    );
  } finally {
    await backend.close();
    await dropTable(table);
  }
}

Deno.test({
  name:
    "transactions: backend.invalidateTags(tags, { transaction }) rolls back with the caller's transaction and takes effect on commit",
  ignore: !serverKind.available,
  async fn() {
    await withServerBackend(async (s, sql, entries) => {
      const backend = s.backend as PostgresBackend;
      await backend.set("tagged", 1, { tags: ["t"] });
      await backend.set("other", 2, { tags: ["u"] });
      await assert.rejects(
        sql.begin(async (tx) => {
          assert.equal(
            await backend.invalidateTags(["t"], { transaction: tx }),
            1,
          );
          // Not yet committed: the backend's own connections still see it.
          assert.equal(await backend.get("tagged"), 1);
          throw new Error("rollback");
        }),
        /rollback/,
      );
      assert.equal(await backend.get("tagged"), 1);
      assert.equal(await entries(), 2);

      await sql.begin(async (tx) => {
        await tx`SELECT 1`;
        assert.equal(
          await backend.invalidateTags(["t"], { transaction: tx }),
          1,
        );
      });
      assert.equal(await backend.get("tagged"), undefined);
      assert.equal(await backend.get("other"), 2);

      // Through the facade, on a cached route.
      assert.equal((await s.get("/users/42")).status, "MISS");
      await assert.rejects(
        sql.begin(async (tx) => {
          assert.equal(
            await s.cache.invalidateTags(["user:42"], { transaction: tx }),
            1,
          );
          throw new Error("rollback");
        }),
        /rollback/,
      );
      assert.equal((await s.get("/users/42")).status, "HIT");
      await sql.begin(async (tx) => {
        await s.cache.invalidateTags(["user:42"], { transaction: tx });
      });
      assert.equal((await s.get("/users/42")).status, "MISS");
    });
  },
});

Deno.test({
  name:
    'transactions: invalidate(backend, "/x", { transaction }) rolls back with the caller\'s transaction and takes effect on commit',
  ignore: !serverKind.available,
  async fn() {
    await withServerBackend(async (s, sql) => {
      s.app.get("/x", s.cache.cached(), (c) => {
        s.runs.set("/x", runsOf(s, "/x") + 1);
        return c.text("x");
      });
      assert.equal((await s.get("/x")).status, "MISS");
      await assert.rejects(
        sql.begin(async (tx) => {
          assert.equal(
            await invalidate(s.backend, "/x", { transaction: tx }),
            true,
          );
          throw new Error("rollback");
        }),
        /rollback/,
      );
      assert.equal((await s.get("/x")).status, "HIT");
      assert.equal(runsOf(s, "/x"), 1);

      await sql.begin(async (tx) => {
        assert.equal(
          await s.cache.invalidate("/x", { transaction: tx }),
          true,
        );
        // Until the commit, the entry is still served.
        assert.equal((await s.get("/x")).status, "HIT");
      });
      assert.equal((await s.get("/x")).status, "MISS");
      assert.equal(runsOf(s, "/x"), 2);
    });
  },
});

/** Runs the tag worker fixture once, requesting `paths`. */
async function worker(
  table: string,
  namespace: string,
  paths: string[],
): Promise<{ statuses: Record<string, string>; runs: number }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL("../fixtures/invalidation_tag_worker.ts", import.meta.url)
        .pathname,
      ...paths,
    ],
    env: { DATABASE_URL: DATABASE_URL!, TABLE: table, NAMESPACE: namespace },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const stdout = new TextDecoder().decode(output.stdout);
  assert.equal(
    output.code,
    0,
    `worker failed: ${new TextDecoder().decode(output.stderr)}`,
  );
  return JSON.parse(stdout.trim().split("\n").at(-1)!);
}

Deno.test({
  name:
    "every instance: postgres on the real server: entries tagged by one process are purged by tag in another, and a third process sees them gone",
  ignore: !serverKind.available,
  async fn() {
    const table = uniqueTable("inv_proc");
    const namespace = uniqueNamespace("proc");
    const backend = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      namespace,
      sweepInterval: 0,
    });
    try {
      await backend.ready();
      const paths = ["/users/42?v=1", "/users/42?v=2", "/users/7"];
      const first = await worker(table, namespace, paths);
      assert.deepEqual(first, {
        statuses: Object.fromEntries(paths.map((p) => [p, "MISS"])),
        runs: 3,
      });
      assert.equal(await backend.invalidateTags(["user:42"]), 2);
      const second = await worker(table, namespace, paths);
      assert.deepEqual(second, {
        statuses: {
          "/users/42?v=1": "MISS",
          "/users/42?v=2": "MISS",
          "/users/7": "HIT",
        },
        runs: 2,
      });
    } finally {
      await backend.close();
      await dropTable(table);
    }
  },
});
