// @natter/client: a TypeScript client for natter chat gateways.

export {
  NatterClient,
  NatterError,
  type AckEvent,
  type ChatMessage,
  type ClientEvents,
  type ClientOptions,
  type ConnectionState,
  type FailedEvent,
  type HistoryPage,
  type JoinedEvent,
  type Outgoing,
  type PresenceEvent,
  type StateEvent,
  type WebSocketConstructor,
  type WebSocketLike,
} from "./client.js";
export { backoffDelay, defaultBackoff, type BackoffOptions } from "./backoff.js";
export { Emitter } from "./emitter.js";
export { MAX_BODY_BYTES, ZERO_ID, parseFrames, validName, type ClientFrame, type ErrorCode, type Message, type ServerFrame } from "./protocol.js";
