// In-process structures are bounded by bytes as well as by count.
import assert from "node:assert/strict";
import { MemoryBackend } from "../../backends/memory.ts";
import { PostgresBackend } from "../../backends/postgres.ts";
import { pglite, uniqueTable } from "../_helpers.ts";

const MiB = 1024 * 1024;

Deno.test("MemoryBackend keeps at most maxBytes, evicting the least recently used", async () => {
  const backend = new MemoryBackend({ maxEntries: 1000, maxBytes: 10 * MiB });
  const body = new Uint8Array(MiB);
  for (let i = 0; i < 100; i++) {
    await backend.writeEntry(`k${i}`, { kind: 1, body });
    const { bytes } = await backend.stats();
    assert.ok(bytes <= 10 * MiB, `${bytes} bytes held after ${i + 1} writes`);
  }
  const stats = await backend.stats();
  assert.ok(stats.entries < 10, `${stats.entries} entries of 1 MiB held`);
  assert.equal(stats.evictions, 100 - stats.entries);
  assert.ok(await backend.readEntry("k99"), "the most recent entry is kept");
  assert.equal(await backend.readEntry("k0"), undefined);
});

Deno.test("MemoryBackend does not keep an entry larger than maxBytes alone", async () => {
  const backend = new MemoryBackend({ maxBytes: MiB });
  await backend.set("small", "x");
  await backend.writeEntry("huge", { kind: 1, body: new Uint8Array(2 * MiB) });
  assert.equal(await backend.readEntry("huge"), undefined);
  assert.equal(await backend.get("small"), "x");
});

Deno.test("MemoryBackend: maxBytes must be a positive integer", () => {
  for (const maxBytes of [0, -1, 1.5, Number.NaN]) {
    assert.throws(
      () => new MemoryBackend({ maxBytes }),
      (error: Error) =>
        error instanceof RangeError &&
        /^Cannot create MemoryBackend: maxBytes must be a positive integer/
          .test(error.message),
    );
  }
});

Deno.test("local tier: keeps at most localCache.maxBytes, and reads past it go to the database", async () => {
  const db = await pglite();
  const table = uniqueTable("ltb");
  const backend = new PostgresBackend({
    client: db,
    table,
    sweepInterval: 0,
    localCache: { maxEntries: 1000, maxBytes: MiB },
  });
  try {
    await backend.ready();
    const body = new Uint8Array(100 * 1024);
    for (let i = 0; i < 30; i++) {
      await backend.writeEntry(`k${i}`, { kind: 1, body }, { expire: 60 });
    }
    // Wait until the tier listens: before, nothing is served from it.
    for (let i = 0; i < 100; i++) {
      await backend.readEntry("k29");
      const before = backend.roundTrips;
      await backend.readEntry("k29");
      if (backend.roundTrips === before) break;
      await new Promise((resolve) => setTimeout(resolve, 10));
    }
    for (let i = 0; i < 30; i++) await backend.readEntry(`k${i}`);
    const before = backend.roundTrips;
    await backend.readEntry("k29");
    assert.equal(backend.roundTrips, before, "the last read is local");
    await backend.readEntry("k0");
    assert.equal(
      backend.roundTrips,
      before + 1,
      "the first read was evicted: 30 × 100 KiB do not fit in 1 MiB",
    );
  } finally {
    await backend.close();
    await db.query(`DROP TABLE IF EXISTS "${table}"`);
  }
});
