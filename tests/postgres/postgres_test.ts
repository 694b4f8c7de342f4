// PostgresBackend on its own: option checks, failing open on an unreachable
// database, close(), the schema, the sweep, round trips, and the drivers it
// runs on (postgres.js, PGlite, a deno-postgres-shaped Pool, embedded).
import assert from "node:assert/strict";
import postgres from "postgres";
import {
  CacheTimeoutError,
  PostgresBackend,
  type PostgresBackendOptions,
} from "../../backends/postgres.ts";
import {
  type DenoPostgresPool,
  type SqlDriver,
  toSqlDriver,
} from "../../backends/sql_driver.ts";
import {
  DATABASE_URL,
  dropTable,
  dropTableSql,
  pglite,
  uniqueNamespace,
  uniqueTable,
  withServer,
} from "../_helpers.ts";

type Row = Record<string, unknown>;
type Query = (text: string, params?: unknown[]) => Promise<Row[]>;
type Options = Omit<PostgresBackendOptions, "dsn" | "client" | "embedded">;

const quiet = () => {};

/** A database the backends under test run on, with a query function on it. */
interface Database {
  name: string;
  available: boolean;
  query: Query;
  connection(): Promise<Pick<PostgresBackendOptions, "dsn" | "client">>;
}

const databases: Database[] = [
  {
    name: "PGlite",
    available: true,
    query: async (text, params = []) =>
      (await (await pglite()).query(text, params)).rows as Row[],
    connection: async () => ({ client: await pglite() }),
  },
  {
    name: "real server",
    available: DATABASE_URL !== undefined,
    query: (text, params = []) =>
      withServer(async (sql) => [...await sql.unsafe(text, params as never[])]),
    connection: () => Promise.resolve({ dsn: DATABASE_URL! }),
  },
];

/**
 * Runs `fn` with a way to open PostgresBackends on one fresh table of `db`,
 * then closes them all and drops the table.
 */
async function onTable(
  db: Database,
  fn: (
    open: (options?: Options) => Promise<PostgresBackend>,
    table: string,
  ) => Promise<void>,
): Promise<void> {
  const table = uniqueTable("pg");
  const opened: PostgresBackend[] = [];
  try {
    await fn(async (options) => {
      const backend = new PostgresBackend({
        sweepInterval: 0,
        onError: quiet,
        table,
        ...options,
        ...await db.connection(),
      });
      opened.push(backend);
      return backend;
    }, table);
  } finally {
    for (const backend of opened) await backend.close();
    for (const statement of dropTableSql(table).split(";\n")) {
      await db.query(statement);
    }
  }
}

function pgTest(
  name: string,
  fn: (db: Database) => Promise<void>,
  only?: string,
): void {
  for (const db of databases) {
    if (only !== undefined && db.name !== only) continue;
    Deno.test({
      name: `PostgresBackend on ${db.name}: ${name}`,
      ignore: !db.available,
      fn: () => fn(db),
    });
  }
}

async function count(db: Database, table: string, where = "true") {
  const rows = await db.query(
    `SELECT count(*)::int AS n FROM "${table}" WHERE ${where}`,
  );
  return Number(rows[0].n);
}

// ---------------------------------------------------------------------------
// Options

/** Asserts that the constructor throws `type`, naming every one of `names`. */
async function assertInvalid(
  options: unknown,
  type: typeof TypeError | typeof RangeError,
  names: string[],
): Promise<void> {
  const label = describe(options);
  let backend: PostgresBackend;
  try {
    backend = new PostgresBackend(options as PostgresBackendOptions);
  } catch (error) {
    assert.ok(
      error instanceof type,
      `${label}: expected ${type.name}, got ${error}`,
    );
    // TypeError and RangeError only: not a subclass standing in for one.
    assert.equal(error.constructor, type);
    for (const name of names) {
      assert.match(error.message, new RegExp(`\\b${name}\\b`), label);
    }
    assert.match(error.message, /^[A-Z]/, `${label}: starts with a capital`);
    assert.doesNotMatch(error.message, /\.$/, `${label}: no trailing period`);
    return;
  }
  await backend.close();
  assert.fail(`${label} was accepted`);
}

/** Option values for messages; a client is shown by its kind only. */
function describe(options: unknown): string {
  if (typeof options !== "object" || options === null) return String(options);
  return Object.entries(options).map(([name, value]) =>
    `${name}: ${
      typeof value === "object" && value !== null
        ? value.constructor.name
        : JSON.stringify(value) ?? String(value)
    }`
  ).join(", ");
}

// A well-formed DSN of a closed port: nothing is ever reached, since every
// case below must throw before connecting.
const CLOSED_DSN = "postgres://postgres@127.0.0.1:1/test";

Deno.test("options: maxSize 0 is a RangeError naming maxSize", async () => {
  await assertInvalid({ dsn: CLOSED_DSN, maxSize: 0 }, RangeError, [
    "maxSize",
  ]);
});

Deno.test("options: minSize 0 is a RangeError naming minSize", async () => {
  await assertInvalid({ dsn: CLOSED_DSN, minSize: 0 }, RangeError, [
    "minSize",
  ]);
});

Deno.test(
  "options: minSize greater than maxSize is a RangeError naming both",
  async () => {
    await assertInvalid(
      { dsn: CLOSED_DSN, minSize: 3, maxSize: 2 },
      RangeError,
      ["minSize", "maxSize"],
    );
  },
);

Deno.test(
  "options: non-integer or non-positive sizes, timeouts and batches are RangeErrors naming the option",
  async () => {
    const cases: [string, unknown][] = [
      ["maxSize", 1.5],
      ["maxSize", NaN],
      ["sweepBatchSize", 0],
      ["queryTimeout", 0],
      ["connectTimeout", -1],
      ["maxEntries", Infinity],
      ["maxBatchSize", 0],
      ["sweepInterval", -1],
      ["sweepInterval", NaN],
    ];
    for (const [name, value] of cases) {
      await assertInvalid({ dsn: CLOSED_DSN, [name]: value }, RangeError, [
        name,
      ]);
    }
  },
);

Deno.test('options: namespace "" is a TypeError naming namespace', async () => {
  await assertInvalid({ dsn: CLOSED_DSN, namespace: "" }, TypeError, [
    "namespace",
  ]);
});

Deno.test(
  'options: a malformed dsn ("not a url", "http://x") is a TypeError naming dsn',
  async () => {
    for (const dsn of ["not a url", "http://x", "", "postgres//u@h/db"]) {
      await assertInvalid({ dsn }, TypeError, ["dsn"]);
    }
  },
);

Deno.test(
  "options: the dsn error does not echo the dsn, which may hold a password",
  async () => {
    for (
      const dsn of [
        "postgres//admin:hunter2@db/x",
        "postgres://admin:hunter2@db:port/x",
        "https://admin:hunter2@db/x",
      ]
    ) {
      let backend: PostgresBackend;
      try {
        backend = new PostgresBackend({ dsn });
      } catch (error) {
        assert.ok(error instanceof TypeError, dsn);
        assert.doesNotMatch(error.message, /hunter2/, dsn);
        continue;
      }
      await backend.close();
      assert.fail(`${dsn} was accepted`);
    }
  },
);

Deno.test(
  'options: a bad table ("a-b", "x;drop", 49 characters, a.b.c, "") is a TypeError naming table',
  async () => {
    const tables = [
      "a-b",
      "x;drop",
      'x"; DROP TABLE y; --',
      "a".repeat(49),
      "a.b.c",
      "",
      "1abc",
      "s.",
    ];
    for (const table of tables) {
      await assertInvalid({ dsn: CLOSED_DSN, table }, TypeError, ["table"]);
    }
  },
);

Deno.test(
  "options: none of dsn, client and embedded is a TypeError naming all three",
  async () => {
    await assertInvalid({}, TypeError, ["dsn", "client", "embedded"]);
    await assertInvalid(undefined, TypeError, ["dsn", "client", "embedded"]);
  },
);

Deno.test(
  "options: two of dsn, client and embedded is a TypeError naming them",
  async () => {
    await assertInvalid(
      { dsn: CLOSED_DSN, client: await pglite() },
      TypeError,
      ["dsn", "client"],
    );
    await assertInvalid(
      { client: await pglite(), embedded: true },
      TypeError,
      ["client", "embedded"],
    );
  },
);

pgTest(
  "a table name of 48 characters, and schema.name, are accepted",
  async (db) => {
    const table = "t" + crypto.randomUUID().replaceAll("-", "").slice(0, 16)
      .padEnd(47, "x");
    assert.equal(table.length, 48);
    const backend = new PostgresBackend({
      ...await db.connection(),
      table,
      sweepInterval: 0,
    });
    try {
      await backend.set("k", 1);
      assert.equal(await backend.get("k"), 1);
      const qualified = new PostgresBackend({
        ...await db.connection(),
        table: `public.${table}`,
        sweepInterval: 0,
      });
      try {
        assert.equal(await qualified.get("k"), 1);
      } finally {
        await qualified.close();
      }
    } finally {
      await backend.close();
      for (const statement of dropTableSql(table).split(";\n")) {
        await db.query(statement);
      }
    }
  },
);

// ---------------------------------------------------------------------------
// An unreachable database, and close()

Deno.test(
  "unreachable database: the constructor returns at once, get() rejects promptly, nothing is unhandled, close() works",
  async () => {
    const errors: unknown[] = [];
    const started = performance.now();
    const backend = new PostgresBackend({
      dsn: CLOSED_DSN,
      queryTimeout: 200,
      connectTimeout: 300,
      onError: (error) => errors.push(error),
    });
    assert.ok(
      performance.now() - started < 100,
      `the constructor took ${performance.now() - started} ms`,
    );
    try {
      const asked = performance.now();
      await assert.rejects(backend.get("k"));
      await assert.rejects(backend.set("k", 1));
      assert.ok(
        performance.now() - asked < 300 + 700,
        `get() and set() took ${performance.now() - asked} ms`,
      );
    } finally {
      await backend.close();
    }
    // Unhandled rejections would have failed this test under Deno's default.
  },
);

Deno.test(
  "a server that accepts but never answers: get() rejects with CacheTimeoutError within connectTimeout",
  async () => {
    const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const held: Deno.Conn[] = [];
    const accepting = (async () => {
      for await (const conn of listener) held.push(conn);
    })();
    const backend = new PostgresBackend({
      dsn: `postgres://postgres@127.0.0.1:${listener.addr.port}/test`,
      queryTimeout: 200,
      connectTimeout: 300,
      minSize: 1,
      onError: quiet,
    });
    try {
      const asked = performance.now();
      // The read gives up at queryTimeout or connectTimeout, whichever is
      // first; it must not wait for the server.
      await assert.rejects(backend.get("k"), CacheTimeoutError);
      const took = performance.now() - asked;
      assert.ok(took < 300 + 150, `get() took ${took} ms`);
    } finally {
      await backend.close();
      listener.close();
      await accepting.catch(() => {});
      for (const conn of held) {
        try {
          conn.close();
        } catch { /* closed by the peer */ }
      }
    }
  },
);

pgTest(
  "close() is idempotent and later calls reject with a clear error",
  (db) =>
    onTable(db, async (open, table) => {
      const backend = await open();
      await backend.set("k", 1);
      await Promise.all([backend.close(), backend.close()]);
      await backend.close();
      const closed = (error: unknown) =>
        error instanceof Error &&
        error.message.includes("closed") && error.message.includes(table) &&
        /^[A-Z]/.test(error.message);
      const calls: [string, () => Promise<unknown>][] = [
        ["get", () => backend.get("k")],
        ["set", () => backend.set("k", 2)],
        ["has", () => backend.has("k")],
        ["delete", () => backend.delete("k")],
        ["clear", () => backend.clear()],
        ["readEntry", () => backend.readEntry("k")],
        [
          "writeEntry",
          () => backend.writeEntry("k", { kind: 1, body: new Uint8Array(1) }),
        ],
        ["invalidateTags", () => backend.invalidateTags(["t"])],
        ["stats", () => backend.stats()],
        ["ready", () => backend.ready()],
      ];
      for (const [name, call] of calls) {
        await assert.rejects(call(), closed, name);
      }
    }),
);

pgTest(
  "sweep(), evict() and lock() after close() reject with the closed error",
  (db) =>
    onTable(db, async (open) => {
      const backend = await open();
      await backend.ready();
      await backend.close();
      const closed = (error: unknown) =>
        error instanceof Error && error.message.includes("closed");
      await assert.rejects(backend.sweep(), closed, "sweep");
      await assert.rejects(backend.evict(), closed, "evict");
      await assert.rejects(backend.lock("k"), closed, "lock");
    }),
);

// ---------------------------------------------------------------------------
// Schema

pgTest("the table is created on first use", async (db) => {
  const table = uniqueTable("pg");
  const present = async () =>
    (await db.query(`SELECT to_regclass($1)::text AS t`, [`"${table}"`]))[0]
      .t !== null;
  assert.equal(await present(), false);
  const backend = new PostgresBackend({
    ...await db.connection(),
    table,
    sweepInterval: 0,
  });
  try {
    await backend.set("k", "v");
    assert.equal(await present(), true);
    const columns = await db.query(
      `SELECT column_name::text AS c FROM information_schema.columns
        WHERE table_name = $1 ORDER BY ordinal_position`,
      [table],
    );
    assert.deepStrictEqual(columns.map((row) => row.c), [
      "namespace",
      "key",
      "kind",
      "value",
      "meta",
      "etag",
      "tags",
      "byte_size",
      "created_at",
      "expires_at",
      "stale_until",
    ]);
    const indexes = await db.query(
      `SELECT indexname::text AS i FROM pg_indexes WHERE tablename = $1 ORDER BY 1`,
      [table],
    );
    assert.deepStrictEqual(indexes.map((row) => row.i).sort(), [
      `${table}_age_idx`,
      `${table}_pkey`,
      `${table}_stale_until_idx`,
      `${table}_tags_idx`,
    ]);
  } finally {
    await backend.close();
    for (const statement of dropTableSql(table).split(";\n")) {
      await db.query(statement);
    }
  }
});

for (const [unlogged, persistence] of [[true, "u"], [false, "p"]] as const) {
  pgTest(
    `unlogged: ${unlogged} creates the table with relpersistence '${persistence}'`,
    (db) =>
      onTable(db, async (open, table) => {
        const backend = await open({ unlogged });
        await backend.ready();
        const rows = await db.query(
          `SELECT relpersistence::text AS p FROM pg_class WHERE relname = $1`,
          [table],
        );
        assert.deepStrictEqual(rows.map((row) => row.p), [persistence]);
      }),
  );
}

pgTest(
  "the table is UNLOGGED by default",
  (db) =>
    onTable(db, async (open, table) => {
      await (await open()).ready();
      const rows = await db.query(
        `SELECT relpersistence::text AS p FROM pg_class WHERE relname = $1`,
        [table],
      );
      assert.deepStrictEqual(rows.map((row) => row.p), ["u"]);
    }),
);

pgTest(
  "a second backend on an existing table runs no DDL: one round trip to get ready",
  (db) =>
    onTable(db, async (open) => {
      const first = await open();
      await first.ready();
      assert.equal(first.roundTrips, 2, "existence check, then CREATE");
      const second = await open({ namespace: uniqueNamespace() });
      await second.ready();
      assert.equal(second.roundTrips, 1, "existence check only");
    }),
);

Deno.test({
  name:
    "PostgresBackend on real server: a role without CREATE privilege uses a table that exists",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const suffix = crypto.randomUUID().slice(0, 8);
    const role = `cachekit_nocreate_${suffix}`;
    const schema = `cachekit_ro_${suffix}`;
    const table = `${schema}.entries`;
    const roleUrl = new URL(DATABASE_URL!);
    roleUrl.username = role;
    roleUrl.password = "";
    const opened: PostgresBackend[] = [];
    const open = (dsn: string, options: Options = {}) => {
      const backend = new PostgresBackend({
        dsn,
        table,
        sweepInterval: 0,
        onError: quiet,
        maxSize: 2,
        ...options,
      });
      opened.push(backend);
      return backend;
    };
    await withServer(async (sql) => {
      await sql.unsafe(`CREATE ROLE ${role} LOGIN`);
      await sql.unsafe(`CREATE SCHEMA ${schema} AUTHORIZATION postgres`);
      await sql.unsafe(`GRANT USAGE ON SCHEMA ${schema} TO ${role}`);
    });
    try {
      const owner = open(DATABASE_URL!, { namespace: "shared" });
      await owner.set("k", "from the owner");
      await withServer((sql) =>
        sql.unsafe(
          `GRANT SELECT, INSERT, UPDATE, DELETE ON ${schema}.entries, ${schema}.entries_epochs TO ${role}`,
        )
      );
      const limited = open(roleUrl.href, { namespace: "shared" });
      await limited.ready();
      assert.equal(limited.roundTrips, 1, "no DDL was sent");
      assert.equal(await limited.get("k"), "from the owner");
      await limited.set("mine", [1, 2]);
      assert.deepStrictEqual(await owner.get("mine"), [1, 2]);
      assert.equal(await limited.delete("k"), true);
      assert.equal(await limited.sweep(), 0);
      // The control: this role really cannot create a table there.
      const denied = open(roleUrl.href, { table: `${schema}.other` });
      await assert.rejects(denied.ready(), /permission denied/);
    } finally {
      for (const backend of opened) await backend.close();
      await withServer(async (sql) => {
        await sql.unsafe(`DROP SCHEMA IF EXISTS ${schema} CASCADE`);
        await sql.unsafe(`DROP ROLE IF EXISTS ${role}`);
      });
    }
  },
});

pgTest(
  "8 backends creating one fresh table concurrently all succeed",
  (db) =>
    onTable(db, async (open, table) => {
      const backends = await Promise.all(
        Array.from({ length: 8 }, (_, i) => open({ namespace: `n${i}` })),
      );
      await Promise.all(backends.map((backend) => backend.ready()));
      await Promise.all(backends.map((backend, i) => backend.set("k", i)));
      for (const [i, backend] of backends.entries()) {
        assert.equal(await backend.get("k"), i);
      }
      assert.equal(await count(db, table), 8);
    }),
);

// ---------------------------------------------------------------------------
// Sweep

/** Moves the rows matching `where` past their stale window. */
function expireRows(db: Database, table: string, where: string) {
  return db.query(
    `UPDATE "${table}" SET expires_at = now() - interval '2 seconds',
      stale_until = now() - interval '1 second' WHERE ${where}`,
  );
}

/** A SqlDriver on `db` that records every statement and the rows it returned. */
async function recordingDriver(db: Database) {
  let sql: postgres.Sql | undefined;
  let inner: SqlDriver;
  if (db.name === "PGlite") inner = toSqlDriver(await pglite());
  else {
    sql = postgres(DATABASE_URL!, { max: 2, onnotice: quiet });
    inner = toSqlDriver(sql);
  }
  const log: { text: string; params: readonly unknown[]; rows: Row[] }[] = [];
  const driver: SqlDriver = {
    async query(text, params) {
      const rows = await inner.query(text, params);
      log.push({ text, params, rows });
      return rows;
    },
    close: () => Promise.resolve(),
  };
  return { driver, log, end: async () => await sql?.end({ timeout: 5 }) };
}

pgTest(
  "sweep() deletes only rows past stale_until, in batches of sweepBatchSize",
  (db) =>
    onTable(db, async (open, table) => {
      const recorder = await recordingDriver(db);
      const a = new PostgresBackend({
        client: recorder.driver,
        table,
        namespace: "a",
        sweepBatchSize: 2,
        sweepInterval: 0,
        onError: quiet,
      });
      try {
        const b = await open({ namespace: "b" });
        for (let i = 0; i < 3; i++) await a.set(`old${i}`, i, { expire: 60 });
        for (let i = 0; i < 2; i++) await b.set(`old${i}`, i, { expire: 60 });
        await a.set("fresh", 1, { expire: 60 });
        await b.set("forever", 2);
        await a.writeEntry("stale", { kind: 1, body: Uint8Array.of(1) }, {
          expire: 60,
          staleFor: 600,
        });
        await expireRows(db, table, "key LIKE 'old%'");
        await db.query(
          `UPDATE "${table}" SET expires_at = now() - interval '1 second'
            WHERE key = 'stale'`,
        );
        recorder.log.length = 0;
        assert.equal(await a.sweep(), 5, "every namespace's expired rows");
        const batches = recorder.log.filter((entry) =>
          entry.text.includes("stale_until <= now()") &&
          /^\s*(WITH|DELETE)/i.test(entry.text)
        );
        assert.deepStrictEqual(
          batches.map((entry) => [entry.params[0], Number(entry.rows[0].n)]),
          [[2, 2], [2, 2], [2, 1]],
          "statements of at most 2 rows each: 2, 2, then 1",
        );
        const left = await db.query(
          `SELECT namespace || ':' || key AS k FROM "${table}" ORDER BY 1`,
        );
        assert.deepStrictEqual(left.map((row) => row.k), [
          "a:fresh",
          "a:stale",
          "b:forever",
        ]);
        assert.equal(await a.sweep(), 0);
      } finally {
        await a.close();
        await recorder.end();
      }
    }),
);

pgTest(
  "two backends sweeping concurrently delete each expired row once in total",
  (db) =>
    onTable(db, async (open, table) => {
      const a = await open({ sweepBatchSize: 3 });
      const b = await open({ sweepBatchSize: 3 });
      await Promise.all(
        Array.from({ length: 40 }, (_, i) => a.set(`old${i}`, i)),
      );
      await Promise.all(
        Array.from({ length: 5 }, (_, i) => a.set(`new${i}`, i)),
      );
      await expireRows(db, table, "key LIKE 'old%'");
      const [x, y] = await Promise.all([a.sweep(), b.sweep()]);
      assert.equal(x + y, 40, `swept ${x} + ${y}`);
      assert.equal(await count(db, table), 5);
      assert.equal(await count(db, table, "key LIKE 'new%'"), 5);
    }),
);

pgTest(
  "the background sweep (sweepInterval) deletes expired rows by itself",
  (db) =>
    onTable(db, async (open, table) => {
      const writer = await open();
      await writer.set("old", 1);
      await writer.set("new", 2);
      await expireRows(db, table, "key = 'old'");
      await open({ sweepInterval: 0.05 });
      const deadline = Date.now() + 5000;
      while (await count(db, table) > 1 && Date.now() < deadline) {
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
      assert.deepStrictEqual(
        (await db.query(`SELECT key FROM "${table}"`)).map((row) => row.key),
        ["new"],
      );
    }),
);

// ---------------------------------------------------------------------------
// Round trips

pgTest(
  "after ready(), one get() is exactly one more round trip",
  (db) =>
    onTable(db, async (open) => {
      const backend = await open();
      await backend.ready();
      await backend.set("k", "v");
      let before = backend.roundTrips;
      assert.equal(await backend.get("k"), "v");
      assert.equal(backend.roundTrips - before, 1);
      before = backend.roundTrips;
      assert.equal(await backend.get("missing"), undefined);
      assert.equal(backend.roundTrips - before, 1);
    }),
);

pgTest(
  "10 get() calls made in one tick share one round trip",
  (db) =>
    onTable(db, async (open) => {
      const backend = await open();
      await backend.ready();
      for (let i = 0; i < 10; i += 2) await backend.set(`k${i}`, i);
      const before = backend.roundTrips;
      const values = await Promise.all(
        Array.from({ length: 10 }, (_, i) => backend.get(`k${i}`)),
      );
      assert.equal(backend.roundTrips - before, 1);
      assert.deepStrictEqual(
        values,
        Array.from({ length: 10 }, (_, i) => i % 2 === 0 ? i : undefined),
      );
    }),
);

// ---------------------------------------------------------------------------
// Drivers

Deno.test({
  name:
    "driver: a postgres.js Sql passed as client works, and close() leaves it open",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const table = uniqueTable("pg");
    const sql = postgres(DATABASE_URL!, { max: 3, onnotice: quiet });
    try {
      const backend = new PostgresBackend({
        client: sql,
        table,
        sweepInterval: 0,
      });
      try {
        const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
        await backend.set("bytes", bytes);
        const got = await backend.get("bytes");
        assert.equal(Object.getPrototypeOf(got), Uint8Array.prototype);
        assert.deepStrictEqual(got, bytes);
        const lock = await backend.lock("k");
        assert.equal(lock.acquired, true);
        await lock.release();
      } finally {
        await backend.close();
      }
      const [row] = await sql`SELECT 1 AS one`;
      assert.equal(row.one, 1);
    } finally {
      await sql.unsafe(dropTableSql(table)).simple();
      await sql.end({ timeout: 5 });
    }
  },
});

Deno.test(
  "driver: a PGlite instance passed as client works, and close() leaves it open",
  async () => {
    const db = await pglite();
    const table = uniqueTable("pg");
    const backend = new PostgresBackend({
      client: db,
      table,
      sweepInterval: 0,
    });
    try {
      await backend.set("k", { a: [1] });
      assert.deepStrictEqual(await backend.get("k"), { a: [1] });
    } finally {
      await backend.close();
    }
    assert.equal(db.closed, false);
    const { rows } = await db.query<{ n: number }>(
      `SELECT count(*)::int AS n FROM "${table}"`,
    );
    assert.equal(rows[0].n, 1);
    await db.query(`DROP TABLE "${table}"`);
  },
);

/**
 * A deno-postgres-shaped Pool: `connect()` gives a client with
 * `queryObject(text, args)` resolving to `{ rows }` and a synchronous
 * `release()`, and `end()` closes the pool. deno-postgres itself comes from
 * JSR, which is not reachable here, so this adapter is built on postgres.js
 * `sql.reserve()`. It is not a mock of PostgreSQL: every query runs on the
 * real server. What it exercises is our deno-postgres adapter
 * (toSqlDriver's DenoPostgresPool branch, its per-query connect/release and
 * its session()) against that contract.
 */
function denoPostgresPool(url: string) {
  const sql = postgres(url, { max: 4, onnotice: quiet });
  const state = { connects: 0, outstanding: 0, ended: false };
  const pool: DenoPostgresPool = {
    async connect() {
      const reserved = await sql.reserve();
      state.connects++;
      state.outstanding++;
      let released = false;
      return {
        async queryObject(text: string, args: unknown[] = []) {
          assert.equal(released, false, "queryObject after release()");
          return {
            rows: [...await reserved.unsafe(text, args as never[])],
          };
        },
        release() {
          // deno-postgres: release() must not be called twice.
          assert.equal(released, false, "release() called twice");
          released = true;
          state.outstanding--;
          reserved.release();
        },
      };
    },
    async end() {
      state.ended = true;
      await sql.end({ timeout: 5 });
    },
  };
  return { pool, state, end: () => sql.end({ timeout: 5 }) };
}

Deno.test({
  name:
    "driver: a deno-postgres-shaped Pool works (values, bytes, locks) and close() leaves it open",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const table = uniqueTable("pg");
    const { pool, state, end } = denoPostgresPool(DATABASE_URL!);
    const other = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      sweepInterval: 0,
    });
    try {
      const backend = new PostgresBackend({
        client: pool,
        table,
        sweepInterval: 0,
      });
      try {
        await backend.set("json", { a: [1, "b", null] }, { expire: 60 });
        assert.deepStrictEqual(await backend.get("json"), {
          a: [1, "b", null],
        });
        const bytes = Uint8Array.from({ length: 256 }, (_, i) => 255 - i);
        await backend.set("bytes", bytes);
        const got = await backend.get("bytes");
        assert.equal(Object.getPrototypeOf(got), Uint8Array.prototype);
        assert.deepStrictEqual(got, bytes);
        assert.equal(await other.get("json") !== undefined, true);
        assert.equal(await backend.delete("json"), true);
        assert.equal(await backend.has("json"), false);
        // Session-level locks on a connection of their own.
        const held = await backend.lock("k");
        assert.equal(held.acquired, true);
        const refused = await other.lock("k");
        assert.equal(refused.acquired, false);
        await held.release();
        const retaken = await other.lock("k");
        assert.equal(retaken.acquired, true);
        await retaken.release();
      } finally {
        await backend.close();
      }
      assert.ok(state.connects > 0);
      assert.equal(state.outstanding, 0, "every connection was released");
      assert.equal(state.ended, false, "close() did not end the pool");
      const client = await pool.connect();
      const { rows } = await client.queryObject("SELECT 1 AS one");
      client.release();
      assert.deepStrictEqual(rows, [{ one: 1 }]);
    } finally {
      await other.close();
      await end();
      await dropTable(table);
    }
  },
});

Deno.test(
  "driver: embedded { dataDir } keeps entries across a close and a new backend",
  async () => {
    const dataDir = await Deno.makeTempDir({ prefix: "cachekit_pglite_" });
    try {
      const first = new PostgresBackend({
        embedded: { dataDir },
        namespace: "myapp-cache",
        sweepInterval: 0,
      });
      try {
        await first.set("user:1", { name: "Ada" }, { expire: 3600 });
        await first.set("bytes", Uint8Array.of(0, 255));
      } finally {
        await first.close();
      }
      const second = new PostgresBackend({
        embedded: { dataDir },
        namespace: "myapp-cache",
        sweepInterval: 0,
      });
      try {
        await second.ready();
        assert.equal(second.roundTrips, 1, "the table existed: no DDL");
        assert.deepStrictEqual(await second.get("user:1"), { name: "Ada" });
        assert.deepStrictEqual(
          await second.get("bytes"),
          Uint8Array.of(0, 255),
        );
      } finally {
        await second.close();
      }
    } finally {
      await Deno.remove(dataDir, { recursive: true });
    }
  },
);
