package natter_test

import (
	"strings"
	"testing"

	"github.com/natter-chat/natter"
)

func TestRoomPatternRule(t *testing.T) {
	for _, tc := range []struct {
		p  string
		ok bool
	}{
		{"lobby", true},
		{"*", true},
		{"team-*", true},
		{"t*", true},
		{strings.Repeat("a", 63) + "*", true},
		{strings.Repeat("a", 64) + "*", false},
		{"", false},
		{"**", false},
		{"a*b", false},
		{"*a", false},
		{"-*", false},
		{"a.*", false},
		{"a>", false},
		{"a b*", false},
		{"rооm*", false},
	} {
		if got := natter.ValidRoomPattern(tc.p); got != tc.ok {
			t.Errorf("ValidRoomPattern(%q) = %v, want %v", tc.p, got, tc.ok)
		}
	}
}

func TestIdentityRoomAccess(t *testing.T) {
	id := natter.Identity{User: "u", Read: []string{"news", "team-*"}, Write: []string{"chat", "dm-u-*"}}
	for _, tc := range []struct {
		room        string
		read, write bool
	}{
		{"news", true, false},
		{"newsroom", false, false},
		{"team-a", true, false},
		{"team-", true, false},
		{"teamb", false, false},
		{"chat", true, true}, // write implies read
		{"dm-u-v", true, true},
		{"dm-v-u", false, false},
		{"other", false, false},
	} {
		if got := id.CanRead(tc.room); got != tc.read {
			t.Errorf("CanRead(%q) = %v, want %v", tc.room, got, tc.read)
		}
		if got := id.CanWrite(tc.room); got != tc.write {
			t.Errorf("CanWrite(%q) = %v, want %v", tc.room, got, tc.write)
		}
	}
	open := natter.OpenIdentity("anyone")
	if !open.CanRead("x") || !open.CanWrite("y") || !open.Expires.IsZero() {
		t.Errorf("open identity %+v must reach every room and never expire", open)
	}
	if (natter.Identity{User: "nobody"}).CanRead("x") {
		t.Error("an identity without patterns must reach no room")
	}
}

func TestIdentityCheck(t *testing.T) {
	many := make([]string, natter.MaxRoomPatterns+1)
	for i := range many {
		many[i] = "r"
	}
	for _, tc := range []struct {
		name string
		id   natter.Identity
		ok   bool
	}{
		{"good", natter.Identity{User: "alice", Read: []string{"a", "b-*"}, Write: []string{"*"}}, true},
		{"bad user", natter.Identity{User: "a.b"}, false},
		{"empty user", natter.Identity{}, false},
		{"bad pattern", natter.Identity{User: "a", Read: []string{"x.>"}}, false},
		{"too many", natter.Identity{User: "a", Read: many}, false},
	} {
		if err := tc.id.Check(); (err == nil) != tc.ok {
			t.Errorf("%s: Check() = %v, want ok=%v", tc.name, err, tc.ok)
		}
	}
}
