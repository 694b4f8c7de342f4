/**
 * A command-line tool for the cache table: per-namespace sizes, purges and
 * sweeps.
 *
 * ```sh
 * deno run -A jsr:@cachekit/hono/cli stats --dsn postgres://localhost/mydb
 * deno run -A jsr:@cachekit/hono/cli purge --namespace myapp-cache --tag user:42
 * deno run -A jsr:@cachekit/hono/cli purge --namespace myapp-cache --url "/users?id=1"
 * deno run -A jsr:@cachekit/hono/cli purge --namespace myapp-cache
 * deno run -A jsr:@cachekit/hono/cli sweep
 * ```
 *
 * `--dsn` defaults to `DATABASE_URL`; `--table` to `cachekit_entries`. No
 * command creates the table: on a database without it, each says so and
 * exits with 1. The CLI needs Deno; under Node.js it says so and exits with 1.
 *
 * @example Running the CLI from code
 * ```ts ignore
 * import { main } from "@cachekit/hono/cli";
 *
 * Deno.exit(await main(["stats", "--dsn", "postgres://localhost/mydb"]));
 * ```
 *
 * @module
 */
import { parseArgs } from "node:util";
import { PostgresBackend } from "./backends/postgres.ts";
import { invalidate } from "./middleware/invalidate.ts";

const USAGE = `Usage: cachekit <command> [options]

Commands:
  stats                          Entries, bytes and expired rows per namespace
  purge --namespace NS           Delete every entry of a namespace
  purge --namespace NS --tag T   Delete the namespace's entries tagged T (repeatable)
  purge --namespace NS --url U   Delete the cached GET entry of a path with query
  sweep                          Delete expired rows now

Options:
  --dsn URL      PostgreSQL connection string (default: DATABASE_URL)
  --table NAME   The cache table (default: cachekit_entries)
  --help         Show this help`;

/**
 * Where the CLI writes: standard output and standard error.
 *
 * @example Capturing the CLI's output
 * ```ts
 * import { type CliOutput, main } from "@cachekit/hono/cli";
 * import assert from "node:assert/strict";
 *
 * const errors: string[] = [];
 * const output: CliOutput = { out: () => {}, err: (line) => errors.push(line) };
 * const status = await main(["purge"], output);
 * assert.equal(status, 2);
 * assert.equal(errors[0], "Error: purge needs --namespace");
 * ```
 */
export interface CliOutput {
  /** Writes a line of results. */
  out(line: string): void;
  /** Writes a line of errors. */
  err(line: string): void;
}

/** What the CLI says where Deno is not the runtime. */
const NEEDS_DENO =
  "Error: the cachekit CLI needs Deno: run it with deno run -A jsr:@cachekit/hono/cli";

/** `count` and the noun after it: `1 entry`, `0 entries`. */
function counted(count: number, one: string, many: string): string {
  return `${count} ${count === 1 ? one : many}`;
}

const consoleOutput: CliOutput = {
  out: (line) => console.log(line),
  err: (line) => console.error(line),
};

function environment(name: string): string | undefined {
  try {
    return (globalThis as {
      Deno?: { env: { get(n: string): string | undefined } };
    })
      .Deno?.env.get(name);
  } catch {
    return undefined;
  }
}

/**
 * Runs the CLI with `args` and resolves to its exit status.
 *
 * @param args The arguments, without the program name.
 * @param output Where to write.
 * @returns 0 on success, 1 on a failure, 2 on a usage error.
 *
 * @example Showing the help
 * ```ts
 * import { main } from "@cachekit/hono/cli";
 *
 * const lines: string[] = [];
 * const status = await main(["--help"], { out: (l) => lines.push(l), err: () => {} });
 * console.log(status, lines[0].startsWith("Usage")); // 0 true
 * ```
 */
export async function main(
  args: string[],
  output: CliOutput = consoleOutput,
): Promise<number> {
  if ((globalThis as { Deno?: unknown }).Deno === undefined) {
    output.err(NEEDS_DENO);
    return 1;
  }
  let parsed;
  try {
    parsed = parseArgs({
      args,
      allowPositionals: true,
      options: {
        dsn: { type: "string" },
        table: { type: "string" },
        namespace: { type: "string" },
        tag: { type: "string", multiple: true },
        url: { type: "string" },
        help: { type: "boolean" },
      },
    });
  } catch (error) {
    output.err(`Error: ${(error as Error).message}\n\n${USAGE}`);
    return 2;
  }
  const { values, positionals } = parsed;
  if (values.help) {
    output.out(USAGE);
    return 0;
  }
  const command = positionals[0];
  if (!["stats", "purge", "sweep"].includes(command ?? "")) {
    output.err(
      `Error: ${
        command ? `unknown command ${JSON.stringify(command)}` : "no command"
      }\n\n${USAGE}`,
    );
    return 2;
  }
  if (command === "purge" && !values.namespace) {
    output.err("Error: purge needs --namespace");
    return 2;
  }
  const dsn = values.dsn ?? environment("DATABASE_URL");
  if (!dsn) {
    output.err("Error: no database: pass --dsn or set DATABASE_URL");
    return 2;
  }
  if (!/^postgres(ql)?:\/\//i.test(dsn)) {
    // Never the DSN itself: it may hold a password.
    output.err(
      "Error: the DSN must start with postgres:// or postgresql://",
    );
    return 2;
  }
  return await run(command as Command, values, dsn, output);
}

type Command = "stats" | "purge" | "sweep";

/** What each command does with nothing to work on. */
const NOTHING: Record<Command, string> = {
  stats: "nothing to report",
  purge: "nothing to purge",
  sweep: "nothing to sweep",
};

/** Runs `command` on the table, which it never creates. */
async function run(
  command: Command,
  values: {
    table?: string;
    namespace?: string;
    tag?: string[];
    url?: string;
  },
  dsn: string,
  output: CliOutput,
): Promise<number> {
  let backend: PostgresBackend;
  try {
    backend = new PostgresBackend({
      dsn,
      table: values.table,
      namespace: values.namespace,
      sweepInterval: 0,
      minSize: 1,
      maxSize: 2,
      queryTimeout: 30_000,
      createTable: false,
      onError: () => {},
    });
  } catch (error) {
    output.err(`Error: ${(error as Error).message}`);
    return 2;
  }
  try {
    if (!await backend.exists()) {
      output.err(
        `Error: the cache table ${
          values.table ?? "cachekit_entries"
        } does not exist in this database: ${NOTHING[command]}`,
      );
      return 1;
    }
    if (command === "stats") {
      const rows = await backend.tableStats();
      output.out("namespace\tentries\tbytes\texpired");
      for (const row of rows) {
        output.out(
          `${row.namespace}\t${row.entries}\t${row.bytes}\t${row.expired}`,
        );
      }
    } else if (command === "sweep") {
      const count = await backend.sweep();
      output.out(`Swept ${counted(count, "expired row", "expired rows")}`);
    } else if (values.tag?.length) {
      const count = await backend.invalidateTags(values.tag);
      output.out(
        `Purged ${counted(count, "entry", "entries")} tagged ${
          values.tag.join(", ")
        } from namespace ${JSON.stringify(backend.namespace)}`,
      );
    } else if (values.url !== undefined) {
      const removed = await invalidate(backend, values.url);
      output.out(
        removed
          ? `Purged the entry of ${values.url}`
          : `No entry for ${values.url}`,
      );
    } else {
      const count = await backend.purge();
      output.out(
        `Purged ${counted(count, "entry", "entries")} from namespace ${
          JSON.stringify(backend.namespace)
        }`,
      );
    }
    return 0;
  } catch (error) {
    output.err(`Error: ${(error as Error).message ?? error}`);
    return 1;
  } finally {
    await backend.close();
  }
}

/** Whether Node.js runs this file as its script (`node cli.js`). */
function runByNode(): boolean {
  if ((globalThis as { Deno?: unknown }).Deno !== undefined) return false;
  const script = (globalThis as { process?: { argv?: string[] } }).process
    ?.argv?.[1];
  if (script === undefined) return false;
  const path = decodeURIComponent(new URL(import.meta.url).pathname);
  const stem = (file: string) => file.replace(/\.[cm]?[jt]s$/, "");
  return stem(path) === stem(script.replaceAll("\\", "/"));
}

if (import.meta.main) {
  const status = await main(Deno.args);
  Deno.exit(status);
} else if (runByNode()) {
  console.error(NEEDS_DENO);
  (globalThis as unknown as { process: { exitCode: number } }).process
    .exitCode = 1;
}
