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

import type { KeyLock } from "../backends/types.ts";
import { readBounded } from "./_body.ts";
import { Flights, refreshOf, type Settle } from "./_flight.ts";
import { etagMatches, parseIfNoneMatch } from "./_http.ts";
import { RequestKeys } from "./_key.ts";
import { resolveOptions } from "./_options.ts";
import { serveShared } from "./_proxy.ts";
import { type Route, tagsOf } from "./_route.ts";
import { keyed, telemetryFor } from "./_telemetry.ts";
import { invalidating, MethodNotice } from "./_unsafe.ts";
import {
  approachOf,
  freshLifetime,
  handlerFailed,
  unstorable,
  withinStaleWindow,
} from "./_policy.ts";
import {
  capture,
  decode,
  entryOf,
  replace,
  type Replay,
  replayOf,
  Replies,
  type Stored,
} from "./_replay.ts";
import type { CacheContext, CachedOptions, CacheMiddleware } from "./types.ts";

/**
 * Creates a Hono middleware that caches GET responses in a backend (HEAD is
 * answered from them, never stored).
 *
 * A request is answered from the cache (`X-Cache: HIT`, with `Age`) when a
 * fresh entry exists; otherwise the handler runs and a storable response is
 * stored (`MISS`). Requests with `Authorization` or `Cookie`, and responses
 * that are private, carry `Set-Cookie` or are otherwise unsafe to share, are
 * passed through (`BYPASS`). An unsafe method (POST, PUT, DELETE, PATCH, ...)
 * passes through untouched, and a non-error answer removes the entries of
 * its URL and of its same-origin `Location` and `Content-Location`. Database
 * faults never fail a request the handler can answer: they are reported to
 * `onError` and the request bypasses the cache.
 *
 * @param options The backend and the caching rules.
 * @returns The middleware.
 * @throws {TypeError} If `backend` is missing, `vary` includes `*`,
 * `staleWhileRevalidate` is set without an `app`, or an option has the wrong
 * type.
 * @throws {RangeError} If `expire`, `staleWhileRevalidate`, `staleIfError`,
 * `maxBodySize`, `lockTimeout` or a status of `cacheableStatusCodes` is out
 * of range.
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
  const resolved = resolveOptions(options);
  const telemetry = telemetryFor(resolved.backend);
  // Every report to onError is counted, in either mode.
  const settings = { ...resolved, fail: telemetry.counting(resolved.fail) };
  const route: Route = {
    settings,
    keys: new RequestKeys(settings),
    flights: new Flights(settings),
    replies: new Replies(settings),
    methods: new MethodNotice(),
  };
  const path = settings.mode === "proxy" ? serveShared : serve;
  return function cached(c, next) {
    return telemetry.request(route, c, next, path);
  };
}

/** What one request has learnt on its way through the cache. */
interface Visit {
  key: string;
  /** The entity tags of its `If-None-Match`. */
  etags: string[];
  /** Whether it is a background refresh: it computes, and awaits its write. */
  refresh: boolean;
  /** Whether the cache may answer it: neither a refresh nor a `no-cache`. */
  reading: boolean;
  /**
   * The purge epoch it computes under, where the backend keeps one: its
   * write does not land after a purge that follows the read.
   */
  epoch: number | undefined;
  /** Whether the backend answered: once it fails, the cache steps aside. */
  healthy: boolean;
  /** A stale entry it read, to answer with if the handler fails. */
  stale: Stored | undefined;
  /** Ends the computation it leads for others of this process, if it does. */
  lead: Settle | undefined;
  /**
   * The key's cross-process lock, taken with the read of a missing entry
   * (`lookupOrLock`): the computation adopts it, or it is released.
   */
  held: KeyLock | undefined;
}

/** What storing the handler's response produced, for the requests waiting on it. */
interface Outcome {
  replay: Replay;
  /** Resolves to whether the entry was stored. */
  written: Promise<boolean> | undefined;
}

/**
 * One request's path: bypass → key → lookup and flight (one loop: read the
 * entry, else share or lead this process's computation) → compute → store.
 */
async function serve(
  route: Route,
  c: CacheContext,
  next: () => Promise<void>,
): Promise<Response | void> {
  const { settings } = route;
  const headers = c.req.raw.headers;
  const approach = approachOf(c.req.method, headers, settings);
  if (approach === "pass" || approach === "invalidate") {
    route.methods.note(c, settings.fail);
    if (approach === "pass") return await next();
    return await invalidating(settings, route.keys, c, next);
  }
  if (approach === "bypass") return await bypass(route, c, next);
  let key: string;
  try {
    key = await route.keys.of(c);
  } catch (error) {
    settings.fail(error, "key");
    return await bypass(route, c, next);
  }
  keyed(c, key);
  const refresh = refreshOf(c.req.raw);
  const visit: Visit = {
    key,
    etags: parseIfNoneMatch(headers.get("if-none-match")),
    refresh: refresh !== undefined,
    reading: approach === "read" && refresh === undefined,
    epoch: refresh?.epoch,
    healthy: true,
    stale: undefined,
    lead: undefined,
    held: undefined,
  };
  if (c.req.raw.method === "HEAD") return await head(route, c, next, visit);
  try {
    return await findOrLead(route, c, visit) ??
      await compute(route, c, next, visit);
  } finally {
    // A lock taken with the read that no computation adopted.
    if (visit.held) route.flights.drop(visit.held, key);
  }
}

/**
 * A HEAD is answered from the GET entry when it can be, and otherwise by the
 * handler, never stored: its response has no body (a proxying route's
 * origin sends none), and storing it would empty the GET entry it shares a
 * key with.
 */
async function head(
  route: Route,
  c: CacheContext,
  next: () => Promise<void>,
  visit: Visit,
): Promise<Response | void> {
  if (visit.reading) {
    const answer = await readCache(route, c, visit, false);
    if (answer) return answer;
  }
  return await bypass(route, c, next);
}

/** The handler answers, and the response says the cache stood aside. */
async function bypass(
  route: Route,
  c: CacheContext,
  next: () => Promise<void>,
): Promise<void> {
  await next();
  route.replies.markContext(c, "BYPASS");
}

/**
 * Answers from the cache, or from a computation of this process; otherwise
 * resolves to `undefined`, the request to compute: as the leader the others
 * wait for (`visit.lead`), or alone when the backend failed or the wait
 * outlasted `lockTimeout`.
 */
async function findOrLead(
  route: Route,
  c: CacheContext,
  visit: Visit,
): Promise<Response | undefined> {
  const { flights } = route;
  const deadline = Date.now() + route.settings.lockTimeout;
  // A round waits either for a leader, until the deadline, or for a write
  // of this process, whose entry the next read then finds: a write follows
  // a computation, and computations of a key here are one at a time.
  while (true) {
    if (visit.reading) {
      const answer = await readCache(route, c, visit, visit.held === undefined);
      if (answer) return answer;
    }
    if (!visit.healthy) return undefined;
    const leader = flights.leader(visit.key, visit.epoch);
    if (!leader) {
      const landing = flights.landing(visit.key);
      if (landing && visit.reading) {
        // A computation just ended and its write is on its way: read that
        // instead of computing again. (This process's requests share one
        // lock session, where advisory locks are re-entrant, so the lock
        // would not stop a second computation here.)
        await landing;
        continue;
      }
      visit.lead = flights.lead(visit.key, visit.epoch);
      return undefined;
    }
    const replay = await flights.follow(leader, deadline);
    if (replay) {
      return route.replies.respond(replay, {
        status: "HIT",
        age: replay.age ?? 0,
        notModified: etagMatches(replay.etag, visit.etags),
      });
    }
    // The leader produced nothing to share: look again, while time is left.
    if (Date.now() >= deadline) return undefined;
  }
}

/**
 * Answers with the entry when it is fresh, or stale within
 * `staleWhileRevalidate` (refreshing it in the background); otherwise notes
 * what the read found on `visit`.
 */
async function readCache(
  route: Route,
  c: CacheContext,
  visit: Visit,
  mayLock: boolean,
): Promise<Response | undefined> {
  const { flights, replies } = route;
  // A write of this process lands first: reading it beats computing again.
  const landing = flights.landing(visit.key);
  if (landing) await landing;
  const found = await flights.lookup(visit.key, visit.etags, mayLock);
  if (found === "failed") visit.healthy = false;
  else {
    // A lock another process holds is only worth waiting on later.
    if (found.lock?.acquired) visit.held = found.lock;
    visit.epoch = found.epoch;
    const stored = decode(found.entry, route.settings.fail);
    if (stored && !stored.entry.stale) {
      return replies.fromEntry(stored, "HIT", visit.etags);
    }
    if (stored) visit.stale = stored;
  }
  const revalidation = route.settings.staleWhileRevalidate;
  if (
    revalidation && visit.stale &&
    withinStaleWindow(visit.stale, revalidation.seconds)
  ) {
    flights.revalidate(c, visit.key, visit.epoch, revalidation.app);
    return replies.fromEntry(visit.stale, "STALE", visit.etags);
  }
  return undefined;
}

/**
 * Runs the handler, under the key's cross-process lock where the backend has
 * one, and stores its response; shares the outcome with the requests of
 * this process waiting for it.
 */
async function compute(
  route: Route,
  c: CacheContext,
  next: () => Promise<void>,
  visit: Visit,
): Promise<Response | void> {
  const { flights } = route;
  let lock: KeyLock | undefined;
  let outcome: Outcome | undefined;
  try {
    // A refresh holds no lock of its own: the revalidation took it already.
    if (visit.held) {
      // Taken with the read of the missing entry: one round trip saved.
      if (visit.lead) [lock, visit.held] = [visit.held, undefined];
    } else if (visit.lead && !visit.refresh && flights.crossProcess) {
      // A client's no-cache takes the lock but never the entry under it.
      const acquired = await flights.acquire(visit.key, visit.reading);
      if (acquired && "lock" in acquired) lock = acquired.lock;
      else if (acquired) {
        const stored = decode(acquired.entry, route.settings.fail);
        if (stored) {
          // Written by another process meanwhile: share it in this one too.
          outcome = { replay: replayOf(stored), written: undefined };
          return route.replies.fromEntry(stored, "HIT", visit.etags);
        }
      }
    }
    await next();
    outcome = await store(route, c, visit);
  } finally {
    visit.lead?.(outcome?.replay);
    if (lock) flights.releaseAfter(lock, outcome?.written, visit.key);
  }
}

/**
 * Stores the handler's response when it may be shared, and makes the
 * context's response say what happened; a stale entry answers instead when
 * the handler failed within `staleIfError`.
 */
async function store(
  route: Route,
  c: CacheContext,
  visit: Visit,
): Promise<Outcome | undefined> {
  const { settings, replies } = route;
  const res = c.res;
  const failed = handlerFailed(c);
  if (
    failed && visit.stale &&
    withinStaleWindow(visit.stale, settings.staleIfError)
  ) {
    const error = c.error ?? new Error(`Handler answered ${res.status}`);
    settings.fail(error, "handler", visit.key);
    replace(c, replies.fromEntry(visit.stale, "STALE", visit.etags));
    return undefined;
  }
  const ttl = freshLifetime(res, settings.expire);
  if (
    !visit.healthy || failed ||
    unstorable(res, c.req.raw.headers, settings) !== undefined || ttl <= 0
  ) {
    replies.markContext(c, "BYPASS");
    return undefined;
  }
  const body = await readBounded(res, settings.maxBodySize);
  if (body instanceof ReadableStream) {
    // Too large to keep: it passes through, streamed.
    replace(c, replies.mark(new Response(body, res), "BYPASS"));
    return undefined;
  }
  const replay = await capture(res, body, settings.statusHeaderName);
  const tags = tagsOf(route, c, visit.key);
  const written = tags ? write(route, c, visit, replay, ttl, tags) : undefined;
  // A refresh waits for its write: the revalidation holds the lock till then.
  const stored = written !== undefined &&
    (settings.wait || visit.refresh ? await written : true);
  replace(
    c,
    replies.respond(replay, {
      status: stored ? "MISS" : "BYPASS",
      age: replay.age,
      notModified: etagMatches(replay.etag, visit.etags),
    }),
  );
  return { replay, written };
}

/** Writes the entry of `replay`; resolves to whether it was stored. */
function write(
  route: Route,
  c: CacheContext,
  visit: Visit,
  replay: Replay,
  ttl: number,
  tags: string[],
): Promise<boolean> {
  const { backend, staleFor } = route.settings;
  const key = visit.key;
  const write = backend.writeEntry(key, entryOf(replay, ttl), {
    expire: ttl,
    staleFor,
    tags,
    epoch: visit.epoch,
  });
  return route.flights.writing(c, key, write, replay.body.byteLength);
}
