// `deno run -A bench/profile.ts`: a CPU profile of one benchmark server under
// load, through the V8 inspector, summarised to text: self time by function
// and by module, and time inside each of our modules (inclusive).
//
// Flags: --mode=postgres (see bench/server.ts) --workload=hits|misses
//        --duration=SECONDS (5) --connections=N (32)
//        --load=auto|wrk|builtin --out=FILE (print only when absent)
//        --raw=FILE (the .cpuprofile too, for Chrome DevTools)
import { parseArgs } from "node:util";
import { load, which } from "./_load.ts";
import { dropTableSql } from "../tests/_helpers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    mode: { type: "string", default: "postgres" },
    workload: { type: "string", default: "hits" },
    duration: { type: "string", default: "5" },
    connections: { type: "string", default: "32" },
    load: { type: "string", default: "auto" },
    out: { type: "string" },
    raw: { type: "string" },
  },
});
const databaseUrl = Deno.env.get("DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/test";
const table = `cachekit_prof_${Date.now().toString(36)}`;
const hitKeys = 1000;
const useWrk = values.load === "wrk" ||
  (values.load === "auto" && which("wrk") !== undefined);

interface ProfileNode {
  id: number;
  callFrame: {
    functionName: string;
    url: string;
    lineNumber: number;
  };
  children?: number[];
}

interface Profile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
  startTime: number;
  endTime: number;
}

/** A minimal inspector client: one request at a time. */
async function inspector(url: string) {
  const socket = new WebSocket(url);
  await new Promise((resolve, reject) => {
    socket.onopen = resolve;
    socket.onerror = reject;
  });
  let id = 0;
  const waiting = new Map<number, (result: unknown) => void>();
  socket.onmessage = (event) => {
    const message = JSON.parse(event.data);
    if (message.id !== undefined) waiting.get(message.id)?.(message.result);
  };
  return {
    send<T>(method: string, params: Record<string, unknown> = {}): Promise<T> {
      const n = ++id;
      return new Promise<T>((resolve) => {
        waiting.set(n, (result) => resolve(result as T));
        socket.send(JSON.stringify({ id: n, method, params }));
      });
    },
    close: () => socket.close(),
  };
}

const inspectPort = (() => {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (listener.addr as Deno.NetAddr).port;
  listener.close();
  return port;
})();
const child = new Deno.Command(Deno.execPath(), {
  args: [
    "run",
    "-A",
    `--inspect=127.0.0.1:${inspectPort}`,
    new URL("./server.ts", import.meta.url).pathname,
  ],
  env: {
    MODE: values.mode,
    DATABASE_URL: databaseUrl,
    TABLE: table,
    NAMESPACE: `prof-${values.mode}`,
    WARM: String(values.workload === "hits" ? hitKeys : 0),
    CROSS_PROCESS_LOCK: Deno.env.get("CROSS_PROCESS_LOCK") ?? "1",
  },
  stdin: "piped",
  stdout: "piped",
  stderr: "piped",
}).spawn();
void child.stderr.pipeTo(new WritableStream()).catch(() => {});
const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
let text = "";
while (!text.includes("\n")) {
  const { value, done } = await reader.read();
  if (done) throw new Error("The server exited");
  text += value;
}
reader.releaseLock();
const port = JSON.parse(text.split("\n")[0]).port as number;
const targets = await (await fetch(`http://127.0.0.1:${inspectPort}/json`))
  .json() as { webSocketDebuggerUrl: string }[];
const client = await inspector(targets[0].webSocketDebuggerUrl);
await client.send("Profiler.enable");
await client.send("Profiler.setSamplingInterval", { interval: 200 });
await client.send("Profiler.start");
const sample = await load(
  `http://127.0.0.1:${port}`,
  values.workload === "hits"
    ? { kind: "hits", keys: hitKeys }
    : { kind: "misses" },
  {
    connections: Number(values.connections),
    seconds: Number(values.duration),
    wrk: useWrk,
  },
);
const { profile } = await client.send<{ profile: Profile }>("Profiler.stop");
const counters = await (await fetch(`http://127.0.0.1:${port}/__stats`))
  .json();
client.close();
await child.stdin.close();
await child.stdout.cancel().catch(() => {});
await child.status;
await dropTable();
if (values.raw) await Deno.writeTextFile(values.raw, JSON.stringify(profile));

// ---- Summary ----
const byId = new Map(profile.nodes.map((node) => [node.id, node]));
const parent = new Map<number, number>();
for (const node of profile.nodes) {
  for (const child of node.children ?? []) parent.set(child, node.id);
}
const selfUs = new Map<number, number>();
for (const [i, id] of profile.samples.entries()) {
  selfUs.set(id, (selfUs.get(id) ?? 0) + (profile.timeDeltas[i] ?? 0));
}
const total = [...selfUs.values()].reduce((a, b) => a + b, 0);
const root = new URL("../", import.meta.url).href;

function moduleOf(url: string): string {
  if (url === "") return "(native / V8)";
  if (url.startsWith(root)) return url.slice(root.length);
  const npm = url.match(/registry\.npmjs\.org\/([^/]+(?:\/[^/]+)?)\/[\d.]+/);
  if (npm) return `npm:${npm[1].replace(/\/[\d.]+$/, "")}`;
  if (url.startsWith("ext:")) return url.split("/").slice(0, 2).join("/");
  return url.replace(/^.*\//, "");
}

const selfByFunction = new Map<string, number>();
const selfByModule = new Map<string, number>();
const inclusiveByModule = new Map<string, number>();
for (const [id, us] of selfUs) {
  const node = byId.get(id)!;
  const { functionName, url, lineNumber } = node.callFrame;
  const module = moduleOf(url);
  const name = `${functionName || "(anonymous)"} ${module}${
    url ? `:${lineNumber + 1}` : ""
  }`;
  selfByFunction.set(name, (selfByFunction.get(name) ?? 0) + us);
  selfByModule.set(module, (selfByModule.get(module) ?? 0) + us);
  // Inclusive: each of our modules on the stack once.
  const seen = new Set<string>();
  for (let at: number | undefined = id; at !== undefined; at = parent.get(at)) {
    const m = moduleOf(byId.get(at)!.callFrame.url);
    if (!m.includes("/") || m.startsWith("npm:") || seen.has(m)) continue;
    seen.add(m);
    inclusiveByModule.set(m, (inclusiveByModule.get(m) ?? 0) + us);
  }
}

const pct = (us: number) => `${(100 * us / total).toFixed(1).padStart(5)}%`;
const top = (map: Map<string, number>, n: number) =>
  [...map].sort((a, b) => b[1] - a[1]).slice(0, n)
    .map(([name, us]) => `  ${pct(us)}  ${name}`);
const idle = selfByFunction.get("(idle) (native / V8)") ?? 0;
const lines = [
  `CPU profile of bench/server.ts MODE=${values.mode}, ${values.workload}, ${values.duration} s, ${values.connections} connections (${
    useWrk ? "wrk" : "built-in load"
  })`,
  `Throughput while profiled: ${Math.round(sample.rps)} req/s, p50 ${
    sample.p50.toFixed(2)
  } ms, p99 ${sample.p99.toFixed(2)} ms; counters ${JSON.stringify(counters)}`,
  `Samples: ${profile.samples.length} over ${
    (total / 1e6).toFixed(2)
  } s; idle ${
    pct(idle)
  } (the process waiting: on PostgreSQL, Redis or the network)`,
  "",
  "Self time by module:",
  ...top(selfByModule, 25),
  "",
  "Time inside our modules (inclusive of what they call):",
  ...top(inclusiveByModule, 25),
  "",
  "Self time by function (top 40):",
  ...top(selfByFunction, 40),
  "",
];
const summary = lines.join("\n");
if (values.out) await Deno.writeTextFile(values.out, summary);
console.log(summary);

async function dropTable(): Promise<void> {
  const { default: postgres } = await import("postgres");
  const sql = postgres(databaseUrl, { onnotice: () => {} });
  try {
    await sql.unsafe(dropTableSql(table));
  } finally {
    await sql.end();
  }
}
