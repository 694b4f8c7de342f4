// Several Deno processes sharing one PostgreSQL table, on the real server:
// namespaces keep processes' entries apart, entries outlive the process that
// wrote them, and processes creating the table at the same moment all
// succeed. The processes run tests/fixtures/backend_worker.ts.
import assert from "node:assert/strict";
import { DATABASE_URL, dropTable, uniqueTable } from "../_helpers.ts";

const WORKER = new URL("../fixtures/backend_worker.ts", import.meta.url)
  .pathname;

type Step = Record<string, unknown>;
interface Output {
  pid: number;
  results: { ok?: boolean; found?: boolean; value?: unknown }[];
}

function command(table: string, steps: Step[], barrier = false) {
  return new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", WORKER, JSON.stringify(steps)],
    env: {
      DATABASE_URL: DATABASE_URL!,
      TABLE: table,
      BARRIER: barrier ? "1" : "0",
      NO_COLOR: "1",
    },
    stdin: barrier ? "piped" : "null",
    stdout: "piped",
    stderr: "piped",
  });
}

function parse(code: number, stdout: string, stderr: string): Output {
  assert.equal(code, 0, `the worker failed:\n${stderr}`);
  return JSON.parse(stdout.trim().split("\n").at(-1)!) as Output;
}

/** Runs one worker to its end. */
async function run(table: string, steps: Step[]): Promise<Output> {
  const { code, stdout, stderr } = await command(table, steps).output();
  const decoder = new TextDecoder();
  return parse(code, decoder.decode(stdout), decoder.decode(stderr));
}

/**
 * Starts workers that each wait at a barrier; once all of them are waiting,
 * releases them together and collects their outputs.
 */
async function runTogether(table: string, plans: Step[][]): Promise<Output[]> {
  const children = plans.map((steps) => command(table, steps, true).spawn());
  const runs = children.map((child) => {
    let stderr = "";
    let waiting!: () => void;
    const atBarrier = new Promise<void>((resolve) => waiting = resolve);
    const stderrDone = child.stderr.pipeThrough(new TextDecoderStream())
      .pipeTo(
        new WritableStream({
          write(chunk) {
            stderr += chunk;
            if (stderr.includes("waiting")) waiting();
          },
        }),
      );
    const stdoutDone = new Response(child.stdout).text();
    return { child, atBarrier, stderrDone, stdoutDone, stderr: () => stderr };
  });
  // A worker that dies before the barrier must not hang the test.
  const died = Promise.any(runs.map((run) => run.child.status)).then(
    (status) => {
      throw new Error(`a worker exited before the barrier: ${status.code}`);
    },
  );
  died.catch(() => {});
  try {
    await Promise.race([Promise.all(runs.map((run) => run.atBarrier)), died]);
  } catch (error) {
    for (const { child } of runs) {
      try {
        child.kill();
      } catch { /* already exited */ }
    }
    await Promise.allSettled(
      runs.flatMap((run) => [run.child.status, run.stdoutDone, run.stderrDone]),
    );
    await Promise.allSettled(runs.map((run) => run.child.stdin.close()));
    throw new Error(
      `${error}:\n${runs.map((run) => run.stderr()).join("\n")}`,
    );
  }
  // Release everyone at once.
  await Promise.all(runs.map(async ({ child }) => {
    const writer = child.stdin.getWriter();
    await writer.write(new Uint8Array([1]));
    await writer.close();
  }));
  return await Promise.all(runs.map(async (run) => {
    const [status, stdout] = await Promise.all([
      run.child.status,
      run.stdoutDone,
      run.stderrDone,
    ]);
    return parse(status.code, stdout, run.stderr());
  }));
}

Deno.test({
  name:
    "multiprocess: a later process sees a shared namespace's entries, but not another namespace's",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const table = uniqueTable("mp");
    try {
      const a = await run(table, [
        { op: "set", ns: "ns-a", key: "k", value: { from: "A" } },
        { op: "set", ns: "ns-shared", key: "shared", value: ["A", 1] },
      ]);
      assert.deepStrictEqual(a.results, [{ ok: true }, { ok: true }]);
      const b = await run(table, [
        { op: "get", ns: "ns-shared", key: "shared" },
        { op: "get", ns: "ns-b", key: "k" },
        { op: "get", ns: "ns-a", key: "k" },
      ]);
      assert.notEqual(b.pid, a.pid);
      assert.deepStrictEqual(b.results, [
        { found: true, value: ["A", 1] },
        { found: false },
        // The control: A's key is there, in A's namespace.
        { found: true, value: { from: "A" } },
      ]);
    } finally {
      await dropTable(table);
    }
  },
});

Deno.test({
  name:
    "multiprocess: an entry written by a process that closed and exited is read by a new process",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const table = uniqueTable("mp");
    try {
      const value = { user: "Ada", tags: ["x", "y"], n: 1.5, none: null };
      const writer = await run(table, [
        { op: "set", ns: "persist", key: "user:1", value },
      ]);
      assert.deepStrictEqual(writer.results, [{ ok: true }]);
      const reader = await run(table, [
        { op: "get", ns: "persist", key: "user:1" },
        { op: "get", ns: "persist", key: "user:2" },
      ]);
      assert.deepStrictEqual(reader.results, [
        { found: true, value },
        { found: false },
      ]);
    } finally {
      await dropTable(table);
    }
  },
});

Deno.test({
  name:
    "multiprocess: two processes started together on a fresh table both create it and read each other's value",
  ignore: DATABASE_URL === undefined,
  async fn() {
    const table = uniqueTable("mp");
    try {
      const plan = (me: string, peer: string): Step[] => [
        { op: "ready", ns: "ns-shared" },
        { op: "set", ns: "ns-shared", key: me, value: { by: me } },
        { op: "await", ns: "ns-shared", key: peer, timeoutMs: 10_000 },
      ];
      const [one, two] = await runTogether(table, [
        plan("one", "two"),
        plan("two", "one"),
      ]);
      assert.notEqual(one.pid, two.pid);
      assert.deepStrictEqual(one.results, [
        { ok: true },
        { ok: true },
        { found: true, value: { by: "two" } },
      ]);
      assert.deepStrictEqual(two.results, [
        { ok: true },
        { ok: true },
        { found: true, value: { by: "one" } },
      ]);
    } finally {
      await dropTable(table);
    }
  },
});
