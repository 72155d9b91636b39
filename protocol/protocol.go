// Package protocol is natter's client wire protocol: JSON objects over
// WebSocket text frames. This comment is the specification; docs/protocol.md
// repeats it with examples.
//
// # Framing
//
// A client sends one JSON object per text frame. A server text frame carries
// one or more JSON objects separated by a newline ('\n'); JSON encoding never
// puts a raw newline inside an object, so clients split on '\n'. Packing
// several objects into one frame lets the server write many deliveries with
// one frame and one system call; a connection that receives a lot gets its
// objects gathered into each frame for a few milliseconds (up to 500 ms on
// a gateway with very many busy connections), in order. Binary frames are
// refused.
//
// Every object has an "op". Client frames may carry "ref", an opaque string
// of at most 64 bytes that the server echoes in the error caused by that
// frame. Unknown fields are ignored.
//
// # Client → server
//
//	connect  {token?, user?}           first frame; a JWT, or user in open mode
//	refresh  {token}                   a fresh JWT for the same user, before exp
//	join     {room, since?}            join a room; since = last id seen
//	leave    {room}
//	send     {room, cid, body, retry?} cid: client id, unique per message;
//	                                   retry: a resend after a reconnect
//	history  {room, before?, limit?}   a page of older messages
//	typing   {room}
//	ping     {}
//
// # Server → client
//
//	connected {user, session, version, exp?}   exp: when the session ends (Unix s)
//	refreshed {exp}
//	joined    {room, members, resumed, more}
//	left      {room}
//	msg       {room, id, user, body, ts, region, cid?}  cid: the sender's cid
//	ack       {cid, id, ts}
//	history   {room, messages, more}
//	presence  {room, joined?, left?}
//	typing    {room, user}
//	error     {code, message, ref?}
//	pong      {}
//
// A message is acked only once it is in the durable log (Kafka); a client
// keeps unacked messages and resends them with the same cid after a
// reconnect: the server never stores or delivers a (user, room, cid) twice.
//
// # Sessions and permissions
//
// With a token, the session lasts until the token's exp (plus the
// gateway's leeway): send refresh with a new token for the same user
// before then, or the server sends error token_expired and closes the
// connection (1008). The token's rooms claim says which rooms the user may
// read (join, history) and write (send, typing); anything else is
// forbidden. In open mode every room is allowed and sessions do not end.
//
// # Errors
//
// Error codes are the Code constants below. After an error the connection
// stays open, except for frames larger than the hard limit, which close it
// with WebSocket status 1009, and for the close reasons slow_consumer,
// token_expired, handshake_timeout and shutting_down.
package protocol

// Version is the protocol version sent in "connected".
//
// Changelog:
//
//	1: first version; msg gained the sender's cid (compatible: clients
//	   ignore unknown fields).
//	2: tokens: refresh/refreshed, exp in connected; codes forbidden,
//	   rate_limited, token_expired, too_many_connections,
//	   handshake_timeout; send gained retry.
const Version = 2

// Op is a frame's kind, its "op" field.
type Op string

// Ops of client frames.
const (
	OpConnect Op = "connect"
	OpJoin    Op = "join"
	OpLeave   Op = "leave"
	OpSend    Op = "send"
	OpHistory Op = "history"
	OpTyping  Op = "typing"
	OpPing    Op = "ping"
	OpRefresh Op = "refresh"
)

// Ops of server frames.
const (
	OpConnected Op = "connected"
	OpJoined    Op = "joined"
	OpLeft      Op = "left"
	OpMsg       Op = "msg"
	OpAck       Op = "ack"
	OpPresence  Op = "presence"
	OpError     Op = "error"
	OpPong      Op = "pong"
	OpRefreshed Op = "refreshed"
)

// Code is an error code carried by an error frame or an HTTP error body.
type Code string

// Error codes.
const (
	CodeBadFrame     Code = "bad_frame"         // not a JSON object, or a binary frame
	CodeUnknownOp    Code = "unknown_op"        // "op" missing or not known
	CodeTooLarge     Code = "too_large"         // frame over the frame limit
	CodeNotConnected Code = "not_connected"     // a frame before connect
	CodeAlreadyConn  Code = "already_connected" // a second connect
	CodeUnauthorized Code = "unauthorized"      // bad or missing credentials
	CodeInvalidUser  Code = "invalid_user"      // user name breaks the rule
	CodeInvalidRoom  Code = "invalid_room"      // room name breaks the rule
	CodeNotJoined    Code = "not_joined"        // send/typing to a room not joined
	CodeTooManyRooms Code = "too_many_rooms"    // over the rooms-per-connection limit
	CodeInvalidCID   Code = "invalid_cid"       // cid missing, too long or not printable ASCII
	CodeInvalidBody  Code = "invalid_body"      // body empty, too long, not UTF-8 or has NUL
	CodeInvalidID    Code = "invalid_id"        // since/before is not a message id
	CodeInvalidLimit Code = "invalid_limit"     // history limit out of range
	CodeUnavailable  Code = "unavailable"       // the durable path is saturated; retry later
	CodeInternal     Code = "internal"          // a server-side failure; retry later
	CodeShuttingDown Code = "shutting_down"     // the gateway is draining; reconnect elsewhere
	CodeSlowConsumer Code = "slow_consumer"     // close reason: the client did not read fast enough
	CodeForbidden    Code = "forbidden"         // the token does not allow this room (or origin, over HTTP)
	CodeRateLimited  Code = "rate_limited"      // over the message rate of the connection or user
	CodeTokenExpired Code = "token_expired"     // the token's exp has passed; also a close reason
	CodeTooManyConns Code = "too_many_connections"
	CodeHandshake    Code = "handshake_timeout" // close reason: no successful connect in time
)
