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
import type { CacheBackend, TransactionOptions } from "../backends/types.ts";
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
