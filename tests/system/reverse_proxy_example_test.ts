// Smoke test of examples/reverse_proxy.ts: it runs as its own `deno run`
// process (on PostgreSQL when DATABASE_URL is set, on embedded PGlite
// otherwise), is sent a MISS and a HIT, and is stopped with SIGTERM; once
// with the upstream it starts itself, once with UPSTREAM naming one the test
// starts.
import assert from "node:assert/strict";
import { dropTable, withServer } from "../_helpers.ts";

const root = new URL("../../", import.meta.url);

/** Milliseconds the example may take to print its listening line. */
const START_LIMIT = 60_000;
/** Milliseconds the example may take to exit after SIGTERM. */
const STOP_LIMIT = 15_000;

/** A port that nothing listens on now. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = listener.addr.port;
  listener.close();
  return port;
}

/** Rejects with `message` after `ms`, unless `promise` settles first. */
async function within<T>(
  promise: Promise<T>,
  ms: number,
  message: string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message)), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/**
 * Runs examples/reverse_proxy.ts with `env`, calls `fn` with its base URL
 * once it prints its listening line, then stops it with SIGTERM and asserts
 * a clean exit. Failures carry what it printed.
 */
async function withExample(
  env: Record<string, string>,
  fn: (base: string) => Promise<void>,
): Promise<void> {
  const port = freePort();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", "examples/reverse_proxy.ts"],
    cwd: root,
    // DATABASE_URL, when set, is inherited.
    env: { PORT: String(port), NO_COLOR: "1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  let listening!: () => void;
  const listened = new Promise<void>((resolve) => listening = resolve);
  const drain = async (stream: ReadableStream<Uint8Array>) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      output += text;
      if (/^Listening on /m.test(output)) listening();
    }
  };
  const drained = Promise.all([drain(child.stdout), drain(child.stderr)]);
  let status: Deno.CommandStatus | undefined;
  try {
    const exited = child.status.then((s) => {
      throw new Error(`The example exited with ${s.code} before listening`);
    });
    await within(
      Promise.race([listened, exited]),
      START_LIMIT,
      `No listening line within ${START_LIMIT} ms`,
    );
    await fn(`http://127.0.0.1:${port}`);
    child.kill("SIGTERM");
    status = await within(
      child.status,
      STOP_LIMIT,
      `No exit within ${STOP_LIMIT} ms of SIGTERM`,
    );
  } catch (error) {
    throw new Error(`${(error as Error).message}\n${output}`, { cause: error });
  } finally {
    if (!status) {
      try {
        child.kill("SIGKILL");
      } catch {
        // Already exited.
      }
      await child.status;
    }
    await drained;
  }
  assert.equal(status.code, 0, `Exit ${status.code}\n${output}`);
}

/** A GET: its status, X-Cache, Cache-Status and body. */
async function get(url: string): Promise<{
  status: number;
  cache: string | null;
  cacheStatus: string | null;
  body: string;
}> {
  const res = await fetch(url);
  return {
    status: res.status,
    cache: res.headers.get("x-cache"),
    cacheStatus: res.headers.get("cache-status"),
    body: await res.text(),
  };
}

/** A path no earlier run used, since entries may outlive a run. */
function freshPath(): string {
  return `/hello-${crypto.randomUUID()}`;
}

Deno.test("examples/reverse_proxy.ts: with its own upstream, a MISS then a HIT with the same body", async () => {
  await withExample({}, async (base) => {
    const url = `${base}${freshPath()}`;
    const miss = await get(url);
    assert.deepEqual([miss.status, miss.cache], [200, "MISS"]);
    assert.equal(miss.cacheStatus, "cachekit; fwd=uri-miss; stored");
    assert.match(miss.body, /^Upstream answer #\d+ for \/hello-/);
    const hit = await get(url);
    assert.deepEqual([hit.status, hit.cache, hit.body], [
      200,
      "HIT",
      miss.body,
    ]);
    assert.match(hit.cacheStatus ?? "", /^cachekit; hit; ttl=\d+$/);
  });
});

Deno.test("examples/reverse_proxy.ts: in front of UPSTREAM, a MISS then a HIT; the upstream is hit once", async () => {
  let hits = 0;
  const upstream = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    () =>
      new Response(`upstream hit ${++hits}`, {
        headers: { "cache-control": "max-age=60" },
      }),
  );
  try {
    await withExample(
      { UPSTREAM: `http://127.0.0.1:${upstream.addr.port}` },
      async (base) => {
        const url = `${base}${freshPath()}`;
        const miss = await get(url);
        assert.deepEqual([miss.cache, miss.body], ["MISS", "upstream hit 1"]);
        const hit = await get(url);
        assert.deepEqual([hit.cache, hit.body], ["HIT", "upstream hit 1"]);
        assert.equal(hits, 1);
      },
    );
  } finally {
    await upstream.shutdown();
  }
});

Deno.test({
  name:
    "examples/reverse_proxy.ts leaves nothing behind in the test database: its default table is dropped",
  ignore: Deno.env.get("DATABASE_URL") === undefined,
  async fn() {
    await dropTable("cachekit_entries");
    const [row] = await withServer((sql) =>
      sql`SELECT to_regclass('cachekit_entries') IS NULL
        AND to_regclass('cachekit_entries_epochs') IS NULL AS gone`
    );
    assert.equal(row.gone, true);
  },
});
