// Option and argument checks in one error style: "<Context>: <name> must be
// <rule>: received <what>", where <what> quotes strings and names types.
import { nearest } from "./suggest.ts";

/**
 * The most seconds of `expire` and of `staleFor`: 100 years. Their sum stays
 * far inside PostgreSQL's intervals and timestamps, and it leaves room for
 * the 2^31 seconds HTTP caches treat as the largest `max-age`.
 */
export const MAX_SECONDS = 100 * 365.25 * 24 * 3600;

/** A JSON rendering of `text`, shortened for an error message. */
export function preview(text: string): string {
  return JSON.stringify(text.length > 40 ? `${text.slice(0, 40)}…` : text);
}

/** What `value` is, for an error message: `null`, `array`, `Set`, `string`. */
export function typeName(value: unknown): string {
  if (value === null) return "null";
  if (Array.isArray(value)) return "array";
  if (typeof value !== "object") return typeof value;
  return constructorName(value) ?? "object";
}

/**
 * `value` as an error message shows what it received: numbers, booleans,
 * `null` and `undefined` as written, strings quoted with their type
 * (`"120" (a string)`), plain objects by their keys, anything else by its
 * type.
 */
export function describe(value: unknown): string {
  switch (typeof value) {
    case "number":
    case "boolean":
    case "undefined":
    case "bigint":
      return String(value);
    case "string":
      return `${preview(value)} (a string)`;
    default:
      if (value === null) return "null";
      return isPlainObject(value)
        ? `an object with ${keysOf(value)}`
        : `${article(typeName(value))}`;
  }
}

function isPlainObject(value: unknown): value is Record<string, unknown> {
  if (typeof value !== "object" || value === null) return false;
  const prototype = Object.getPrototypeOf(value);
  return prototype === Object.prototype || prototype === null;
}

/** The first keys of a plain object, for a message: `keys a, b`. */
function keysOf(value: Record<string, unknown>): string {
  const keys = Object.keys(value);
  if (keys.length === 0) return "no keys";
  const shown = keys.slice(0, 5).join(", ");
  return `${keys.length === 1 ? "key" : "keys"} ${shown}${
    keys.length > 5 ? ", …" : ""
  }`;
}

function article(name: string): string {
  return `${/^[aeiouAEIO]/.test(name) ? "an" : "a"} ${name}`;
}

/** The name of the class `value` is an instance of, if its prototype tells. */
export function constructorName(value: object): string | undefined {
  const prototype = Object.getPrototypeOf(value);
  if (prototype === null || !Object.hasOwn(prototype, "constructor")) {
    return undefined;
  }
  const name = (prototype.constructor as { name?: unknown })?.name;
  return typeof name === "string" && name !== "" ? name : undefined;
}

/**
 * Checks options in one error style; `context` opens every message, such as
 * `"Cannot create PostgresBackend"`.
 */
export class OptionChecks {
  #context: string;

  /** @param context What is being done, e.g. "Cannot create cached middleware". */
  constructor(context: string) {
    this.#context = context;
  }

  /** Throws a `TypeError` saying what `name` must be, and what it received. */
  type(name: string, rule: string, value: unknown): never {
    throw new TypeError(this.message(name, rule, value));
  }

  /** Throws a `RangeError` saying what `name` must be, and what it received. */
  range(name: string, rule: string, value: unknown): never {
    throw new RangeError(this.message(name, rule, value));
  }

  /** The message for `name`, which must be `rule`, having received `value`. */
  message(name: string, rule: string, value: unknown): string {
    return `${this.#context}: ${name} must be ${rule}: received ${
      describe(value)
    }`;
  }

  /** `value`, if it is a positive integer. */
  positiveInteger(name: string, value: unknown): number {
    if (!Number.isInteger(value) || (value as number) < 1) {
      this.range(name, "a positive integer", value);
    }
    return value as number;
  }

  /** `value`, if it is a non-negative integer. */
  nonNegativeInteger(name: string, value: unknown): number {
    if (!Number.isInteger(value) || (value as number) < 0) {
      this.range(name, "a non-negative integer", value);
    }
    return value as number;
  }

  /** `value`, if it is a finite, non-negative number. */
  nonNegativeNumber(name: string, value: unknown): number {
    if (typeof value !== "number" || !Number.isFinite(value) || value < 0) {
      this.range(name, "a non-negative number", value);
    }
    return value;
  }

  /** `value`, if it is a positive number of seconds up to {@linkcode MAX_SECONDS}. */
  positiveSeconds(name: string, value: unknown): number {
    if (typeof value !== "number" || !(value > 0 && value <= MAX_SECONDS)) {
      this.range(
        name,
        `a positive number of seconds, at most ${MAX_SECONDS} (100 years)`,
        value,
      );
    }
    return value;
  }

  /** `value`, if it is a non-negative number of seconds up to {@linkcode MAX_SECONDS}. */
  nonNegativeSeconds(name: string, value: unknown): number {
    if (typeof value !== "number" || !(value >= 0 && value <= MAX_SECONDS)) {
      this.range(
        name,
        `a non-negative number of seconds, at most ${MAX_SECONDS} (100 years)`,
        value,
      );
    }
    return value;
  }

  /** `value`, if it is a function. */
  // deno-lint-ignore no-explicit-any
  function<T extends (...args: any[]) => unknown>(
    name: string,
    value: unknown,
  ): T {
    if (typeof value !== "function") this.type(name, "a function", value);
    return value as T;
  }

  /**
   * Throws a `TypeError` naming the first property of `options` that is not
   * one of `names`, with the nearest valid name when one is close enough to
   * be a typo, and the valid names otherwise:
   * `Cannot create PostgresBackend: unknown option "tabel"; did you mean "table"?`.
   * Call it once, where the options are resolved, before reading them.
   *
   * @param options The options object as the caller passed it.
   * @param names Every option it may have.
   * @param prefix Put before each name in the message, for nested options:
   * `"localCache."`.
   * @throws {TypeError} If `options` is not an object, or has a property
   * not in `names`.
   */
  known(options: object, names: readonly string[], prefix = ""): void {
    if (typeof options !== "object" || options === null) {
      this.type(prefix.replace(/\.$/, "") || "options", "an object", options);
    }
    for (const name of Object.keys(options)) {
      if (names.includes(name)) continue;
      const guess = nearest(name, names);
      const unknown = `${this.#context}: unknown option ${
        JSON.stringify(prefix + name)
      }`;
      throw new TypeError(
        guess !== undefined
          ? `${unknown}; did you mean ${JSON.stringify(prefix + guess)}?`
          : `${unknown}: the options are ${
            names.map((valid) => prefix + valid).join(", ")
          }`,
      );
    }
  }

  /** `value`, if it is a boolean. */
  boolean(name: string, value: unknown): boolean {
    if (typeof value !== "boolean") this.type(name, "a boolean", value);
    return value;
  }
}
