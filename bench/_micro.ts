// Backend micro-benchmarks on the real server: get and set from 1 and 32
// callers, against pgbench's prepared point SELECT on the same table.
import { PostgresBackend } from "../backends/postgres.ts";
import { timeOps, which } from "./_load.ts";

/** One operation's rate and latencies; `baseline` is pgbench's rate. */
export interface MicroRow {
  name: string;
  ops: number;
  p50: number;
  p99: number;
  baseline?: number;
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

/** pgbench's transactions per second, or `undefined` without pgbench. */
async function pgbench(
  databaseUrl: string,
  table: string,
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

/** Runs the micro-benchmarks for `seconds` each, on `table`. */
export async function micro(
  databaseUrl: string,
  table: string,
  seconds: number,
): Promise<MicroRow[]> {
  const rows: MicroRow[] = [];
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
    await Promise.all(
      Array.from(
        { length: 1000 },
        (_, i) => backend.set(`k${i}`, value, { expire: 3600 }),
      ),
    );
    const pg1 = await pgbench(databaseUrl, table, 1, seconds);
    const pg32 = await pgbench(databaseUrl, table, 32, seconds);
    for (const callers of [1, 32]) {
      const plural = callers > 1 ? "s" : "";
      const get = await timeOps(
        callers,
        seconds,
        (i) => backend.get(`k${i % 1000}`),
      );
      rows.push({
        name: `get, ${callers} caller${plural}`,
        ...get,
        baseline: callers === 1 ? pg1 : pg32,
      });
      const set = await timeOps(
        callers,
        seconds,
        (i) => backend.set(`s${i % 1000}`, value, { expire: 3600 }),
      );
      rows.push({ name: `set, ${callers} caller${plural}`, ...set });
    }
    for (const [clients, tps] of [[1, pg1], [32, pg32]] as const) {
      if (tps === undefined) continue;
      rows.push({
        name: `pgbench -M prepared point SELECT, ${clients} client${
          clients > 1 ? "s" : ""
        }`,
        ops: tps,
        p50: NaN,
        p99: NaN,
      });
    }
  } finally {
    await backend.close();
  }
  return rows;
}
