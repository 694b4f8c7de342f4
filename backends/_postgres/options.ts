// PostgresBackend's options: their public types, and their resolution,
// checked once, into the values the parts are built from.
import type { CacheErrorHandler } from "../types.ts";
import type { PGliteClient, PostgresClient } from "../sql_driver.ts";
import { burstLogger } from "../../core/report.ts";
import { OptionChecks } from "../../core/options.ts";
import { checkNamespace } from "../_validate.ts";
import { parseTableName, type Statements, statements } from "./sql.ts";

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
  /**
   * With `pooler: "transaction"`, where LISTEN is not available: seconds
   * between two reads of the namespace's change counter. A change made by
   * another instance drops this instance's local copies within
   * `pollInterval` plus `queryTimeout`; while the counter cannot be read,
   * nothing is served from this process. Ignored without a pooler.
   *
   * @default {1}
   */
  pollInterval?: number;
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
  /**
   * The PGlite class, from `import { PGlite } from "@electric-sql/pglite"`.
   * Without it, PGlite is loaded by name on first use: Deno fetches it, and
   * Node.js needs `npm install @electric-sql/pglite`. The package does not
   * depend on PGlite (22 MB), so users of a real server never download it.
   *
   * @default {undefined} loaded by name
   */
  PGlite?: new (dataDir?: string) => PGliteClient & {
    waitReady: Promise<void>;
  };
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
   * Whether the backend creates the table and its functions when they are
   * missing, starting at once in the background. With `false`, nothing is
   * prepared before the first operation, and {@linkcode PostgresBackend.exists}
   * tells whether they are there (the CLI's read-only commands use it).
   *
   * @default {true}
   */
  createTable?: boolean;
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
   * `"transaction"` when a pooler in transaction mode (PgBouncer's
   * `pool_mode = transaction`, most managed poolers) stands between the
   * backend and PostgreSQL, so that every transaction may land on another
   * server connection. The backend then keeps no session state: no prepared
   * statements, no session advisory locks (cross-process locks are lease
   * rows that expire after `leaseTimeout`), no LISTEN (`localCache` polls a
   * change counter every `localCache.pollInterval`). It cannot be detected
   * reliably, so it is said here.
   *
   * @default {"none"}
   */
  pooler?: "none" | "transaction";
  /**
   * With `pooler: "transaction"`: milliseconds after which a cross-process
   * lock (a lease row) whose holder neither wrote nor released is taken
   * over, so that a holder that crashed blocks its key at most this long.
   * Keep it above the slowest computation: a lease that expires while its
   * holder still computes lets one more process compute the key.
   *
   * @default {30000}
   */
  leaseTimeout?: number;
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
   * An in-process tier in front of PostgreSQL. Every instance sharing
   * the namespace must enable it: writes, deletes, tag purges and clears are
   * announced with NOTIFY, and every instance drops its local copy on the
   * announcement. After the listening connection reconnects, all local
   * copies are dropped. Needs a driver that can LISTEN (postgres.js,
   * PGlite). With `pooler: "transaction"` every change counts in the
   * namespace's change counter instead, which each instance reads every
   * `pollInterval`; any driver will do.
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

/** Where the entries live: what the options say to connect to. */
export type Source =
  | { kind: "dsn"; dsn: string; minSize: number; maxSize: number }
  | { kind: "client"; client: PostgresClient }
  | { kind: "embedded"; embedded: EmbeddedOptions };

/** The options, checked, with their defaults. */
export interface ResolvedOptions {
  namespace: string;
  /** The table as named, for messages. */
  tableName: string;
  sql: Statements;
  source: Source;
  /** Whether a missing table is created, eagerly. */
  createTable: boolean;
  sweepInterval: number;
  sweepBatchSize: number;
  queryTimeout: number;
  connectTimeout: number;
  maxEntries: number;
  maxBytes: number;
  maxBatchSize: number;
  /** Batches of reads (and of writes) in flight at once. */
  maxInflight: number;
  maxQueuedWrites: number;
  local?: {
    maxEntries: number;
    maxBytes: number;
    maxAgeMs: number;
    pollIntervalMs: number;
  };
  /** Whether a transaction-mode pooler is in front: no session state. */
  pooler: boolean;
  /** Seconds a lease lasts, under a pooler. */
  leaseSeconds: number;
  breakerThreshold: number;
  breakerCooldown: number;
  now: () => number;
  onError: CacheErrorHandler;
}

const checks = new OptionChecks("Cannot create PostgresBackend");

/** Every option of {@linkcode PostgresBackendOptions}. */
const OPTIONS: readonly string[] = [
  "dsn",
  "client",
  "embedded",
  "namespace",
  "table",
  "unlogged",
  "createTable",
  "minSize",
  "maxSize",
  "maxEntries",
  "maxBytes",
  "localCache",
  "pooler",
  "leaseTimeout",
  "maxQueuedWrites",
  "maxBatchSize",
  "sweepInterval",
  "sweepBatchSize",
  "queryTimeout",
  "connectTimeout",
  "breakerThreshold",
  "breakerCooldown",
  "now",
  "onError",
] satisfies (keyof PostgresBackendOptions)[];
const LOCAL_OPTIONS: readonly string[] = [
  "maxEntries",
  "maxBytes",
  "maxAge",
  "pollInterval",
] satisfies (keyof LocalCacheOptions)[];
const EMBEDDED_OPTIONS: readonly string[] = [
  "dataDir",
  "PGlite",
] satisfies (keyof EmbeddedOptions)[];

/** Checks `options` once, and fills in the defaults. */
export function resolveOptions(
  options: PostgresBackendOptions,
): ResolvedOptions {
  // Missing options are told as a missing dsn, client or embedded.
  if (options !== undefined) checks.known(options, OPTIONS);
  const source = resolveSource(options);
  const namespace = checkNamespace(
    "PostgresBackend",
    options.namespace ?? "hono_cache",
  );
  const parts = parseTableName(options.table ?? "cachekit_entries");
  const onError = checks.function<CacheErrorHandler>(
    "onError",
    options.onError ?? burstLogger(),
  );
  const local = options.localCache;
  if (local !== undefined) {
    if (typeof local !== "object" || local === null) {
      checks.type("localCache", "an object", local);
    }
    checks.known(local, LOCAL_OPTIONS, "localCache.");
  }
  const pooler = options.pooler ?? "none";
  if (pooler !== "none" && pooler !== "transaction") {
    checks.type("pooler", `"none" or "transaction"`, pooler);
  }
  return {
    namespace,
    tableName: parts.join("."),
    sql: statements(
      parts,
      options.unlogged ?? true,
      namespace,
      pooler === "transaction",
    ),
    pooler: pooler === "transaction",
    leaseSeconds: checks.positiveInteger(
      "leaseTimeout",
      options.leaseTimeout ?? 30_000,
    ) / 1000,
    source,
    createTable: checks.boolean("createTable", options.createTable ?? true),
    sweepInterval: checks.nonNegativeNumber(
      "sweepInterval",
      options.sweepInterval ?? 60,
    ),
    sweepBatchSize: checks.positiveInteger(
      "sweepBatchSize",
      options.sweepBatchSize ?? 1000,
    ),
    queryTimeout: checks.positiveInteger(
      "queryTimeout",
      options.queryTimeout ?? 1000,
    ),
    connectTimeout: checks.positiveInteger(
      "connectTimeout",
      options.connectTimeout ?? 5000,
    ),
    maxEntries: checks.positiveInteger(
      "maxEntries",
      options.maxEntries ?? 100_000,
    ),
    maxBytes: checks.positiveInteger("maxBytes", options.maxBytes ?? 2 ** 28),
    maxBatchSize: checks.positiveInteger(
      "maxBatchSize",
      options.maxBatchSize ?? 64,
    ),
    maxInflight: source.kind === "dsn" ? Math.min(2, source.maxSize) : 1,
    maxQueuedWrites: checks.positiveInteger(
      "maxQueuedWrites",
      options.maxQueuedWrites ?? 1000,
    ),
    local: local && {
      maxEntries: checks.positiveInteger(
        "localCache.maxEntries",
        local.maxEntries ?? 1000,
      ),
      maxBytes: checks.positiveInteger(
        "localCache.maxBytes",
        local.maxBytes ?? 2 ** 26,
      ),
      maxAgeMs: checks.nonNegativeNumber(
        "localCache.maxAge",
        local.maxAge ?? 60,
      ) * 1000,
      pollIntervalMs: checks.positiveSeconds(
        "localCache.pollInterval",
        local.pollInterval ?? 1,
      ) * 1000,
    },
    breakerThreshold: checks.positiveInteger(
      "breakerThreshold",
      options.breakerThreshold ?? 5,
    ),
    breakerCooldown: checks.nonNegativeNumber(
      "breakerCooldown",
      options.breakerCooldown ?? 1000,
    ),
    now: checks.function<() => number>("now", options.now ?? Date.now),
    onError,
  };
}

/** Exactly one of `dsn`, `client` and `embedded`, checked. */
function resolveSource(options: PostgresBackendOptions): Source {
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
  if (options.dsn !== undefined) {
    const minSize = checks.positiveInteger("minSize", options.minSize ?? 1);
    const maxSize = checks.positiveInteger("maxSize", options.maxSize ?? 10);
    if (minSize > maxSize) {
      throw new RangeError(
        `Cannot create PostgresBackend: minSize must not exceed maxSize: received minSize ${minSize} and maxSize ${maxSize}`,
      );
    }
    return { kind: "dsn", dsn: checkDsn(options.dsn), minSize, maxSize };
  }
  if (options.client !== undefined) {
    return { kind: "client", client: options.client };
  }
  const embedded = options.embedded === true ? {} : options.embedded;
  if (typeof embedded !== "object" || embedded === null) {
    return checks.type("embedded", "true or { dataDir }", embedded);
  }
  checks.known(embedded, EMBEDDED_OPTIONS, "embedded.");
  if (embedded.PGlite !== undefined) {
    checks.function("embedded.PGlite", embedded.PGlite);
  }
  return { kind: "embedded", embedded };
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
    // Never the string itself: a DSN may hold a password.
    throw new TypeError(
      `Cannot create PostgresBackend: dsn must be a postgres:// or postgresql:// URL: received ${
        typeof dsn === "string" ? "a malformed string" : typeof dsn
      }`,
    );
  }
  return dsn;
}
