// Hits per second through cached(), for the benches that compare backends
// in one process (bench/pooler.ts, bench/sharded.ts): the flags, the load,
// rounds interleaved so that no configuration is favoured, and the medians.
import { parseArgs } from "node:util";
import { Hono } from "hono";
import type { CacheBackend } from "../backends/types.ts";
import { cached } from "../middleware/cached.ts";

/** How long, how often and how hard each configuration is loaded. */
export interface HitLoad {
  durationMs: number;
  rounds: number;
  concurrency: number;
}

/** The flags `--duration=3 --rounds=3 --concurrency=64`. */
export function hitLoad(): HitLoad {
  const { values } = parseArgs({
    args: Deno.args,
    options: {
      duration: { type: "string", default: "3" },
      rounds: { type: "string", default: "3" },
      concurrency: { type: "string", default: "64" },
    },
  });
  return {
    durationMs: Number(values.duration) * 1000,
    rounds: Number(values.rounds),
    concurrency: Number(values.concurrency),
  };
}

const PATHS = Array.from({ length: 1000 }, (_, i) => `/items/${i}`);

/** Hits per second of `backend` through cached(), over `load.durationMs`. */
export async function hitsPerSecond(
  backend: CacheBackend,
  load: HitLoad,
): Promise<number> {
  const app = new Hono();
  app.get(
    "/items/:id",
    cached({ backend, expire: 3600 }),
    (c) => c.json({ id: c.req.param("id"), padding: "x".repeat(512) }),
  );
  for (const path of PATHS) await app.request(path); // warm: every path stored
  let hits = 0;
  let others = 0;
  const end = performance.now() + load.durationMs;
  const started = performance.now();
  const { concurrency } = load;
  await Promise.all(Array.from({ length: concurrency }, async (_, worker) => {
    for (let i = worker; performance.now() < end; i += concurrency) {
      const res = await app.request(PATHS[i % PATHS.length]);
      await res.arrayBuffer();
      if (res.headers.get("x-cache") === "HIT") hits++;
      else others++;
    }
  }));
  if (others > 0) console.error(`  (${others} requests were not hits)`);
  return hits / ((performance.now() - started) / 1000);
}

/**
 * The hits per second of each configuration, one rate per round; each round
 * starts with another configuration, so that no order is favoured.
 */
export async function interleaved(
  configs: Record<string, () => CacheBackend>,
  load: HitLoad,
): Promise<Record<string, number[]>> {
  const results: Record<string, number[]> = {};
  const names = Object.keys(configs);
  for (let round = 0; round < load.rounds; round++) {
    const order = names.map((_, i) => names[(i + round) % names.length]);
    for (const name of order) {
      const backend = configs[name]();
      try {
        await backend.clear();
        const rate = await hitsPerSecond(backend, load);
        (results[name] ??= []).push(rate);
        console.error(
          `round ${round + 1}: ${name}: ${Math.round(rate)} hits/s`,
        );
      } finally {
        await backend.close();
      }
    }
  }
  return results;
}

/** The median of `xs`. */
export function median(xs: number[]): number {
  return [...xs].sort((a, b) => a - b)[xs.length >> 1];
}

/** Prints each configuration's median, under a line saying how it was run. */
export function printMedians(
  results: Record<string, number[]>,
  load: HitLoad,
  sharedBy: string,
): void {
  const cpus = navigator.hardwareConcurrency;
  console.log(
    `\nHits/s through cached(), ${load.concurrency} concurrent, ${load.rounds} x ${
      load.durationMs / 1000
    } s each, median (${cpus} cores shared by ${sharedBy}):`,
  );
  const width = Math.max(...Object.keys(results).map((name) => name.length));
  for (const [name, rates] of Object.entries(results)) {
    console.log(`  ${name.padEnd(width + 2)} ${Math.round(median(rates))}`);
  }
}
