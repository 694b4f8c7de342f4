// Issue 5: the command-line tool, in process through main() and as a
// subprocess for its exit status.
import assert from "node:assert/strict";
import { Hono } from "hono";
import { main } from "../../cli.ts";
import { PostgresBackend } from "../../backends/postgres.ts";
import { cached } from "../../middleware/cached.ts";
import {
  DATABASE_URL,
  dropTable,
  uniqueNamespace,
  uniqueTable,
  withServer,
} from "../_helpers.ts";

const CLI = new URL("../../cli.ts", import.meta.url).pathname;

/** Runs main() in process, capturing what it writes. */
async function run(
  args: string[],
): Promise<{ status: number; out: string; err: string }> {
  const out: string[] = [];
  const err: string[] = [];
  const status = await main(args, {
    out: (line) => out.push(line),
    err: (line) => err.push(line),
  });
  return { status, out: out.join("\n"), err: err.join("\n") };
}

/** What Deno itself needs to find its cache, and nothing else. */
function denoEnv(): Record<string, string> {
  const kept: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const value = Deno.env.get(name);
    if (value !== undefined) kept[name] = value;
  }
  return kept;
}

/** Runs `deno run -A cli.ts ...args` with Deno's own variables and `env`. */
async function spawn(
  args: string[],
  env: Record<string, string> = {},
): Promise<{ code: number; stdout: string; stderr: string }> {
  const output = await new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", CLI, ...args],
    clearEnv: true,
    env: { ...denoEnv(), NO_COLOR: "1", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const decoder = new TextDecoder();
  return {
    code: output.code,
    stdout: decoder.decode(output.stdout),
    stderr: decoder.decode(output.stderr),
  };
}

/** A port on which nothing listens. */
function closedPort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
}

/** Parses the `stats` table into namespace -> [entries, bytes, expired]. */
function statsTable(out: string): Map<string, number[]> {
  const [header, ...lines] = out.split("\n");
  assert.equal(header, "namespace\tentries\tbytes\texpired");
  return new Map(lines.map((line) => {
    const [namespace, ...numbers] = line.split("\t");
    return [namespace, numbers.map(Number)];
  }));
}

/**
 * Runs `fn` with a fresh table on the real server, two namespaces on it
 * (backends `a` and `b`), and drops the table at the end.
 */
async function withTable(
  fn: (ctx: {
    table: string;
    a: PostgresBackend;
    b: PostgresBackend;
    dsn: string;
  }) => Promise<void>,
): Promise<void> {
  const table = uniqueTable("cli");
  const open = (namespace: string) =>
    new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      namespace,
      sweepInterval: 0,
    });
  const a = open(uniqueNamespace("a"));
  const b = open(uniqueNamespace("b"));
  try {
    await a.ready();
    await b.ready();
    await fn({ table, a, b, dsn: DATABASE_URL! });
  } finally {
    await a.close();
    await b.close();
    await dropTable(table);
  }
}

const noServer = DATABASE_URL === undefined;

Deno.test("cli: no command exits 2 with the usage on stderr", async () => {
  const { status, out, err } = await run([]);
  assert.equal(status, 2);
  assert.equal(out, "");
  assert.match(err, /no command/);
  assert.match(err, /Usage: cachekit <command>/);
});

Deno.test("cli: an unknown command exits 2 with the usage on stderr", async () => {
  const { status, err } = await run(["vacuum", "--dsn", "postgres://x/y"]);
  assert.equal(status, 2);
  assert.match(err, /unknown command "vacuum"/);
  assert.match(err, /Usage: cachekit <command>/);
});

Deno.test("cli: an unknown option exits 2 with the usage", async () => {
  const { status, err } = await run(["stats", "--bogus"]);
  assert.equal(status, 2);
  assert.match(err, /Usage: cachekit <command>/);
});

Deno.test("cli: --help prints the usage and exits 0", async () => {
  const { status, out } = await run(["--help"]);
  assert.equal(status, 0);
  assert.match(out, /^Usage: cachekit <command>/);
  for (const word of ["stats", "purge", "sweep", "--dsn", "--table"]) {
    assert.ok(out.includes(word), `usage lacks ${word}`);
  }
});

Deno.test("cli: purge without --namespace exits 2", async () => {
  const { status, err } = await run(["purge", "--dsn", "postgres://h/db"]);
  assert.equal(status, 2);
  assert.match(err, /--namespace/);
});

Deno.test("cli: a DSN that is not postgres:// or postgresql:// (mysql://...) says the DSN must start with one, and exits 2 without connecting", async () => {
  for (const dsn of ["not a url", "mysql://root:secret@localhost/db"]) {
    const { status, out, err } = await run(["stats", "--dsn", dsn]);
    assert.equal(status, 2);
    assert.equal(out, "");
    assert.equal(
      err,
      "Error: the DSN must start with postgres:// or postgresql://",
    );
  }
});

Deno.test("cli: without Deno (as under Node.js) it says that it needs Deno and exits 1", async () => {
  const deno = Object.getOwnPropertyDescriptor(globalThis, "Deno")!;
  const out: string[] = [];
  const err: string[] = [];
  // main() checks before its first await: Deno is back before this awaits.
  delete (globalThis as { Deno?: unknown }).Deno;
  let pending: Promise<number>;
  try {
    pending = main(["stats", "--dsn", "postgres://h/db"], {
      out: (line) => out.push(line),
      err: (line) => err.push(line),
    });
  } finally {
    Object.defineProperty(globalThis, "Deno", deno);
  }
  assert.equal(await pending, 1);
  assert.deepEqual(out, []);
  assert.deepEqual(err, [
    "Error: the cachekit CLI needs Deno: run it with deno run -A jsr:@cachekit/hono/cli",
  ]);
});

Deno.test({
  name:
    "cli: stats, purge and sweep on a table that does not exist say so, exit 1, and create neither the table nor its functions",
  ignore: noServer,
  async fn() {
    const table = uniqueTable("cli_none");
    try {
      for (
        const args of [
          ["stats"],
          ["purge", "--namespace", "ns"],
          ["sweep"],
        ]
      ) {
        const { status, out, err } = await run([
          ...args,
          "--dsn",
          DATABASE_URL!,
          "--table",
          table,
        ]);
        assert.equal(status, 1, args.join(" "));
        assert.equal(out, "");
        assert.match(
          err,
          new RegExp(
            `^Error: the cache table ${table} does not exist in this database: nothing to `,
          ),
        );
      }
      const [row] = await withServer((sql) =>
        sql`SELECT to_regclass(${table}) IS NULL
            AND to_regclass(${table + "_epochs"}) IS NULL
            AND NOT EXISTS (SELECT 1 FROM pg_proc WHERE proname IN
              (${table + "_evict"}, ${table + "_purge"})) AS gone`
      );
      assert.equal(row.gone, true, "something was created");
    } finally {
      await dropTable(table);
    }
  },
});

Deno.test({
  name:
    'cli: purge prints its count with the right plural: "Purged 0 entries from namespace", "Purged 1 entry"',
  ignore: noServer,
  async fn() {
    await withTable(async ({ table, a, dsn }) => {
      const base = ["--dsn", dsn, "--table", table];
      const none = await run([
        "purge",
        "--namespace",
        "does-not-exist",
        ...base,
      ]);
      assert.equal(none.status, 0, none.err);
      assert.equal(
        none.out,
        'Purged 0 entries from namespace "does-not-exist"',
      );
      await a.set("k", 1, { tags: ["t"] });
      const tagged = await run([
        "purge",
        "--namespace",
        a.namespace,
        "--tag",
        "t",
        ...base,
      ]);
      assert.equal(
        tagged.out,
        `Purged 1 entry tagged t from namespace ${JSON.stringify(a.namespace)}`,
      );
      await a.set("k", 1);
      const one = await run(["purge", "--namespace", a.namespace, ...base]);
      assert.equal(
        one.out,
        `Purged 1 entry from namespace ${JSON.stringify(a.namespace)}`,
      );
      await a.set("k1", 1);
      await a.set("k2", 2);
      const two = await run(["purge", "--namespace", a.namespace, ...base]);
      assert.equal(
        two.out,
        `Purged 2 entries from namespace ${JSON.stringify(a.namespace)}`,
      );
      const swept = await run(["sweep", ...base]);
      assert.equal(swept.out, "Swept 0 expired rows");
    });
  },
});

Deno.test("cli: an unreachable server prints the error and exits 1", async () => {
  const { status, out, err } = await run([
    "stats",
    "--dsn",
    `postgres://postgres@127.0.0.1:${closedPort()}/test`,
  ]);
  assert.equal(status, 1);
  assert.equal(out, "");
  assert.match(err, /^Error: .*(ECONNREFUSED|refused)/i);
});

Deno.test({
  name:
    "cli: a DSN naming a database that does not exist prints the server's error and exits 1",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const dsn = new URL(DATABASE_URL!);
    dsn.pathname = "/cachekit_no_such_database";
    const { status, err } = await run(["stats", "--dsn", dsn.href]);
    assert.equal(status, 1);
    assert.match(err, /^Error: .*cachekit_no_such_database.*does not exist/);
  },
});

Deno.test({
  name:
    "cli: stats prints the entries, bytes and expired rows of every namespace in the table",
  ignore: noServer,
  async fn() {
    await withTable(async ({ table, a, b, dsn }) => {
      await a.set("one", new Uint8Array(100));
      await a.set("two", new Uint8Array(50));
      await b.set("three", new Uint8Array(7));
      const { status, out, err } = await run([
        "stats",
        "--dsn",
        dsn,
        "--table",
        table,
      ]);
      assert.equal(status, 0, err);
      const rows = statsTable(out);
      assert.deepEqual(rows.get(a.namespace), [2, 150, 0]);
      assert.deepEqual(rows.get(b.namespace), [1, 7, 0]);
      assert.equal(rows.size, 2);
    });
  },
});

Deno.test({
  name:
    "cli: purge --namespace NS deletes every entry of that namespace and only those",
  ignore: noServer,
  async fn() {
    await withTable(async ({ table, a, b, dsn }) => {
      await a.set("one", 1);
      await a.set("two", 2, { tags: ["t"] });
      await b.set("one", 1);
      const { status, out, err } = await run([
        "purge",
        "--namespace",
        a.namespace,
        "--dsn",
        dsn,
        "--table",
        table,
      ]);
      assert.equal(status, 0, err);
      assert.equal(
        out,
        `Purged 2 entries from namespace ${JSON.stringify(a.namespace)}`,
      );
      assert.equal((await a.stats()).entries, 0);
      assert.equal(await b.get("one"), 1);
    });
  },
});

Deno.test({
  name:
    "cli: purge --namespace NS --tag T (repeatable) deletes the namespace's entries carrying any of the tags",
  ignore: noServer,
  async fn() {
    await withTable(async ({ table, a, b, dsn }) => {
      await a.set("u42", 1, { tags: ["user:42"] });
      await a.set("u42b", 1, { tags: ["user:42", "list"] });
      await a.set("u7", 1, { tags: ["user:7"] });
      await a.set("u8", 1, { tags: ["user:8"] });
      await b.set("u42", 1, { tags: ["user:42"] });
      const base = ["--namespace", a.namespace, "--dsn", dsn, "--table", table];
      const one = await run(["purge", ...base, "--tag", "user:42"]);
      assert.equal(one.status, 0, one.err);
      assert.match(one.out, /Purged 2 entries tagged user:42/);
      assert.equal(await a.has("u42"), false);
      assert.equal(await a.has("u42b"), false);
      assert.equal(await a.has("u7"), true);
      assert.equal(await b.has("u42"), true, "another namespace was purged");

      const two = await run([
        "purge",
        ...base,
        "--tag",
        "user:7",
        "--tag",
        "user:8",
      ]);
      assert.equal(two.status, 0, two.err);
      assert.match(two.out, /Purged 2 entries/);
      assert.equal((await a.stats()).entries, 0);
    });
  },
});

Deno.test({
  name:
    'cli: purge --namespace NS --url "/p?q=1" deletes the cached GET entry of that URL, query order aside',
  ignore: noServer,
  async fn() {
    await withTable(async ({ table, a, dsn }) => {
      let runs = 0;
      const app = new Hono();
      app.get("/p", cached({ backend: a, expire: 300, wait: true }), (c) => {
        runs++;
        return c.text(`run ${runs}`);
      });
      assert.equal(
        (await app.request("/p?q=1")).headers.get("x-cache"),
        "MISS",
      );
      assert.equal(
        (await app.request("/p?z=2&a=1")).headers.get("x-cache"),
        "MISS",
      );
      assert.equal(
        (await app.request("/p?q=2")).headers.get("x-cache"),
        "MISS",
      );
      const base = ["--namespace", a.namespace, "--dsn", dsn, "--table", table];

      const purged = await run(["purge", ...base, "--url", "/p?q=1"]);
      assert.equal(purged.status, 0, purged.err);
      assert.match(purged.out, /Purged the entry of \/p\?q=1/);
      const sorted = await run(["purge", ...base, "--url", "/p?a=1&z=2"]);
      assert.equal(sorted.status, 0, sorted.err);
      assert.match(sorted.out, /Purged the entry/);
      const none = await run(["purge", ...base, "--url", "/p?q=3"]);
      assert.equal(none.status, 0, none.err);
      assert.match(none.out, /No entry for \/p\?q=3/);

      assert.equal(
        (await app.request("/p?q=1")).headers.get("x-cache"),
        "MISS",
      );
      assert.equal(
        (await app.request("/p?z=2&a=1")).headers.get("x-cache"),
        "MISS",
      );
      assert.equal((await app.request("/p?q=2")).headers.get("x-cache"), "HIT");
      assert.equal(runs, 5);
    });
  },
});

Deno.test({
  name:
    "cli: sweep deletes rows past their stale window (aged by SQL), in every namespace, and keeps the rest",
  ignore: noServer,
  async fn() {
    await withTable(async ({ table, a, b, dsn }) => {
      await a.set("old1", 1, { expire: 60 });
      await a.writeEntry("old2", { kind: 1, body: new Uint8Array(3) }, {
        expire: 60,
        staleFor: 60,
      });
      await a.writeEntry("stale-but-kept", {
        kind: 1,
        body: new Uint8Array(3),
      }, { expire: 60, staleFor: 3600 });
      await a.set("fresh", 1, { expire: 60 });
      await b.set("old3", 1, { expire: 60 });
      await b.set("forever", 1);
      // Expiry is by the database clock: move rows into the past.
      await withServer(async (sql) => {
        await sql.unsafe(
          `UPDATE "${table}" SET expires_at = now() - interval '2 hours',
             stale_until = now() - interval '1 hour'
           WHERE key IN ('old1', 'old2', 'old3')`,
        );
        await sql.unsafe(
          `UPDATE "${table}" SET expires_at = now() - interval '1 minute',
             stale_until = now() + interval '1 hour'
           WHERE key = 'stale-but-kept'`,
        );
      });
      const before = await run(["stats", "--dsn", dsn, "--table", table]);
      assert.equal(statsTable(before.out).get(a.namespace)?.[2], 2);
      assert.equal(statsTable(before.out).get(b.namespace)?.[2], 1);

      const swept = await run(["sweep", "--dsn", dsn, "--table", table]);
      assert.equal(swept.status, 0, swept.err);
      assert.match(swept.out, /Swept 3 expired rows/);
      const after = statsTable(
        (await run(["stats", "--dsn", dsn, "--table", table])).out,
      );
      assert.deepEqual(after.get(a.namespace)?.slice(0, 1), [2]);
      assert.deepEqual(after.get(b.namespace)?.slice(0, 1), [1]);
      assert.equal(await a.get("fresh"), 1);
      assert.equal((await a.readEntry("stale-but-kept"))?.stale, true);
      assert.equal(await b.get("forever"), 1);

      const again = await run(["sweep", "--dsn", dsn, "--table", table]);
      assert.match(again.out, /Swept 0 expired rows/);
    });
  },
});

Deno.test({
  name:
    "cli: as a subprocess, it takes the database from DATABASE_URL, and exits 0 on success, 2 on usage errors and 1 when the server is unreachable",
  ignore: noServer,
  async fn() {
    await withTable(async ({ table, a }) => {
      await a.set("k", new Uint8Array(12));
      const [ok, usage, noDatabase, unreachable] = await Promise.all([
        spawn(["stats", "--table", table], { DATABASE_URL: DATABASE_URL! }),
        spawn(["frobnicate"]),
        spawn(["stats", "--table", table]),
        spawn([
          "stats",
          "--dsn",
          `postgres://postgres@127.0.0.1:${closedPort()}/test`,
        ]),
      ]);
      assert.equal(ok.code, 0, ok.stderr);
      assert.deepEqual(statsTable(ok.stdout.trim()).get(a.namespace), [
        1,
        12,
        0,
      ]);
      assert.equal(usage.code, 2);
      assert.match(usage.stderr, /unknown command "frobnicate"/);
      assert.match(usage.stderr, /Usage: cachekit/);
      assert.equal(noDatabase.code, 2);
      assert.match(noDatabase.stderr, /pass --dsn or set DATABASE_URL/);
      assert.equal(unreachable.code, 1);
      assert.match(unreachable.stderr, /^Error: .*ECONNREFUSED/);
    });
  },
});
