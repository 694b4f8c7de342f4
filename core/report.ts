// The default error reporter: one log line per burst of errors, not one per request.
import type {
  CacheErrorContext,
  CacheErrorHandler,
} from "../backends/types.ts";

/** Milliseconds during which further errors are counted, not logged. */
const BURST_MS = 10_000;

/**
 * Returns a {@linkcode CacheErrorHandler} that logs the first error of a
 * burst with `console.error`, and how many it held back when the next burst
 * starts.
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
      `[cachekit] ${context.operation} failed in namespace ${
        JSON.stringify(context.namespace)
      }${more}:`,
      error,
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
