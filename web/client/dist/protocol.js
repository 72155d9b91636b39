// The natter wire protocol as TypeScript types: what a server sends, what a
// client sends, and the name rule. docs/protocol.md is the specification.
/** The id before every other: `join{since: ZERO_ID}` replays a whole room. */
export const ZERO_ID = "00000000000000000000000000";
const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";
/**
 * overlapSince returns the smallest id of the millisecond `ms` before the
 * time in `id` (its first 10 characters are milliseconds in Crockford
 * base32), for resuming with a little overlap.
 */
export function overlapSince(id, ms) {
    let t = 0;
    for (let i = 0; i < 10; i++) {
        const v = CROCKFORD.indexOf(id[i] ?? "0");
        if (v < 0)
            return ZERO_ID;
        t = t * 32 + v;
    }
    t = Math.max(0, t - ms);
    let head = "";
    for (let i = 0; i < 10; i++) {
        head = CROCKFORD[t % 32] + head;
        t = Math.floor(t / 32);
    }
    return head + "0".repeat(16);
}
/** Longest message body the server accepts, in UTF-8 bytes. */
export const MAX_BODY_BYTES = 4096;
const NAME = /^[A-Za-z0-9][A-Za-z0-9_-]{0,63}$/;
/** Reports whether s is a valid room or user name. */
export function validName(s) {
    return NAME.test(s);
}
/** Splits one server WebSocket frame into its objects. */
export function parseFrames(data) {
    const out = [];
    for (const line of data.split("\n")) {
        if (line !== "")
            out.push(JSON.parse(line));
    }
    return out;
}
