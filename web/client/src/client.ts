// NatterClient: one WebSocket connection to a natter gateway that stays
// up on its own. It reconnects with backoff and jitter, rejoins every room
// with the last id it saw so nothing is missed, keeps every unacked message
// in an outbox and resends it with the same cid until it is acked, and
// detects a dead connection with an application-level heartbeat.

import { backoffDelay, defaultBackoff, retryBackoff, type BackoffOptions } from "./backoff.js";
import { Emitter } from "./emitter.js";
import {
  MAX_BODY_BYTES,
  ZERO_ID,
  overlapSince,
  parseFrames,
  validName,
  type ClientFrame,
  type ErrorCode,
  type Message,
  type ServerFrame,
} from "./protocol.js";

/** The part of the WebSocket API the client uses (browsers' and `ws`'s). */
export interface WebSocketLike {
  readonly readyState: number;
  send(data: string): void;
  close(code?: number, reason?: string): void;
  onopen: ((ev: unknown) => void) | null;
  onmessage: ((ev: { data: unknown }) => void) | null;
  onclose: ((ev: { code: number; reason: string }) => void) | null;
  onerror: ((ev: unknown) => void) | null;
}

export type WebSocketConstructor = new (url: string) => WebSocketLike;

export interface ClientOptions {
  /** The gateway's WebSocket URL, e.g. `wss://chat.example.com/ws`. */
  url: string;
  /** The user name, for gateways in open mode. */
  user?: string;
  /** A token (JWT), for gateways that check them. */
  token?: string;
  /** The WebSocket implementation; default the global one (browsers). */
  WebSocket?: WebSocketConstructor;
  /** How often to ping while connected, in ms. Default 10000. */
  pingInterval?: number;
  /**
   * With no frame from the server for this long (ms), the connection is
   * taken as dead and replaced; it also bounds connecting. Default 25000.
   */
  heartbeatTimeout?: number;
  /** Reconnect delays. */
  backoff?: Partial<BackoffOptions>;
  /**
   * Delay before joining again or resending when the server refused for
   * now (`unavailable`, `internal`), in ms. Default 1000. It grows like
   * backoff (factor, jitter) with each refusal of the same join or
   * message, up to backoff.max; a room's starts over once it is joined.
   * A reconnect joins and resends at once.
   */
  retryDelay?: number;
  /** At most one typing notice per room per this many ms. Default 2000. */
  typingInterval?: number;
  /** Random numbers in [0,1) for jitter; for tests. */
  random?: () => number;
}

/** The connection's state. */
export type ConnectionState =
  | "idle" // not started
  | "connecting" // opening the socket and signing in
  | "connected" // signed in; rooms are joined as they answer
  | "reconnecting" // waiting before the next attempt (see retryAt)
  | "closed"; // stopped by close() or a refused sign-in (see error)

export interface StateEvent {
  state: ConnectionState;
  /** Failed attempts since the last successful connect. */
  attempt: number;
  /** When reconnecting: Date.now() of the next attempt. */
  retryAt?: number;
  /** Why the client closed or is reconnecting, when known. */
  error?: NatterError;
}

/** A message as the client hands it out. */
export interface ChatMessage extends Message {
  /** Sent by this client's user (from any of their connections). */
  own: boolean;
}

/** A message this client sends, from send() until it is acked. */
export interface Outgoing {
  cid: string;
  room: string;
  body: string;
  createdAt: number;
  state: "pending" | "acked" | "failed";
  /** Set once the server delivered or acked it. */
  id?: string;
  ts?: number;
}

export interface AckEvent {
  room: string;
  cid: string;
  id: string;
  ts: number;
}

export interface FailedEvent {
  room: string;
  cid: string;
  body: string;
  code: ErrorCode;
  message: string;
}

export interface JoinedEvent {
  room: string;
  members: string[];
  /** Missed messages delivered because of the rejoin. */
  resumed: number;
}

export interface PresenceEvent {
  room: string;
  /** Everyone in the room now, sorted. */
  members: string[];
  joined: string[];
  left: string[];
}

export interface HistoryPage {
  /** Oldest first. */
  messages: ChatMessage[];
  /** Older messages exist. */
  more: boolean;
}

/** The events of a NatterClient and their payloads. */
export interface ClientEvents {
  state: StateEvent;
  connected: { user: string; session: string };
  joined: JoinedEvent;
  left: { room: string };
  /** A new message, live or caught up after a reconnect; never one id twice. */
  message: ChatMessage;
  /** A message of this client is durable. */
  ack: AckEvent;
  /** A message of this client was refused for good. */
  failed: FailedEvent;
  presence: PresenceEvent;
  typing: { room: string; user: string };
  /** An error frame that no call is waiting for. */
  error: NatterError;
}

/** An error frame, or a call that could not complete. */
export class NatterError extends Error {
  readonly code: ErrorCode;
  readonly ref?: string;
  constructor(code: ErrorCode, message: string, ref?: string) {
    super(message);
    this.name = "NatterError";
    this.code = code;
    this.ref = ref;
  }
}

interface Waiter<T> {
  resolve(v: T): void;
  reject(e: Error): void;
}

interface RoomState {
  name: string;
  joined: boolean; // on the current connection
  lastId?: string; // the newest id received in this room
  empty: boolean; // the room had no message when we first looked
  members: Set<string>;
  seen: RecentSet; // ids handed out
  cids: Map<string, string>; // user "\n" cid → first id seen
  joinWaiters: Waiter<JoinedEvent>[];
  resumeLeft: number; // resumed messages still to come after joined
  resumeMore: boolean;
  lastTyping: number;
  refusals: number; // joins refused for now (unavailable, internal) since the last joined
}

interface HistoryRequest extends Waiter<HistoryPage> {
  room: string;
  before?: string;
  limit: number;
  ref: string;
  sentOn: number; // connection number it was sent on; 0 = not sent
}

type RefEntry =
  | { kind: "connect" }
  | { kind: "join"; room: string }
  | { kind: "leave"; room: string }
  | { kind: "send"; cid: string }
  | { kind: "history"; req: HistoryRequest };

type OutEntry = Outgoing & { sentOn: number; ref: string; tries?: number; refusals: number };

const OPEN = 1;
const SEEN_LIMIT = 10_000;

// A set that forgets its oldest entries beyond a bound.
class RecentSet {
  private set = new Set<string>();
  constructor(private limit: number) {}
  has(v: string): boolean {
    return this.set.has(v);
  }
  add(v: string): void {
    this.set.add(v);
    if (this.set.size > this.limit) {
      const oldest = this.set.values().next().value as string;
      this.set.delete(oldest);
    }
  }
}

/**
 * A natter connection that survives network trouble.
 *
 *     const c = new NatterClient({ url: "ws://localhost:8080/ws", user: "ada" });
 *     c.on("message", (m) => console.log(m.user, m.body));
 *     c.connect();
 *     await c.join("lobby");
 *     c.send("lobby", "hello");
 */
export class NatterClient extends Emitter<ClientEvents> {
  /** The signed-in user, once connected. */
  user?: string;
  private opts: Required<Omit<ClientOptions, "user" | "token" | "WebSocket" | "backoff">> & {
    backoff: BackoffOptions;
  };
  private WS: WebSocketConstructor;
  private ws?: WebSocketLike;
  private connNo = 0; // increases with every socket
  private _state: ConnectionState = "idle";
  private attempt = 0;
  private signedIn = false;
  private lastFrameAt = 0;
  private heartbeat?: ReturnType<typeof setInterval>;
  private retryTimer?: ReturnType<typeof setTimeout>;
  private sendTimers = new Set<ReturnType<typeof setTimeout>>();
  private rooms = new Map<string, RoomState>();
  private out = new Map<string, OutEntry>();
  private historyQueue: HistoryRequest[] = [];
  private refs = new Map<string, RefEntry>();
  private nextRef = 1;

  constructor(private readonly options: ClientOptions) {
    super();
    const WS = options.WebSocket ?? (globalThis as { WebSocket?: WebSocketConstructor }).WebSocket;
    if (!WS) throw new Error("natter: no WebSocket implementation; pass options.WebSocket");
    this.WS = WS;
    this.opts = {
      url: options.url,
      pingInterval: options.pingInterval ?? 10_000,
      heartbeatTimeout: options.heartbeatTimeout ?? 25_000,
      retryDelay: options.retryDelay ?? 1000,
      typingInterval: options.typingInterval ?? 2000,
      random: options.random ?? Math.random,
      backoff: { ...defaultBackoff, ...options.backoff },
    };
  }

  /** The connection's state. */
  get state(): ConnectionState {
    return this._state;
  }

  /** Opens the connection; it then stays up until close(). */
  connect(): void {
    if (this._state !== "idle") return;
    this.open();
  }

  /** Skips the wait before the next reconnect attempt. */
  reconnectNow(): void {
    if (this._state !== "reconnecting") return;
    clearTimeout(this.retryTimer);
    this.open();
  }

  /** Closes the connection for good; pending calls are rejected. */
  close(): void {
    if (this._state === "closed") return;
    this.stop(undefined);
  }

  /**
   * Joins room, now and after every reconnect (then with the last id seen,
   * so that missed messages are delivered). Resolves when the server has
   * answered; a refused name rejects.
   */
  join(room: string): Promise<JoinedEvent> {
    if (!validName(room)) return Promise.reject(new NatterError("invalid_room", `invalid room name ${JSON.stringify(room)}`));
    if (this._state === "closed") return Promise.reject(new NatterError("closed", "the client is closed"));
    let r = this.rooms.get(room);
    if (r && r.joined) return Promise.resolve({ room, members: [...r.members], resumed: 0 });
    if (!r) {
      r = {
        name: room, joined: false, empty: false, members: new Set(), seen: new RecentSet(SEEN_LIMIT),
        cids: new Map(), joinWaiters: [], resumeLeft: 0, resumeMore: false, lastTyping: 0, refusals: 0,
      };
      this.rooms.set(room, r);
      if (this.signedIn) this.sendJoin(r);
    }
    const st = r;
    return new Promise((resolve, reject) => st.joinWaiters.push({ resolve, reject }));
  }

  /** Leaves room; its unsent messages fail with code "left". */
  leave(room: string): Promise<void> {
    const r = this.rooms.get(room);
    if (!r) return Promise.resolve();
    this.rooms.delete(room);
    for (const w of r.joinWaiters) w.reject(new NatterError("left", "left the room"));
    for (const e of [...this.out.values()]) {
      if (e.room === room) this.fail(e, "left", "left the room before the message was sent");
    }
    if (this.signedIn) this.write({ op: "leave", room, ref: this.ref({ kind: "leave", room }) });
    return Promise.resolve();
  }

  /** The rooms this client is in (or is rejoining). */
  roomNames(): string[] {
    return [...this.rooms.keys()];
  }

  /** The members of room, as last reported by the server. */
  members(room: string): string[] {
    return [...(this.rooms.get(room)?.members ?? [])].sort();
  }

  /** The newest message id received in room. */
  lastId(room: string): string | undefined {
    return this.rooms.get(room)?.lastId;
  }

  /** The messages not yet acked, oldest first. */
  outbox(room?: string): Outgoing[] {
    return [...this.out.values()].filter((e) => room === undefined || e.room === room).map(publicOutgoing);
  }

  /**
   * Sends body to room with a fresh cid and keeps resending it (same cid)
   * until the server acks it: across reconnects, and when the server asks
   * to retry. Watch "ack" and "failed" for its fate. Throws for an empty or
   * too long body and for a room not joined.
   */
  send(room: string, body: string): Outgoing {
    if (!this.rooms.has(room)) throw new NatterError("not_joined", `join ${room} before sending to it`);
    if (body === "") throw new NatterError("invalid_body", "the message is empty");
    if (new TextEncoder().encode(body).length > MAX_BODY_BYTES) {
      throw new NatterError("invalid_body", `the message is longer than ${MAX_BODY_BYTES} bytes`);
    }
    const e: OutEntry = { cid: newCID(), room, body, createdAt: Date.now(), state: "pending", sentOn: 0, ref: "", refusals: 0 };
    this.out.set(e.cid, e);
    const r = this.rooms.get(room)!;
    // Members stop showing "typing" when the message arrives; the next
    // keystroke should tell them again at once.
    r.lastTyping = 0;
    if (r.joined) this.sendOut(e);
    return publicOutgoing(e);
  }

  /** Tells room's members that this user is typing (throttled). */
  typing(room: string): void {
    const r = this.rooms.get(room);
    const now = Date.now();
    if (!r || !r.joined || now - r.lastTyping < this.opts.typingInterval) return;
    r.lastTyping = now;
    this.write({ op: "typing", room });
  }

  /**
   * Fetches a page of room's history: the limit (1–200, default 50)
   * messages before the id before, or the newest ones. A request made
   * while disconnected is sent once connected.
   */
  history(room: string, opts: { before?: string; limit?: number } = {}): Promise<HistoryPage> {
    if (!validName(room)) return Promise.reject(new NatterError("invalid_room", `invalid room name ${JSON.stringify(room)}`));
    if (this._state === "closed") return Promise.reject(new NatterError("closed", "the client is closed"));
    return new Promise((resolve, reject) => {
      const req: HistoryRequest = { room, before: opts.before, limit: opts.limit ?? 50, ref: "", sentOn: 0, resolve, reject };
      this.historyQueue.push(req);
      if (this.signedIn) this.sendHistory(req);
    });
  }

  // ---- connection ----

  private setState(state: ConnectionState, extra: Partial<StateEvent> = {}): void {
    this._state = state;
    this.emit("state", { state, attempt: this.attempt, ...extra });
  }

  private open(): void {
    this.connNo++;
    this.signedIn = false;
    this.setState("connecting");
    let ws: WebSocketLike;
    try {
      ws = new this.WS(this.opts.url);
    } catch (err) {
      this.lost(new NatterError("connect_failed", String(err)));
      return;
    }
    this.ws = ws;
    this.lastFrameAt = Date.now();
    ws.onopen = () => {
      this.lastFrameAt = Date.now();
      const f: ClientFrame = { op: "connect", ref: this.ref({ kind: "connect" }) };
      if (this.options.user !== undefined) f.user = this.options.user;
      if (this.options.token !== undefined) f.token = this.options.token;
      this.write(f);
    };
    ws.onmessage = (ev) => {
      this.lastFrameAt = Date.now();
      let frames: ServerFrame[];
      try {
        frames = parseFrames(String(ev.data));
      } catch {
        this.lost(new NatterError("bad_frame", "the server sent a frame that is not JSON"));
        return;
      }
      for (const f of frames) {
        if (this.ws !== ws) return; // replaced while handling
        this.handle(f);
      }
    };
    ws.onclose = (ev) => {
      const err = ev.code === 1001 ? new NatterError("shutting_down", "the gateway is restarting") : new NatterError("disconnected", `connection closed (${ev.code})`);
      this.lost(err);
    };
    ws.onerror = () => {
      /* onclose follows */
    };
    clearInterval(this.heartbeat);
    this.heartbeat = setInterval(() => this.beat(), Math.min(this.opts.pingInterval, this.opts.heartbeatTimeout / 2));
  }

  private beat(): void {
    if (Date.now() - this.lastFrameAt >= this.opts.heartbeatTimeout) {
      this.lost(new NatterError("timeout", `no answer from the server for ${Math.round(this.opts.heartbeatTimeout / 1000)}s`));
      return;
    }
    if (this.signedIn) this.write({ op: "ping" });
  }

  // lost drops the current socket and schedules the next attempt.
  private lost(err: NatterError): void {
    if (this._state === "closed" || this._state === "reconnecting") return;
    this.detach();
    if (this.signedIn) this.attempt = 0;
    this.signedIn = false;
    const delay = err.code === "shutting_down" && this.attempt === 0 ? this.opts.random() * 500 : backoffDelay(this.opts.backoff, this.attempt, this.opts.random);
    this.attempt++;
    const retryAt = Date.now() + delay;
    this.retryTimer = setTimeout(() => this.open(), delay);
    this.setState("reconnecting", { retryAt, error: err });
  }

  // stop ends everything: close() or a refused sign-in.
  private stop(err: NatterError | undefined): void {
    this.detach(false);
    clearTimeout(this.retryTimer);
    this.signedIn = false;
    const why = err ?? new NatterError("closed", "the client is closed");
    for (const r of this.rooms.values()) {
      for (const w of r.joinWaiters) w.reject(why);
      r.joinWaiters = [];
    }
    for (const req of this.historyQueue) req.reject(why);
    this.historyQueue = [];
    this.setState("closed", err ? { error: err } : {});
  }

  // detach forgets the current socket; hard drops it without a closing
  // handshake (a dead peer would never answer one).
  private detach(hard = true): void {
    clearInterval(this.heartbeat);
    this.heartbeat = undefined;
    for (const t of this.sendTimers) clearTimeout(t);
    this.sendTimers.clear();
    this.refs.clear();
    const ws = this.ws;
    this.ws = undefined;
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      ws.onerror = () => {}; // Node's ws reports the abort as an error
      const terminate = (ws as { terminate?: () => void }).terminate;
      try {
        if (hard && typeof terminate === "function") terminate.call(ws);
        else ws.close(1000);
      } catch {
        /* already closed */
      }
    }
    for (const r of this.rooms.values()) {
      r.joined = false;
      r.resumeLeft = 0;
      r.resumeMore = false;
    }
    for (const e of this.out.values()) e.sentOn = 0;
    for (const req of this.historyQueue) req.sentOn = 0;
  }

  private write(f: ClientFrame): void {
    if (this.ws && this.ws.readyState === OPEN) this.ws.send(JSON.stringify(f));
  }

  private ref(e: RefEntry): string {
    const r = "r" + this.nextRef++;
    this.refs.set(r, e);
    return r;
  }

  // ---- frames ----

  private handle(f: ServerFrame): void {
    switch (f.op) {
      case "connected":
        this.onConnected(f);
        break;
      case "joined":
        this.onJoined(f);
        break;
      case "left":
        break;
      case "msg":
        this.onMsg(f);
        break;
      case "ack":
        this.onAck(f);
        break;
      case "history":
        this.onHistory(f);
        break;
      case "presence":
        this.onPresence(f);
        break;
      case "typing":
        if (f.user !== this.user && this.rooms.has(f.room)) this.emit("typing", { room: f.room, user: f.user });
        break;
      case "error":
        this.onError(f);
        break;
      case "pong":
        break;
    }
  }

  private onConnected(f: { user: string; session: string }): void {
    this.user = f.user;
    this.signedIn = true;
    this.attempt = 0;
    this.setState("connected");
    this.emit("connected", { user: f.user, session: f.session });
    for (const r of this.rooms.values()) this.sendJoin(r);
    for (const req of this.historyQueue) this.sendHistory(req);
  }

  private sendJoin(r: RoomState): void {
    // Overlap 10 s: messages of other gateways and regions can arrive a
    // little out of id order; repeats are dropped by id.
    const since = r.lastId !== undefined ? overlapSince(r.lastId, 10_000) : r.empty ? ZERO_ID : undefined;
    const f: ClientFrame = { op: "join", room: r.name, ref: this.ref({ kind: "join", room: r.name }) };
    if (since) f.since = since;
    this.write(f);
  }

  private onJoined(f: { room: string; members: string[]; resumed?: number; more?: boolean }): void {
    const r = this.rooms.get(f.room);
    if (!r) return;
    const first = r.lastId === undefined && !r.empty;
    r.joined = true;
    r.refusals = 0;
    r.members = new Set(f.members);
    r.resumeLeft = f.resumed ?? 0;
    r.resumeMore = !!f.more;
    const ev: JoinedEvent = { room: f.room, members: [...r.members], resumed: f.resumed ?? 0 };
    const waiters = r.joinWaiters;
    r.joinWaiters = [];
    for (const w of waiters) w.resolve(ev);
    this.emit("joined", ev);
    this.emit("presence", { room: f.room, members: [...r.members], joined: [], left: [] });
    if (first) {
      // Learn where the room stands, so that a rejoin can ask for what
      // came after. The app's own first page does it too, if it asks.
      queueMicrotask(() => {
        if (r.lastId !== undefined || r.empty || this.historyQueue.some((q) => q.room === r.name && !q.before)) return;
        this.history(r.name, { limit: 1 }).catch(() => {});
      });
    }
    if (r.resumeMore && r.resumeLeft === 0) this.rejoin(r);
    const unsent = [...this.out.values()].filter((e) => e.room === f.room && e.sentOn !== this.connNo);
    for (const e of unsent) this.sendOut(e);
  }

  // rejoin fetches the rest of a resume that hit the server's limit.
  private rejoin(r: RoomState): void {
    r.resumeMore = false;
    r.joined = false;
    this.write({ op: "leave", room: r.name, ref: this.ref({ kind: "leave", room: r.name }) });
    this.sendJoin(r);
  }

  private onMsg(m: Message): void {
    const r = this.rooms.get(m.room);
    if (!r) return;
    if (r.lastId === undefined || m.id > r.lastId) r.lastId = m.id;
    if (r.resumeLeft > 0 && --r.resumeLeft === 0 && r.resumeMore) this.rejoin(r);
    this.deliver(r, m);
  }

  // deliver hands m out unless an id, or a (user, cid), was handed out
  // before; it reports whether it did.
  private deliver(r: RoomState, m: Message): boolean {
    if (r.seen.has(m.id)) return false;
    r.seen.add(m.id);
    if (m.cid) {
      const key = m.user + "\n" + m.cid;
      const first = r.cids.get(key);
      if (first !== undefined && first !== m.id) return false;
      r.cids.set(key, m.id);
      if (r.cids.size > SEEN_LIMIT) r.cids.delete(r.cids.keys().next().value as string);
    }
    const own = m.user === this.user;
    if (own && m.cid) {
      const e = this.out.get(m.cid);
      if (e && e.room === m.room && e.id === undefined) {
        e.id = m.id;
        e.ts = m.ts;
      }
    }
    this.emit("message", toChat(m, own));
    return true;
  }

  private sendOut(e: OutEntry): void {
    if (!this.signedIn) return;
    e.sentOn = this.connNo;
    e.ref = this.ref({ kind: "send", cid: e.cid });
    // A resend is marked retry: the server then shows it live only once it
    // knows no earlier send with this cid reached the log.
    const retry = (e.tries ?? 0) > 0;
    e.tries = (e.tries ?? 0) + 1;
    this.write(retry
      ? { op: "send", room: e.room, cid: e.cid, body: e.body, ref: e.ref, retry: true }
      : { op: "send", room: e.room, cid: e.cid, body: e.body, ref: e.ref });
  }

  private onAck(a: { cid: string; id: string; ts: number }): void {
    const e = this.out.get(a.cid);
    if (!e) return; // a repeated ack
    this.out.delete(a.cid);
    this.refs.delete(e.ref);
    e.state = "acked";
    const r = this.rooms.get(e.room);
    if (e.id === undefined && r && this.user !== undefined) {
      // Its msg frame went down with an earlier connection; the ack says
      // enough to show it. (lastId stays: others' messages before it may
      // still be on their way.)
      this.deliver(r, { room: e.room, id: a.id, user: this.user, body: e.body, ts: a.ts, cid: e.cid });
    }
    e.id ??= a.id;
    e.ts ??= a.ts;
    this.emit("ack", { room: e.room, cid: e.cid, id: a.id, ts: a.ts });
  }

  private sendHistory(req: HistoryRequest): void {
    req.sentOn = this.connNo;
    req.ref = this.ref({ kind: "history", req });
    const f: ClientFrame = { op: "history", room: req.room, limit: req.limit, ref: req.ref };
    if (req.before) f.before = req.before;
    this.write(f);
  }

  private onHistory(f: { room: string; messages: Message[] | null; more: boolean }): void {
    // The server answers a connection's frames in order.
    const i = this.historyQueue.findIndex((q) => q.room === f.room && q.sentOn === this.connNo);
    if (i < 0) return;
    const [req] = this.historyQueue.splice(i, 1);
    this.refs.delete(req.ref);
    const msgs = f.messages ?? [];
    const r = this.rooms.get(f.room);
    if (r && !req.before && r.lastId === undefined) {
      if (msgs.length > 0) r.lastId = msgs[msgs.length - 1].id;
      else if (!f.more) r.empty = true;
    }
    if (r) {
      // History is not "new": remember it so a resume does not repeat it.
      for (const m of msgs) {
        r.seen.add(m.id);
        if (m.cid) r.cids.set(m.user + "\n" + m.cid, r.cids.get(m.user + "\n" + m.cid) ?? m.id);
      }
    }
    req.resolve({ messages: msgs.map((m) => toChat(m, m.user === this.user)), more: f.more });
  }

  private onPresence(f: { room: string; joined?: string[]; left?: string[] }): void {
    const r = this.rooms.get(f.room);
    if (!r) return;
    const joined = f.joined ?? [];
    const left = f.left ?? [];
    for (const u of joined) r.members.add(u);
    for (const u of left) r.members.delete(u);
    this.emit("presence", { room: f.room, members: [...r.members].sort(), joined, left });
  }

  private onError(f: { code: ErrorCode; message: string; ref?: string }): void {
    const err = new NatterError(f.code, f.message, f.ref);
    const entry = f.ref !== undefined ? this.refs.get(f.ref) : undefined;
    if (entry) this.refs.delete(f.ref!);
    switch (entry?.kind) {
      case "connect":
        if (f.code === "unauthorized" || f.code === "invalid_user") this.stop(err);
        else this.lost(err);
        return;
      case "join": {
        const r = this.rooms.get(entry.room);
        if (!r) return;
        if (f.code === "unavailable" || f.code === "internal") {
          // Each join is a full resume for the gateway: ask again later
          // and later while it keeps refusing. (A reconnect joins at once;
          // the pending retry goes with the old connection.)
          this.later(this.retryIn(r.refusals++), () => {
            if (this.rooms.get(entry.room) === r && !r.joined) this.sendJoin(r);
          });
          return;
        }
        this.rooms.delete(entry.room);
        for (const w of r.joinWaiters) w.reject(err);
        r.joinWaiters = [];
        this.emit("error", err);
        return;
      }
      case "leave":
        return;
      case "send": {
        const e = this.out.get(entry.cid);
        if (!e) return;
        if (f.code === "unavailable" || f.code === "internal") {
          this.later(this.retryIn(e.refusals++), () => {
            if (this.out.get(e.cid) === e && this.rooms.get(e.room)?.joined) this.sendOut(e);
          });
        } else if (f.code === "not_joined" || f.code === "shutting_down") {
          e.sentOn = 0; // resent after the next joined
        } else {
          this.fail(e, f.code, f.message);
        }
        return;
      }
      case "history": {
        const i = this.historyQueue.indexOf(entry.req);
        if (i >= 0) this.historyQueue.splice(i, 1);
        entry.req.reject(err);
        return;
      }
    }
    if (f.code === "shutting_down") return; // the close follows
    this.emit("error", err);
  }

  private fail(e: OutEntry, code: ErrorCode, message: string): void {
    this.out.delete(e.cid);
    e.state = "failed";
    this.emit("failed", { room: e.room, cid: e.cid, body: e.body, code, message });
  }

  // retryIn is the wait before asking again after n refusals in a row (0
  // = the first): retryDelay, growing like the reconnect backoff.
  private retryIn(n: number): number {
    return backoffDelay(retryBackoff(this.opts.backoff, this.opts.retryDelay), n, this.opts.random);
  }

  // later runs f after delay ms, unless the connection is lost first.
  private later(delay: number, f: () => void): void {
    const t = setTimeout(() => {
      this.sendTimers.delete(t);
      f();
    }, delay);
    this.sendTimers.add(t);
  }
}

function publicOutgoing(e: Outgoing): Outgoing {
  const { cid, room, body, createdAt, state, id, ts } = e;
  return { cid, room, body, createdAt, state, id, ts };
}

function toChat(m: Message, own: boolean): ChatMessage {
  const c: ChatMessage = { room: m.room, id: m.id, user: m.user, body: m.body, ts: m.ts, own };
  if (m.region !== undefined) c.region = m.region;
  if (m.cid !== undefined) c.cid = m.cid;
  return c;
}

function newCID(): string {
  const b = new Uint8Array(16);
  globalThis.crypto.getRandomValues(b);
  return Array.from(b, (x) => x.toString(16).padStart(2, "0")).join("");
}
