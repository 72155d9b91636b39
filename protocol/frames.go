// Frame types and their encoding.

package protocol

import (
	"bytes"
	"encoding/json"
	"fmt"
	"unicode/utf8"

	"github.com/natter-chat/natter"
)

// MaxRefLen is the longest "ref" echoed back.
const MaxRefLen = 64

// ClientFrame is any client frame; which fields matter depends on Op.
type ClientFrame struct {
	Op     Op     `json:"op"`
	Ref    string `json:"ref,omitempty"`
	Token  string `json:"token,omitempty"`
	User   string `json:"user,omitempty"`
	Room   string `json:"room,omitempty"`
	Since  string `json:"since,omitempty"`
	CID    string `json:"cid,omitempty"`
	Body   string `json:"body,omitempty"`
	Before string `json:"before,omitempty"`
	// Limit is nil when the frame has no limit (the default applies), so
	// that an explicit 0 is told apart and refused.
	Limit *int `json:"limit,omitempty"`
	// Retry marks a send as a resend of a message not yet acked.
	Retry bool `json:"retry,omitempty"`
}

// DecodeError is returned by Decode; Code says which error frame to send.
type DecodeError struct {
	Code Code
	Msg  string
}

func (e *DecodeError) Error() string { return string(e.Code) + ": " + e.Msg }

// Decode parses one client frame. It never panics, whatever data holds.
func Decode(data []byte) (ClientFrame, error) {
	var f ClientFrame
	data = bytes.TrimSpace(data)
	if len(data) == 0 || data[0] != '{' {
		return f, &DecodeError{CodeBadFrame, "frame must be a JSON object"}
	}
	// encoding/json would silently turn invalid UTF-8 into U+FFFD.
	if !utf8.Valid(data) {
		return f, &DecodeError{CodeBadFrame, "frame is not valid UTF-8"}
	}
	if tooDeep(data, maxDepth) {
		return f, &DecodeError{CodeBadFrame, "JSON is nested too deeply; client frames are flat objects"}
	}
	if err := json.Unmarshal(data, &f); err != nil {
		return ClientFrame{}, &DecodeError{CodeBadFrame, "malformed JSON: " + jsonErrText(err)}
	}
	if len(f.Ref) > MaxRefLen {
		f.Ref = ""
		return f, &DecodeError{CodeBadFrame, fmt.Sprintf("ref is longer than %d bytes", MaxRefLen)}
	}
	switch f.Op {
	case OpConnect, OpJoin, OpLeave, OpSend, OpHistory, OpTyping, OpPing, OpRefresh:
		return f, nil
	case "":
		return f, &DecodeError{CodeUnknownOp, "op is missing"}
	default:
		return f, &DecodeError{CodeUnknownOp, "unknown op"}
	}
}

// maxDepth bounds nesting in a client frame; valid frames have depth 1.
const maxDepth = 8

// tooDeep reports whether data nests objects or arrays deeper than max,
// scanning outside strings only. It keeps the decoder from walking
// pathological input.
func tooDeep(data []byte, max int) bool {
	depth, inStr, esc := 0, false, false
	for _, c := range data {
		switch {
		case esc:
			esc = false
		case inStr:
			if c == '\\' {
				esc = true
			} else if c == '"' {
				inStr = false
			}
		case c == '"':
			inStr = true
		case c == '{' || c == '[':
			if depth++; depth > max {
				return true
			}
		case c == '}' || c == ']':
			depth--
		}
	}
	return false
}

// jsonErrText describes a JSON error without echoing user input.
func jsonErrText(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return fmt.Sprintf("syntax error at byte %d", e.Offset)
	case *json.UnmarshalTypeError:
		return fmt.Sprintf("field %q has the wrong type", e.Field)
	default:
		return "cannot parse"
	}
}

// Msg is a delivered chat message, also the payload on a room's NATS
// subject: encoded once by the gateway that accepted it and forwarded
// verbatim to every member. CID is the sender's cid: a sender's client
// matches its own message to its outbox with it before the ack arrives,
// and a resend that reached the log twice is recognisable by (user, cid).
type Msg struct {
	Op     Op     `json:"op"`
	Room   string `json:"room"`
	ID     string `json:"id"`
	User   string `json:"user"`
	Body   string `json:"body"`
	TS     int64  `json:"ts"`
	Region string `json:"region,omitempty"`
	CID    string `json:"cid,omitempty"`
}

// MsgOf is m as a msg frame.
func MsgOf(m natter.Message) Msg {
	return Msg{Op: OpMsg, Room: m.Room, ID: m.ID, User: m.User, Body: m.Body, TS: m.TS, Region: m.Region, CID: m.CID}
}

// MsgsOf is msgs as msg frames, for history and resume.
func MsgsOf(msgs []natter.Message) []Msg {
	out := make([]Msg, len(msgs))
	for i, m := range msgs {
		out[i] = MsgOf(m)
	}
	return out
}

// EncodeMsg is m's msg frame, encoded: what members receive live.
func EncodeMsg(m natter.Message) []byte { return Encode(MsgOf(m)) }

// Connected answers connect. Exp is when the session ends (the token's
// exp plus the leeway, Unix seconds); absent in open mode.
type Connected struct {
	Op      Op     `json:"op"`
	User    string `json:"user"`
	Session string `json:"session"`
	Version int    `json:"version"`
	Exp     int64  `json:"exp,omitempty"`
}

// Refreshed answers refresh with the session's new end.
type Refreshed struct {
	Op  Op    `json:"op"`
	Exp int64 `json:"exp,omitempty"`
}

// Joined answers join. Resumed counts the stored messages sent before it
// because of since; More is true when there were more than the resume
// limit (page the rest with history).
type Joined struct {
	Op      Op       `json:"op"`
	Room    string   `json:"room"`
	Members []string `json:"members"`
	Resumed int      `json:"resumed"`
	More    bool     `json:"more,omitempty"`
}

// Left answers leave.
type Left struct {
	Op   Op     `json:"op"`
	Room string `json:"room"`
}

// Ack confirms a send is durable.
type Ack struct {
	Op  Op     `json:"op"`
	CID string `json:"cid"`
	ID  string `json:"id"`
	TS  int64  `json:"ts"`
}

// History answers history: Messages newest last.
type History struct {
	Op       Op     `json:"op"`
	Room     string `json:"room"`
	Messages []Msg  `json:"messages"`
	More     bool   `json:"more"`
}

// Presence tells who joined or left a room.
type Presence struct {
	Op     Op       `json:"op"`
	Room   string   `json:"room"`
	Joined []string `json:"joined,omitempty"`
	Left   []string `json:"left,omitempty"`
}

// Typing tells that a member is typing.
type Typing struct {
	Op   Op     `json:"op"`
	Room string `json:"room"`
	User string `json:"user"`
}

// Error reports a problem with a frame.
type Error struct {
	Op      Op     `json:"op"`
	Code    Code   `json:"code"`
	Message string `json:"message"`
	Ref     string `json:"ref,omitempty"`
}

// Pong answers ping.
type Pong struct {
	Op Op `json:"op"`
}

// Encode marshals a server frame. Server frames are built from validated
// values, so an error here is a programming error and panics.
func Encode(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		panic(fmt.Sprintf("protocol: encode %T: %v", v, err))
	}
	return b
}
