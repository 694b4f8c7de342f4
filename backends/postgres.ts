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
import { decodeValue, encodeValue } from "../core/entry.ts";
import {
  checkEntry,
  checkEtags,
  checkKey,
  checkSetOptions,
  checkTags,
  writeTerms,
} from "./_validate.ts";
import { getOrSet, type GetOrSetOptions } from "./_get_or_set.ts";
import { zeroCounters } from "./_stats.ts";
import { Connection, withTimeout } from "./_postgres/connection.ts";
import { Database } from "./_postgres/database.ts";
import { Eviction } from "./_postgres/eviction.ts";
import { LocalTier } from "./_postgres/local_tier.ts";
import { type KeyLocks, Locks } from "./_postgres/locks.ts";
import { Leases } from "./_postgres/leases.ts";
import { NOTIFY, type TierCoherence, TierSync } from "./_postgres/notify.ts";
import { TierPoll } from "./_postgres/poll.ts";
import {
  type PostgresBackendOptions,
  type ResolvedOptions,
  resolveOptions,
} from "./_postgres/options.ts";
import { Reads } from "./_postgres/reads.ts";
import { type Row, toNamespaceStats } from "./_postgres/rows.ts";
import type { PurgeMode } from "./_postgres/sql.ts";
import { Sweeper } from "./_postgres/sweeper.ts";
import { Writes } from "./_postgres/writes.ts";
import type {
  CacheBackend,
  CacheEntry,
  CacheStats,
  CacheValue,
  EntryLookup,
  KeyLock,
  LockedLookup,
  ReadEntryOptions,
  SetOptions,
  StoredEntry,
  TransactionOptions,
  WriteEntryOptions,
} from "./types.ts";

export {
  CacheOutcomeUnknownError,
  CachePermissionError,
  CacheQueueFullError,
  CacheTimeoutError,
  CacheUnavailableError,
} from "./_postgres/errors.ts";
export type {
  EmbeddedOptions,
  LocalCacheOptions,
  PostgresBackendOptions,
} from "./_postgres/options.ts";
export type { GetOrSetOptions, TransactionOptions };

/** Whether the table and its functions exist, without creating anything. */
const PRESENT =
  `SELECT to_regclass($1) IS NOT NULL AND to_regprocedure($2) IS NOT NULL
  AND to_regprocedure($3) IS NOT NULL AS present`;

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
  #options: ResolvedOptions;
  #connection: Connection;
  #db: Database;
  #reads: Reads;
  #writes: Writes;
  #eviction: Eviction;
  #sweeper: Sweeper;
  #locks: KeyLocks;
  #sync: TierCoherence | undefined;
  #counters = zeroCounters();
  #closed: Promise<void> | undefined;

  /**
   * Creates the backend. It does not wait for the database: connecting and
   * creating the table start in the background, and an unreachable database
   * neither blocks nor throws here.
   *
   * @param options Where the database is, and how to use it.
   * @throws {TypeError} If an option is unknown (the message names the
   * nearest valid one), not exactly one of `dsn`, `client` and `embedded`
   * is given, or `dsn`, `namespace` or `table` is malformed.
   * @throws {RangeError} If a size, interval or timeout is out of range, or
   * `minSize` exceeds `maxSize`.
   */
  constructor(options: PostgresBackendOptions) {
    const resolved = resolveOptions(options);
    this.#options = resolved;
    this.namespace = resolved.namespace;
    const { sql, namespace } = resolved;
    this.#connection = new Connection(resolved, (op) => this.#checkOpen(op));
    const db = new Database(this.#connection, resolved, this.#counters);
    this.#db = db;
    const closing = () => this.#closed !== undefined;
    const query = (op: string, text: string, params: unknown[]) =>
      db.query(op, text, params);
    const guard = <T>(op: string, fn: () => Promise<T>) => db.guard(op, fn);
    const failed = (error: unknown, op: string) => db.report(error, op);
    const pooler = sql.pooler;
    let poll: TierPoll | undefined;
    let sync: TierSync | undefined;
    if (resolved.local) {
      const { maxEntries, maxBytes, maxAgeMs, pollIntervalMs } = resolved.local;
      const tier = new LocalTier(maxEntries, maxBytes, maxAgeMs);
      this.#sync = pooler
        ? poll = new TierPoll(tier, {
          namespace,
          sql: pooler,
          intervalMs: pollIntervalMs,
          query: (op, text, params, options) =>
            db.query(op, text, params, options),
          failed: (error) => failed(error, "poll"),
        })
        : sync = new TierSync(tier, {
          namespace,
          tableName: resolved.tableName,
          notify: (channel, payload, options) =>
            db.query("notify", NOTIFY, [channel, payload], options),
          failed: (error) => failed(error, "listen"),
        });
    }
    this.#reads = new Reads({
      ...resolved,
      run: (op, text, params) => this.#connection.run(op, text, params),
      guard,
      counters: this.#counters,
      tier: this.#sync?.tier,
    });
    this.#eviction = new Eviction({
      ...resolved,
      query,
      closing,
      evicted: (n) => this.#counters.evictions += n,
      failed: (error) => failed(error, "evict"),
    });
    this.#writes = new Writes({
      ...resolved,
      eviction: this.#eviction,
      run: (op, text, params) =>
        this.#connection.run(op, text, params, "change"),
      guard,
      stored: async (keys) => await this.#sync?.announce(keys),
      dropped: () => this.#counters.droppedWrites++,
    });
    this.#sweeper = new Sweeper(
      { sql, batchSize: resolved.sweepBatchSize, query, closing, failed },
      resolved.sweepInterval,
    );
    this.#locks = pooler
      ? new Leases({
        ...resolved,
        sql: pooler,
        connection: this.#connection,
        guard,
      })
      : new Locks({ ...resolved, connection: this.#connection, guard });
    // Keep a failed start from becoming an unhandled rejection; requests see
    // the error through the connection and go on without the cache.
    this.#connection.driver.catch((error) => failed(error, "connect"));
    if (resolved.createTable) void this.#connection.ready().catch(() => {});
    sync?.listen(this.#connection.driver);
    poll?.start();
  }

  /**
   * How many SQL statements this backend has sent. Tests use it to count
   * round trips.
   */
  get roundTrips(): number {
    return this.#connection.roundTrips;
  }

  /** Whether the circuit breaker is open: queries are skipped. */
  get circuitOpen(): boolean {
    return this.#db.open;
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
    await this.#connection.ready();
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
   * @throws {TypeError} If `value` is not JSON that JSON keeps exactly, nor
   * a `Uint8Array`, `options` is not an object of `expire` and `tags` (a
   * number, as a TTL, included), or `key` or `tags` is malformed.
   * @throws {RangeError} If `expire` is out of range, or `key` or a tag is
   * too long.
   */
  async set(
    key: string,
    value: CacheValue,
    options?: SetOptions,
  ): Promise<void> {
    checkSetOptions(options);
    await this.writeEntry(key, encodeValue(value), options);
  }

  /**
   * Resolves to the value at `key`, or computes it with `compute`, stores
   * it and resolves to it. One computation per key runs at a time in this
   * process, and across processes through an advisory lock (the others
   * wait, bounded by `lockTimeout`, and read what it stored). When the
   * database fails, `compute` runs, its value is returned, and the failure
   * goes to `onError`: the cache never makes it reject.
   *
   * @example Loading a user through the cache
   * ```ts ignore
   * import { PostgresBackend } from "@cachekit/hono/postgres";
   *
   * const backend = new PostgresBackend({ dsn: Deno.env.get("DATABASE_URL")! });
   * const user = await backend.getOrSet(
   *   "user:42",
   *   () => ({ id: 42, name: "Ada" }), // a query, in a real app
   *   { expire: 300, tags: ["user:42"], staleWhileRevalidate: 60 },
   * );
   * console.log(user);
   * await backend.close();
   * ```
   *
   * @param key The key.
   * @param compute Computes the value when none is stored.
   * @param options Expiry, tags, stale windows and the lock's timeout.
   * @returns The stored or computed value.
   * @throws {TypeError} If `key` is malformed, `compute` is not a function,
   * an option is unknown or malformed, or the value cannot be stored
   * exactly.
   * @throws {RangeError} If a number of seconds is out of range, or `key`
   * or a tag is too long.
   */
  getOrSet<T extends CacheValue>(
    key: string,
    compute: () => T | Promise<T>,
    options?: GetOrSetOptions,
  ): Promise<T> {
    return getOrSet(
      this,
      key,
      compute,
      options,
      (error, operation, key) => this.#db.report(error, operation, key),
    );
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
   * @param options The caller's transaction, if any.
   * @returns Whether an unexpired entry was there.
   */
  async delete(key: string, options?: TransactionOptions): Promise<boolean> {
    this.#checkOpen("delete");
    const [row] = await this.#purge("delete", "key", [checkKey(key)], options);
    await this.#sync?.announce([key], options);
    return Number(row?.live ?? 0) > 0;
  }

  /**
   * Deletes every entry of this backend's namespace, and only those.
   *
   * @param options The caller's transaction, if any.
   * @returns Nothing.
   */
  async clear(options?: TransactionOptions): Promise<void> {
    await this.purge(options);
  }

  /**
   * Deletes every entry of this backend's namespace, and only those, as
   * {@linkcode PostgresBackend.clear} does, and tells how many there were.
   *
   * @param options The caller's transaction, if any.
   * @returns How many entries were deleted, expired ones included.
   */
  async purge(options?: TransactionOptions): Promise<number> {
    this.#checkOpen("clear");
    const [row] = await this.#purge("clear", "namespace", [], options);
    await this.#sync?.announce(null, options);
    return Number(row?.n ?? 0);
  }

  /**
   * Deletes every entry of every namespace in the table.
   *
   * @returns Nothing.
   */
  async clearTable(): Promise<void> {
    this.#checkOpen("clearTable");
    await this.#purge("clearTable", "table", []);
    await this.#sync?.announce(null, undefined, null);
  }

  /**
   * Deletes every entry of this namespace that carries any of `tags`, in one
   * indexed statement.
   *
   * @param tags The tags.
   * @param options The caller's transaction, if any.
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
    await this.#sync?.announce(null, options);
    return Number(row?.n ?? 0);
  }

  /**
   * Deletes expired rows of every namespace, in batches of `sweepBatchSize`.
   * When another instance is sweeping the same table, it returns at once.
   *
   * @returns How many rows were deleted.
   */
  async sweep(): Promise<number> {
    this.#checkOpen("sweep");
    return await this.#sweeper.sweep();
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
    return await this.#eviction.evict();
  }

  /**
   * Stops the sweep and closes the pool the backend built. A `client` passed
   * in is left open. Calling it again does nothing.
   *
   * @returns Nothing.
   */
  close(): Promise<void> {
    this.#closed ??= (async () => {
      // Work already accepted finishes: queued writes, then lock releases.
      await this.#writes.settle();
      await this.#locks.settle();
      await this.#sweeper.close();
      await this.#eviction.settle();
      await this.#sync?.close();
      await this.#locks.close();
      await this.#connection.close();
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
    const etags = checkEtags(options?.etags);
    this.#checkOpen("readEntry");
    return await this.#reads.lookup(key, etags);
  }

  /**
   * Reads the entry at `key` as {@linkcode lookup} does and, only when it is
   * missing or stale, tries the key's cross-process lock (see
   * {@linkcode lock}) in the same round trip, on the lock session. A
   * local-tier hit takes no lock.
   *
   * @param key The key.
   * @param options The etags the client holds.
   * @returns The entry, the epoch, and the lock when one was tried.
   */
  async lookupOrLock(
    key: string,
    options?: ReadEntryOptions,
  ): Promise<LockedLookup> {
    checkKey(key);
    const etags = checkEtags(options?.etags);
    this.#checkOpen("readEntry");
    return await this.#reads.lookupOrLock(key, etags, this.#locks);
  }

  /**
   * Writes the raw entry at `key`, replacing any entry there.
   *
   * @param key The key.
   * @param entry The entry.
   * @param options Expiry, stale window, tags and the purge epoch.
   * @returns Nothing.
   * @throws {TypeError} If `key`, `entry` or `tags` is malformed.
   * @throws {RangeError} If `expire` or `staleFor` is out of range, or `key`
   * or a tag is too long.
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
    await this.#writes.add({
      key,
      entry,
      terms,
      epoch: options?.epoch ?? null,
    });
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
      const rows = await this.#db.query("stats", this.#options.sql.stats, [
        this.namespace,
      ]);
      this.#eviction.sizes = {
        entries: Number(rows[0]?.entries ?? 0),
        bytes: Number(rows[0]?.bytes ?? 0),
      };
    } catch (error) {
      // The counters matter most when the database is down: report them,
      // and say that the sizes are unknown rather than zero.
      this.#db.report(error, "stats");
      return {
        entries: null,
        bytes: null,
        unavailable: error instanceof Error ? error.message : String(error),
        ...this.#counters,
      };
    }
    return { ...this.#eviction.sizes, ...this.#counters };
  }

  /**
   * Resolves to whether the table and its functions exist, without creating
   * them (unlike every other method).
   *
   * @returns Whether they exist.
   * @throws {Error} If the database cannot be reached.
   */
  async exists(): Promise<boolean> {
    this.#checkOpen("exists");
    const sql = this.#options.sql;
    const driver = await this.#connection.driver;
    const [row] = await withTimeout(
      driver.query(PRESENT, [
        sql.table,
        sql.evictSignature,
        sql.purgeSignature,
      ]),
      this.#options.connectTimeout,
      "exists",
    );
    return row?.present === true;
  }

  /**
   * Entries and bytes of every namespace in the table.
   *
   * @returns One row per namespace.
   */
  async tableStats(): Promise<NamespaceStats[]> {
    this.#checkOpen("tableStats");
    const rows = await this.#db.query(
      "tableStats",
      this.#options.sql.namespaces,
      [],
    );
    return rows.map(toNamespaceStats);
  }

  /**
   * Tries to lock `key` across every process on this database, with a
   * session-level advisory lock on a connection of its own, which PostgreSQL
   * releases if the process dies. When the lock is taken, the entry is read
   * again on the same connection, after the lock, so that a value written by
   * the previous holder is seen. Drivers without sessions (an embedded
   * database) always acquire. With `pooler: "transaction"` the lock is a
   * lease row, taken and followed by the re-read in one statement, which
   * another process takes over once `leaseTimeout` passed.
   *
   * @param key The key.
   * @param options The etags the client holds, for the re-read.
   * @returns The lock, and the entry if one is there now.
   */
  async lock(key: string, options?: ReadEntryOptions): Promise<KeyLock> {
    checkKey(key);
    const etags = checkEtags(options?.etags);
    this.#checkOpen("lock");
    return await this.#locks.lock(key, etags);
  }

  /**
   * Deletes what `mode` and `targets` say, after bumping the namespace's
   * purge epoch: a write computed before the purge does not land after it.
   */
  async #purge(
    operation: string,
    mode: PurgeMode,
    targets: string[],
    options?: TransactionOptions,
  ): Promise<Row[]> {
    // A purge must not be overtaken by a write this process queued before
    // it: the write would bring the entry back.
    await this.#writes.settle();
    return await this.#db.query(operation, this.#options.sql.purge, [
      this.namespace,
      mode,
      targets,
    ], { ...options, outcome: "change" });
  }

  #checkOpen(operation: string): void {
    if (this.#closed) {
      throw new Error(
        `Cannot ${operation}: the PostgresBackend of table ${this.#options.tableName} is closed`,
      );
    }
  }
}
