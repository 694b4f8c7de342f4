/**
 * A cache backend over several backends (shards): each key lives on one
 * shard, chosen by rendezvous hashing of its name, the namespace and the
 * key. When one server's memory or write rate is not enough, spread the
 * cache over several databases.
 *
 * @example Spreading a cache over two shards
 * ```ts
 * import { ShardedBackend } from "@cachekit/hono/sharded";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 *
 * const backend = new ShardedBackend({
 *   shards: [
 *     { name: "a", backend: new MemoryBackend() },
 *     { name: "b", backend: new MemoryBackend() },
 *   ],
 * });
 * await backend.set("answer", 42, { expire: 60 });
 * console.log(await backend.get("answer")); // 42
 * console.log(backend.shardOf("answer").name); // "a" or "b", always the same
 * ```
 *
 * @module
 */
import { report } from "../core/report.ts";
import { checkEtags, checkKey, checkTags } from "./_validate.ts";
import { getOrSet } from "./_get_or_set.ts";
import type { CacheShardError } from "./_sharded/errors.ts";
import {
  type NamedShard,
  resolveOptions,
  type ShardedBackendOptions,
} from "./_sharded/options.ts";
import { Rendezvous } from "./_sharded/rendezvous.ts";
import { fanOut, gatherStats, type ShardedStats } from "./_sharded/fan_out.ts";
import type {
  CacheBackend,
  CacheEntry,
  CacheErrorHandler,
  CacheValue,
  EntryLookup,
  GetOrSetOptions,
  KeyLock,
  ReadEntryOptions,
  SetOptions,
  StoredEntry,
  TransactionOptions,
  WriteEntryOptions,
} from "./types.ts";

export { CacheShardError } from "./_sharded/errors.ts";
export type { NamedShard, ShardedBackendOptions } from "./_sharded/options.ts";
export type { ShardedStats, ShardStats } from "./_sharded/fan_out.ts";

/**
 * A cache backend that spreads keys over several backends (shards), so that
 * a cache can outgrow one server's memory or write rate. It works with the
 * middleware and the facade as any backend does.
 *
 * - **Placement.** Each key lives on one shard, chosen by rendezvous
 *   (highest-random-weight) hashing of the shard's name, the namespace and
 *   the key: stable across processes, and adding or removing a shard moves
 *   only about 1/N of the keys, none between the shards that stay.
 * - **Per shard.** A key's reads, writes, `delete`, purge epochs
 *   (`lookup`) and stampede lock (`lock`) all go to its shard.
 * - **Fan-out.** `clear()`, `invalidateTags()`, `stats()` and `close()` go
 *   to every shard in parallel and settle once all have answered. A shard
 *   that fails is reported to `onError` as a {@linkcode CacheShardError}
 *   while the others still do their part; `clear`, `invalidateTags` and
 *   `close` then reject with an `AggregateError` of the failures, so that a
 *   caller never takes a partial purge for a complete one.
 * - **Failure isolation.** A shard that is down fails only its own keys'
 *   calls, which the middleware answers without the cache (`BYPASS`); the
 *   other shards keep serving hits.
 *
 * `lock` is there when any shard has one; a key on a shard without one is
 * locked as by a backend of one process: acquired at once. `lookup`,
 * `invalidateTags` and `stats` are always there; `invalidateTags` rejects
 * with a `TypeError` when a shard has no `invalidateTags`.
 *
 * It takes no `transaction` option: one transaction cannot span the shards'
 * databases, and `delete`, `clear` and `invalidateTags` reject one with a
 * `TypeError`.
 *
 * @example Caching a route over two shards
 * ```ts
 * import { Hono } from "hono";
 * import { Cache } from "@cachekit/hono/middleware";
 * import { ShardedBackend } from "@cachekit/hono/sharded";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const cache = new Cache();
 * const app = new Hono();
 * cache.initApp(
 *   app,
 *   new ShardedBackend({
 *     shards: [
 *       { name: "a", backend: new MemoryBackend() },
 *       { name: "b", backend: new MemoryBackend() },
 *     ],
 *   }),
 * );
 * app.get("/items/:id", cache.cached({ expire: 60 }), (c) =>
 *   c.json({ id: c.req.param("id") }));
 *
 * assert.equal((await app.request("/items/1")).headers.get("x-cache"), "MISS");
 * assert.equal((await app.request("/items/1")).headers.get("x-cache"), "HIT");
 * ```
 *
 * @example Two PostgreSQL servers
 * ```ts ignore
 * import { PostgresBackend } from "@cachekit/hono/postgres";
 * import { ShardedBackend } from "@cachekit/hono/sharded";
 *
 * const backend = new ShardedBackend({
 *   shards: [
 *     { name: "cache-1", backend: new PostgresBackend({ dsn: Deno.env.get("CACHE_1_URL")! }) },
 *     { name: "cache-2", backend: new PostgresBackend({ dsn: Deno.env.get("CACHE_2_URL")! }) },
 *   ],
 * });
 * await backend.set("user:1", { name: "Ada" }, { expire: 120 });
 * await backend.close(); // closes both shards
 * ```
 *
 * @example Adding a shard moves only the keys it takes
 * ```ts
 * import { ShardedBackend } from "@cachekit/hono/sharded";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const a = { name: "a", backend: new MemoryBackend() };
 * const b = { name: "b", backend: new MemoryBackend() };
 * const c = { name: "c", backend: new MemoryBackend() };
 * const two = new ShardedBackend({ shards: [a, b] });
 * const three = new ShardedBackend({ shards: [c, b, a] }); // order is free
 * for (let i = 0; i < 1000; i++) {
 *   const before = two.shardOf(`k${i}`).name;
 *   const after = three.shardOf(`k${i}`).name;
 *   assert.ok(after === before || after === "c");
 * }
 * ```
 */
export class ShardedBackend implements CacheBackend {
  /** The namespace every key lives under: the shards'. */
  readonly namespace: string;
  #shards: readonly NamedShard[];
  #placement: Rendezvous;
  #onError: CacheErrorHandler;
  #closeShards: boolean;
  #closed: Promise<void> | undefined;

  /**
   * Creates the backend over `options.shards`. It neither connects nor waits:
   * each shard does as it does alone.
   *
   * @param options The shards, the error handler, and whether `close()`
   * closes the shards.
   * @throws {TypeError} If `shards` is not an array of backends and
   * `{ name, backend }` objects, a name is not a non-empty string without
   * control characters, or `onError` or `closeShards` is of the wrong type.
   * @throws {RangeError} If `shards` is empty, two shards share a name or a
   * backend, a name is over 256 bytes in UTF-8, or the shards' namespaces
   * differ.
   */
  constructor(options: ShardedBackendOptions) {
    const resolved = resolveOptions(options);
    this.#shards = resolved.shards;
    this.namespace = resolved.namespace;
    this.#onError = resolved.onError;
    this.#closeShards = resolved.closeShards;
    this.#placement = new Rendezvous(
      this.#shards.map((shard) => shard.name),
      this.namespace,
    );
    const backends = this.#shards.map((shard) => shard.backend);
    // Absent, not failing, where the shards cannot: the middleware checks.
    if (!backends.some((backend) => typeof backend.lock === "function")) {
      this.lock = undefined;
    }
  }

  /**
   * The shards with their names, in the order of the `shards` option.
   *
   * @returns The shards.
   */
  get shards(): readonly NamedShard[] {
    return this.#shards;
  }

  /**
   * The shard `key` lives on.
   *
   * @param key The key.
   * @returns The shard, with its name.
   * @throws {TypeError} If `key` is not a string, contains NUL or is not
   * well-formed UTF-16.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   *
   * @example Where a key lives
   * ```ts
   * import { ShardedBackend } from "@cachekit/hono/sharded";
   * import { MemoryBackend } from "@cachekit/hono/memory";
   * import assert from "node:assert/strict";
   *
   * const backend = new ShardedBackend({
   *   shards: [new MemoryBackend(), new MemoryBackend()], // named "0", "1"
   * });
   * await backend.set("k", "v");
   * const shard = backend.shardOf("k");
   * assert.equal(await shard.backend.get("k"), "v");
   * ```
   */
  shardOf(key: string): NamedShard {
    return this.#shards[this.#placement.pick(checkKey(key))];
  }

  /**
   * Resolves to the value at `key` on its shard, or `undefined` when missing
   * or expired.
   *
   * @param key The key.
   * @returns The value.
   * @throws {TypeError} If `key` is not a string, contains NUL or is not
   * well-formed UTF-16.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  async get(key: string): Promise<CacheValue | undefined> {
    return await this.#route("get", key).get(key);
  }

  /**
   * Stores a JSON value or bytes at `key` on its shard.
   *
   * @param key The key.
   * @param value The value.
   * @param options Expiry and tags.
   * @returns Nothing.
   * @throws {TypeError} If `key`, `value` or `tags` is malformed (see
   * {@linkcode CacheBackend.set}).
   * @throws {RangeError} If `key` or a tag is too long, or `expire` is out
   * of range.
   */
  async set(
    key: string,
    value: CacheValue,
    options?: SetOptions,
  ): Promise<void> {
    await this.#route("set", key).set(key, value, options);
  }

  /**
   * Resolves to the value at `key`, or computes it with `compute`, stores it
   * on the key's shard and resolves to it: one computation per key at a time
   * in this process, and across processes where the key's shard has `lock`.
   * A shard that fails is reported to `onError` and `compute` runs.
   *
   * @example Computing a value once
   * ```ts
   * import { ShardedBackend } from "@cachekit/hono/sharded";
   * import { MemoryBackend } from "@cachekit/hono/memory";
   * import assert from "node:assert/strict";
   *
   * const backend = new ShardedBackend({
   *   shards: [new MemoryBackend(), new MemoryBackend()],
   * });
   * let runs = 0;
   * const load = () => backend.getOrSet("user:1", () => {
   *   runs++;
   *   return { name: "Ada" };
   * }, { expire: 60 });
   * await Promise.all([load(), load()]);
   * assert.deepEqual(await load(), { name: "Ada" });
   * assert.equal(runs, 1);
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
      (error, operation, key) =>
        report(this.#onError, error, {
          operation,
          namespace: this.namespace,
          key,
        }),
    );
  }

  /**
   * Resolves to whether an unexpired value is stored at `key` on its shard.
   *
   * @param key The key.
   * @returns Whether it is there.
   * @throws {TypeError} If `key` is not a string, contains NUL or is not
   * well-formed UTF-16.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  async has(key: string): Promise<boolean> {
    return await this.#route("has", key).has(key);
  }

  /**
   * Deletes the entry at `key` on its shard.
   *
   * @param key The key.
   * @param options Must not hold a `transaction`.
   * @returns Whether an entry was there.
   * @throws {TypeError} If `key` is malformed, or a `transaction` is given.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  async delete(key: string, options?: TransactionOptions): Promise<boolean> {
    const backend = this.#route("delete", key);
    noTransaction("delete", options);
    return await backend.delete(key);
  }

  /**
   * Deletes every entry of the namespace on every shard, in parallel.
   *
   * @param options Must not hold a `transaction`.
   * @returns Nothing, once every shard has answered.
   * @throws {TypeError} If a `transaction` is given.
   * @throws {AggregateError} Of {@linkcode CacheShardError}s, once every
   * shard has answered, if any failed; the others were cleared.
   */
  async clear(options?: TransactionOptions): Promise<void> {
    noTransaction("clear", options);
    this.#checkOpen("clear");
    await this.#fanOut("clear", (backend) => backend.clear());
  }

  /**
   * Deletes every entry carrying any of `tags`, on every shard in parallel.
   *
   * @param tags The tags.
   * @param options Must not hold a `transaction`.
   * @returns How many entries were deleted, over all shards, once every
   * shard has answered.
   * @throws {TypeError} If `tags` is not an array of tags a write accepts,
   * a `transaction` is given, or a shard has no `invalidateTags`.
   * @throws {RangeError} If a tag is over 1024 bytes in UTF-8.
   * @throws {AggregateError} Of {@linkcode CacheShardError}s, once every
   * shard has answered, if any failed; the others were purged.
   */
  async invalidateTags(
    tags: readonly string[],
    options?: TransactionOptions,
  ): Promise<number> {
    checkTags(tags, "invalidate tags");
    noTransaction("invalidateTags", options);
    this.#checkOpen("invalidateTags");
    const without = this.#shards.filter(({ backend }) =>
      typeof backend.invalidateTags !== "function"
    );
    if (without.length > 0) {
      throw new TypeError(
        `Cannot invalidate tags: every shard must have an invalidateTags method: ${
          without.map(({ name }) => JSON.stringify(name)).join(", ")
        } ${without.length === 1 ? "has" : "have"} none`,
      );
    }
    const counts = await this.#fanOut(
      "invalidateTags",
      (backend) => backend.invalidateTags!(tags),
    );
    return counts.reduce<number>((sum, count) => sum + (count ?? 0), 0);
  }

  /**
   * Reads the raw entry at `key` on its shard, fresh or within its stale
   * window.
   *
   * @param key The key.
   * @param options The etags the client holds.
   * @returns The entry, or `undefined`.
   * @throws {TypeError} If `key` or `etags` is malformed (see
   * {@linkcode CacheBackend.readEntry}).
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  async readEntry(
    key: string,
    options?: ReadEntryOptions,
  ): Promise<StoredEntry | undefined> {
    return await this.#route("readEntry", key).readEntry(key, options);
  }

  /**
   * Reads the raw entry at `key` with its shard's purge epoch: the epoch
   * orders purges on that shard, which is where the key is written too. A
   * shard without `lookup` gives an `undefined` epoch.
   *
   * @param key The key.
   * @param options The etags the client holds.
   * @returns The entry, or `undefined`, and the epoch.
   * @throws {TypeError} If `key` or `etags` is malformed.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  async lookup(
    key: string,
    options?: ReadEntryOptions,
  ): Promise<EntryLookup> {
    const backend = this.#route("lookup", key);
    if (backend.lookup) return await backend.lookup(key, options);
    return { entry: await backend.readEntry(key, options), epoch: undefined };
  }

  /**
   * Writes the raw entry at `key` on its shard.
   *
   * @param key The key.
   * @param entry The entry.
   * @param options Expiry, stale window, tags and the purge epoch (from
   * {@linkcode ShardedBackend.lookup} of the same key).
   * @returns Nothing.
   * @throws {TypeError} If `key`, `entry` or `tags` is malformed.
   * @throws {RangeError} If `key` or a tag is too long, or `expire` or
   * `staleFor` is out of range.
   */
  async writeEntry(
    key: string,
    entry: CacheEntry,
    options?: WriteEntryOptions,
  ): Promise<void> {
    await this.#route("writeEntry", key).writeEntry(key, entry, options);
  }

  /**
   * Tries to lock `key` on its shard, across every process that uses it. On
   * a shard without locks (a backend of one process), the lock is acquired
   * at once and releasing it does nothing. Present only when some shard has
   * `lock`.
   *
   * @param key The key.
   * @param options The etags the client holds, for the shard's re-read.
   * @returns The lock, and the entry if the shard read one after taking it.
   * @throws {TypeError} If `key` or `etags` is malformed.
   * @throws {RangeError} If `key` is over 2048 bytes in UTF-8.
   */
  async lock?(key: string, options?: ReadEntryOptions): Promise<KeyLock> {
    const backend = this.#route("lock", key);
    if (backend.lock) return await backend.lock(key, options);
    checkEtags(options?.etags);
    return { acquired: true, release: () => Promise.resolve() };
  }

  /**
   * Every shard's statistics, asked in parallel, and their sums. A shard
   * whose `stats()` fails is reported to `onError` and left out of the sums.
   *
   * @returns The sums, and each shard's statistics.
   */
  async stats(): Promise<ShardedStats> {
    this.#checkOpen("stats");
    return await gatherStats(this.#shards, (error) => this.#report(error));
  }

  /**
   * Closes every shard in parallel, unless `closeShards` is `false`. Calling
   * it again does nothing; every other method then throws.
   *
   * @returns Nothing, once every shard has closed.
   * @throws {AggregateError} Of {@linkcode CacheShardError}s, once every
   * shard has answered, if any failed to close.
   */
  close(): Promise<void> {
    this.#closed ??= this.#closeShards
      ? this.#fanOut("close", (backend) => backend.close()).then(() => {})
      : Promise.resolve();
    return this.#closed;
  }

  /** The backend of `key`'s shard, once `key` is checked. */
  #route(operation: string, key: string): CacheBackend {
    const backend = this.#shards[this.#placement.pick(checkKey(key))].backend;
    this.#checkOpen(operation);
    return backend;
  }

  /** Runs `run` on every shard in parallel; see {@linkcode fanOut}. */
  #fanOut<T>(
    operation: string,
    run: (backend: CacheBackend) => Promise<T>,
  ): Promise<(T | undefined)[]> {
    return fanOut(this.#shards, operation, run, (e) => this.#report(e));
  }

  #report(error: CacheShardError): void {
    report(this.#onError, error, {
      operation: error.operation,
      namespace: this.namespace,
    });
  }

  #checkOpen(operation: string): void {
    if (this.#closed) {
      throw new Error(`Cannot ${operation}: the ShardedBackend is closed`);
    }
  }
}

/** Throws if `options` holds a transaction: it cannot span the shards. */
function noTransaction(operation: string, options?: TransactionOptions): void {
  if (options?.transaction !== undefined) {
    throw new TypeError(
      `Cannot ${operation}: ShardedBackend takes no transaction: one transaction cannot span the shards' databases`,
    );
  }
}
