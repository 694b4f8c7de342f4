/**
 * Invalidation of cached GET responses: by URL, and by tag.
 *
 * @example Invalidating on write
 * ```ts
 * import { Hono } from "hono";
 * import { cached, invalidate } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 *
 * const backend = new MemoryBackend();
 * const app = new Hono();
 * app.get("/users", cached({ backend }), (c) => c.json(["ada"]));
 * await app.request("/users?page=1");
 * console.log(await invalidate(backend, "/users?page=1")); // true
 * ```
 *
 * @module
 */
import type { CacheBackend, TransactionOptions } from "../backends/types.ts";
import type { CacheContext } from "./types.ts";
import { entryKey, urlPart } from "./_key.ts";

/**
 * What {@linkcode invalidate} takes: a path with query, a `Request`, or a Hono `Context`.
 *
 * @example Invalidating a GET from the handler that changes it
 * ```ts
 * import { Hono } from "hono";
 * import {
 *   cached,
 *   invalidate,
 *   type InvalidationTarget,
 * } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const backend = new MemoryBackend();
 * const app = new Hono();
 * app.get("/posts/:id", cached({ backend, wait: true }), (c) =>
 *   c.json({ id: c.req.param("id") }));
 * // The PUT has the GET's URL: its context is the target.
 * app.put("/posts/:id", async (c) =>
 *   c.json({ removed: await invalidate(backend, c) }));
 *
 * await app.request("/posts/7");
 * const res = await app.request("/posts/7", { method: "PUT" });
 * assert.deepEqual(await res.json(), { removed: true });
 *
 * // Paths, URLs and Requests are targets too.
 * const target: InvalidationTarget = new URL("http://localhost/posts/8");
 * assert.equal(await invalidate(backend, target), false);
 * ```
 */
export type InvalidationTarget = string | URL | Request | CacheContext;

function urlOf(target: InvalidationTarget): string | URL {
  if (typeof target === "string" || target instanceof URL) return target;
  if (target instanceof Request) return target.url;
  if (target && typeof target === "object" && "req" in target) {
    return target.req.url;
  }
  throw new TypeError(
    `Cannot invalidate: target must be a path, a URL, a Request or a Context: received ${typeof target}`,
  );
}

/**
 * Removes the cached GET entry of a URL, derived as `cached()` derives keys
 * (path and sorted query). The path is taken as written, as `cached()` takes
 * it from the request: `/a/../b`, `/a/%62` and `/a/b` are different entries,
 * since the router may send them to different routes. Entries of routes keyed
 * on more than the URL (`vary`, `perUser`, `keyGenerator`) are better
 * invalidated by tag.
 *
 * @param backend The backend the route caches in.
 * @param target A path with query (`"/users?id=1"`), an absolute URL (as a
 * string or a `URL`), a `Request` or a `Context`.
 * @param options With PostgresBackend, `transaction` runs the delete in the
 * caller's postgres.js transaction.
 * @returns Whether an entry was removed.
 * @throws {TypeError} If `target` is none of the accepted kinds, or a string
 * that is neither a path starting with `/` nor an absolute URL.
 *
 * @example Invalidating a URL
 * ```ts
 * import { Hono } from "hono";
 * import { cached, invalidate } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const backend = new MemoryBackend();
 * const app = new Hono();
 * app.get("/item", cached({ backend }), (c) => c.text("v1"));
 * await app.request("/item?b=2&a=1");
 * assert.equal(await invalidate(backend, "/item?a=1&b=2"), true);
 * assert.equal((await app.request("/item?a=1&b=2")).headers.get("x-cache"), "MISS");
 * ```
 */
export async function invalidate(
  backend: CacheBackend,
  target: InvalidationTarget,
  options?: TransactionOptions,
): Promise<boolean> {
  const key = await entryKey(urlPart(urlOf(target)), []);
  return await backend.delete(key, options);
}

/**
 * Removes every entry of the backend's namespace carrying any of `tags`.
 *
 * @param backend The backend.
 * @param tags The tags.
 * @param options With PostgresBackend, `transaction` runs the delete in the
 * caller's postgres.js transaction.
 * @returns How many entries were removed.
 * @throws {TypeError} If the backend does not support tags.
 *
 * @example Invalidating by tag
 * ```ts
 * import { Hono } from "hono";
 * import { cached, invalidateTags } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 *
 * const backend = new MemoryBackend();
 * const app = new Hono();
 * app.get("/users/:id", cached({ backend, tags: (c) => [`user:${c.req.param("id")}`] }),
 *   (c) => c.json({ id: c.req.param("id") }));
 * await app.request("/users/42");
 * console.log(await invalidateTags(backend, ["user:42"])); // 1
 * ```
 */
export async function invalidateTags(
  backend: CacheBackend,
  tags: readonly string[],
  options?: TransactionOptions,
): Promise<number> {
  if (typeof backend.invalidateTags !== "function") {
    throw new TypeError(
      "Cannot invalidate tags: the backend has no invalidateTags method",
    );
  }
  return await backend.invalidateTags(tags, options);
}
