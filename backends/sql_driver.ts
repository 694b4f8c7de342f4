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

/** A row as a driver returns it: column names to values. */
export type SqlRow = Record<string, unknown>;

/**
 * One connection held apart from the pool, on which session-level advisory
 * locks are taken: they are released with the connection, so no lock
 * outlives its holder.
 */
export interface SqlSession {
  /** Runs `text` with `$1`-style `params` on this connection. */
  query(text: string, params: readonly unknown[]): Promise<SqlRow[]>;
  /** Returns the connection to its pool. */
  release(): void;
}

/**
 * What {@linkcode PostgresBackend} needs of a database connection: run one
 * parameterized statement and return its rows.
 */
export interface SqlDriver {
  /** Runs `text` with `$1`-style `params` and resolves to its rows. */
  query(text: string, params: readonly unknown[]): Promise<SqlRow[]>;
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

/** The part of a postgres.js `Sql` instance (`npm:postgres`) that is used. */
export interface PostgresJsClient {
  /** Runs a statement with parameters. */
  unsafe(
    query: string,
    parameters?: never[],
    options?: { prepare?: boolean },
  ): PromiseLike<readonly SqlRow[]>;
  /** Takes a connection out of the pool until `release()`. */
  reserve?(): Promise<PostgresJsReserved>;
  /** Listens on a channel, re-listening after reconnects. */
  listen?(
    channel: string,
    onNotify: (payload: string) => void,
    onListen?: () => void,
  ): Promise<{ unlisten(): Promise<void> }>;
  /** Closes every connection. */
  end(options?: { timeout?: number }): Promise<void>;
}

/** A postgres.js connection reserved from its pool. */
export interface PostgresJsReserved {
  /** Runs a statement with parameters on this connection. */
  unsafe(
    query: string,
    parameters?: never[],
    options?: { prepare?: boolean },
  ): PromiseLike<readonly SqlRow[]>;
  /** Returns the connection to the pool. */
  release(): void;
}

/** The part of a deno-postgres `PoolClient` (`jsr:@db/postgres`) that is used. */
export interface DenoPostgresPoolClient {
  /** Runs a statement and returns its rows as objects. */
  queryObject(
    query: string,
    args?: unknown[],
  ): Promise<{ rows: unknown[] }>;
  /** Returns the client to its pool. */
  release(): void;
}

/** The part of a deno-postgres `Pool` (`jsr:@db/postgres`) that is used. */
export interface DenoPostgresPool {
  /** Takes a client from the pool. */
  connect(): Promise<DenoPostgresPoolClient>;
  /** Closes the pool. */
  end(): Promise<void>;
}

/** The part of a PGlite instance (`npm:@electric-sql/pglite`) that is used. */
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

/** Any connection source {@linkcode PostgresBackend} accepts as `client`. */
export type PostgresClient =
  | PostgresJsClient
  | DenoPostgresPool
  | PGliteClient
  | SqlDriver;

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
): SqlDriver {
  if (client === null || typeof client !== "object" && !isFunction(client)) {
    throw new TypeError(
      `Cannot use client: expected a postgres.js Sql, a deno-postgres Pool, a PGlite instance or a SqlDriver: received ${client}`,
    );
  }
  if (isPostgresJs(client)) {
    return {
      async query(text, params) {
        return [
          ...await client.unsafe(text, params as never[], { prepare: true }),
        ];
      },
      session: client.reserve
        ? async () => {
          const reserved = await client.reserve!();
          return {
            async query(text, params) {
              return [
                ...await reserved.unsafe(text, params as never[], {
                  prepare: true,
                }),
              ];
            },
            release: () => reserved.release(),
          };
        }
        : undefined,
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
