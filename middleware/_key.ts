// Cache keys: Web Crypto SHA-256 over method, path, sorted query and varied headers.
import type { CookieFilter } from "./_cookies.ts";
import { varyValueOf } from "./_shared_cache.ts";
import type { CacheContext } from "./types.ts";

const encoder = new TextEncoder();

/** The hex SHA-256 of `text`. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", encoder.encode(text)),
  );
  let hex = "";
  for (const byte of digest) hex += byte.toString(16).padStart(2, "0");
  return hex;
}

/** An absolute URL: a scheme, then `//`. */
const ABSOLUTE = /^[a-z][a-z\d+.-]*:\/\//i;

/**
 * The URL part of a key: the path exactly as the router matched it, and the
 * query with its parameters sorted by name (stably, so repeated names keep
 * their order).
 *
 * The path is the slice of the URL that Hono's router matches (its
 * `getPath`), taken before Hono decodes it: no dot segment is resolved, no
 * backslash becomes a slash, nothing is percent-decoded and no `//` is
 * collapsed. `new URL()` would do all four, while `Deno.serve` hands on the
 * request target (and the Host header) as the client sent them: two requests
 * the router sends to different routes would then share a key, and one
 * route's response would answer the other. The query is read where Hono
 * reads it too. A string that starts with `/` is a path with query.
 *
 * @throws {TypeError} If `url` is a string that is neither a path nor an
 * absolute URL.
 */
export function urlPart(url: string | URL): string {
  const href = typeof url !== "string"
    ? url.href
    : url.startsWith("/")
    ? `http://localhost${url}`
    : url;
  if (!ABSOLUTE.test(href)) {
    throw new TypeError(
      `Cannot derive a cache key: the URL must be a path starting with "/" or an absolute URL: received ${
        JSON.stringify(url)
      }`,
    );
  }
  return pathOf(href) + queryOf(href);
}

/** The path of an absolute URL, cut where Hono's `getPath` cuts it. */
function pathOf(href: string): string {
  const start = href.indexOf("/", href.indexOf(":") + 4);
  const rest = href.slice(start === -1 ? 0 : start);
  const length = rest.search(/[?#]/);
  // No request's URL is a bare origin: `Request` and Deno.serve give it "/".
  if (start === -1 && length === -1) return "/";
  // Without a slash, Hono's path is the empty slice before the query.
  return start === -1 ? "" : length === -1 ? rest : rest.slice(0, length);
}

/** The sorted query of an absolute URL, read where Hono's query parser reads. */
function queryOf(href: string): string {
  const hash = href.indexOf("#", 8);
  const head = hash === -1 ? href : href.slice(0, hash);
  const question = head.indexOf("?", 8);
  if (question === -1) return "";
  const params = new URLSearchParams(head.slice(question + 1));
  params.sort();
  const query = params.toString();
  return query ? `?${query}` : "";
}

/**
 * The key of a GET entry: a hex SHA-256 over the URL part and the values of
 * the varied request headers. Every part is length-framed by JSON, so no two
 * different inputs share a key. Credentials that enter it are never stored in
 * clear: only the digest is.
 */
export function entryKey(
  url: string,
  headers: readonly (string | null)[],
): Promise<string> {
  return sha256Hex(JSON.stringify(["GET", url, ...headers]));
}

/** The most derivations {@linkcode KeyMemo} remembers. */
const MEMO_SIZE = 10_000;

/** The most bytes the derivations {@linkcode KeyMemo} remembers may take. */
const MEMO_BYTES = 4 * 1024 * 1024;

/**
 * The longest input {@linkcode KeyMemo} remembers, in UTF-16 code units:
 * hashing a longer one again costs less than pinning it.
 */
const MEMO_INPUT_LENGTH = 2048;

/** What a remembered derivation takes besides its strings' characters. */
const ENTRY_OVERHEAD = 64;

/**
 * The bytes a remembered derivation takes, at most: two per UTF-16 code unit
 * (V8 stores one-byte strings in half that), and the map's slot.
 */
function costOf(input: string, key: string): number {
  return 2 * (input.length + key.length) + ENTRY_OVERHEAD;
}

/**
 * Remembers the keys of recent requests: hashing with Web Crypto costs tens
 * of microseconds, about as much as the rest of a cache hit. It is bounded by
 * count and by bytes, and does not remember inputs longer than
 * {@linkcode MEMO_INPUT_LENGTH}.
 */
export class KeyMemo {
  #keys = new Map<string, string>();
  #bytes = 0;

  /** How many derivations it remembers. */
  get size(): number {
    return this.#keys.size;
  }

  /** The bytes its remembered derivations take, at most. */
  get bytes(): number {
    return this.#bytes;
  }

  /** The key for `input` (any string that determines it), derived by `derive` once. */
  async get(input: string, derive: () => Promise<string>): Promise<string> {
    // Never remembered: not even worth hashing for the lookup.
    if (input.length > MEMO_INPUT_LENGTH) return await derive();
    const known = this.#keys.get(input);
    if (known !== undefined) return known;
    const key = await derive();
    // A concurrent call may have remembered it meanwhile.
    if (this.#keys.has(input)) return key;
    const cost = costOf(input, key);
    // Oldest first; each round removes one, and an empty memo has room.
    for (const [oldInput, oldKey] of this.#keys) {
      if (this.#keys.size < MEMO_SIZE && this.#bytes + cost <= MEMO_BYTES) {
        break;
      }
      this.#keys.delete(oldInput);
      this.#bytes -= costOf(oldInput, oldKey);
    }
    this.#keys.set(input, key);
    this.#bytes += cost;
    return key;
  }
}

/** What a route keys its entries on. */
export interface KeyRule {
  /** Replaces the URL part of the key. */
  keyGenerator: ((c: CacheContext) => string | Promise<string>) | undefined;
  /** The varied request headers, lower-case and sorted. */
  vary: readonly string[];
  /** Whether the credentials enter the key. */
  perUser: boolean;
  /** The cookies that count as credentials. */
  cookies: CookieFilter;
  /**
   * Whether the request's host enters the key: a shared cache keys on the
   * whole target URI (RFC 9111 §2), so one route may front several hosts.
   */
  keyHost: boolean;
}

/** Derives the keys of one route's requests, remembering recent ones. */
export class RequestKeys {
  #rule: KeyRule;
  #memo = new KeyMemo();

  constructor(rule: KeyRule) {
    this.#rule = rule;
  }

  /**
   * The key of the request of `c`.
   *
   * @throws If `keyGenerator` throws, or the URL is neither a path nor an
   * absolute URL.
   */
  async of(c: CacheContext): Promise<string> {
    const { keyGenerator } = this.#rule;
    const url = keyGenerator ? String(await keyGenerator(c)) : c.req.url;
    return await this.#derive(c, url, keyGenerator !== undefined);
  }

  /**
   * The keys an unsafe request to `c` invalidates (RFC 9111 §4.4): its own
   * URL's, and those of the same-origin `Location` and `Content-Location` of
   * its response `res`. A route with a `keyGenerator` keys on more than URLs:
   * only its own key is known.
   *
   * @throws If `keyGenerator` throws, or the URL is neither a path nor an
   * absolute URL.
   */
  async changedBy(c: CacheContext, res: Response): Promise<string[]> {
    const keys = [await this.of(c)];
    if (this.#rule.keyGenerator) return keys;
    const base = new URL(c.req.url);
    for (const name of ["location", "content-location"]) {
      const value = res.headers.get(name);
      if (value === null) continue;
      let target: URL;
      try {
        target = new URL(value, base);
      } catch {
        continue; // Not a URL: nothing to invalidate.
      }
      // Another origin's entries are not this one's to remove (§4.4).
      if (target.origin !== base.origin) continue;
      keys.push(await this.#derive(c, target.href, false));
    }
    return [...new Set(keys)];
  }

  /**
   * The secondary key (RFC 9111 §4.1) under the URL's `primary` key of a
   * request with `headers`, for responses varying on `names` (sorted), in
   * their key `generation`.
   */
  async variant(
    primary: string,
    generation: string,
    names: readonly string[],
    headers: Headers,
  ): Promise<string> {
    const input = JSON.stringify([
      primary,
      generation,
      ...names.map((name) => [name, varyValueOf(headers, name)]),
    ]);
    return await this.#memo.get(input, () => sha256Hex(input));
  }

  /** The key of `url` with the varied headers of the request of `c`. */
  async #derive(
    c: CacheContext,
    url: string,
    generated: boolean,
  ): Promise<string> {
    const { vary, perUser, cookies, keyHost } = this.#rule;
    const headers = c.req.raw.headers;
    const values: (string | null)[] = vary.map((name) =>
      // A Request built from a full URL has no Host header: use the URL's.
      headers.get(name) ?? (name === "host" ? new URL(c.req.url).host : null)
    );
    if (keyHost) values.push(new URL(c.req.url).host);
    if (perUser) {
      values.push(headers.get("authorization"), cookies(headers.get("cookie")));
    }
    // Generated keys are used as they are; URLs are normalized first.
    const input = JSON.stringify([generated ? 1 : 0, url, ...values]);
    return await this.#memo.get(
      input,
      () => entryKey(generated ? url : urlPart(url), values),
    );
  }
}
