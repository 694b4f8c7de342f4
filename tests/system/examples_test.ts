// Smoke tests of examples/: each runs as its own `deno run` process (on
// PostgreSQL when DATABASE_URL is set, on embedded PGlite otherwise), is
// sent the requests that show its point, and is stopped with SIGTERM.
import assert from "node:assert/strict";
import { dropTable, withServer } from "../_helpers.ts";

const root = new URL("../../", import.meta.url);

/** Milliseconds an example may take to print its listening line. */
const START_LIMIT = 60_000;
/** Milliseconds an example may take to exit after SIGTERM. */
const STOP_LIMIT = 15_000;

/** Rejects with `message` after `ms`, unless `promise` settles first. */
async function within<T>(
  promise: Promise<T>,
  ms: number,
  message: () => string,
): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      promise,
      new Promise<never>((_, reject) => {
        timer = setTimeout(() => reject(new Error(message())), ms);
      }),
    ]);
  } finally {
    clearTimeout(timer);
  }
}

/** A port, and the one after it, that nothing listens on now. */
function freePortPair(): number {
  for (let attempt = 0; attempt < 20; attempt++) {
    const first = Deno.listen({ hostname: "127.0.0.1", port: 0 });
    const port = first.addr.port;
    try {
      Deno.listen({ hostname: "127.0.0.1", port: port + 1 }).close();
      return port;
    } catch {
      // Taken: try another pair.
    } finally {
      first.close();
    }
  }
  throw new Error("Could not find two free consecutive ports");
}

/** A running example. */
interface Example {
  /** `http://127.0.0.1:<PORT + offset>`. */
  base(offset?: number): string;
  /** Sends SIGTERM and resolves to the exit status. */
  stop(): Promise<Deno.CommandStatus>;
  /** What it printed so far, for failure messages. */
  output(): string;
}

/** Starts `examples/<name>` and resolves once it prints its listening line. */
async function start(name: string): Promise<Example> {
  const port = freePortPair();
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", `examples/${name}`],
    cwd: root,
    // DATABASE_URL, when set, is inherited.
    env: { PORT: String(port), NO_COLOR: "1" },
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();

  let stdout = "";
  let stderr = "";
  let listening!: () => void;
  const listened = new Promise<void>((resolve) => listening = resolve);
  const drain = async (
    stream: ReadableStream<Uint8Array>,
    append: (text: string) => void,
  ) => {
    for await (const text of stream.pipeThrough(new TextDecoderStream())) {
      append(text);
    }
  };
  const drained = Promise.all([
    drain(child.stdout, (text) => {
      stdout += text;
      if (/^Listening on /m.test(stdout)) listening();
    }),
    drain(child.stderr, (text) => stderr += text),
  ]);
  const status = child.status;
  const output = () => `stdout:\n${stdout}\nstderr:\n${stderr}`;

  let stopped: Promise<Deno.CommandStatus> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      try {
        child.kill("SIGTERM");
      } catch {
        // Already exited.
      }
      try {
        return await within(
          status,
          STOP_LIMIT,
          () => `${name} did not exit within ${STOP_LIMIT} ms of SIGTERM`,
        );
      } catch (error) {
        child.kill("SIGKILL");
        await status;
        throw error;
      } finally {
        await drained;
      }
    })();

  try {
    const exited = status.then((s) => {
      throw new Error(`${name} exited with ${s.code} before listening`);
    });
    await within(
      Promise.race([listened, exited]),
      START_LIMIT,
      () => `${name} printed no listening line within ${START_LIMIT} ms`,
    );
  } catch (error) {
    await stop().catch(() => {});
    throw new Error(`${(error as Error).message}\n${output()}`);
  }
  return {
    base: (offset = 0) => `http://127.0.0.1:${port + offset}`,
    stop,
    output,
  };
}

/**
 * Runs `fn` on a started example, then stops it; `cleanExit` asserts that
 * it exits with 0 on SIGTERM.
 */
async function withExample(
  name: string,
  fn: (example: Example) => Promise<void>,
  cleanExit = true,
): Promise<void> {
  const example = await start(name);
  try {
    await fn(example);
  } catch (error) {
    await example.stop().catch(() => {});
    throw new Error(`${(error as Error).message}\n${example.output()}`, {
      cause: error,
    });
  }
  const status = await example.stop();
  if (cleanExit) {
    assert.equal(
      status.code,
      0,
      `${name} exited with ${status.code} (${status.signal})\n${example.output()}`,
    );
  }
}

/** A GET (or other) request, its X-Cache and its body parsed as JSON. */
async function request(
  url: string,
  init?: RequestInit,
): Promise<{ status: number; cache: string | null; body: unknown }> {
  const res = await fetch(url, init);
  const text = await res.text();
  let body: unknown = text;
  try {
    body = JSON.parse(text);
  } catch {
    // Not JSON: keep the text.
  }
  return { status: res.status, cache: res.headers.get("x-cache"), body };
}

/** Calls `fn` until it returns a value, every 50 ms, for at most `ms`. */
async function poll<T>(
  what: string,
  ms: number,
  fn: () => Promise<T | undefined>,
): Promise<T> {
  const deadline = Date.now() + ms;
  while (true) {
    const found = await fn();
    if (found !== undefined) return found;
    if (Date.now() >= deadline) {
      throw new Error(`Timed out after ${ms} ms waiting for ${what}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
}

/** A query value no earlier run used, since entries may outlive a run. */
function fresh(): number {
  return Math.floor(Math.random() * 1e9);
}

Deno.test("examples/basic.ts: a MISS, then a HIT with the same body", async () => {
  // basic.ts handles SIGINT only, so SIGTERM ends it without a clean exit.
  await withExample("basic.ts", async (example) => {
    const x = fresh();
    const miss = await request(`${example.base()}/expensive?x=${x}`);
    assert.equal(miss.status, 200);
    assert.equal(miss.cache, "MISS");
    assert.deepEqual(miss.body, { result: x * 2 });
    const hit = await request(`${example.base()}/expensive?x=${x}`);
    assert.equal(hit.cache, "HIT");
    assert.deepEqual(hit.body, miss.body);
  }, false);
});

Deno.test("examples/deno_deploy.ts: a MISS, then a HIT; /health is not cached", async () => {
  await withExample("deno_deploy.ts", async (example) => {
    const url = `${example.base()}/products/${fresh()}`;
    const miss = await request(url);
    assert.equal(miss.status, 200);
    assert.equal(miss.cache, "MISS");
    const hit = await request(url);
    assert.equal(hit.cache, "HIT");
    assert.deepEqual(hit.body, miss.body);
    const health = await request(`${example.base()}/health`);
    assert.deepEqual([health.status, health.cache, health.body], [
      200,
      null,
      "ok",
    ]);
  });
});

Deno.test("examples/json_api_tags.ts: PUT purges the user's tag, so the next GET shows the new data", async () => {
  await withExample("json_api_tags.ts", async (example) => {
    const user = `${example.base()}/users/1`;
    const list = `${example.base()}/users`;
    const first = await request(user);
    assert.equal(first.cache, "MISS");
    assert.equal((first.body as { name: string }).name, "Ada Lovelace");
    assert.equal((await request(user)).cache, "HIT");
    assert.equal((await request(list)).cache, "MISS");
    assert.equal((await request(list)).cache, "HIT");

    const put = await request(user, {
      method: "PUT",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ name: "Ada King" }),
    });
    assert.equal(put.status, 200);
    // The user's entry and the list's.
    assert.equal((put.body as { invalidated: number }).invalidated, 2);

    const after = await request(user);
    assert.equal(after.cache, "MISS");
    assert.equal((after.body as { name: string }).name, "Ada King");
    const again = await request(user);
    assert.equal(again.cache, "HIT");
    assert.deepEqual(again.body, after.body);
    const newList = await request(list);
    assert.equal(newList.cache, "MISS");
    assert.ok(
      (newList.body as { name: string }[]).some((u) => u.name === "Ada King"),
    );

    const missing = await request(`${example.base()}/users/999`);
    assert.equal(missing.status, 404);
  });
});

Deno.test("examples/per_user.ts: entries are per credential; shared routes bypass credentials", async () => {
  await withExample("per_user.ts", async (example) => {
    const me = `${example.base()}/me`;
    const as = (token: string) => ({
      headers: { authorization: `Bearer ${token}` },
    });
    const alice = await request(me, as("alice-token"));
    assert.equal(alice.status, 200);
    assert.equal(alice.cache, "MISS");
    assert.equal((alice.body as { name: string }).name, "Alice");
    const aliceAgain = await request(me, as("alice-token"));
    assert.equal(aliceAgain.cache, "HIT");
    assert.deepEqual(aliceAgain.body, alice.body);

    // Bob never gets Alice's entry.
    const bob = await request(me, as("bob-token"));
    assert.equal(bob.cache, "MISS");
    assert.equal((bob.body as { name: string }).name, "Bob");

    // Authentication runs before the cache: no credential, no entry.
    assert.equal((await request(me)).status, 401);
    assert.equal((await request(me, as("stolen-token"))).status, 401);

    // A change purges the user's entries by tag.
    const visit = await request(`${example.base()}/me/visits`, {
      method: "POST",
      ...as("alice-token"),
    });
    assert.deepEqual(visit.body, { visits: 1 });
    const updated = await request(me, as("alice-token"));
    assert.equal(updated.cache, "MISS");
    assert.equal((updated.body as { visits: number }).visits, 1);
    assert.equal((await request(me, as("bob-token"))).cache, "HIT");

    // The shared route is cached, but not for requests with credentials.
    const news = `${example.base()}/news`;
    assert.equal((await request(news)).cache, "MISS");
    assert.equal((await request(news)).cache, "HIT");
    assert.equal((await request(news, as("bob-token"))).cache, "BYPASS");
  });
});

Deno.test("examples/stale_while_revalidate.ts: past expiry, STALE at once, then the refreshed copy", async () => {
  await withExample("stale_while_revalidate.ts", async (example) => {
    const url = `${example.base()}/report?run=${fresh()}`;
    type Report = { computedAt: string; computation: number };
    const miss = await request(url);
    assert.equal(miss.cache, "MISS");
    const first = miss.body as Report;
    const hit = await request(url);
    assert.equal(hit.cache, "HIT");
    assert.deepEqual(hit.body, first);

    // Fresh for 2 s; then served stale while one refresh runs.
    const stale = await poll("a STALE answer", 10_000, async () => {
      const res = await request(url);
      assert.notEqual(res.cache, "MISS", "the entry was recomputed in line");
      return res.cache === "STALE" ? res : undefined;
    });
    assert.deepEqual(stale.body, first);

    const refreshed = await poll("the refreshed entry", 10_000, async () => {
      const res = await request(url);
      assert.notEqual(res.cache, "MISS", "the entry was recomputed in line");
      return res.cache === "HIT" &&
          (res.body as Report).computation > first.computation
        ? res
        : undefined;
    });
    assert.notEqual((refreshed.body as Report).computedAt, first.computedAt);
  });
});

Deno.test("examples/two_instances.ts: a MISS on one instance is a HIT on the other", async () => {
  await withExample("two_instances.ts", async (example) => {
    type Body = { result: number; computedBy: string };
    const x = fresh();
    const onA = await request(`${example.base(0)}/expensive?x=${x}`);
    assert.equal(onA.cache, "MISS");
    assert.equal((onA.body as Body).computedBy, "A");
    const onB = await request(`${example.base(1)}/expensive?x=${x}`);
    assert.equal(onB.cache, "HIT");
    assert.deepEqual(onB.body, onA.body);

    const y = x + 1;
    const fromB = await request(`${example.base(1)}/expensive?x=${y}`);
    assert.equal(fromB.cache, "MISS");
    assert.equal((fromB.body as Body).computedBy, "B");
    const toA = await request(`${example.base(0)}/expensive?x=${y}`);
    assert.equal(toA.cache, "HIT");
    assert.deepEqual(toA.body, fromB.body);
  });
});

Deno.test("examples/_serve.ts: a port in use prints one line, Port N is in use: set PORT, and exits with 1", async () => {
  const taken = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = taken.addr.port;
  try {
    const output = await within(
      new Deno.Command(Deno.execPath(), {
        args: ["run", "-A", "examples/basic.ts"],
        cwd: root,
        // DATABASE_URL, when set, is inherited.
        env: { PORT: String(port), NO_COLOR: "1" },
        stdin: "null",
        stdout: "piped",
        stderr: "piped",
      }).output(),
      START_LIMIT,
      () => `basic.ts did not exit within ${START_LIMIT} ms`,
    );
    const stderr = new TextDecoder().decode(output.stderr);
    assert.equal(output.code, 1, stderr);
    assert.equal(stderr, `Port ${port} is in use: set PORT\n`);
    assert.equal(new TextDecoder().decode(output.stdout), "");
  } finally {
    taken.close();
  }
});

Deno.test({
  name:
    "examples leave nothing behind in the test database: their default table is dropped",
  ignore: Deno.env.get("DATABASE_URL") === undefined,
  async fn() {
    // The examples use the default table, as an app would; the tests'
    // database keeps nothing of theirs.
    await dropTable("cachekit_entries");
    const [row] = await withServer((sql) =>
      sql`SELECT to_regclass('cachekit_entries') IS NULL
        AND to_regclass('cachekit_entries_epochs') IS NULL AS gone`
    );
    assert.equal(row.gone, true);
  },
});
