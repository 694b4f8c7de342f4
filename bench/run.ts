// `deno task bench`: the goals of issue 14, each a ratio measured side by
// side in one run. HTTP load on every configuration (interleaved rounds, one
// server process each), for a hit workload and an all-miss workload; round
// trips of a miss counted on the wire; backend micro-benchmarks against
// pgbench on the same table. Prints each ratio against its goal, with p50
// and p99 beside every throughput, and writes bench/results/latest.md and
// bench/results/latest.svg.
//
// Needs PostgreSQL (DATABASE_URL) and Redis (REDIS_URL, 127.0.0.1:6379 by
// default; its modes are left out when it does not answer); uses wrk and
// pgbench when installed. CROSS_PROCESS_LOCK=0 in the environment turns the
// cross-process lock off in every server, to measure what it costs.
//
// Flags: --duration=SECONDS (5) --rounds=N (3) --connections=N (32)
//        --load=auto|wrk|builtin (auto: wrk when installed)
//        --only=hits,misses,trips,micro (all four)
//        --configs=MODE,... (every mode; see bench/server.ts)
//        --out=DIR (bench/results/; a subset run writes nothing unless set)
import { resolve } from "node:path";
import { pathToFileURL as toFileUrl } from "node:url";
import { parseArgs } from "node:util";
import { load, type Sample, which, type Workload } from "./_load.ts";
import { micro, type MicroRow } from "./_micro.ts";
import {
  type BarSection,
  fmt,
  type Goal,
  goalLine,
  goalsTable,
  MARGIN,
  svgChart,
} from "./_report.ts";
import { measureTrips, type Trips } from "./_trips.ts";
import { dropTableSql } from "../tests/_helpers.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    duration: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    connections: { type: "string", default: "32" },
    load: { type: "string", default: "auto" },
    only: { type: "string", default: "hits,misses,trips,micro" },
    configs: { type: "string" },
    out: { type: "string" },
  },
});
const duration = Number(values.duration);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const only = new Set(values.only.split(","));
const chosen = values.configs ? new Set(values.configs.split(",")) : undefined;
const fullRun = !values.configs &&
  ["hits", "misses", "trips", "micro"].every((part) => only.has(part));
const databaseUrl = Deno.env.get("DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/test";
const redisUrl = Deno.env.get("REDIS_URL") ?? "redis://127.0.0.1:6379";
const table = `cachekit_bench_${Date.now().toString(36)}`;
const useWrk = values.load === "wrk" ||
  (values.load === "auto" && which("wrk") !== undefined);

interface Config {
  name: string;
  mode: string;
}

/** The configurations of each workload; the first is the uncached ceiling. */
const HIT_CONFIGS: Config[] = [
  { name: "uncached trivial handler", mode: "plain" },
  { name: "hono/cache (Deno Cache API)", mode: "hono_cache" },
  { name: "MemoryBackend", mode: "memory" },
  { name: "Redis, naive (ioredis defaults)", mode: "redis_naive" },
  { name: "Redis, tuned (auto-pipelining)", mode: "redis_tuned" },
  { name: "PostgresBackend", mode: "postgres" },
  { name: "PostgresBackend + localCache", mode: "postgres_local" },
];
const MISS_CONFIGS = HIT_CONFIGS.filter((c) => c.mode !== "hono_cache");
/** Items the hit workload asks for, all stored before the load. */
const HIT_KEYS = 1000;

interface Row extends Sample {
  name: string;
  mode: string;
  counters?: Record<string, unknown>;
}

async function startServer(config: Config, warm: number) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./server.ts", import.meta.url).pathname],
    env: {
      MODE: config.mode,
      DATABASE_URL: databaseUrl,
      REDIS_URL: redisUrl,
      TABLE: table,
      NAMESPACE: `bench-${config.mode}-${warm > 0 ? "hits" : "misses"}`,
      WARM: String(warm),
      CROSS_PROCESS_LOCK: Deno.env.get("CROSS_PROCESS_LOCK") ?? "1",
    },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const reader = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`The ${config.name} server exited`);
    text += value;
  }
  reader.releaseLock();
  const port = JSON.parse(text.split("\n")[0]).port as number;
  return {
    base: `http://127.0.0.1:${port}`,
    async counters(): Promise<Record<string, unknown>> {
      return await (await fetch(`http://127.0.0.1:${port}/__stats`)).json();
    },
    async stop() {
      await child.stdin.close();
      await child.stdout.cancel().catch(() => {});
      await child.status;
    },
  };
}

function median(numbers: number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

/** Whether Redis answers at `redisUrl`: without it, its modes are left out. */
async function redisReachable(): Promise<boolean> {
  const url = new URL(redisUrl);
  try {
    const conn = await Deno.connect({
      hostname: url.hostname,
      port: Number(url.port || 6379),
    });
    conn.close();
    return true;
  } catch {
    return false;
  }
}
const withRedis = await redisReachable();
if (!withRedis) {
  console.log(
    `Redis is not reachable at ${redisUrl}: its configurations are left out, and goals 1 and 5 cannot be measured`,
  );
}

/** Every configuration of `workload`, in interleaved rounds; medians. */
async function runWorkload(
  label: string,
  configs: Config[],
  workload: Workload,
): Promise<Row[]> {
  const list = configs.filter((c) =>
    (!chosen || chosen.has(c.mode)) &&
    (withRedis || !c.mode.startsWith("redis"))
  );
  if (list.length === 0) return [];
  console.log(
    `${label}: ${list.length} configurations, ${rounds} interleaved rounds of ${duration} s, ${connections} connections, ${
      useWrk ? "wrk" : "built-in load generator"
    }`,
  );
  const warm = workload.kind === "hits" ? workload.keys : 0;
  const servers = [];
  const samples = list.map(() => [] as Sample[]);
  const counters: Record<string, unknown>[] = [];
  try {
    for (const config of list) servers.push(await startServer(config, warm));
    for (let round = 1; round <= rounds; round++) {
      for (const [i, config] of list.entries()) {
        const sample = await load(servers[i].base, workload, {
          connections,
          seconds: duration,
          wrk: useWrk,
        });
        samples[i].push(sample);
        console.log(
          `  round ${round}: ${config.name}: ${fmt(sample.rps)} req/s, p50 ${
            fmt(sample.p50, 2)
          } ms, p99 ${fmt(sample.p99, 2)} ms`,
        );
      }
    }
    for (const server of servers) counters.push(await server.counters());
  } finally {
    for (const server of servers) await server.stop();
  }
  return list.map((config, i) => ({
    name: config.name,
    mode: config.mode,
    rps: median(samples[i].map((s) => s.rps)),
    p50: median(samples[i].map((s) => s.p50)),
    p99: median(samples[i].map((s) => s.p99)),
    counters: counters[i],
  }));
}

async function dropBenchTable(): Promise<void> {
  const { default: postgres } = await import("postgres");
  const sql = postgres(databaseUrl, { onnotice: () => {} });
  try {
    await sql.unsafe(dropTableSql(table));
  } finally {
    await sql.end();
  }
}

let hits: Row[] = [];
let misses: Row[] = [];
let trips: Trips[] = [];
let microRows: MicroRow[] = [];
const started = performance.now();
try {
  if (only.has("hits")) {
    hits = await runWorkload(
      `Hits (${HIT_KEYS} stored items, random)`,
      HIT_CONFIGS,
      { kind: "hits", keys: HIT_KEYS },
    );
  }
  if (only.has("misses")) {
    misses = await runWorkload(
      "Misses (every request a new item)",
      MISS_CONFIGS,
      { kind: "misses" },
    );
  }
  if (only.has("trips")) {
    console.log("Round trips of a miss, counted on the wire");
    trips = await measureTrips(databaseUrl, table);
  }
  if (only.has("micro")) {
    console.log("Backend micro-benchmarks against the real server");
    microRows = await micro(
      databaseUrl,
      table,
      Math.max(2, Math.min(duration, 5)),
    );
  }
} finally {
  await dropBenchTable();
}
const elapsed = (performance.now() - started) / 1000;

// ---- Goals ----
const rpsOf = (rows: Row[], mode: string) =>
  rows.find((row) => row.mode === mode)?.rps ?? NaN;
const ratio = (rows: Row[], mode: string, baseline: string) => ({
  value: rpsOf(rows, mode) / rpsOf(rows, baseline),
  from: `${fmt(rpsOf(rows, mode))} / ${fmt(rpsOf(rows, baseline))} req/s`,
});
const get32 = microRows.find((row) => row.name === "get, 32 callers");
const goals: Goal[] = [];
if (hits.length > 0) {
  goals.push(
    {
      id: "1a",
      text: "hits, no local tier, × naive Redis",
      target: 1.2,
      ...ratio(hits, "postgres", "redis_naive"),
    },
    {
      id: "1b",
      text: "hits, no local tier, × tuned Redis",
      target: 1.0,
      ...ratio(hits, "postgres", "redis_tuned"),
    },
    {
      id: "2",
      text: "hits with localCache, × uncached trivial handler",
      target: 0.9,
      ...ratio(hits, "postgres_local", "plain"),
    },
  );
}
if (microRows.length > 0) {
  goals.push({
    id: "3",
    text: "backend get, 32 callers, × pgbench prepared SELECT",
    target: 1.0,
    value: get32?.baseline ? get32.ops / get32.baseline : NaN,
    from: `${fmt(get32?.ops)} / ${fmt(get32?.baseline)} ops/s`,
  });
}
for (const [i, row] of trips.entries()) {
  goals.push({
    id: `4${"ab"[i]}`,
    text: `round trips a miss adds before the handler, ${row.name}`,
    target: 1,
    atMost: true,
    value: row.missBeforeHandler,
    from: `mean of sequential misses, lock on; ${
      fmt(row.missTotal, 2)
    } in all per miss`,
  });
}
if (misses.length > 0) {
  goals.push(
    {
      id: "5a",
      text: "all misses, × naive Redis",
      target: 0.5,
      ...ratio(misses, "postgres", "redis_naive"),
    },
    {
      id: "5b",
      text: "all misses with localCache, × naive Redis",
      target: 0.5,
      ...ratio(misses, "postgres_local", "redis_naive"),
    },
  );
}

// ---- Report ----
const cpu = (() => {
  try {
    return Deno.readTextFileSync("/proc/cpuinfo").match(/model name\s*:\s*(.*)/)
      ?.[1];
  } catch {
    return undefined;
  }
})();
const lines: string[] = [];
lines.push(`# Benchmark results`, "");
lines.push(
  `Measured ${
    new Date().toISOString().slice(0, 10)
  } with \`deno task bench\` in ${
    fmt(elapsed)
  } s (Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores${
    cpu ? `, ${cpu}` : ""
  }; PostgreSQL and Redis on loopback). HTTP: ${
    useWrk ? "wrk" : "built-in load generator"
  }, ${connections} connections, ${rounds} interleaved rounds of ${duration} s per configuration, medians. The load generator, the servers, PostgreSQL and Redis share the machine. Every cache runs through the same \`cached()\` middleware (the Redis caches are a \`CacheBackend\` on ioredis), so keys and body encoding are the same; the handler answers 1 KiB of text.`,
  "",
);
lines.push(
  `## Goals (issue 14)`,
  "",
  `A ratio counts as met within ${MARGIN * 100}% of its target.`,
  "",
  ...goalsTable(goals),
  "",
  "![Goals and throughput](latest.svg)",
  "",
);
const ratioColumns = (rows: Row[], row: Row) =>
  `${fmt(row.rps / rpsOf(rows, "plain"), 2)} | ${
    fmt(row.rps / rpsOf(rows, "redis_naive"), 2)
  }`;
const counterText = (row: Row) => {
  const c = row.counters ?? {};
  const parts = [];
  if (typeof c.statements === "number") {
    parts.push(`${fmt(c.statements)} statements`);
  }
  if (typeof c.droppedWrites === "number" && c.droppedWrites > 0) {
    parts.push(`${fmt(c.droppedWrites)} writes dropped`);
  }
  if (typeof c.errors === "number" && c.errors > 0) {
    parts.push(`${fmt(c.errors)} errors reported`);
  }
  return parts.join(", ");
};
for (
  const [title, rows] of [
    [`HTTP, hits (${HIT_KEYS} stored items, chosen at random)`, hits],
    [
      "HTTP, misses (every request a new item; the write follows the answer)",
      misses,
    ],
  ] as const
) {
  if (rows.length === 0) continue;
  lines.push(`## ${title}`, "");
  lines.push(
    "| configuration | req/s | p50 ms | p99 ms | × uncached | × naive Redis | counters |",
    "|---|---:|---:|---:|---:|---:|---|",
  );
  for (const row of rows) {
    lines.push(
      `| ${row.name} | ${fmt(row.rps)} | ${fmt(row.p50, 2)} | ${
        fmt(row.p99, 2)
      } | ${ratioColumns(rows, row)} | ${counterText(row)} |`,
    );
  }
  lines.push("");
}
if (trips.length > 0) {
  lines.push(
    "## Round trips to PostgreSQL, counted on the wire",
    "",
    "Sequential requests through a counting proxy, `crossProcessLock` on, `wait: true`. Statements pipelined together count once.",
    "",
    "| configuration | miss, before the handler | miss, in all | hit (read before) |",
    "|---|---:|---:|---:|",
  );
  for (const row of trips) {
    lines.push(
      `| ${row.name} | ${fmt(row.missBeforeHandler, 2)} | ${
        fmt(row.missTotal, 2)
      } | ${fmt(row.hit, 2)} |`,
    );
  }
  lines.push("");
}
if (microRows.length > 0) {
  lines.push(
    "## Backend, 1 KiB values, real server",
    "",
    "| operation | ops/s | p50 ms | p99 ms | × pgbench |",
    "|---|---:|---:|---:|---:|",
  );
  for (const row of microRows) {
    lines.push(
      `| ${row.name} | ${fmt(row.ops)} | ${fmt(row.p50, 3)} | ${
        fmt(row.p99, 3)
      } | ${row.baseline ? fmt(row.ops / row.baseline, 2) : ""} |`,
    );
  }
  lines.push("");
}
const report = lines.join("\n");
console.log("\n" + report);
console.log("Goals:");
for (const goal of goals) console.log("  " + goalLine(goal));
const sections: BarSection[] = [];
const bars = (rows: Row[]) =>
  rows.map((row) => ({
    name: row.name,
    value: row.rps,
    label: `${fmt(row.rps)} req/s, p50 ${fmt(row.p50, 2)} / p99 ${
      fmt(row.p99, 2)
    } ms`,
  }));
if (hits.length > 0) {
  sections.push({ title: "Hits, requests per second", rows: bars(hits) });
}
if (misses.length > 0) {
  sections.push({ title: "Misses, requests per second", rows: bars(misses) });
}
const out = values.out ?? (fullRun ? "results/" : undefined);
if (out) {
  const dir = values.out
    ? toFileUrl(resolve(values.out) + "/")
    : new URL(out, import.meta.url);
  await Deno.mkdir(dir, { recursive: true });
  await Deno.writeTextFile(new URL("latest.md", dir), report);
  await Deno.writeTextFile(
    new URL("latest.svg", dir),
    svgChart(goals, sections),
  );
  console.log(`Wrote ${new URL("latest.md", dir).pathname} and latest.svg`);
} else {
  console.log("A subset run: nothing written (pass --out=DIR to keep it)");
}
