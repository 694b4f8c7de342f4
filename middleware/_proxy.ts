// cached()'s proxy mode: an RFC 9111 shared cache in front of a route that
// forwards to an origin. The origin's headers decide what is stored and for
// how long; requests are answered fresh, stale where a rule allows it, or
// forwarded, with a conditional request when a stored response can be
// validated. One request's path, top to bottom:
//
//   serve      unsafe methods invalidate; Range, cookies and no-store bypass
//   read       the URL's entry, then its variant's when responses vary
//   answer     fresh: HIT | max-stale: STALE | stale-while-revalidate: STALE,
//              and one refresh in the background
//   flight     share this process's computation of the key, or lead it
//   forward    under the cross-process lock; conditional when validating
//   settle     failed: stale-if-error or pass on | 304: update, REVALIDATED
//              | storable: store, MISS | else BYPASS
import type { KeyLock } from "../backends/types.ts";
import { MAX_SECONDS } from "../core/options.ts";
import { readBounded } from "./_body.ts";
import type { StatusReport } from "./_cache_status.ts";
import { refreshOf, type Settle } from "./_flight.ts";
import { headerList } from "./_http.ts";
import type { Settings } from "./_options.ts";
import { approachOf } from "./_policy.ts";
import {
  capture,
  decode,
  replace,
  type Replay,
  replayOf,
  sharedEntryOf,
  type Stored,
  variantsEntryOf,
} from "./_replay.ts";
import {
  clientHasIt,
  currentAge,
  freshnessLeft,
  freshnessOf,
  hasValidator,
  type RequestDirectives,
  requestDirectives,
  responseDirectives,
  servesOnError,
  unstorableShared,
  updatedHeaders,
  useOf,
  validatingHeaders,
  withheldFields,
} from "./_shared_cache.ts";
import { type Route, tagsOf } from "./_route.ts";
import { keyed } from "./_telemetry.ts";
import { invalidating } from "./_unsafe.ts";
import type { CacheContext, CacheStatus } from "./types.ts";

/** The request headers a response varies on, and its variants' key generation. */
interface Variants {
  names: string[];
  generation: string;
}

/** What one request has learnt on its way through the shared cache. */
interface Visit {
  /** The URL's key: its entry, its lock and its flights. */
  key: string;
  /** The key its response is stored under: a variant's, under `Vary`. */
  slot: string;
  /** The client's request headers, as they came. */
  headers: Headers;
  request: RequestDirectives;
  refresh: boolean;
  /** Whether the cache may answer it: not a refresh. */
  reading: boolean;
  epoch: number | undefined;
  healthy: boolean;
  /** The URL's variants, when its responses vary. */
  variants: Variants | undefined;
  /** The stored response for this request, whether or not it may be used. */
  found: Stored | undefined;
  /** Why it goes on to the handler, for `Cache-Status`. */
  fwd: "uri-miss" | "vary-miss" | "stale" | "request";
  lead: Settle | undefined;
}

/** What settling the handler's response produced, for the requests waiting on it. */
interface Outcome {
  replay: Replay;
  written: Promise<boolean> | undefined;
}

/**
 * Seconds a response is kept past expiry, to be revalidated or served to a
 * client's `max-stale`: a day.
 */
const STALE_RETENTION = 86_400;

/** The shortest lifetime a backend is asked to keep an entry fresh for. */
const STALE_ON_ARRIVAL = 0.001;

const NOT_MODIFIED = 304;
const GATEWAY_TIMEOUT = 504;

/**
 * Serves one request through the shared cache.
 *
 * @param route The route: its settings and parts.
 * @param c The request's context.
 * @param next The rest of the chain: the handler that forwards to the origin.
 * @returns The response, when the cache made one.
 */
export async function serveShared(
  route: Route,
  c: CacheContext,
  next: () => Promise<void>,
): Promise<Response | void> {
  const { settings } = route;
  const method = c.req.method;
  const headers = c.req.raw.headers;
  if (method !== "GET" && method !== "HEAD") {
    route.methods.note(c, settings.fail);
    if (approachOf(method, headers, settings) === "pass") return await next();
    return await invalidating(settings, route.keys, c, next);
  }
  const request = requestDirectives(headers, settings.honorRequestCacheControl);
  const bypass = bypassReason(headers, request, settings);
  if (bypass) return await forwardUntouched(route, c, next, bypass);
  let key: string;
  try {
    key = await route.keys.of(c);
  } catch (error) {
    settings.fail(error, "key");
    return await forwardUntouched(route, c, next, "key");
  }
  keyed(c, key);
  const refresh = refreshOf(c.req.raw);
  const visit: Visit = {
    key,
    slot: key,
    headers,
    request,
    refresh: refresh !== undefined,
    reading: refresh === undefined,
    epoch: refresh?.epoch,
    healthy: true,
    variants: undefined,
    found: undefined,
    fwd: "uri-miss",
    lead: undefined,
  };
  await read(route, visit);
  const answer = visit.reading ? answerFromCache(route, c, visit) : undefined;
  if (answer) return answer;
  if (method === "HEAD") return await forwardUntouched(route, c, next);
  if (request.onlyIfCached && visit.reading) return gatewayTimeout(route);
  return await follow(route, visit) ?? await forward(route, c, next, visit);
}

/** Why a request goes on untouched, or `undefined` when the cache may serve it. */
function bypassReason(
  headers: Headers,
  request: RequestDirectives,
  settings: Pick<Settings, "perUser" | "cookies">,
): string | undefined {
  // A range is served by the origin: partial responses are never stored.
  if (headers.has("range")) return "range";
  if (!settings.perUser && settings.cookies(headers.get("cookie")) !== null) {
    return "cookie";
  }
  if (request.noStore) return "no-store";
  return undefined;
}

/** The handler answers, and the response says the cache stood aside. */
async function forwardUntouched(
  route: Route,
  c: CacheContext,
  next: () => Promise<void>,
  detail?: string,
): Promise<void> {
  await next();
  route.replies.markContext(c, "BYPASS", { fwd: "bypass", detail });
}

/** `only-if-cached` with nothing usable stored (§5.2.1.7). */
function gatewayTimeout(route: Route): Response {
  return route.replies.mark(
    new Response(null, { status: GATEWAY_TIMEOUT }),
    "BYPASS",
    { detail: "only-if-cached" },
  );
}

/**
 * Reads the stored response for the request: the URL's entry, then, when
 * the URL's responses vary, the variant for this request's header values.
 */
async function read(route: Route, visit: Visit): Promise<void> {
  const { flights, keys, settings } = route;
  // A write of this process lands first: reading it beats forwarding again.
  const landing = flights.landing(visit.key);
  if (landing) await landing;
  const first = await flights.lookup(visit.key, []);
  if (first === "failed") {
    visit.healthy = false;
    return;
  }
  visit.epoch ??= first.epoch;
  let stored = decode(first.entry, settings.fail);
  const variants = stored?.meta.variants;
  if (variants) {
    visit.variants = variants;
    visit.fwd = "vary-miss";
    visit.slot = await keys.variant(
      visit.key,
      variants.generation,
      variants.names,
      visit.headers,
    );
    const second = await flights.lookup(visit.slot, []);
    if (second === "failed") {
      visit.healthy = false;
      return;
    }
    stored = decode(second.entry, settings.fail);
  }
  // An app-mode entry under the same key is not a shared cache's to serve.
  if (stored?.meta.fresh) {
    visit.found = stored;
    visit.fwd = visit.request.noCache ? "request" : "stale";
  }
}

/**
 * Answers from the stored response when a rule allows it: fresh, stale
 * within the client's `max-stale`, or stale within `stale-while-revalidate`
 * (refreshed once in the background through the app).
 */
function answerFromCache(
  route: Route,
  c: CacheContext,
  visit: Visit,
): Response | undefined {
  const stored = visit.found;
  if (!stored) return undefined;
  const fresh = stored.meta.fresh!;
  const resident = stored.entry.age;
  const ttl = freshnessLeft(fresh, resident);
  switch (useOf(fresh, resident, visit.request)) {
    case "fresh":
      return respond(route, visit, stored, "HIT", { hit: true, ttl });
    case "stale":
      return respond(route, visit, stored, "STALE", { hit: true, ttl });
    case "swr": {
      const app = route.settings.app;
      // Without an app to refresh through, the request validates it itself.
      if (!app) return undefined;
      route.flights.revalidate(
        c,
        visit.key,
        visit.epoch,
        app,
        visit.slot === visit.key,
      );
      return respond(route, visit, stored, "STALE", {
        hit: true,
        ttl,
        detail: "stale-while-revalidate",
      });
    }
    default:
      return undefined;
  }
}

/** A response from the stored entry: 304 when the client holds it already. */
function respond(
  route: Route,
  visit: Visit,
  stored: Stored,
  status: CacheStatus,
  report: StatusReport,
): Response {
  const replay = replayOf(stored);
  return route.replies.respond(replay, {
    status,
    age: currentAge(stored.meta.fresh!, stored.entry.age),
    notModified: holds(visit.headers, replay),
    report,
  });
}

/** Whether the client's conditional request is satisfied by `replay`. */
function holds(headers: Headers, replay: Replay): boolean {
  if (replay.status !== 200) return false;
  return clientHasIt(headers, replay.etag || undefined, lastModifiedOf(replay));
}

/**
 * Shares this process's computation of the key when there is one and its
 * response fits this request; otherwise leads it (`visit.lead`) or, when
 * it does not fit, computes alone. `undefined`: compute.
 */
async function follow(
  route: Route,
  visit: Visit,
): Promise<Response | undefined> {
  const { flights } = route;
  if (!visit.healthy) return undefined;
  const leader = flights.leader(visit.key, visit.epoch);
  if (!leader) {
    visit.lead = flights.lead(visit.key, visit.epoch);
    return undefined;
  }
  const deadline = Date.now() + route.settings.lockTimeout;
  const replay = await flights.follow(leader, deadline);
  if (!replay?.fresh || !(await fits(route, visit, replay))) return undefined;
  const fresh = replay.fresh;
  if (useOf(fresh, 0, visit.request) !== "fresh") return undefined;
  return route.replies.respond(replay, {
    status: "HIT",
    age: fresh.initialAge || undefined,
    notModified: holds(visit.headers, replay),
    report: { hit: true, ttl: freshnessLeft(fresh, 0) },
  });
}

/** Whether the leader's response is the one this request's headers select. */
async function fits(
  route: Route,
  visit: Visit,
  replay: Replay,
): Promise<boolean> {
  const variants = replay.variants;
  if (!variants) return true;
  const mine = await route.keys.variant(
    visit.key,
    variants.generation,
    variants.names,
    visit.headers,
  );
  return mine === replay.slot;
}

/**
 * Forwards the request to the handler, under the key's cross-process lock
 * when it leads; conditional when the stored response can be validated.
 */
async function forward(
  route: Route,
  c: CacheContext,
  next: () => Promise<void>,
  visit: Visit,
): Promise<Response | void> {
  const { flights } = route;
  let lock: KeyLock | undefined;
  let outcome: Outcome | undefined;
  try {
    if (visit.lead && !visit.refresh && flights.crossProcess) {
      const acquired = await flights.acquire(visit.key, visit.reading);
      if (acquired && "lock" in acquired) lock = acquired.lock;
      else if (acquired) {
        // Another process stored a response meanwhile: read it as this one.
        await read(route, visit);
        const answer = answerFromCache(route, c, visit);
        if (answer) return answer;
      }
    }
    const stored = visit.found && replayOf(visit.found);
    const validating = stored !== undefined && visit.healthy &&
      validatable(stored);
    if (validating) {
      const raw = c.req.raw;
      // The handler forwards what it reads from c.req.raw at call time.
      (c.req as { raw: Request }).raw = new Request(raw.url, {
        method: raw.method,
        headers: validatingHeaders(
          raw.headers,
          stored.etag || undefined,
          lastModifiedOf(stored),
        ),
        signal: raw.signal,
      });
    }
    const requestTime = Date.now();
    await next();
    outcome = await settle(route, c, visit, validating, requestTime);
  } finally {
    visit.lead?.(outcome?.replay);
    if (lock) flights.releaseAfter(lock, outcome?.written, visit.key);
  }
}

function lastModifiedOf(replay: Replay): string | undefined {
  return replay.headers.find(([name]) => name === "last-modified")?.[1];
}

/** Whether `replay` can be validated with the origin: a tag or a date. */
function validatable(replay: Replay): boolean {
  return replay.etag !== "" || lastModifiedOf(replay) !== undefined;
}

/**
 * Settles the handler's response: a stale entry answers a failure within
 * `stale-if-error`; a 304 to this cache's validation updates the entry; a
 * storable response is stored; anything else passes on, marked.
 */
async function settle(
  route: Route,
  c: CacheContext,
  visit: Visit,
  validating: boolean,
  requestTime: number,
): Promise<Outcome | undefined> {
  const { settings, replies } = route;
  const res = c.res;
  const found = visit.found;
  if (originFailed(c)) {
    if (found && servesOnError(found.meta.fresh!, found.entry.age)) {
      settings.fail(
        c.error ?? new Error(`Handler answered ${res.status}`),
        "handler",
        visit.key,
      );
      replace(
        c,
        respond(route, visit, found, "STALE", {
          fwd: "stale",
          fwdStatus: res.status,
          ttl: freshnessLeft(found.meta.fresh!, found.entry.age),
          detail: "stale-if-error",
        }),
      );
      return undefined;
    }
    replies.markContext(c, "BYPASS", {
      fwd: visit.fwd,
      fwdStatus: res.status,
    });
    return undefined;
  }
  const input = {
    requestTime,
    responseTime: Date.now(),
    expire: settings.expire,
    staleWhileRevalidate: settings.staleWhileRevalidate?.seconds ?? 0,
    staleIfError: settings.staleIfError,
  };
  if (validating && res.status === NOT_MODIFIED) {
    return await revalidated(route, c, visit, found!, input);
  }
  return await storeNew(route, c, visit, input);
}

/**
 * Statuses that say the origin failed (RFC 5861 §4): a 501 or a 505 is an
 * answer, and may be stored.
 */
const ORIGIN_ERRORS = new Set([500, 502, 503, 504]);

/** Whether the handler threw, or the origin answered with an error. */
function originFailed(c: CacheContext): boolean {
  return c.error !== undefined || ORIGIN_ERRORS.has(c.res.status);
}

/** When the exchange with the origin happened, and the route's fallbacks. */
interface Exchange {
  requestTime: number;
  responseTime: number;
  expire: number | undefined;
  staleWhileRevalidate: number;
  staleIfError: number;
}

/**
 * The origin confirmed the stored response: its headers are updated from the
 * 304's (§4.3.4), the entry is rewritten, and the stored body answers.
 */
async function revalidated(
  route: Route,
  c: CacheContext,
  visit: Visit,
  found: Stored,
  exchange: Exchange,
): Promise<Outcome | undefined> {
  const { settings, replies } = route;
  const stored = replayOf(found);
  const previous: [string, string][] = stored.etag
    ? [...stored.headers, ["etag", stored.etag]]
    : [...stored.headers];
  const merged = new Response(null, {
    status: stored.status === 200 ? 200 : stored.status,
    headers: updatedHeaders(
      previous,
      c.res.headers,
      withheldFields(responseDirectives(c.res.headers)),
    ),
  });
  const directives = responseDirectives(merged.headers);
  const fresh = freshnessOf({
    ...exchange,
    status: stored.status,
    headers: merged.headers,
    directives,
  });
  const replay = await capture(
    merged,
    stored.body,
    settings.statusHeaderName,
    withheldFields(directives),
  );
  replay.status = stored.status;
  replay.fresh = fresh;
  replay.slot = visit.slot;
  replay.variants = visit.variants;
  const storable = visit.healthy && unstorableShared(
        stored.status,
        merged.headers,
        directives,
        visit.headers,
        settings.statuses,
      ) === undefined;
  const written = storable ? write(route, c, visit, replay) : undefined;
  const wrote = written !== undefined &&
    (settings.wait || visit.refresh ? await written : true);
  replace(
    c,
    replies.respond(replay, {
      status: "REVALIDATED",
      age: fresh.initialAge || undefined,
      notModified: holds(visit.headers, replay),
      report: { fwd: visit.fwd, fwdStatus: NOT_MODIFIED, stored: wrote },
    }),
  );
  return { replay, written };
}

/** Stores the handler's response when a shared cache may, and marks it. */
async function storeNew(
  route: Route,
  c: CacheContext,
  visit: Visit,
  exchange: Exchange,
): Promise<Outcome | undefined> {
  const { settings, replies } = route;
  const res = c.res;
  const directives = responseDirectives(res.headers);
  const fresh = freshnessOf({
    ...exchange,
    status: res.status,
    headers: res.headers,
    directives,
  });
  const reason = !visit.healthy ? "unavailable" : unstorableShared(
    res.status,
    res.headers,
    directives,
    visit.headers,
    settings.statuses,
  ) ?? (fresh.lifetime <= fresh.initialAge && !hasValidator(res.headers)
    ? "stale"
    : undefined);
  const fwdStatus = visit.fwd === "stale" || visit.fwd === "request"
    ? res.status
    : undefined;
  if (reason) {
    replies.markContext(c, "BYPASS", {
      fwd: visit.fwd,
      fwdStatus,
      detail: reason,
    });
    return undefined;
  }
  const body = await readBounded(res, settings.maxBodySize);
  if (body instanceof ReadableStream) {
    replace(
      c,
      replies.mark(new Response(body, res), "BYPASS", {
        fwd: visit.fwd,
        fwdStatus,
        detail: "too-large",
      }),
    );
    return undefined;
  }
  const withheld = withheldFields(directives);
  const replay = await capture(res, body, settings.statusHeaderName, withheld);
  // The client that asked gets every field; the entry keeps the others.
  const shown = withheld.size
    ? await capture(res, body, settings.statusHeaderName, new Set())
    : replay;
  replay.fresh = fresh;
  await place(route, visit, replay, res.headers);
  const written = write(route, c, visit, replay);
  const wrote = written !== undefined &&
    (settings.wait || visit.refresh ? await written : true);
  replace(
    c,
    replies.respond(shown, {
      status: wrote ? "MISS" : "BYPASS",
      age: fresh.initialAge || undefined,
      notModified: holds(visit.headers, replay),
      report: { fwd: visit.fwd, fwdStatus, stored: wrote },
    }),
  );
  return { replay, written };
}

/**
 * Sets where `replay` is stored: the URL's key, or under `Vary` a variant's,
 * in the URL's current generation of variants when it varies on the same
 * headers, else in a new one.
 */
async function place(
  route: Route,
  visit: Visit,
  replay: Replay,
  headers: Headers,
): Promise<void> {
  const names = [...new Set(headerList(headers.get("vary")))].sort();
  if (names.length === 0) {
    replay.slot = visit.key;
    return;
  }
  const current = visit.variants;
  const same = current !== undefined &&
    current.names.join() === names.join();
  const variants = same ? current : {
    names,
    generation: crypto.randomUUID(),
  };
  replay.variants = variants;
  replay.slot = await route.keys.variant(
    visit.key,
    variants.generation,
    names,
    visit.headers,
  );
}

/**
 * Writes `replay` at its slot (and the URL's variants entry when it is
 * new); resolves to whether it was stored. `undefined` when a tags function
 * failed: the entry is not written.
 */
function write(
  route: Route,
  c: CacheContext,
  visit: Visit,
  replay: Replay,
): Promise<boolean> | undefined {
  const { backend } = route.settings;
  const tags = tagsOf(route, c, visit.key);
  if (!tags) return undefined;
  const fresh = replay.fresh!;
  const expire = Math.max(fresh.lifetime - fresh.initialAge, STALE_ON_ARRIVAL);
  // Kept past expiry while it can still serve: revalidated (a validator), or
  // stale for a client's max-stale; never when it may not be served stale.
  const usable = validatable(replay) || !fresh.noStale;
  const staleFor = Math.min(
    MAX_SECONDS - expire,
    Math.max(
      fresh.swr ?? 0,
      fresh.sie ?? 0,
      usable ? STALE_RETENTION : 0,
    ),
  );
  const options = { expire, staleFor, tags, epoch: visit.epoch };
  const slot = replay.slot ?? visit.key;
  const writes = [
    backend.writeEntry(slot, sharedEntryOf(replay, fresh), options),
  ];
  const variants = replay.variants;
  if (variants && variants !== visit.variants) {
    // The URL's entry outlives its variants: it names where they are.
    writes.push(
      backend.writeEntry(
        visit.key,
        variantsEntryOf(variants.names, variants.generation),
        {
          ...options,
          expire: Math.min(MAX_SECONDS, expire + staleFor),
          staleFor: 0,
        },
      ),
    );
  }
  return route.flights.writing(
    c,
    visit.key,
    Promise.all(writes),
    replay.body.byteLength,
    slot,
  );
}
