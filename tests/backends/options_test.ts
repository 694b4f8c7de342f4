// Issue 13: the checks every options object goes through: unknown names are
// refused with the nearest valid one, received strings are quoted, and the
// default log says in one line what failed.
import assert from "node:assert/strict";
import { describe, OptionChecks } from "../../core/options.ts";
import { burstLogger } from "../../core/report.ts";
import { editDistance, nearest } from "../../core/suggest.ts";

const checks = new OptionChecks("Cannot create PostgresBackend");
const names = ["dsn", "table", "namespace", "maxEntries", "localCache"];

Deno.test("known(): an unknown option is a TypeError naming the nearest valid one when it is a likely typo", () => {
  assert.throws(() => checks.known({ dsn: "x", tabel: "t" }, names), {
    name: "TypeError",
    message:
      'Cannot create PostgresBackend: unknown option "tabel"; did you mean "table"?',
  });
  assert.throws(() => checks.known({ MaxEntries: 5 }, names), {
    message:
      'Cannot create PostgresBackend: unknown option "MaxEntries"; did you mean "maxEntries"?',
  });
  assert.throws(() => checks.known({ maxEntires: 5 }, ["maxAge"], "local."), {
    message:
      'Cannot create PostgresBackend: unknown option "local.maxEntires": the options are local.maxAge',
  });
});

Deno.test("known(): a name far from every valid one lists the valid ones instead of guessing", () => {
  assert.throws(() => checks.known({ ttl: 5 }, names), {
    name: "TypeError",
    message:
      'Cannot create PostgresBackend: unknown option "ttl": the options are dsn, table, namespace, maxEntries, localCache',
  });
});

Deno.test("known(): known names pass, and options that are not an object are a TypeError", () => {
  checks.known({}, names);
  checks.known({ dsn: "x", table: "t" }, names);
  assert.throws(
    () => checks.known(300 as unknown as object, names),
    /options must be an object: received 300/,
  );
});

Deno.test("nearest(): swaps, case, one edit per three characters; nothing further", () => {
  assert.equal(editDistance("tabel", "table"), 1);
  assert.equal(nearest("tabel", names), "table");
  assert.equal(nearest("namespce", names), "namespace");
  assert.equal(nearest("dns", names), "dsn");
  assert.equal(nearest("tbl", names), undefined);
  assert.equal(nearest("expiry", ["expire", "tags"]), "expire");
  assert.equal(nearest("x", ["expire", "tags"]), undefined);
});

Deno.test('describe(): a received string is quoted with its type: "120" (a string)', () => {
  assert.equal(describe("120"), '"120" (a string)');
  assert.equal(describe(120), "120");
  assert.equal(describe(null), "null");
  assert.equal(describe([1]), "an array");
  assert.equal(
    checks.message("maxEntries", "a positive integer", "120"),
    'Cannot create PostgresBackend: maxEntries must be a positive integer: received "120" (a string)',
  );
});

/** Runs `fn` with console.error captured. */
function captured(fn: () => void): unknown[][] {
  const lines: unknown[][] = [];
  const original = console.error;
  console.error = (...args: unknown[]) => void lines.push(args);
  try {
    fn();
  } finally {
    console.error = original;
  }
  return lines;
}

Deno.test("the default log: one line per failure, in the user's terms, with the namespace and the message, and no stack trace", () => {
  const lines = captured(() => {
    const log = burstLogger(() => 0);
    const error = new Error("connect ECONNREFUSED 127.0.0.1:5432");
    log(error, { operation: "readEntry", namespace: "myapp", key: "k" });
  });
  assert.deepEqual(lines, [[
    '[cachekit] reading the cache failed in namespace "myapp": connect ECONNREFUSED 127.0.0.1:5432',
  ]]);
});

Deno.test("the default log names each operation in the user's terms and keeps a multi-line message on one line", () => {
  const cases: [string, string][] = [
    ["writeEntry", "storing an entry"],
    ["sweep", "sweeping expired entries"],
    ["connect", "connecting to the database"],
    ["somethingNew", "somethingNew"],
  ];
  for (const [operation, words] of cases) {
    const lines = captured(() =>
      burstLogger(() => 0)(new Error("first\n  second"), {
        operation,
        namespace: "ns",
      })
    );
    assert.deepEqual(lines, [[
      `[cachekit] ${words} failed in namespace "ns": first second`,
    ]]);
  }
});

Deno.test("the default log is burst-limited: one line per burst, then how many were held back", () => {
  let now = 0;
  const log = burstLogger(() => now);
  const context = { operation: "writeEntry", namespace: "ns" };
  const lines = captured(() => {
    for (let i = 0; i < 50; i++) log(new Error("down"), context);
    now = 10_001;
    log("plain text", context);
  });
  assert.deepEqual(lines, [
    ['[cachekit] storing an entry failed in namespace "ns": down'],
    [
      '[cachekit] storing an entry failed in namespace "ns": plain text (49 more since the last report)',
    ],
  ]);
});
