// Responses and entries: a handler's response captured as an entry, and an
// entry (or a computation shared within the process) replayed as a response,
// with its 304, Age, ETag, Vary and status header.
import type { CacheEntry, StoredEntry } from "../backends/types.ts";
import { ENTRY_KIND } from "../core/entry.ts";
import {
  bodyTag,
  etagMatches,
  mergeVary,
  receivedAge,
  reduceMaxAge,
  varyValue,
} from "./_http.ts";
import type { Fail, Settings } from "./_options.ts";
import {
  appendMember,
  statusMember,
  type StatusReport,
} from "./_cache_status.ts";
import type { Freshness } from "./_shared_cache.ts";
import type { CacheContext, CacheStatus } from "./types.ts";

/** A response in the form an entry keeps it. */
export interface Replay {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
  etag: string;
  /** The `Age` it arrived with, in seconds: an upstream cache kept it so long. */
  age?: number;
  /** Proxy mode: the origin's freshness statement. */
  fresh?: Freshness;
  /** Proxy mode: the key it is stored under (a variant's, under `Vary`). */
  slot?: string;
  /** Proxy mode: the headers it varies on, and its variants' key generation. */
  variants?: { names: string[]; generation: string };
}

/** What an HTTP entry's `meta` holds besides its body. */
export interface Meta {
  status: number;
  headers: [string, string][];
  /**
   * Seconds the entry was fresh for when written: how far past expiry it
   * is, for a backend that does not tell `freshFor`.
   */
  ttl?: number;
  /** The `Age` the response arrived with, in seconds; absent for 0. */
  age?: number;
  /** Proxy mode: the origin's freshness statement. */
  fresh?: Freshness;
  /**
   * Proxy mode: the entry is no response but the list of request headers
   * the URL's responses vary on, and the generation of its variants' keys.
   */
  variants?: { names: string[]; generation: string };
}

/** An HTTP entry as read, with its metadata decoded. */
export interface Stored {
  entry: StoredEntry;
  meta: Meta;
}

/** How {@linkcode Replies.respond} answers. */
export interface ReplyOptions {
  /** The value of the status header. */
  status: CacheStatus;
  /**
   * Seconds since the response was computed, sent as `Age` and taken off
   * `cacheControl`'s max-ages; left out for a response computed now.
   */
  age?: number;
  /** Whether the client holds this version already: a 304 without body. */
  notModified: boolean;
  /** What `Cache-Status` says, when the status alone does not tell. */
  report?: StatusReport;
}

/** Response headers that are not stored with an entry. */
const UNSTORED = new Set([
  "age",
  "connection",
  "content-length",
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

const NOT_MODIFIED = 304;

/**
 * Statuses whose responses cannot carry a body (RFC 9110 §15.3.5, §15.3.6,
 * §15.4.5): `new Response()` rejects one, so they replay without.
 */
const BODILESS = new Set([204, 205, NOT_MODIFIED]);

/** What `Cache-Status` says for a status, when nothing more is known. */
const REPORTS: Record<CacheStatus, StatusReport> = {
  HIT: { hit: true },
  STALE: { hit: true, detail: "stale" },
  MISS: { fwd: "uri-miss", stored: true },
  BYPASS: { fwd: "bypass" },
  REVALIDATED: { fwd: "stale", fwdStatus: NOT_MODIFIED, stored: true },
};

/** The status each response of {@linkcode Replies} was marked with. */
const statuses = new WeakMap<Response, CacheStatus>();

/**
 * The cache status `res` was given by {@linkcode Replies}, whether or not a
 * header says it (`cacheStatusHeader: false`); `undefined` for a response
 * the cache did not mark.
 */
export function statusOf(res: Response): CacheStatus | undefined {
  return statuses.get(res);
}

/** Builds the responses of one route, with its headers. */
export class Replies {
  #cacheControl: string | undefined;
  #statusHeader: string | false;
  #varyHeader: string | undefined;
  #cacheName: string | undefined;

  constructor(
    settings: Pick<
      Settings,
      "cacheControl" | "statusHeader" | "varyHeader" | "cacheStatus"
    >,
  ) {
    this.#cacheControl = settings.cacheControl;
    this.#statusHeader = settings.statusHeader;
    this.#varyHeader = settings.varyHeader;
    this.#cacheName = settings.cacheStatus;
  }

  /** A response replaying `replay`. */
  respond(replay: Replay, options: ReplyOptions): Response {
    const cacheControl = this.#cacheControl;
    const varyHeader = this.#varyHeader;
    const { age, notModified } = options;
    // Header pairs, not a Headers object: it is the cheaper way to build one.
    const headers: [string, string][] = [];
    let storedVary: string | null = null;
    let upstreamStatus: string | null = null;
    for (const pair of replay.headers) {
      const name = pair[0];
      if (notModified && !NOT_MODIFIED_HEADERS.has(name)) continue;
      if (name === "vary" && varyHeader) storedVary = pair[1];
      else if (name === "cache-status" && this.#cacheName) {
        upstreamStatus = pair[1];
      } else if (name !== "cache-control" || cacheControl === undefined) {
        headers.push(pair);
      }
    }
    // Proxy mode keeps the origin's tag alone: none when it sent none.
    if (replay.etag) headers.push(["etag", replay.etag]);
    if (cacheControl !== undefined) {
      headers.push([
        "cache-control",
        age === undefined ? cacheControl : reduceMaxAge(cacheControl, age),
      ]);
    }
    if (age !== undefined) headers.push(["age", String(age)]);
    if (this.#statusHeader) headers.push([this.#statusHeader, options.status]);
    if (this.#cacheName) {
      headers.push([
        "cache-status",
        appendMember(
          upstreamStatus,
          statusMember(
            this.#cacheName,
            options.report ?? REPORTS[options.status],
          ),
        ),
      ]);
    }
    if (varyHeader) headers.push(["vary", varyValue(storedVary, varyHeader)]);
    const bodiless = notModified || BODILESS.has(replay.status);
    const res = new Response(
      bodiless ? null : replay.body as BodyInit,
      { status: notModified ? NOT_MODIFIED : replay.status, headers },
    );
    statuses.set(res, options.status);
    return res;
  }

  /**
   * A response from a stored entry, with its age; a 304 when the backend
   * found the client's tag (and sent no body) or the client's tags match.
   */
  fromEntry(stored: Stored, status: CacheStatus, etags: string[]): Response {
    const entry = stored.entry;
    return this.respond(replayOf(stored), {
      status,
      // The time resident here, on top of the time upstream (§4.2.3).
      age: Math.floor(entry.age) + (upstreamAge(stored.meta) ?? 0),
      notModified: entry.notModified || etagMatches(entry.etag, etags),
    });
  }

  /**
   * Sets the status header, `Cache-Status` and the route's `Vary` on `res`;
   * returns it.
   */
  mark(res: Response, status: CacheStatus, report?: StatusReport): Response {
    const headers = res.headers;
    if (this.#statusHeader) headers.set(this.#statusHeader, status);
    if (this.#cacheName) {
      headers.set(
        "cache-status",
        appendMember(
          headers.get("cache-status"),
          statusMember(this.#cacheName, report ?? REPORTS[status]),
        ),
      );
    }
    if (this.#varyHeader) mergeVary(headers, this.#varyHeader);
    statuses.set(res, status);
    return res;
  }

  /** Marks the context's response, copying it first if its headers are immutable. */
  markContext(
    c: CacheContext,
    status: CacheStatus,
    report?: StatusReport,
  ): void {
    try {
      this.mark(c.res, status, report);
    } catch {
      let copy: Response;
      try {
        copy = new Response(c.res.body, c.res);
      } catch {
        // A status `new Response()` rejects (above 599, from an origin):
        // the response passes on untouched, as it would without the cache.
        return;
      }
      replace(c, this.mark(copy, status, report));
    }
  }
}

/** Makes `res` the context's response. */
export function replace(c: CacheContext, res: Response): void {
  // Hono merges the old response's headers into a new one; start afresh.
  (c as { res: Response | undefined }).res = undefined;
  c.res = res;
}

/**
 * The HTTP entry with its metadata; `undefined` for no entry or another
 * kind, and when the metadata is unreadable, which is reported through `fail`.
 */
export function decode(
  entry: StoredEntry | undefined,
  fail: Fail,
): Stored | undefined {
  // No entry, or another kind (a value of the value API): none to replay.
  if (entry?.kind !== ENTRY_KIND.http) return undefined;
  try {
    const meta = JSON.parse(entry.meta ?? "");
    if (typeof meta?.status === "number" && Array.isArray(meta.headers)) {
      return { entry, meta };
    }
  } catch {
    // Not JSON: unreadable as well.
  }
  fail(new TypeError("Unreadable cache entry metadata"), "decodeEntry");
  return undefined;
}

/** The response a stored entry keeps. */
export function replayOf({ entry, meta }: Stored): Replay {
  return {
    status: meta.status,
    headers: meta.headers,
    body: entry.body,
    etag: entry.etag ?? "",
    age: upstreamAge(meta),
  };
}

/** The received `Age` an entry keeps; a value that is not a count is none. */
function upstreamAge(meta: Meta): number | undefined {
  const age = meta.age;
  return Number.isSafeInteger(age) && age! > 0 ? age : undefined;
}

/**
 * The handler's response with its whole `body`, as an entry keeps it:
 * without the headers that describe one transfer (and the status header),
 * and with an entity tag, the handler's or the body's digest.
 */
export async function capture(
  res: Response,
  body: Uint8Array,
  statusHeaderName: string,
  withheld?: ReadonlySet<string>,
): Promise<Replay> {
  const kept: [string, string][] = [];
  for (const [name, value] of res.headers) {
    if (
      !UNSTORED.has(name) && name !== statusHeaderName && !withheld?.has(name)
    ) {
      kept.push([name, value]);
    }
  }
  // Hits replay the Date of the response they stored (RFC 9110 §6.6.1):
  // the one it came with, or the time it was received.
  if (!res.headers.has("date")) kept.push(["date", new Date().toUTCString()]);
  const age = receivedAge(res.headers);
  return {
    status: res.status,
    headers: kept,
    body,
    // Proxy mode (which withholds fields) keeps the origin's tag alone.
    etag: res.headers.get("etag") ??
      (withheld ? "" : await bodyTag(body)),
    age: age > 0 ? age : undefined,
  };
}

/** The entry that keeps `replay`, fresh for `ttl` seconds. */
export function entryOf(replay: Replay, ttl: number): CacheEntry {
  return entryWith(replay, { ttl });
}

/** The proxy-mode entry that keeps `replay` with the origin's freshness. */
export function sharedEntryOf(replay: Replay, fresh: Freshness): CacheEntry {
  return entryWith(replay, { fresh });
}

/** The entry that keeps `replay`, with what its metadata adds. */
function entryWith(
  replay: Replay,
  extra: Pick<Meta, "ttl"> | Pick<Meta, "fresh">,
): CacheEntry {
  const meta: Meta = {
    status: replay.status,
    headers: replay.headers,
    ...extra,
  };
  if (replay.age) meta.age = replay.age;
  return {
    kind: ENTRY_KIND.http,
    body: replay.body,
    meta: JSON.stringify(meta),
    // Proxy mode keeps the origin's tag alone: none when it sent none.
    etag: replay.etag || undefined,
  };
}

/**
 * The proxy-mode entry that stands at a URL's key when its responses vary:
 * the request headers they vary on, and the generation of the variants'
 * keys (a new one leaves the old variants unreachable).
 */
export function variantsEntryOf(
  names: string[],
  generation: string,
): CacheEntry {
  const meta: Meta = {
    status: 0,
    headers: [],
    variants: { names, generation },
  };
  return {
    kind: ENTRY_KIND.http,
    body: new Uint8Array(0),
    meta: JSON.stringify(meta),
  };
}
