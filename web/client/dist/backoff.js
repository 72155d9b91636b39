// Reconnect delays: exponential, capped, with jitter so that the clients of
// a restarted gateway do not all come back in the same millisecond.
export const defaultBackoff = { initial: 500, max: 10_000, factor: 2, jitter: 0.5 };
/** Returns the delay before retry number attempt (0 = the first). */
export function backoffDelay(o, attempt, random = Math.random) {
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
export function retryBackoff(o, first) {
    return { ...o, initial: first, max: Math.max(o.max, first) };
}
