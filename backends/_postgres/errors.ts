// The errors PostgresBackend rejects with, beside a driver's own.

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

/** The SQLSTATE PostgreSQL answers a statement the role may not run with. */
export const INSUFFICIENT_PRIVILEGE = "42501";

/**
 * The error a statement rejects with when PostgreSQL answers "permission
 * denied" (SQLSTATE 42501). Its message names the grants the role needs:
 * SELECT, INSERT, UPDATE and DELETE on the table and its epochs table, and
 * EXECUTE on its eviction and purge functions. The server's error is its
 * `cause`.
 *
 * @example Telling a missing grant apart
 * ```ts
 * import { CachePermissionError } from "@cachekit/hono/postgres";
 * import assert from "node:assert/strict";
 *
 * const error = new CachePermissionError("cachekit_entries");
 * assert.match(error.message, /GRANT SELECT, INSERT, UPDATE, DELETE ON/);
 * assert.match(error.message, /EXECUTE ON FUNCTION "cachekit_entries_evict"/);
 * ```
 */
export class CachePermissionError extends Error {
  /**
   * Creates the error.
   *
   * @param table The table as named in the options, `name` or `schema.name`.
   * @param options The server's error, as `cause`.
   *
   * @example Reading the grants from the message
   * ```ts
   * import { CachePermissionError } from "@cachekit/hono/postgres";
   *
   * console.log(new CachePermissionError("cachekit_entries").message);
   * ```
   */
  constructor(table: string, options?: ErrorOptions) {
    const parts = table.split(".");
    const name = (suffix: string) =>
      [...parts.slice(0, -1), `${parts[parts.length - 1]}${suffix}`]
        .map((part) => `"${part}"`).join(".");
    const cause = (options?.cause as { message?: unknown } | undefined)
      ?.message;
    super(
      `Permission denied on the cache table ${
        name("")
      }: the role needs GRANT SELECT, INSERT, UPDATE, DELETE ON ${name("")}, ${
        name("_epochs")
      } and GRANT EXECUTE ON FUNCTION ${name("_evict")}, ${
        name("_purge")
      } (and CREATE on the schema if the table is not there yet)${
        typeof cause === "string" ? `: ${cause}` : ""
      }`,
      options,
    );
    this.name = "CachePermissionError";
  }
}

/** Whether `error` is PostgreSQL's "permission denied" (SQLSTATE 42501). */
export function isPermissionDenied(error: unknown): boolean {
  const e = error as { code?: unknown; fields?: { code?: unknown } } | null;
  return e?.code === INSUFFICIENT_PRIVILEGE ||
    e?.fields?.code === INSUFFICIENT_PRIVILEGE;
}
