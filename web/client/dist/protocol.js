// The natter wire protocol as TypeScript types: what a server sends, what a
// client sends, and the name rule. docs/protocol.md is the specification.
/** The id before every other: `join{since: ZERO_ID}` replays a whole room. */
export const ZERO_ID = "00000000000000000000000000";
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
