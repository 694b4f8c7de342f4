// The caching rules of cached(): which requests the cache stays out of, which
// responses may be shared, how long they stay fresh, and how long past expiry
// a stale entry may still answer. Pure decisions: no backend, no I/O.
import {
  deltaSeconds,
  headerList,
  httpDate,
  parseCacheControl,
  receivedAge,
} from "./_http.ts";
import type { CookieFilter } from "./_cookies.ts";
import type { Settings } from "./_options.ts";
import type { Stored } from "./_replay.ts";
import type { CacheContext } from "./types.ts";

/**
 * What the cache does with a request:
 *
 * - `"pass"`: a safe method other than GET and HEAD (OPTIONS, TRACE); the
 *   handler answers, untouched.
 * - `"invalidate"`: an unsafe method (RFC 9111 §4.4): the handler answers,
 *   untouched, and a non-error answer removes the entries it changed.
 * - `"bypass"`: the handler answers, marked BYPASS: credentials the route
 *   does not key on, or a client's honoured `no-store`.
 * - `"compute"`: a client's honoured `no-cache`; the handler answers and the
 *   entry is refreshed, without reading it first.
 * - `"read"`: answered from the cache when it can be.
 */
export type Approach = "pass" | "invalidate" | "bypass" | "compute" | "read";

/** Methods that change nothing (RFC 9110 §9.2.1) besides GET and HEAD. */
const OTHER_SAFE_METHODS = new Set(["OPTIONS", "TRACE"]);

/** Seconds a response stays fresh when neither `expire` nor the handler says. */
const DEFAULT_EXPIRE = 60;

/** What the cache does with a request of `method` with `headers`. */
export function approachOf(
  method: string,
  headers: Headers,
  settings: Pick<
    Settings,
    "perUser" | "honorRequestCacheControl" | "cookies"
  >,
): Approach {
  if (method !== "GET" && method !== "HEAD") {
    // Any method not known safe may change the resource (§4.4).
    return OTHER_SAFE_METHODS.has(method) ? "pass" : "invalidate";
  }
  // Off, any client could make the cache useless: the header is not read.
  const directives = settings.honorRequestCacheControl
    ? parseCacheControl(headers.get("cache-control"))
    : undefined;
  if (
    (!settings.perUser && hasCredentials(headers, settings.cookies)) ||
    directives?.has("no-store")
  ) {
    return "bypass";
  }
  return directives?.has("no-cache") ? "compute" : "read";
}

/**
 * Whether a request carries credentials, its response then maybe for one
 * user: `Authorization`, or a cookie that counts under `cookies`.
 */
export function hasCredentials(
  headers: Headers,
  cookies: CookieFilter,
): boolean {
  return headers.has("authorization") ||
    cookies(headers.get("cookie")) !== null;
}

/** Statuses from here up are errors: a request answered so changed nothing. */
const CLIENT_ERROR = 400;

/**
 * Whether the answer to an unsafe request says it may have changed the
 * resource: a non-error status (RFC 9111 §4.4), and the handler did not throw.
 */
export function changedResource(c: CacheContext): boolean {
  return c.error === undefined && c.res.status < CLIENT_ERROR;
}

/** Statuses from here up are the server's failure, not an answer to keep. */
const SERVER_ERROR = 500;

/** The last server error status: beyond it, statuses are an origin's own. */
const LAST_SERVER_ERROR = 599;

/**
 * Whether the handler failed: it threw (Hono keeps the error on the
 * context), or answered 5xx (a status above 599 is not a failure, only odd).
 */
export function handlerFailed(c: CacheContext): boolean {
  const status = c.res.status;
  return c.error !== undefined ||
    (status >= SERVER_ERROR && status <= LAST_SERVER_ERROR);
}

/**
 * Why the response to a request with `requestHeaders` cannot be shared, or
 * `undefined` when it can.
 */
export function unstorable(
  res: Response,
  requestHeaders: Headers,
  settings: Pick<Settings, "statuses" | "perUser" | "keyed" | "cookies">,
): string | undefined {
  if (!settings.statuses.has(res.status)) return "status";
  const headers = res.headers;
  if (headers.has("set-cookie")) return "set-cookie";
  const directives = parseCacheControl(headers.get("cache-control"));
  if (directives.has("no-store") || directives.has("no-cache")) {
    return "cache-control";
  }
  // `private` is for one user: storable only under that user's own key.
  if (
    directives.has("private") &&
    !(settings.perUser && hasCredentials(requestHeaders, settings.cookies))
  ) {
    return "private";
  }
  // A response varying on a header the key ignores would answer requests
  // that differ in it.
  const keyed = settings.keyed;
  if (headerList(headers.get("vary")).some((name) => !keyed.has(name))) {
    return "vary";
  }
  // An event stream never ends: buffering it would hold the response back.
  if (headers.get("content-type")?.startsWith("text/event-stream")) {
    return "stream";
  }
  return undefined;
}

/**
 * Seconds the response stays fresh: `expire` when the route sets it, else
 * the handler's `s-maxage` (for shared caches, which this is), `max-age`,
 * `Expires - Date` (RFC 9111 §5.3), or 60; less the `Age` it arrived with
 * (§4.2.3), since an upstream cache kept it that long already. An invalid
 * max-age or `Expires` gives 0: stale, so not stored.
 */
export function freshLifetime(
  res: Response,
  expire: number | undefined,
  now: number = Date.now(),
): number {
  // The route's own choice: the developer decided to cache this response.
  if (expire !== undefined) return expire;
  const headers = res.headers;
  const directives = parseCacheControl(headers.get("cache-control"));
  const lifetime = deltaSeconds(directives, "s-maxage") ??
    deltaSeconds(directives, "max-age") ?? expiresLifetime(headers, now) ??
    DEFAULT_EXPIRE;
  return lifetime - receivedAge(headers);
}

/**
 * Seconds from `Date` (the time of the response when it has none) to
 * `Expires`; `undefined` without `Expires`, and 0 when it is invalid, which
 * RFC 9111 §5.3 reads as already expired.
 */
function expiresLifetime(headers: Headers, now: number): number | undefined {
  const value = headers.get("expires");
  if (value === null) return undefined;
  const expires = httpDate(value);
  if (expires === undefined) return 0;
  const date = httpDate(headers.get("date")) ?? now;
  return Math.floor((expires - date) / 1000);
}

/** Seconds since the stored entry expired (negative while it is fresh). */
export function secondsPastExpiry({ entry, meta }: Stored): number {
  // The backend's own figure, by its clock, when it gives one; an entry of a
  // backend that does not carries the lifetime it was written with.
  return typeof entry.freshFor === "number"
    ? -entry.freshFor
    : entry.age - (meta.ttl ?? 0);
}

/**
 * Whether a stale entry is still within a window of `seconds` past its
 * expiry; a window of 0 is none.
 */
export function withinStaleWindow(stored: Stored, seconds: number): boolean {
  return seconds > 0 && secondsPastExpiry(stored) <= seconds;
}
