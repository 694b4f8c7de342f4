// Time: deadlines, bounded waits and timers that do not hold a process open.

/**
 * Settles as `promise` does, or, after `ms` milliseconds, with `onTimeout()`:
 * its value, or its rejection when it throws. A `promise` that settles later
 * is never left unhandled.
 */
export function deadline<T, U>(
  promise: Promise<T>,
  ms: number,
  onTimeout: () => U,
): Promise<T | U> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  promise.catch(() => {});
  return Promise.race([
    promise,
    new Promise<U>((resolve, reject) => {
      timer = setTimeout(() => {
        try {
          resolve(onTimeout());
        } catch (error) {
          reject(error);
        }
      }, ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Resolves to what `promise` resolves to, or `undefined` after `ms` milliseconds. */
export function withinTime<T>(
  promise: Promise<T>,
  ms: number,
): Promise<T | undefined> {
  return deadline(promise, ms, () => undefined);
}

/** Resolves after `ms` milliseconds. */
export function delay(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/** Lets the process exit while `timer` is pending, on Deno and on Node. */
export function unrefTimer(timer: ReturnType<typeof setInterval>): void {
  if (typeof timer === "number") {
    const deno = (globalThis as { Deno?: { unrefTimer?(id: number): void } })
      .Deno;
    deno?.unrefTimer?.(timer);
  } else {
    (timer as { unref?(): void }).unref?.();
  }
}
