package gateway

import (
	"net/http/httptest"
	"net/netip"
	"testing"

	"golang.org/x/time/rate"
)

func TestOriginPolicy(t *testing.T) {
	for _, tc := range []struct {
		name, host, origin string
		allowed            []string
		ok                 bool
	}{
		{"no origin (not a browser)", "chat.example:8080", "", nil, true},
		{"same origin", "chat.example:8080", "http://chat.example:8080", nil, true},
		{"same origin, other case", "chat.example:8080", "https://CHAT.example:8080", nil, true},
		{"foreign", "chat.example:8080", "https://evil.example", nil, false},
		{"same host, other port", "chat.example:8080", "http://chat.example:9090", nil, false},
		{"null origin", "chat.example:8080", "null", nil, false},
		{"garbage", "chat.example:8080", "::::", nil, false},
		{"listed", "gw.internal:8080", "https://chat.example", []string{"https://chat.example"}, true},
		{"listed with slash", "gw.internal:8080", "https://chat.example", []string{"https://chat.example/"}, true},
		{"listed scheme differs", "gw.internal:8080", "http://chat.example", []string{"https://chat.example"}, false},
		{"suffix is not a match", "gw.internal:8080", "https://chat.example.evil", []string{"https://chat.example"}, false},
		{"star", "gw.internal:8080", "https://anything", []string{"*"}, true},
	} {
		g := &Gateway{cfg: Config{Security: Security{AllowedOrigins: tc.allowed}}}
		r := httptest.NewRequest("GET", "http://"+tc.host+"/ws", nil)
		if tc.origin != "" {
			r.Header.Set("Origin", tc.origin)
		}
		if got := g.originAllowed(r); got != tc.ok {
			t.Errorf("%s: originAllowed = %v, want %v", tc.name, got, tc.ok)
		}
	}
}

func TestClientIPBehindTrustedProxies(t *testing.T) {
	proxies := []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}
	for _, tc := range []struct {
		name, remote string
		xff          []string
		want         string
	}{
		{"direct", "203.0.113.7:5000", nil, "203.0.113.7"},
		{"untrusted peer's header is ignored", "203.0.113.7:5000", []string{"198.51.100.1"}, "203.0.113.7"},
		{"trusted proxy", "10.1.2.3:5000", []string{"198.51.100.1"}, "198.51.100.1"},
		{"client-forged entries left of the real one", "10.1.2.3:5000", []string{"1.1.1.1, 198.51.100.1"}, "198.51.100.1"},
		{"proxy chain", "10.1.2.3:5000", []string{"198.51.100.1, 10.9.9.9"}, "198.51.100.1"},
		{"several headers", "10.1.2.3:5000", []string{"1.1.1.1", "198.51.100.2"}, "198.51.100.2"},
		{"garbage stops the walk", "10.1.2.3:5000", []string{"198.51.100.1, junk"}, "10.1.2.3"},
		{"no header", "10.1.2.3:5000", nil, "10.1.2.3"},
		{"IPv4-mapped peer", "[::ffff:203.0.113.9]:1", nil, "203.0.113.9"},
	} {
		g := &Gateway{cfg: Config{Security: Security{TrustedProxies: proxies}}}
		r := httptest.NewRequest("GET", "/ws", nil)
		r.RemoteAddr = tc.remote
		for _, h := range tc.xff {
			r.Header.Add("X-Forwarded-For", h)
		}
		if got := g.clientIP(r); got != tc.want {
			t.Errorf("%s: clientIP = %s, want %s", tc.name, got, tc.want)
		}
	}
}

func TestAllowTakesFromEveryBucketOrNone(t *testing.T) {
	conn := rate.NewLimiter(0, 3) // never refills: counts tokens exactly
	user := rate.NewLimiter(0, 1)
	if !allow(conn, user) {
		t.Fatal("first message refused")
	}
	if allow(conn, user) {
		t.Fatal("user bucket empty, yet allowed")
	}
	// The refused message must not have cost the connection a token.
	if got := conn.Tokens(); got < 1.99 || got > 2.01 {
		t.Errorf("connection has %.2f tokens, want 2", got)
	}
	if n := countTrue(10, func() bool { return allow(conn, nil) }); n != 2 {
		t.Errorf("connection bucket with 2 tokens left allowed %d", n)
	}
}

func TestAdmissionCountsAndReleases(t *testing.T) {
	l := Limits{ConnsPerIP: 2, ConnsPerUser: 1, RatePerUser: 5, BurstPerUser: 5}
	a := newAdmission(l)
	if n := countTrue(5, func() bool { return a.addIP("x") }); n != 2 {
		t.Fatalf("per-IP limit of 2 admitted %d", n)
	}
	a.dropIP("x")
	if !a.addIP("x") {
		t.Fatal("a released slot is not reusable")
	}
	s := a.addUser("u")
	if s == nil || s.rate == nil || a.addUser("u") != nil {
		t.Fatal("per-user limit of 1 not kept")
	}
	a.dropUser("u")
	if a.addUser("u") == nil {
		t.Fatal("a released user slot is not reusable")
	}
	off := newAdmission(Limits{ConnsPerIP: -1, ConnsPerUser: -1, RatePerUser: -1})
	for i := 0; i < 100; i++ {
		if !off.addIP("x") || off.addUser("u") == nil {
			t.Fatal("negative limits must be off")
		}
	}
}

// countTrue calls f n times and counts the true results.
func countTrue(n int, f func() bool) int {
	c := 0
	for i := 0; i < n; i++ {
		if f() {
			c++
		}
	}
	return c
}
