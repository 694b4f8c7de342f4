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
import type { Settings } from "./_options.ts";
import type { CacheContext, CacheStatus } from "./types.ts";

/** A response in the form an entry keeps it. */
export interface Replay {
  status: number;
  headers: [string, string][];
  body: Uint8Array;
  etag: string;
  /** The `Age` it arrived with, in seconds: an upstream cache kept it so long. */
  age?: number;
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

/** Builds the responses of one route, with its headers. */
export class Replies {
  #cacheControl: string | undefined;
  #statusHeader: string | false;
  #varyHeader: string | undefined;

  constructor(
    settings: Pick<Settings, "cacheControl" | "statusHeader" | "varyHeader">,
  ) {
    this.#cacheControl = settings.cacheControl;
    this.#statusHeader = settings.statusHeader;
    this.#varyHeader = settings.varyHeader;
  }

  /** A response replaying `replay`. */
  respond(replay: Replay, options: ReplyOptions): Response {
    const cacheControl = this.#cacheControl;
    const varyHeader = this.#varyHeader;
    const { age, notModified } = options;
    // Header pairs, not a Headers object: it is the cheaper way to build one.
    const headers: [string, string][] = [];
    let storedVary: string | null = null;
    for (const pair of replay.headers) {
      const name = pair[0];
      if (notModified && !NOT_MODIFIED_HEADERS.has(name)) continue;
      if (name === "vary" && varyHeader) storedVary = pair[1];
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
    if (this.#statusHeader) headers.push([this.#statusHeader, options.status]);
    if (varyHeader) headers.push(["vary", varyValue(storedVary, varyHeader)]);
    const bodiless = notModified || BODILESS.has(replay.status);
    return new Response(
      bodiless ? null : replay.body as BodyInit,
      { status: notModified ? NOT_MODIFIED : replay.status, headers },
    );
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

  /** Sets the status header and the route's `Vary` on `res`; returns it. */
  mark(res: Response, status: CacheStatus): Response {
    if (this.#statusHeader) res.headers.set(this.#statusHeader, status);
    if (this.#varyHeader) mergeVary(res.headers, this.#varyHeader);
    return res;
  }

  /** Marks the context's response, copying it first if its headers are immutable. */
  markContext(c: CacheContext, status: CacheStatus): void {
    try {
      this.mark(c.res, status);
    } catch {
      let copy: Response;
      try {
        copy = new Response(c.res.body, c.res);
      } catch {
        // A status `new Response()` rejects (above 599, from an origin):
        // the response passes on untouched, as it would without the cache.
        return;
      }
      replace(c, this.mark(copy, status));
    }
  }
}

/** Makes `res` the context's response. */
export function replace(c: CacheContext, res: Response): void {
  // Hono merges the old response's headers into a new one; start afresh.
  (c as { res: Response | undefined }).res = undefined;
  c.res = res;
}

/** The entry with its metadata, or `undefined` when the metadata is unreadable. */
export function decode(entry: StoredEntry): Stored | undefined {
  try {
    const meta = JSON.parse(entry.meta ?? "");
    if (typeof meta?.status === "number" && Array.isArray(meta.headers)) {
      return { entry, meta };
    }
  } catch {
    // Not JSON: unreadable as well.
  }
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
): Promise<Replay> {
  const kept: [string, string][] = [];
  for (const [name, value] of res.headers) {
    if (!UNSTORED.has(name) && name !== statusHeaderName) {
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
    etag: res.headers.get("etag") ?? await bodyTag(body),
    age: age > 0 ? age : undefined,
  };
}

/** The entry that keeps `replay`, fresh for `ttl` seconds. */
export function entryOf(replay: Replay, ttl: number): CacheEntry {
  const meta: Meta = { status: replay.status, headers: replay.headers, ttl };
  if (replay.age) meta.age = replay.age;
  return {
    kind: ENTRY_KIND.http,
    body: replay.body,
    meta: JSON.stringify(meta),
    etag: replay.etag,
  };
}
