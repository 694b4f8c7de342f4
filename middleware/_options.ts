// The options of cached(), checked once when the middleware is created, in
// one error style: "Cannot create cached middleware: <name> must be <rule>:
// received <what>". Requests then read only the resolved settings, never the
// options again.
import { burstLogger, report } from "../core/report.ts";
import { OptionChecks } from "../core/options.ts";
import type { CacheBackend, CacheErrorHandler } from "../backends/types.ts";
import { type CookieFilter, cookieFilter } from "./_cookies.ts";
import { headerList } from "./_http.ts";
import { SHARED_STATUSES } from "./_shared_cache.ts";
import type {
  AppFetcher,
  CacheContext,
  CachedOptions,
  CacheMode,
} from "./types.ts";

/** Reports a cache-side error to `onError`, with the backend's namespace. */
export type Fail = (error: unknown, operation: string, key?: string) => void;

/** Turns a request into the URL part of its key, in place of path and query. */
export type KeyGenerator = (c: CacheContext) => string | Promise<string>;

/** Background refreshes of stale entries, for `staleWhileRevalidate`. */
export interface Revalidation {
  /** Seconds after expiry during which a stale entry answers at once. */
  seconds: number;
  /** The app whose `fetch` recomputes the entry in the background. */
  app: AppFetcher;
}

/** The options of one `cached()` route, checked, with their defaults. */
export interface Settings {
  /** Where entries are stored. */
  backend: CacheBackend;
  /** Whether the route's options (`"app"`) or the origin's headers (`"proxy"`) rule. */
  mode: CacheMode;
  /** The cache's name in `Cache-Status`, or `undefined` for no such header. */
  cacheStatus: string | undefined;
  /** Seconds an entry stays fresh; `undefined`: the handler's max-age. */
  expire: number | undefined;
  /** The varied request headers: lower-case, sorted, without repeats. */
  vary: readonly string[];
  /** The `Vary` value every response of the route carries, if any. */
  varyHeader: string | undefined;
  /** Request headers whose values enter the key: a response may vary on them. */
  keyed: ReadonlySet<string>;
  /** Replaces the URL part of the key. */
  keyGenerator: KeyGenerator | undefined;
  /** Whether the request's host enters the key (proxy mode). */
  keyHost: boolean;
  /** Statuses that are stored. */
  statuses: ReadonlySet<number>;
  /** The `Cache-Control` set on MISS and HIT responses, if any. */
  cacheControl: string | undefined;
  /** The largest body stored, in bytes. */
  maxBodySize: number;
  /** The name of the status header, or `false` for none. */
  statusHeader: string | false;
  /** The status header's name in lower case (`""` for none), never stored. */
  statusHeaderName: string;
  /** Whether credentialed requests are cached, keyed per credential. */
  perUser: boolean;
  /** The cookies that count as credentials: they bypass, or key with `perUser`. */
  cookies: CookieFilter;
  /** Whether a client's `no-cache` and `no-store` are honoured. */
  honorRequestCacheControl: boolean;
  /** Tags of each entry, or how to compute them from the context. */
  tags: readonly string[] | ((c: CacheContext) => string[]);
  /** Whether a MISS waits for its write before responding. */
  wait: boolean;
  /** Milliseconds a request waits for another computing its key. */
  lockTimeout: number;
  /** Background refreshes of stale entries, when on. */
  staleWhileRevalidate: Revalidation | undefined;
  /** The app whose `fetch` refreshes entries in the background, if given. */
  app: AppFetcher | undefined;
  /** Seconds after expiry a stale entry answers when the handler fails. */
  staleIfError: number;
  /** Seconds after expiry an entry is kept, for either stale window. */
  staleFor: number;
  /** Whether misses coordinate across processes with the backend's lock. */
  crossProcessLock: boolean;
  /** Reports a cache-side error. */
  fail: Fail;
}

/** Bodies up to 1 MiB are stored. */
const DEFAULT_MAX_BODY_SIZE = 1024 * 1024;

const DEFAULT_LOCK_TIMEOUT_MS = 5000;

const DEFAULT_STATUS_HEADER = "X-Cache";

const DEFAULT_STATUSES: readonly number[] = [200];

/** The cache's name in `Cache-Status` when `cacheStatus` is `true`. */
const DEFAULT_CACHE_NAME = "cachekit";

/** A `Cache-Status` cache name: an sf-token (RFC 8941 §3.3.4). */
const CACHE_NAME = /^[A-Za-z*][!#$%&'*+\-.^_`|~0-9A-Za-z:/]*$/;

/** The statuses a response can have that may be stored: no 1xx. */
const LOWEST_STATUS = 200;
const HIGHEST_STATUS = 599;

const checks: OptionChecks = new OptionChecks(
  "Cannot create cached middleware",
);

/** Every option of `cached()`: any other is a mistake, reported at once. */
const OPTION_NAMES: readonly (keyof CachedOptions)[] = [
  "backend",
  "mode",
  "cacheStatus",
  "expire",
  "vary",
  "keyGenerator",
  "cacheableStatusCodes",
  "cacheControl",
  "maxBodySize",
  "cacheStatusHeader",
  "perUser",
  "ignoreCookies",
  "honorRequestCacheControl",
  "tags",
  "wait",
  "lockTimeout",
  "crossProcessLock",
  "staleWhileRevalidate",
  "staleIfError",
  "app",
  "onError",
];

/** Other libraries' names for an option, which edit distance would not find. */
const OTHER_NAMES: Record<string, keyof CachedOptions> = {
  ttl: "expire",
  maxAge: "expire",
  max_age: "expire",
  expires: "expire",
};

/**
 * Checks `options` and applies their defaults, throwing a `TypeError` or a
 * `RangeError` that names the first option at fault.
 */
export function resolveOptions(options: CachedOptions): Settings {
  if (typeof options !== "object" || options === null) {
    checks.type("options", "an object", options);
  }
  for (const name of Object.keys(options)) {
    const meant = Object.hasOwn(OTHER_NAMES, name)
      ? OTHER_NAMES[name]
      : undefined;
    if (meant && !(OPTION_NAMES as readonly string[]).includes(name)) {
      throw new TypeError(
        `Cannot create cached middleware: unknown option "${name}"; did you mean "${meant}"?`,
      );
    }
  }
  checks.known(options, OPTION_NAMES);
  const backend = backendOf(options.backend);
  const mode = modeOf(options.mode);
  const proxy = mode === "proxy";
  const expire = options.expire === undefined
    ? undefined
    : checks.positiveSeconds("expire", options.expire);
  const vary = varyOf(options.vary);
  const keyGenerator = options.keyGenerator === undefined
    ? undefined
    : checks.function<KeyGenerator>("keyGenerator", options.keyGenerator);
  const statuses = statusesOf(
    options.cacheableStatusCodes,
    proxy ? SHARED_STATUSES : DEFAULT_STATUSES,
  );
  const cacheControl = options.cacheControl;
  if (cacheControl !== undefined && typeof cacheControl !== "string") {
    checks.type("cacheControl", "a string", cacheControl);
  }
  if (cacheControl !== undefined && proxy) {
    checks.type(
      "cacheControl",
      'left out in mode "proxy" (the origin\'s Cache-Control rules there)',
      cacheControl,
    );
  }
  const maxBodySize = checks.nonNegativeInteger(
    "maxBodySize",
    options.maxBodySize ?? DEFAULT_MAX_BODY_SIZE,
  );
  const statusHeader = statusHeaderOf(options.cacheStatusHeader);
  const { perUser, only } = perUserOf(options.perUser);
  const cookies = cookieFilter(ignoredCookiesOf(options.ignoreCookies), only);
  const tags = options.tags ?? [];
  if (typeof tags !== "function" && !Array.isArray(tags)) {
    checks.type("tags", "an array or a function", tags);
  }
  const lockTimeout = lockTimeoutOf(options.lockTimeout);
  const swr = staleSeconds(
    "staleWhileRevalidate",
    options.staleWhileRevalidate,
  );
  const staleIfError = staleSeconds("staleIfError", options.staleIfError);
  const staleWhileRevalidate = swr > 0
    ? { seconds: swr, app: refreshingApp(options.app) }
    : undefined;
  const onError = checks.function<CacheErrorHandler>(
    "onError",
    options.onError ?? burstLogger(),
  );
  return {
    backend,
    mode,
    cacheStatus: cacheStatusOf(options.cacheStatus, proxy),
    expire,
    vary,
    varyHeader: vary.length ? vary.join(", ") : undefined,
    keyed: new Set([...vary, ...perUser ? ["authorization", "cookie"] : []]),
    keyGenerator,
    keyHost: proxy,
    statuses,
    cacheControl,
    maxBodySize,
    statusHeader,
    statusHeaderName: statusHeader ? statusHeader.toLowerCase() : "",
    perUser,
    cookies,
    honorRequestCacheControl: checks.boolean(
      "honorRequestCacheControl",
      options.honorRequestCacheControl ?? proxy,
    ),
    tags,
    wait: options.wait ?? false,
    lockTimeout,
    staleWhileRevalidate,
    app: typeof options.app?.fetch === "function" ? options.app : undefined,
    staleIfError,
    staleFor: Math.max(swr, staleIfError),
    crossProcessLock: checks.boolean(
      "crossProcessLock",
      options.crossProcessLock ?? true,
    ),
    // The namespace is read when reporting: a backend may rename it on start.
    fail: (error, operation, key) =>
      report(onError, error, { operation, namespace: backend.namespace, key }),
  };
}

function backendOf(backend: unknown): CacheBackend {
  const candidate = backend as Partial<CacheBackend> | null | undefined;
  if (
    !candidate || typeof candidate.readEntry !== "function" ||
    typeof candidate.writeEntry !== "function"
  ) {
    checks.type("backend", "a CacheBackend", backend);
  }
  return candidate as CacheBackend;
}

/** The varied headers, lower-case and sorted, so that the order given does not split keys. */
function varyOf(vary: unknown): string[] {
  let names: string[];
  if (vary === undefined) names = [];
  else if (typeof vary === "string") names = headerList(vary);
  else if (Array.isArray(vary)) {
    names = vary.map((name) => String(name).trim().toLowerCase());
  } else {
    checks.type("vary", "a header name or an array of header names", vary);
  }
  const unique = [...new Set(names.filter(Boolean))].sort();
  if (unique.includes("*")) {
    checks.type(
      "vary",
      'request header names, not "*" (which would key on all of them)',
      vary,
    );
  }
  return unique;
}

/** Whether credentials key the entries, and the only cookies that do, if named. */
function perUserOf(
  perUser: unknown,
): { perUser: boolean; only: Set<string> | undefined } {
  if (perUser === undefined || typeof perUser === "boolean") {
    return { perUser: perUser ?? false, only: undefined };
  }
  const cookies = (perUser as { cookies?: unknown } | null)?.cookies;
  if (
    !Array.isArray(cookies) ||
    !cookies.every((name) => typeof name === "string" && name !== "")
  ) {
    checks.type(
      "perUser",
      "a boolean or { cookies: [names of the cookies that identify a user] }",
      perUser,
    );
  }
  checks.known(perUser as object, ["cookies"], "perUser.");
  return { perUser: true, only: new Set(cookies) };
}

function ignoredCookiesOf(ignore: unknown): (string | RegExp)[] {
  if (ignore === undefined) return [];
  if (
    !Array.isArray(ignore) ||
    !ignore.every((rule) => typeof rule === "string" || rule instanceof RegExp)
  ) {
    checks.type(
      "ignoreCookies",
      "an array of cookie names and RegExps",
      ignore,
    );
  }
  return ignore;
}

function modeOf(mode: unknown): CacheMode {
  if (mode === undefined) return "app";
  if (mode !== "app" && mode !== "proxy") {
    checks.type("mode", '"app" or "proxy"', mode);
  }
  return mode;
}

/** The cache's name in `Cache-Status`, or `undefined` when it is off. */
function cacheStatusOf(value: unknown, proxy: boolean): string | undefined {
  const given = value ?? proxy;
  if (given === false) return undefined;
  if (given === true) return DEFAULT_CACHE_NAME;
  if (typeof given !== "string" || !CACHE_NAME.test(given)) {
    checks.type(
      "cacheStatus",
      'a boolean or a cache name (a token such as "edge-1")',
      given,
    );
  }
  return given;
}

function statusesOf(
  statuses: unknown,
  defaults: readonly number[],
): Set<number> {
  const given = statuses ?? defaults;
  if (
    typeof (given as Iterable<unknown>)[Symbol.iterator] !== "function"
  ) {
    checks.type("cacheableStatusCodes", "an array of HTTP statuses", given);
  }
  const set = new Set(given as Iterable<number>);
  for (const status of set) {
    if (
      !Number.isInteger(status) || status < LOWEST_STATUS ||
      status > HIGHEST_STATUS
    ) {
      checks.range(
        "cacheableStatusCodes",
        `HTTP statuses from ${LOWEST_STATUS} to ${HIGHEST_STATUS}`,
        status,
      );
    }
  }
  return set;
}

function statusHeaderOf(header: unknown): string | false {
  const name = header ?? DEFAULT_STATUS_HEADER;
  if (name !== false && (typeof name !== "string" || !name)) {
    checks.type("cacheStatusHeader", "a header name or false", name);
  }
  return name as string | false;
}

function lockTimeoutOf(timeout: unknown): number {
  const ms = timeout ?? DEFAULT_LOCK_TIMEOUT_MS;
  if (!Number.isInteger(ms) || (ms as number) < 0) {
    checks.range(
      "lockTimeout",
      "a non-negative integer of milliseconds",
      ms,
    );
  }
  return ms as number;
}

/** A stale window: positive seconds when given, else 0 (none). */
function staleSeconds(name: string, seconds: unknown): number {
  return seconds === undefined ? 0 : checks.positiveSeconds(name, seconds);
}

/** The app that refreshes stale entries: a stale window without it would never end. */
function refreshingApp(app: AppFetcher | undefined): AppFetcher {
  if (typeof app?.fetch !== "function") {
    checks.type(
      "staleWhileRevalidate needs the app to refresh entries in the background, so app",
      "an app with a fetch method (pass app, or use cache.initApp(app, backend))",
      app,
    );
  }
  return app;
}
