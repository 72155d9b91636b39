import { type BackoffOptions } from "./backoff.js";
import { Emitter } from "./emitter.js";
import { type ErrorCode, type Message } from "./protocol.js";
/** The part of the WebSocket API the client uses (browsers' and `ws`'s). */
export interface WebSocketLike {
    readonly readyState: number;
    send(data: string): void;
    close(code?: number, reason?: string): void;
    onopen: ((ev: unknown) => void) | null;
    onmessage: ((ev: {
        data: unknown;
    }) => void) | null;
    onclose: ((ev: {
        code: number;
        reason: string;
    }) => void) | null;
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
export type ConnectionState = "idle" | "connecting" | "connected" | "reconnecting" | "closed";
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
    connected: {
        user: string;
        session: string;
    };
    joined: JoinedEvent;
    left: {
        room: string;
    };
    /** A new message, live or caught up after a reconnect; never one id twice. */
    message: ChatMessage;
    /** A message of this client is durable. */
    ack: AckEvent;
    /** A message of this client was refused for good. */
    failed: FailedEvent;
    presence: PresenceEvent;
    typing: {
        room: string;
        user: string;
    };
    /** An error frame that no call is waiting for. */
    error: NatterError;
}
/** An error frame, or a call that could not complete. */
export declare class NatterError extends Error {
    readonly code: ErrorCode;
    readonly ref?: string;
    constructor(code: ErrorCode, message: string, ref?: string);
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
export declare class NatterClient extends Emitter<ClientEvents> {
    private readonly options;
    /** The signed-in user, once connected. */
    user?: string;
    private opts;
    private WS;
    private ws?;
    private connNo;
    private _state;
    private attempt;
    private signedIn;
    private lastFrameAt;
    private heartbeat?;
    private retryTimer?;
    private sendTimers;
    private rooms;
    private out;
    private historyQueue;
    private refs;
    private nextRef;
    constructor(options: ClientOptions);
    /** The connection's state. */
    get state(): ConnectionState;
    /** Opens the connection; it then stays up until close(). */
    connect(): void;
    /** Skips the wait before the next reconnect attempt. */
    reconnectNow(): void;
    /** Closes the connection for good; pending calls are rejected. */
    close(): void;
    /**
     * Joins room, now and after every reconnect (then with the last id seen,
     * so that missed messages are delivered). Resolves when the server has
     * answered; a refused name rejects.
     */
    join(room: string): Promise<JoinedEvent>;
    /** Leaves room; its unsent messages fail with code "left". */
    leave(room: string): Promise<void>;
    /** The rooms this client is in (or is rejoining). */
    roomNames(): string[];
    /** The members of room, as last reported by the server. */
    members(room: string): string[];
    /** The newest message id received in room. */
    lastId(room: string): string | undefined;
    /** The messages not yet acked, oldest first. */
    outbox(room?: string): Outgoing[];
    /**
     * Sends body to room with a fresh cid and keeps resending it (same cid)
     * until the server acks it: across reconnects, and when the server asks
     * to retry. Watch "ack" and "failed" for its fate. Throws for an empty or
     * too long body and for a room not joined.
     */
    send(room: string, body: string): Outgoing;
    /** Tells room's members that this user is typing (throttled). */
    typing(room: string): void;
    /**
     * Fetches a page of room's history: the limit (1–200, default 50)
     * messages before the id before, or the newest ones. A request made
     * while disconnected is sent once connected.
     */
    history(room: string, opts?: {
        before?: string;
        limit?: number;
    }): Promise<HistoryPage>;
    private setState;
    private open;
    private beat;
    private lost;
    private stop;
    private detach;
    private write;
    private ref;
    private handle;
    private onConnected;
    private sendJoin;
    private onJoined;
    private rejoin;
    private onMsg;
    private deliver;
    private sendOut;
    private onAck;
    private sendHistory;
    private onHistory;
    private onPresence;
    private onError;
    private fail;
    private retryIn;
    private later;
}
