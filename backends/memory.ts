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
import {
  checkKey,
  checkNamespace,
  decodeValue,
  encodeValue,
  listedEtag,
  writeTerms,
  zeroCounters,
} from "./_codec.ts";
import type {
  CacheBackend,
  CacheEntry,
  CacheStats,
  CacheValue,
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
   * entries.
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
   * The clock, in milliseconds since the epoch. Tests inject one.
   *
   * @default {Date.now}
   */
  now?: () => number;
}

interface Slot {
  entry: CacheEntry;
  tags: string[];
  createdAt: number;
  expiresAt: number;
  staleUntil: number;
}

/**
 * A cache backend that keeps entries in this process's memory, with TTLs and
 * a least-recently-used bound on the number of entries.
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
  #maxEntries: number;
  #now: () => number;
  #slots = new Map<string, Slot>();
  #counters = zeroCounters();

  /**
   * Creates an empty memory backend.
   *
   * @param options Namespace, size bound and clock.
   * @throws {TypeError} If `namespace` is not a non-empty string.
   * @throws {RangeError} If `maxEntries` is not a positive integer.
   */
  constructor(options: MemoryBackendOptions = {}) {
    this.namespace = checkNamespace(
      "MemoryBackend",
      options.namespace ?? "hono_cache",
    );
    const maxEntries = options.maxEntries ?? 10_000;
    if (!Number.isInteger(maxEntries) || maxEntries < 1) {
      throw new RangeError(
        `Cannot create MemoryBackend: maxEntries must be a positive integer: received ${maxEntries}`,
      );
    }
    this.#maxEntries = maxEntries;
    this.#now = options.now ?? Date.now;
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
    const entry = await this.readEntry(key);
    return entry !== undefined && !entry.stale;
  }

  /**
   * Deletes the entry at `key`.
   *
   * @param key The key.
   * @returns Whether an entry was there.
   */
  // deno-lint-ignore require-await
  async delete(key: string): Promise<boolean> {
    return this.#slots.delete(checkKey(key));
  }

  /**
   * Deletes every entry.
   *
   * @returns Nothing.
   */
  clear(): Promise<void> {
    this.#slots.clear();
    return Promise.resolve();
  }

  /**
   * Deletes every entry carrying any of `tags`.
   *
   * @param tags The tags.
   * @returns How many entries were deleted.
   */
  invalidateTags(tags: readonly string[]): Promise<number> {
    const wanted = new Set(tags);
    let deleted = 0;
    for (const [key, slot] of this.#slots) {
      if (slot.tags.some((tag) => wanted.has(tag))) {
        this.#slots.delete(key);
        deleted++;
      }
    }
    return Promise.resolve(deleted);
  }

  /**
   * This process's counters, and the entries and bytes held.
   *
   * @returns The statistics.
   */
  stats(): Promise<CacheStats> {
    let bytes = 0;
    for (const slot of this.#slots.values()) {
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
   */
  // deno-lint-ignore require-await
  async readEntry(
    key: string,
    options?: ReadEntryOptions,
  ): Promise<StoredEntry | undefined> {
    const slot = this.#slots.get(checkKey(key));
    const now = this.#now();
    if (!slot || slot.staleUntil <= now) {
      if (slot) this.#slots.delete(key);
      this.#counters.misses++;
      return undefined;
    }
    if (slot.expiresAt <= now) this.#counters.staleServes++;
    else this.#counters.hits++;
    this.#slots.delete(key);
    this.#slots.set(key, slot);
    const notModified = listedEtag(slot.entry.etag, options?.etags ?? []);
    return {
      ...slot.entry,
      body: notModified ? new Uint8Array(0) : slot.entry.body.slice(),
      age: Math.max(0, (now - slot.createdAt) / 1000),
      stale: slot.expiresAt <= now,
      notModified,
    };
  }

  /**
   * Writes the raw entry at `key`.
   *
   * @param key The key.
   * @param entry The entry.
   * @param options Expiry, stale window and tags.
   * @returns Nothing.
   * @throws {RangeError} If `expire` or `staleFor` is out of range.
   */
  // deno-lint-ignore require-await
  async writeEntry(
    key: string,
    entry: CacheEntry,
    options?: WriteEntryOptions,
  ): Promise<void> {
    checkKey(key);
    const terms = writeTerms(options);
    const now = this.#now();
    const expiresAt = terms.expire === null
      ? Infinity
      : now + terms.expire * 1000;
    this.#slots.delete(key);
    this.#slots.set(key, {
      entry: { ...entry, body: entry.body.slice() },
      tags: terms.tags,
      createdAt: now,
      expiresAt,
      staleUntil: expiresAt + terms.staleFor * 1000,
    });
    while (this.#slots.size > this.#maxEntries) {
      this.#slots.delete(this.#slots.keys().next().value as string);
      this.#counters.evictions++;
    }
  }
}
