// The Cache-Status header (RFC 9211): what this cache did with a request, as
// one member of a list that upstream caches may have begun.

/** Why a request went on to the handler (RFC 9211 §2.2). */
export type Forward =
  | "bypass"
  | "method"
  | "uri-miss"
  | "vary-miss"
  | "miss"
  | "request"
  | "stale";

/** What one member of `Cache-Status` says. */
export interface StatusReport {
  /** Answered from the cache, without going on to the handler. */
  hit?: boolean;
  /** Why it went on to the handler. */
  fwd?: Forward;
  /** The status the handler answered with, when it went on. */
  fwdStatus?: number;
  /** Seconds of freshness left; negative once stale. */
  ttl?: number;
  /** Whether the response was stored. */
  stored?: boolean;
  /** A word more: why it was not stored, which stale rule answered. */
  detail?: string;
}

/** The member `name; hit; ttl=42` of a report. */
export function statusMember(name: string, report: StatusReport): string {
  let member = name;
  if (report.hit) member += "; hit";
  if (report.fwd) member += `; fwd=${report.fwd}`;
  if (report.fwdStatus !== undefined) {
    member += `; fwd-status=${report.fwdStatus}`;
  }
  if (report.ttl !== undefined) member += `; ttl=${Math.trunc(report.ttl)}`;
  if (report.stored) member += "; stored";
  if (report.detail) member += `; detail=${report.detail}`;
  return member;
}

/**
 * The `Cache-Status` value with `member` last: the caches closer to the
 * origin come first (RFC 9211 §2).
 */
export function appendMember(current: string | null, member: string): string {
  return current ? `${current}, ${member}` : member;
}
