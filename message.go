// The message envelope shared by every role.

package natter

import (
	"fmt"
	"unicode/utf8"
)

// MaxBodyBytes is the default upper bound of a message body in bytes.
const MaxBodyBytes = 4096

// MaxCIDLen is the longest client id (cid) accepted.
const MaxCIDLen = 64

// Message is a chat message as it travels between roles: on NATS, in
// Kafka (JSON value, key = Room) and as a row in PostgreSQL.
type Message struct {
	// ID is the message id (see ID), stamped by the gateway.
	ID string `json:"id"`
	// Room is a valid room name.
	Room string `json:"room"`
	// User is the sender.
	User string `json:"user"`
	// Body is the text, valid UTF-8 without NUL bytes.
	Body string `json:"body"`
	// TS is the gateway's receive time in Unix milliseconds.
	TS int64 `json:"ts"`
	// Region is the region whose gateway accepted the message.
	Region string `json:"region"`
	// CID is the sender's client id, used to make retries idempotent.
	CID string `json:"cid,omitempty"`
}

// CIDKey is the key under which a client id is remembered: a cid is the
// sender's, in one room.
func CIDKey(user, room, cid string) string { return user + "\x00" + room + "\x00" + cid }

// DurableReply answers a gateway's durable request (a Message sent to
// SubjectDurable): OK once the message is in the log, with its id, or
// the error that stopped it. Bridges send it; gateways read it.
type DurableReply struct {
	// ID is the id of the request's message.
	ID string `json:"id"`
	OK bool   `json:"ok"`
	// Canonical and CanonicalTS, when set, are the id and ts under which
	// an earlier message with the same (user, room, cid) is already in the
	// log: the request was a client's retry and was not written again.
	Canonical   string `json:"canonical,omitempty"`
	CanonicalTS int64  `json:"canonical_ts,omitempty"`
	Error       string `json:"error,omitempty"`
}

// CheckBody returns an error if body is empty, longer than max bytes, not
// valid UTF-8 or contains NUL (which PostgreSQL text cannot hold).
func CheckBody(body string, max int) error {
	switch {
	case body == "":
		return fmt.Errorf("body is empty")
	case len(body) > max:
		return fmt.Errorf("body is %d bytes, limit is %d", len(body), max)
	case !utf8.ValidString(body):
		return fmt.Errorf("body is not valid UTF-8")
	}
	for i := 0; i < len(body); i++ {
		if body[i] == 0 {
			return fmt.Errorf("body contains a NUL character")
		}
	}
	return nil
}

// CheckCID returns an error if cid is empty, too long or has characters
// outside printable ASCII.
func CheckCID(cid string) error {
	if cid == "" {
		return fmt.Errorf("cid is required")
	}
	if len(cid) > MaxCIDLen {
		return fmt.Errorf("cid is longer than %d characters", MaxCIDLen)
	}
	for i := 0; i < len(cid); i++ {
		if cid[i] < 0x21 || cid[i] > 0x7e {
			return fmt.Errorf("cid has a character outside printable ASCII")
		}
	}
	return nil
}
