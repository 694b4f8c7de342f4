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

/** A value that survives a JSON round trip unchanged. */
export type JsonValue =
  | string
  | number
  | boolean
  | null
  | JsonValue[]
  | { [key: string]: JsonValue };

/**
 * A value the value API stores: any JSON value, or raw bytes, which are kept
 * byte-exact.
 */
export type CacheValue = JsonValue | Uint8Array;

/**
 * How an entry's bytes are to be read back.
 *
 * - `0`: UTF-8 JSON text.
 * - `1`: raw bytes.
 * - `2`: an HTTP response body, with its status and headers in `meta`.
 */
export type EntryKind = 0 | 1 | 2;

/** Options of {@linkcode CacheBackend.set}. */
export interface SetOptions {
  /**
   * Seconds until the value expires.
   *
   * @default {undefined} never expires
   */
  expire?: number;
  /**
   * Tags to attach to the entry.
   *
   * @default {[]}
   */
  tags?: readonly string[];
}

/** Options of {@linkcode CacheBackend.writeEntry}. */
export interface WriteEntryOptions extends SetOptions {
  /**
   * Seconds after expiry during which the entry is still kept and returned
   * as stale.
   *
   * @default {0}
   */
  staleFor?: number;
}

/** Options of {@linkcode CacheBackend.readEntry}. */
export interface ReadEntryOptions {
  /**
   * Entity tags the client already holds (`*` matches any). When the entry's
   * `etag` is among them, its body is not transferred and
   * {@linkcode StoredEntry.notModified} is `true`.
   *
   * @default {[]}
   */
  etags?: readonly string[];
}

/** An entry as it is written to a backend. */
export interface CacheEntry {
  /** How {@linkcode CacheEntry.body} is to be read back. */
  kind: EntryKind;
  /** The stored bytes. */
  body: Uint8Array;
  /** Opaque metadata text, such as an HTTP response's status and headers. */
  meta?: string;
  /** The entity tag of the body, if it has one. */
  etag?: string;
}

/** An entry as it is read back from a backend. */
export interface StoredEntry extends CacheEntry {
  /** Seconds since the entry was written, by the backend's clock. */
  age: number;
  /** Whether the entry has expired and is served from its stale window. */
  stale: boolean;
  /** Seconds until the entry expires, where the backend tells. */
  freshFor?: number;
  /**
   * Whether the entry's etag matched {@linkcode ReadEntryOptions.etags}, in
   * which case {@linkcode CacheEntry.body} is empty.
   */
  notModified: boolean;
}

/** Counters and sizes of a backend, from `stats()`. */
export interface CacheStats {
  /** Entries stored in the namespace, expired ones not yet swept included. */
  entries: number;
  /** Bytes of stored values in the namespace. */
  bytes: number;
  /** Reads of this process that found a fresh entry. */
  hits: number;
  /** Reads of this process that found nothing. */
  misses: number;
  /** Reads of this process that found an expired entry in its stale window. */
  staleServes: number;
  /** Entries this process evicted to keep within the bounds. */
  evictions: number;
  /** Failed database operations of this process. */
  errors: number;
  /** Writes this process dropped because its write queue was full. */
  droppedWrites: number;
}

/**
 * A lock on one key across every process that shares a backend, from
 * {@linkcode CacheBackend.lock}.
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
 */
export interface CacheBackend {
  /** The namespace every key of this backend lives under. */
  readonly namespace: string;
  /** Resolves to the value stored at `key`, or `undefined` when missing or expired. */
  get(key: string): Promise<CacheValue | undefined>;
  /** Stores `value` at `key`. */
  set(key: string, value: CacheValue, options?: SetOptions): Promise<void>;
  /** Resolves to whether a value that has not expired is stored at `key`. */
  has(key: string): Promise<boolean>;
  /** Deletes the value at `key`, resolving to whether one was there. */
  delete(key: string): Promise<boolean>;
  /** Deletes every entry of this backend's namespace. */
  clear(): Promise<void>;
  /** Releases the backend's resources. Calling it again does nothing. */
  close(): Promise<void>;
  /** Reads the raw entry at `key`, fresh or within its stale window. */
  readEntry(
    key: string,
    options?: ReadEntryOptions,
  ): Promise<StoredEntry | undefined>;
  /** Writes the raw entry at `key`. */
  writeEntry(
    key: string,
    entry: CacheEntry,
    options?: WriteEntryOptions,
  ): Promise<void>;
  /**
   * Optional: tries to lock `key` across processes, so that one of them
   * computes it. Backends of a single process leave it out.
   */
  lock?(key: string, options?: ReadEntryOptions): Promise<KeyLock>;
  /** Optional: deletes every entry of the namespace carrying any of `tags`. */
  invalidateTags?(tags: readonly string[]): Promise<number>;
  /** Optional: counters of this process and sizes of the namespace. */
  stats?(): Promise<CacheStats>;
}

/** Where a cache-side error happened, passed to {@linkcode CacheErrorHandler}. */
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
 */
export type CacheErrorHandler = (
  error: unknown,
  context: CacheErrorContext,
) => void;
