// HTTP header parsing used by cached(): Cache-Control, Vary, entity tags.

/**
 * Parsed `Cache-Control` directives: lower-case names to values (`""` when
 * valueless). A quoted value keeps its quotes, so that a delta-seconds
 * directive can tell `max-age=5` from the invalid `max-age="5"`.
 */
export type Directives = Map<string, string>;

/**
 * One directive: a token name, then `=` and a token or a quoted string (with
 * `\` escapes), up to the comma that ends it. A quoted value may hold commas
 * (`no-cache="set-cookie, x-a"`): splitting on commas first would cut it in two.
 */
const DIRECTIVE =
  /\s*([^\s=,]+)\s*(?:=\s*("(?:[^"\\]|\\.)*"?|[^,]*))?\s*(?:,|$)/gy;

/** Parses a `Cache-Control` header value. */
export function parseCacheControl(value: string | null): Directives {
  const directives: Directives = new Map();
  if (!value) return directives;
  DIRECTIVE.lastIndex = 0;
  // Each match consumes at least one character, or ends the loop.
  for (let at = 0; at < value.length;) {
    const match = DIRECTIVE.exec(value);
    if (!match || DIRECTIVE.lastIndex === at) {
      // Garbage up to the next comma (a stray `=`): skip it.
      const comma = value.indexOf(",", at);
      if (comma === -1) break;
      at = DIRECTIVE.lastIndex = comma + 1;
      continue;
    }
    at = DIRECTIVE.lastIndex;
    const name = match[1].toLowerCase();
    // The first occurrence rules, as in most caches.
    if (!directives.has(name)) directives.set(name, (match[2] ?? "").trim());
  }
  return directives;
}

/**
 * Reads a delta-seconds directive (`max-age`, `s-maxage`): `undefined` when
 * absent, and 0 when invalid (negative, quoted, not digits): RFC 9111 §4.2.1
 * has an invalid freshness lifetime mean stale.
 */
export function deltaSeconds(
  directives: Directives,
  name: string,
): number | undefined {
  const raw = directives.get(name);
  if (raw === undefined) return undefined;
  return /^\d+$/.test(raw) ? Number(raw) : 0;
}

/** An IMF-fixdate (RFC 9110 §5.6.7), the one form a cache must accept. */
const IMF_FIXDATE =
  /^(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} (?:Jan|Feb|Mar|Apr|May|Jun|Jul|Aug|Sep|Oct|Nov|Dec) \d{4} \d{2}:\d{2}:\d{2} GMT$/;

/**
 * The milliseconds of an HTTP date in IMF-fixdate form, or `undefined`:
 * obsolete forms (2-digit years) and other zones are treated as invalid.
 */
export function httpDate(value: string | null): number | undefined {
  if (value === null || !IMF_FIXDATE.test(value.trim())) return undefined;
  const ms = Date.parse(value);
  return Number.isNaN(ms) ? undefined : ms;
}

/**
 * The `Age` a response arrived with, in seconds: 0 when absent or not a
 * non-negative integer.
 */
export function receivedAge(headers: Headers): number {
  const value = headers.get("age")?.trim();
  return value && /^\d+$/.test(value) ? Number(value) : 0;
}

/** Rewrites the `max-age` and `s-maxage` of a `Cache-Control` value, less `age` seconds. */
export function reduceMaxAge(value: string, age: number): string {
  return value.replace(
    /\b(max-age|s-maxage)\s*=\s*(\d+)/gi,
    (_, name: string, seconds: string) =>
      `${name}=${Math.max(0, Number(seconds) - age)}`,
  );
}

/** Lower-case header names of a comma-separated list (`Vary`). */
export function headerList(value: string | null): string[] {
  if (!value) return [];
  return value.split(",").map((name) => name.trim().toLowerCase()).filter(
    Boolean,
  );
}

/** The opaque tags of an `If-None-Match` value, with `W/` removed; `*` stays `*`. */
export function parseIfNoneMatch(value: string | null): string[] {
  if (!value) return [];
  const tags: string[] = [];
  for (const match of value.matchAll(/(?:W\/)?("[^"]*"|\*)/g)) {
    tags.push(match[1]);
  }
  return tags;
}

/** The opaque part of an entity tag, for weak comparison. */
export function opaqueTag(etag: string): string {
  return etag.startsWith("W/") ? etag.slice(2) : etag;
}

/** Whether `etag` matches any of `tags` (from {@linkcode parseIfNoneMatch}) by weak comparison. */
export function etagMatches(
  etag: string | undefined,
  tags: readonly string[],
): boolean {
  if (etag === undefined || tags.length === 0) return false;
  return tags.includes("*") || tags.includes(opaqueTag(etag));
}

/** A strong entity tag: the SHA-256 of `body`, base64url-encoded and quoted. */
export async function bodyTag(body: Uint8Array): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", body as Uint8Array<ArrayBuffer>),
  );
  let binary = "";
  for (const byte of digest) binary += String.fromCharCode(byte);
  return `"${
    btoa(binary).replaceAll("+", "-").replaceAll("/", "_").replace(/=+$/, "")
  }"`;
}

/** A `Vary` value with `names` added to `current`, without repeating any. */
export function varyValue(current: string | null, names: string): string {
  if (!current) return names;
  const have = new Set(headerList(current));
  const add = headerList(names).filter((name) => !have.has(name));
  return add.length ? `${current}, ${add.join(", ")}` : current;
}

/** Adds `names` to the response's `Vary` header, without repeating any. */
export function mergeVary(headers: Headers, names: string): void {
  headers.set("vary", varyValue(headers.get("vary"), names));
}

/**
 * Both the strong and the weak form of each tag of {@linkcode parseIfNoneMatch}:
 * backends compare entity tags exactly, while `If-None-Match` compares weakly.
 */
export function withWeak(etags: readonly string[]): string[] {
  return etags.flatMap((tag) => tag === "*" ? [tag] : [tag, `W/${tag}`]);
}
