/**
 * The `cached()` Hono middleware: it caches GET responses in any
 * {@linkcode CacheBackend}, with HTTP semantics that never serve one user's
 * response to another.
 *
 * @example Caching a route in memory
 * ```ts
 * import { Hono } from "hono";
 * import { cached } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 *
 * const app = new Hono();
 * app.get("/time", cached({ backend: new MemoryBackend(), expire: 60 }), (c) =>
 *   c.json({ at: Date.now() }));
 *
 * const first = await app.request("/time");
 * const second = await app.request("/time");
 * console.log(first.headers.get("x-cache"), second.headers.get("x-cache")); // MISS HIT
 * ```
 *
 * @module
 */

import { burstLogger, report } from "../core/report.ts";
import { MAX_SECONDS, OptionChecks } from "../core/options.ts";
import type {
  CacheBackend,
  CacheErrorHandler,
  EntryLookup,
  KeyLock,
  StoredEntry,
} from "../backends/types.ts";
import { readBounded } from "./_body.ts";
import {
  bodyTag,
  deltaSeconds,
  etagMatches,
  headerList,
  mergeVary,
  parseCacheControl,
  parseIfNoneMatch,
  reduceMaxAge,
  varyValue,
} from "./_http.ts";
import { entryKey, KeyMemo, urlPart } from "./_key.ts";
import { delay, withinTime } from "../core/time.ts";

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
export type CacheStatus = "HIT" | "MISS" | "BYPASS" | "STALE";

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
   * Seconds an entry stays fresh. Without it, the handler's
   * `Cache-Control: s-maxage` or `max-age` decides (`s-maxage` wins), and
   * without those, 60.
   *
   * @default {60}
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
   * @default {[200]}
   */
  cacheableStatusCodes?: number[];
  /**
   * A `Cache-Control` value set on MISS and HIT responses, such as
   * `"public, max-age=60"`. On hits, `max-age` and `s-maxage` are reduced by
   * the entry's age.
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
   * bypass the cache.
   *
   * @default {false}
   */
  perUser?: boolean;
  /**
   * Honours a client's `Cache-Control: no-cache` (re-run the handler and
   * refresh the entry) and `no-store` (bypass). Off, any client could make
   * the cache useless, so they are ignored.
   *
   * @default {false}
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

/** Response headers that are not stored with an entry. */
const UNSTORED = new Set([
  "age",
  "connection",
  "content-length",
  "date",
  "etag",
  "keep-alive",
  "transfer-encoding",
]);

/** Response headers a 304 carries (RFC 9110, 15.4.5). */
const NOT_MODIFIED_HEADERS = new Set([
  "cache-control",
  "content-location",
  "expires",
  "vary",
]);

const DEFAULT_EXPIRE = 60;

/** A response in the form an entry keeps it. */
interface Replay {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
  etag: string;
}

/** What an HTTP entry's `meta` holds besides its body. */
interface Meta {
  status: number;
  headers: [string, string][];
  /** Seconds the entry was fresh for when written. */
  ttl?: number;
}

/** A computation in flight, shared by the requests that wait for it. */
interface Flight {
  replay: Promise<Replay | undefined>;
  /** The purge epoch it computes under: none is shared past a later purge. */
  epoch: number | undefined;
}

/** Work in flight per backend: writes, computations and refreshes by key. */
interface Flights {
  writes: Map<string, Promise<void>>;
  computing: Map<string, Flight>;
  refreshing: Map<string, Promise<void>>;
}

const flightsOf = new WeakMap<CacheBackend, Flights>();

function flights(backend: CacheBackend): Flights {
  let found = flightsOf.get(backend);
  if (!found) {
    found = { writes: new Map(), computing: new Map(), refreshing: new Map() };
    flightsOf.set(backend, found);
  }
  return found;
}

const checks = new OptionChecks("Cannot create cached middleware");

function invalid(message: string): never {
  throw new TypeError(`Cannot create cached middleware: ${message}`);
}

/**
 * Creates a Hono middleware that caches GET (and HEAD) responses in a
 * backend.
 *
 * A request is answered from the cache (`X-Cache: HIT`, with `Age`) when a
 * fresh entry exists; otherwise the handler runs and a storable response is
 * stored (`MISS`). Requests with `Authorization` or `Cookie`, and responses
 * that are private, carry `Set-Cookie` or are otherwise unsafe to share, are
 * passed through (`BYPASS`). Database faults never fail a request the handler
 * can answer: they are reported to `onError` and the request bypasses the
 * cache.
 *
 * @param options The backend and the caching rules.
 * @returns The middleware.
 * @throws {TypeError} If `backend` is missing, `vary` includes `*`, or an
 * option has the wrong type.
 * @throws {RangeError} If `expire`, `maxBodySize` or `lockTimeout` is out of
 * range.
 *
 * @example A cached JSON route
 * ```ts
 * import { Hono } from "hono";
 * import { cached } from "@cachekit/hono/middleware";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * let runs = 0;
 * const app = new Hono();
 * app.get(
 *   "/expensive",
 *   cached({ backend: new MemoryBackend(), expire: 120 }),
 *   (c) => {
 *     runs++;
 *     return c.json({ result: Number(c.req.query("x")) * 2 });
 *   },
 * );
 *
 * const miss = await app.request("/expensive?x=2");
 * const hit = await app.request("/expensive?x=2");
 * assert.equal(miss.headers.get("x-cache"), "MISS");
 * assert.equal(hit.headers.get("x-cache"), "HIT");
 * assert.deepEqual(await hit.json(), { result: 4 });
 * assert.equal(runs, 1);
 * ```
 */
export function cached(options: CachedOptions): CacheMiddleware {
  if (typeof options !== "object" || options === null) {
    invalid(`options must be an object: received ${options}`);
  }
  const backend = options.backend;
  if (
    !backend || typeof backend.readEntry !== "function" ||
    typeof backend.writeEntry !== "function"
  ) {
    invalid("backend must be a CacheBackend: received " + typeof backend);
  }
  const expire = options.expire === undefined
    ? undefined
    : checks.positiveSeconds("expire", options.expire, MAX_SECONDS);
  const vary = [
    ...new Set(
      (typeof options.vary === "string"
        ? headerList(options.vary)
        : (options.vary ?? []).map((name) => String(name).trim().toLowerCase()))
        .filter(Boolean),
    ),
  ].sort();
  if (vary.includes("*")) {
    invalid('vary must name request headers, and "*" would key on all of them');
  }
  const keyGenerator = options.keyGenerator;
  if (keyGenerator !== undefined && typeof keyGenerator !== "function") {
    invalid(`keyGenerator must be a function: received ${typeof keyGenerator}`);
  }
  const statuses = new Set(options.cacheableStatusCodes ?? [200]);
  for (const status of statuses) {
    if (!Number.isInteger(status) || status < 200 || status > 599) {
      throw new RangeError(
        `Cannot create cached middleware: cacheableStatusCodes must be HTTP statuses from 200 to 599: received ${status}`,
      );
    }
  }
  const cacheControl = options.cacheControl;
  if (cacheControl !== undefined && typeof cacheControl !== "string") {
    invalid(`cacheControl must be a string: received ${typeof cacheControl}`);
  }
  const maxBodySize = options.maxBodySize ?? 1024 * 1024;
  if (!Number.isInteger(maxBodySize) || maxBodySize < 0) {
    throw new RangeError(
      `Cannot create cached middleware: maxBodySize must be a non-negative integer: received ${maxBodySize}`,
    );
  }
  const statusHeader = options.cacheStatusHeader ?? "X-Cache";
  if (
    statusHeader !== false &&
    (typeof statusHeader !== "string" || !statusHeader)
  ) {
    invalid(
      `cacheStatusHeader must be a header name or false: received ${
        JSON.stringify(statusHeader)
      }`,
    );
  }
  const perUser = options.perUser ?? false;
  const honorRequest = options.honorRequestCacheControl ?? false;
  const tags = options.tags ?? [];
  if (typeof tags !== "function" && !Array.isArray(tags)) {
    invalid(`tags must be an array or a function: received ${typeof tags}`);
  }
  const wait = options.wait ?? false;
  const lockTimeout = options.lockTimeout ?? 5000;
  if (!Number.isInteger(lockTimeout) || lockTimeout < 0) {
    throw new RangeError(
      `Cannot create cached middleware: lockTimeout must be a non-negative integer of milliseconds: received ${lockTimeout}`,
    );
  }
  const swr = options.staleWhileRevalidate === undefined
    ? 0
    : checks.positiveSeconds(
      "staleWhileRevalidate",
      options.staleWhileRevalidate,
      MAX_SECONDS,
    );
  const sie = options.staleIfError === undefined
    ? 0
    : checks.positiveSeconds("staleIfError", options.staleIfError, MAX_SECONDS);
  const app = options.app;
  if (swr > 0 && typeof app?.fetch !== "function") {
    invalid(
      "staleWhileRevalidate needs the app to refresh entries in the background: pass app, or use cache.initApp(app, backend)",
    );
  }
  const onError = options.onError ?? burstLogger();
  if (typeof onError !== "function") {
    invalid(`onError must be a function: received ${typeof onError}`);
  }
  const keyed = new Set([
    ...vary,
    ...perUser ? ["authorization", "cookie"] : [],
  ]);
  const varyHeader = vary.length ? vary.join(", ") : undefined;
  const statusHeaderName = statusHeader ? statusHeader.toLowerCase() : "";
  const { writes, computing, refreshing } = flights(backend);
  const crossProcessLock = options.crossProcessLock ?? true;
  if (typeof crossProcessLock !== "boolean") {
    invalid(
      `crossProcessLock must be a boolean: received ${typeof crossProcessLock}`,
    );
  }
  const lock = crossProcessLock ? backend.lock?.bind(backend) : undefined;

  function mark(res: Response, status: CacheStatus): Response {
    if (statusHeader) res.headers.set(statusHeader, status);
    if (varyHeader) mergeVary(res.headers, varyHeader);
    return res;
  }

  /** Marks the context's response, copying it first if its headers are immutable. */
  function markContext(c: CacheContext, status: CacheStatus): void {
    try {
      mark(c.res, status);
    } catch {
      replace(c, mark(new Response(c.res.body, c.res), status));
    }
  }

  function fail(error: unknown, operation: string, key?: string): void {
    report(onError, error, { operation, namespace: backend!.namespace, key });
  }

  /** Why a response cannot be stored, or `undefined` when it can. */
  function unstorable(
    res: Response,
    credentialed: boolean,
  ): string | undefined {
    if (!statuses.has(res.status)) return "status";
    const headers = res.headers;
    if (headers.has("set-cookie")) return "set-cookie";
    const directives = parseCacheControl(headers.get("cache-control"));
    if (directives.has("no-store") || directives.has("no-cache")) {
      return "cache-control";
    }
    // `private` is for one user: storable only under that user's own key.
    if (directives.has("private") && !(perUser && credentialed)) {
      return "private";
    }
    if (headerList(headers.get("vary")).some((name) => !keyed.has(name))) {
      return "vary";
    }
    if (headers.get("content-type")?.startsWith("text/event-stream")) {
      return "stream";
    }
    return undefined;
  }

  /** Seconds the response stays fresh: `expire`, else the handler's. */
  function ttlOf(res: Response): number {
    if (expire !== undefined) return expire;
    const directives = parseCacheControl(res.headers.get("cache-control"));
    return deltaSeconds(directives, "s-maxage") ??
      deltaSeconds(directives, "max-age") ?? DEFAULT_EXPIRE;
  }

  function respond(
    replay: Pick<Replay, "status" | "headers" | "etag">,
    body: Uint8Array | null,
    status: CacheStatus,
    age: number | undefined,
    notModified: boolean,
  ): Response {
    // Header pairs, not a Headers object: it is the cheaper way to build one.
    const headers: [string, string][] = [];
    let stored: string | null = null;
    for (const pair of replay.headers) {
      const name = pair[0];
      if (notModified && !NOT_MODIFIED_HEADERS.has(name)) continue;
      if (name === "vary" && varyHeader) stored = pair[1];
      else if (name !== "cache-control" || cacheControl === undefined) {
        headers.push(pair);
      }
    }
    headers.push(["etag", replay.etag]);
    if (cacheControl !== undefined) {
      headers.push([
        "cache-control",
        age === undefined ? cacheControl : reduceMaxAge(cacheControl, age),
      ]);
    }
    if (age !== undefined) headers.push(["age", String(age)]);
    if (statusHeader) headers.push([statusHeader, status]);
    if (varyHeader) headers.push(["vary", varyValue(stored, varyHeader)]);
    return new Response(notModified ? null : body as BodyInit | null, {
      status: notModified ? 304 : replay.status,
      headers,
    });
  }

  /** The entry's metadata, or `undefined` (reported) when unreadable. */
  function metaOf(entry: StoredEntry): Meta | undefined {
    try {
      const meta = JSON.parse(entry.meta ?? "");
      if (typeof meta?.status === "number" && Array.isArray(meta.headers)) {
        return meta;
      }
    } catch {
      // Reported below.
    }
    fail(new TypeError("Unreadable cache entry metadata"), "decodeEntry");
    return undefined;
  }

  function fromEntry(
    entry: StoredEntry,
    meta: Meta,
    status: CacheStatus,
    etags: string[],
  ): Response {
    return respond(
      { status: meta.status, headers: meta.headers, etag: entry.etag ?? "" },
      entry.body,
      status,
      Math.floor(entry.age),
      entry.notModified || etagMatches(entry.etag, etags),
    );
  }

  /** Seconds since the entry expired (negative while fresh). */
  function pastExpiry(entry: StoredEntry, meta: Meta): number {
    return entry.age - (meta.ttl ?? 0);
  }

  const memo = new KeyMemo();

  async function keyOf(c: CacheContext): Promise<string> {
    const url = keyGenerator ? String(await keyGenerator(c)) : c.req.url;
    const headers = c.req.raw.headers;
    const values: (string | null)[] = vary.map((name) =>
      // A Request built from a full URL has no Host header: use the URL's.
      headers.get(name) ?? (name === "host" ? new URL(c.req.url).host : null)
    );
    if (perUser) {
      values.push(headers.get("authorization"), headers.get("cookie"));
    }
    // Generated keys are used as they are; URLs are normalized first.
    const input = JSON.stringify([keyGenerator ? 1 : 0, url, ...values]);
    return await memo.get(
      input,
      () => entryKey(keyGenerator ? url : urlPart(url), values),
    );
  }

  function replace(c: CacheContext, res: Response): void {
    // Hono merges the old response's headers into a new one; start afresh.
    (c as { res: Response | undefined }).res = undefined;
    c.res = res;
  }

  /** Writes the entry; resolves to whether it was stored. */
  function store(
    c: CacheContext,
    key: string,
    replay: Replay,
    ttl: number,
    entryTags: string[],
    epoch: number | undefined,
  ): Promise<boolean> {
    const meta: Meta = {
      status: replay.status,
      headers: replay.headers,
      ttl,
    };
    const write = backend!.writeEntry(key, {
      kind: 2,
      body: replay.body,
      meta: JSON.stringify(meta),
      etag: replay.etag,
    }, {
      expire: ttl,
      staleFor: Math.max(swr, sie),
      tags: entryTags,
      epoch,
    }).then(
      () => true,
      (error) => {
        fail(error, "writeEntry", key);
        return false;
      },
    );
    const pending = write.then(() => {});
    writes.set(key, pending);
    void write.finally(() => {
      if (writes.get(key) === pending) writes.delete(key);
    });
    keepAlive(c, pending);
    return write;
  }

  /**
   * Reads the entry, with the purge epoch where the backend keeps one,
   * reporting errors; `failed` when the backend failed.
   */
  async function read(
    key: string,
    etags: string[],
  ): Promise<EntryLookup | "failed"> {
    const options = { etags: withWeak(etags) };
    try {
      return backend!.lookup
        ? await backend!.lookup(key, options)
        : { entry: await backend!.readEntry(key, options), epoch: undefined };
    } catch (error) {
      fail(error, "readEntry", key);
      return "failed";
    }
  }

  /**
   * Takes the key's cross-process lock, waiting (bounded by `lockTimeout`)
   * while another process holds it. Resolves to a fresh entry written
   * meanwhile, or to the lock to compute under (`undefined`: compute without
   * one).
   */
  async function acquire(
    key: string,
  ): Promise<StoredEntry | KeyLock | undefined> {
    const deadline = Date.now() + lockTimeout;
    for (let pause = 5;; pause = Math.min(pause * 2, 100)) {
      let held: KeyLock;
      try {
        held = await lock!(key);
      } catch (error) {
        fail(error, "lock", key);
        return undefined;
      }
      if (held.acquired) {
        if (held.entry && !held.entry.stale && held.entry.kind === 2) {
          void held.release().catch((error) => fail(error, "unlock", key));
          return held.entry;
        }
        return held;
      }
      if (Date.now() + pause > deadline) return undefined;
      await delay(pause);
    }
  }

  /** Refreshes a stale entry in the background, once across instances. */
  function revalidate(
    c: CacheContext,
    key: string,
    epoch: number | undefined,
  ): void {
    if (refreshing.has(key)) return;
    const job = (async () => {
      const held = lock ? await lock(key) : undefined;
      try {
        if (held && (!held.acquired || (held.entry && !held.entry.stale))) {
          return;
        }
        const request = new Request(c.req.raw.url, {
          headers: c.req.raw.headers,
        });
        refreshRequests.set(request, epoch);
        const res = await app!.fetch(request, c.env);
        await res.body?.cancel();
      } finally {
        await held?.release();
      }
    })().catch((error) => fail(error, "revalidate", key))
      .finally(() => refreshing.delete(key));
    refreshing.set(key, job);
    keepAlive(c, job);
  }

  return async function cached(c, next) {
    const method = c.req.method;
    if (method !== "GET" && method !== "HEAD") {
      await next();
      return;
    }
    const headers = c.req.raw.headers;
    const requestDirectives = honorRequest
      ? parseCacheControl(headers.get("cache-control"))
      : undefined;
    if (
      (!perUser && (headers.has("authorization") || headers.has("cookie"))) ||
      requestDirectives?.has("no-store")
    ) {
      await next();
      markContext(c, "BYPASS");
      return;
    }

    let key: string;
    try {
      key = await keyOf(c);
    } catch (error) {
      fail(error, "key");
      await next();
      markContext(c, "BYPASS");
      return;
    }
    const etags = parseIfNoneMatch(headers.get("if-none-match"));
    // A background refresh of a stale entry computes, and waits for its write.
    const refresh = refreshRequests.has(c.req.raw);
    // The purge epoch this request computes under, where the backend keeps
    // one: its write does not land after a purge that follows it.
    let epoch = refreshRequests.get(c.req.raw);
    let healthy = true;
    let stale: { entry: StoredEntry; meta: Meta } | undefined;

    let settle: ((replay: Replay | undefined) => void) | undefined;
    const deadline = Date.now() + lockTimeout;
    const reading = !refresh && !requestDirectives?.has("no-cache");
    while (true) {
      if (reading) {
        await writes.get(key);
        const found = await read(key, etags);
        const entry = found === "failed" ? undefined : found.entry;
        if (found === "failed") healthy = false;
        else epoch = found.epoch;
        if (entry && entry.kind === 2) {
          const meta = metaOf(entry);
          if (meta && !entry.stale) {
            return fromEntry(entry, meta, "HIT", etags);
          }
          if (meta) stale = { entry, meta };
        }
        if (stale && pastExpiry(stale.entry, stale.meta) <= swr) {
          revalidate(c, key, epoch);
          return fromEntry(stale.entry, stale.meta, "STALE", etags);
        }
      }
      if (!healthy) break;
      // Another request of this process is computing the key: wait for it,
      // and look again if it produced nothing to share.
      // A computation that began before a purge is not shared after it.
      const flight = computing.get(key);
      const leader = flight && !(epoch! > flight.epoch!)
        ? flight.replay
        : undefined;
      const pending = writes.get(key);
      if (!leader && pending && reading) {
        // A computation just ended and its write is on its way: read that
        // instead of computing again. (This process's requests share one
        // lock session, where advisory locks are re-entrant, so the lock
        // would not stop a second computation here.)
        await pending;
        continue;
      }
      if (!leader) {
        const computation = new Promise<Replay | undefined>((resolve) =>
          settle = resolve
        );
        const mine: Flight = { replay: computation, epoch };
        computing.set(key, mine);
        void computation.then(() => {
          if (computing.get(key) === mine) computing.delete(key);
        });
        break;
      }
      const remaining = deadline - Date.now();
      const replay = remaining > 0
        ? await withinTime(leader, remaining)
        : undefined;
      if (replay) {
        return respond(
          replay,
          replay.body,
          "HIT",
          0,
          etagMatches(replay.etag, etags),
        );
      }
      if (Date.now() >= deadline) break;
    }

    let held: KeyLock | undefined;
    let written: Promise<boolean> | undefined;
    let replay: Replay | undefined;
    try {
      if (settle && lock && !refresh) {
        const got = await acquire(key);
        if (got && "acquired" in got) held = got;
        else if (got) {
          const meta = metaOf(got);
          if (meta) {
            // Written by another process meanwhile: share it in this one too.
            replay = {
              status: meta.status,
              headers: meta.headers,
              body: got.body,
              etag: got.etag ?? "",
            };
            return fromEntry(got, meta, "HIT", etags);
          }
        }
      }
      await next();
      const res = c.res;
      const failed = c.error !== undefined || res.status >= 500;
      if (failed && stale && pastExpiry(stale.entry, stale.meta) <= sie) {
        fail(
          c.error ?? new Error(`Handler answered ${res.status}`),
          "handler",
          key,
        );
        replace(c, fromEntry(stale.entry, stale.meta, "STALE", etags));
        return;
      }
      const credentialed = headers.has("authorization") ||
        headers.has("cookie");
      if (!healthy || failed || unstorable(res, credentialed)) {
        markContext(c, "BYPASS");
        return;
      }
      const ttl = ttlOf(res);
      if (ttl <= 0) {
        markContext(c, "BYPASS");
        return;
      }
      const body = await readBounded(res, maxBodySize);
      if (body instanceof ReadableStream) {
        replace(c, mark(new Response(body, res), "BYPASS"));
        return;
      }
      const kept: [string, string][] = [];
      for (const [name, value] of res.headers) {
        if (!UNSTORED.has(name) && name !== statusHeaderName) {
          kept.push([name, value]);
        }
      }
      replay = {
        status: res.status,
        headers: kept,
        body,
        etag: res.headers.get("etag") ?? await bodyTag(body),
      };
      let entryTags: string[] | undefined;
      try {
        entryTags = [...typeof tags === "function" ? tags(c) : tags];
      } catch (error) {
        // A failing tags function costs the entry, not the response.
        fail(error, "tags", key);
      }
      written = entryTags
        ? store(c, key, replay, ttl, entryTags, epoch)
        : Promise.resolve(false);
      const ok = entryTags !== undefined &&
        (wait || refresh ? await written : true);
      replace(
        c,
        respond(
          replay,
          body,
          ok ? "MISS" : "BYPASS",
          undefined,
          etagMatches(replay.etag, etags),
        ),
      );
    } finally {
      settle?.(replay);
      if (held) {
        // Release once the entry is written, so that waiters find it.
        const release = held.release;
        void (written ?? Promise.resolve(false))
          .then(() => release())
          .catch((error) => fail(error, "unlock", key));
      }
    }
  };
}

/** Requests made by a background refresh, which compute instead of reading. */
const refreshRequests = new WeakMap<Request, number | undefined>();

/** Both the strong and the weak form of each tag, for the backend's comparison. */
function withWeak(etags: string[]): string[] {
  return etags.flatMap((tag) => tag === "*" ? [tag] : [tag, `W/${tag}`]);
}

/** Asks the platform to keep running until `work` settles, where it can. */
function keepAlive(c: CacheContext, work: Promise<unknown>): void {
  let executionCtx: { waitUntil(promise: Promise<unknown>): void } | undefined;
  try {
    executionCtx = c.executionCtx as typeof executionCtx;
  } catch {
    // Deno.serve and Node have no execution context: work goes on anyway.
    return;
  }
  executionCtx?.waitUntil?.(work.catch(() => {}));
}
