/**
 * A cache backend that stores entries in a PostgreSQL table, shared by every
 * process that uses the same database. It runs on postgres.js (`dsn`), on a
 * client you pass (postgres.js, deno-postgres, PGlite), or on an embedded
 * PGlite database (`embedded`).
 *
 * @example Connecting with a DSN
 * ```ts ignore
 * import { PostgresBackend } from "@cachekit/hono/postgres";
 *
 * const backend = new PostgresBackend({
 *   dsn: "postgresql://user:password@localhost:5432/mydb",
 *   namespace: "myapp-cache",
 * });
 * await backend.set("answer", 42, { expire: 60 });
 * console.log(await backend.get("answer")); // 42
 * await backend.close();
 * ```
 *
 * @module
 */
import postgres from "postgres";
import { decodeValue, encodeValue } from "../core/entry.ts";
import { Batcher } from "./_batch.ts";
import {
  checkEntry,
  checkEtags,
  checkKey,
  checkNamespace,
  checkTags,
  utf8Length,
  type WriteTerms,
  writeTerms,
} from "./_validate.ts";
import { zeroCounters } from "./_stats.ts";
import { toBytes } from "./_postgres/rows.ts";
import { CircuitBreaker } from "./_breaker.ts";
import { fnv1a, LocalTier } from "./_local.ts";
import { burstLogger, report } from "../core/report.ts";
import { deadline, unrefTimer } from "../core/time.ts";
import {
  LIST_SEPARATOR,
  parseTableName,
  type PurgeMode,
  type Statements,
  statements,
} from "./_sql.ts";
import {
  type PostgresClient,
  type SqlDriver,
  type SqlSession,
  toSqlDriver,
} from "./sql_driver.ts";
import type {
  CacheBackend,
  CacheEntry,
  CacheErrorHandler,
  CacheStats,
  CacheValue,
  EntryKind,
  EntryLookup,
  KeyLock,
  ReadEntryOptions,
  SetOptions,
  StoredEntry,
  TransactionOptions,
  WriteEntryOptions,
} from "./types.ts";

export type { TransactionOptions };

/**
 * Entries and bytes of one namespace of a table, from {@linkcode PostgresBackend.tableStats}.
 *
 * @example Listing the namespaces of the table
 * ```ts ignore
 * import {
 *   type NamespaceStats,
 *   PostgresBackend,
 * } from "@cachekit/hono/postgres";
 *
 * const backend = new PostgresBackend({ dsn: Deno.env.get("DATABASE_URL")! });
 * const rows: NamespaceStats[] = await backend.tableStats();
 * for (const { namespace, entries, bytes, expired } of rows) {
 *   console.log(namespace, { entries, bytes, expired });
 * }
 * await backend.close();
 * ```
 */
export interface NamespaceStats {
  /** The namespace. */
  namespace: string;
  /** Its entries, expired ones included. */
  entries: number;
  /** Bytes of its values. */
  bytes: number;
  /** Its entries past their stale window, waiting for a sweep. */
  expired: number;
}

/**
 * Options of the in-process tier in front of PostgreSQL.
 *
 * @example An in-process tier in front of the table
 * ```ts ignore
 * import {
 *   type LocalCacheOptions,
 *   PostgresBackend,
 * } from "@cachekit/hono/postgres";
 *
 * // Every instance sharing the namespace enables it, so they all hear the
 * // announcements of the others' writes.
 * const localCache: LocalCacheOptions = { maxEntries: 5000, maxAge: 10 };
 * const backend = new PostgresBackend({
 *   dsn: Deno.env.get("DATABASE_URL")!,
 *   localCache,
 * });
 * ```
 */
export interface LocalCacheOptions {
  /**
   * The most entries kept in this process (least recently used evicted).
   *
   * @default {1000}
   */
  maxEntries?: number;
  /**
   * The most bytes kept in this process (bodies, keys and metadata,
   * roughly; least recently used evicted). An entry larger than it alone is
   * not kept here.
   *
   * @default {67108864}
   */
  maxBytes?: number;
  /**
   * The most seconds an entry is served from this process without asking
   * the database, whatever its own lifetime: a bound on staleness should a
   * notification be lost.
   *
   * @default {60}
   */
  maxAge?: number;
}

/**
 * Options of an embedded PGlite database.
 *
 * @example An embedded database kept on disk
 * ```ts ignore
 * import {
 *   type EmbeddedOptions,
 *   PostgresBackend,
 * } from "@cachekit/hono/postgres";
 *
 * const embedded: EmbeddedOptions = { dataDir: "./.cache/pglite" };
 * const backend = new PostgresBackend({ embedded, namespace: "myapp-cache" });
 * await backend.set("answer", 42);
 * await backend.close(); // the entry is still there after a restart
 * ```
 */
export interface EmbeddedOptions {
  /**
   * A directory to keep the database in, so entries survive restarts. Without
   * it the database lives in memory.
   *
   * @default {undefined} in memory
   */
  dataDir?: string;
}

/**
 * Options of {@linkcode PostgresBackend}. Exactly one of `dsn`, `client` and `embedded` is given.
 *
 * @example Bounds, timeouts and error reporting
 * ```ts ignore
 * import {
 *   PostgresBackend,
 *   type PostgresBackendOptions,
 * } from "@cachekit/hono/postgres";
 *
 * const options: PostgresBackendOptions = {
 *   dsn: Deno.env.get("DATABASE_URL")!,
 *   namespace: "myapp-cache",
 *   maxSize: 20,
 *   maxEntries: 50_000,
 *   maxBytes: 64 * 1024 * 1024,
 *   queryTimeout: 250,
 *   onError: (error, { operation }) =>
 *     console.warn(`cache ${operation} failed:`, error),
 * };
 * const backend = new PostgresBackend(options);
 * await backend.ready();
 * ```
 */
export interface PostgresBackendOptions {
  /**
   * A PostgreSQL connection string (`postgres://` or `postgresql://`). The
   * backend builds and owns a postgres.js pool for it.
   */
  dsn?: string;
  /**
   * An existing connection source: a postgres.js `Sql`, a deno-postgres
   * `Pool`, a PGlite instance or a {@linkcode SqlDriver}. The backend does
   * not close it.
   */
  client?: PostgresClient;
  /**
   * Runs on an embedded PGlite database, loaded only when this is set:
   * `true` keeps it in memory, `{ dataDir }` on disk.
   */
  embedded?: true | EmbeddedOptions;
  /**
   * The namespace of every key. Any non-empty string: it is stored as data,
   * never pasted into SQL.
   *
   * @default {"hono_cache"}
   */
  namespace?: string;
  /**
   * The table of entries, `name` or `schema.name`, created on first use.
   *
   * @default {"cachekit_entries"}
   */
  table?: string;
  /**
   * Whether the table is created UNLOGGED: faster writes, but its contents
   * are lost on a database crash and are not replicated to standbys.
   *
   * @default {true}
   */
  unlogged?: boolean;
  /**
   * Connections opened at start with `dsn`, so first requests do not wait
   * for connecting.
   *
   * @default {1}
   */
  minSize?: number;
  /**
   * The most connections of the pool built for `dsn`.
   *
   * @default {10}
   */
  maxSize?: number;
  /**
   * The most entries kept in the namespace; beyond it the oldest are
   * evicted, in small batches triggered by writes.
   *
   * @default {100000}
   */
  maxEntries?: number;
  /**
   * The most bytes of values kept in the namespace; beyond it the oldest
   * entries are evicted.
   *
   * @default {268435456} (256 MiB)
   */
  maxBytes?: number;
  /**
   * An in-process tier in front of PostgreSQL. Every instance that sharing
   * the namespace must enable it: writes, deletes, tag purges and clears are
   * announced with NOTIFY, and every instance drops its local copy on the
   * announcement. After the listening connection reconnects, all local
   * copies are dropped. Needs a driver that can LISTEN (postgres.js,
   * PGlite).
   *
   * @default {undefined} no local tier
   */
  localCache?: LocalCacheOptions;
  /**
   * The most writes waiting to be sent; further writes are dropped (and
   * counted in `stats().droppedWrites`) so that memory stays bounded when the
   * database is slow.
   *
   * @default {1000}
   */
  maxQueuedWrites?: number;
  /**
   * The most lookups (and writes) combined into one query: lookups that arrive while a
   * query is in flight, or in the same tick, share a round trip.
   *
   * @default {64}
   */
  maxBatchSize?: number;
  /**
   * Seconds between sweeps of expired rows; `0` turns the background sweep
   * off (call {@linkcode PostgresBackend.sweep} yourself).
   *
   * @default {60}
   */
  sweepInterval?: number;
  /**
   * The most rows one sweep statement deletes.
   *
   * @default {1000}
   */
  sweepBatchSize?: number;
  /**
   * Milliseconds a cache query may take before it is abandoned and the
   * request goes on without the cache.
   *
   * @default {1000}
   */
  queryTimeout?: number;
  /**
   * Milliseconds to wait for the first connection and the table before
   * requests go on without the cache.
   *
   * @default {5000}
   */
  connectTimeout?: number;
  /**
   * Consecutive failed queries after which the circuit opens: queries then
   * fail at once, without touching the database, for `breakerCooldown`.
   *
   * @default {5}
   */
  breakerThreshold?: number;
  /**
   * Milliseconds the open circuit waits before one probe query is let
   * through; its success closes the circuit.
   *
   * @default {1000}
   */
  breakerCooldown?: number;
  /**
   * The clock of the circuit breaker, in milliseconds. Tests inject one.
   *
   * @default {Date.now}
   */
  now?: () => number;
  /**
   * Receives errors of background work (warm-up, sweeps).
   *
   * @default {console.error, once per burst}
   */
  onError?: CacheErrorHandler;
}

/**
 * The error a write rejects with when the write queue is full: it was dropped.
 *
 * @example Leaving dropped writes out of the error log
 * ```ts
 * import { CacheQueueFullError } from "@cachekit/hono/postgres";
 * import type { CacheErrorHandler } from "@cachekit/hono/types";
 * import assert from "node:assert/strict";
 *
 * const logged: unknown[] = [];
 * // Dropped writes are counted in `stats().droppedWrites`: no need to log them.
 * const onError: CacheErrorHandler = (error) => {
 *   if (!(error instanceof CacheQueueFullError)) logged.push(error);
 * };
 *
 * onError(new CacheQueueFullError(1000), {
 *   operation: "writeEntry",
 *   namespace: "hono_cache",
 * });
 * assert.equal(logged.length, 0);
 * ```
 */
export class CacheQueueFullError extends Error {
  /**
   * Creates the error.
   *
   * @param limit The queue's bound.
   *
   * @example Telling a dropped write apart
   * ```ts
   * import { CacheQueueFullError } from "@cachekit/hono/postgres";
   *
   * const error: unknown = new CacheQueueFullError(1000);
   * console.log(error instanceof CacheQueueFullError); // true
   * ```
   */
  constructor(limit: number) {
    super(`Cache write dropped: ${limit} writes are already queued`);
    this.name = "CacheQueueFullError";
  }
}

/**
 * The error a cache query rejects with while the circuit breaker is open.
 *
 * @example Logging only the failures that open the circuit
 * ```ts
 * import { CacheUnavailableError } from "@cachekit/hono/postgres";
 * import type { CacheErrorHandler } from "@cachekit/hono/types";
 * import assert from "node:assert/strict";
 *
 * const logged: unknown[] = [];
 * // While the circuit is open, every query is refused at once: the failures
 * // that opened it were already reported.
 * const onError: CacheErrorHandler = (error) => {
 *   if (!(error instanceof CacheUnavailableError)) logged.push(error);
 * };
 *
 * onError(new CacheUnavailableError("readEntry"), {
 *   operation: "readEntry",
 *   namespace: "hono_cache",
 *   key: "k",
 * });
 * assert.equal(logged.length, 0);
 * ```
 */
export class CacheUnavailableError extends Error {
  /**
   * Creates the error.
   *
   * @param operation What was refused.
   *
   * @example Telling an open circuit apart
   * ```ts
   * import { CacheUnavailableError } from "@cachekit/hono/postgres";
   *
   * const error: unknown = new CacheUnavailableError("readEntry");
   * console.log(error instanceof CacheUnavailableError); // true
   * ```
   */
  constructor(operation: string) {
    super(
      `Cache ${operation} skipped: the database failed repeatedly and the circuit is open`,
    );
    this.name = "CacheUnavailableError";
  }
}

/**
 * The error a cache query rejects with when it outlives its timeout.
 *
 * @example Counting timeouts apart from other failures
 * ```ts
 * import { CacheTimeoutError } from "@cachekit/hono/postgres";
 * import type { CacheErrorHandler } from "@cachekit/hono/types";
 * import assert from "node:assert/strict";
 *
 * let timeouts = 0;
 * const onError: CacheErrorHandler = (error, { operation }) => {
 *   if (error instanceof CacheTimeoutError) timeouts++;
 *   else console.error(`cache ${operation} failed:`, error);
 * };
 *
 * onError(new CacheTimeoutError("readEntry", 1000), {
 *   operation: "readEntry",
 *   namespace: "hono_cache",
 * });
 * assert.equal(timeouts, 1);
 * ```
 */
export class CacheTimeoutError extends Error {
  /**
   * Creates the error.
   *
   * @param operation What timed out.
   * @param ms The limit that was exceeded.
   *
   * @example Telling timeouts apart
   * ```ts
   * import { CacheTimeoutError } from "@cachekit/hono/postgres";
   *
   * const error: unknown = new CacheTimeoutError("readEntry", 1000);
   * console.log(error instanceof CacheTimeoutError); // true
   * ```
   */
  constructor(operation: string, ms: number) {
    super(`Cache ${operation} timed out after ${ms} ms`);
    this.name = "CacheTimeoutError";
  }
}

/**
 * The error a change (a write, delete or purge) rejects with when it timed
 * out, was cancelled, and the database did not say in time whether it had
 * committed first: the change may or may not have taken effect. A change
 * that rejects with {@linkcode CacheTimeoutError} instead did not commit.
 *
 * @example Retrying a purge whose outcome is unknown
 * ```ts
 * import { CacheOutcomeUnknownError } from "@cachekit/hono/postgres";
 * import assert from "node:assert/strict";
 *
 * let attempts = 0;
 * async function purge(): Promise<void> {
 *   attempts++;
 *   if (attempts === 1) throw new CacheOutcomeUnknownError("invalidateTags");
 * }
 * // A purge is safe to repeat.
 * for (;;) {
 *   try {
 *     await purge();
 *     break;
 *   } catch (error) {
 *     if (!(error instanceof CacheOutcomeUnknownError)) throw error;
 *   }
 * }
 * assert.equal(attempts, 2);
 * ```
 */
export class CacheOutcomeUnknownError extends Error {
  /**
   * Creates the error.
   *
   * @param operation The change whose outcome is unknown.
   * @param options The error that left it unknown, as `cause`.
   *
   * @example Telling an unknown outcome apart
   * ```ts
   * import { CacheOutcomeUnknownError } from "@cachekit/hono/postgres";
   *
   * const error: unknown = new CacheOutcomeUnknownError("writeEntry");
   * console.log(error instanceof CacheOutcomeUnknownError); // true
   * ```
   */
  constructor(operation: string, options?: ErrorOptions) {
    super(
      `Cache ${operation} timed out, and whether it committed is unknown`,
      options,
    );
    this.name = "CacheOutcomeUnknownError";
  }
}

function positiveInteger(name: string, value: unknown): number {
  if (!Number.isInteger(value) || (value as number) < 1) {
    throw new RangeError(
      `Cannot create PostgresBackend: ${name} must be a positive integer: received ${value}`,
    );
  }
  return value as number;
}

function nonNegativeNumber(name: string, value: unknown): number {
  if (
    typeof value !== "number" || !Number.isFinite(value) || value < 0
  ) {
    throw new RangeError(
      `Cannot create PostgresBackend: ${name} must be a non-negative number: received ${value}`,
    );
  }
  return value;
}

function checkDsn(dsn: unknown): string {
  let url: URL | undefined;
  try {
    url = new URL(String(dsn));
  } catch {
    url = undefined;
  }
  if (
    typeof dsn !== "string" || !url ||
    (url.protocol !== "postgres:" && url.protocol !== "postgresql:")
  ) {
    throw new TypeError(
      `Cannot create PostgresBackend: dsn must be a postgres:// or postgresql:// URL: received ${
        typeof dsn === "string" ? "a malformed string" : typeof dsn
      }`,
    );
  }
  return dsn;
}

async function openEmbedded(options: EmbeddedOptions): Promise<SqlDriver> {
  const { PGlite } = await import("@electric-sql/pglite");
  const db = new PGlite(options.dataDir);
  await db.waitReady;
  return toSqlDriver(db, true);
}

/**
 * A cache backend on a PostgreSQL table, shared by every process on the same
 * database. Expiry is decided by the database clock inside each read;
 * expired rows are removed by a background sweep that runs on one instance
 * at a time, in bounded batches.
 *
 * @example The seed's set-up, on an embedded database
 * ```ts ignore
 * import { PostgresBackend } from "@cachekit/hono/postgres";
 *
 * const backend = new PostgresBackend({ embedded: true, namespace: "myapp-cache" });
 * await backend.set("user:1", { name: "Ada" }, { expire: 120 });
 * console.log(await backend.get("user:1"));
 * await backend.close();
 * ```
 */
export class PostgresBackend implements CacheBackend {
  /** The namespace every key of this backend lives under. */
  readonly namespace: string;
  #sql: Statements;
  #tableName: string;
  #driver: Promise<SqlDriver>;
  #ready: Promise<SqlDriver> | undefined;
  #queryTimeout: number;
  #connectTimeout: number;
  #sweepBatchSize: number;
  #onError: CacheErrorHandler;
  #sweepTimer: ReturnType<typeof setInterval> | undefined;
  #sweeping: Promise<number> | undefined;
  #closed: Promise<void> | undefined;
  #roundTrips = 0;
  #breaker: CircuitBreaker;
  #session: Promise<SqlSession> | undefined;
  #maxEntries: number;
  #maxBytes: number;
  #evictEvery: number;
  #evictBatch: number;
  #writesSinceEvict = 0;
  #bytesSinceEvict = 0;
  #evictAgain = false;
  #vacuum = true;
  #shut = false;
  /** The namespace's size: as last counted, plus this process's writes since. */
  #sizes = { entries: 0, bytes: 0 };
  #releases = new Set<Promise<void>>();
  #pendingWrites = new Set<Promise<void>>();
  #waitingWrites = 0;
  #evicting: Promise<void> | undefined;
  #counters = zeroCounters();
  #maxBatchSize: number;
  #reads: Batcher<Lookup, Row | undefined>;
  #writes: Batcher<Write, void>;
  #maxQueuedWrites: number;
  #local: LocalTier | undefined;
  #channel: string;
  #unlisten: Promise<(() => Promise<void>) | undefined> | undefined;

  /**
   * Creates the backend. It does not wait for the database: connecting and
   * creating the table start in the background, and an unreachable database
   * neither blocks nor throws here.
   *
   * @param options Where the database is, and how to use it.
   * @throws {TypeError} If not exactly one of `dsn`, `client` and `embedded`
   * is given, or `dsn`, `namespace` or `table` is malformed.
   * @throws {RangeError} If a size, interval or timeout is out of range, or
   * `minSize` exceeds `maxSize`.
   */
  constructor(options: PostgresBackendOptions) {
    const given = (["dsn", "client", "embedded"] as const).filter((name) =>
      options?.[name] !== undefined
    );
    if (given.length !== 1) {
      throw new TypeError(
        `Cannot create PostgresBackend: exactly one of dsn, client and embedded must be given: received ${
          given.length === 0 ? "none" : given.join(", ")
        }`,
      );
    }
    this.namespace = checkNamespace(
      "PostgresBackend",
      options.namespace ?? "hono_cache",
    );
    const parts = parseTableName(options.table ?? "cachekit_entries");
    this.#tableName = parts.join(".");
    this.#sql = statements(parts, options.unlogged ?? true, this.namespace);
    const minSize = positiveInteger("minSize", options.minSize ?? 1);
    const maxSize = positiveInteger("maxSize", options.maxSize ?? 10);
    if (minSize > maxSize) {
      throw new RangeError(
        `Cannot create PostgresBackend: minSize must not exceed maxSize: received minSize ${minSize} and maxSize ${maxSize}`,
      );
    }
    const sweepInterval = nonNegativeNumber(
      "sweepInterval",
      options.sweepInterval ?? 60,
    );
    this.#sweepBatchSize = positiveInteger(
      "sweepBatchSize",
      options.sweepBatchSize ?? 1000,
    );
    this.#queryTimeout = positiveInteger(
      "queryTimeout",
      options.queryTimeout ?? 1000,
    );
    this.#connectTimeout = positiveInteger(
      "connectTimeout",
      options.connectTimeout ?? 5000,
    );
    this.#maxEntries = positiveInteger(
      "maxEntries",
      options.maxEntries ?? 100_000,
    );
    this.#maxBytes = positiveInteger("maxBytes", options.maxBytes ?? 2 ** 28);
    // Check the bounds every 5% of maxEntries writes, so that the namespace
    // overshoots by at most about that much.
    this.#evictEvery = Math.max(
      1,
      Math.min(1000, Math.floor(this.#maxEntries / 20)),
    );
    this.#evictBatch = Math.max(100, this.#evictEvery * 4);
    this.#maxBatchSize = positiveInteger(
      "maxBatchSize",
      options.maxBatchSize ?? 64,
    );
    const maxInflight = options.dsn !== undefined ? Math.min(2, maxSize) : 1;
    this.#reads = new Batcher(
      (batch) => this.#readBatch(batch),
      this.#maxBatchSize,
      maxInflight,
    );
    this.#writes = new Batcher(
      (batch) => this.#writeBatch(batch),
      this.#maxBatchSize,
      maxInflight,
    );
    this.#maxQueuedWrites = positiveInteger(
      "maxQueuedWrites",
      options.maxQueuedWrites ?? 1000,
    );
    this.#channel = `cachekit_${fnv1a(this.#tableName)}`;
    if (options.localCache !== undefined) {
      const local = options.localCache;
      if (typeof local !== "object" || local === null) {
        throw new TypeError(
          `Cannot create PostgresBackend: localCache must be an object: received ${local}`,
        );
      }
      this.#local = new LocalTier(
        positiveInteger("localCache.maxEntries", local.maxEntries ?? 1000),
        positiveInteger("localCache.maxBytes", local.maxBytes ?? 2 ** 26),
        nonNegativeNumber("localCache.maxAge", local.maxAge ?? 60) * 1000,
      );
    }
    this.#breaker = new CircuitBreaker(
      positiveInteger("breakerThreshold", options.breakerThreshold ?? 5),
      nonNegativeNumber("breakerCooldown", options.breakerCooldown ?? 1000),
      options.now ?? Date.now,
    );
    this.#onError = options.onError ?? burstLogger();
    if (typeof this.#onError !== "function") {
      throw new TypeError(
        `Cannot create PostgresBackend: onError must be a function: received ${typeof this
          .#onError}`,
      );
    }

    if (options.dsn !== undefined) {
      const sql = postgres(checkDsn(options.dsn), {
        max: maxSize,
        prepare: true,
        onnotice: () => {},
        connect_timeout: Math.ceil(this.#connectTimeout / 1000),
        idle_timeout: 300,
      });
      this.#driver = Promise.resolve(toSqlDriver(sql, true));
      this.#warm(minSize);
    } else if (options.client !== undefined) {
      this.#driver = Promise.resolve(toSqlDriver(options.client));
    } else {
      const embedded = options.embedded === true ? {} : options.embedded;
      if (typeof embedded !== "object" || embedded === null) {
        throw new TypeError(
          `Cannot create PostgresBackend: embedded must be true or { dataDir }: received ${embedded}`,
        );
      }
      this.#driver = openEmbedded(embedded);
    }
    // Keep a failed start from becoming an unhandled rejection; requests see
    // the error through #connection() and go on without the cache.
    this.#driver.catch((error) =>
      report(this.#onError, error, this.#context("connect"))
    );
    void this.#connection().catch(() => {});
    if (this.#local) {
      const local = this.#local;
      this.#unlisten = this.#driver.then(async (driver) => {
        if (!driver.listen) {
          throw new TypeError(
            "Cannot use localCache: the client cannot LISTEN; use postgres.js or PGlite",
          );
        }
        return await driver.listen(
          this.#channel,
          (payload) => this.#onNotify(payload),
          () => local.reset(true),
        );
      });
      this.#unlisten.catch((error) =>
        report(this.#onError, error, this.#context("listen"))
      );
    }
    if (sweepInterval > 0) {
      this.#sweepTimer = setInterval(() => {
        this.#sweeping ??= this.sweep()
          .catch((error) => {
            report(this.#onError, error, this.#context("sweep"));
            return 0;
          })
          .finally(() => this.#sweeping = undefined);
      }, sweepInterval * 1000);
      unrefTimer(this.#sweepTimer!);
    }
  }

  /**
   * How many SQL statements this backend has sent. Tests use it to count
   * round trips.
   */
  get roundTrips(): number {
    return this.#roundTrips;
  }

  /**
   * Resolves once the database is reachable and the table exists, creating
   * it if needed.
   *
   * @returns Nothing.
   * @throws {Error} If the database cannot be reached or the table cannot be
   * created.
   */
  async ready(): Promise<void> {
    this.#checkOpen("ready");
    await this.#connection();
  }

  /**
   * Resolves to the value at `key`, or `undefined` when missing or expired.
   *
   * @param key The key.
   * @returns The value.
   */
  async get(key: string): Promise<CacheValue | undefined> {
    const entry = await this.readEntry(key);
    return entry && !entry.stale ? decodeValue(entry) : undefined;
  }

  /**
   * Stores a JSON value or bytes at `key`, replacing any value there.
   *
   * @param key The key.
   * @param value The value.
   * @param options Expiry and tags.
   * @throws {RangeError} If `expire` is not a positive number.
   */
  async set(
    key: string,
    value: CacheValue,
    options?: SetOptions,
  ): Promise<void> {
    await this.writeEntry(key, encodeValue(value), options);
  }

  /**
   * Resolves to whether an unexpired value is stored at `key`.
   *
   * @param key The key.
   * @returns Whether it is there.
   */
  async has(key: string): Promise<boolean> {
    const entry = await this.readEntry(key, { etags: ["*"] });
    return entry !== undefined && !entry.stale;
  }

  /**
   * Deletes the entry at `key`.
   *
   * @param key The key.
   * @returns Whether an unexpired entry was there.
   */
  async delete(key: string, options?: TransactionOptions): Promise<boolean> {
    this.#checkOpen("delete");
    const [row] = await this.#purge("delete", "key", [checkKey(key)], options);
    await this.#announce([key], options);
    return Number(row?.live ?? 0) > 0;
  }

  /**
   * Deletes every entry of this backend's namespace, and only those.
   *
   * @returns Nothing.
   */
  async clear(options?: TransactionOptions): Promise<void> {
    this.#checkOpen("clear");
    await this.#purge("clear", "namespace", [], options);
    await this.#announce(null, options);
  }

  /**
   * Deletes every entry of every namespace in the table.
   *
   * @returns Nothing.
   */
  async clearTable(): Promise<void> {
    this.#checkOpen("clearTable");
    await this.#purge("clearTable", "table", []);
    await this.#announce(null, undefined, null);
  }

  /**
   * Deletes every entry of this namespace that carries any of `tags`, in one
   * indexed statement.
   *
   * @param tags The tags.
   * @returns How many entries were deleted.
   */
  async invalidateTags(
    tags: readonly string[],
    options?: TransactionOptions,
  ): Promise<number> {
    checkTags(tags, "invalidate tags");
    this.#checkOpen("invalidateTags");
    const [row] = await this.#purge(
      "invalidateTags",
      "tags",
      [...tags],
      options,
    );
    await this.#announce(null, options);
    return Number(row?.n ?? 0);
  }

  /**
   * Deletes what `mode` and `targets` say, after bumping the namespace's
   * purge epoch: a write computed before the purge does not land after it.
   */
  #purge(
    operation: string,
    mode: PurgeMode,
    targets: string[],
    options?: TransactionOptions,
  ): Promise<Row[]> {
    return this.#query(operation, this.#sql.purge, [
      this.namespace,
      mode,
      targets,
    ], options);
  }

  /**
   * Deletes expired rows of every namespace, in batches of `sweepBatchSize`.
   * When another instance is sweeping the same table, it returns at once.
   *
   * @returns How many rows were deleted.
   */
  async sweep(): Promise<number> {
    this.#checkOpen("sweep");
    let total = 0;
    while (this.#closed === undefined) {
      const rows = await this.#query("sweep", this.#sql.sweep, [
        this.#sweepBatchSize,
      ]);
      const deleted = Number(rows[0]?.n ?? 0);
      total += deleted;
      if (deleted < this.#sweepBatchSize) break;
    }
    await this.#vacuumTable();
    return total;
  }

  /**
   * Reclaims the dead tuples that upserts, evictions and sweeps leave, so the
   * table does not bloat where autovacuum is slow or off. `SKIP_LOCKED`: an
   * instance never waits for another's vacuum. Roles that do not own the
   * table cannot vacuum it; that is reported once, then left to autovacuum.
   */
  async #vacuumTable(): Promise<void> {
    if (!this.#vacuum || this.#closed !== undefined) return;
    try {
      await this.#query("vacuum", this.#sql.vacuum, []);
    } catch (error) {
      this.#vacuum = false;
      report(this.#onError, error, this.#context("vacuum"));
    }
  }

  /**
   * Stops the sweep and closes the pool the backend built. A `client` passed
   * in is left open. Calling it again does nothing.
   *
   * @returns Nothing.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      clearInterval(this.#sweepTimer);
      // Work already accepted finishes: queued writes, then lock releases.
      await this.#settleWrites();
      await Promise.allSettled([...this.#releases]);
      await this.#sweeping;
      await this.#evicting;
      const unlisten = await this.#unlisten?.catch(() => undefined);
      await unlisten?.().catch(() => {});
      const session = await this.#session?.catch(() => undefined);
      session?.release();
      // From here on no query may run: it would open a new connection.
      this.#shut = true;
      const driver = await this.#driver.catch(() => undefined);
      await driver?.close();
    })();
    return this.#closed;
  }

  /**
   * Reads the raw entry at `key`, fresh or within its stale window, by the
   * database clock.
   *
   * @param key The key.
   * @param options The etags the client holds.
   * @returns The entry, or `undefined`.
   */
  async readEntry(
    key: string,
    options?: ReadEntryOptions,
  ): Promise<StoredEntry | undefined> {
    return (await this.lookup(key, options)).entry;
  }

  /**
   * Reads the raw entry at `key`, as {@linkcode readEntry} does, with the
   * namespace's purge epoch read in the same statement.
   *
   * @param key The key.
   * @param options The etags the client holds.
   * @returns The entry, or `undefined`, and the epoch (`undefined` when the
   * entry came from the local tier).
   */
  async lookup(
    key: string,
    options?: ReadEntryOptions,
  ): Promise<EntryLookup> {
    checkKey(key);
    this.#checkOpen("readEntry");
    const etags = checkEtags(options?.etags);
    const local = this.#local?.get(key, etags);
    if (local) {
      this.#counters.hits++;
      return { entry: local, epoch: undefined };
    }
    const generation = this.#local?.generation;
    // The breaker counts this read's own deadline, queueing included: while
    // the database hangs, at most breakerThreshold reads wait it out.
    const row = await this.#guard("readEntry", () =>
      withTimeout(
        this.#reads.add({ key, etags }),
        this.#queryTimeout,
        "readEntry",
      ));
    const entry = toStoredEntry(row);
    if (!entry) this.#counters.misses++;
    else if (entry.stale) this.#counters.staleServes++;
    else {
      this.#counters.hits++;
      this.#local?.put(key, entry, generation!);
    }
    return { entry, epoch: epochOf(row) };
  }

  async #readBatch(batch: Lookup[]): Promise<(Row | undefined)[]> {
    if (batch.length === 1) {
      const rows = await this.#run("readEntry", this.#sql.read, [
        this.namespace,
        batch[0].key,
        [...batch[0].etags],
      ]);
      return [rows[0]];
    }
    const rows = await this.#run("readEntry", this.#sql.readMany, [
      this.namespace,
      batch.map((lookup) => lookup.key),
      batch.map((lookup) => lookup.etags.join(LIST_SEPARATOR)),
    ]);
    const found = new Map<number, Row>();
    for (const row of rows) found.set(Number(row.i), row);
    return batch.map((_, i) => found.get(i + 1));
  }

  async #writeBatch(batch: Write[]): Promise<void[]> {
    // One row per key, the last write of a key in the batch winning, in key
    // order: concurrent batches then lock rows in one order, and never
    // deadlock.
    const last = new Map<string, Write>();
    for (const write of batch) last.set(write.key, write);
    const writes = [...last.values()].sort(byKey);
    if (writes.length === 1) {
      const [{ key, entry, terms, epoch }] = writes;
      await this.#run("writeEntry", this.#sql.write, [
        this.namespace,
        epoch,
        key,
        entry.kind,
        entry.body,
        entry.meta ?? null,
        entry.etag ?? null,
        terms.tags,
        terms.expire,
        terms.staleFor,
      ]);
    } else {
      await this.#run(
        "writeEntry",
        this.#sql.writeMany(writes.length),
        [
          this.namespace,
          ...writes.flatMap(({ key, entry, terms, epoch }) => [
            epoch,
            key,
            entry.kind,
            entry.body,
            entry.meta ?? null,
            entry.etag ?? null,
            terms.tags.join(LIST_SEPARATOR),
            terms.expire,
            terms.staleFor,
          ]),
        ],
      );
    }
    await this.#announce(writes.map((write) => write.key));
    // Check the bounds every 5% of maxEntries writes or of maxBytes written.
    this.#writesSinceEvict += writes.length;
    this.#sizes.entries += writes.length;
    for (const write of writes) {
      this.#bytesSinceEvict += write.entry.body.byteLength;
      this.#sizes.bytes += write.entry.body.byteLength;
    }
    if (
      this.#closed === undefined &&
      (this.#writesSinceEvict >= this.#evictEvery ||
        this.#bytesSinceEvict >= this.#maxBytes / 20)
    ) {
      this.#writesSinceEvict = 0;
      this.#bytesSinceEvict = 0;
      this.#scheduleEvict();
    }
    return batch.map(() => undefined);
  }

  #onNotify(payload: string): void {
    const change = parseChange(payload);
    if (!change) {
      // Not ours to read (another version's): drop everything to be safe.
      this.#local?.reset(false);
      return;
    }
    const [namespace, keys] = change;
    if (namespace !== null && namespace !== this.namespace) return;
    if (keys === null) this.#local?.reset(false);
    else for (const key of keys) this.#local?.drop(key);
  }

  /**
   * Drops local copies here and, when others may hold some, announces it:
   * `keys` of `namespace`, where `null` stands for all of them.
   */
  async #announce(
    keys: string[] | null,
    options?: TransactionOptions,
    namespace: string | null = this.namespace,
  ): Promise<void> {
    if (!this.#local) return;
    if (keys === null) this.#local.reset(false);
    else for (const key of keys) this.#local.drop(key);
    let payload = JSON.stringify([namespace, keys] satisfies Change);
    if (utf8Length(payload) > MAX_NOTIFY_BYTES) {
      payload = JSON.stringify([namespace, null] satisfies Change);
    }
    await this.#query("notify", "SELECT pg_notify($1::text, $2::text)", [
      this.#channel,
      payload,
    ], options);
  }

  /**
   * Writes the raw entry at `key`, replacing any entry there.
   *
   * @param key The key.
   * @param entry The entry.
   * @param options Expiry, stale window and tags.
   * @returns Nothing.
   * @throws {RangeError} If `expire` or `staleFor` is out of range.
   */
  async writeEntry(
    key: string,
    entry: CacheEntry,
    options?: WriteEntryOptions,
  ): Promise<void> {
    checkKey(key);
    checkEntry(entry);
    const terms = writeTerms(options);
    this.#checkOpen("writeEntry");
    if (this.#writes.queued + this.#waitingWrites >= this.#maxQueuedWrites) {
      this.#counters.droppedWrites++;
      throw new CacheQueueFullError(this.#maxQueuedWrites);
    }
    const epoch = options?.epoch ?? null;
    const write = this.#guard(
      "writeEntry",
      () => this.#write({ key, entry, terms, epoch }),
    );
    this.#pendingWrites.add(write);
    const forget = () => void this.#pendingWrites.delete(write);
    write.then(forget, forget);
    await write;
  }

  async #write(write: Write): Promise<void> {
    // Back-pressure on writes (never on reads): while an eviction runs and
    // this process estimates the namespace at its bound, writes wait for it,
    // so a burst cannot carry the namespace far over.
    if (
      this.#evicting &&
      (this.#sizes.entries >= this.#maxEntries ||
        this.#sizes.bytes + write.entry.body.byteLength > this.#maxBytes)
    ) {
      this.#waitingWrites++;
      try {
        await this.#evicting;
      } finally {
        this.#waitingWrites--;
      }
    }
    await this.#writes.add(write);
  }

  /** Evicts in the background; a request made meanwhile runs after it. */
  #scheduleEvict(): void {
    if (this.#evicting) {
      this.#evictAgain = true;
      return;
    }
    this.#evicting = (async () => {
      do {
        this.#evictAgain = false;
        await this.#evict(EVICTION_HEADROOM);
      } while (this.#evictAgain && this.#closed === undefined);
    })()
      .catch((error) => report(this.#onError, error, this.#context("evict")))
      .finally(() => this.#evicting = undefined);
  }

  /**
   * Evicts the oldest entries of the namespace until it is within
   * `maxEntries` and `maxBytes`, in batches. Writes call it in the
   * background; when another instance is evicting the namespace, it returns
   * at once.
   *
   * @returns How many entries were evicted.
   */
  async evict(): Promise<number> {
    this.#checkOpen("evict");
    return await this.#evict(1);
  }

  /**
   * Evicts when the namespace is over a bound, down to `share` of each
   * bound: background eviction leaves headroom, so that the writes made
   * while it runs do not carry the namespace far over.
   */
  async #evict(share: number): Promise<number> {
    const entriesTarget = Math.floor(this.#maxEntries * share);
    const bytesTarget = Math.floor(this.#maxBytes * share);
    let total = 0;
    // Batch after batch while this instance holds the lock and a batch
    // comes back full: each statement checks the bounds itself.
    while (this.#closed === undefined) {
      const [row] = await this.#query("evict", this.#sql.evict, [
        this.namespace,
        this.#maxEntries,
        this.#maxBytes,
        this.#evictBatch,
        entriesTarget,
        bytesTarget,
      ]);
      if (row?.locked !== true) break;
      const evicted = Number(row.n);
      total += evicted;
      this.#counters.evictions += evicted;
      const entries = Number(row.entries) - evicted;
      const bytes = Number(row.bytes) - Number(row.freed);
      this.#sizes = { entries, bytes };
      if (evicted < this.#evictBatch) break;
    }
    return total;
  }

  /**
   * This process's counters, and the namespace's entries and bytes from the
   * database.
   *
   * @returns The statistics.
   */
  async stats(): Promise<CacheStats> {
    this.#checkOpen("stats");
    try {
      const rows = await this.#query("stats", this.#sql.stats, [
        this.namespace,
      ]);
      this.#sizes = {
        entries: Number(rows[0]?.entries ?? 0),
        bytes: Number(rows[0]?.bytes ?? 0),
      };
    } catch (error) {
      // The counters matter most when the database is down: report them
      // with the last sizes known.
      report(this.#onError, error, this.#context("stats"));
    }
    return { ...this.#sizes, ...this.#counters };
  }

  /**
   * Entries and bytes of every namespace in the table.
   *
   * @returns One row per namespace.
   */
  async tableStats(): Promise<NamespaceStats[]> {
    this.#checkOpen("tableStats");
    const rows = await this.#query("tableStats", this.#sql.namespaces, []);
    return rows.map((row) => ({
      namespace: String(row.namespace),
      entries: Number(row.entries),
      bytes: Number(row.bytes),
      expired: Number(row.expired),
    }));
  }

  /**
   * Tries to lock `key` across every process on this database, with a
   * session-level advisory lock on a connection of its own, which PostgreSQL
   * releases if the process dies. When the lock is taken, the entry is read
   * again on the same connection, after the lock, so that a value written by
   * the previous holder is seen. Drivers without sessions (an embedded
   * database) always acquire.
   *
   * @param key The key.
   * @param options The etags the client holds, for the re-read.
   * @returns The lock, and the entry if one is there now.
   */
  async lock(key: string, options?: ReadEntryOptions): Promise<KeyLock> {
    checkKey(key);
    checkEtags(options?.etags);
    this.#checkOpen("lock");
    const driver = this.#readyDriver ?? await this.#driver;
    if (!driver.session) {
      return { acquired: true, release: () => Promise.resolve() };
    }
    const params = [this.namespace, key];
    let session: SqlSession | undefined;
    const [locked, read] = await this.#guard("lock", async () => {
      try {
        // One deadline for the whole attempt: the connection, the lock
        // session, then the lock and the re-read, pipelined on the session
        // so that the read runs after the lock is taken.
        return await withTimeout(
          (async () => {
            await this.#connected();
            session = await this.#lockSession(driver);
            this.#roundTrips += 2;
            return await Promise.all([
              session.query(this.#sql.lock, params),
              session.query(this.#sql.read, [
                ...params,
                [...options?.etags ?? []],
              ]),
            ]);
          })(),
          this.#queryTimeout,
          "lock",
        );
      } catch (error) {
        // Whether the lock was taken is unknown: close the session, and
        // PostgreSQL releases whatever it holds.
        if (session) this.#dropSession(session);
        throw error;
      }
    });
    const acquired = locked[0]?.acquired === true;
    const entry = acquired ? toStoredEntry(read[0]) : undefined;
    const held = session!;
    let released: Promise<void> | undefined;
    return {
      acquired,
      entry,
      release: () => {
        if (!acquired) return Promise.resolve();
        if (released) return released;
        released = this.#guard("unlock", async () => {
          this.#roundTrips++;
          await withTimeout(
            held.query(this.#sql.unlock, params),
            this.#queryTimeout,
            "unlock",
          );
        }).catch((error) => {
          // A lock that cannot be released is released with its connection.
          this.#dropSession(held);
          throw error;
        });
        const settled = released.catch(() => {});
        this.#releases.add(settled);
        void settled.finally(() => this.#releases.delete(settled));
        return released;
      },
    };
  }

  /**
   * The lock session, opened once and shared by this process's requests. An
   * open that outlives `connectTimeout` is abandoned, and the session it
   * yields later is closed.
   */
  #lockSession(driver: SqlDriver): Promise<SqlSession> {
    if (!this.#session) {
      const opening = driver.session!();
      const session = withTimeout(opening, this.#connectTimeout, "session");
      this.#session = session;
      session.catch(() => {
        if (this.#session === session) this.#session = undefined;
        opening.then((late) => late.close(), () => {});
      });
    }
    return this.#session;
  }

  /**
   * Closes `session`, never returning it to a pool: its locks are unknown.
   * The next lock opens a fresh session.
   */
  #dropSession(session: SqlSession): void {
    const current = this.#session;
    void current?.then((held) => {
      if (held === session && this.#session === current) {
        this.#session = undefined;
      }
    }, () => {});
    session.close();
  }

  /** Runs `fn` under the circuit breaker, counting its failures. */
  #guard<T>(operation: string, fn: () => Promise<T>): Promise<T> {
    return this.#breaker.run(fn, () => new CacheUnavailableError(operation))
      .catch((error) => {
        if (!(error instanceof CacheUnavailableError)) this.#counters.errors++;
        throw error;
      });
  }

  /** Whether the circuit breaker is open: queries are skipped. */
  get circuitOpen(): boolean {
    return this.#breaker.open;
  }

  /** Resolves once every write accepted so far has settled. */
  async #settleWrites(): Promise<void> {
    await Promise.allSettled([...this.#pendingWrites]);
  }

  #checkOpen(operation: string): void {
    if (this.#closed) {
      throw new Error(
        `Cannot ${operation}: the PostgresBackend of table ${this.#tableName} is closed`,
      );
    }
  }

  #context(operation: string, key?: string) {
    return { operation, namespace: this.namespace, key };
  }

  #warm(connections: number): void {
    // Concurrent queries make postgres.js open that many connections.
    for (let i = 0; i < connections; i++) {
      this.#driver
        .then((driver) => driver.query("SELECT 1", []))
        .catch(() => {/* reported by the first real query */});
    }
  }

  /** The driver once the table is known to exist, without waiting. */
  #readyDriver: SqlDriver | undefined;

  /** The driver, after making sure the table exists; bounded by connectTimeout. */
  async #connected(): Promise<SqlDriver> {
    return this.#readyDriver ??
      await withTimeout(this.#connection(), this.#connectTimeout, "connect");
  }

  #connection(): Promise<SqlDriver> {
    this.#ready ??= (async () => {
      const driver = await this.#driver;
      this.#roundTrips++;
      let present = false;
      try {
        const [row] = await driver.query(this.#sql.present, [
          this.namespace,
          this.#sql.table,
          this.#sql.evictSignature,
          this.#sql.purgeSignature,
        ]);
        present = row?.present === true;
      } catch (error) {
        // A table of an older version, or none: the DDL below makes it.
        if ((error as { code?: unknown })?.code !== UNDEFINED_TABLE) {
          throw error;
        }
      }
      if (!present) {
        this.#roundTrips++;
        await driver.query(this.#sql.create, []);
      }
      this.#readyDriver = driver;
      return driver;
    })();
    // A failed start is retried by the next query.
    this.#ready.catch(() => this.#ready = undefined);
    return this.#ready;
  }

  async #query(
    operation: string,
    text: string,
    params: unknown[],
    options?: TransactionOptions,
  ): Promise<Record<string, unknown>[]> {
    if (this.#shut) this.#checkOpen(operation);
    if (ORDERED_AFTER_WRITES.has(operation)) {
      // A delete must not be overtaken by a write this process queued
      // before it: the write would bring the entry back.
      await this.#settleWrites();
    }
    const transaction = options?.transaction;
    if (transaction) {
      // The caller's transaction: its errors are the caller's to handle.
      await this.#connection();
      this.#roundTrips++;
      return [
        ...await transaction.unsafe(text, params as never[], { prepare: true }),
      ];
    }
    return await this.#guard(
      operation,
      () => this.#run(operation, text, params),
    );
  }

  /**
   * Runs one statement within `queryTimeout`, after connecting (within
   * `connectTimeout`) if need be. Not under the breaker: callers count their
   * own failures. A change that outlives its deadline is
   * cancelled, and its outcome awaited for one more `queryTimeout`: it
   * rejects with {@linkcode CacheTimeoutError} only when the database says
   * it did not commit, and with {@linkcode CacheOutcomeUnknownError} when
   * the database does not say.
   */
  async #run(
    operation: string,
    text: string,
    params: unknown[],
  ): Promise<Record<string, unknown>[]> {
    if (this.#shut) this.#checkOpen(operation);
    const ms = this.#queryTimeout;
    const driver = await this.#connected();
    if (this.#shut) this.#checkOpen(operation);
    this.#roundTrips++;
    if (!CHANGES.has(operation)) {
      return await withTimeout(
        driver.query(text, params),
        ms,
        operation,
      );
    }
    const cancel = new AbortController();
    const running = driver.query(text, params, { signal: cancel.signal });
    return await deadline(running, ms, () => {
      cancel.abort();
      return deadline(running, ms, (): never => {
        throw new CacheOutcomeUnknownError(operation);
      }).catch((error) => {
        if (error instanceof CacheOutcomeUnknownError) throw error;
        // The server answered with an error, so the statement did not
        // commit; any other failure (a lost connection) leaves it unknown.
        if (!isServerError(error)) {
          throw new CacheOutcomeUnknownError(operation, { cause: error });
        }
        throw new CacheTimeoutError(operation, ms);
      });
    });
  }
}

type Row = Record<string, unknown>;

/** The share of each bound that write-triggered eviction evicts down to. */
const EVICTION_HEADROOM = 0.9;

/** Operations that wait for this process's queued writes first. */
const ORDERED_AFTER_WRITES = new Set([
  "delete",
  "clear",
  "clearTable",
  "invalidateTags",
]);

/** Operations that change entries: their timeouts say whether they committed. */
const CHANGES = new Set([...ORDERED_AFTER_WRITES, "writeEntry"]);

/**
 * What a notification says changed: keys of a namespace, `null` standing for
 * every key, or for every namespace.
 */
type Change = [namespace: string | null, keys: string[] | null];

/**
 * PostgreSQL refuses notifications of 8000 bytes or more; a longer change is
 * announced as the whole namespace.
 */
const MAX_NOTIFY_BYTES = 7900;

/** The change a notification carries, or `undefined` when malformed. */
function parseChange(payload: string): Change | undefined {
  try {
    const change = JSON.parse(payload);
    if (
      Array.isArray(change) && change.length === 2 &&
      (change[0] === null || typeof change[0] === "string") &&
      (change[1] === null ||
        (Array.isArray(change[1]) &&
          change[1].every((key: unknown) => typeof key === "string")))
    ) {
      return change as Change;
    }
  } catch {
    // Malformed: the caller plays safe.
  }
  return undefined;
}

/** The SQLSTATE of a statement naming a table that does not exist. */
const UNDEFINED_TABLE = "42P01";

/** Whether `error` is the server's answer, with a SQLSTATE, to a statement. */
function isServerError(error: unknown): boolean {
  const code = (error as { code?: unknown })?.code;
  return typeof code === "string" && /^[0-9A-Z]{5}$/.test(code);
}

/** A read waiting for its batch. */
interface Lookup {
  key: string;
  etags: readonly string[];
}

/** A write waiting for its batch. */
interface Write {
  key: string;
  entry: CacheEntry;
  terms: WriteTerms;
  /** The purge epoch it was computed under; `null` lands whatever the epoch. */
  epoch: number | null;
}

function byKey(a: Write, b: Write): number {
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** The purge epoch a read returned with its row. */
function epochOf(row: Row | undefined): number | undefined {
  return row?.epoch === null || row?.epoch === undefined
    ? undefined
    : Number(row.epoch);
}

/** The entry of a read's row; reads return a row, without one, on a miss. */
function toStoredEntry(row: Row | undefined): StoredEntry | undefined {
  if (!row || row.kind === null || row.kind === undefined) return undefined;
  const notModified = row.value === null;
  return {
    kind: Number(row.kind) as EntryKind,
    body: notModified ? new Uint8Array(0) : toBytes(row.value),
    meta: row.meta === null ? undefined : String(row.meta),
    etag: row.etag === null ? undefined : String(row.etag),
    age: Number(row.age),
    stale: row.stale === true,
    freshFor: Number(row.fresh_for),
    notModified,
  };
}

/** Rejects with a {@linkcode CacheTimeoutError} when `promise` outlives `ms`. */
function withTimeout<T>(
  promise: Promise<T>,
  ms: number,
  operation: string,
): Promise<T> {
  return deadline(promise, ms, (): never => {
    throw new CacheTimeoutError(operation, ms);
  });
}
