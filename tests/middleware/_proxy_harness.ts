// The harness of the proxy-mode tests: an app whose handler plays the origin
// with a response each test writes, run on every backend kind, and readers
// of the `Cache-Status` field (RFC 9211).
import assert from "node:assert/strict";
import { type Context, Hono } from "hono";
import type { CacheBackend } from "../../backends/types.ts";
import { cached } from "../../middleware/cached.ts";
import type { CachedOptions } from "../../middleware/types.ts";
import { backendKinds } from "../_helpers.ts";

/** The origin of a test: answers the request it is given, on its `run`th call. */
export type Respond = (
  request: Request,
  run: number,
  c: Context,
) => Response | Promise<Response>;

/** What the origin received: the method and a copy of the headers. */
export interface Seen {
  method: string;
  headers: Headers;
}

/** An app with `cached({ mode: "proxy" })` in front of a test's origin. */
export interface ProxyApp {
  app: Hono;
  /** How many times the origin answered. */
  runs(): number;
  /** The requests the origin saw, in order, as it saw them. */
  seen: Seen[];
  /** What reached `onError`, unless the test gave its own. */
  errors: unknown[];
}

/**
 * An app whose route `/*` (all methods) is cached in proxy mode with
 * `options`; its handler reads `c.req.raw` at call time, as a proxying route
 * does, and answers with `respond`. With `self`, the app itself is passed
 * as `app` (for background refreshes). Handler errors become a 500.
 */
export function proxyApp(
  options: CachedOptions,
  respond: Respond,
  self = false,
): ProxyApp {
  let runs = 0;
  const seen: Seen[] = [];
  const errors: unknown[] = [];
  const app = new Hono();
  app.onError((_, c) => c.text("handler failed", 500));
  app.all(
    "/*",
    cached({
      mode: "proxy",
      onError: (error) => errors.push(error),
      ...options,
      ...(self ? { app } : {}),
    }),
    (c) => {
      const request = c.req.raw;
      seen.push({
        method: request.method,
        headers: new Headers(request.headers),
      });
      return respond(request, ++runs, c);
    },
  );
  return { app, runs: () => runs, seen, errors };
}

/** A response the origin writes: `body` (default `run N`) and `headers`. */
export function answer(
  headers: HeadersInit,
  body?: string | null,
  status = 200,
): Respond {
  return (_, run) =>
    new Response(body === undefined ? `run ${run}` : body, { status, headers });
}

/** The entity tag the `validated` origin gives its responses. */
export const TAG = '"v1"';

/**
 * An origin with a validator: `ETag: "v1"` (and `headers`) on a 200 `run N`;
 * a request whose `If-None-Match` is `"v1"` gets a 304 with `notModified`.
 */
export function validated(
  headers: Record<string, string>,
  notModified: Record<string, string> = {},
): Respond {
  return (request, run) =>
    request.headers.get("if-none-match") === TAG
      ? new Response(null, {
        status: 304,
        headers: { etag: TAG, ...notModified },
      })
      : new Response(`run ${run}`, { headers: { etag: TAG, ...headers } });
}

/** One response as the client saw it. */
export interface Sent {
  res: Response;
  status: number;
  /** The `X-Cache` value. */
  cache: string | null;
  /** The `Cache-Status` value. */
  cacheStatus: string | null;
  body: string;
}

/** Requests `url` from `app`; resolves to the response, read. */
export async function send(
  app: Hono,
  url: string,
  init?: RequestInit,
): Promise<Sent> {
  const res = await app.request(url, init);
  return {
    res,
    status: res.status,
    cache: res.headers.get("x-cache"),
    cacheStatus: res.headers.get("cache-status"),
    body: await res.text(),
  };
}

/** Requests `url` with `headers`. */
export function sendWith(
  app: Hono,
  url: string,
  headers: HeadersInit,
): Promise<Sent> {
  return send(app, url, { headers });
}

/** An IMF-fixdate `seconds` from now. */
export function httpDate(seconds: number): string {
  return new Date(Date.now() + seconds * 1000).toUTCString();
}

/** One member of a `Cache-Status` field: the cache's name and parameters. */
export interface Member {
  name: string;
  params: Map<string, string | true>;
}

/** Splits `text` at `separator` outside quoted strings, trimming each part. */
function splitOutsideQuotes(text: string, separator: string): string[] {
  const parts: string[] = [];
  let current = "";
  let quoted = false;
  for (let i = 0; i < text.length; i++) {
    const char = text[i];
    if (quoted && char === "\\") {
      current += char + (text[++i] ?? "");
      continue;
    }
    if (char === '"') quoted = !quoted;
    if (char === separator && !quoted) {
      parts.push(current.trim());
      current = "";
    } else current += char;
  }
  parts.push(current.trim());
  return parts;
}

/** The members of a `Cache-Status` value, upstream first. */
export function members(value: string | null): Member[] {
  assert.ok(value !== null, "No Cache-Status header");
  return splitOutsideQuotes(value, ",").map((member) => {
    const [name, ...rest] = splitOutsideQuotes(member, ";");
    const params = new Map<string, string | true>();
    for (const param of rest) {
      const eq = param.indexOf("=");
      if (eq < 0) params.set(param, true);
      else params.set(param.slice(0, eq), param.slice(eq + 1));
    }
    return { name, params };
  });
}

/** The last member of a `Cache-Status` value, asserted to be ours. */
export function ours(value: string | null, name = "cachekit"): Member {
  const all = members(value);
  const last = all[all.length - 1];
  assert.equal(last.name, name, `Cache-Status ${value}`);
  return last;
}

/** The `ttl` of our member: an integer, negative once stale. */
export function ttlOf(value: string | null): number {
  const ttl = ours(value).params.get("ttl");
  assert.ok(
    typeof ttl === "string" && /^-?\d+$/.test(ttl),
    `Cache-Status ${value}: no integer ttl`,
  );
  return Number(ttl);
}

/** Asserts that `value` lies in `[low, high]`. */
export function assertBetween(
  value: number,
  low: number,
  high: number,
  what = "value",
): void {
  assert.ok(
    value >= low && value <= high,
    `${what} ${value} not in [${low}, ${high}]`,
  );
}

/** Asserts a hit: X-Cache HIT, `cachekit; hit; ttl=N`; resolves to N. */
export function assertHit(sent: Sent): number {
  assert.equal(sent.cache, "HIT", `X-Cache, Cache-Status ${sent.cacheStatus}`);
  assert.match(sent.cacheStatus ?? "", /^cachekit; hit; ttl=\d+$/);
  return ttlOf(sent.cacheStatus);
}

/** Headers of a response stale on arrival by 40 s: Age 100, max-age=60. */
export const STALE_BY_40 = { "cache-control": "max-age=60", age: "100" };

/** Asserts a stale hit: X-Cache STALE, a `hit` member with a negative ttl. */
export function assertStale(sent: Sent): number {
  assert.equal(sent.cache, "STALE", `Cache-Status ${sent.cacheStatus}`);
  assert.equal(ours(sent.cacheStatus).params.get("hit"), true);
  const ttl = ttlOf(sent.cacheStatus);
  assert.ok(ttl < 0, `ttl ${ttl}`);
  return ttl;
}

/** Whether our member of the response's `Cache-Status` says `stored`. */
export function stored(sent: Sent): boolean {
  return ours(sent.cacheStatus).params.get("stored") === true;
}

/**
 * Registers `proxy mode: <name>` once per available backend kind; with
 * `memoryOnly`, once, on a MemoryBackend.
 */
export function rule(
  name: string,
  fn: (backend: CacheBackend) => Promise<void>,
  memoryOnly = false,
): void {
  for (const kind of memoryOnly ? backendKinds.slice(0, 1) : backendKinds) {
    Deno.test({
      name: memoryOnly
        ? `proxy mode: ${name}`
        : `proxy mode: ${name}: ${kind.name}`,
      ignore: !kind.available,
      async fn() {
        const { backend, dispose } = await kind.open();
        try {
          await fn(backend);
        } finally {
          await dispose();
        }
      },
    });
  }
}

/** Calls `fn` every 10 ms until it returns true, for at most `ms`. */
export async function until(
  what: string,
  fn: () => boolean | Promise<boolean>,
  ms = 5000,
): Promise<void> {
  const deadline = Date.now() + ms;
  while (!(await fn())) {
    if (Date.now() >= deadline) {
      throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 10));
  }
}
