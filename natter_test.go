package natter_test

import (
	"errors"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/natter-chat/natter"
)

func TestRoomRule(t *testing.T) {
	for _, tc := range []struct {
		name string
		ok   bool
	}{
		{"lobby", true},
		{"a", true},
		{"Room_1-x", true},
		{"9", true},
		{strings.Repeat("a", 64), true},
		{"", false},
		{strings.Repeat("a", 65), false},
		{"a.b", false},
		{"*", false},
		{">", false},
		{"a b", false},
		{"..", false},
		{"_x", false},
		{"-x", false},
		{"a*", false},
		{"a>", false},
		{"a\x00", false},
		{"a\n", false},
		{"rооm", false}, // Cyrillic о, a look-alike
		{"a[b]", false},
		{"a?", false},
	} {
		if got := natter.ValidRoom(tc.name); got != tc.ok {
			t.Errorf("ValidRoom(%q) = %v, want %v", tc.name, got, tc.ok)
		}
		if err := natter.CheckRoom(tc.name); (err == nil) != tc.ok || (err != nil && !errors.Is(err, natter.ErrInvalidRoom)) {
			t.Errorf("CheckRoom(%q) = %v", tc.name, err)
		}
	}
}

func FuzzRoomRule(f *testing.F) {
	for _, s := range []string{"lobby", "a.b", "*", ">", "", "a b"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if !natter.ValidRoom(s) {
			return
		}
		// A valid room must make exactly one NATS token and carry nothing
		// a subject, channel pattern or SQL would treat specially.
		if strings.ContainsAny(s, ".*> \t\r\n[]?\\'\"%") || len(s) > natter.MaxRoomLen {
			t.Fatalf("ValidRoom accepted %q", s)
		}
		if sub := natter.MsgSubject(s); strings.Count(sub, ".") != 3 {
			t.Fatalf("subject %q has the wrong number of tokens", sub)
		}
	})
}

func TestIDRoundTripAndOrder(t *testing.T) {
	g := natter.NewIDGen(nil)
	var ids []string
	for i := 0; i < 10000; i++ {
		id := g.Next()
		s := id.String()
		if len(s) != natter.IDLen {
			t.Fatalf("id %q has length %d", s, len(s))
		}
		back, err := natter.ParseID(s)
		if err != nil || back != id {
			t.Fatalf("ParseID(%q) = %v, %v", s, back, err)
		}
		ids = append(ids, s)
	}
	if !sort.StringsAreSorted(ids) {
		t.Fatal("ids from one generator are not increasing as strings")
	}
}

func TestIDsIncreaseWhenClockStepsBack(t *testing.T) {
	now := time.UnixMilli(1_700_000_000_000)
	g := natter.NewIDGen(func() time.Time { return now })
	a := g.Next().String()
	now = now.Add(-time.Hour)
	b := g.Next().String()
	now = now.Add(2 * time.Hour)
	c := g.Next().String()
	if !(a < b && b < c) {
		t.Fatalf("ids not increasing: %s %s %s", a, b, c)
	}
}

func TestIDTimeAndMinIDAt(t *testing.T) {
	at := time.UnixMilli(1_795_000_000_123)
	g := natter.NewIDGen(func() time.Time { return at })
	id := g.Next()
	if !id.Time().Equal(at) {
		t.Errorf("Time() = %v, want %v", id.Time(), at)
	}
	if min := natter.MinIDAt(at).String(); min > id.String() {
		t.Errorf("MinIDAt %s sorts after %s", min, id)
	}
	if next := natter.MinIDAt(at.Add(time.Millisecond)).String(); next <= id.String() {
		t.Errorf("MinIDAt of the next ms %s does not sort after %s", next, id)
	}
}

func TestParseIDRejects(t *testing.T) {
	valid := natter.NewIDGen(nil).Next().String()
	for _, s := range []string{
		"", "x", valid[:25], valid + "0",
		strings.ToLower(valid),
		"8" + valid[1:],               // overflows 128 bits
		valid[:10] + "I" + valid[11:], // not in the alphabet
		valid[:10] + "U" + valid[11:],
		valid[:10] + " " + valid[11:],
		"' OR 1=1 --               ",
	} {
		if _, err := natter.ParseID(s); !errors.Is(err, natter.ErrInvalidID) {
			t.Errorf("ParseID(%q) = %v, want ErrInvalidID", s, err)
		}
	}
}

func FuzzParseID(f *testing.F) {
	f.Add(natter.NewIDGen(nil).Next().String())
	f.Add("")
	f.Fuzz(func(t *testing.T, s string) {
		id, err := natter.ParseID(s)
		if err == nil && id.String() != s {
			t.Fatalf("ParseID(%q) round-trips to %q", s, id.String())
		}
	})
}

func TestCheckBody(t *testing.T) {
	for _, tc := range []struct {
		body string
		ok   bool
	}{
		{"hello", true},
		{"<img src=x onerror=alert(1)> '; DROP TABLE messages; --", true},
		{"emoji 🎉 and ünïcode", true},
		{"", false},
		{strings.Repeat("x", 4097), false},
		{strings.Repeat("x", 4096), true},
		{"bad \xff utf8", false},
		{"nul \x00 inside", false},
	} {
		if err := natter.CheckBody(tc.body, natter.MaxBodyBytes); (err == nil) != tc.ok {
			t.Errorf("CheckBody(%.20q) = %v, want ok=%v", tc.body, err, tc.ok)
		}
	}
}

func TestCheckCID(t *testing.T) {
	for _, tc := range []struct {
		cid string
		ok  bool
	}{
		{"c1", true},
		{"550e8400-e29b-41d4-a716-446655440000", true},
		{"", false},
		{strings.Repeat("c", 65), false},
		{"has space", false},
		{"tab\t", false},
		{"ünï", false},
	} {
		if err := natter.CheckCID(tc.cid); (err == nil) != tc.ok {
			t.Errorf("CheckCID(%q) = %v, want ok=%v", tc.cid, err, tc.ok)
		}
	}
}
