/**
 * The Hono side of the cache: the {@linkcode cached} middleware, the
 * {@linkcode Cache} facade, and invalidation.
 *
 * @example Caching a route and invalidating it
 * ```ts
 * import { Hono } from "hono";
 * import { cache } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 *
 * const app = new Hono();
 * cache.initApp(app, new MemoryBackend());
 * app.get("/users", cache.cached({ tags: ["users"] }), (c) => c.json(["ada"]));
 * await app.request("/users");
 * console.log(await cache.invalidateTags(["users"])); // 1
 * ```
 *
 * @module
 */
export * from "./types.ts";
export * from "./cached.ts";
export * from "./cache.ts";
export * from "./invalidate.ts";
