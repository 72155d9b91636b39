// The natter wire protocol as TypeScript types: what a server sends, what a
// client sends, and the name rule. docs/protocol.md is the specification.

/** A chat message as the server delivers it. */
export interface Message {
  room: string;
  /** 26 characters of Crockford base32; ids sort in acceptance order. */
  id: string;
  user: string;
  body: string;
  /** Unix milliseconds, stamped by the gateway that accepted it. */
  ts: number;
  region?: string;
  /** The sender's client id for this message, when it had one. */
  cid?: string;
}

/** Error codes of `error` frames (docs/protocol.md, "Error codes"). */
export type ErrorCode =
  | "bad_frame"
  | "unknown_op"
  | "too_large"
  | "not_connected"
  | "already_connected"
  | "unauthorized"
  | "invalid_user"
  | "invalid_room"
  | "not_joined"
  | "too_many_rooms"
  | "invalid_cid"
  | "invalid_body"
  | "invalid_id"
  | "invalid_limit"
  | "unavailable"
  | "internal"
  | "shutting_down"
  | (string & {});

/** Frames a server sends. */
export type ServerFrame =
  | { op: "connected"; user: string; session: string; version: number }
  | { op: "joined"; room: string; members: string[]; resumed?: number; more?: boolean }
  | { op: "left"; room: string }
  | ({ op: "msg" } & Message)
  | { op: "ack"; cid: string; id: string; ts: number }
  | { op: "history"; room: string; messages: Message[] | null; more: boolean }
  | { op: "presence"; room: string; joined?: string[]; left?: string[] }
  | { op: "typing"; room: string; user: string }
  | { op: "error"; code: ErrorCode; message: string; ref?: string }
  | { op: "pong" };

/** Frames a client sends. */
export type ClientFrame =
  | { op: "connect"; user?: string; token?: string; ref?: string }
  | { op: "join"; room: string; since?: string; ref?: string }
  | { op: "leave"; room: string; ref?: string }
  | { op: "send"; room: string; cid: string; body: string; ref?: string; retry?: boolean }
  | { op: "history"; room: string; before?: string; limit?: number; ref?: string }
  | { op: "typing"; room: string }
  | { op: "ping" };

/** The id before every other: `join{since: ZERO_ID}` replays a whole room. */
export const ZERO_ID = "00000000000000000000000000";

const CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ";

/**
 * overlapSince returns the smallest id of the millisecond `ms` before the
 * time in `id` (its first 10 characters are milliseconds in Crockford
 * base32), for resuming with a little overlap.
 */
export function overlapSince(id: string, ms: number): string {
  let t = 0;
  for (let i = 0; i < 10; i++) {
    const v = CROCKFORD.indexOf(id[i] ?? "0");
    if (v < 0) return ZERO_ID;
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
export function validName(s: string): boolean {
  return NAME.test(s);
}

/** Splits one server WebSocket frame into its objects. */
export function parseFrames(data: string): ServerFrame[] {
  const out: ServerFrame[] = [];
  for (const line of data.split("\n")) {
    if (line !== "") out.push(JSON.parse(line) as ServerFrame);
  }
  return out;
}
