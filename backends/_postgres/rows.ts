// Values of the rows PostgresBackend reads, as drivers return them.

/** Returns plain `Uint8Array` bytes for any `Uint8Array` subclass (e.g. Buffer), or a `\x` hex string. */
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
