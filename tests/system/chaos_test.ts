// Real-server chaos: a throwaway PostgreSQL cluster (tests/_cluster.ts) is
// restarted, killed, has its backends terminated, or is frozen while a cached
// app in its own process (tests/fixtures/chaos_server.ts) serves 50 requests
// at a time, many of them misses on new keys, which take the cross-process
// lock. Unlike cutting a TCP proxy, these leave the app's connections dead
// on the server's side, as a real outage does. Needs no DATABASE_URL.
import assert from "node:assert/strict";
import { Hono } from "hono";
import {
  CacheOutcomeUnknownError,
  CacheTimeoutError,
  PostgresBackend,
} from "../../backends/postgres.ts";
import type { KeyLock } from "../../backends/types.ts";
import { cached } from "../../middleware/mod.ts";
import { type Cluster, startCluster } from "../_cluster.ts";
import { listeningPort } from "../_process.ts";

const FIXTURE = new URL("../fixtures/chaos_server.ts", import.meta.url)
  .pathname;
/** Requests in flight at once during a scenario. */
const CONCURRENCY = 50;
/** The most milliseconds from the server being back to the first HIT. */
const HIT_WITHIN = 3000;

const quiet = () => {};
const delay = (ms: number) => new Promise((resolve) => setTimeout(resolve, ms));

/** Settles like `promise`, or rejects once `ms` have passed, leaving no timer. */
async function within<T>(promise: Promise<T>, ms: number, what: string) {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(
      () => reject(new Error(`${what} took more than ${ms} ms`)),
      ms,
    );
  });
  try {
    return await Promise.race([promise, late]);
  } finally {
    clearTimeout(timer);
  }
}

/** The chaos app in a process of its own, whose exit the test watches. */
interface App {
  port: number;
  /** Its exit status once it has ended, else `undefined`. */
  exited(): Deno.CommandStatus | undefined;
  /** What it wrote to stderr so far. */
  stderr(): string;
  /** Closes its stdin and waits for it to exit (killed after 10 s). */
  stop(): Promise<void>;
}

/** Starts the chaos app on `url` and waits until it listens. */
async function spawnApp(url: string, localCache = false): Promise<App> {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", FIXTURE],
    env: { CHAOS_URL: url, LOCAL_CACHE: localCache ? "1" : "0", NO_COLOR: "1" },
    stdin: "piped",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let status: Deno.CommandStatus | undefined;
  const ended = child.status.then((value) => status = value);
  let stderr = "";
  const drained = child.stderr.pipeThrough(new TextDecoderStream()).pipeTo(
    new WritableStream({ write: (chunk) => void (stderr += chunk) }),
  ).catch(() => {});
  const stop = async () => {
    await child.stdin.close().catch(() => {});
    await child.stdout.cancel().catch(() => {});
    await within(ended, 10_000, "The app's exit").catch(() => {
      child.kill("SIGKILL");
    });
    await ended;
    await drained;
  };
  try {
    const port = await listeningPort(child.stdout, "The chaos app");
    return { port, exited: () => status, stderr: () => stderr, stop };
  } catch (error) {
    await stop();
    throw new Error(`The chaos app did not start:\n${stderr}`, {
      cause: error,
    });
  }
}

/** Fails unless the app is still running and still answers correctly. */
async function assertAlive(app: App): Promise<void> {
  const status = app.exited();
  assert.equal(
    status,
    undefined,
    `The app process ended (exit code ${status?.code}, signal ${status?.signal}):\n${
      app.stderr().slice(-3000)
    }`,
  );
  const { problem } = await get(app.port, "alive");
  assert.equal(problem, undefined, "The app no longer answers correctly");
}

/** GETs `/item/:id`; `problem` says how the answer is not the handler's. */
async function get(
  port: number,
  id: string,
): Promise<{ problem?: string; cache?: string | null; ms?: number }> {
  const started = performance.now();
  try {
    const res = await fetch(`http://127.0.0.1:${port}/item/${id}`, {
      signal: AbortSignal.timeout(20_000),
    });
    const text = await res.text();
    if (res.status !== 200 || text !== JSON.stringify({ id })) {
      return { problem: `${id}: ${res.status} ${text.slice(0, 200)}` };
    }
    return {
      cache: res.headers.get("x-cache"),
      ms: performance.now() - started,
    };
  } catch (error) {
    return { problem: `${id}: ${error}` };
  }
}

/** Sends `count` requests at once on new keys; resolves to the problems. */
async function burst(port: number, prefix: string, count = CONCURRENCY) {
  const answers = await Promise.all(
    Array.from({ length: count }, (_, i) => get(port, `${prefix}-${i}`)),
  );
  return answers.flatMap(({ problem }) => problem ? [problem] : []);
}

/**
 * Keeps CONCURRENCY requests in flight until stopped. Until `fresh()`, they
 * ask for the keys `${prefix}-before-*` that the app cached already; then
 * mostly misses on new keys, every fourth one a key just requested.
 */
function startLoad(port: number, prefix: string) {
  let running = true;
  let fresh = false;
  let sent = 0;
  const problems: string[] = [];
  const times: number[] = [];
  const workers = Array.from({ length: CONCURRENCY }, async (_, worker) => {
    for (let i = 0; running && i < 10_000 && problems.length < 100; i++) {
      const n = i % 4 === 3 ? i - 1 : i;
      const id = fresh
        ? `${prefix}-during-${worker}-${n}`
        : `${prefix}-before-${(worker + i) % CONCURRENCY}`;
      const { problem, ms } = await get(port, id);
      sent++;
      if (problem) problems.push(problem);
      if (ms !== undefined) times.push(ms);
    }
  });
  return {
    /** From now on, ask for new keys. */
    fresh() {
      fresh = true;
    },
    async stop(): Promise<
      { sent: number; problems: string[]; times: number[] }
    > {
      running = false;
      await Promise.all(workers);
      return { sent, problems, times };
    },
  };
}

/** Milliseconds from `since` until `id` is answered with a HIT (Infinity if never within 10 s). */
async function untilHit(app: App, id: string, since: number): Promise<number> {
  while (performance.now() - since < 10_000 && !app.exited()) {
    const { cache } = await get(app.port, id);
    if (cache === "HIT") return performance.now() - since;
    await delay(20);
  }
  return Infinity;
}

/**
 * Runs the app under load on a fresh cluster while `event` strikes, and
 * checks the rules: the process survives, every answer is the handler's,
 * and hits resume within HIT_WITHIN of `event` resolving (the server back).
 * `event` resolves to problems of requests it made itself.
 */
async function survives(
  event: (cluster: Cluster, app: App, prefix: string) => Promise<string[]>,
  localCache = false,
): Promise<void> {
  const cluster = await startCluster();
  let app: App | undefined;
  let load: ReturnType<typeof startLoad> | undefined;
  try {
    app = await spawnApp(cluster.url, localCache);
    const prefix = crypto.randomUUID().slice(0, 8);
    // Misses first, so that the lock session and the pool are in use, and a
    // hit, so that the app is known to cache before the event.
    assert.deepEqual(await burst(app.port, `${prefix}-before`), []);
    assert.ok(
      await untilHit(app, `${prefix}-warm`, performance.now()) < HIT_WITHIN,
      "The app caches before the event",
    );
    // Under load, but with no miss in flight when the event strikes: the
    // lock session sits idle, as it does between misses in production (a
    // lock statement in flight would fail and make the backend drop it).
    load = startLoad(app.port, prefix);
    await delay(200);
    const eventProblems = await event(cluster, app, prefix);
    const back = performance.now();
    load.fresh();
    const hitAfter = await untilHit(app, `${prefix}-probe`, back);
    // Misses on new keys after the event, all at once.
    const after = await burst(app.port, `${prefix}-after`);
    const { sent, problems, times } = await load.stop();
    await assertAlive(app);
    // What the README's "Bad days" table reports.
    times.sort((a, b) => a - b);
    const at = (q: number) =>
      Math.round(times[Math.floor(q * (times.length - 1))]);
    console.log(
      `chaos: ${sent} requests under load, p50 ${at(0.5)} ms, p99 ${
        at(0.99)
      } ms, max ${at(1)} ms; first HIT ${
        Math.round(hitAfter)
      } ms after the server was back`,
    );
    assert.deepEqual(eventProblems, [], "Requests made during the event");
    assert.deepEqual(after, [], "Misses on new keys after the event");
    assert.deepEqual(problems, [], `Requests under load (${sent} sent)`);
    assert.ok(
      hitAfter <= HIT_WITHIN,
      `The first HIT came ${Math.round(hitAfter)} ms after the server was back`,
    );
  } finally {
    await load?.stop();
    await app?.stop();
    await cluster.destroy();
  }
}

Deno.test("a fast restart of the server never ends the process, and hits resume", async () => {
  await survives(async (cluster) => {
    await cluster.restart("fast");
    return [];
  });
});

Deno.test("with the local tier on, a fast restart of the server never ends the process, and hits resume", async () => {
  await survives(async (cluster) => {
    await cluster.restart("fast");
    return [];
  }, true);
});

Deno.test("an immediate stop and a start of the server never end the process, requests meanwhile are answered, and hits resume", async () => {
  await survives(async (cluster, app, prefix) => {
    await cluster.stop("immediate");
    // Misses on new keys while the server is down.
    const down = await burst(app.port, `${prefix}-down`);
    await cluster.start();
    return down;
  });
});

Deno.test("terminating every backend of the app never ends the process, and hits resume", async () => {
  await survives(async (cluster) => {
    const terminated = await cluster.terminateBackends();
    assert.ok(terminated >= 2, `The app held connections (${terminated})`);
    return [];
  });
});

Deno.test("a server frozen for 8 s never ends the process, requests meanwhile are answered by the handler while it is frozen, and hits resume", async () => {
  await survives(async (cluster, app, prefix) => {
    await cluster.pause();
    const frozenAt = performance.now();
    try {
      // Misses on new keys while frozen: answered before the server thaws.
      const frozen = await within(
        burst(app.port, `${prefix}-frozen`),
        7_500,
        "Answering the requests made while the server is frozen",
      ).catch((error) => [String(error)]);
      await delay(8_000 - (performance.now() - frozenAt));
      return frozen;
    } finally {
      await cluster.resume();
    }
  });
});

Deno.test("a lock whose query timed out is never returned to the pool holding the lock", async () => {
  const cluster = await startCluster();
  const options = { dsn: cluster.url, sweepInterval: 0, onError: quiet };
  const first = new PostgresBackend({ ...options, queryTimeout: 300 });
  let second: PostgresBackend | undefined;
  try {
    await first.ready();
    // The lock session exists before the server freezes.
    const warm = await first.lock("warm-up");
    assert.ok(warm.acquired);
    await warm.release();
    await cluster.pause();
    try {
      await assert.rejects(first.lock("contended"), CacheTimeoutError);
    } finally {
      await cluster.resume();
    }
    // The thawed server runs the lock statement it had queued.
    await delay(500);
    second = new PostgresBackend(options);
    await second.ready();
    const start = performance.now();
    let held: KeyLock | undefined;
    while (!held && performance.now() - start < 1000) {
      const attempt = await second.lock("contended");
      if (attempt.acquired) held = attempt;
      else await delay(50);
    }
    assert.ok(held, "Another process takes the lock within 1 s");
    await held.release();
  } finally {
    await within(first.close(), 5000, "Closing the first backend")
      .catch(quiet);
    await within(second?.close() ?? Promise.resolve(), 5000, "Closing")
      .catch(quiet);
    await cluster.destroy();
  }
});

Deno.test("while the database hangs from the start, at most breakerThreshold requests pay the timeout", async () => {
  const cluster = await startCluster();
  let backend: PostgresBackend | undefined;
  try {
    await cluster.pause();
    const breakerThreshold = 3;
    backend = new PostgresBackend({
      dsn: cluster.url,
      queryTimeout: 300,
      // Far above breakerThreshold * queryTimeout: the breaker must count the
      // requests' own timeouts, not only the connection attempt's failure.
      connectTimeout: 3000,
      breakerThreshold,
      breakerCooldown: 60_000,
      sweepInterval: 0,
      onError: quiet,
    });
    const app = new Hono();
    app.get(
      "/item/:id",
      cached({ backend, onError: quiet }),
      (c) => c.json({ id: c.req.param("id") }),
    );
    const durations: number[] = [];
    for (let i = 0; i < 20; i++) {
      const start = performance.now();
      const res = await app.request(`/item/k${i}`);
      assert.equal(res.status, 200);
      assert.deepEqual(await res.json(), { id: `k${i}` });
      durations.push(Math.round(performance.now() - start));
    }
    await cluster.resume();
    await within(backend.close(), 5000, "Closing the backend");
    const rest = durations.toSorted((a, b) => b - a).slice(breakerThreshold);
    assert.ok(
      rest.every((ms) => ms < 100),
      `At most ${breakerThreshold} requests are slow: ${
        durations.join(", ")
      } ms`,
    );
  } finally {
    await cluster.resume();
    await within(backend?.close() ?? Promise.resolve(), 5000, "Closing")
      .catch(quiet);
    await cluster.destroy();
  }
});

Deno.test("a write that times out while the server is frozen is reported as of unknown outcome, never as not committed", async () => {
  const cluster = await startCluster();
  const backend = new PostgresBackend({
    dsn: cluster.url,
    sweepInterval: 0,
    onError: quiet,
    queryTimeout: 300,
  });
  try {
    await backend.set("warm-up", 1);
    await cluster.pause();
    let outcome: unknown;
    try {
      // Sent while the server is frozen: neither the write nor its cancel
      // gets an answer, so whether it commits is not known yet.
      outcome = await backend.set("frozen", "written").then(
        () => "committed",
        (error) => error,
      );
    } finally {
      await cluster.resume();
    }
    assert.ok(
      outcome instanceof CacheOutcomeUnknownError,
      `Expected CacheOutcomeUnknownError, got ${outcome}`,
    );
    // Whether it committed depends on whether the thawed server runs the
    // write or its cancel first: either is true to what was reported. The
    // backend serves again either way.
    const start = performance.now();
    let value = await backend.get("warm-up").catch(() => undefined);
    while (value === undefined && performance.now() - start < 3000) {
      await delay(50);
      value = await backend.get("warm-up").catch(() => undefined);
    }
    assert.equal(value, 1);
  } finally {
    await within(backend.close(), 5000, "Closing the backend").catch(quiet);
    await cluster.destroy();
  }
});
