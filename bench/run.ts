// `deno task bench`: HTTP load on every configuration, interleaved in one
// run, and backend micro-benchmarks against pgbench on the same table.
// Prints ratios against baselines measured in the same run, and writes
// bench/results/latest.md and bench/results/latest.svg.
//
// Flags: --duration=SECONDS (5) --rounds=N (3) --connections=N (32)
//        --load=auto|wrk|builtin (auto: wrk when installed)
import { parseArgs } from "node:util";
import { PostgresBackend } from "../backends/postgres.ts";

const { values } = parseArgs({
  args: Deno.args,
  options: {
    duration: { type: "string", default: "5" },
    rounds: { type: "string", default: "3" },
    connections: { type: "string", default: "32" },
    load: { type: "string", default: "auto" },
  },
});
const duration = Number(values.duration);
const rounds = Number(values.rounds);
const connections = Number(values.connections);
const databaseUrl = Deno.env.get("DATABASE_URL") ??
  "postgres://postgres@127.0.0.1:5432/test";
const table = `cachekit_bench_${Date.now().toString(36)}`;

interface Config {
  name: string;
  mode: string;
  cost: number;
}

const configs: Config[] = [
  { name: "uncached, no cost (ceiling)", mode: "plain", cost: 0 },
  { name: "uncached, 5 ms cost", mode: "plain", cost: 5 },
  { name: "hono/cache (Deno Cache API)", mode: "hono_cache", cost: 5 },
  { name: "MemoryBackend", mode: "memory", cost: 5 },
  { name: "PostgresBackend", mode: "postgres", cost: 5 },
  { name: "PostgresBackend + local tier", mode: "postgres_local", cost: 5 },
];

interface Sample {
  rps: number;
  p50: number;
  p99: number;
}

function which(command: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${command}`).isFile) return `${dir}/${command}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

function pgbenchPath(): string | undefined {
  const found = which("pgbench");
  if (found) return found;
  try {
    for (const version of Deno.readDirSync("/usr/lib/postgresql")) {
      const path = `/usr/lib/postgresql/${version.name}/bin/pgbench`;
      try {
        Deno.statSync(path);
        return path;
      } catch {
        // not this version
      }
    }
  } catch {
    // no PostgreSQL packages
  }
  return undefined;
}

async function startServer(config: Config) {
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "-A", new URL("./server.ts", import.meta.url).pathname],
    env: {
      MODE: config.mode,
      COST_MS: String(config.cost),
      DATABASE_URL: databaseUrl,
      TABLE: table,
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
    port,
    async stop() {
      await child.stdin.close();
      await child.stdout.cancel().catch(() => {});
      await child.status;
    },
  };
}

function toMs(value: string): number {
  const match = value.match(/^([\d.]+)(us|ms|s)$/);
  if (!match) return NaN;
  const n = Number(match[1]);
  return match[2] === "us" ? n / 1000 : match[2] === "s" ? n * 1000 : n;
}

async function wrk(url: string): Promise<Sample> {
  const out = await new Deno.Command("wrk", {
    args: [
      "-t2",
      `-c${connections}`,
      `-d${duration}s`,
      "--latency",
      url,
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  const text = new TextDecoder().decode(out.stdout);
  const rps = Number(text.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
  const p50 = toMs(text.match(/\s50%\s+(\S+)/)?.[1] ?? "");
  const p99 = toMs(text.match(/\s99%\s+(\S+)/)?.[1] ?? "");
  const errors = text.match(/Non-2xx or 3xx responses: (\d+)/)?.[1];
  if (errors) throw new Error(`${url}: ${errors} non-2xx responses`);
  return { rps, p50, p99 };
}

/** A load generator of our own, for machines without wrk. */
async function builtinLoad(url: string): Promise<Sample> {
  const { ops, p50, p99 } = await timeOps(connections, duration, async () => {
    const res = await fetch(url);
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${url}: ${res.status}`);
  });
  return { rps: ops, p50, p99 };
}

function median(numbers: number[]): number {
  const sorted = [...numbers].sort((a, b) => a - b);
  return sorted[Math.floor(sorted.length / 2)];
}

async function timeOps(
  callers: number,
  seconds: number,
  op: (i: number) => Promise<unknown>,
): Promise<{ ops: number; p50: number; p99: number }> {
  const latencies: number[] = [];
  const end = performance.now() + seconds * 1000;
  let n = 0;
  await Promise.all(
    Array.from({ length: callers }, async () => {
      while (performance.now() < end) {
        const start = performance.now();
        await op(n++);
        latencies.push(performance.now() - start);
      }
    }),
  );
  latencies.sort((a, b) => a - b);
  return {
    ops: latencies.length / seconds,
    p50: latencies[Math.floor(latencies.length * 0.5)],
    p99: latencies[Math.floor(latencies.length * 0.99)],
  };
}

async function pgbench(
  clients: number,
  seconds: number,
): Promise<number | undefined> {
  const path = pgbenchPath();
  if (!path) return undefined;
  const script = await Deno.makeTempFile({ suffix: ".sql" });
  // The same point SELECT the backend's read sends, on the same table.
  await Deno.writeTextFile(
    script,
    `\\set k random(0, 999)
SELECT kind, value, meta, etag FROM "${table}" WHERE namespace = 'bench-micro' AND key = 'k' || :k AND stale_until > now();
`,
  );
  const url = new URL(databaseUrl);
  const out = await new Deno.Command(path, {
    args: [
      "-n",
      "-M",
      "prepared",
      "-c",
      String(clients),
      "-j",
      String(Math.min(clients, 2)),
      "-T",
      String(seconds),
      "-f",
      script,
      "-h",
      url.hostname,
      "-p",
      url.port || "5432",
      "-U",
      decodeURIComponent(url.username || "postgres"),
      url.pathname.slice(1) || "postgres",
    ],
    stdout: "piped",
    stderr: "piped",
  }).output();
  await Deno.remove(script);
  const text = new TextDecoder().decode(out.stdout);
  const tps = text.match(/tps = ([\d.]+) \(without initial connection time\)/)
    ?.[1];
  return tps ? Number(tps) : undefined;
}

function fmt(n: number, digits = 0): string {
  return Number.isFinite(n)
    ? n.toLocaleString("en-US", {
      maximumFractionDigits: digits,
      minimumFractionDigits: digits,
    })
    : "n/a";
}

function svgChart(
  rows: { name: string; value: number }[],
  title: string,
): string {
  const width = 760;
  const barArea = 420;
  const rowHeight = 28;
  const max = Math.max(...rows.map((row) => row.value));
  const height = 50 + rows.length * rowHeight;
  const bars = rows.map((row, i) => {
    const y = 40 + i * rowHeight;
    const w = Math.max(1, (row.value / max) * barArea);
    return `<text x="10" y="${y + 17}" font-size="13">${
      escapeXml(row.name)
    }</text>
<rect x="250" y="${y + 4}" width="${w.toFixed(1)}" height="18" fill="#3b82f6"/>
<text x="${(256 + w).toFixed(1)}" y="${y + 17}" font-size="12">${
      fmt(row.value)
    }</text>`;
  }).join("\n");
  return `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" font-family="sans-serif">
<rect width="100%" height="100%" fill="white"/>
<text x="10" y="24" font-size="15" font-weight="bold">${escapeXml(title)}</text>
${bars}
</svg>
`;
}

function escapeXml(text: string): string {
  return text.replaceAll("&", "&amp;").replaceAll("<", "&lt;").replaceAll(
    ">",
    "&gt;",
  );
}

// ---- HTTP load ----
const useWrk = values.load === "wrk" ||
  (values.load === "auto" && which("wrk") !== undefined);
console.log(
  `HTTP load: ${configs.length} configurations, ${rounds} interleaved rounds of ${duration} s, ${connections} connections, ${
    useWrk ? "wrk" : "built-in load generator"
  }`,
);
const servers = [];
for (const config of configs) servers.push(await startServer(config));
const samples = new Map<string, Sample[]>(configs.map((c) => [c.name, []]));
try {
  for (let round = 1; round <= rounds; round++) {
    for (const [i, config] of configs.entries()) {
      const url = `http://127.0.0.1:${servers[i].port}/data`;
      const sample = useWrk ? await wrk(url) : await builtinLoad(url);
      samples.get(config.name)!.push(sample);
      console.log(
        `  round ${round}: ${config.name}: ${fmt(sample.rps)} req/s, p50 ${
          fmt(sample.p50, 2)
        } ms, p99 ${fmt(sample.p99, 2)} ms`,
      );
    }
  }
} finally {
  for (const server of servers) await server.stop();
}
const http = configs.map((config) => {
  const list = samples.get(config.name)!;
  return {
    name: config.name,
    rps: median(list.map((s) => s.rps)),
    p50: median(list.map((s) => s.p50)),
    p99: median(list.map((s) => s.p99)),
  };
});
const ceiling = http[0].rps;
const honoCacheRps = http[2].rps;

// ---- Backend micro-benchmarks ----
console.log("Backend micro-benchmarks against the real server");
const micro: {
  name: string;
  ops: number;
  p50: number;
  p99: number;
  baseline?: number;
}[] = [];
const backend = new PostgresBackend({
  dsn: databaseUrl,
  table,
  namespace: "bench-micro",
  maxSize: 10,
  sweepInterval: 0,
});
try {
  await backend.ready();
  const value = new Uint8Array(1024).fill(7);
  for (let i = 0; i < 1000; i++) {
    await backend.set(`k${i}`, value, { expire: 3600 });
  }
  const seconds = Math.max(2, Math.min(duration, 5));
  const pg1 = await pgbench(1, seconds);
  const pg32 = await pgbench(32, seconds);
  for (const callers of [1, 32]) {
    const get = await timeOps(
      callers,
      seconds,
      (i) => backend.get(`k${i % 1000}`),
    );
    micro.push({
      name: `get, ${callers} caller${callers > 1 ? "s" : ""}`,
      ...get,
      baseline: callers === 1 ? pg1 : pg32,
    });
    const set = await timeOps(
      callers,
      seconds,
      (i) => backend.set(`s${i % 1000}`, value, { expire: 3600 }),
    );
    micro.push({
      name: `set, ${callers} caller${callers > 1 ? "s" : ""}`,
      ...set,
    });
  }
  if (pg1 !== undefined) {
    micro.push({
      name: "pgbench -M prepared point SELECT, 1 client",
      ops: pg1,
      p50: NaN,
      p99: NaN,
    });
  }
  if (pg32 !== undefined) {
    micro.push({
      name: "pgbench -M prepared point SELECT, 32 clients",
      ops: pg32,
      p50: NaN,
      p99: NaN,
    });
  }
  await backend.clearTable();
} finally {
  await backend.close();
  const { default: postgres } = await import("postgres");
  const sql = postgres(databaseUrl, { onnotice: () => {} });
  await sql.unsafe(`DROP TABLE IF EXISTS "${table}", "${table}_epochs"`);
  await sql.unsafe(
    `DROP FUNCTION IF EXISTS "${table}_evict"(text, bigint, bigint, integer, bigint, bigint)`,
  );
  await sql.unsafe(
    `DROP FUNCTION IF EXISTS "${table}_purge"(text, text, text[])`,
  );
  await sql.end();
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
lines.push(`# Benchmark results`);
lines.push("");
lines.push(
  `Measured ${
    new Date().toISOString().slice(0, 10)
  } with \`deno task bench\` (Deno ${Deno.version.deno}, ${navigator.hardwareConcurrency} cores${
    cpu ? `, ${cpu}` : ""
  }; PostgreSQL on loopback). HTTP: ${
    useWrk ? "wrk" : "built-in load generator"
  }, ${connections} connections, ${rounds} interleaved rounds of ${duration} s, medians. The load generator, the server and PostgreSQL share the machine.`,
);
lines.push("");
lines.push("## HTTP, cache hits (the handler costs 5 ms when it runs)");
lines.push("");
lines.push(
  "| configuration | req/s | p50 ms | p99 ms | × ceiling | × hono/cache |",
);
lines.push("|---|---:|---:|---:|---:|---:|");
for (const row of http) {
  lines.push(
    `| ${row.name} | ${fmt(row.rps)} | ${fmt(row.p50, 2)} | ${
      fmt(row.p99, 2)
    } | ${fmt(row.rps / ceiling, 2)} | ${fmt(row.rps / honoCacheRps, 2)} |`,
  );
}
lines.push("");
lines.push("![HTTP requests per second](latest.svg)");
lines.push("");
lines.push("## Backend, 1 KiB values, real server");
lines.push("");
lines.push("| operation | ops/s | p50 ms | p99 ms | × pgbench |");
lines.push("|---|---:|---:|---:|---:|");
for (const row of micro) {
  lines.push(
    `| ${row.name} | ${fmt(row.ops)} | ${fmt(row.p50, 3)} | ${
      fmt(row.p99, 3)
    } | ${row.baseline ? fmt(row.ops / row.baseline, 2) : ""} |`,
  );
}
lines.push("");
const report = lines.join("\n");
const dir = new URL("./results/", import.meta.url);
await Deno.mkdir(dir, { recursive: true });
await Deno.writeTextFile(new URL("latest.md", dir), report);
await Deno.writeTextFile(
  new URL("latest.svg", dir),
  svgChart(
    http.map((row) => ({ name: row.name, value: row.rps })),
    "HTTP requests per second (higher is better)",
  ),
);
console.log("\n" + report);
console.log("Wrote bench/results/latest.md and bench/results/latest.svg");
