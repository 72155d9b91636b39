// @natter/client: a TypeScript client for natter chat gateways.
export { NatterClient, NatterError, } from "./client.js";
export { backoffDelay, defaultBackoff } from "./backoff.js";
export { Emitter } from "./emitter.js";
export { MAX_BODY_BYTES, ZERO_ID, parseFrames, validName } from "./protocol.js";
