/**
 * The public types of the {@linkcode cached} middleware: its options, the
 * context its callbacks receive, the middleware itself and the statuses it
 * reports.
 *
 * @example Typing a route's options apart from the route
 * ```ts
 * import { Hono } from "hono";
 * import { cached, type CachedOptions } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const options: CachedOptions = { backend: new MemoryBackend(), expire: 30 };
 * const app = new Hono();
 * app.get("/", cached(options), (c) => c.text("home"));
 * assert.equal((await app.request("/")).headers.get("x-cache"), "MISS");
 * ```
 *
 * @module
 */

import type { CacheBackend, CacheErrorHandler } from "../backends/types.ts";

/**
 * The request side of {@linkcode CacheContext}: what `cached()` and its
 * callbacks read of Hono's `HonoRequest`.
 *
 * @example Keying on part of the request
 * ```ts
 * import { Hono } from "hono";
 * import { cached, type CacheRequest } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * // The path and the `lang` parameter: tracking parameters do not split entries.
 * function byLanguage(req: CacheRequest): string {
 *   return `${new URL(req.url).pathname}?lang=${req.query("lang") ?? "en"}`;
 * }
 *
 * const app = new Hono();
 * app.get(
 *   "/greeting",
 *   cached({
 *     backend: new MemoryBackend(),
 *     keyGenerator: (c) => byLanguage(c.req),
 *   }),
 *   (c) => c.text("hello"),
 * );
 * await app.request("/greeting?lang=en&utm_source=mail");
 * const res = await app.request("/greeting?utm_source=ad");
 * assert.equal(res.headers.get("x-cache"), "HIT");
 * ```
 */
export interface CacheRequest {
  /** The full URL. */
  readonly url: string;
  /** The method. */
  readonly method: string;
  /** The underlying `Request`. */
  readonly raw: Request;
  /** A path parameter. */
  param(name: string): string | undefined;
  /** A query parameter. */
  query(name: string): string | undefined;
  /** A request header. */
  header(name: string): string | undefined;
}

/**
 * The parts of Hono's `Context` that `cached()` and its callbacks
 * (`keyGenerator`, `tags`) use. Every Hono `Context` is one.
 *
 * @example Tagging entries with a context variable
 * ```ts
 * import { Hono } from "hono";
 * import { type CacheContext, cached } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * // The tenant an earlier middleware resolved.
 * const tenantTags = (c: CacheContext): string[] => [`tenant:${c.get("tenant")}`];
 *
 * const backend = new MemoryBackend();
 * const app = new Hono<{ Variables: { tenant: string } }>();
 * app.use(async (c, next) => {
 *   c.set("tenant", c.req.header("x-tenant") ?? "public");
 *   await next();
 * });
 * app.get("/news", cached({ backend, tags: tenantTags, wait: true }), (c) =>
 *   c.text("news"));
 *
 * await app.request("/news", { headers: { "x-tenant": "acme" } });
 * assert.equal(await backend.invalidateTags(["tenant:acme"]), 1);
 * ```
 */
export interface CacheContext {
  /** The request. */
  readonly req: CacheRequest;
  /** The response, once the handler has run; assigning replaces it. */
  res: Response;
  /** The error the handler threw, if it threw. */
  error: Error | undefined;
  /** The platform's bindings. */
  readonly env: unknown;
  /** The platform's execution context; reading it throws where there is none. */
  readonly executionCtx: unknown;
  /** A context variable set by earlier middleware (`c.set`). */
  get(key: string): unknown;
}

/**
 * A Hono middleware, as {@linkcode cached} returns it: it fits wherever Hono
 * takes a `MiddlewareHandler`.
 *
 * @example Skipping the cache for preview requests
 * ```ts
 * import { Hono } from "hono";
 * import { cached, type CacheMiddleware } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const inner = cached({ backend: new MemoryBackend() });
 * const unlessPreview: CacheMiddleware = async (c, next) => {
 *   if (c.req.header("x-preview")) return await next();
 *   return await inner(c, next);
 * };
 *
 * const app = new Hono();
 * app.get("/page", unlessPreview, (c) => c.text("draft or published"));
 * const res = await app.request("/page", { headers: { "x-preview": "1" } });
 * assert.equal(res.headers.get("x-cache"), null);
 * ```
 */
export type CacheMiddleware = (
  c: CacheContext,
  next: () => Promise<void>,
) => Promise<Response | void>;

/**
 * What `cached()` needs of a Hono app: its `fetch`.
 *
 * @example Giving the app for background refreshes
 * ```ts
 * import { Hono } from "hono";
 * import { type AppFetcher, cached } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const app = new Hono();
 * const fetcher: AppFetcher = app; // a Hono app is one
 * app.get(
 *   "/feed",
 *   cached({
 *     backend: new MemoryBackend(),
 *     expire: 30,
 *     staleWhileRevalidate: 300,
 *     app: fetcher,
 *   }),
 *   (c) => c.json([]),
 * );
 * const res = await app.request("/feed");
 * assert.equal(res.headers.get("x-cache"), "MISS");
 * ```
 */
export interface AppFetcher {
  /** Answers a request, as `app.fetch` does. */
  fetch(request: Request, env?: unknown): Response | Promise<Response>;
}

/**
 * The value of the cache status header on a response.
 *
 * @example Reading the status of responses
 * ```ts
 * import { Hono } from "hono";
 * import { cached, type CacheStatus } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const app = new Hono();
 * app.get("/", cached({ backend: new MemoryBackend() }), (c) => c.text("home"));
 *
 * const requests: HeadersInit[] = [{}, {}, { cookie: "session=1" }];
 * const statuses: CacheStatus[] = [];
 * for (const headers of requests) {
 *   const res = await app.request("/", { headers });
 *   statuses.push(res.headers.get("x-cache") as CacheStatus);
 * }
 * assert.deepEqual(statuses, ["MISS", "HIT", "BYPASS"]);
 * ```
 */
export type CacheStatus = "HIT" | "MISS" | "BYPASS" | "STALE" | "REVALIDATED";

/**
 * How {@linkcode cached} decides what to store and for how long:
 *
 * - `"app"`: the developer chose to cache the route. `expire` rules (else
 *   the handler's max-age, else 60 s), one entry per key, and only `vary`'s
 *   headers vary it.
 * - `"proxy"`: an RFC 9111 shared cache for routes that forward to an
 *   origin (Hono's `proxy()`, or a handler that `fetch`es). The origin's
 *   headers rule: what is stored, for how long, Vary, revalidation with
 *   conditional requests, and the client's request directives.
 *
 * @example A shared cache in front of an origin
 * ```ts
 * import { Hono } from "hono";
 * import { cached, type CacheMode } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const mode: CacheMode = "proxy";
 * const app = new Hono();
 * app.get("/asset", cached({ backend: new MemoryBackend(), mode }), () =>
 *   new Response("body", { headers: { "cache-control": "max-age=60" } }));
 *
 * await app.request("/asset");
 * const hit = await app.request("/asset");
 * assert.equal(hit.headers.get("cache-status"), "cachekit; hit; ttl=60");
 * ```
 */
export type CacheMode = "app" | "proxy";

/**
 * The `perUser` form that names the cookies identifying a user: only they
 * (and `Authorization`) enter the key, and other cookies are ignored.
 *
 * @example Keying on the session cookie alone
 * ```ts
 * import { Hono } from "hono";
 * import { cached, type PerUser } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const perUser: PerUser = { cookies: ["session"] };
 * const app = new Hono();
 * app.get("/me", cached({ backend: new MemoryBackend(), perUser }), (c) =>
 *   c.text(`hello ${c.req.header("cookie")}`));
 *
 * await app.request("/me", { headers: { cookie: "session=a; _ga=1" } });
 * const again = await app.request("/me", {
 *   headers: { cookie: "_ga=2; session=a" },
 * });
 * assert.equal(again.headers.get("x-cache"), "HIT");
 * ```
 */
export interface PerUser {
  /** The names of the cookies that identify a user. */
  cookies: string[];
}

/**
 * Options of {@linkcode cached}.
 *
 * @example A route cached per language, with a tag
 * ```ts
 * import { Hono } from "hono";
 * import { cached, type CachedOptions } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const backend = new MemoryBackend();
 * const options: CachedOptions = {
 *   backend,
 *   expire: 300,
 *   vary: ["accept-language"],
 *   cacheControl: "public, max-age=60",
 *   tags: ["catalog"],
 *   wait: true,
 * };
 * const app = new Hono();
 * app.get("/catalog", cached(options), (c) => c.json({ items: [] }));
 *
 * const res = await app.request("/catalog", {
 *   headers: { "accept-language": "fr" },
 * });
 * assert.equal(res.headers.get("cache-control"), "public, max-age=60");
 * assert.equal(await backend.invalidateTags(["catalog"]), 1);
 * ```
 */
export interface CachedOptions {
  /** Where entries are stored. Required unless the facade provides it. */
  backend?: CacheBackend;
  /**
   * `"app"` caches what the route's options say; `"proxy"` behaves as an
   * RFC 9111 shared cache, where the origin's headers decide.
   *
   * @default {"app"}
   */
  mode?: CacheMode;
  /**
   * Adds a `Cache-Status` header (RFC 9211) to every response, such as
   * `cachekit; hit; ttl=57` or `cachekit; fwd=uri-miss; stored`: `true` names
   * the cache `cachekit`, a string names it so, `false` leaves it out. An
   * upstream cache's members are kept, and this one's is appended.
   *
   * @default {true in proxy mode, false in app mode}
   */
  cacheStatus?: boolean | string;
  /**
   * Seconds an entry stays fresh. Without it, the handler's
   * `Cache-Control: s-maxage` or `max-age` decides (`s-maxage` wins), and
   * without those, 60. In proxy mode the origin's freshness always rules:
   * `expire` only gives a lifetime to a response that states none (no
   * max-age, s-maxage or Expires, and no Last-Modified for a heuristic).
   *
   * @default {60 in app mode; none in proxy mode}
   */
  expire?: number;
  /**
   * Request headers whose values become part of the key. Responses whose
   * `Vary` names a header not listed here are not stored.
   *
   * @default {[]}
   */
  vary?: string | string[];
  /**
   * Replaces the URL part of the key (path and sorted query). The namespace,
   * varied headers and credentials still apply.
   *
   * @default {undefined} the path and sorted query
   */
  keyGenerator?: (c: CacheContext) => string | Promise<string>;
  /**
   * Statuses that are stored.
   *
   * @default {[200] in app mode; in proxy mode the statuses RFC 9111 caches
   * understand: 200, 203, 204, 300, 301, 302, 307, 308, 404, 405, 410, 414,
   * 451 and 501}
   */
  cacheableStatusCodes?: number[];
  /**
   * A `Cache-Control` value set on MISS and HIT responses, such as
   * `"public, max-age=60"`. On hits, `max-age` and `s-maxage` are reduced by
   * the entry's age. Not in proxy mode, where the origin's header rules.
   *
   * @default {undefined} the handler's own header is kept
   */
  cacheControl?: string;
  /**
   * The largest body, in bytes, that is stored. Larger bodies pass through
   * intact without being buffered whole.
   *
   * @default {1048576}
   */
  maxBodySize?: number;
  /**
   * The name of the header that says HIT, MISS, STALE or BYPASS, or `false`
   * for none.
   *
   * @default {"X-Cache"}
   */
  cacheStatusHeader?: string | false;
  /**
   * Caches requests that carry `Authorization` or `Cookie`, keyed per
   * credential: the header values enter the hashed key (never stored in
   * clear), and responses marked `private` may be stored. Off, such requests
   * bypass the cache. `{ cookies: ["session"] }` keys on those cookies (and
   * `Authorization`) only: other cookies neither bypass nor enter the key.
   *
   * @default {false}
   */
  perUser?: boolean | PerUser;
  /**
   * Cookies that neither make a request bypass the cache nor enter its key,
   * by name or by pattern: analytics cookies such as `_ga` or `/^_utm/`. The
   * handler still sees them; a response that sets a cookie is still never
   * stored.
   *
   * @default {[]}
   */
  ignoreCookies?: (string | RegExp)[];
  /**
   * Honours a client's `Cache-Control: no-cache` (re-run the handler and
   * refresh the entry) and `no-store` (bypass). Off, any client could make
   * the cache useless, so they are ignored. In proxy mode it also honours
   * `max-age`, `min-fresh`, `max-stale`, `only-if-cached` and
   * `Pragma: no-cache`, and a `no-cache` revalidates with a conditional
   * request.
   *
   * @default {false in app mode, true in proxy mode}
   */
  honorRequestCacheControl?: boolean;
  /**
   * Tags stored with each entry, or a function of the context returning
   * them, for invalidation by tag.
   *
   * @default {[]}
   */
  tags?: string[] | ((c: CacheContext) => string[]);
  /**
   * Awaits the write of a MISS before responding. Off, the response is sent
   * while the write completes; reads in the same process still see it.
   *
   * @default {false}
   */
  wait?: boolean;
  /**
   * Milliseconds a request waits for a concurrent request computing the same
   * key in this process before running the handler itself.
   *
   * @default {5000}
   */
  lockTimeout?: number;
  /**
   * Coordinates misses across processes: one instance computes a cold key
   * while the others wait for its entry (a session-level advisory lock with
   * PostgresBackend). It costs a miss one more round trip before the handler
   * runs; off, concurrent misses are still coalesced within each process.
   *
   * @default {true}
   */
  crossProcessLock?: boolean;
  /**
   * Seconds after expiry during which the entry is served at once, with
   * `X-Cache: STALE`, while one refresh across all instances runs in the
   * background. Needs `app` (the facade's `initApp` provides it).
   *
   * @default {0}
   */
  staleWhileRevalidate?: number;
  /**
   * Seconds after expiry during which the entry is served, with
   * `X-Cache: STALE`, when the handler throws or answers 5xx. The error goes
   * to `onError`.
   *
   * @default {0}
   */
  staleIfError?: number;
  /**
   * The app the route belongs to; background refreshes are dispatched
   * through its `fetch`.
   *
   * @default {undefined}
   */
  app?: AppFetcher;
  /**
   * Receives every cache-side error; the request then goes on without the
   * cache.
   *
   * @default {console.error, once per burst}
   */
  onError?: CacheErrorHandler;
}
