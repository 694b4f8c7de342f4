/**
 * The small SQL interface {@linkcode PostgresBackend} runs on, and adapters
 * from the clients it accepts: postgres.js, deno-postgres and PGlite.
 *
 * @example Wrapping a postgres.js client
 * ```ts ignore
 * import postgres from "postgres";
 * import { toSqlDriver } from "@cachekit/hono/sql-driver";
 *
 * const driver = toSqlDriver(postgres(Deno.env.get("DATABASE_URL")!));
 * console.log(await driver.query("SELECT 1 AS one", []));
 * ```
 *
 * @module
 */
import { openPgSession, pgConfigOf } from "./_postgres/pg_session.ts";

/**
 * A row as a driver returns it: column names to values.
 *
 * @example Reading a count from rows
 * ```ts
 * import type { SqlRow } from "@cachekit/hono/sql-driver";
 * import assert from "node:assert/strict";
 *
 * // PostgreSQL's bigint comes back as a string from most drivers.
 * function count(rows: SqlRow[]): number {
 *   return Number(rows[0]?.n ?? 0);
 * }
 * assert.equal(count([{ n: "3" }]), 3);
 * assert.equal(count([]), 0);
 * ```
 */
export type SqlRow = Record<string, unknown>;

/**
 * One connection held apart from the pool, on which session-level advisory
 * locks are taken: they are released with the connection, so no lock
 * outlives its holder.
 *
 * @example Holding an advisory lock on one connection
 * ```ts ignore
 * import postgres from "postgres";
 * import { type SqlSession, toSqlDriver } from "@cachekit/hono/sql-driver";
 *
 * const driver = toSqlDriver(postgres(Deno.env.get("DATABASE_URL")!), true);
 * const session: SqlSession = await driver.session!();
 * try {
 *   await session.query("SELECT pg_advisory_lock($1)", [42]);
 *   // ... work that no other process may do at the same time ...
 *   await session.query("SELECT pg_advisory_unlock($1)", [42]);
 * } finally {
 *   session.release();
 * }
 * await driver.close();
 * ```
 */
export interface SqlSession {
  /** Runs `text` with `$1`-style `params` on this connection. */
  query(text: string, params: readonly unknown[]): Promise<SqlRow[]>;
  /** Returns the connection to its pool: only when it holds no lock. */
  release(): void;
  /**
   * Closes the connection instead of returning it: used when its locks are
   * unknown (a statement timed out or failed), so that PostgreSQL releases
   * them with the connection and no lock leaks into a pool.
   */
  close(): void;
}

/**
 * How one statement is run.
 *
 * @example Cancelling a statement that takes too long
 * ```ts
 * import type { QueryOptions, SqlDriver } from "@cachekit/hono/sql-driver";
 * import assert from "node:assert/strict";
 *
 * // A stand-in driver that answers once its signal aborts.
 * const driver: SqlDriver = {
 *   query: (_text, _params, options?: QueryOptions) =>
 *     new Promise((_, reject) =>
 *       options?.signal?.addEventListener("abort", () =>
 *         reject(new Error("canceled")))
 *     ),
 *   close: () => Promise.resolve(),
 * };
 * const controller = new AbortController();
 * const running = driver.query("SELECT pg_sleep(10)", [], {
 *   signal: controller.signal,
 * });
 * controller.abort();
 * await assert.rejects(running, /canceled/);
 * ```
 */
export interface QueryOptions {
  /**
   * Aborting it asks the server to cancel the statement; the query then
   * settles as the server answers (cancelled, or done before the cancel).
   */
  signal?: AbortSignal;
}

/**
 * What {@linkcode PostgresBackend} needs of a database connection: run one
 * parameterized statement and return its rows.
 *
 * @example A driver that wraps another and logs its statements
 * ```ts
 * import type { SqlDriver } from "@cachekit/hono/sql-driver";
 * import assert from "node:assert/strict";
 *
 * function logging(inner: SqlDriver, log: (text: string) => void): SqlDriver {
 *   return {
 *     query(text, params) {
 *       log(text);
 *       return inner.query(text, params);
 *     },
 *     session: inner.session?.bind(inner),
 *     listen: inner.listen?.bind(inner),
 *     close: () => inner.close(),
 *   };
 * }
 *
 * // A stand-in for a real driver, answering every statement with one row.
 * const stub: SqlDriver = {
 *   query: () => Promise.resolve([{ one: 1 }]),
 *   close: () => Promise.resolve(),
 * };
 * const seen: string[] = [];
 * const driver = logging(stub, (text) => seen.push(text));
 * assert.deepEqual(await driver.query("SELECT 1 AS one", []), [{ one: 1 }]);
 * assert.deepEqual(seen, ["SELECT 1 AS one"]);
 * // `new PostgresBackend({ client: driver })` would now log every statement.
 * ```
 */
export interface SqlDriver {
  /** Runs `text` with `$1`-style `params` and resolves to its rows. */
  query(
    text: string,
    params: readonly unknown[],
    options?: QueryOptions,
  ): Promise<SqlRow[]>;
  /**
   * Takes one connection for locks that must be held across statements.
   * Drivers without it (an embedded database, one process) coordinate in
   * process only.
   */
  session?(): Promise<SqlSession>;
  /**
   * Listens on a notification channel. `onListen` runs each time the
   * listening connection is (re)established: notifications sent while it
   * was down are lost. Resolves to a function that stops listening.
   */
  listen?(
    channel: string,
    onNotify: (payload: string) => void,
    onListen: () => void,
  ): Promise<() => Promise<void>>;
  /** Releases the connection source, if the driver owns it. */
  close(): Promise<void>;
}

/**
 * The part of a postgres.js `Sql` instance (`npm:postgres`) that is used.
 *
 * @example Sharing the app's postgres.js pool
 * ```ts ignore
 * import postgres from "postgres";
 * import { PostgresBackend } from "@cachekit/hono/postgres";
 * import type { PostgresJsClient } from "@cachekit/hono/sql-driver";
 *
 * const sql: PostgresJsClient = postgres(Deno.env.get("DATABASE_URL")!, {
 *   max: 10,
 * });
 * const backend = new PostgresBackend({ client: sql });
 * await backend.set("answer", 42);
 * await backend.close(); // leaves the pool open: it is the app's
 * await sql.end();
 * ```
 */
export interface PostgresJsClient {
  /** Runs a statement with parameters. */
  unsafe(
    query: string,
    parameters?: never[],
    options?: { prepare?: boolean },
  ): PromiseLike<readonly SqlRow[]> & { cancel?(): unknown };
  /**
   * Where the server is, as postgres.js resolved it: lock sessions open a
   * connection of their own there.
   */
  readonly options?: PostgresJsConnectionOptions;
  /** Listens on a channel, re-listening after reconnects. */
  listen?(
    channel: string,
    onNotify: (payload: string) => void,
    onListen?: () => void,
  ): Promise<{ unlisten(): Promise<void> }>;
  /** Closes every connection. */
  end(options?: { timeout?: number }): Promise<void>;
}

/**
 * Where a postgres.js client's server is, from its resolved `options`.
 *
 * @example Reading where a client connects
 * ```ts ignore
 * import postgres from "postgres";
 * import type { PostgresJsConnectionOptions } from "@cachekit/hono/sql-driver";
 *
 * const sql = postgres("postgres://postgres@127.0.0.1:5432/test");
 * const where: PostgresJsConnectionOptions = sql.options;
 * console.log(where.host, where.port, where.database); // [ "127.0.0.1" ] [ 5432 ] test
 * await sql.end();
 * ```
 */
export interface PostgresJsConnectionOptions {
  /** Host names, one per server. */
  readonly host?: readonly string[];
  /** Ports, one per host. */
  readonly port?: readonly number[];
  /** A Unix socket's path, or `false`. */
  readonly path?: string | false;
  /** The database. */
  readonly database?: string;
  /** The role. */
  readonly user?: string;
  /** The password, or a function that returns it. */
  readonly pass?: string | (() => string | Promise<string>) | null;
  /** TLS: a mode name, a boolean or TLS options. */
  readonly ssl?: unknown;
}

/**
 * The part of a deno-postgres `PoolClient` (`jsr:@db/postgres`) that is used.
 *
 * @example Querying through a deno-postgres client
 * ```ts ignore
 * import { Pool } from "jsr:@db/postgres";
 * import type { DenoPostgresPoolClient } from "@cachekit/hono/sql-driver";
 *
 * const pool = new Pool(Deno.env.get("DATABASE_URL")!, 4, true);
 * const client: DenoPostgresPoolClient = await pool.connect();
 * try {
 *   const { rows } = await client.queryObject("SELECT $1::int AS n", [1]);
 *   console.log(rows); // [ { n: 1 } ]
 * } finally {
 *   client.release();
 * }
 * await pool.end();
 * ```
 */
export interface DenoPostgresPoolClient {
  /** Runs a statement and returns its rows as objects. */
  queryObject(
    query: string,
    args?: unknown[],
  ): Promise<{ rows: unknown[] }>;
  /** Returns the client to its pool. */
  release(): void;
  /** Closes the client's connection. */
  end?(): Promise<void>;
}

/**
 * The part of a deno-postgres `Pool` (`jsr:@db/postgres`) that is used.
 *
 * @example Caching on a deno-postgres pool
 * ```ts ignore
 * import { Pool } from "jsr:@db/postgres";
 * import { PostgresBackend } from "@cachekit/hono/postgres";
 * import type { DenoPostgresPool } from "@cachekit/hono/sql-driver";
 *
 * const url = Deno.env.get("DATABASE_URL")!;
 * const pool: DenoPostgresPool = new Pool(url, 10, true);
 * const backend = new PostgresBackend({ client: pool });
 * await backend.set("answer", 42, { expire: 60 });
 * await backend.close(); // leaves the pool open: it is the app's
 * await pool.end();
 * ```
 */
export interface DenoPostgresPool {
  /** Takes a client from the pool. */
  connect(): Promise<DenoPostgresPoolClient>;
  /** Closes the pool. */
  end(): Promise<void>;
}

/**
 * The part of a PGlite instance (`npm:@electric-sql/pglite`) that is used.
 *
 * @example Caching on an existing PGlite database
 * ```ts ignore
 * import { PGlite } from "@electric-sql/pglite";
 * import { PostgresBackend } from "@cachekit/hono/postgres";
 * import type { PGliteClient } from "@cachekit/hono/sql-driver";
 *
 * const db: PGliteClient = new PGlite();
 * const backend = new PostgresBackend({ client: db });
 * await backend.set("answer", 42);
 * console.log(await backend.get("answer")); // 42
 * await backend.close(); // leaves the database open: it is the app's
 * await db.close();
 * ```
 */
export interface PGliteClient {
  /** Runs a statement with parameters. */
  query(query: string, params?: unknown[]): Promise<{ rows: unknown[] }>;
  /** Closes the database. */
  close(): Promise<void>;
  /** Resolves when the database is ready. */
  readonly waitReady: Promise<void>;
  /** Listens on a channel. */
  listen?(
    channel: string,
    callback: (payload: string) => void,
  ): Promise<() => Promise<void>>;
}

/**
 * Any connection source {@linkcode PostgresBackend} accepts as `client`.
 *
 * @example Adapting whatever client is given
 * ```ts
 * import { type PostgresClient, toSqlDriver } from "@cachekit/hono/sql-driver";
 * import assert from "node:assert/strict";
 *
 * // Any accepted source: a postgres.js Sql, a deno-postgres Pool, a PGlite
 * // instance, or, as here, a minimal SqlDriver.
 * const client: PostgresClient = {
 *   query: () => Promise.resolve([{ ok: true }]),
 *   close: () => Promise.resolve(),
 * };
 * const driver = toSqlDriver(client);
 * assert.deepEqual(await driver.query("SELECT true AS ok", []), [{ ok: true }]);
 * ```
 */
export type PostgresClient =
  | PostgresJsClient
  | DenoPostgresPool
  | PGliteClient
  | SqlDriver;

/**
 * How {@linkcode toSqlDriver} runs statements.
 *
 * @example Statements that a transaction-mode pooler can carry
 * ```ts
 * import {
 *   type SqlDriverOptions,
 *   toSqlDriver,
 * } from "@cachekit/hono/sql-driver";
 * import assert from "node:assert/strict";
 *
 * // Behind PgBouncer in transaction mode, a prepared statement would be
 * // missing on the next server connection.
 * const options: SqlDriverOptions = { prepare: false };
 * const driver = toSqlDriver({
 *   query: () => Promise.resolve([{ ok: true }]),
 *   close: () => Promise.resolve(),
 * }, false, options);
 * assert.deepEqual(await driver.query("SELECT true AS ok", []), [{ ok: true }]);
 * ```
 */
export interface SqlDriverOptions {
  /**
   * Whether postgres.js prepares named statements, once per connection.
   * `false` behind a transaction-mode pooler: every statement is parsed
   * unnamed, in the transaction that runs it. Other clients are not
   * changed.
   *
   * @default {true}
   */
  prepare?: boolean;
}

function isPostgresJs(client: PostgresClient): client is PostgresJsClient {
  return typeof (client as PostgresJsClient).unsafe === "function";
}

function isDenoPostgresPool(
  client: PostgresClient,
): client is DenoPostgresPool {
  return typeof (client as DenoPostgresPool).connect === "function" &&
    typeof (client as DenoPostgresPool).end === "function";
}

function isPGlite(client: PostgresClient): client is PGliteClient {
  return typeof (client as PGliteClient).query === "function" &&
    "waitReady" in client;
}

function isSqlDriver(client: PostgresClient): client is SqlDriver {
  return typeof (client as SqlDriver).query === "function" &&
    typeof (client as SqlDriver).close === "function";
}

/**
 * Adapts a postgres.js `Sql`, a deno-postgres `Pool`, a PGlite instance or a
 * {@linkcode SqlDriver} to a {@linkcode SqlDriver}.
 *
 * @param client The connection source.
 * @param owned Whether `close()` closes the client too.
 * @param options How statements are run.
 * @returns The driver.
 * @throws {TypeError} If `client` is none of the accepted kinds.
 *
 * @example Adapting a PGlite instance
 * ```ts ignore
 * import { PGlite } from "@electric-sql/pglite";
 * import { toSqlDriver } from "@cachekit/hono/sql-driver";
 *
 * const driver = toSqlDriver(new PGlite(), true);
 * console.log(await driver.query("SELECT $1::int AS n", [1]));
 * await driver.close();
 * ```
 */
export function toSqlDriver(
  client: PostgresClient,
  owned = false,
  options?: SqlDriverOptions,
): SqlDriver {
  const prepare = options?.prepare ?? true;
  if (client === null || typeof client !== "object" && !isFunction(client)) {
    throw new TypeError(
      `Cannot use client: expected a postgres.js Sql, a deno-postgres Pool, a PGlite instance or a SqlDriver: received ${client}`,
    );
  }
  if (isPostgresJs(client)) {
    const lockConfig = pgConfigOf(client.options);
    return {
      async query(text, params, run) {
        const pending = client.unsafe(text, params as never[], { prepare });
        const cancel = () => void pending.cancel?.();
        run?.signal?.addEventListener("abort", cancel, { once: true });
        try {
          return [...await pending];
        } finally {
          run?.signal?.removeEventListener("abort", cancel);
        }
      },
      // Not `sql.reserve()`: see _pg_session.ts.
      session: lockConfig ? () => openPgSession(lockConfig) : undefined,
      listen: client.listen
        ? async (channel, onNotify, onListen) => {
          const listener = await client.listen!(channel, onNotify, onListen);
          return () => listener.unlisten();
        }
        : undefined,
      close: () => owned ? client.end({ timeout: 1 }) : Promise.resolve(),
    };
  }
  if (isPGlite(client)) {
    return {
      async query(text, params) {
        return (await client.query(text, [...params])).rows as SqlRow[];
      },
      listen: client.listen
        ? async (channel, onNotify, onListen) => {
          const unlisten = await client.listen!(channel, onNotify);
          onListen();
          return unlisten;
        }
        : undefined,
      close: () => owned ? client.close() : Promise.resolve(),
    };
  }
  if (isDenoPostgresPool(client)) {
    return {
      async query(text, params) {
        const connection = await client.connect();
        try {
          return (await connection.queryObject(text, [...params]))
            .rows as SqlRow[];
        } finally {
          connection.release();
        }
      },
      async session() {
        const connection = await client.connect();
        return {
          async query(text, params) {
            return (await connection.queryObject(text, [...params]))
              .rows as SqlRow[];
          },
          release: () => connection.release(),
          close() {
            // Its locks go with the connection; the pool opens a new one.
            void (connection.end?.() ?? Promise.resolve())
              .catch(() => {})
              .finally(() => connection.release());
          },
        };
      },
      close: () => owned ? client.end() : Promise.resolve(),
    };
  }
  if (isSqlDriver(client)) {
    return {
      query: (text, params) => client.query(text, params),
      session: client.session?.bind(client),
      listen: client.listen?.bind(client),
      close: () => owned ? client.close() : Promise.resolve(),
    };
  }
  throw new TypeError(
    "Cannot use client: expected a postgres.js Sql, a deno-postgres Pool, a PGlite instance or a SqlDriver: received an object with none of their methods",
  );
}

function isFunction(value: unknown): boolean {
  return typeof value === "function";
}
