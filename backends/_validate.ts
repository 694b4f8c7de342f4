// What every backend accepts: the checks run before any database sees an
// input, so that a bad input costs only itself (never a batch it would have
// joined, never a failure counted by a circuit breaker) and so that every
// backend accepts and rejects the same inputs.
import type { CacheEntry } from "./types.ts";

/**
 * The longest key, in UTF-8 bytes. With the longest namespace it stays well
 * under PostgreSQL's limit on a B-tree index row (about 2700 bytes), which
 * the primary key `(namespace, key)` is, whether or not the key compresses.
 */
export const MAX_KEY_BYTES = 2048;
/** The longest tag, in UTF-8 bytes: a GIN index entry holds at most about 2700. */
export const MAX_TAG_BYTES = 1024;
/** The longest namespace, in UTF-8 bytes; it is part of every index row. */
export const MAX_NAMESPACE_BYTES = 256;
/**
 * The most seconds of `expire` and of `staleFor`: 100 years. Their sum stays
 * far inside PostgreSQL's intervals and timestamps, and it leaves room for
 * the 2^31 seconds HTTP caches treat as the largest `max-age`.
 */
export const MAX_SECONDS = 100 * 365.25 * 24 * 3600;

/** Past this depth a value is checked again with a guard against cycles. */
const UNGUARDED_DEPTH = 100;

/** A JSON rendering of `text`, shortened for an error message. */
function preview(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/** What `value` is, for an error message: `null`, `array`, `Set`, `string`. */
function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value !== "object") return typeof value;
  return constructorName(value) ?? "object";
}

/** The UTF-8 length of a well-formed string. */
export function utf8Length(text: string): number {
  let bytes = text.length;
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    // A surrogate half counts 2: a pair is 4 bytes.
    if (code >= 0x80) bytes += code < 0x800 ? 1 : 2;
    if (code >= 0xd800 && code <= 0xdfff) bytes--;
  }
  return bytes;
}

/** Whether `text` has a character below U+0020, tab excepted if `tab`. */
function hasControl(text: string, tab = false): boolean {
  for (let i = 0; i < text.length; i++) {
    const code = text.charCodeAt(i);
    if (code < 0x20 && !(tab && code === 0x09)) return true;
  }
  return false;
}

/**
 * Checks one string: well-formed UTF-16 (a lone surrogate would become
 * U+FFFD in PostgreSQL and collide with it), without NUL (or, with
 * `controls`, any control character), and at most `maxBytes` in UTF-8.
 */
function checkText(
  text: string,
  what: string,
  prefix: string,
  maxBytes: number,
  controls: boolean,
): void {
  if (controls ? hasControl(text) : text.includes("\u0000")) {
    throw new TypeError(
      `${prefix}: ${what} must not contain ${
        controls ? "control characters" : "NUL"
      }: received ${preview(text)}`,
    );
  }
  if (!text.isWellFormed()) {
    throw new TypeError(
      `${prefix}: ${what} must be well-formed UTF-16 (no lone surrogates): received ${
        preview(text)
      }`,
    );
  }
  // UTF-8 takes at most 3 bytes for each UTF-16 code unit.
  if (text.length * 3 > maxBytes) {
    const bytes = utf8Length(text);
    if (bytes > maxBytes) {
      throw new RangeError(
        `${prefix}: ${what} must be at most ${maxBytes} bytes in UTF-8: received ${bytes} bytes`,
      );
    }
  }
}

/**
 * Throws unless `key` is a string of at most {@linkcode MAX_KEY_BYTES} bytes
 * in UTF-8, well-formed, without NUL: a `TypeError`, or a `RangeError` for
 * its length.
 */
export function checkKey(key: unknown): string {
  if (typeof key !== "string") {
    throw new TypeError(
      `Invalid key: key must be a string: received ${typeName(key)}`,
    );
  }
  checkText(key, "key", "Invalid key", MAX_KEY_BYTES, false);
  return key;
}

/**
 * Throws unless `namespace` is a non-empty string of at most
 * {@linkcode MAX_NAMESPACE_BYTES} bytes in UTF-8, well-formed, without
 * control characters: a `TypeError`, or a `RangeError` for its length.
 */
export function checkNamespace(owner: string, namespace: unknown): string {
  const prefix = `Cannot create ${owner}`;
  if (typeof namespace !== "string" || namespace === "") {
    throw new TypeError(
      `${prefix}: namespace must be a non-empty string: received ${
        typeof namespace === "string" ? '""' : typeName(namespace)
      }`,
    );
  }
  checkText(namespace, "namespace", prefix, MAX_NAMESPACE_BYTES, true);
  return namespace;
}

/**
 * Throws unless `tags` is an array of non-empty strings of at most
 * {@linkcode MAX_TAG_BYTES} bytes in UTF-8 each, well-formed, without control
 * characters: a `TypeError`, or a `RangeError` for a length. `action` starts
 * the message: `"write entry"`, `"invalidate tags"`.
 */
export function checkTags(tags: unknown, action: string): readonly string[] {
  const prefix = `Cannot ${action}`;
  if (!Array.isArray(tags)) {
    throw new TypeError(
      `${prefix}: tags must be an array of strings: received ${typeName(tags)}`,
    );
  }
  for (const tag of tags) {
    if (typeof tag !== "string" || tag === "") {
      throw new TypeError(
        `${prefix}: tags must be an array of strings, none empty: received ${
          tag === "" ? '""' : typeName(tag)
        }`,
      );
    }
    checkText(tag, "tags", prefix, MAX_TAG_BYTES, true);
  }
  return tags;
}

/**
 * Throws a `RangeError` unless `value` is a positive, finite number of
 * seconds up to {@linkcode MAX_SECONDS}.
 */
export function positiveSeconds(name: string, value: number): number {
  if (
    typeof value !== "number" || !(value > 0 && value <= MAX_SECONDS)
  ) {
    throw new RangeError(
      `Invalid option: ${name} must be a positive number of seconds, at most ${MAX_SECONDS} (100 years): received ${value}`,
    );
  }
  return value;
}

/**
 * Throws a `RangeError` unless `value` is a non-negative number of seconds
 * up to {@linkcode MAX_SECONDS}.
 */
export function staleSeconds(value: number): number {
  if (typeof value !== "number" || !(value >= 0 && value <= MAX_SECONDS)) {
    throw new RangeError(
      `Cannot write entry: staleFor must be a non-negative number of seconds, at most ${MAX_SECONDS} (100 years): received ${value}`,
    );
  }
  return value;
}

/** Checks an optional text field of an entry. */
function checkField(
  value: unknown,
  what: string,
  prefix: string,
  valid: (text: string) => boolean,
  rule: string,
): void {
  if (value === undefined) return;
  if (typeof value !== "string") {
    throw new TypeError(
      `${prefix}: ${what} must be a string: received ${typeName(value)}`,
    );
  }
  if (!valid(value)) {
    throw new TypeError(
      `${prefix}: ${what} must not contain ${rule}: received ${preview(value)}`,
    );
  }
  if (!value.isWellFormed()) {
    throw new TypeError(
      `${prefix}: ${what} must be well-formed UTF-16 (no lone surrogates): received ${
        preview(value)
      }`,
    );
  }
}

const TAB_ALLOWED = "control characters other than tab";
const noControl = (text: string) => !hasControl(text, true);
const noNul = (text: string) => !text.includes("\u0000");

/**
 * Throws a `TypeError` unless `entry` has a kind of 0, 1 or 2, a `Uint8Array`
 * body, and, if present, a `meta` without NUL and an `etag` without control
 * characters other than tab, both well-formed.
 */
export function checkEntry(entry: CacheEntry): CacheEntry {
  const prefix = "Cannot write entry";
  if (typeof entry !== "object" || entry === null) {
    throw new TypeError(
      `${prefix}: entry must be an object: received ${typeName(entry)}`,
    );
  }
  const { kind, body, meta, etag } = entry;
  if (kind !== 0 && kind !== 1 && kind !== 2) {
    throw new TypeError(
      `${prefix}: kind must be 0, 1 or 2: received ${
        typeof kind === "number" ? kind : typeName(kind)
      }`,
    );
  }
  if (!(body instanceof Uint8Array)) {
    throw new TypeError(
      `${prefix}: body must be a Uint8Array: received ${typeName(body)}`,
    );
  }
  checkField(meta, "meta", prefix, noNul, "NUL");
  checkField(etag, "etag", prefix, noControl, TAB_ALLOWED);
  return entry;
}

/**
 * Throws a `TypeError` unless `etags` (of a read) is missing or an array of
 * well-formed strings without control characters other than tab.
 */
export function checkEtags(etags: unknown): readonly string[] {
  const prefix = "Cannot read entry";
  if (etags === undefined) return [];
  if (!Array.isArray(etags)) {
    throw new TypeError(
      `${prefix}: etags must be an array of strings: received ${
        typeName(etags)
      }`,
    );
  }
  for (const etag of etags) {
    if (typeof etag !== "string") {
      throw new TypeError(
        `${prefix}: etags must be an array of strings: received ${
          typeName(etag)
        }`,
      );
    }
    checkField(etag, "etags", prefix, noControl, TAB_ALLOWED);
  }
  return etags;
}

// ---------------------------------------------------------------------------
// Values

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

/** The name of the class `value` is an instance of, if its prototype tells. */
function constructorName(value: object): string | undefined {
  const prototype = Object.getPrototypeOf(value);
  if (prototype === null || !Object.hasOwn(prototype, "constructor")) {
    return undefined;
  }
  const name = (prototype.constructor as { name?: unknown })?.name;
  return typeof name === "string" && name !== "" ? name : undefined;
}
