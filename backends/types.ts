/**
 * The interface every cache backend implements, and the types it exchanges.
 *
 * @example Using any backend through the interface
 * ```ts
 * import type { CacheBackend } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 *
 * async function remember(backend: CacheBackend): Promise<unknown> {
 *   await backend.set("greeting", { hello: "world" }, { expire: 60 });
 *   return await backend.get("greeting");
 * }
 *
 * console.log(await remember(new MemoryBackend()));
 * ```
 *
 * @module
 */
import type { GetOrSetOptions } from "./_get_or_set.ts";
import type { CacheStats } from "./_stats.ts";

export type { CacheStats, GetOrSetOptions };

/**
 * A value that survives a JSON round trip unchanged: plain objects (whose
 * prototype is `Object.prototype` or `null`), arrays without holes, strings
 * (lone surrogates included), finite numbers, booleans and `null`.
 *
 * Backends reject, with a `TypeError` that says where, anything JSON would
 * change or drop: a `Date`, `NaN` or `Infinity`, a `Map`, `Set` or other
 * class instance, a `Uint8Array` inside an object or array, an `undefined`
 * field, an array hole, a function, a symbol, a bigint, an object with a
 * `toJSON` method, and a cycle. Two exceptions read back as their nearest
 * JSON value: `-0` reads back as `0`, and a null-prototype object as a plain
 * object.
 *
 * @example Storing a JSON value
 * ```ts
 * import type { JsonValue } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const settings: JsonValue = { theme: "dark", sizes: [1, 2, 3], beta: null };
 * const backend = new MemoryBackend();
 * await backend.set("settings", settings);
 * assert.deepEqual(await backend.get("settings"), settings);
 * ```
 *
 * @example A value JSON would change is rejected, not changed
 * ```ts
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const backend = new MemoryBackend();
 * const when = new Date(0);
 * await assert.rejects(
 *   // @ts-expect-error: a Date is not a JsonValue
 *   backend.set("event", { when }),
 *   { name: "TypeError", message: "Cannot store value: value.when is a Date" },
 * );
 * await backend.set("event", { when: when.toISOString() });
 * ```
 */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/**
 * A value the value API stores: any {@linkcode JsonValue}, or raw bytes (a
 * top-level `Uint8Array`, or a subclass such as `Buffer`), which are kept
 * byte-exact and read back as a plain `Uint8Array`.
 *
 * @example Storing bytes
 * ```ts
 * import type { CacheValue } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const backend = new MemoryBackend();
 * const thumbnail: CacheValue = new Uint8Array([0x89, 0x50, 0x4e, 0x47]);
 * await backend.set("thumbnail:1", thumbnail);
 * assert.deepEqual(await backend.get("thumbnail:1"), thumbnail);
 * ```
 */
export type CacheValue = JsonValue | Uint8Array;

/**
 * How an entry's bytes are to be read back.
 *
 * - `0`: UTF-8 JSON text.
 * - `1`: raw bytes.
 * - `2`: an HTTP response body, with its status and headers in `meta`.
 *
 * @example Telling entries apart by kind
 * ```ts
 * import type { EntryKind } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const backend = new MemoryBackend();
 * await backend.set("json", { a: 1 });
 * await backend.set("bytes", new Uint8Array([1, 2]));
 * const kinds: (EntryKind | undefined)[] = [
 *   (await backend.readEntry("json"))?.kind,
 *   (await backend.readEntry("bytes"))?.kind,
 * ];
 * assert.deepEqual(kinds, [0, 1]);
 * ```
 */
export type EntryKind = 0 | 1 | 2;

/**
 * Options of {@linkcode CacheBackend.set}.
 *
 * @example Expiry and tags
 * ```ts
 * import type { SetOptions } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const options: SetOptions = { expire: 300, tags: ["user:42"] };
 * const backend = new MemoryBackend();
 * await backend.set("profile:42", { name: "Ada" }, options);
 * assert.equal(await backend.invalidateTags(["user:42"]), 1);
 * ```
 */
export interface SetOptions {
  /**
   * Seconds until the value expires: a positive number, at most 100 years
   * (3155760000).
   *
   * @default {undefined} never expires
   */
  expire?: number;
  /**
   * Tags to attach to the entry: an array of non-empty strings, each at most
   * 1024 bytes in UTF-8, well-formed UTF-16 and without control characters.
   *
   * @default {[]}
   */
  tags?: readonly string[];
}

/**
 * Runs a statement inside the caller's own postgres.js transaction, so that
 * it commits or rolls back with the caller's data change.
 *
 * @example Invalidating in the transaction that changes the data
 * ```ts ignore
 * import postgres from "postgres";
 * import { PostgresBackend } from "@cachekit/hono/postgres";
 *
 * const sql = postgres(Deno.env.get("DATABASE_URL")!);
 * const backend = new PostgresBackend({ client: sql });
 * await sql.begin(async (tx) => {
 *   await tx`UPDATE users SET name = ${"Ada"} WHERE id = ${42}`;
 *   // Removed only if the update commits.
 *   await backend.invalidateTags(["user:42"], { transaction: tx });
 * });
 * await backend.close();
 * await sql.end();
 * ```
 */
export interface TransactionOptions {
  /**
   * The transaction: the `sql` given to a postgres.js `sql.begin(async (sql)
   * => ...)` callback.
   */
  transaction?: {
    unsafe(
      query: string,
      parameters?: never[],
      options?: { prepare?: boolean },
    ): PromiseLike<readonly Record<string, unknown>[]>;
  };
}

/**
 * Options of {@linkcode CacheBackend.writeEntry}.
 *
 * @example Keeping an entry as stale after expiry
 * ```ts
 * import type { WriteEntryOptions } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * let now = 0;
 * const backend = new MemoryBackend({ now: () => now });
 * const options: WriteEntryOptions = { expire: 10, staleFor: 30 };
 * const body = new Uint8Array([1]);
 * await backend.writeEntry("report", { kind: 1, body }, options);
 * now = 20_000; // expired 10 s ago, still within the stale window
 * assert.equal((await backend.readEntry("report"))?.stale, true);
 * ```
 */
export interface WriteEntryOptions extends SetOptions {
  /**
   * Seconds after expiry during which the entry is still kept and returned
   * as stale: a non-negative number, at most 100 years (3155760000).
   *
   * @default {0}
   */
  staleFor?: number;
  /**
   * The purge epoch the entry was computed under, from
   * {@linkcode CacheBackend.lookup}: the write does not land when the
   * namespace was purged since (by `delete`, `clear` or `invalidateTags`),
   * so that no value computed before a purge is stored after it. Left out,
   * the write lands whatever was purged.
   */
  epoch?: number;
}

/**
 * What {@linkcode CacheBackend.lookup} finds: the entry, and the namespace's
 * purge epoch read with it.
 *
 * @example Storing a computation only if nothing was purged meanwhile
 * ```ts
 * import type { EntryLookup } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const backend = new MemoryBackend();
 * const found: EntryLookup = await backend.lookup("report");
 * assert.equal(found.entry, undefined);
 * // The source changes while the report is computed, and is purged:
 * await backend.delete("report");
 * const body = new TextEncoder().encode("old figures");
 * await backend.writeEntry("report", { kind: 1, body }, {
 *   epoch: found.epoch,
 * });
 * assert.equal(await backend.readEntry("report"), undefined);
 * ```
 */
export interface EntryLookup {
  /** The entry, fresh or within its stale window, or `undefined`. */
  entry: StoredEntry | undefined;
  /**
   * The namespace's purge epoch when it was read, for
   * {@linkcode WriteEntryOptions.epoch}; `undefined` when unknown (an entry
   * served from a local tier).
   */
  epoch: number | undefined;
}

/**
 * What {@linkcode CacheBackend.lookupOrLock} found: the entry and epoch, as
 * `lookup` reads them, and the key's lock when the entry was missing or
 * stale (`lock.acquired` tells whether it was taken).
 *
 * @example Computing a missing entry under its lock
 * ```ts ignore
 * import type { CacheBackend, LockedLookup } from "@cachekit/hono/types";
 *
 * declare const backend: CacheBackend;
 * const found: LockedLookup = await backend.lookupOrLock!("page:/");
 * if (found.lock?.acquired) await found.lock.release(); // after computing
 * ```
 */
export interface LockedLookup extends EntryLookup {
  /** The key's lock, tried only when the entry was missing or stale. */
  lock: KeyLock | undefined;
}

/**
 * Options of {@linkcode CacheBackend.readEntry}.
 *
 * @example A conditional read
 * ```ts
 * import type { ReadEntryOptions } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const backend = new MemoryBackend();
 * const body = new TextEncoder().encode("hello");
 * await backend.writeEntry("page", { kind: 1, body, etag: '"v1"' });
 *
 * const options: ReadEntryOptions = { etags: ['"v1"'] };
 * const entry = await backend.readEntry("page", options);
 * assert.equal(entry?.notModified, true);
 * assert.equal(entry?.body.byteLength, 0);
 * ```
 */
export interface ReadEntryOptions {
  /**
   * Entity tags the client already holds (`*` matches any). When the entry's
   * `etag` is among them, its body is not transferred and
   * {@linkcode StoredEntry.notModified} is `true`. Each is a well-formed
   * string without control characters other than tab.
   *
   * @default {[]}
   */
  etags?: readonly string[];
}

/**
 * An entry as it is written to a backend.
 *
 * @example Writing an HTTP response entry
 * ```ts
 * import type { CacheEntry } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const entry: CacheEntry = {
 *   kind: 2,
 *   body: new TextEncoder().encode("<h1>Hello</h1>"),
 *   meta: JSON.stringify({
 *     status: 200,
 *     headers: [["content-type", "text/html"]],
 *   }),
 *   etag: '"hello-v1"',
 * };
 * const backend = new MemoryBackend();
 * await backend.writeEntry("page:/", entry, { expire: 60 });
 * const stored = await backend.readEntry("page:/");
 * assert.equal(new TextDecoder().decode(stored?.body), "<h1>Hello</h1>");
 * assert.equal(stored?.etag, '"hello-v1"');
 * ```
 */
export interface CacheEntry {
  /** How {@linkcode CacheEntry.body} is to be read back. */
  kind: EntryKind;
  /** The stored bytes. */
  body: Uint8Array;
  /**
   * Opaque metadata text, such as an HTTP response's status and headers:
   * well-formed, without NUL.
   */
  meta?: string;
  /**
   * The entity tag of the body, if it has one: well-formed, without control
   * characters other than tab.
   */
  etag?: string;
}

/**
 * An entry as it is read back from a backend.
 *
 * @example Reading an entry's age
 * ```ts
 * import type { StoredEntry } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * let now = 0;
 * const backend = new MemoryBackend({ now: () => now });
 * await backend.set("k", "v", { expire: 60 });
 * now = 5_000;
 * const entry: StoredEntry | undefined = await backend.readEntry("k");
 * assert.equal(entry?.age, 5);
 * assert.equal(entry?.stale, false);
 * assert.equal(entry?.notModified, false);
 * ```
 */
export interface StoredEntry extends CacheEntry {
  /** Seconds since the entry was written, by the backend's clock. */
  age: number;
  /** Whether the entry has expired and is served from its stale window. */
  stale: boolean;
  /**
   * Seconds until the entry expires, negative once it has (`Infinity` for
   * never), by the backend's clock. Both built-in backends tell; the
   * middleware uses it to decide staleness windows.
   */
  freshFor?: number;
  /**
   * Whether the entry's etag matched {@linkcode ReadEntryOptions.etags}, in
   * which case {@linkcode CacheEntry.body} is empty.
   */
  notModified: boolean;
}

/**
 * A lock on one key across every process that shares a backend, from
 * {@linkcode CacheBackend.lock}.
 *
 * @example Computing under a lock where the backend has one
 * ```ts
 * import type { CacheBackend, KeyLock } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * async function withLock<T>(
 *   backend: CacheBackend,
 *   key: string,
 *   fn: (lock: KeyLock) => Promise<T>,
 * ): Promise<T> {
 *   // Backends of a single process have no lock: act as if it were taken.
 *   const lock: KeyLock = await backend.lock?.(key) ??
 *     { acquired: true, release: () => Promise.resolve() };
 *   try {
 *     return await fn(lock);
 *   } finally {
 *     await lock.release();
 *   }
 * }
 *
 * const backend = new MemoryBackend();
 * await withLock(backend, "report", async (lock) => {
 *   if (lock.acquired && !lock.entry) await backend.set("report", "computed");
 * });
 * assert.equal(await backend.get("report"), "computed");
 * ```
 */
export interface KeyLock {
  /** Whether this caller holds the lock and is to compute the key. */
  acquired: boolean;
  /**
   * The entry as read after the lock was taken: another process may have
   * written it since the caller last looked.
   */
  entry?: StoredEntry;
  /** Releases the lock. Calling it again does nothing. */
  release(): Promise<void>;
}

/**
 * A cache store. {@linkcode MemoryBackend} and {@linkcode PostgresBackend}
 * implement it; so can any other store.
 *
 * The value API (`get`, `set`, `has`, `delete`, `clear`) stores application
 * values; the entry API (`readEntry`, `writeEntry`) is what the `cached()`
 * middleware uses for HTTP responses.
 *
 * Every backend accepts and rejects the same inputs, and checks them before
 * any store sees them: a rejected input costs only its own call (never the
 * writes batched with it, and never a failure toward a circuit breaker). A
 * key is a string of at most 2048 bytes in UTF-8, well-formed UTF-16 (no
 * lone surrogates) and without NUL; keys are as distinct as the JavaScript
 * strings are. Tags, expiry and values follow {@linkcode SetOptions},
 * {@linkcode WriteEntryOptions} and {@linkcode JsonValue}.
 *
 * @example Computing a value once through the interface
 * ```ts
 * import type { CacheBackend } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const backend: CacheBackend = new MemoryBackend();
 * const compute = () => Promise.resolve(1);
 * assert.equal(await backend.getOrSet?.("n", compute, { expire: 60 }), 1);
 * assert.equal(await backend.getOrSet?.("n", () => 2), 1);
 * ```
 *
 * @example Implementing a backend by wrapping another
 * ```ts
 * import type {
 *   CacheBackend,
 *   CacheEntry,
 *   CacheValue,
 *   ReadEntryOptions,
 *   SetOptions,
 *   StoredEntry,
 *   WriteEntryOptions,
 * } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * // Delegates to another backend, counting the reads.
 * class CountingBackend implements CacheBackend {
 *   reads = 0;
 *   #inner: CacheBackend;
 *   constructor(inner: CacheBackend) {
 *     this.#inner = inner;
 *   }
 *   get namespace(): string {
 *     return this.#inner.namespace;
 *   }
 *   get(key: string): Promise<CacheValue | undefined> {
 *     this.reads++;
 *     return this.#inner.get(key);
 *   }
 *   set(key: string, value: CacheValue, options?: SetOptions): Promise<void> {
 *     return this.#inner.set(key, value, options);
 *   }
 *   has(key: string): Promise<boolean> {
 *     return this.#inner.has(key);
 *   }
 *   delete(key: string): Promise<boolean> {
 *     return this.#inner.delete(key);
 *   }
 *   clear(): Promise<void> {
 *     return this.#inner.clear();
 *   }
 *   close(): Promise<void> {
 *     return this.#inner.close();
 *   }
 *   readEntry(
 *     key: string,
 *     options?: ReadEntryOptions,
 *   ): Promise<StoredEntry | undefined> {
 *     this.reads++;
 *     return this.#inner.readEntry(key, options);
 *   }
 *   writeEntry(
 *     key: string,
 *     entry: CacheEntry,
 *     options?: WriteEntryOptions,
 *   ): Promise<void> {
 *     return this.#inner.writeEntry(key, entry, options);
 *   }
 * }
 *
 * const backend = new CountingBackend(new MemoryBackend());
 * await backend.set("k", "v");
 * await backend.get("k");
 * assert.equal(backend.reads, 1);
 * ```
 */
export interface CacheBackend {
  /**
   * The namespace every key of this backend lives under: a non-empty string
   * of at most 256 bytes in UTF-8, well-formed, without control characters.
   */
  readonly namespace: string;
  /**
   * Resolves to the value stored at `key`, or `undefined` when missing or
   * expired.
   *
   * @throws {TypeError} If `key` is not a string, contains NUL or is not
   * well-formed UTF-16.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  get(key: string): Promise<CacheValue | undefined>;
  /**
   * Stores `value` at `key`.
   *
   * @throws {TypeError} If `key` is malformed (see `get`), `value` is not a
   * {@linkcode JsonValue} that JSON keeps exactly nor a `Uint8Array`, or
   * `tags` is not an array of valid tags.
   * @throws {RangeError} If `key` or a tag is too long, or `expire` is not a
   * positive number of seconds up to 100 years.
   */
  set(key: string, value: CacheValue, options?: SetOptions): Promise<void>;
  /**
   * Resolves to whether a value that has not expired is stored at `key`.
   *
   * @throws {TypeError} If `key` is not a string, contains NUL or is not
   * well-formed UTF-16.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  has(key: string): Promise<boolean>;
  /**
   * Deletes the value at `key`, resolving to whether one was there.
   *
   * @throws {TypeError} If `key` is not a string, contains NUL or is not
   * well-formed UTF-16.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  delete(key: string, options?: TransactionOptions): Promise<boolean>;
  /** Deletes every entry of this backend's namespace. */
  clear(options?: TransactionOptions): Promise<void>;
  /** Releases the backend's resources. Calling it again does nothing. */
  close(): Promise<void>;
  /**
   * Reads the raw entry at `key`, fresh or within its stale window.
   *
   * @throws {TypeError} If `key` is malformed (see `get`), or `etags` is
   * not an array of strings without control characters other than tab.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  readEntry(
    key: string,
    options?: ReadEntryOptions,
  ): Promise<StoredEntry | undefined>;
  /**
   * Writes the raw entry at `key`.
   *
   * @throws {TypeError} If `key` is malformed (see `get`), the entry's
   * `kind`, `body`, `meta` or `etag` is (see {@linkcode CacheEntry}), or
   * `tags` is not an array of valid tags.
   * @throws {RangeError} If `key` or a tag is too long, or `expire` or
   * `staleFor` is out of range (see {@linkcode WriteEntryOptions}).
   */
  writeEntry(
    key: string,
    entry: CacheEntry,
    options?: WriteEntryOptions,
  ): Promise<void>;
  /**
   * Optional: tries to lock `key` across processes, so that one of them
   * computes it. Backends of a single process leave it out.
   *
   * @throws {TypeError} If `key` is not a string, contains NUL or is not
   * well-formed UTF-16.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  lock?(key: string, options?: ReadEntryOptions): Promise<KeyLock>;
  /**
   * Optional: reads as {@linkcode CacheBackend.readEntry} does, and returns
   * the namespace's purge epoch with the entry. The middleware computes a
   * missing entry under that epoch, so that a purge made meanwhile wins.
   *
   * @throws {TypeError} If `key` is not a string, contains NUL or is not
   * well-formed UTF-16.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  lookup?(key: string, options?: ReadEntryOptions): Promise<EntryLookup>;
  /**
   * Optional: reads the entry as `lookup` does and, only when it is missing
   * or stale, tries the key's lock in the same round trip. Whoever receives
   * an acquired lock releases it.
   *
   * @throws {TypeError} If `key` is malformed (see `get`).
   */
  lookupOrLock?(
    key: string,
    options?: ReadEntryOptions,
  ): Promise<LockedLookup>;
  /**
   * Optional: deletes every entry of the namespace carrying any of `tags`.
   *
   * @throws {TypeError} If `tags` is not an array of tags a write accepts.
   * @throws {RangeError} If a tag is over 1024 bytes in UTF-8.
   */
  invalidateTags?(
    tags: readonly string[],
    options?: TransactionOptions,
  ): Promise<number>;
  /** Optional: counters of this process and sizes of the namespace. */
  stats?(): Promise<CacheStats>;
  /**
   * Optional: resolves to the value at `key`, or computes it with `compute`,
   * stores it and resolves to it, one computation per key at a time (in
   * this process, and across processes where the backend has `lock`). The
   * cache never makes it reject: a failing store is reported and `compute`
   * runs. Both built-in backends have it.
   *
   * @throws {TypeError} If `key` is malformed (see `get`), `compute` is not
   * a function, an option is unknown or malformed, or the computed value
   * cannot be stored exactly (see {@linkcode JsonValue}).
   * @throws {RangeError} If `key` or a tag is too long, or a number of
   * seconds is out of range.
   * @throws {unknown} What `compute` throws, unless `staleIfError` serves a
   * stale value instead.
   */
  getOrSet?<T extends CacheValue>(
    key: string,
    compute: () => T | Promise<T>,
    options?: GetOrSetOptions,
  ): Promise<T>;
}

/**
 * Where a cache-side error happened, passed to {@linkcode CacheErrorHandler}.
 *
 * @example Reading the context in an error handler
 * ```ts
 * import { Hono } from "hono";
 * import type { CacheErrorContext } from "@cachekit/hono/types";
 * import { cached } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * // A backend whose reads always fail, as with a database that is down.
 * class FailingBackend extends MemoryBackend {
 *   override readEntry(): Promise<undefined> {
 *     return Promise.reject(new Error("database down"));
 *   }
 * }
 *
 * const seen: CacheErrorContext[] = [];
 * const app = new Hono();
 * app.get(
 *   "/",
 *   cached({
 *     backend: new FailingBackend(),
 *     onError: (_error, context) => seen.push(context),
 *   }),
 *   (c) => c.text("ok"),
 * );
 *
 * const res = await app.request("/");
 * assert.equal(await res.text(), "ok"); // the request goes on without the cache
 * assert.equal(seen[0].operation, "readEntry");
 * assert.equal(seen[0].namespace, "hono_cache");
 * ```
 */
export interface CacheErrorContext {
  /** The operation that failed, such as `"readEntry"` or `"sweep"`. */
  operation: string;
  /** The namespace of the backend. */
  namespace: string;
  /** The key involved, if any. */
  key?: string;
}

/**
 * Receives every cache-side error. Cache errors never fail a request that the
 * handler can answer; they are reported here instead.
 *
 * @example Logging cache errors as warnings
 * ```ts
 * import { Hono } from "hono";
 * import type { CacheErrorHandler } from "@cachekit/hono/types";
 * import { cached } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 *
 * const onError: CacheErrorHandler = (error, { operation, namespace, key }) => {
 *   const where = key === undefined ? namespace : `${namespace}/${key}`;
 *   console.warn(`cache ${operation} failed at ${where}:`, error);
 * };
 *
 * // The same handler suits cached() and `new PostgresBackend({ onError })`.
 * const app = new Hono();
 * app.get("/", cached({ backend: new MemoryBackend(), onError }), (c) =>
 *   c.text("ok"));
 * ```
 */
export type CacheErrorHandler = (
  error: unknown,
  context: CacheErrorContext,
) => void;
