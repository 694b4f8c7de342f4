// Shared by every backend: value encoding and option checks.
import type {
  CacheEntry,
  CacheStats,
  CacheValue,
  SetOptions,
  WriteEntryOptions,
} from "./types.ts";

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/** Encodes a value-API value as an entry: JSON text, or bytes as they are. */
export function encodeValue(value: CacheValue): CacheEntry {
  if (value instanceof Uint8Array) return { kind: 1, body: value.slice() };
  const text = JSON.stringify(value);
  if (text === undefined) {
    throw new TypeError(
      `Cannot store value: it is not JSON-compatible: received ${typeof value}`,
    );
  }
  return { kind: 0, body: encoder.encode(text) };
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

/** Validates the options of a write. */
export function writeTerms(
  options: WriteEntryOptions | SetOptions | undefined,
): WriteTerms {
  const expire = options?.expire;
  if (expire !== undefined) positiveSeconds("expire", expire);
  const staleFor = (options as WriteEntryOptions | undefined)?.staleFor ?? 0;
  if (!Number.isFinite(staleFor) || staleFor < 0) {
    throw new RangeError(
      `Cannot write entry: staleFor must be a non-negative number of seconds: received ${staleFor}`,
    );
  }
  const tags = options?.tags ?? [];
  for (const tag of tags) {
    if (typeof tag !== "string" || tag === "" || hasControl(tag)) {
      throw new TypeError(
        `Cannot write entry: tags must be non-empty strings without control characters: received ${
          JSON.stringify(tag)
        }`,
      );
    }
  }
  return { expire: expire ?? null, staleFor, tags: [...new Set(tags)] };
}

/** Throws a `RangeError` unless `value` is a positive, finite number of seconds. */
export function positiveSeconds(name: string, value: number): number {
  if (typeof value !== "number" || !Number.isFinite(value) || value <= 0) {
    throw new RangeError(
      `Invalid option: ${name} must be a positive number of seconds: received ${value}`,
    );
  }
  return value;
}

/** Throws a `TypeError` unless `namespace` is a non-empty string. */
export function checkNamespace(owner: string, namespace: unknown): string {
  if (typeof namespace !== "string" || namespace === "") {
    throw new TypeError(
      `Cannot create ${owner}: namespace must be a non-empty string: received ${
        JSON.stringify(namespace)
      }`,
    );
  }
  return namespace;
}

/** Throws a `TypeError` unless `key` is a string. */
export function checkKey(key: unknown): string {
  if (typeof key !== "string") {
    throw new TypeError(
      `Invalid key: must be a string: received ${typeof key}`,
    );
  }
  return key;
}

/** Whether `etag` is among `etags` (from a client), `*` matching any. */
export function listedEtag(
  etag: string | undefined,
  etags: readonly string[],
): boolean {
  return etag !== undefined && (etags.includes(etag) || etags.includes("*"));
}

/** Whether `text` has a control character (below U+0020). */
function hasControl(text: string): boolean {
  for (let i = 0; i < text.length; i++) {
    if (text.charCodeAt(i) < 0x20) return true;
  }
  return false;
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
