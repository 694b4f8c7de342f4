// The rules of an RFC 9111 shared cache, for cached()'s proxy mode: what may
// be stored, for how long, how old an entry is, whether a request may use it,
// and how a 304 updates it. Pure decisions: no backend, no I/O.
import {
  deltaSeconds,
  type Directives,
  etagMatches,
  headerList,
  httpDate,
  parseCacheControl,
  parseIfNoneMatch,
  receivedAge,
} from "./_http.ts";

/**
 * What a proxy entry keeps of the origin's freshness statement, besides the
 * response itself. Seconds throughout.
 */
export interface Freshness {
  /** The freshness lifetime (§4.2.1); 0 when the response is stale on arrival. */
  lifetime: number;
  /** The corrected initial age when it was stored (§4.2.3). */
  initialAge: number;
  /** `no-cache`: every use is validated with the origin first (§5.2.2.4). */
  revalidate?: true;
  /** `must-revalidate`, `proxy-revalidate` or `s-maxage`: never served stale. */
  noStale?: true;
  /** `stale-while-revalidate` (RFC 5861), or the route's fallback. */
  swr?: number;
  /** `stale-if-error` (RFC 5861), or the route's fallback. */
  sie?: number;
}

/** The request directives a shared cache honours (§5.2.1), parsed once. */
export interface RequestDirectives {
  noStore: boolean;
  /** `no-cache`, or `Pragma: no-cache` without `Cache-Control` (§5.4). */
  noCache: boolean;
  maxAge: number | undefined;
  minFresh: number | undefined;
  /** `max-stale` seconds; `Infinity` for a valueless one. */
  maxStale: number | undefined;
  onlyIfCached: boolean;
}

/** A request that states no directive: what `honorRequestCacheControl: false` reads. */
const NO_DIRECTIVES: RequestDirectives = {
  noStore: false,
  noCache: false,
  maxAge: undefined,
  minFresh: undefined,
  maxStale: undefined,
  onlyIfCached: false,
};

/** The request directives of `headers`; none when they are not honoured. */
export function requestDirectives(
  headers: Headers,
  honoured: boolean,
): RequestDirectives {
  if (!honoured) return NO_DIRECTIVES;
  const value = headers.get("cache-control");
  if (value === null) {
    const pragma = headerList(headers.get("pragma")).includes("no-cache");
    return pragma ? { ...NO_DIRECTIVES, noCache: true } : NO_DIRECTIVES;
  }
  const directives = parseCacheControl(value);
  const maxStale = directives.get("max-stale");
  return {
    noStore: directives.has("no-store"),
    noCache: directives.has("no-cache"),
    maxAge: deltaSeconds(directives, "max-age"),
    minFresh: deltaSeconds(directives, "min-fresh"),
    maxStale: maxStale === undefined
      ? undefined
      : maxStale === ""
      ? Infinity
      : deltaSeconds(directives, "max-stale"),
    onlyIfCached: directives.has("only-if-cached"),
  };
}

/**
 * The directives that rule this cache: `CDN-Cache-Control` (RFC 9213) when
 * the origin sent one, as a gateway cache honours it over `Cache-Control`.
 */
export function responseDirectives(headers: Headers): Directives {
  return parseCacheControl(
    headers.get("cdn-cache-control") ?? headers.get("cache-control"),
  );
}

/** Statuses a cache may give a heuristic lifetime (RFC 9110 §15.1). */
const HEURISTIC_STATUSES = new Set([
  200,
  203,
  204,
  206,
  300,
  301,
  308,
  404,
  405,
  410,
  414,
  501,
]);

/** The share of a response's age since `Last-Modified` it stays fresh (§4.2.2). */
const HEURISTIC_FRACTION = 0.1;

/** The longest heuristic lifetime, in seconds: a day. */
const HEURISTIC_CAP = 86_400;

/** What a stored response's freshness is computed with. */
export interface FreshnessInput {
  status: number;
  headers: Headers;
  directives: Directives;
  /** When the request was sent on, in ms. */
  requestTime: number;
  /** When the response arrived, in ms. */
  responseTime: number;
  /** The route's lifetime for a response that states none. */
  expire: number | undefined;
  /** The route's fallback stale windows. */
  staleWhileRevalidate: number;
  staleIfError: number;
}

/** The freshness of a response received now (§4.2.1, §4.2.2, §4.2.3). */
export function freshnessOf(input: FreshnessInput): Freshness {
  const { headers, directives } = input;
  const date = httpDate(headers.get("date")) ?? input.responseTime;
  const apparentAge = Math.max(0, input.responseTime - date) / 1000;
  const responseDelay = (input.responseTime - input.requestTime) / 1000;
  const correctedAge = receivedAge(headers) + responseDelay;
  const fresh: Freshness = {
    lifetime: lifetimeOf(input, date),
    initialAge: Math.floor(Math.max(apparentAge, correctedAge)),
  };
  if (directives.has("no-cache") && directives.get("no-cache") === "") {
    fresh.revalidate = true;
  }
  if (
    directives.has("must-revalidate") || directives.has("proxy-revalidate") ||
    directives.has("s-maxage")
  ) {
    fresh.noStale = true;
  }
  const swr = deltaSeconds(directives, "stale-while-revalidate") ??
    input.staleWhileRevalidate;
  const sie = deltaSeconds(directives, "stale-if-error") ?? input.staleIfError;
  if (swr > 0) fresh.swr = swr;
  if (sie > 0) fresh.sie = sie;
  return fresh;
}

/**
 * The freshness lifetime: `s-maxage`, `max-age`, `Expires - Date`, then a
 * heuristic from `Last-Modified`, then the route's `expire`, else 0. An
 * invalid value of the first one present makes 0: stale (§4.2.1).
 */
function lifetimeOf(input: FreshnessInput, date: number): number {
  const { headers, directives } = input;
  const explicit = deltaSeconds(directives, "s-maxage") ??
    deltaSeconds(directives, "max-age");
  if (explicit !== undefined) return explicit;
  const expires = headers.get("expires");
  if (expires !== null) {
    const at = httpDate(expires);
    return at === undefined ? 0 : Math.max(0, Math.floor((at - date) / 1000));
  }
  const lastModified = httpDate(headers.get("last-modified"));
  if (
    lastModified !== undefined && lastModified <= date &&
    (HEURISTIC_STATUSES.has(input.status) || directives.has("public"))
  ) {
    return Math.min(
      HEURISTIC_CAP,
      Math.floor((date - lastModified) / 1000 * HEURISTIC_FRACTION),
    );
  }
  return input.expire ?? 0;
}

/**
 * The statuses a shared cache understands and stores by default (RFC 9111
 * §3, RFC 9110 §15): never a partial 206, nor a 5xx, which is a failure here.
 */
export const SHARED_STATUSES: readonly number[] = [
  200,
  203,
  204,
  300,
  301,
  302,
  307,
  308,
  404,
  405,
  410,
  414,
  451,
  501,
];

/**
 * Statuses whose meaning this cache understands, for `must-understand`: a
 * 303 too, which it never stores (its response is for another URL).
 */
const UNDERSTOOD = new Set([...SHARED_STATUSES, 303]);

/** Partial content: never stored, whatever the options say. */
const PARTIAL_CONTENT = 206;

/**
 * Why a shared cache may not store the response to a GET with
 * `requestHeaders`, or `undefined` when it may (§3, §3.5); the lifetime
 * check (a response with neither freshness nor a validator is useless)
 * comes after, from {@linkcode freshnessOf}.
 */
export function unstorableShared(
  status: number,
  headers: Headers,
  directives: Directives,
  requestHeaders: Headers,
  statuses: ReadonlySet<number>,
): string | undefined {
  if (status === PARTIAL_CONTENT || headers.has("content-range")) {
    return "partial";
  }
  if (!statuses.has(status)) return "status";
  // must-understand overrides no-store where the status is understood.
  const understood = directives.has("must-understand") &&
    UNDERSTOOD.has(status);
  if (directives.has("no-store") && !understood) return "no-store";
  if (directives.get("private") === "") return "private";
  // Never one user's cookie to another, whatever the origin says.
  if (headers.has("set-cookie")) return "set-cookie";
  if (headerList(headers.get("vary")).includes("*")) return "vary";
  if (
    requestHeaders.has("authorization") && !directives.has("public") &&
    !directives.has("s-maxage") && !directives.has("must-revalidate")
  ) {
    return "authorization";
  }
  if (headers.get("content-type")?.startsWith("text/event-stream")) {
    return "stream";
  }
  return undefined;
}

/**
 * Header fields a shared cache must not store or send stored: those named
 * by a qualified `private="…"` or `no-cache="…"` (§5.2.2.4, §5.2.2.7).
 */
export function withheldFields(directives: Directives): Set<string> {
  const names = new Set<string>();
  for (const name of ["private", "no-cache"]) {
    const value = directives.get(name);
    if (value) {
      for (const field of headerList(value.replace(/^"|"$/g, ""))) {
        names.add(field);
      }
    }
  }
  return names;
}

/** Whether a response can be validated: it has an entity tag or a date. */
export function hasValidator(headers: Headers): boolean {
  return headers.has("etag") || headers.has("last-modified");
}

/** How a stored response may serve a request (§4, RFC 5861). */
export type Use =
  /** Fresh: answer from it. */
  | "fresh"
  /** Stale, and the client allows it (`max-stale`): answer from it. */
  | "stale"
  /** Stale within `stale-while-revalidate`: answer, and refresh it. */
  | "swr"
  /** Validate it with the origin first, or forward. */
  | "revalidate";

/** The current age of an entry kept `resident` seconds (§4.2.3), whole seconds. */
export function currentAge(fresh: Freshness, resident: number): number {
  return fresh.initialAge + Math.floor(resident);
}

/** Seconds of freshness left: negative once stale. */
export function freshnessLeft(fresh: Freshness, resident: number): number {
  return fresh.lifetime - currentAge(fresh, resident);
}

/** How the entry may serve a request stating `request` (§4.2, §5.2.1). */
export function useOf(
  fresh: Freshness,
  resident: number,
  request: RequestDirectives,
): Use {
  if (fresh.revalidate || request.noCache) return "revalidate";
  const age = currentAge(fresh, resident);
  const left = fresh.lifetime - age;
  if (request.maxAge !== undefined && age > request.maxAge) return "revalidate";
  if (request.minFresh !== undefined && left < request.minFresh) {
    return "revalidate";
  }
  if (left > 0) return "fresh";
  if (fresh.noStale) return "revalidate";
  if (request.maxStale !== undefined && -left <= request.maxStale) {
    return "stale";
  }
  if (fresh.swr !== undefined && -left <= fresh.swr) return "swr";
  return "revalidate";
}

/** Whether a stale entry may answer for a failed origin (RFC 5861 §4). */
export function servesOnError(fresh: Freshness, resident: number): boolean {
  return !fresh.noStale && fresh.sie !== undefined &&
    -freshnessLeft(fresh, resident) <= fresh.sie;
}

/** Headers a 304 does not update: they describe the stored body (§4.3.4). */
const BODY_FIELDS = new Set([
  "content-length",
  "content-encoding",
  "content-range",
  "transfer-encoding",
]);

/**
 * The stored headers updated by a 304's (§4.3.4): each field it carries
 * replaces the stored one, except those that describe the body.
 */
export function updatedHeaders(
  stored: readonly [string, string][],
  notModified: Headers,
  withheld: ReadonlySet<string>,
): [string, string][] {
  const replaced = new Set<string>();
  const added: [string, string][] = [];
  for (const [name, value] of notModified) {
    if (BODY_FIELDS.has(name) || withheld.has(name)) continue;
    replaced.add(name);
    added.push([name, value]);
  }
  return [...stored.filter(([name]) => !replaced.has(name)), ...added];
}

/**
 * Whether the client's conditional request is satisfied by a response with
 * `etag` and `lastModified`: `If-None-Match` by weak comparison, else
 * `If-Modified-Since` (RFC 9110 §13.1.2, §13.1.3, §13.2.2).
 */
export function clientHasIt(
  requestHeaders: Headers,
  etag: string | undefined,
  lastModified: string | undefined,
): boolean {
  const ifNoneMatch = requestHeaders.get("if-none-match");
  if (ifNoneMatch !== null) {
    return etagMatches(etag, parseIfNoneMatch(ifNoneMatch));
  }
  const since = httpDate(requestHeaders.get("if-modified-since"));
  const modified = httpDate(lastModified ?? null);
  return since !== undefined && modified !== undefined && modified <= since;
}

/** The request headers of a conditional request that validates a stored response. */
export function validatingHeaders(
  requestHeaders: Headers,
  etag: string | undefined,
  lastModified: string | undefined,
): Headers {
  const headers = new Headers(requestHeaders);
  // The client's own conditions are for its copy, not this cache's.
  for (
    const name of [
      "if-none-match",
      "if-modified-since",
      "if-match",
      "if-unmodified-since",
      "if-range",
    ]
  ) headers.delete(name);
  if (etag) headers.set("if-none-match", etag);
  if (lastModified) headers.set("if-modified-since", lastModified);
  return headers;
}

/**
 * A request header's value as a secondary key compares it (§4.1): fields
 * combined, whitespace around commas normalised; `null` when absent.
 */
export function varyValueOf(headers: Headers, name: string): string | null {
  const value = headers.get(name);
  return value === null ? null : value.trim().replace(/\s*,\s*/g, ", ");
}
