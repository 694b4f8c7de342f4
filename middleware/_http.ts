// HTTP header parsing used by cached(): Cache-Control, Vary, entity tags.

/** Parsed `Cache-Control` directives: lower-case names to values (`""` when valueless). */
export type Directives = Map<string, string>;

/** Parses a `Cache-Control` header value. */
export function parseCacheControl(value: string | null): Directives {
  const directives: Directives = new Map();
  if (!value) return directives;
  for (const part of value.split(",")) {
    const eq = part.indexOf("=");
    const name = (eq === -1 ? part : part.slice(0, eq)).trim().toLowerCase();
    if (!name) continue;
    const raw = eq === -1 ? "" : part.slice(eq + 1).trim();
    directives.set(name, raw.replace(/^"(.*)"$/, "$1"));
  }
  return directives;
}

/** Reads a delta-seconds directive (`max-age`, `s-maxage`), or `undefined`. */
export function deltaSeconds(
  directives: Directives,
  name: string,
): number | undefined {
  const raw = directives.get(name);
  if (raw === undefined || !/^\d+$/.test(raw)) return undefined;
  return Number(raw);
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
