// Entries: their named kinds, and how value-API values are encoded in them.
import type { CacheEntry, CacheValue, EntryKind } from "../backends/types.ts";
import { constructorName } from "./options.ts";

/** The kinds of entry, by name. */
export const ENTRY_KIND = {
  /** A JSON value of the value API. */
  json: 0,
  /** Bytes of the value API. */
  bytes: 1,
  /** An HTTP response of the middleware. */
  http: 2,
} as const satisfies Record<string, EntryKind>;

const encoder = new TextEncoder();
const decoder = new TextDecoder();

/**
 * Encodes a value-API value as an entry: JSON text, or a copy of the bytes
 * as a plain `Uint8Array`. Throws a `TypeError` for a value JSON would not
 * keep exactly (see {@linkcode checkJsonValue}).
 */
export function encodeValue(value: CacheValue): CacheEntry {
  if (value instanceof Uint8Array) {
    return { kind: ENTRY_KIND.bytes, body: new Uint8Array(value) };
  }
  checkJsonValue(value);
  return {
    kind: ENTRY_KIND.json,
    body: encoder.encode(JSON.stringify(value)),
  };
}

/** Decodes an entry written by {@linkcode encodeValue}. */
export function decodeValue(entry: CacheEntry): CacheValue {
  return entry.kind === ENTRY_KIND.json
    ? JSON.parse(decoder.decode(entry.body))
    : entry.body;
}

/** Whether `etag` is among `etags` (from a client), `*` matching any. */
export function listedEtag(
  etag: string | undefined,
  etags: readonly string[],
): boolean {
  return etag !== undefined && (etags.includes(etag) || etags.includes("*"));
}

/** Past this depth a value is checked again with a guard against cycles. */
const UNGUARDED_DEPTH = 100;

/**
 * Throws a `TypeError` unless JSON keeps `value` exactly (`-0` aside, which
 * reads back as `0`): plain objects, arrays, strings, finite numbers,
 * booleans and `null`, without cycles. The message says where the first
 * offending part is, such as `value.list[2] is a hole`.
 */
export function checkJsonValue(value: unknown): void {
  if (plain(value, 0)) return;
  const problem = findProblem(value, "value", undefined, new Map());
  if (problem !== undefined) {
    throw new TypeError(`Cannot store value: ${problem}`);
  }
}

/**
 * The fast check of every value stored: no paths, no cycle guard. It gives
 * up past {@linkcode UNGUARDED_DEPTH}, where {@linkcode findProblem} decides.
 */
function plain(value: unknown, depth: number): boolean {
  switch (typeof value) {
    case "string":
    case "boolean":
      return true;
    case "number":
      return Number.isFinite(value);
    case "object":
      break;
    default:
      return false;
  }
  if (value === null) return true;
  if (depth > UNGUARDED_DEPTH) return false;
  if (Array.isArray(value)) {
    if (Object.getPrototypeOf(value) !== Array.prototype) return false;
    // A hole reads as undefined, which fails.
    for (let i = 0; i < value.length; i++) {
      if (!plain(value[i], depth + 1)) return false;
    }
    return true;
  }
  const prototype = Object.getPrototypeOf(value);
  if (prototype !== Object.prototype && prototype !== null) return false;
  const record = value as Record<string, unknown>;
  if (typeof record.toJSON === "function") return false;
  for (const key in record) {
    if (!plain(record[key], depth + 1)) return false;
  }
  return true;
}

/**
 * Where `value` (at `path`) stops being plain JSON, or `undefined` when it
 * is. `ancestors` maps each object on the way down to its path.
 */
function findProblem(
  value: unknown,
  path: string,
  parent: "an object" | "an array" | undefined,
  ancestors: Map<object, string>,
): string | undefined {
  switch (typeof value) {
    case "string":
    case "boolean":
      return undefined;
    case "number":
      return Number.isFinite(value) ? undefined : `${path} is ${value}`;
    case "object":
      break;
    case "undefined":
      return `${path} is undefined`;
    default:
      return `${path} is a ${typeof value}`;
  }
  if (value === null) return undefined;
  const seen = ancestors.get(value);
  if (seen !== undefined) return `${path} is a cycle back to ${seen}`;
  const shape = shapeProblem(value, path, parent);
  if (shape !== undefined) return shape;
  ancestors.set(value, path);
  try {
    if (Array.isArray(value)) {
      for (let i = 0; i < value.length; i++) {
        const at = `${path}[${i}]`;
        if (!(i in value)) return `${at} is a hole`;
        const found = findProblem(value[i], at, "an array", ancestors);
        if (found !== undefined) return found;
      }
      return undefined;
    }
    const record = value as Record<string, unknown>;
    for (const key in record) {
      const at = /^[A-Za-z_$][\w$]*$/.test(key)
        ? `${path}.${key}`
        : `${path}[${JSON.stringify(key)}]`;
      const found = findProblem(record[key], at, "an object", ancestors);
      if (found !== undefined) return found;
    }
    return undefined;
  } finally {
    ancestors.delete(value);
  }
}

/** What is wrong with the object `value` itself, not its contents. */
function shapeProblem(
  value: object,
  path: string,
  parent: "an object" | "an array" | undefined,
): string | undefined {
  const prototype = Object.getPrototypeOf(value);
  if (Array.isArray(value) && prototype === Array.prototype) return undefined;
  if (prototype === Object.prototype || prototype === null) {
    return typeof (value as { toJSON?: unknown }).toJSON === "function"
      ? `${path} has a toJSON method`
      : undefined;
  }
  const name = constructorName(value);
  if (name === undefined) {
    return `${path} is an object whose prototype is not Object.prototype or null`;
  }
  const article = /^[AEIO]/.test(name) ? "an" : "a";
  // Bytes are stored as bytes at the top only: nested, JSON would turn them
  // into an object of numbers.
  const inside = value instanceof Uint8Array && parent
    ? ` inside ${parent}`
    : "";
  return `${path} is ${article} ${name}${inside}`;
}
