// The library's TypeScript source under Node: the cached() middleware and
// PostgresBackend served by @hono/node-server, against a real PostgreSQL.
//
// Run with `bash tests/node/run.sh` (DATABASE_URL set). Node runs the .ts
// files through tsx; register.mjs resolves the library's bare imports
// ("hono", "postgres") from this folder's node_modules.
import assert from "node:assert/strict";
import { spawn } from "node:child_process";
import { randomUUID } from "node:crypto";
import { once } from "node:events";
import { createServer, type Server, type Socket } from "node:net";
import { fileURLToPath } from "node:url";
import { after, describe, test } from "node:test";
import { Hono } from "hono";
import postgres from "postgres";
import { cached, PostgresBackend } from "../../mod.ts";
import { listen } from "./node_server.ts";

const DATABASE_URL = process.env.DATABASE_URL;
const noDatabase = DATABASE_URL
  ? false
  : "DATABASE_URL is not set: no PostgreSQL to test against";

/** A table name no other run uses. */
function uniqueTable(): string {
  return `node_${Date.now().toString(36)}_${randomUUID().slice(0, 8)}`;
}

/** A local port nothing listens on. */
async function closedPort(): Promise<number> {
  const server: Server = createServer();
  server.listen(0, "127.0.0.1");
  await once(server, "listening");
  const { port } = server.address() as { port: number };
  server.close();
  await once(server, "close");
  return port;
}

describe("cached() + PostgresBackend under @hono/node-server", () => {
  const tables: string[] = [];
  after(async () => {
    if (!DATABASE_URL || tables.length === 0) return;
    const sql = postgres(DATABASE_URL, { max: 1, onnotice: () => {} });
    try {
      for (const table of tables) {
        await sql.unsafe(
          `DROP TABLE IF EXISTS "${table}", "${table}_epochs";
DROP FUNCTION IF EXISTS "${table}_evict"(text, bigint, bigint, integer, bigint, bigint);
DROP FUNCTION IF EXISTS "${table}_purge"(text, text, text[])`,
        ).simple();
      }
    } finally {
      await sql.end({ timeout: 5 });
    }
  });

  test("a MISS then a HIT with the same body; the handler runs once", {
    skip: noDatabase,
  }, async () => {
    const table = uniqueTable();
    tables.push(table);
    const backend = new PostgresBackend({
      dsn: DATABASE_URL!,
      table,
      namespace: "node-test",
      maxSize: 2,
      sweepInterval: 0,
    });
    let runs = 0;
    const app = new Hono();
    app.get("/expensive", cached({ backend, expire: 60 }), (c) => {
      runs++;
      return c.json({
        result: Number(c.req.query("x")) * 2,
        token: randomUUID(),
      });
    });
    await backend.ready();
    const server = await listen(app.fetch);
    try {
      const miss = await fetch(`${server.url}/expensive?x=21`);
      assert.equal(miss.status, 200);
      assert.equal(miss.headers.get("x-cache"), "MISS");
      const missBody = await miss.json();
      assert.equal(missBody.result, 42);

      const hit = await fetch(`${server.url}/expensive?x=21`);
      assert.equal(hit.status, 200);
      assert.equal(hit.headers.get("x-cache"), "HIT");
      assert.match(hit.headers.get("age") ?? "", /^\d+$/);
      assert.deepEqual(await hit.json(), missBody);
      assert.equal(runs, 1);

      // The entry is in PostgreSQL, not only in this process.
      assert.equal((await backend.stats()).entries, 1);
    } finally {
      await server.close();
      await backend.close();
    }
  });

  test("fails open: an unreachable database answers 200 with X-Cache: BYPASS", async () => {
    const errors: string[] = [];
    const backend = new PostgresBackend({
      dsn: `postgres://postgres@127.0.0.1:${await closedPort()}/test`,
      namespace: "node-test",
      maxSize: 2,
      sweepInterval: 0,
      connectTimeout: 2000,
      queryTimeout: 500,
      onError: (_error, context) => errors.push(context.operation),
    });
    let runs = 0;
    const app = new Hono();
    app.get(
      "/expensive",
      cached({
        backend,
        expire: 60,
        onError: (_error, context) => errors.push(context.operation),
      }),
      (c) => {
        runs++;
        return c.json({ result: Number(c.req.query("x")) * 2 });
      },
    );
    const server = await listen(app.fetch);
    try {
      for (let i = 1; i <= 2; i++) {
        const started = performance.now();
        const res = await fetch(`${server.url}/expensive?x=2`);
        assert.equal(res.status, 200);
        assert.equal(res.headers.get("x-cache"), "BYPASS");
        assert.deepEqual(await res.json(), { result: 4 });
        assert.equal(runs, i);
        // Refused connections fail fast: no request waits out a timeout.
        assert.ok(
          performance.now() - started < 2000,
          `request ${i} took ${Math.round(performance.now() - started)} ms`,
        );
      }
      assert.ok(errors.length > 0, "the failures were reported to onError");
    } finally {
      await server.close();
      await backend.close();
    }
  });

  test("fails open within connectTimeout when the database never answers", async () => {
    // A port that accepts connections and never says a word.
    const sockets = new Set<Socket>();
    const silent = createServer((socket) => {
      sockets.add(socket);
      socket.on("close", () => sockets.delete(socket));
    });
    silent.listen(0, "127.0.0.1");
    await once(silent, "listening");
    const { port } = silent.address() as { port: number };
    const backend = new PostgresBackend({
      dsn: `postgres://postgres@127.0.0.1:${port}/test`,
      namespace: "node-test",
      maxSize: 2,
      sweepInterval: 0,
      connectTimeout: 300,
      queryTimeout: 300,
      onError: () => {},
    });
    const app = new Hono();
    app.get(
      "/expensive",
      cached({ backend, expire: 60, onError: () => {} }),
      (c) => c.json({ result: Number(c.req.query("x")) * 2 }),
    );
    const server = await listen(app.fetch);
    try {
      const started = performance.now();
      const res = await fetch(`${server.url}/expensive?x=2`);
      const elapsed = performance.now() - started;
      assert.equal(res.status, 200);
      assert.equal(res.headers.get("x-cache"), "BYPASS");
      assert.deepEqual(await res.json(), { result: 4 });
      assert.ok(elapsed < 2000, `the request took ${Math.round(elapsed)} ms`);
    } finally {
      await server.close();
      await backend.close();
      for (const socket of sockets) socket.destroy();
      silent.close();
    }
  });

  test(
    "shuts down cleanly: the process exits on its own once the server and backend are closed",
    {
      skip: noDatabase,
    },
    async (t) => {
      const table = uniqueTable();
      tables.push(table);
      const child = spawn(
        process.execPath,
        [
          "--import",
          "./register.mjs",
          "--import",
          "tsx",
          "shutdown_child.ts",
        ],
        {
          cwd: fileURLToPath(new URL("./", import.meta.url)),
          env: { ...process.env, TABLE: table },
          stdio: ["ignore", "pipe", "pipe"],
        },
      );
      let stdout = "";
      let stderr = "";
      child.stdout.setEncoding("utf8").on("data", (chunk) => stdout += chunk);
      child.stderr.setEncoding("utf8").on("data", (chunk) => stderr += chunk);
      const exited = once(child, "exit") as Promise<
        [number | null, string | null]
      >;
      // Startup (tsx, connecting) plus shutdown: a timer or socket left
      // referenced would keep the child running past this.
      const limit = 10_000;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const outcome = await Promise.race([
        exited,
        new Promise<"timeout">((resolve) => {
          timer = setTimeout(() => resolve("timeout"), limit);
        }),
      ]);
      clearTimeout(timer);
      if (outcome === "timeout") {
        child.kill("SIGKILL");
        await exited;
        assert.fail(
          `the child did not exit within ${limit} ms\nstdout:\n${stdout}\nstderr:\n${stderr}`,
        );
      }
      const [code, signal] = outcome;
      assert.equal(
        code,
        0,
        `the child exited with ${
          code ?? signal
        }\nstdout:\n${stdout}\nstderr:\n${stderr}`,
      );
      const report = JSON.parse(stdout.trim().split("\n").at(-1)!);
      assert.deepEqual(report, {
        statuses: ["MISS", "HIT"],
        runs: 1,
        closed: true,
      });
      // It exited on its own, with 0: nothing was left to keep it alive.
      if (stderr.trim() !== "") t.diagnostic(`child stderr: ${stderr.trim()}`);
    },
  );
});
