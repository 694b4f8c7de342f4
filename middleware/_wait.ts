// Bounded waits.

import { deadline } from "../backends/_codec.ts";

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
