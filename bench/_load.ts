// HTTP load on one server: wrk with a Lua script choosing each request's
// path, or a load generator of our own for machines without wrk.

/** What one run of load measured. */
export interface Sample {
  rps: number;
  /** Median latency, ms. */
  p50: number;
  /** 99th percentile latency, ms. */
  p99: number;
}

/**
 * Which paths the requests ask for: `hits`, a random one of the first
 * `keys` items (stored before the load starts); `misses`, a path no request
 * asked for before (a run-unique prefix and a per-thread counter).
 */
export type Workload = { kind: "hits"; keys: number } | { kind: "misses" };

/** How to load a server. */
export interface LoadOptions {
  connections: number;
  seconds: number;
  /** wrk, or the built-in generator. */
  wrk: boolean;
}

/** Finds `command` on the PATH. */
export function which(command: string): string | undefined {
  for (const dir of (Deno.env.get("PATH") ?? "").split(":")) {
    try {
      if (Deno.statSync(`${dir}/${command}`).isFile) return `${dir}/${command}`;
    } catch {
      // not here
    }
  }
  return undefined;
}

let runs = 0;

/** A prefix no earlier run of this process used. */
function runPrefix(): string {
  return `${Date.now().toString(36)}${(runs++).toString(36)}`;
}

/** The wrk script of `workload`. */
function luaOf(workload: Workload): string {
  if (workload.kind === "hits") {
    return `math.randomseed(os.time())
request = function()
  return wrk.format("GET", "/item/" .. math.random(0, ${workload.keys - 1}))
end
`;
  }
  // Each thread gets its own number in setup(); requests count within it.
  return `local threads = 0
function setup(thread)
  threads = threads + 1
  thread:set("tid", threads)
end
local prefix = ""
local n = 0
function init(args)
  prefix = args[1] or "m"
end
request = function()
  n = n + 1
  return wrk.format("GET", "/item/" .. prefix .. "-" .. tid .. "-" .. n)
end
`;
}

function toMs(value: string): number {
  const match = value.match(/^([\d.]+)(us|ms|s)$/);
  if (!match) return NaN;
  const n = Number(match[1]);
  return match[2] === "us" ? n / 1000 : match[2] === "s" ? n * 1000 : n;
}

/** Loads `base` (`http://host:port`) with `workload`. */
export async function load(
  base: string,
  workload: Workload,
  options: LoadOptions,
): Promise<Sample> {
  return options.wrk
    ? await wrk(base, workload, options)
    : await builtin(base, workload, options);
}

async function wrk(
  base: string,
  workload: Workload,
  { connections, seconds }: LoadOptions,
): Promise<Sample> {
  const script = await Deno.makeTempFile({ suffix: ".lua" });
  try {
    await Deno.writeTextFile(script, luaOf(workload));
    const out = await new Deno.Command("wrk", {
      args: [
        "-t2",
        `-c${connections}`,
        `-d${seconds}s`,
        "--latency",
        "-s",
        script,
        `${base}/`,
        "--",
        runPrefix(),
      ],
      stdout: "piped",
      stderr: "piped",
    }).output();
    const text = new TextDecoder().decode(out.stdout);
    const rps = Number(text.match(/Requests\/sec:\s+([\d.]+)/)?.[1]);
    const p50 = toMs(text.match(/\s50%\s+(\S+)/)?.[1] ?? "");
    const p99 = toMs(text.match(/\s99%\s+(\S+)/)?.[1] ?? "");
    const errors = text.match(/Non-2xx or 3xx responses: (\d+)/)?.[1];
    if (errors) throw new Error(`${base}: ${errors} non-2xx responses`);
    if (!Number.isFinite(rps)) {
      throw new Error(
        `wrk said nothing usable: ${text}${
          new TextDecoder().decode(out.stderr)
        }`,
      );
    }
    return { rps, p50, p99 };
  } finally {
    await Deno.remove(script);
  }
}

async function builtin(
  base: string,
  workload: Workload,
  { connections, seconds }: LoadOptions,
): Promise<Sample> {
  const prefix = runPrefix();
  const path = workload.kind === "hits"
    ? () => `/item/${Math.floor(Math.random() * workload.keys)}`
    : (n: number) => `/item/${prefix}-${n}`;
  const { ops, p50, p99 } = await timeOps(connections, seconds, async (n) => {
    const res = await fetch(base + path(n));
    await res.arrayBuffer();
    if (res.status !== 200) throw new Error(`${base}: ${res.status}`);
  });
  return { rps: ops, p50, p99 };
}

/**
 * Runs `op` from `callers` concurrent loops for `seconds`; the rate and the
 * latencies, in ms.
 */
export async function timeOps(
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
