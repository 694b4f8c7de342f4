// Cache keys: Web Crypto SHA-256 over method, path, sorted query and varied headers.

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

/**
 * The URL part of a key: the path and the query with its parameters sorted
 * by name (stably, so repeated names keep their order).
 */
export function urlPart(url: string | URL): string {
  const parsed = typeof url === "string"
    ? new URL(url, "http://localhost")
    : url;
  const params = new URLSearchParams(parsed.search);
  params.sort();
  const query = params.toString();
  return query ? `${parsed.pathname}?${query}` : parsed.pathname;
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

/**
 * Remembers the keys of recent requests: hashing with Web Crypto costs tens
 * of microseconds, about as much as the rest of a cache hit.
 */
export class KeyMemo {
  #keys = new Map<string, string>();

  /** The key for `input` (any string that determines it), derived by `derive` once. */
  async get(input: string, derive: () => Promise<string>): Promise<string> {
    const known = this.#keys.get(input);
    if (known !== undefined) return known;
    const key = await derive();
    if (this.#keys.size >= MEMO_SIZE) {
      this.#keys.delete(this.#keys.keys().next().value as string);
    }
    this.#keys.set(input, key);
    return key;
  }
}
