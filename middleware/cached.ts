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
import type { Context, MiddlewareHandler } from "hono";
import { burstLogger, report } from "../backends/_report.ts";
import { positiveSeconds } from "../backends/_codec.ts";
import type {
  CacheBackend,
  CacheErrorHandler,
  StoredEntry,
} from "../backends/types.ts";
import {
  bodyTag,
  deltaSeconds,
  etagMatches,
  headerList,
  parseCacheControl,
  parseIfNoneMatch,
  reduceMaxAge,
} from "./_http.ts";
import { entryKey, urlPart } from "./_key.ts";

/** The value of the cache status header on a response. */
export type CacheStatus = "HIT" | "MISS" | "BYPASS" | "STALE";

/** Options of {@linkcode cached}. */
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
  keyGenerator?: (c: Context) => string | Promise<string>;
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
  tags?: string[] | ((c: Context) => string[]);
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

interface Meta {
  status: number;
  headers: [string, string][];
}

/** Work in flight per backend: pending writes and computations by key. */
interface Flights {
  writes: Map<string, Promise<void>>;
  computing: Map<string, Promise<Replay | undefined>>;
}

const flightsOf = new WeakMap<CacheBackend, Flights>();

function flights(backend: CacheBackend): Flights {
  let found = flightsOf.get(backend);
  if (!found) {
    found = { writes: new Map(), computing: new Map() };
    flightsOf.set(backend, found);
  }
  return found;
}

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
export function cached(options: CachedOptions): MiddlewareHandler {
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
    : positiveSeconds("expire", options.expire);
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
  const onError = options.onError ?? burstLogger();
  const keyed = new Set([
    ...vary,
    ...perUser ? ["authorization", "cookie"] : [],
  ]);
  const varyHeader = vary.length ? vary.join(", ") : undefined;
  const { writes, computing } = flights(backend);

  function mark(res: Response, status: CacheStatus): Response {
    if (statusHeader) res.headers.set(statusHeader, status);
    if (varyHeader) mergeVary(res.headers, varyHeader);
    return res;
  }

  /** Marks the context's response, copying it first if its headers are immutable. */
  function markContext(c: Context, status: CacheStatus): void {
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
  function unstorable(res: Response): string | undefined {
    if (!statuses.has(res.status)) return "status";
    const headers = res.headers;
    if (headers.has("set-cookie")) return "set-cookie";
    const directives = parseCacheControl(headers.get("cache-control"));
    if (directives.has("no-store") || directives.has("no-cache")) {
      return "cache-control";
    }
    if (directives.has("private") && !perUser) return "private";
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
    const headers = new Headers();
    for (const [name, value] of replay.headers) {
      if (!notModified || NOT_MODIFIED_HEADERS.has(name)) {
        headers.append(name, value);
      }
    }
    headers.set("etag", replay.etag);
    if (cacheControl !== undefined) {
      headers.set(
        "cache-control",
        age === undefined ? cacheControl : reduceMaxAge(cacheControl, age),
      );
    }
    if (age !== undefined) headers.set("age", String(age));
    return mark(
      new Response(notModified ? null : body as BodyInit | null, {
        status: notModified ? 304 : replay.status,
        headers,
      }),
      status,
    );
  }

  function fromEntry(
    entry: StoredEntry,
    status: CacheStatus,
    etags: string[],
  ): Response | undefined {
    let meta: Meta;
    try {
      meta = JSON.parse(entry.meta ?? "");
    } catch (error) {
      fail(error, "decodeEntry");
      return undefined;
    }
    const notModified = entry.notModified ||
      etagMatches(entry.etag, etags);
    return respond(
      { status: meta.status, headers: meta.headers, etag: entry.etag ?? "" },
      entry.body,
      status,
      Math.floor(entry.age),
      notModified,
    );
  }

  async function keyOf(c: Context): Promise<string> {
    const url = keyGenerator
      ? String(await keyGenerator(c))
      : urlPart(c.req.url);
    const headers = c.req.raw.headers;
    const values: (string | null)[] = vary.map((name) => headers.get(name));
    if (perUser) {
      values.push(headers.get("authorization"), headers.get("cookie"));
    }
    return await entryKey(url, values);
  }

  function replace(c: Context, res: Response): void {
    // Hono merges the old response's headers into a new one; start afresh.
    c.res = undefined;
    c.res = res;
  }

  async function store(
    key: string,
    replay: Replay,
    ttl: number,
    entryTags: string[],
  ): Promise<boolean> {
    const write = backend!.writeEntry(key, {
      kind: 2,
      body: replay.body,
      meta: JSON.stringify({ status: replay.status, headers: replay.headers }),
      etag: replay.etag,
    }, { expire: ttl, tags: entryTags }).then(
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
    return wait ? await write : true;
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
    let healthy = true;

    if (!requestDirectives?.has("no-cache")) {
      await writes.get(key);
      let entry: StoredEntry | undefined;
      try {
        entry = await backend!.readEntry(key, {
          etags: etags.flatMap((tag) =>
            tag === "*" ? [tag] : [tag, `W/${tag}`]
          ),
        });
      } catch (error) {
        fail(error, "readEntry", key);
        healthy = false;
      }
      if (entry && !entry.stale && entry.kind === 2) {
        const hit = fromEntry(entry, "HIT", etags);
        if (hit) return hit;
      }
      // Another request of this process is computing the key: wait for it.
      const leader = healthy ? computing.get(key) : undefined;
      if (leader) {
        const replay = await withinTime(leader, lockTimeout);
        if (replay) {
          return respond(
            replay,
            replay.body,
            "HIT",
            0,
            etagMatches(replay.etag, etags),
          );
        }
      }
    }

    let settle!: (replay: Replay | undefined) => void;
    if (healthy && !computing.has(key)) {
      const computation = new Promise<Replay | undefined>((resolve) =>
        settle = resolve
      );
      computing.set(key, computation);
      void computation.then(() => {
        if (computing.get(key) === computation) computing.delete(key);
      });
    }
    let replay: Replay | undefined;
    try {
      await next();
      const res = c.res;
      if (!healthy || c.error !== undefined || unstorable(res)) {
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
      const stored: [string, string][] = [];
      for (const [name, value] of res.headers) {
        if (
          !UNSTORED.has(name) &&
          (!statusHeader || name !== statusHeader.toLowerCase())
        ) {
          stored.push([name, value]);
        }
      }
      replay = {
        status: res.status,
        headers: stored,
        body,
        etag: res.headers.get("etag") ?? await bodyTag(body),
      };
      const entryTags = typeof tags === "function" ? tags(c) : tags;
      const ok = await store(key, replay, ttl, entryTags);
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
    }
  };
}

/** Reads a body of at most `limit` bytes; a larger one comes back as a stream of the whole body. */
async function readBounded(
  res: Response,
  limit: number,
): Promise<Uint8Array | ReadableStream<Uint8Array>> {
  const length = Number(res.headers.get("content-length") ?? NaN);
  if (length > limit && res.body) return res.body;
  if (!res.body) return new Uint8Array(0);
  const reader = res.body.getReader();
  const chunks: Uint8Array[] = [];
  let size = 0;
  while (true) {
    const { done, value } = await reader.read();
    if (done) break;
    chunks.push(value);
    size += value.byteLength;
    if (size > limit) return resume(chunks, reader);
  }
  const body = new Uint8Array(size);
  let offset = 0;
  for (const chunk of chunks) {
    body.set(chunk, offset);
    offset += chunk.byteLength;
  }
  return body;
}

/** A stream of the chunks already read, then the rest of `reader`. */
function resume(
  chunks: Uint8Array[],
  reader: ReadableStreamDefaultReader<Uint8Array>,
): ReadableStream<Uint8Array> {
  return new ReadableStream({
    async pull(controller) {
      const chunk = chunks.shift();
      if (chunk) return controller.enqueue(chunk);
      const { done, value } = await reader.read();
      if (done) controller.close();
      else controller.enqueue(value);
    },
    cancel: (reason) => reader.cancel(reason),
  });
}

function mergeVary(headers: Headers, names: string): void {
  const current = headers.get("vary");
  if (!current) return headers.set("vary", names);
  const have = new Set(headerList(current));
  const add = headerList(names).filter((name) => !have.has(name));
  if (add.length) headers.set("vary", `${current}, ${add.join(", ")}`);
}

function withinTime<T>(
  promise: Promise<T>,
  ms: number,
): Promise<T | undefined> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  return Promise.race([
    promise,
    new Promise<undefined>((resolve) => {
      timer = setTimeout(() => resolve(undefined), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
