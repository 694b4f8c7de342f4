// What every backend accepts, checked before any database sees it: keys,
// tags, namespaces, expiry and values. Each rule runs against every kind of
// backendKinds (memory, PostgreSQL on PGlite, PostgreSQL on the real server),
// so that an input behaves the same everywhere: it is stored exactly, or it is
// rejected with a TypeError or RangeError that costs only itself.
//
// The documented limits: a key is at most 2048 bytes in UTF-8, a tag 1024, a
// namespace 256; expire and staleFor are at most 100 years (3_155_760_000 s).
import assert from "node:assert/strict";
import type {
  CacheBackend,
  CacheEntry,
  CacheValue,
  WriteEntryOptions,
} from "../../backends/types.ts";
import { MemoryBackend } from "../../backends/memory.ts";
import { PostgresBackend } from "../../backends/postgres.ts";
import {
  type BackendKind,
  backendKinds,
  pglite,
  postgresKinds,
} from "../_helpers.ts";

const MAX_KEY_BYTES = 2048;
const MAX_TAG_BYTES = 1024;
const MAX_NAMESPACE_BYTES = 256;
const MAX_SECONDS = 100 * 365.25 * 24 * 3600;

/** Registers `fn` as one test per available kind, on a fresh backend. */
function everyBackend(
  name: string,
  fn: (backend: CacheBackend, kind: BackendKind) => Promise<void>,
): void {
  for (const kind of backendKinds) {
    Deno.test({
      name: `${kind.name}: ${name}`,
      ignore: !kind.available,
      async fn() {
        const { backend, dispose } = await kind.open();
        try {
          await fn(backend, kind);
        } finally {
          await dispose();
        }
      },
    });
  }
}

/**
 * Asserts that `action` rejects with a TypeError or RangeError (as `type`
 * says) whose message contains `fragment`.
 */
async function rejectsWith(
  action: () => Promise<unknown>,
  type: typeof TypeError | typeof RangeError,
  fragment: string,
  label = fragment,
): Promise<void> {
  await assert.rejects(action, (error: unknown) => {
    assert.ok(
      error instanceof type,
      `${label}: expected a ${type.name}, received ${error}`,
    );
    assert.ok(
      error.message.includes(fragment),
      `${label}: expected "${fragment}" in "${error.message}"`,
    );
    return true;
  }, label);
}

/** Random printable ASCII: one byte a character, and incompressible. */
function randomAscii(length: number): string {
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return String.fromCharCode(...bytes.map((byte) => 0x21 + byte % 94));
}

const body = Uint8Array.of(1, 2, 3);
const entry: CacheEntry = { kind: 1, body };

// ---------------------------------------------------------------------------
// Keys

everyBackend(
  "a key with NUL, over 2048 bytes in UTF-8 or not well-formed UTF-16 is rejected by every operation",
  async (backend) => {
    const bad: [string, typeof TypeError | typeof RangeError, string][] = [
      ["a\u0000b", TypeError, "key must not contain NUL"],
      ["x".repeat(MAX_KEY_BYTES + 1), RangeError, "received 2049 bytes"],
      // 683 characters, but 2049 bytes in UTF-8.
      ["€".repeat(683), RangeError, "received 2049 bytes"],
      ["\uD800", TypeError, "key must be well-formed UTF-16"],
      ["a\uDC00b", TypeError, "key must be well-formed UTF-16"],
    ];
    for (const [key, type, fragment] of bad) {
      const label = `key ${JSON.stringify(key.slice(0, 8))}`;
      const operations: [string, () => Promise<unknown>][] = [
        ["set", () => backend.set(key, 1)],
        ["writeEntry", () => backend.writeEntry(key, entry)],
        ["get", () => backend.get(key)],
        ["readEntry", () => backend.readEntry(key)],
        ["has", () => backend.has(key)],
        ["delete", () => backend.delete(key)],
      ];
      if (backend.lock) operations.push(["lock", () => backend.lock!(key)]);
      for (const [operation, action] of operations) {
        await rejectsWith(action, type, fragment, `${operation} ${label}`);
      }
    }
  },
);

everyBackend(
  "a key of exactly 2048 bytes in UTF-8 is stored and read back",
  async (backend) => {
    const ascii = "k".repeat(MAX_KEY_BYTES);
    const euro = "€".repeat(682) + "ab"; // 2046 + 2 bytes
    await backend.set(ascii, "ascii");
    await backend.set(euro, "euro");
    assert.equal(await backend.get(ascii), "ascii");
    assert.equal(await backend.get(euro), "euro");
  },
);

everyBackend(
  "keys are as distinct as JavaScript strings: U+FFFD and a surrogate pair are their own keys",
  async (backend) => {
    await backend.set("\uFFFD", "replacement");
    await backend.set("\uD83D\uDE00", "emoji");
    await backend.set("\uD83D\uDE01", "another emoji");
    assert.equal(await backend.get("\uFFFD"), "replacement");
    assert.equal(await backend.get("\uD83D\uDE00"), "emoji");
    assert.equal(await backend.get("\uD83D\uDE01"), "another emoji");
  },
);

// ---------------------------------------------------------------------------
// Tags

everyBackend(
  "tags must be an array of non-empty, well-formed strings of at most 1024 bytes without control characters",
  async (backend) => {
    const bad: [unknown, typeof TypeError | typeof RangeError, string][] = [
      [
        "abc",
        TypeError,
        'tags must be an array of strings: received "abc" (a string)',
      ],
      [new Set(["a"]), TypeError, "tags must be an array of strings"],
      [[1], TypeError, "tags must be an array of strings"],
      [["a\u0000b"], TypeError, "tags must not contain control characters"],
      [["\uD800"], TypeError, "tags must be well-formed UTF-16"],
      [["t".repeat(MAX_TAG_BYTES + 1)], RangeError, "received 1025 bytes"],
      [["é".repeat(513)], RangeError, "received 1026 bytes"],
    ];
    for (const [tags, type, fragment] of bad) {
      const options = { tags } as unknown as WriteEntryOptions;
      await rejectsWith(() => backend.set("k", 1, options), type, fragment);
      await rejectsWith(
        () => backend.writeEntry("k", entry, options),
        type,
        fragment,
      );
    }
    assert.equal(await backend.has("k"), false);
  },
);

// ---------------------------------------------------------------------------
// Expiry

everyBackend(
  "expire and staleFor over 100 years are rejected with a RangeError naming them",
  async (backend) => {
    for (const expire of [1e13, MAX_SECONDS + 1]) {
      await rejectsWith(
        () => backend.set("k", 1, { expire }),
        RangeError,
        "expire must be",
        `expire ${expire}`,
      );
    }
    await rejectsWith(
      () => backend.writeEntry("k", entry, { staleFor: 1e13 }),
      RangeError,
      "staleFor must be",
    );
    assert.equal(await backend.has("k"), false);
  },
);

everyBackend(
  "expire and staleFor of exactly 100 years are stored and fresh",
  async (backend) => {
    await backend.writeEntry("k", entry, {
      expire: MAX_SECONDS,
      staleFor: MAX_SECONDS,
    });
    const stored = await backend.readEntry("k");
    assert.equal(stored?.stale, false);
    assert.deepStrictEqual([...stored!.body], [...body]);
  },
);

// ---------------------------------------------------------------------------
// One bad input costs only itself

everyBackend(
  "the longest key and tag allowed are stored under the longest namespace allowed",
  async (_backend, kind) => {
    const namespace = randomAscii(MAX_NAMESPACE_BYTES);
    const { backend, dispose } = await kind.open({ namespace });
    try {
      const key = randomAscii(MAX_KEY_BYTES);
      const tag = randomAscii(MAX_TAG_BYTES);
      await backend.set(key, "longest", { tags: [tag, randomAscii(1024)] });
      assert.equal(await backend.get(key), "longest");
      assert.equal(await backend.invalidateTags?.([tag]), 1);
    } finally {
      await dispose();
    }
  },
);

const badWrites: [string, (backend: CacheBackend) => Promise<void>][] = [
  ["a key with NUL", (b) => b.set("bad\u0000key", 1)],
  ["a key over 2048 bytes", (b) => b.set(randomAscii(3000), 1)],
  ["a tag with NUL", (b) => b.set("bad", 1, { tags: ["a\u0000"] })],
  [
    "a tag over 1024 bytes",
    (b) => b.set("bad", 1, { tags: [randomAscii(3000)] }),
  ],
  ["an expire that overflows", (b) => b.set("bad", 1, { expire: 1e13 })],
  [
    "a staleFor that overflows",
    (b) => b.writeEntry("bad", entry, { staleFor: 1e13 }),
  ],
];

everyBackend(
  "20 good writes batched with one bad one all succeed",
  async (backend) => {
    for (const [label, write] of badWrites) {
      const writes = Array.from(
        { length: 21 },
        (_, i) => () => i === 10 ? write(backend) : backend.set(`good:${i}`, i),
      );
      // Started in the same tick, so that they share a batch where the
      // backend batches.
      const results = await Promise.allSettled(writes.map((start) => start()));
      const bad = results[10];
      assert.equal(bad.status, "rejected", label);
      assert.ok(
        bad.reason instanceof TypeError || bad.reason instanceof RangeError,
        `${label}: ${bad.reason}`,
      );
      const failed = results.filter((result, i) =>
        i !== 10 && result.status === "rejected"
      );
      assert.deepStrictEqual(failed, [], label);
      for (let i = 0; i < 21; i++) {
        if (i !== 10) assert.equal(await backend.get(`good:${i}`), i, label);
      }
      assert.equal(await backend.has("bad"), false, label);
      await backend.clear();
    }
  },
);

for (const kind of postgresKinds) {
  Deno.test({
    name:
      `${kind.name}: a client-side error never counts toward the circuit breaker`,
    ignore: !kind.available,
    async fn() {
      const { backend, dispose } = await kind.open({ breakerThreshold: 5 });
      try {
        const errors: unknown[] = [];
        for (let i = 0; i < 20; i++) {
          await badWrites[i % badWrites.length][1](backend).catch((error) =>
            errors.push(error)
          );
        }
        assert.equal(errors.length, 20, "every bad write is rejected");
        assert.equal(backend.circuitOpen, false);
        for (const error of errors) {
          assert.ok(
            error instanceof TypeError || error instanceof RangeError,
            `${error}`,
          );
        }
        await backend.set("good", "written");
        assert.equal(await backend.get("good"), "written");
        assert.equal((await backend.stats()).errors, 0);
      } finally {
        await dispose();
      }
    },
  });
}

// ---------------------------------------------------------------------------
// Namespaces

for (const kind of backendKinds) {
  Deno.test({
    name:
      `${kind.name}: a namespace with NUL or control characters, not well-formed, or over 256 bytes throws from the constructor`,
    ignore: !kind.available,
    async fn() {
      const bad: [string, typeof TypeError | typeof RangeError, string][] = [
        [
          "a\u0000b",
          TypeError,
          "namespace must not contain control characters",
        ],
        [
          "a\u001fb",
          TypeError,
          "namespace must not contain control characters",
        ],
        ["\uDC00", TypeError, "namespace must be well-formed UTF-16"],
        ["n".repeat(257), RangeError, "received 257 bytes"],
        ["é".repeat(129), RangeError, "received 258 bytes"],
      ];
      for (const [namespace, type, fragment] of bad) {
        await rejectsWith(
          async () => {
            const { dispose } = await kind.open({ namespace });
            await dispose();
          },
          type,
          fragment,
        );
      }
    },
  });
}

// ---------------------------------------------------------------------------
// Values: stored exactly, or rejected

class Point {
  constructor(public x: number, public y: number) {}
}
class List extends Array<number> {}

function cyclic(): unknown {
  const value: Record<string, Record<string, unknown>> = { b: {} };
  value.b.back = value;
  return value;
}

function withToJSON(): unknown {
  const value = { a: 1 };
  Object.defineProperty(value, "toJSON", { value: () => "replaced" });
  return { inner: value };
}

const changedByJson: [string, unknown, string][] = [
  ["a Date", { when: new Date(0) }, "value.when is a Date"],
  ["NaN", { n: NaN }, "value.n is NaN"],
  ["Infinity", [1, Infinity], "value[1] is Infinity"],
  ["-Infinity", { deep: { x: -Infinity } }, "value.deep.x is -Infinity"],
  ["a Map", new Map([[1, 2]]), "value is a Map"],
  ["a Set", { s: new Set([1]) }, "value.s is a Set"],
  ["a class instance", { p: new Point(1, 2) }, "value.p is a Point"],
  ["an Array subclass", List.from([1]), "value is a List"],
  ["a RegExp", { "a b": /x/ }, 'value["a b"] is a RegExp'],
  [
    "an object with another prototype",
    Object.create({ inherited: 1 }),
    "value is an object whose prototype is not Object.prototype or null",
  ],
  [
    "a Uint8Array in an object",
    { b: new Uint8Array(1) },
    "value.b is a Uint8Array inside an object",
  ],
  [
    "a Uint8Array in an array",
    [new Uint8Array(1)],
    "value[0] is a Uint8Array inside an array",
  ],
  ["a Uint16Array", new Uint16Array(1), "value is a Uint16Array"],
  ["an undefined field", { x: undefined }, "value.x is undefined"],
  // deno-lint-ignore no-sparse-arrays
  ["an array hole", { list: [1, 2, , 4] }, "value.list[2] is a hole"],
  ["undefined in an array", [undefined], "value[0] is undefined"],
  ["a function", { f() {} }, "value.f is a function"],
  ["a symbol", { s: Symbol("s") }, "value.s is a symbol"],
  ["a bigint", { big: 1n }, "value.big is a bigint"],
  ["a toJSON method", withToJSON(), "value.inner has a toJSON method"],
  ["a cycle", cyclic(), "value.b.back is a cycle back to value"],
  ["undefined", undefined, "value is undefined"],
  ["a top-level function", () => 1, "value is a function"],
  ["a top-level bigint", 1n, "value is a bigint"],
];

everyBackend(
  "values that JSON would change are rejected with a TypeError that says where",
  async (backend) => {
    for (const [label, value, where] of changedByJson) {
      await assert.rejects(
        () => backend.set("k", value as CacheValue),
        (error: unknown) => {
          assert.ok(error instanceof TypeError, `${label}: ${error}`);
          assert.equal(error.message, `Cannot store value: ${where}`, label);
          return true;
        },
        label,
      );
    }
    assert.equal(await backend.has("k"), false);
  },
);

everyBackend(
  "plain values round-trip exactly, shared references and lone surrogates in strings included",
  async (backend) => {
    const shared = { x: 1 };
    const values: Record<string, CacheValue> = {
      nested: { a: [1, [2, [3, { b: null }]]], c: { d: { e: "f" } } },
      shared: { first: shared, second: shared, list: [shared, shared] },
      surrogates: { "\uD800key": "a\uDC00b", list: ["\uD800", "\uDFFF"] },
      deep: JSON.parse("[".repeat(500) + "]".repeat(500)),
    };
    for (const [key, value] of Object.entries(values)) {
      await backend.set(key, value);
    }
    for (const [key, value] of Object.entries(values)) {
      assert.deepStrictEqual(await backend.get(key), value, key);
    }
  },
);

everyBackend(
  "a null-prototype object is stored and reads back as a plain object",
  async (backend) => {
    const value = Object.assign(Object.create(null), { a: 1, b: [2] });
    await backend.set("k", value);
    assert.deepStrictEqual(await backend.get("k"), { a: 1, b: [2] });
  },
);

everyBackend(
  "-0 is stored as 0, the one number JSON does not keep exactly",
  async (backend) => {
    await backend.set("k", { delta: -0, list: [-0] });
    const got = await backend.get("k") as { delta: number; list: number[] };
    assert.ok(Object.is(got.delta, 0));
    assert.ok(Object.is(got.list[0], 0));
  },
);

// ---------------------------------------------------------------------------
// Raw entries, etags and invalidation

everyBackend(
  "writeEntry rejects a malformed entry: kind, body, and meta or etag with NUL or lone surrogates",
  async (backend) => {
    const bad: [unknown, string][] = [
      [{ kind: 3, body }, "kind must be 0, 1 or 2"],
      [{ kind: 1, body: "text" }, "body must be a Uint8Array"],
      [{ kind: 2, body, meta: "a\u0000b" }, "meta must not contain NUL"],
      [{ kind: 2, body, meta: "\uD800" }, "meta must be well-formed UTF-16"],
      [{ kind: 2, body, meta: 1 }, "meta must be a string"],
      [{ kind: 2, body, etag: '"a\u0000"' }, "etag must not contain control"],
      [{ kind: 2, body, etag: '"\uDC00"' }, "etag must be well-formed UTF-16"],
    ];
    for (const [written, fragment] of bad) {
      await rejectsWith(
        () => backend.writeEntry("k", written as CacheEntry),
        TypeError,
        fragment,
      );
    }
    assert.equal(await backend.readEntry("k"), undefined);
  },
);

everyBackend(
  "readEntry rejects etags that are not an array of strings without control characters",
  async (backend) => {
    const bad: [unknown, string][] = [
      ['"a"', "etags must be an array of strings"],
      [['"a\u0000"'], "etags must not contain control characters"],
      [['"a\u001f"'], "etags must not contain control characters"],
      [['"\uD800"'], "etags must be well-formed UTF-16"],
    ];
    for (const [etags, fragment] of bad) {
      await rejectsWith(
        () => backend.readEntry("k", { etags } as { etags: string[] }),
        TypeError,
        fragment,
      );
    }
    // A tab is allowed: HTTP field values may hold one.
    await backend.writeEntry("k", { kind: 1, body, etag: '"a\tb"' });
    const read = await backend.readEntry("k", { etags: ['"a\tb"'] });
    assert.equal(read?.notModified, true);
  },
);

everyBackend(
  "invalidateTags rejects tags that writes would reject",
  async (backend) => {
    assert.ok(backend.invalidateTags, "the backend has invalidateTags");
    const bad: [unknown, typeof TypeError | typeof RangeError, string][] = [
      ["abc", TypeError, "tags must be an array of strings"],
      [["a\u0000"], TypeError, "tags must not contain control characters"],
      [["t".repeat(MAX_TAG_BYTES + 1)], RangeError, "received 1025 bytes"],
    ];
    for (const [tags, type, fragment] of bad) {
      await rejectsWith(
        () => backend.invalidateTags!(tags as string[]),
        type,
        fragment,
      );
    }
  },
);

// ---------------------------------------------------------------------------
// Options: a TTL in Keyv's style, and unknown names

everyBackend(
  "set(key, value, 300) in Keyv's style is a TypeError that says to pass { expire: 300 } in seconds",
  async (backend) => {
    await assert.rejects(
      // @ts-expect-error: a number is not SetOptions
      () => backend.set("k", 1, 300),
      {
        name: "TypeError",
        message:
          "Cannot store value: options must be an object: received 300; to expire after 300 seconds, pass { expire: 300 } (expire is in seconds, not milliseconds)",
      },
    );
    await assert.rejects(
      // @ts-expect-error: a number is not WriteEntryOptions
      () => backend.writeEntry("k", entry, 60),
      /pass \{ expire: 60 \}/,
    );
    assert.equal(await backend.has("k"), false);
  },
);

everyBackend(
  "an unknown option of set() or writeEntry() is a TypeError naming the nearest valid one",
  async (backend) => {
    await assert.rejects(
      // @ts-expect-error: expires is not an option
      () => backend.set("k", 1, { expires: 60 }),
      {
        name: "TypeError",
        message:
          'Cannot store value: unknown option "expires"; did you mean "expire"?',
      },
    );
    await assert.rejects(
      // @ts-expect-error: staleFor is an option of writeEntry only
      () => backend.set("k", 1, { staleFor: 60 }),
      /unknown option "staleFor": the options are expire, tags/,
    );
    await assert.rejects(
      // @ts-expect-error: stalefor is not an option
      () => backend.writeEntry("k", entry, { stalefor: 60 }),
      /Cannot write entry: unknown option "stalefor"; did you mean "staleFor"\?/,
    );
    assert.equal(await backend.has("k"), false);
  },
);

Deno.test("unknown options: new PostgresBackend({ tabel }) is a TypeError that suggests table, nested options included", async () => {
  const client = await pglite();
  const cases: [Record<string, unknown>, string][] = [
    [
      { client, tabel: "t" },
      'Cannot create PostgresBackend: unknown option "tabel"; did you mean "table"?',
    ],
    [
      { client, localCache: { maxEntires: 5 } },
      'Cannot create PostgresBackend: unknown option "localCache.maxEntires"; did you mean "localCache.maxEntries"?',
    ],
    [
      { embedded: { datadir: "/tmp/x" } },
      'Cannot create PostgresBackend: unknown option "embedded.datadir"; did you mean "embedded.dataDir"?',
    ],
    [
      { client, frobnicate: true },
      'Cannot create PostgresBackend: unknown option "frobnicate": the options are dsn, client, embedded, namespace, table, unlogged, createTable, minSize, maxSize, maxEntries, maxBytes, localCache, pooler, leaseTimeout, maxQueuedWrites, maxBatchSize, sweepInterval, sweepBatchSize, queryTimeout, connectTimeout, breakerThreshold, breakerCooldown, now, onError',
    ],
  ];
  for (const [options, message] of cases) {
    assert.throws(
      () => new PostgresBackend(options as never),
      { name: "TypeError", message },
    );
  }
});

Deno.test("unknown options: new MemoryBackend({ maxEntires }) is a TypeError that suggests maxEntries", () => {
  assert.throws(
    // @ts-expect-error: maxEntires is not an option
    () => new MemoryBackend({ maxEntires: 5 }),
    {
      name: "TypeError",
      message:
        'Cannot create MemoryBackend: unknown option "maxEntires"; did you mean "maxEntries"?',
    },
  );
});

Deno.test("error messages quote the strings they received, with their type", () => {
  assert.throws(
    // @ts-expect-error: maxEntries is a number
    () => new MemoryBackend({ maxEntries: "120" }),
    {
      name: "RangeError",
      message:
        'Cannot create MemoryBackend: maxEntries must be a positive integer: received "120" (a string)',
    },
  );
  assert.throws(
    // @ts-expect-error: namespace is a string
    () => new MemoryBackend({ namespace: 7 }),
    /namespace must be a non-empty string: received 7$/,
  );
});
