/**
 * The `Cache` facade, after fastapi-cachekit's `cache` object: initialise it
 * once with a backend, then decorate routes with `cache.cached()`.
 *
 * @example The seed's set-up
 * ```ts
 * import { Hono } from "hono";
 * import { cache } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 *
 * const app = new Hono();
 * cache.initApp(app, new MemoryBackend());
 * app.get("/expensive", cache.cached({ expire: 120 }), (c) =>
 *   c.json({ result: Number(c.req.query("x")) * 2 }));
 * ```
 *
 * @module
 */
import type {
  CacheBackend,
  CacheValue,
  TransactionOptions,
} from "../backends/types.ts";
import { OptionChecks, typeName } from "../core/options.ts";
import {
  invalidate,
  invalidateTags,
  type InvalidationTarget,
} from "./invalidate.ts";
import { cached } from "./cached.ts";
import type { AppFetcher, CachedOptions, CacheMiddleware } from "./types.ts";

/**
 * Options of {@linkcode Cache.init}: defaults for every `cache.cached()` route.
 *
 * @example Defaults for every route, overridden by one
 * ```ts
 * import { Hono } from "hono";
 * import { Cache, type CacheDefaults } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const defaults: CacheDefaults = {
 *   expire: 60,
 *   cacheStatusHeader: "X-Cache-Status",
 * };
 * const appCache = new Cache();
 * appCache.init(new MemoryBackend(), defaults);
 *
 * const app = new Hono();
 * app.get("/a", appCache.cached(), (c) => c.text("a"));
 * app.get("/b", appCache.cached({ expire: 5 }), (c) => c.text("b"));
 * const res = await app.request("/a");
 * assert.equal(res.headers.get("x-cache-status"), "MISS");
 * ```
 */
export type CacheDefaults = Omit<CachedOptions, "backend">;

/**
 * Options of {@linkcode Cache.wrap}: how the wrapped function's results are
 * keyed and kept.
 *
 * @example Keying by one argument, tagging by another
 * ```ts
 * import { Cache, type WrapOptions } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const appCache = new Cache();
 * const backend = new MemoryBackend();
 * appCache.init(backend);
 *
 * async function findOrder(id: number, userId: number) {
 *   return await Promise.resolve({ id, userId, total: 12.5 });
 * }
 * const options: WrapOptions<[number, number]> = {
 *   key: (id) => `order:${id}`,
 *   tags: (_id, userId) => [`user:${userId}`],
 *   expire: 300,
 * };
 * const cachedOrder = appCache.wrap(findOrder, options);
 * await cachedOrder(7, 42);
 * assert.deepEqual(await backend.get("order:7"), { id: 7, userId: 42, total: 12.5 });
 * assert.equal(await backend.invalidateTags(["user:42"]), 1);
 * ```
 */
export interface WrapOptions<A extends unknown[] = unknown[]> {
  /**
   * The cache key of a call, from its arguments.
   *
   * @default {`wrap:<name>:<SHA-256 of the name and the JSON of the arguments, object keys sorted>`}
   */
  key?: (...args: A) => string;
  /**
   * Seconds a result stays fresh.
   *
   * @default {undefined} never expires
   */
  expire?: number;
  /** Tags of each stored result, or a function of the arguments giving them. */
  tags?: readonly string[] | ((...args: A) => readonly string[]);
  /**
   * Seconds after expiry during which the stale result is returned at once
   * while one call refreshes it in the background.
   *
   * @default {0}
   */
  staleWhileRevalidate?: number;
  /**
   * Seconds after expiry during which the stale result is returned when the
   * function throws.
   *
   * @default {0}
   */
  staleIfError?: number;
}

const WRAP_OPTIONS: readonly string[] = [
  "key",
  "expire",
  "tags",
  "staleWhileRevalidate",
  "staleIfError",
] satisfies (keyof WrapOptions)[];

/**
 * Holds a backend and default options for {@linkcode cached} routes.
 *
 * @example A facade of one's own
 * ```ts
 * import { Hono } from "hono";
 * import { Cache } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 *
 * const appCache = new Cache();
 * appCache.init(new MemoryBackend(), { expire: 30 });
 * const app = new Hono();
 * app.get("/", appCache.cached(), (c) => c.text("hello"));
 * console.log((await app.request("/")).headers.get("x-cache")); // MISS
 * ```
 */
export class Cache {
  #backend: CacheBackend | undefined;
  #defaults: CacheDefaults = {};
  #app: AppFetcher | undefined;

  /**
   * The backend given to {@linkcode Cache.init}.
   *
   * @throws {Error} If the cache has not been initialised.
   */
  get backend(): CacheBackend {
    if (!this.#backend) {
      throw new Error(
        "Cache is not initialised: call cache.init(backend) or cache.initApp(app, backend) first",
      );
    }
    return this.#backend;
  }

  /**
   * The Hono app given to {@linkcode Cache.initApp}, if any.
   *
   * @returns The app, or `undefined`.
   */
  get app(): AppFetcher | undefined {
    return this.#app;
  }

  /**
   * Sets the backend, and defaults for every `cached()` route of this facade.
   *
   * @param backend Where entries are stored.
   * @param defaults Options applied to every route, overridable per route.
   * @throws {TypeError} If `backend` is not a backend.
   */
  init(backend: CacheBackend, defaults: CacheDefaults = {}): void {
    if (
      !backend || typeof backend.readEntry !== "function" ||
      typeof backend.writeEntry !== "function"
    ) {
      throw new TypeError(
        `Cannot initialise Cache: backend must be a CacheBackend: received ${typeof backend}`,
      );
    }
    this.#backend = backend;
    this.#defaults = { ...defaults };
  }

  /**
   * Like {@linkcode Cache.init}, and remembers the app the routes belong to
   * (the seed's `init_app`), through which stale entries are refreshed in
   * the background.
   *
   * @param app The Hono app.
   * @param backend Where entries are stored.
   * @param defaults Options applied to every route.
   * @throws {TypeError} If `backend` is not a backend.
   */
  initApp(
    app: AppFetcher,
    backend: CacheBackend,
    defaults: CacheDefaults = {},
  ): void {
    this.init(backend, defaults);
    this.#app = app;
  }

  /**
   * Removes the cached GET entry of a URL, a `Request` or a `Context`; see
   * {@linkcode invalidate}.
   *
   * @param target A path with query, a URL, a `Request` or a `Context`.
   * @param options `transaction`: the caller's postgres.js transaction.
   * @returns Whether an entry was removed.
   * @throws {Error} If the cache has not been initialised.
   */
  invalidate(
    target: InvalidationTarget,
    options?: TransactionOptions,
  ): Promise<boolean> {
    return invalidate(this.backend, target, options);
  }

  /**
   * Removes every entry carrying any of `tags`, in one statement.
   *
   * @param tags The tags.
   * @param options `transaction`: the caller's postgres.js transaction.
   * @returns How many entries were removed.
   * @throws {Error} If the cache has not been initialised.
   */
  invalidateTags(
    tags: readonly string[],
    options?: TransactionOptions,
  ): Promise<number> {
    return invalidateTags(this.backend, tags, options);
  }

  /**
   * Returns `fn` with its results cached in this facade's backend through
   * `backend.getOrSet`: a call whose key is stored returns the stored
   * result; concurrent calls with one key share one run of `fn`; the
   * database being down only means that `fn` runs. Results must be JSON
   * values or bytes (see `JsonValue`).
   *
   * The default key is the function's name and a SHA-256 of its name and
   * arguments as JSON (object keys sorted, so `{ a, b }` and `{ b, a }`
   * share a key); arguments JSON cannot encode stably (a `Map`, a class
   * instance, a bigint, a function) need `options.key`, and so does a
   * function without a name.
   *
   * @example Caching a slow lookup
   * ```ts
   * import { Cache } from "@cachekit/hono/middleware";
   * import { MemoryBackend } from "@cachekit/hono/memory";
   * import assert from "node:assert/strict";
   *
   * const appCache = new Cache();
   * appCache.init(new MemoryBackend());
   *
   * let queries = 0;
   * async function findUser(id: number): Promise<{ id: number; name: string }> {
   *   queries++;
   *   return await Promise.resolve({ id, name: "Ada" });
   * }
   * const cachedUser = appCache.wrap(findUser, { expire: 60 });
   * assert.deepEqual(await cachedUser(1), { id: 1, name: "Ada" });
   * assert.deepEqual(await cachedUser(1), { id: 1, name: "Ada" });
   * assert.equal(queries, 1);
   * await cachedUser(2); // other arguments, another entry
   * assert.equal(queries, 2);
   * ```
   *
   * @example An anonymous function needs a key
   * ```ts
   * import { Cache } from "@cachekit/hono/middleware";
   * import { MemoryBackend } from "@cachekit/hono/memory";
   * import assert from "node:assert/strict";
   *
   * const appCache = new Cache();
   * appCache.init(new MemoryBackend());
   * assert.throws(() => appCache.wrap((id: number) => id * 2), TypeError);
   * const double = appCache.wrap((id: number) => id * 2, {
   *   key: (id) => `double:${id}`,
   * });
   * assert.equal(await double(21), 42);
   * ```
   *
   * @param fn The function; its `this` is passed through.
   * @param options Key, expiry, tags and stale windows.
   * @returns A function of the same parameters, resolving to `fn`'s result.
   * @throws {TypeError} If `fn` is not a function, has no name and no
   * `options.key` is given, or an option is unknown or of the wrong type.
   * @throws {RangeError} If a number of seconds is out of range.
   */
  wrap<A extends unknown[], R extends CacheValue>(
    fn: (...args: A) => R | Promise<R>,
    options: WrapOptions<A> = {},
  ): (...args: A) => Promise<R> {
    const checks = new OptionChecks("Cannot wrap function");
    checks.function("fn", fn);
    checks.known(options, WRAP_OPTIONS);
    const name = fn.name;
    const key = options.key === undefined
      ? undefined
      : checks.function<(...args: A) => string>("key", options.key);
    if (key === undefined && name === "") {
      throw new TypeError(
        "Cannot wrap function: an anonymous function needs options.key, or a name",
      );
    }
    const { tags, expire, staleWhileRevalidate, staleIfError } = options;
    if (expire !== undefined) checks.positiveSeconds("expire", expire);
    for (
      const [option, value] of [
        ["staleWhileRevalidate", staleWhileRevalidate],
        ["staleIfError", staleIfError],
      ] as const
    ) {
      if (value !== undefined) checks.nonNegativeSeconds(option, value);
    }
    if (
      tags !== undefined && typeof tags !== "function" && !Array.isArray(tags)
    ) {
      checks.type("tags", "an array of strings or a function", tags);
    }
    const backendOf = () => this.backend;
    const wrapped = async function (this: unknown, ...args: A): Promise<R> {
      const backend = backendOf();
      if (typeof backend.getOrSet !== "function") {
        throw new TypeError(
          `Cannot call ${
            name || "the wrapped function"
          }: the backend has no getOrSet`,
        );
      }
      const found = key ? key(...args) : await defaultKey(name, args);
      if (typeof found !== "string") {
        checks.type("the key", "a string", found);
      }
      return await backend.getOrSet<R>(found, () => fn.apply(this, args), {
        expire,
        tags: typeof tags === "function" ? tags(...args) : tags,
        staleWhileRevalidate,
        staleIfError,
      });
    };
    Object.defineProperty(wrapped, "name", { value: name });
    return wrapped;
  }

  /**
   * A {@linkcode cached} middleware on this facade's backend and defaults.
   *
   * @param options Per-route options, over the defaults.
   * @returns The middleware.
   * @throws {Error} If the cache has not been initialised.
   */
  cached(options: CacheDefaults = {}): CacheMiddleware {
    return cached({
      ...this.#defaults,
      ...options,
      backend: this.backend,
      app: options.app ?? this.#defaults.app ?? this.#app,
    });
  }
}

/** `wrap:<name>:<SHA-256 hex of the name and the stable JSON of args>`. */
async function defaultKey(name: string, args: unknown[]): Promise<string> {
  const json = JSON.stringify([name, args], (_key, value: unknown) => {
    switch (typeof value) {
      case "bigint":
      case "function":
      case "symbol":
        return unkeyable(name, value);
      case "object":
        if (value === null || Array.isArray(value)) return value;
        if (!isPlain(value)) return unkeyable(name, value);
        return Object.fromEntries(
          Object.entries(value).sort(([a], [b]) => a < b ? -1 : a > b ? 1 : 0),
        );
      default:
        return value;
    }
  });
  const digest = await crypto.subtle.digest(
    "SHA-256",
    new TextEncoder().encode(json),
  );
  const hex = Array.from(
    new Uint8Array(digest),
    (byte) => byte.toString(16).padStart(2, "0"),
  ).join("");
  return `wrap:${name}:${hex}`;
}

function isPlain(value: object): boolean {
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

function unkeyable(name: string, value: unknown): never {
  throw new TypeError(
    `Cannot call ${name}: an argument is ${
      typeName(value)
    }, which has no stable JSON form for the default key: pass options.key to wrap()`,
  );
}

/**
 * The default {@linkcode Cache} instance, as in the seed's
 * `from fast_cache import cache`.
 *
 * @example Initialising the default instance
 * ```ts
 * import { Hono } from "hono";
 * import { cache } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 *
 * const app = new Hono();
 * cache.initApp(app, new MemoryBackend());
 * app.get("/", cache.cached({ expire: 60 }), (c) => c.text("hi"));
 * ```
 */
export const cache: Cache = new Cache();
