// Values of the rows PostgresBackend reads, as drivers return them.
import type { EntryKind, StoredEntry } from "../types.ts";
import type { NamespaceStats } from "../postgres.ts";

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

/** A row as a driver returns it. */
export type Row = Record<string, unknown>;

/** Rows of a batch statement by their item's position `i` (from 1). */
export function byPosition(rows: Row[]): Map<number, Row> {
  const found = new Map<number, Row>();
  for (const row of rows) found.set(Number(row.i), row);
  return found;
}

/** The purge epoch a read returned with its row. */
export function epochOf(row: Row | undefined): number | undefined {
  return row?.epoch === null || row?.epoch === undefined
    ? undefined
    : Number(row.epoch);
}

/** The entry of a read's row; reads return a row, without one, on a miss. */
export function toStoredEntry(row: Row | undefined): StoredEntry | undefined {
  if (!row || row.kind === null || row.kind === undefined) return undefined;
  const notModified = row.value === null;
  return {
    kind: Number(row.kind) as EntryKind,
    body: notModified ? new Uint8Array(0) : toBytes(row.value),
    meta: row.meta === null ? undefined : String(row.meta),
    etag: row.etag === null ? undefined : String(row.etag),
    age: Number(row.age),
    stale: row.stale === true,
    freshFor: Number(row.fresh_for),
    notModified,
  };
}

/** A row of the per-namespace statistics. */
export function toNamespaceStats(row: Row): NamespaceStats {
  return {
    namespace: String(row.namespace),
    entries: Number(row.entries),
    bytes: Number(row.bytes),
    expired: Number(row.expired),
  };
}
