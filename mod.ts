/**
 * A Hono middleware that caches HTTP responses and application values in
 * PostgreSQL, so that apps already on Postgres get a shared, persistent
 * cache without Redis. It ports fastapi-cachekit's `PostgresBackend`.
 *
 * - {@linkcode cached} caches GET responses of a route.
 * - {@linkcode cache} is a facade: `cache.initApp(app, backend)` once, then
 *   `cache.cached()` per route.
 * - {@linkcode PostgresBackend} stores entries in one (UNLOGGED) table,
 *   shared by every process on the database; {@linkcode MemoryBackend}
 *   keeps them in this process.
 *
 * @example Caching a route
 * ```ts
 * import { Hono } from "hono";
 * import { cache, MemoryBackend } from "@cachekit/hono";
 *
 * const app = new Hono();
 * cache.initApp(app, new MemoryBackend()); // or new PostgresBackend({ dsn })
 * app.get("/expensive", cache.cached({ expire: 120 }), (c) =>
 *   c.json({ result: Number(c.req.query("x")) * 2 }));
 *
 * const res = await app.request("/expensive?x=2");
 * console.log(res.headers.get("x-cache"), await res.json()); // MISS { result: 4 }
 * ```
 *
 * @module
 */
export * from "./backends/types.ts";
export * from "./backends/memory.ts";
export * from "./backends/postgres.ts";
export * from "./backends/sharded.ts";
export * from "./backends/sql_driver.ts";
export * from "./middleware/mod.ts";
