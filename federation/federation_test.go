package federation

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/embedded/natstest"
)

func newTestFederation(t *testing.T) (*Federation, *nats.Conn) {
	t.Helper()
	nc := natstest.Conn(t)
	// Never dialled: these tests call the inbound path directly.
	rdb := redis.NewClient(&redis.Options{Addr: "127.0.0.1:1"})
	t.Cleanup(func() { _ = rdb.Close() })
	f, err := New(Config{Region: "here", NATS: nc, Redis: rdb})
	if err != nil {
		t.Fatal(err)
	}
	return f, nc
}

func env(t *testing.T, e envelope) []byte {
	t.Helper()
	b, err := json.Marshal(e)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func TestInboundInjectsOtherRegionsMessagesOnce(t *testing.T) {
	f, nc := newTestFederation(t)
	sub, err := nc.SubscribeSync("natter.room.>")
	if err != nil {
		t.Fatal(err)
	}
	id := natter.NewIDGen(nil).Next().String()
	msg := []byte(`{"op":"msg","room":"lobby","id":"` + id + `","user":"u","body":"hi","ts":1,"region":"there"}`)
	in := env(t, envelope{Region: "there", Src: "there-1", Seq: 1, Kind: "msg", Room: "lobby", Data: msg})
	f.inbound(natter.FederationChannel("there"), in)
	f.inbound(natter.FederationChannel("there"), in) // Redis delivered it twice
	got, err := sub.NextMsg(2 * time.Second)
	if err != nil || got.Subject != natter.MsgSubject("lobby") || string(got.Data) != string(msg) {
		t.Fatalf("injected %v %v", got, err)
	}
	if extra, err := sub.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("injected twice: %s", extra.Data)
	}
	if !f.Seen(id) {
		t.Error("an injected id must count as seen, so repair skips it")
	}
}

func TestInboundRefusesHostileEnvelopes(t *testing.T) {
	f, nc := newTestFederation(t)
	sub, err := nc.SubscribeSync(">")
	if err != nil {
		t.Fatal(err)
	}
	id := natter.NewIDGen(nil).Next().String()
	good := func(room string) []byte {
		return []byte(`{"op":"msg","room":"` + room + `","id":"` + id + `","region":"there"}`)
	}
	for name, tc := range map[string]struct {
		channel string
		data    []byte
	}{
		"not JSON":        {natter.FederationChannel("there"), []byte("{")},
		"wildcard room":   {natter.FederationChannel("there"), env(t, envelope{Region: "there", Src: "s", Seq: 1, Kind: "msg", Room: "*", Data: good("*")})},
		"dotted room":     {natter.FederationChannel("there"), env(t, envelope{Region: "there", Src: "s", Seq: 2, Kind: "evt", Room: "a.b", Data: []byte(`{}`)})},
		"room mismatch":   {natter.FederationChannel("there"), env(t, envelope{Region: "there", Src: "s", Seq: 3, Kind: "msg", Room: "x", Data: good("y")})},
		"bad id":          {natter.FederationChannel("there"), env(t, envelope{Region: "there", Src: "s", Seq: 4, Kind: "msg", Room: "x", Data: []byte(`{"room":"x","id":"nope"}`)})},
		"spoofed channel": {natter.FederationChannel("elsewhere"), env(t, envelope{Region: "there", Src: "s", Seq: 5, Kind: "msg", Room: "x", Data: good("x")})},
		"unknown kind":    {natter.FederationChannel("there"), env(t, envelope{Region: "there", Src: "s", Seq: 6, Kind: "boom", Room: "x"})},
		"bad region name": {natter.FederationChannel("a.b"), env(t, envelope{Region: "a.b", Src: "s", Seq: 7, Kind: "msg", Room: "x", Data: good("x")})},
	} {
		before := testutil.ToFloat64(f.met.malformed)
		f.inbound(tc.channel, tc.data)
		if testutil.ToFloat64(f.met.malformed) != before+1 {
			t.Errorf("%s: not counted as malformed", name)
		}
	}
	// Our own region's traffic coming back is ignored silently.
	f.inbound(natter.FederationChannel("here"), env(t, envelope{Region: "here", Src: "s", Seq: 1, Kind: "msg", Room: "x", Data: good("x")}))
	if m, err := sub.NextMsg(100 * time.Millisecond); err == nil {
		t.Fatalf("injected %s: %s", m.Subject, m.Data)
	}
}

func TestSequenceGapsAreCountedIncludingTrailingOnes(t *testing.T) {
	f, _ := newTestFederation(t)
	for _, seq := range []uint64{1, 2, 5, 6} {
		f.checkSeq(envelope{Src: "a", Seq: seq, Kind: "msg"})
	}
	if got := testutil.ToFloat64(f.met.gaps); got != 2 {
		t.Fatalf("gaps = %v after 1,2,5,6; want 2", got)
	}
	// The publisher lost 7 and 8, then went quiet: its heartbeat says 8.
	f.checkSeq(envelope{Src: "a", Seq: 8, Kind: "hb"})
	if got := testutil.ToFloat64(f.met.gaps); got != 4 {
		t.Fatalf("gaps = %v after a heartbeat at 8; want 4", got)
	}
	// A new source (a restarted bridge) starts a new count, no gap.
	f.checkSeq(envelope{Src: "b", Seq: 1, Kind: "hb"})
	f.checkSeq(envelope{Src: "b", Seq: 2, Kind: "msg"})
	if got := testutil.ToFloat64(f.met.gaps); got != 4 {
		t.Fatalf("gaps = %v for a new source; want still 4", got)
	}
}

// TestForwardFederatesOnlyThisRegionsMessages checks that Forward queues
// this region's message as a live msg frame and ignores other regions'.
func TestForwardFederatesOnlyThisRegionsMessages(t *testing.T) {
	f, _ := newTestFederation(t)
	m := natter.Message{ID: natter.NewIDGen(nil).Next().String(), Room: "lobby", User: "ann", Body: "<b>hi</b>", TS: 1, Region: "here", CID: "c"}
	f.Forward(natter.Message{ID: m.ID, Room: "lobby", Region: "elsewhere"})
	f.Forward(m)
	select {
	case e := <-f.out:
		var got struct {
			Op, ID, Room, User, Body, Region, CID string
		}
		if err := json.Unmarshal(e.Data, &got); err != nil || e.Kind != "msg" || e.Room != "lobby" ||
			got.Op != "msg" || got.ID != m.ID || got.Body != m.Body || got.Region != "here" || got.CID != "c" {
			t.Fatalf("envelope %+v (%s), err %v", e, e.Data, err)
		}
	default:
		t.Fatal("this region's message was not queued")
	}
	select {
	case e := <-f.out:
		t.Fatalf("queued a second envelope %s", e.Data)
	default:
	}
}
