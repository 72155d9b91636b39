// Reconnect delays: exponential, capped, with jitter so that the clients of
// a restarted gateway do not all come back in the same millisecond.

export interface BackoffOptions {
  /** Delay before the first retry, in ms. Default 500. */
  initial: number;
  /** Longest delay, in ms. Default 10000. */
  max: number;
  /** Growth per failed attempt. Default 2. */
  factor: number;
  /**
   * Share of the delay that is random, 0–1. Default 0.5: a delay is
   * between half and all of its exponential value.
   */
  jitter: number;
}

export const defaultBackoff: BackoffOptions = { initial: 500, max: 10_000, factor: 2, jitter: 0.5 };

/** Returns the delay before retry number attempt (0 = the first). */
export function backoffDelay(o: BackoffOptions, attempt: number, random: () => number = Math.random): number {
  const base = Math.min(o.max, o.initial * Math.pow(o.factor, Math.max(0, attempt)));
  return Math.round(base * (1 - o.jitter) + base * o.jitter * random());
}

/**
 * The backoff for asking again after the server refused for now
 * (`unavailable`, `internal`): it starts at first and grows like o, up to
 * o.max (or first, if that is longer). Retrying a refused join or send at
 * a fixed pace would have every client of a gateway whose stores are down
 * ask again and again, each join a full resume.
 */
export function retryBackoff(o: BackoffOptions, first: number): BackoffOptions {
  return { ...o, initial: first, max: Math.max(o.max, first) };
}
