// What every backend accepts: the checks run before any database sees an
// input, so that a bad input costs only itself (never a batch it would have
// joined, never a failure counted by a circuit breaker) and so that every
// backend accepts and rejects the same inputs.
import type { CacheEntry, SetOptions, WriteEntryOptions } from "./types.ts";
import { describe, OptionChecks, preview } from "../core/options.ts";

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
      `Invalid key: key must be a string: received ${describe(key)}`,
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
        describe(namespace)
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
      `${prefix}: tags must be an array of strings: received ${describe(tags)}`,
    );
  }
  for (const tag of tags) {
    if (typeof tag !== "string" || tag === "") {
      throw new TypeError(
        `${prefix}: tags must be an array of strings, none empty: received ${
          describe(tag)
        }`,
      );
    }
    checkText(tag, "tags", prefix, MAX_TAG_BYTES, true);
  }
  return tags;
}

const writeChecks = new OptionChecks("Cannot write entry");
const setChecks = new OptionChecks("Cannot store value");

/** The options of `set()`. */
export const SET_OPTIONS: readonly string[] = ["expire", "tags"];
/** The options of `writeEntry()`. */
export const WRITE_OPTIONS: readonly string[] = [
  "expire",
  "staleFor",
  "tags",
  "epoch",
];

/**
 * Throws a `TypeError` unless the options of a write are missing or an
 * object of `names` only. A number, as a TTL in Keyv's style, is answered
 * with the object to pass instead.
 */
function checkWriteOptions(
  options: unknown,
  names: readonly string[],
  checks: OptionChecks,
): void {
  if (options === undefined) return;
  if (typeof options === "number") {
    throw new TypeError(
      `${
        checks.message("options", "an object", options)
      }; to expire after ${options} seconds, pass { expire: ${options} } (expire is in seconds, not milliseconds)`,
    );
  }
  checks.known(options as object, names);
}

/**
 * Checks the options of `set()` as every backend does: missing, or an
 * object of `expire` and `tags` only (a `TypeError` otherwise, which for a
 * number such as `set(key, value, 300)` says to pass `{ expire: 300 }`).
 * Their values are checked by {@linkcode writeTerms}.
 */
export function checkSetOptions(options: unknown): SetOptions | undefined {
  checkWriteOptions(options, SET_OPTIONS, setChecks);
  return options as SetOptions | undefined;
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
  checkWriteOptions(options, WRITE_OPTIONS, writeChecks);
  const expire = options?.expire;
  if (expire !== undefined) {
    writeChecks.positiveSeconds("expire", expire);
  }
  const staleFor = writeChecks.nonNegativeSeconds(
    "staleFor",
    (options as WriteEntryOptions | undefined)?.staleFor ?? 0,
  );
  const tags = checkTags(options?.tags ?? [], "write entry");
  return { expire: expire ?? null, staleFor, tags: [...new Set(tags)] };
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
      `${prefix}: ${what} must be a string: received ${describe(value)}`,
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
      `${prefix}: entry must be an object: received ${describe(entry)}`,
    );
  }
  const { kind, body, meta, etag } = entry;
  if (kind !== 0 && kind !== 1 && kind !== 2) {
    throw new TypeError(
      `${prefix}: kind must be 0, 1 or 2: received ${describe(kind)}`,
    );
  }
  if (!(body instanceof Uint8Array)) {
    throw new TypeError(
      `${prefix}: body must be a Uint8Array: received ${describe(body)}`,
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
        describe(etags)
      }`,
    );
  }
  for (const etag of etags) {
    if (typeof etag !== "string") {
      throw new TypeError(
        `${prefix}: etags must be an array of strings: received ${
          describe(etag)
        }`,
      );
    }
    checkField(etag, "etags", prefix, noControl, TAB_ALLOWED);
  }
  return etags;
}
