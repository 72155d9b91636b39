// Package natter holds the small shared domain of the natter chat system:
// the message envelope, message ids, the room-name rule and the names of
// NATS subjects, Redis channels and Kafka topics. Every role (gateway,
// bridge, persister) imports it; none imports another role.
//
// A message travels like this:
//
//	client --send--> gateway --NATS room subject--> gateways (live fan-out)
//	                 gateway --NATS request "natter.durable"--> bridge --> Kafka
//	                 bridge --reply--> gateway --ack--> client
//	                 Kafka --consumer group--> persister --> PostgreSQL
//
// Names that end up inside a NATS subject, a Redis channel or SQL are only
// built by the functions in this package, from values that passed
// ValidRoom or ParseID.
package natter

import "errors"

// Sentinel errors callers branch on.
var (
	// ErrInvalidRoom is returned for a room name that breaks the room rule.
	ErrInvalidRoom = errors.New("invalid room name")
	// ErrInvalidID is returned for a string that is not a message id.
	ErrInvalidID = errors.New("invalid message id")
)
