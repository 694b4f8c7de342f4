// The conformance suite of the CacheBackend interface, run against every kind
// of backendKinds (memory, PostgresBackend on PGlite, PostgresBackend on the
// real server) and through PgBouncer in transaction mode (tests/_pgbouncer.ts),
// and the expiry tests that only a database can answer: an
// expired row stays in place until sweep() removes it.
//
// Expiry is tested without sleeping: MemoryBackend gets an injected clock,
// and for PostgresBackend (whose expiry is decided by the database clock) the
// rows are moved into the past with SQL on the same database.
import assert from "node:assert/strict";
import { MemoryBackend } from "../../backends/memory.ts";
import type { PostgresBackend } from "../../backends/postgres.ts";
import type { CacheBackend, CacheValue } from "../../backends/types.ts";
import {
  type BackendKind,
  backendKinds,
  pglite,
  uniqueNamespace,
  uniqueTable,
  withServer,
} from "../_helpers.ts";
import { pgbouncerKind } from "../_pgbouncer.ts";

type Row = Record<string, unknown>;
type Query = (text: string, params?: unknown[]) => Promise<Row[]>;

const MEMORY = "memory";
const PGLITE = "postgres on PGlite";
const SERVER = "postgres on the real server";
const POOLER = "postgres through PgBouncer";

/** Every kind of the suite: those of _helpers.ts, and through PgBouncer. */
const kinds: BackendKind[] = [...backendKinds, pgbouncerKind];

for (const kind of kinds) {
  if (![MEMORY, PGLITE, SERVER, POOLER].includes(kind.name)) {
    throw new Error(`backend_test.ts does not know the kind ${kind.name}`);
  }
}

/** Runs `text` on the database a kind's backends use. */
function queryOf(kind: BackendKind): Query {
  if (kind.name === PGLITE) {
    return async (text, params = []) =>
      (await (await pglite()).query(text, params)).rows as Row[];
  }
  if (kind.name === SERVER || kind.name === POOLER) {
    return (text, params = []) =>
      withServer(async (sql) => [...await sql.unsafe(text, params as never[])]);
  }
  throw new Error(`${kind.name} has no database`);
}

/** A backend under test, with a way to move its entries' time forward. */
interface Harness {
  backend: CacheBackend;
  /** The table of a PostgresBackend; `undefined` for memory. */
  table?: string;
  /**
   * Lets `seconds` pass for the entries: the memory clock moves forward, and
   * in the database every timestamp of the table moves back by as much.
   */
  advance(seconds: number): Promise<void>;
  /** Opens another backend on the same table (or, for memory, alongside). */
  sibling(namespace: string): Promise<CacheBackend>;
  dispose(): Promise<void>;
}

async function open(
  kind: BackendKind,
  namespace = uniqueNamespace(),
): Promise<Harness> {
  const disposers: (() => Promise<void>)[] = [];
  const dispose = async () => {
    for (const disposer of disposers.reverse()) await disposer();
  };
  if (kind.name === MEMORY) {
    let now = Date.now();
    const backend = new MemoryBackend({ namespace, now: () => now });
    return {
      backend,
      advance: (seconds) => {
        now += seconds * 1000;
        return Promise.resolve();
      },
      sibling: (other) =>
        Promise.resolve(
          new MemoryBackend({ namespace: other, now: () => now }),
        ),
      dispose: () => backend.close(),
    };
  }
  const table = uniqueTable("conf");
  const query = queryOf(kind);
  const first = await kind.open({ table, namespace });
  disposers.push(first.dispose);
  return {
    backend: first.backend,
    table,
    async advance(seconds) {
      await query(
        `UPDATE "${table}" SET
          created_at = created_at - $1::float8 * interval '1 second',
          expires_at = expires_at - $1::float8 * interval '1 second',
          stale_until = stale_until - $1::float8 * interval '1 second'`,
        [seconds],
      );
    },
    async sibling(other) {
      const opened = await kind.open({ table, namespace: other });
      disposers.push(opened.dispose);
      return opened.backend;
    },
    dispose,
  };
}

/** Registers `fn` as one test per available kind. */
function conformance(
  name: string,
  fn: (harness: Harness, kind: BackendKind) => Promise<void>,
): void {
  for (const kind of kinds) {
    Deno.test({
      name: `${kind.name}: ${name}`,
      ignore: !kind.available,
      async fn() {
        const harness = await open(kind);
        try {
          await fn(harness, kind);
        } finally {
          await harness.dispose();
        }
      },
    });
  }
}

const encoder = new TextEncoder();
const decoder = new TextDecoder();

// ---------------------------------------------------------------------------
// The value API

conformance(
  "JSON values round-trip through set and get",
  async ({ backend }) => {
    const values: Record<string, CacheValue> = {
      object: { a: 1, nested: { list: [1, "two", null, true] }, empty: {} },
      array: [1, "x", false, null, { y: [2.5] }, []],
      string: 'héllo ✓ \u0000 "quoted" \\ end',
      emptyString: "",
      integer: Number.MAX_SAFE_INTEGER,
      negativeFloat: -1.5e-7,
      large: 1e300,
      zero: 0,
      true: true,
      false: false,
      null: null,
    };
    for (const [key, value] of Object.entries(values)) {
      await backend.set(key, value, { expire: 60 });
    }
    for (const [key, value] of Object.entries(values)) {
      assert.deepStrictEqual(await backend.get(key), value, key);
    }
  },
);

conformance(
  "Uint8Array of all 256 byte values round-trips byte-exact as a plain Uint8Array",
  async ({ backend }) => {
    const bytes = Uint8Array.from({ length: 256 }, (_, i) => i);
    await backend.set("bytes", bytes);
    const got = await backend.get("bytes");
    assert.ok(got instanceof Uint8Array);
    assert.equal(Object.getPrototypeOf(got), Uint8Array.prototype);
    assert.deepStrictEqual([...got], [...bytes]);
  },
);

conformance(
  "empty Uint8Array round-trips as an empty plain Uint8Array",
  async ({ backend }) => {
    await backend.set("empty", new Uint8Array(0));
    const got = await backend.get("empty");
    assert.ok(got instanceof Uint8Array);
    assert.equal(Object.getPrototypeOf(got), Uint8Array.prototype);
    assert.equal(got.byteLength, 0);
  },
);

conformance(
  "bytes stored are a copy: mutating the source or a read result does not change the entry",
  async ({ backend }) => {
    const source = Uint8Array.of(1, 2, 3);
    await backend.set("bytes", source);
    source[0] = 99;
    const first = await backend.get("bytes") as Uint8Array;
    assert.deepStrictEqual([...first], [1, 2, 3]);
    first[1] = 99;
    const second = await backend.get("bytes") as Uint8Array;
    assert.deepStrictEqual([...second], [1, 2, 3]);
  },
);

conformance(
  "get of a missing key resolves to undefined",
  async ({ backend }) => {
    assert.equal(await backend.get("missing"), undefined);
    assert.equal(await backend.readEntry("missing"), undefined);
  },
);

conformance("set overwrites the value at a key", async ({ backend }) => {
  await backend.set("k", { version: 1 }, { expire: 60 });
  await backend.set("k", "second");
  assert.equal(await backend.get("k"), "second");
  await backend.set("k", Uint8Array.of(7));
  assert.deepStrictEqual(await backend.get("k"), Uint8Array.of(7));
});

conformance(
  "has() is true for a stored key and false for a missing one",
  async ({ backend }) => {
    await backend.set("present", false);
    assert.equal(await backend.has("present"), true);
    assert.equal(await backend.has("absent"), false);
  },
);

conformance(
  "delete() resolves to true, then false, and removes the value",
  async ({ backend }) => {
    await backend.set("k", 1);
    await backend.set("other", 2);
    assert.equal(await backend.delete("k"), true);
    assert.equal(await backend.get("k"), undefined);
    assert.equal(await backend.delete("k"), false);
    assert.equal(await backend.get("other"), 2);
  },
);

conformance(
  "clear() removes only its own namespace's entries",
  async ({ backend, sibling }) => {
    const other = await sibling(uniqueNamespace("other"));
    await backend.set("a", 1);
    await backend.set("shared-key", "mine");
    await other.set("b", 2);
    await other.set("shared-key", "theirs");
    // The same key in two namespaces holds two values.
    assert.equal(await backend.get("shared-key"), "mine");
    assert.equal(await other.get("shared-key"), "theirs");
    await backend.clear();
    assert.equal(await backend.get("a"), undefined);
    assert.equal(await backend.get("shared-key"), undefined);
    assert.equal(await other.get("b"), 2);
    assert.equal(await other.get("shared-key"), "theirs");
  },
);

for (const kind of kinds) {
  for (
    const namespace of ["myapp-cache", uniqueNamespace(), "a'b\"c;%_ -- x"]
  ) {
    Deno.test({
      name: `${kind.name}: namespace ${
        JSON.stringify(namespace)
      } stores, reads and clears`,
      ignore: !kind.available,
      async fn() {
        const harness = await open(kind, namespace);
        try {
          const { backend } = harness;
          assert.equal(backend.namespace, namespace);
          // A namespace that LIKE would read as a pattern must not match it.
          const lookalike = await harness.sibling(
            namespace.replaceAll("_", "X").replaceAll("%", "Y") + "z",
          );
          await lookalike.set("k", "lookalike");
          await backend.set("k", { ok: true });
          assert.deepStrictEqual(await backend.get("k"), { ok: true });
          await backend.clear();
          assert.equal(await backend.get("k"), undefined);
          assert.equal(await lookalike.get("k"), "lookalike");
        } finally {
          await harness.dispose();
        }
      },
    });
  }
}

conformance(
  "set rejects non-JSON values (a function, undefined, a symbol) with TypeError and stores nothing",
  async ({ backend }) => {
    const bad: unknown[] = [() => 1, undefined, Symbol("s")];
    for (const value of bad) {
      await assert.rejects(
        backend.set("k", value as CacheValue),
        TypeError,
        String(value),
      );
    }
    assert.equal(await backend.has("k"), false);
  },
);

conformance(
  "set rejects expire <= 0, NaN and Infinity with RangeError and stores nothing",
  async ({ backend }) => {
    for (const expire of [0, -1, NaN, Infinity, -Infinity]) {
      await assert.rejects(
        backend.set("k", "v", { expire }),
        (error: unknown) =>
          error instanceof RangeError && /expire/.test(error.message),
        `expire ${expire}`,
      );
    }
    assert.equal(await backend.has("k"), false);
  },
);

// ---------------------------------------------------------------------------
// The entry API

conformance(
  "writeEntry/readEntry round-trip kind, body, meta and etag",
  async ({ backend }) => {
    const body = encoder.encode("<p>hello</p>");
    const meta = JSON.stringify({ status: 201, headers: [["x-a", "1"]] });
    await backend.writeEntry("page", { kind: 2, body, meta, etag: '"v1"' }, {
      expire: 60,
    });
    const entry = await backend.readEntry("page");
    assert.ok(entry);
    assert.equal(entry.kind, 2);
    assert.equal(decoder.decode(entry.body), "<p>hello</p>");
    assert.equal(entry.meta, meta);
    assert.equal(entry.etag, '"v1"');
    assert.equal(entry.stale, false);
    assert.equal(entry.notModified, false);
    assert.ok(entry.age >= 0 && entry.age < 30, `age ${entry.age}`);

    await backend.writeEntry("plain", { kind: 1, body: Uint8Array.of(5) });
    const plain = await backend.readEntry("plain");
    assert.ok(plain);
    assert.equal(plain.kind, 1);
    assert.equal(plain.meta, undefined);
    assert.equal(plain.etag, undefined);
  },
);

conformance(
  "readEntry with the stored etag or * among etags is notModified with an empty body",
  async ({ backend }) => {
    const body = encoder.encode("payload");
    await backend.writeEntry("e", { kind: 2, body, meta: "m", etag: '"abc"' });
    for (const etags of [['"abc"'], ['"zzz"', '"abc"'], ["*"]]) {
      const entry = await backend.readEntry("e", { etags });
      assert.ok(entry, JSON.stringify(etags));
      assert.equal(entry.notModified, true, JSON.stringify(etags));
      assert.equal(entry.body.byteLength, 0, JSON.stringify(etags));
      assert.equal(entry.etag, '"abc"');
      assert.equal(entry.meta, "m");
    }
  },
);

conformance(
  "readEntry with other etags, none, or on an entry without etag returns the full body",
  async ({ backend }) => {
    const body = encoder.encode("payload");
    await backend.writeEntry("e", { kind: 2, body, etag: '"abc"' });
    await backend.writeEntry("no-etag", { kind: 2, body });
    for (const etags of [[], ['"abd"'], ['W/"abc"', "abc"]]) {
      const entry = await backend.readEntry("e", { etags });
      assert.ok(entry);
      assert.equal(entry.notModified, false, JSON.stringify(etags));
      assert.equal(decoder.decode(entry.body), "payload");
    }
    const noEtag = await backend.readEntry("no-etag", { etags: ["*"] });
    assert.ok(noEtag);
    assert.equal(noEtag.notModified, false);
    assert.equal(decoder.decode(noEtag.body), "payload");
  },
);

conformance(
  "writeEntry rejects staleFor < 0, NaN and Infinity with RangeError",
  async ({ backend }) => {
    for (const staleFor of [-1, NaN, Infinity]) {
      await assert.rejects(
        backend.writeEntry("k", { kind: 1, body: new Uint8Array(1) }, {
          expire: 1,
          staleFor,
        }),
        (error: unknown) =>
          error instanceof RangeError && /staleFor/.test(error.message),
      );
    }
  },
);

// ---------------------------------------------------------------------------
// Expiry, without sleeping

conformance(
  "an expired value is gone for get() and has()",
  async ({ backend, advance }) => {
    await backend.set("short", "v", { expire: 10 });
    await backend.set("long", "w", { expire: 100 });
    await backend.set("forever", "x");
    await advance(5);
    assert.equal(await backend.get("short"), "v");
    await advance(6);
    assert.equal(await backend.get("short"), undefined);
    assert.equal(await backend.has("short"), false);
    assert.equal(await backend.readEntry("short"), undefined);
    assert.equal(await backend.get("long"), "w");
    assert.equal(await backend.has("long"), true);
    await advance(365 * 24 * 3600);
    assert.equal(await backend.get("forever"), "x");
  },
);

conformance(
  "staleFor: an expired entry in its stale window is read stale, but get() and has() miss",
  async ({ backend, advance }) => {
    const body = encoder.encode("old");
    await backend.writeEntry("s", { kind: 2, body, etag: '"s"' }, {
      expire: 10,
      staleFor: 100,
    });
    await backend.set("json", { a: 1 }, { expire: 10 });
    let entry = await backend.readEntry("s");
    assert.equal(entry?.stale, false);
    await advance(20);
    entry = await backend.readEntry("s");
    assert.ok(entry, "the stale entry is still read");
    assert.equal(entry.stale, true);
    assert.equal(decoder.decode(entry.body), "old");
    assert.ok(entry.age >= 19, `age ${entry.age}`);
    assert.equal(await backend.get("s"), undefined);
    assert.equal(await backend.has("s"), false);
    // Without a stale window, expiry is the end.
    assert.equal(await backend.readEntry("json"), undefined);
    await advance(100);
    assert.equal(await backend.readEntry("s"), undefined);
  },
);

// ---------------------------------------------------------------------------
// Tags

conformance(
  "invalidateTags removes exactly the tagged entries of its namespace and counts them",
  async ({ backend, sibling }) => {
    assert.ok(backend.invalidateTags, "the backend has invalidateTags");
    const other = await sibling(uniqueNamespace("other"));
    await backend.set("a", 1, { tags: ["x"] });
    await backend.set("b", 2, { tags: ["y"] });
    await backend.set("c", 3, { tags: ["z", "x"] });
    await backend.set("d", 4);
    await backend.writeEntry("e", { kind: 1, body: Uint8Array.of(1) }, {
      tags: ["x", "x"],
    });
    await other.set("a", "other", { tags: ["x"] });
    assert.equal(await backend.invalidateTags(["x"]), 3);
    assert.equal(await backend.get("a"), undefined);
    assert.equal(await backend.get("c"), undefined);
    assert.equal(await backend.readEntry("e"), undefined);
    assert.equal(await backend.get("b"), 2);
    assert.equal(await backend.get("d"), 4);
    assert.equal(await other.get("a"), "other");
    assert.equal(await backend.invalidateTags(["x"]), 0);
    assert.equal(await backend.invalidateTags(["nope", "y"]), 1);
    assert.equal(await backend.get("b"), undefined);
    assert.equal(await backend.invalidateTags([]), 0);
    assert.equal(await backend.get("d"), 4);
  },
);

conformance(
  "set rejects empty tags and tags with control characters with TypeError",
  async ({ backend }) => {
    for (const tag of ["", "a\x1fb", "line\n"]) {
      await assert.rejects(
        backend.set("k", 1, { tags: [tag] }),
        TypeError,
        JSON.stringify(tag),
      );
    }
    assert.equal(await backend.has("k"), false);
  },
);

// ---------------------------------------------------------------------------
// PostgresBackend only: expired rows stay in place until sweep()

for (const kind of kinds.filter((k) => k.name !== MEMORY)) {
  Deno.test({
    name:
      `${kind.name}: an expired row is not deleted by reads; sweep() deletes it and counts it`,
    ignore: !kind.available,
    async fn() {
      const harness = await open(kind);
      const query = queryOf(kind);
      try {
        const backend = harness.backend as PostgresBackend;
        const count = async () =>
          Number(
            (await query(`SELECT count(*)::int AS n FROM "${harness.table}"`))[
              0
            ]
              .n,
          );
        await backend.set("gone", "v", { expire: 60 });
        await backend.set("kept", "w", { expire: 60 });
        await backend.writeEntry("stale", { kind: 1, body: Uint8Array.of(1) }, {
          expire: 60,
          staleFor: 600,
        });
        // Past expiry by the database clock, as the brief's UPDATE does it.
        await query(
          `UPDATE "${harness.table}" SET expires_at = now() - interval '1 second',
            stale_until = now() - interval '1 second' WHERE key = 'gone'`,
        );
        await query(
          `UPDATE "${harness.table}" SET expires_at = now() - interval '1 second',
            stale_until = now() + interval '10 minutes' WHERE key = 'stale'`,
        );
        assert.equal(await backend.get("gone"), undefined);
        assert.equal(await backend.has("gone"), false);
        assert.equal(await backend.readEntry("gone"), undefined);
        assert.equal(await backend.get("stale"), undefined);
        assert.equal((await backend.readEntry("stale"))?.stale, true);
        // Reads did not delete anything.
        assert.equal(await count(), 3);
        assert.equal(await backend.sweep(), 1);
        assert.equal(await count(), 2);
        assert.deepStrictEqual(
          (await query(`SELECT key FROM "${harness.table}" ORDER BY key`)).map(
            (row) => row.key,
          ),
          ["kept", "stale"],
        );
        assert.equal(await backend.get("kept"), "w");
        assert.equal(await backend.sweep(), 0);
      } finally {
        await harness.dispose();
      }
    },
  });
}
