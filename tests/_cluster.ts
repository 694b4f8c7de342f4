// A throwaway PostgreSQL cluster for chaos tests: its own data directory and
// port, so that a test can restart, kill, or freeze the server without
// touching the shared one. Runs the server as the `postgres` user when the
// tests run as root (PostgreSQL refuses to run as root).

/** A PostgreSQL cluster in a temporary directory, owned by one test. */
export interface Cluster {
  /** The DSN of its `postgres` database, on 127.0.0.1. */
  url: string;
  /** Its port on 127.0.0.1. */
  port: number;
  /** Starts the server and waits until it accepts connections. */
  start(): Promise<void>;
  /** Stops the server in `mode` and waits until it is gone. */
  stop(mode: "fast" | "immediate"): Promise<void>;
  /** Restarts the server in `mode` and waits until it accepts connections. */
  restart(mode: "fast" | "immediate"): Promise<void>;
  /** Terminates every client backend but the caller's; resolves to how many. */
  terminateBackends(): Promise<number>;
  /** Freezes the postmaster and every child process (SIGSTOP). */
  pause(): Promise<void>;
  /** Thaws what `pause` froze (SIGCONT). */
  resume(): Promise<void>;
  /** Resumes, stops the server at once and removes its directory; never throws. */
  destroy(): Promise<void>;
}

/** The newest PostgreSQL's bin directory: Debian keeps it off PATH. */
export function postgresBinDir(): string {
  const root = "/usr/lib/postgresql";
  const versions: number[] = [];
  try {
    for (const entry of Deno.readDirSync(root)) {
      if (/^\d+$/.test(entry.name)) versions.push(Number(entry.name));
    }
  } catch {
    // No Debian layout: reported below.
  }
  for (const version of versions.sort((a, b) => b - a)) {
    const bin = `${root}/${version}/bin`;
    try {
      Deno.statSync(`${bin}/pg_ctl`);
      return bin;
    } catch {
      // Client packages only: try an older version.
    }
  }
  throw new Error(`Cannot find PostgreSQL's pg_ctl under ${root}`);
}

/** Quotes `value` for a POSIX shell. */
function quote(value: string): string {
  return `'${value.replaceAll("'", `'\\''`)}'`;
}

/** Runs `script` in a shell as the `postgres` user; throws with its output on failure. */
async function runAsPostgres(script: string): Promise<string> {
  const asRoot = Deno.uid() === 0;
  const { code, stdout, stderr } = await new Deno.Command(
    asRoot ? "su" : "sh",
    {
      args: asRoot ? ["postgres", "-c", script] : ["-c", script],
      stdin: "null",
      stdout: "piped",
      stderr: "piped",
    },
  ).output();
  const decoder = new TextDecoder();
  if (code !== 0) {
    throw new Error(
      `Cannot run ${script}: exit code ${code}: ${decoder.decode(stderr)}`,
    );
  }
  return decoder.decode(stdout);
}

/** A port of 127.0.0.1 that nothing listens on right now. */
function freePort(): number {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const { port } = listener.addr as Deno.NetAddr;
  listener.close();
  return port;
}

/** Creates a cluster in a new temporary directory and starts it. */
export async function startCluster(): Promise<Cluster> {
  const bin = postgresBinDir();
  const dir = await Deno.makeTempDir({ prefix: "cachekit_cluster_" });
  const data = `${dir}/data`;
  const port = freePort();
  let paused: number[] = [];
  if (Deno.uid() === 0) {
    const { uid, gid } = await userIds("postgres");
    await Deno.chown(dir, uid, gid);
  }
  const settings = [
    `-p ${port}`,
    `-k ${dir}`,
    "-c listen_addresses=127.0.0.1",
    "-c fsync=off",
    "-c synchronous_commit=off",
    "-c full_page_writes=off",
  ].join(" ");
  const pgCtl = (args: string) =>
    runAsPostgres(
      `${quote(`${bin}/pg_ctl`)} -D ${quote(data)} -w -t 30 ${args}`,
    );
  const serverArgs = `-l ${quote(`${dir}/log`)} -o ${quote(settings)}`;

  /** The postmaster's pid, from postmaster.pid, or undefined when it is down. */
  async function postmaster(): Promise<number | undefined> {
    try {
      const text = await Deno.readTextFile(`${data}/postmaster.pid`);
      return Number(text.split("\n")[0]);
    } catch {
      return undefined;
    }
  }

  async function children(pid: number): Promise<number[]> {
    const { stdout } = await new Deno.Command("pgrep", {
      args: ["-P", String(pid)],
      stdout: "piped",
      stderr: "null",
    }).output();
    return new TextDecoder().decode(stdout).split("\n").filter(Boolean)
      .map(Number);
  }

  function signal(pids: number[], name: Deno.Signal): void {
    for (const pid of pids) {
      try {
        Deno.kill(pid, name);
      } catch {
        // Exited meanwhile.
      }
    }
  }

  const cluster: Cluster = {
    url: `postgres://postgres@127.0.0.1:${port}/postgres`,
    port,
    async start() {
      await pgCtl(`${serverArgs} start`);
    },
    async stop(mode) {
      await pgCtl(`-m ${mode} stop`);
    },
    async restart(mode) {
      await pgCtl(`-m ${mode} ${serverArgs} restart`);
    },
    async terminateBackends() {
      const out = await runAsPostgres(
        `${
          quote(`${bin}/psql`)
        } -h 127.0.0.1 -p ${port} -U postgres -d postgres -XAtc ${
          quote(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity WHERE backend_type = 'client backend' AND pid <> pg_backend_pid()",
          )
        }`,
      );
      return Number(out.trim());
    },
    async pause() {
      const pid = await postmaster();
      if (pid === undefined) {
        throw new Error("Cannot pause: the server is down");
      }
      // The postmaster first, so that it forks nothing new meanwhile.
      signal([pid], "SIGSTOP");
      const kids = await children(pid);
      signal(kids, "SIGSTOP");
      paused = [pid, ...kids];
    },
    async resume() {
      const pid = await postmaster();
      const kids = pid === undefined ? [] : await children(pid);
      // Children first: the postmaster then finds them running.
      signal([...kids, ...paused.filter((held) => held !== pid)], "SIGCONT");
      if (pid !== undefined) signal([pid], "SIGCONT");
      paused = [];
    },
    async destroy() {
      await cluster.resume().catch(() => {});
      await cluster.stop("immediate").catch(async () => {
        const pid = await postmaster();
        if (pid !== undefined) signal([pid], "SIGKILL");
      });
      await Deno.remove(dir, { recursive: true }).catch(() => {});
    },
  };

  try {
    await runAsPostgres(
      `${quote(`${bin}/initdb`)} -D ${
        quote(data)
      } -A trust -U postgres --no-sync --locale=C -E UTF8 > /dev/null`,
    );
    await cluster.start();
  } catch (error) {
    await cluster.destroy();
    throw error;
  }
  return cluster;
}

/** The uid and gid of a system user, from /etc/passwd. */
async function userIds(name: string): Promise<{ uid: number; gid: number }> {
  const line = (await Deno.readTextFile("/etc/passwd")).split("\n")
    .find((row) => row.startsWith(`${name}:`));
  if (!line) throw new Error(`Cannot find the ${name} user in /etc/passwd`);
  const [, , uid, gid] = line.split(":");
  return { uid: Number(uid), gid: Number(gid) };
}
