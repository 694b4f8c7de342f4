/**
 * An in-process, size-bounded LRU cache backend. It is what tests and doc
 * examples use; in production it suits single-process apps.
 *
 * @example Caching a value in memory
 * ```ts
 * import { MemoryBackend } from "@cachekit/hono/memory";
 *
 * const backend = new MemoryBackend({ maxEntries: 100 });
 * await backend.set("answer", 42, { expire: 60 });
 * console.log(await backend.get("answer")); // 42
 * ```
 *
 * @module
 */
import { decodeValue, encodeValue, listedEtag } from "../core/entry.ts";
import {
  checkEntry,
  checkEtags,
  checkKey,
  checkNamespace,
  checkSetOptions,
  checkTags,
  writeTerms,
} from "./_validate.ts";
import { getOrSet, type GetOrSetOptions } from "./_get_or_set.ts";
import { zeroCounters } from "./_stats.ts";
import { entryBytes, Lru } from "../core/lru.ts";
import { OptionChecks } from "../core/options.ts";
import type {
  CacheBackend,
  CacheEntry,
  CacheStats,
  CacheValue,
  EntryLookup,
  ReadEntryOptions,
  SetOptions,
  StoredEntry,
  WriteEntryOptions,
} from "./types.ts";

/**
 * Options of {@linkcode MemoryBackend}.
 *
 * @example A small namespaced backend
 * ```ts
 * import {
 *   MemoryBackend,
 *   type MemoryBackendOptions,
 * } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const options: MemoryBackendOptions = {
 *   namespace: "sessions",
 *   maxEntries: 2,
 * };
 * const backend = new MemoryBackend(options);
 * await backend.set("a", 1);
 * await backend.set("b", 2);
 * await backend.set("c", 3); // evicts "a", the least recently used
 * assert.equal(await backend.get("a"), undefined);
 * assert.equal(backend.namespace, "sessions");
 * ```
 */
export interface MemoryBackendOptions {
  /**
   * Prefix of every key: backends with different namespaces keep separate
   * entries. A non-empty string of at most 256 bytes in UTF-8, well-formed
   * UTF-16, without control characters.
   *
   * @default {"hono_cache"}
   */
  namespace?: string;
  /**
   * The most entries kept; the least recently used is evicted beyond it.
   *
   * @default {10000}
   */
  maxEntries?: number;
  /**
   * The most bytes kept (bodies, keys and metadata, roughly); the least
   * recently used entries are evicted beyond it, and an entry larger than
   * it alone is not kept.
   *
   * @default {268435456}
   */
  maxBytes?: number;
  /**
   * The clock, in milliseconds since the epoch. Tests inject one.
   *
   * @default {Date.now}
   */
  now?: () => number;
}

const MEMORY_OPTIONS: readonly string[] = [
  "namespace",
  "maxEntries",
  "maxBytes",
  "now",
];

/**
 * The statistics of a {@linkcode MemoryBackend}: its entries and bytes are
 * always known.
 */
export type MemoryStats = CacheStats & { entries: number; bytes: number };

interface Slot {
  entry: CacheEntry;
  tags: string[];
  createdAt: number;
  expiresAt: number;
  staleUntil: number;
}

/**
 * A cache backend that keeps entries in this process's memory, with TTLs and
 * least-recently-used bounds on the number of entries and on their bytes.
 *
 * @example Expiry with an injected clock
 * ```ts
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * let now = 0;
 * const backend = new MemoryBackend({ now: () => now });
 * await backend.set("k", "v", { expire: 10 });
 * assert.equal(await backend.get("k"), "v");
 * now = 10_000;
 * assert.equal(await backend.get("k"), undefined);
 * ```
 */
export class MemoryBackend implements CacheBackend {
  /** The namespace every key of this backend lives under. */
  readonly namespace: string;
  #now: () => number;
  #slots: Lru<Slot>;
  #counters = zeroCounters();
  /** Bumped by every purge: writes computed under an older one do not land. */
  #epoch = 0;

  /**
   * Creates an empty memory backend.
   *
   * @param options Namespace, size bound and clock.
   * @throws {TypeError} If an option is unknown (the message names the
   * nearest valid one), `namespace` is not a non-empty string, has a
   * control character or is not well-formed UTF-16, or `now` is not a
   * function.
   * @throws {RangeError} If `namespace` is over 256 bytes in UTF-8, or
   * `maxEntries` or `maxBytes` is not a positive integer.
   */
  constructor(options: MemoryBackendOptions = {}) {
    const checks = new OptionChecks("Cannot create MemoryBackend");
    checks.known(options, MEMORY_OPTIONS);
    this.namespace = checkNamespace(
      "MemoryBackend",
      options.namespace ?? "hono_cache",
    );
    this.#slots = new Lru(
      checks.positiveInteger("maxEntries", options.maxEntries ?? 10_000),
      checks.positiveInteger("maxBytes", options.maxBytes ?? 2 ** 28),
      slotBytes,
    );
    this.#now = checks.function("now", options.now ?? Date.now);
  }

  /** The number of entries held, expired ones included until touched. */
  get size(): number {
    return this.#slots.size;
  }

  /**
   * Resolves to the value at `key`, or `undefined` when missing or expired.
   *
   * @param key The key.
   * @returns The value.
   * @throws {TypeError} If `key` is not a string, contains NUL or is not
   * well-formed UTF-16.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  async get(key: string): Promise<CacheValue | undefined> {
    const entry = await this.readEntry(key);
    return entry && !entry.stale ? decodeValue(entry) : undefined;
  }

  /**
   * Stores a JSON value or bytes at `key`.
   *
   * @param key The key.
   * @param value The value.
   * @param options Expiry and tags.
   * @throws {TypeError} If `key` is malformed (see `get`), `value` is not a
   * JSON value that JSON keeps exactly nor a `Uint8Array` (the message says
   * where), `options` is not an object of `expire` and `tags` (a number,
   * as a TTL, included), or `tags` is not an array of valid tags.
   * @throws {RangeError} If `key` or a tag is too long, or `expire` is not a
   * positive number of seconds up to 100 years.
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
   * it and resolves to it; concurrent calls for one key share one
   * computation.
   *
   * @example Computing a value once
   * ```ts
   * import { MemoryBackend } from "@cachekit/hono/memory";
   * import assert from "node:assert/strict";
   *
   * const backend = new MemoryBackend();
   * let runs = 0;
   * const load = () => backend.getOrSet("user:1", () => {
   *   runs++;
   *   return { name: "Ada" };
   * }, { expire: 60, tags: ["user:1"] });
   * const [a, b] = await Promise.all([load(), load()]);
   * assert.deepEqual(a, { name: "Ada" });
   * assert.deepEqual(b, { name: "Ada" });
   * assert.equal(runs, 1);
   * assert.deepEqual(await load(), { name: "Ada" });
   * assert.equal(runs, 1);
   * ```
   *
   * @param key The key.
   * @param compute Computes the value when none is stored.
   * @param options Expiry, tags and stale windows.
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
    return getOrSet(this, key, compute, options);
  }

  /**
   * Resolves to whether an unexpired value is stored at `key`.
   *
   * @param key The key.
   * @returns Whether it is there.
   * @throws {TypeError} If `key` is not a string, contains NUL or is not
   * well-formed UTF-16.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  async has(key: string): Promise<boolean> {
    const entry = await this.readEntry(key);
    return entry !== undefined && !entry.stale;
  }

  /**
   * Deletes the entry at `key`.
   *
   * @param key The key.
   * @returns Whether an entry was there.
   * @throws {TypeError} If `key` is not a string, contains NUL or is not
   * well-formed UTF-16.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  // deno-lint-ignore require-await
  async delete(key: string): Promise<boolean> {
    checkKey(key);
    this.#epoch++;
    return this.#slots.delete(key);
  }

  /**
   * Deletes every entry.
   *
   * @returns Nothing.
   */
  clear(): Promise<void> {
    this.#epoch++;
    this.#slots.clear();
    return Promise.resolve();
  }

  /**
   * Deletes every entry carrying any of `tags`.
   *
   * @param tags The tags.
   * @returns How many entries were deleted.
   * @throws {TypeError} If `tags` is not an array of tags a write accepts.
   * @throws {RangeError} If a tag is over 1024 bytes in UTF-8.
   */
  // deno-lint-ignore require-await
  async invalidateTags(tags: readonly string[]): Promise<number> {
    const wanted = new Set(checkTags(tags, "invalidate tags"));
    this.#epoch++;
    let deleted = 0;
    for (const [key, slot] of this.#slots.entries()) {
      if (slot.tags.some((tag) => wanted.has(tag))) {
        this.#slots.delete(key);
        deleted++;
      }
    }
    return deleted;
  }

  /**
   * This process's counters, and the entries and bytes held.
   *
   * @returns The statistics.
   */
  stats(): Promise<MemoryStats> {
    let bytes = 0;
    for (const [, slot] of this.#slots.entries()) {
      bytes += slot.entry.body.byteLength;
    }
    return Promise.resolve({
      entries: this.#slots.size,
      bytes,
      ...this.#counters,
    });
  }

  /**
   * Releases nothing: a memory backend holds no outside resources. It is
   * here so that backends can be swapped.
   *
   * @returns Nothing.
   */
  close(): Promise<void> {
    return Promise.resolve();
  }

  /**
   * Reads the raw entry at `key`, fresh or within its stale window.
   *
   * @param key The key.
   * @param options The etags the client holds.
   * @returns The entry, or `undefined`.
   * @throws {TypeError} If `key` is malformed (see `get`), or `etags` is not
   * an array of strings without control characters other than tab.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  // deno-lint-ignore require-await
  async readEntry(
    key: string,
    options?: ReadEntryOptions,
  ): Promise<StoredEntry | undefined> {
    const slot = this.#slots.get(checkKey(key));
    const etags = checkEtags(options?.etags);
    const now = this.#now();
    if (!slot || slot.staleUntil <= now) {
      if (slot) this.#slots.delete(key);
      this.#counters.misses++;
      return undefined;
    }
    if (slot.expiresAt <= now) this.#counters.staleServes++;
    else this.#counters.hits++;
    const notModified = listedEtag(slot.entry.etag, etags);
    return {
      ...slot.entry,
      body: notModified ? new Uint8Array(0) : slot.entry.body.slice(),
      age: Math.max(0, (now - slot.createdAt) / 1000),
      stale: slot.expiresAt <= now,
      freshFor: (slot.expiresAt - now) / 1000,
      notModified,
    };
  }

  /**
   * Reads the raw entry at `key`, as {@linkcode readEntry} does, with the
   * purge epoch.
   *
   * @param key The key.
   * @param options The etags the client holds.
   * @returns The entry, or `undefined`, and the epoch.
   * @throws {TypeError} If `key` or `etags` is malformed (see `readEntry`).
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  async lookup(
    key: string,
    options?: ReadEntryOptions,
  ): Promise<EntryLookup> {
    const epoch = this.#epoch;
    return { entry: await this.readEntry(key, options), epoch };
  }

  /**
   * Writes the raw entry at `key`.
   *
   * @param key The key.
   * @param entry The entry.
   * @param options Expiry, stale window and tags.
   * @returns Nothing.
   * @throws {TypeError} If `key` is malformed (see `get`), the entry's
   * `kind` is not 0, 1 or 2, its `body` not a `Uint8Array`, its `meta` has
   * NUL or its `etag` a control character other than tab (or either is not
   * well-formed), or `tags` is not an array of valid tags.
   * @throws {RangeError} If `key` or a tag is too long, or `expire` or
   * `staleFor` is out of range (positive, and non-negative, seconds up to
   * 100 years).
   */
  // deno-lint-ignore require-await
  async writeEntry(
    key: string,
    entry: CacheEntry,
    options?: WriteEntryOptions,
  ): Promise<void> {
    checkKey(key);
    checkEntry(entry);
    const terms = writeTerms(options);
    // Computed before a purge: it must not bring back what was purged.
    if (options?.epoch !== undefined && options.epoch !== this.#epoch) return;
    const now = this.#now();
    const expiresAt = terms.expire === null
      ? Infinity
      : now + terms.expire * 1000;
    this.#counters.evictions += this.#slots.set(key, {
      // A copy, and a plain Uint8Array even from a subclass such as Buffer.
      entry: { ...entry, body: new Uint8Array(entry.body) },
      tags: terms.tags,
      createdAt: now,
      expiresAt,
      staleUntil: expiresAt + terms.staleFor * 1000,
    });
  }
}

function slotBytes(key: string, slot: Slot): number {
  return entryBytes(key, slot.entry.body) + (slot.entry.meta?.length ?? 0) * 2;
}
