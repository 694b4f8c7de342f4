// Shared by every backend: value encoding and option checks.
import type {
  CacheEntry,
  CacheStats,
  CacheValue,
  SetOptions,
  WriteEntryOptions,
} from "./types.ts";
import {
  checkJsonValue,
  checkKey,
  checkNamespace,
  checkTags,
  positiveSeconds,
  staleSeconds,
} from "./_validate.ts";

export { checkKey, checkNamespace, positiveSeconds };

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Encodes a value-API value as an entry: JSON text, or a copy of the bytes
 * as a plain `Uint8Array`. Throws a `TypeError` for a value JSON would not
 * keep exactly (see {@linkcode checkJsonValue}).
 */
export function encodeValue(value: CacheValue): CacheEntry {
  if (value instanceof Uint8Array) {
    return { kind: 1, body: new Uint8Array(value) };
  }
  checkJsonValue(value);
  return { kind: 0, body: encoder.encode(JSON.stringify(value)) };
}

/** Decodes an entry written by {@linkcode encodeValue}. */
export function decodeValue(entry: CacheEntry): CacheValue {
  return entry.kind === 0 ? JSON.parse(decoder.decode(entry.body)) : entry.body;
}

/** Returns plain `Uint8Array` bytes for any `Uint8Array` subclass (e.g. Buffer). */
export function toBytes(value: unknown): Uint8Array {
  if (value instanceof Uint8Array) {
    return value.constructor === Uint8Array
      ? value
      : new Uint8Array(value.buffer, value.byteOffset, value.byteLength);
  }
  if (typeof value === "string" && value.startsWith("\\x")) {
    const bytes = new Uint8Array((value.length - 2) / 2);
    for (let i = 0; i < bytes.length; i++) {
      bytes[i] = parseInt(value.slice(2 + i * 2, 4 + i * 2), 16);
    }
    return bytes;
  }
  throw new TypeError(`Cannot read bytes: received ${typeof value}`);
}

/** Resolved, validated seconds and tags of a write. */
export interface WriteTerms {
  /** Seconds to expiry, or `null` for never. */
  expire: number | null;
  /** Seconds kept past expiry. */
  staleFor: number;
  /** Tags, deduplicated. */
  tags: string[];
}

/**
 * Validates the options of a write: `expire` and `staleFor` up to 100 years
 * (a `RangeError` otherwise), `tags` an array of valid tags (a `TypeError`,
 * or a `RangeError` for a tag's length).
 */
export function writeTerms(
  options: WriteEntryOptions | SetOptions | undefined,
): WriteTerms {
  const expire = options?.expire;
  if (expire !== undefined) positiveSeconds("expire", expire);
  const staleFor = staleSeconds(
    (options as WriteEntryOptions | undefined)?.staleFor ?? 0,
  );
  const tags = checkTags(options?.tags ?? [], "write entry");
  return { expire: expire ?? null, staleFor, tags: [...new Set(tags)] };
}

/** Whether `etag` is among `etags` (from a client), `*` matching any. */
export function listedEtag(
  etag: string | undefined,
  etags: readonly string[],
): boolean {
  return etag !== undefined && (etags.includes(etag) || etags.includes("*"));
}

/** The per-process counters of {@linkcode CacheStats}, all zero. */
export function zeroCounters(): Omit<CacheStats, "entries" | "bytes"> {
  return {
    hits: 0,
    misses: 0,
    staleServes: 0,
    evictions: 0,
    errors: 0,
    droppedWrites: 0,
  };
}

/**
 * Settles as `promise` does, or, after `ms` milliseconds, with `onTimeout()`:
 * its value, or its rejection when it throws. A `promise` that settles later
 * is never left unhandled.
 */
export function deadline<T, U>(
  promise: Promise<T>,
  ms: number,
  onTimeout: () => U,
): Promise<T | U> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  promise.catch(() => {});
  return Promise.race([
    promise,
    new Promise<U>((resolve, reject) => {
      timer = setTimeout(() => {
        try {
          resolve(onTimeout());
        } catch (error) {
          reject(error);
        }
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}
