// Fixture servers in their own Deno processes: each prints {"port": N} once
// listening and ends when its stdin closes.

/** A running fixture server. */
export interface FixtureServer {
  /** Its port on 127.0.0.1. */
  port: number;
  /** Closes its stdin and waits for it to exit. */
  stop(): Promise<void>;
}

/** Starts `tests/fixtures/<name>` with `env` and waits until it listens. */
export async function spawnFixture(
  name: string,
  env: Record<string, string>,
): Promise<FixtureServer> {
  const child = new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "-A",
      new URL(`./fixtures/${name}`, import.meta.url).pathname,
    ],
    env,
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const stop = async () => {
    await child.stdin.close().catch(() => {});
    await child.stdout.cancel().catch(() => {});
    await child.status;
  };
  try {
    return { port: await listeningPort(child.stdout, name), stop };
  } catch (error) {
    await stop();
    throw error;
  }
}

/**
 * Reads a fixture's first line, {"port": N}, from its stdout and resolves to
 * N; rejects when it exits first. The rest of stdout is left unread.
 */
export async function listeningPort(
  stdout: ReadableStream<Uint8Array>,
  name: string,
): Promise<number> {
  const reader = stdout.pipeThrough(new TextDecoderStream()).getReader();
  let text = "";
  while (!text.includes("\n")) {
    const { value, done } = await reader.read();
    if (done) throw new Error(`${name} exited before listening`);
    text += value;
  }
  reader.releaseLock();
  return JSON.parse(text.split("\n")[0]).port as number;
}
