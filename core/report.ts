// The default error reporter: one log line per burst of errors, not one per
// request, in the user's terms and without a stack trace.
import type {
  CacheErrorContext,
  CacheErrorHandler,
} from "../backends/types.ts";

/** Milliseconds during which further errors are counted, not logged. */
const BURST_MS = 10_000;

/** What each operation is, in the user's terms. */
const ACTIVITIES: Record<string, string> = {
  readEntry: "reading the cache",
  writeEntry: "storing an entry",
  delete: "deleting an entry",
  clear: "clearing the namespace",
  invalidateTags: "invalidating tags",
  tags: "invalidating tags",
  key: "computing the cache key",
  handler: "running the handler",
  compute: "computing a value",
  revalidate: "refreshing a stale entry",
  lock: "locking a key",
  unlock: "unlocking a key",
  connect: "connecting to the database",
  listen: "listening for changes",
  notify: "announcing a change",
  sweep: "sweeping expired entries",
  vacuum: "vacuuming the table",
  evict: "evicting entries",
  stats: "reading the statistics",
};

/** `operation` in the user's terms: `"readEntry"` is "reading the cache". */
export function activity(operation: string): string {
  return Object.hasOwn(ACTIVITIES, operation)
    ? ACTIVITIES[operation]
    : operation;
}

/** The message of `error`, on one line. */
export function oneLine(error: unknown): string {
  const message = error instanceof Error
    ? error.message || error.name
    : String(error);
  return message.replace(/\s*\n\s*/g, " ");
}

/**
 * Returns a {@linkcode CacheErrorHandler} that logs the first error of a
 * burst with `console.error`, on one line (what failed, the namespace and
 * the message; no stack trace), and how many it held back when the next
 * burst starts.
 */
export function burstLogger(now: () => number = Date.now): CacheErrorHandler {
  let quietUntil = -Infinity;
  let held = 0;
  return function logCacheError(error: unknown, context: CacheErrorContext) {
    const time = now();
    if (time < quietUntil) {
      held++;
      return;
    }
    const more = held > 0 ? ` (${held} more since the last report)` : "";
    held = 0;
    quietUntil = time + BURST_MS;
    console.error(
      `[cachekit] ${activity(context.operation)} failed in namespace ${
        JSON.stringify(context.namespace)
      }: ${oneLine(error)}${more}`,
    );
  };
}

/** Calls `handler`, never letting an error thrown by the handler escape. */
export function report(
  handler: CacheErrorHandler,
  error: unknown,
  context: CacheErrorContext,
): void {
  try {
    handler(error, context);
  } catch {
    // An error hook that throws must not turn into a failed request.
  }
}
