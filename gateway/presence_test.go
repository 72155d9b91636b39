package gateway

import (
	"encoding/json"
	"io"
	"log/slog"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter/embedded/natstest"
)

// Other gateways' members come and go one event at a time; local members
// hear of a user only when the room as a whole gains or loses them.
func TestRemotePresenceEvents(t *testing.T) {
	l := &memLog{}
	g, err := New(Config{ID: "gw-a", NATS: natstest.Conn(t), History: l, DurableLog: l,
		Log: slog.New(slog.NewTextHandler(io.Discard, nil))})
	if err != nil {
		t.Fatal(err)
	}
	p := dialPairs(t, g, 1)[0] // user "u"
	if _, err := g.hub.join(p.c, "r"); err != nil {
		t.Fatal(err)
	}
	r := g.hub.rooms["r"]
	ev := func(gw, typ, user string) {
		data, _ := json.Marshal(event{T: typ, User: user, GW: gw, Region: "local"})
		r.onEvent(g.hub, data)
	}
	ev("gw-b", "join", "x")         // the room gains x
	ev("gw-b", "join", "x")         // repeated
	ev("gw-c", "join", "x")         // x on a second gateway too
	ev("gw-b", "join", "u")         // u is here already
	ev("gw-b", "join", "not valid") // refused
	ev("gw-b", "leave", "x")        // x is still on gw-c
	ev("gw-c", "leave", "x")        // the room loses x
	ev("gw-d", "leave", "y")        // a gateway never heard of

	var got []string
	_ = p.client.SetReadDeadline(time.Now().Add(500 * time.Millisecond))
	for {
		_, data, err := p.client.ReadMessage()
		if err != nil {
			break
		}
		for _, line := range strings.Split(string(data), "\n") {
			var f struct {
				Op           string
				Joined, Left []string
			}
			if json.Unmarshal([]byte(line), &f) == nil && f.Op == "presence" {
				got = append(got, "joined "+strings.Join(f.Joined, ",")+" left "+strings.Join(f.Left, ","))
			}
		}
	}
	want := []string{"joined x left ", "joined  left x"}
	if strings.Join(got, "; ") != strings.Join(want, "; ") {
		t.Errorf("presence frames %q, want %q", got, want)
	}
	r.mu.RLock()
	defer r.mu.RUnlock()
	if got := r.membersLocked(); strings.Join(got, ",") != "u" {
		t.Errorf("members %v, want [u]", got)
	}
	if _, ok := r.remote["gw-c"]; ok {
		t.Error("gw-c kept with no members")
	}
	if _, ok := r.remote["gw-d"]; ok {
		t.Error("a leave from an unknown gateway left an entry")
	}
}

// BenchmarkRemoteRoomFill fills a room with 5,000 members of another
// gateway, one join event each, as a gateway following the room sees it.
func BenchmarkRemoteRoomFill(b *testing.B) {
	h := newHub(nil, "gw-a", "local", time.Second, nil, slog.New(slog.NewTextHandler(io.Discard, nil)), newMetrics())
	const members = 5000
	events := make([][]byte, members)
	for i := range events {
		events[i], _ = json.Marshal(event{T: "join", User: "user" + strconv.Itoa(i), GW: "gw-b", Region: "local"})
	}
	b.ReportAllocs()
	for b.Loop() {
		r := &room{name: "r", conns: make(map[*conn]struct{}), users: make(map[string]int), remote: make(map[string]*remoteGW), keep: &h.retainFrom}
		for _, e := range events {
			r.onEvent(h, e)
		}
		if len(r.remote["gw-b"].users) != members {
			b.Fatalf("%d members", len(r.remote["gw-b"].users))
		}
	}
}
