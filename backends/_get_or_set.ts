// getOrSet on any CacheBackend, built on its public methods only: the read
// (`lookup`, else `readEntry`), the cross-process lock where the backend has
// one, and `writeEntry`. Each backend's `getOrSet` calls it with itself.
import type {
  CacheBackend,
  CacheValue,
  EntryLookup,
  KeyLock,
  StoredEntry,
} from "./types.ts";
import { decodeValue, encodeValue, ENTRY_KIND } from "../core/entry.ts";
import { OptionChecks } from "../core/options.ts";
import { burstLogger, report } from "../core/report.ts";
import { delay } from "../core/time.ts";
import { checkKey, checkTags } from "./_validate.ts";

/**
 * Options of {@linkcode CacheBackend.getOrSet}.
 *
 * @example A value computed once a minute, served stale while it refreshes
 * ```ts
 * import type { GetOrSetOptions } from "@cachekit/hono/types";
 * import { MemoryBackend } from "@cachekit/hono/memory";
 * import assert from "node:assert/strict";
 *
 * const options: GetOrSetOptions = {
 *   expire: 60,
 *   tags: ["reports"],
 *   staleWhileRevalidate: 300,
 *   staleIfError: 3600,
 * };
 * const backend = new MemoryBackend();
 * const report = await backend.getOrSet("report", () => ({ total: 42 }), options);
 * assert.deepEqual(report, { total: 42 });
 * ```
 */
export interface GetOrSetOptions {
  /**
   * Seconds the computed value stays fresh: a positive number, at most 100
   * years.
   *
   * @default {undefined} never expires
   */
  expire?: number;
  /** Tags of the stored value, for `invalidateTags`. */
  tags?: readonly string[];
  /**
   * Seconds after expiry during which the stale value is returned at once
   * while one computation refreshes it in the background.
   *
   * @default {0}
   */
  staleWhileRevalidate?: number;
  /**
   * Seconds after expiry during which the stale value is returned when
   * `compute` throws (the error then goes to the backend's `onError`).
   *
   * @default {0}
   */
  staleIfError?: number;
  /**
   * The most milliseconds to wait while another process computes the same
   * key (backends with a cross-process lock); past it, this one computes too.
   *
   * @default {5000}
   */
  lockTimeout?: number;
}

/** The names of {@linkcode GetOrSetOptions}, for the unknown-option check. */
export const GET_OR_SET_OPTIONS: readonly string[] = [
  "expire",
  "tags",
  "staleWhileRevalidate",
  "staleIfError",
  "lockTimeout",
];

/** Reports a cache-side failure of `operation` on `key`; never throws. */
export type Fail = (error: unknown, operation: string, key: string) => void;

/** A computation in flight in this process, shared by its callers. */
interface Flight {
  value: Promise<CacheValue>;
  /** The purge epoch it computes under: none is shared past a later purge. */
  epoch: number | undefined;
}

interface InFlight {
  computing: Map<string, Flight>;
  refreshing: Map<string, Promise<void>>;
}

/** Work in flight per backend, by key. */
const inFlightOf = new WeakMap<CacheBackend, InFlight>();

/** The logger of backends that bring no `onError` of their own. */
const defaultLogger = burstLogger();

const checks = new OptionChecks("Cannot get or set value");

/** The first and the longest pause between two tries of a held lock, in ms. */
const FIRST_PAUSE_MS = 5;
const LONGEST_PAUSE_MS = 100;

interface Terms {
  expire: number | undefined;
  tags: readonly string[];
  staleWhileRevalidate: number;
  staleIfError: number;
  lockTimeout: number;
}

/** Checks the arguments of `getOrSet` once, before any store sees them. */
function resolveTerms(
  key: unknown,
  compute: unknown,
  options: GetOrSetOptions | undefined,
): Terms {
  checkKey(key);
  checks.function("compute", compute);
  if (options === undefined) options = {};
  checks.known(options, GET_OR_SET_OPTIONS);
  return {
    expire: options.expire === undefined
      ? undefined
      : checks.positiveSeconds("expire", options.expire),
    tags: checkTags(options.tags ?? [], "get or set value"),
    staleWhileRevalidate: checks.nonNegativeSeconds(
      "staleWhileRevalidate",
      options.staleWhileRevalidate ?? 0,
    ),
    staleIfError: checks.nonNegativeSeconds(
      "staleIfError",
      options.staleIfError ?? 0,
    ),
    lockTimeout: checks.nonNegativeNumber(
      "lockTimeout",
      options.lockTimeout ?? 5000,
    ),
  };
}

/**
 * Resolves to the value at `key` in `backend`, or computes it with `compute`,
 * stores it and resolves to it. One computation per key runs at a time in
 * this process, and, on a backend with `lock`, across processes. The cache
 * never makes it throw: a backend that fails is reported to `fail` and
 * `compute` runs; only `compute`'s own error, or a value that cannot be
 * stored, rejects.
 *
 * @param backend The backend, whose public methods alone are used.
 * @param key The key.
 * @param compute Computes the value on a miss.
 * @param options Expiry, tags and stale windows.
 * @param fail Receives the backend's failures; by default they are logged
 * once per burst.
 * @returns The cached or computed value.
 */
export async function getOrSet<T extends CacheValue>(
  backend: CacheBackend,
  key: string,
  compute: () => T | Promise<T>,
  options?: GetOrSetOptions,
  fail: Fail = (error, operation, key) =>
    report(defaultLogger, error, {
      operation,
      namespace: backend.namespace,
      key,
    }),
): Promise<T> {
  const terms = resolveTerms(key, compute, options);
  const flights = inFlight(backend);
  const { entry, epoch } = await read(backend, key, fail);
  let stale: StoredEntry | undefined;
  if (entry) {
    if (!entry.stale) return decodeValue(entry) as T;
    const past = -(entry.freshFor ?? 0);
    if (terms.staleWhileRevalidate > 0 && past <= terms.staleWhileRevalidate) {
      refresh(backend, key, compute, terms, epoch, fail);
      return decodeValue(entry) as T;
    }
    if (terms.staleIfError > 0 && past <= terms.staleIfError) stale = entry;
  }
  const flight = leader(flights, key, epoch) ??
    lead(
      flights,
      key,
      epoch,
      () => computeAndStore(backend, key, compute, terms, epoch, fail),
    );
  try {
    return await flight.value as T;
  } catch (error) {
    if (!stale) throw error;
    fail(error, "compute", key);
    return decodeValue(stale) as T;
  }
}

function inFlight(backend: CacheBackend): InFlight {
  let found = inFlightOf.get(backend);
  if (!found) {
    found = { computing: new Map(), refreshing: new Map() };
    inFlightOf.set(backend, found);
  }
  return found;
}

/** A value entry with its purge epoch; nothing, reported, when the backend fails. */
async function read(
  backend: CacheBackend,
  key: string,
  fail: Fail,
): Promise<EntryLookup> {
  let found: EntryLookup;
  try {
    found = backend.lookup
      ? await backend.lookup(key)
      : { entry: await backend.readEntry(key), epoch: undefined };
  } catch (error) {
    fail(error, "readEntry", key);
    return { entry: undefined, epoch: undefined };
  }
  // An HTTP response of the middleware under the same key is no value.
  return isValue(found.entry)
    ? found
    : { entry: undefined, epoch: found.epoch };
}

function isValue(entry: StoredEntry | undefined): entry is StoredEntry {
  return entry !== undefined && entry.kind !== ENTRY_KIND.http;
}

/** The computation of `key` a caller that read under `epoch` may share. */
function leader(
  flights: InFlight,
  key: string,
  epoch: number | undefined,
): Flight | undefined {
  const flight = flights.computing.get(key);
  if (!flight) return undefined;
  const purgedSince = epoch !== undefined && flight.epoch !== undefined &&
    epoch > flight.epoch;
  return purgedSince ? undefined : flight;
}

/** Starts the computation of `key`, shared until it is stored. */
function lead(
  flights: InFlight,
  key: string,
  epoch: number | undefined,
  run: () => Promise<CacheValue>,
): Flight {
  const flight: Flight = { value: run(), epoch };
  flights.computing.set(key, flight);
  const done = () => {
    if (flights.computing.get(key) === flight) flights.computing.delete(key);
  };
  flight.value.then(done, done);
  return flight;
}

/**
 * Takes the key's lock where the backend has one (so that one process
 * computes), computes, stores, and releases the lock once the value is
 * stored. A fresh value another process stored meanwhile is returned
 * instead of computing.
 */
async function computeAndStore<T extends CacheValue>(
  backend: CacheBackend,
  key: string,
  compute: () => T | Promise<T>,
  terms: Terms,
  epoch: number | undefined,
  fail: Fail,
): Promise<CacheValue> {
  const held = await acquire(backend, key, terms.lockTimeout, fail);
  if (held && "entry" in held) return decodeValue(held.entry);
  try {
    const value = await compute();
    await store(backend, key, value, terms, epoch, fail);
    return value;
  } finally {
    if (held) await release(held.lock, key, fail);
  }
}

/**
 * The key's lock across processes, waiting (bounded by `timeout`) while
 * another process holds it; a fresh value written meanwhile; or nothing:
 * compute without a lock.
 */
async function acquire(
  backend: CacheBackend,
  key: string,
  timeout: number,
  fail: Fail,
): Promise<{ entry: StoredEntry } | { lock: KeyLock } | undefined> {
  if (!backend.lock) return undefined;
  const deadline = Date.now() + timeout;
  for (
    let pause = FIRST_PAUSE_MS;;
    pause = Math.min(pause * 2, LONGEST_PAUSE_MS)
  ) {
    let lock: KeyLock;
    try {
      lock = await backend.lock(key);
    } catch (error) {
      fail(error, "lock", key);
      return undefined;
    }
    if (lock.acquired) {
      const entry = lock.entry;
      if (isValue(entry) && !entry.stale) {
        await release(lock, key, fail);
        return { entry };
      }
      return { lock };
    }
    if (Date.now() + pause > deadline) return undefined;
    await delay(pause);
  }
}

async function release(lock: KeyLock, key: string, fail: Fail): Promise<void> {
  try {
    await lock.release();
  } catch (error) {
    fail(error, "unlock", key);
  }
}

/**
 * Stores `value` for `terms`, under the purge epoch it was computed under;
 * a failed write is reported. Throws a `TypeError` for a value that cannot
 * be stored exactly.
 */
async function store(
  backend: CacheBackend,
  key: string,
  value: CacheValue,
  terms: Terms,
  epoch: number | undefined,
  fail: Fail,
): Promise<void> {
  const entry = encodeValue(value);
  const staleFor = Math.max(terms.staleWhileRevalidate, terms.staleIfError);
  try {
    await backend.writeEntry(key, entry, {
      ...(terms.expire === undefined ? {} : { expire: terms.expire }),
      ...(staleFor > 0 ? { staleFor } : {}),
      ...(terms.tags.length > 0 ? { tags: terms.tags } : {}),
      ...(epoch === undefined ? {} : { epoch }),
    });
  } catch (error) {
    fail(error, "writeEntry", key);
  }
}

/**
 * Recomputes the stale value of `key` in the background, once in this
 * process, and once across processes where the backend has a lock.
 */
function refresh<T extends CacheValue>(
  backend: CacheBackend,
  key: string,
  compute: () => T | Promise<T>,
  terms: Terms,
  epoch: number | undefined,
  fail: Fail,
): void {
  const refreshing = inFlight(backend).refreshing;
  if (refreshing.has(key)) return;
  const job = (async () => {
    const held = backend.lock ? await backend.lock(key) : undefined;
    try {
      // Another process is refreshing it, or has done so already.
      if (held && (!held.acquired || (held.entry && !held.entry.stale))) {
        return;
      }
      await store(backend, key, await compute(), terms, epoch, fail);
    } finally {
      if (held) await release(held, key, fail);
    }
  })().catch((error) => fail(error, "revalidate", key))
    .finally(() => refreshing.delete(key));
  refreshing.set(key, job);
}

/**
 * The background refresh of `key` in `backend`, if one is running: tests
 * and shutdowns await it.
 */
export function refreshing(
  backend: CacheBackend,
  key: string,
): Promise<void> | undefined {
  return inFlightOf.get(backend)?.refreshing.get(key);
}
