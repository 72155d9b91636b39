// Flush: what a resume needs from the region's other gateways. A client
// that joins a room with since gets the room's messages from the store
// and the durable log. A message another gateway accepted just before this
// gateway's room subscription reached it went out live without this
// gateway, and may not be in the log yet. So the resume first asks every
// gateway of the region for the room's messages it accepted and has not
// yet seen durable, and merges them in.
//
// Why this is enough: the request goes out after the room's subscription
// on the same NATS connection, and NATS carries a connection's interest
// and messages in order, so a gateway answers after it knows of the
// subscription. Whatever it publishes after answering reaches this
// gateway live; whatever it published before is durable (in the log the
// resume reads next) or in its answer.
//
// The region's gateways know each other from heartbeats on
// SubjectGateways (every presence interval, and at once in answer to a
// newcomer's hello). Only they are asked: presence also names other
// regions' gateways, which never answer.

package gateway

import (
	"context"
	"encoding/json"
	"maps"
	"slices"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/natter-chat/natter"
)

const (
	// flushWait bounds how long a resume waits for the region's gateways.
	flushWait = 5 * time.Second
	// peerWait bounds how long a starting gateway waits to hear of the
	// region's others (alone in its region, it waits this long).
	peerWait = time.Second
	// helloAgain is when a starting gateway first says hello again.
	helloAgain = 100 * time.Millisecond
	// flushChunk bounds one answer message; a longer answer is sent in
	// several, well below NATS's 1 MB payload limit.
	flushChunk = 256 << 10
)

type flushRequest struct {
	Room  string `json:"room"`
	GW    string `json:"gw"`
	Reply string `json:"reply"`
}

type flushAnswer struct {
	GW   string           `json:"gw"`
	Msgs []natter.Message `json:"msgs,omitempty"`
	Done bool             `json:"done"`
}

// flushChunkOut is a flushAnswer as sent, its messages encoded already.
type flushChunkOut struct {
	GW   string            `json:"gw"`
	Msgs []json.RawMessage `json:"msgs,omitempty"`
	Done bool              `json:"done"`
}

type beatMsg struct {
	GW    string `json:"gw"`
	Hello bool   `json:"hello,omitempty"`
}

// listen subscribes to the region's heartbeats and flush requests and
// says hello. The subscriptions end with the NATS connection.
func (h *hub) listen() error {
	if _, err := h.nc.Subscribe(natter.SubjectGateways, h.onBeat); err != nil {
		return err
	}
	sub, err := h.nc.Subscribe(natter.SubjectFlush, h.onFlush)
	if err != nil {
		return err
	}
	// Answers are small and quick; the limit only guards memory.
	_ = sub.SetPendingLimits(1<<14, 64<<20)
	h.beat(time.Now(), true)
	return nil
}

// beat announces this gateway; hello asks the others to announce
// themselves at once. It also forgets gateways silent for three
// intervals.
func (h *hub) beat(now time.Time, hello bool) {
	data, _ := json.Marshal(beatMsg{GW: h.gwID, Hello: hello})
	if err := h.nc.Publish(natter.SubjectGateways, data); err != nil {
		h.log.Warn("heartbeat", "err", err)
	}
	h.peersMu.Lock()
	for gw, at := range h.peers {
		if now.Sub(at) > 3*h.interval {
			delete(h.peers, gw)
		}
	}
	h.peersMu.Unlock()
}

func (h *hub) onBeat(m *nats.Msg) {
	var b beatMsg
	if json.Unmarshal(m.Data, &b) != nil || b.GW == h.gwID || !natter.ValidRoom(b.GW) {
		return
	}
	h.peersMu.Lock()
	_, known := h.peers[b.GW]
	h.peers[b.GW] = time.Now()
	h.peersMu.Unlock()
	h.heardOnce.Do(func() { close(h.heard) })
	if b.Hello || !known {
		// A newcomer (or one we had forgotten) learns of us now rather
		// than at our next beat.
		data, _ := json.Marshal(beatMsg{GW: h.gwID})
		_ = h.nc.Publish(natter.SubjectGateways, data)
	}
}

// awaitPeers waits until another gateway has answered the hello, or d.
// Gateways of a region that start together say hello before the routes
// between their NATS servers are up, and nobody hears it: the hello is
// said again, at 100 ms and then at doubling intervals, until answered.
func (h *hub) awaitPeers(ctx context.Context, d time.Duration) {
	deadline := time.NewTimer(d)
	defer deadline.Stop()
	again := helloAgain
	retry := time.NewTimer(again)
	defer retry.Stop()
	for {
		select {
		case <-h.heard:
			return
		case <-deadline.C:
			return
		case <-ctx.Done():
			return
		case now := <-retry.C:
			h.beat(now, true)
			again *= 2
			retry.Reset(again)
		}
	}
}

// peerList returns the region's other gateways heard from lately.
func (h *hub) peerList() []string {
	h.peersMu.Lock()
	defer h.peersMu.Unlock()
	return slices.Collect(maps.Keys(h.peers))
}

// onFlush answers another gateway's flush request with this gateway's
// messages of the room that are not yet durable, in chunks sized by their
// encoding, the last marked done.
func (h *hub) onFlush(m *nats.Msg) {
	var req flushRequest
	if json.Unmarshal(m.Data, &req) != nil || req.GW == h.gwID || !natter.ValidRoom(req.Room) || !validInbox(req.Reply) {
		return
	}
	// Answered on the room's connection: after the live copies of the
	// messages it returns, which went out on it (accept), as the asker's
	// held frames expect.
	nc := h.nats.room(req.Room)
	send := func(msgs []json.RawMessage, done bool) bool {
		data, _ := json.Marshal(flushChunkOut{GW: h.gwID, Msgs: msgs, Done: done})
		if err := nc.Publish(req.Reply, data); err != nil {
			h.log.Warn("flush answer", "room", req.Room, "to", req.GW, "err", err)
			return false
		}
		return true
	}
	var chunk []json.RawMessage
	size := 0
	for _, msg := range h.pendingOf(req.Room) {
		b, err := json.Marshal(msg)
		if err != nil {
			continue
		}
		if len(chunk) > 0 && size+len(b) > flushChunk {
			if !send(chunk, false) {
				break // the asker stops waiting for us at its timeout
			}
			chunk, size = nil, 0
		}
		chunk = append(chunk, b)
		size += len(b) + 1
	}
	if !send(chunk, true) && len(chunk) > 0 {
		send(nil, true) // at least say we are done
	}
}

func validInbox(s string) bool {
	const prefix = "_INBOX."
	return len(s) > len(prefix) && len(s) <= 128 && s[:len(prefix)] == prefix
}

// flush asks every other gateway of the region heard from lately, but
// those in skip, for room's messages not yet durable, and returns them
// once all have answered or flushWait has passed: a gateway that does not
// answer in time is gone or cut off, and whatever it accepted reaches this
// gateway's members later, through a client's resend or a resync.
func (h *hub) flush(ctx context.Context, name string, skip map[string]struct{}) ([]natter.Message, error) {
	waiting := make(map[string]struct{})
	for _, gw := range h.peerList() {
		if _, ok := skip[gw]; !ok {
			waiting[gw] = struct{}{}
		}
	}
	if len(waiting) == 0 {
		return nil, nil
	}
	// On the room's connection, which also carries its live messages: an
	// answer arrives after the live copies of what it holds.
	nc := h.nats.room(name)
	inbox := nc.NewRespInbox()
	sub, err := nc.SubscribeSync(inbox)
	if err != nil {
		return nil, err
	}
	defer sub.Unsubscribe() //nolint:errcheck // best effort
	req, _ := json.Marshal(flushRequest{Room: name, GW: h.gwID, Reply: inbox})
	if err := nc.Publish(natter.SubjectFlush, req); err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, flushWait)
	defer cancel()
	var out []natter.Message
	for len(waiting) > 0 {
		m, err := sub.NextMsgWithContext(ctx)
		if err != nil {
			h.log.Warn("flush: gateways did not answer", "room", name, "missing", len(waiting))
			return out, nil
		}
		var a flushAnswer
		if json.Unmarshal(m.Data, &a) != nil {
			continue
		}
		if _, skipped := skip[a.GW]; skipped {
			continue
		}
		for _, msg := range a.Msgs {
			if msg.Room == name {
				out = append(out, msg)
			}
		}
		if a.Done {
			delete(waiting, a.GW)
		}
	}
	return out, nil
}
