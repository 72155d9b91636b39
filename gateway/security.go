// Who may use the gateway: token authentication, the open mode, the
// Origin policy of /ws, the client address behind trusted proxies, and
// the credentials of the HTTP API.

package gateway

import (
	"context"
	"crypto/subtle"
	"errors"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strings"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/protocol"
)

// Authenticator verifies a client's token. An expired token gives an
// error wrapping natter.ErrTokenExpired.
type Authenticator interface {
	Authenticate(ctx context.Context, token string) (natter.Identity, error)
}

// Security configures who may use the gateway. The zero value accepts no
// tokens, only same-origin browsers, and trusts no proxy.
type Security struct {
	// Auth verifies tokens on connect, refresh and as an HTTP bearer
	// token; nil accepts no tokens (then only Config.Open lets anyone in).
	Auth Authenticator
	// APIKey, when set, is the server key a backend presents as
	// "Authorization: Bearer <key>" to publish over HTTP (as any user)
	// and to read any room's history and presence.
	APIKey string
	// AllowedOrigins are browser origins ("https://chat.example.com")
	// allowed on /ws besides the gateway's own; "*" allows any.
	AllowedOrigins []string
	// TrustedProxies are the addresses of reverse proxies whose
	// X-Forwarded-For names the client; the per-IP limit counts that
	// client instead of the proxy.
	TrustedProxies []netip.Prefix
	// Compression negotiates permessage-deflate. Frames are limited after
	// decompression by Limits.HardFrameBytes either way.
	Compression bool
}

var (
	errNoCredentials = errors.New("a token is required")
	errNoTokenAuth   = errors.New("this gateway accepts no tokens")
)

// identify returns the identity a connect frame proves: its token's, or
// in open mode the user it names.
func (g *Gateway) identify(ctx context.Context, f protocol.ClientFrame) (natter.Identity, error) {
	if f.Token != "" {
		return g.verifyToken(ctx, f.Token)
	}
	if g.cfg.Open {
		if f.User == "" {
			return natter.Identity{}, errors.New("user is required")
		}
		return natter.OpenIdentity(f.User), nil
	}
	return natter.Identity{}, errNoCredentials
}

func (g *Gateway) verifyToken(ctx context.Context, token string) (natter.Identity, error) {
	if g.cfg.Security.Auth == nil {
		return natter.Identity{}, errNoTokenAuth
	}
	id, err := g.cfg.Security.Auth.Authenticate(ctx, token)
	if err != nil {
		g.sec.authFailures.WithLabelValues(authReason(err)).Inc()
		return natter.Identity{}, err
	}
	return id, nil
}

// authCode is the error code for a refused token.
func authCode(err error) protocol.Code {
	if errors.Is(err, natter.ErrTokenExpired) {
		return protocol.CodeTokenExpired
	}
	return protocol.CodeUnauthorized
}

func authReason(err error) string {
	if errors.Is(err, natter.ErrTokenExpired) {
		return "expired"
	}
	return "invalid"
}

// originAllowed reports whether a WebSocket upgrade from r's Origin is
// allowed: no Origin (not a browser), the gateway's own host, or a listed
// origin. This is what stops another site's page from opening a socket
// with its visitor's cookies or network position.
func (g *Gateway) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	u, err := url.Parse(origin)
	if err != nil || u.Host == "" {
		return false
	}
	if strings.EqualFold(u.Host, r.Host) {
		return true
	}
	self := strings.ToLower(u.Scheme + "://" + u.Host)
	for _, a := range g.cfg.Security.AllowedOrigins {
		if a == "*" || strings.EqualFold(strings.TrimSuffix(a, "/"), self) {
			return true
		}
	}
	return false
}

// clientIP is the address the per-IP limit counts: the peer, or, when the
// peer is a trusted proxy, the nearest untrusted address in
// X-Forwarded-For.
func (g *Gateway) clientIP(r *http.Request) string {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host
	}
	peer = peer.Unmap()
	if !g.trusted(peer) {
		return peer.String()
	}
	hops := strings.Split(strings.Join(r.Header.Values("X-Forwarded-For"), ","), ",")
	for i := len(hops) - 1; i >= 0; i-- {
		a, err := netip.ParseAddr(strings.TrimSpace(hops[i]))
		if err != nil {
			break // a forged or broken entry: stop at the last good one
		}
		peer = a.Unmap()
		if !g.trusted(peer) {
			break
		}
	}
	return peer.String()
}

func (g *Gateway) trusted(a netip.Addr) bool {
	for _, p := range g.cfg.Security.TrustedProxies {
		if p.Contains(a) {
			return true
		}
	}
	return false
}

// caller is who made an HTTP API request.
type caller struct {
	server bool            // presented the API key
	open   bool            // no credentials, in open mode
	id     natter.Identity // a user's token
}

// apiCaller authenticates an HTTP API request; on failure it has answered.
func (g *Gateway) apiCaller(w http.ResponseWriter, r *http.Request) (caller, bool) {
	h := r.Header.Get("Authorization")
	if h == "" {
		if g.cfg.Open {
			return caller{open: true}, true
		}
		writeErr(w, http.StatusUnauthorized, protocol.CodeUnauthorized, "send Authorization: Bearer <token or API key>")
		return caller{}, false
	}
	scheme, cred, ok := strings.Cut(h, " ")
	if !ok || !strings.EqualFold(scheme, "Bearer") || cred == "" {
		writeErr(w, http.StatusUnauthorized, protocol.CodeUnauthorized, "Authorization must be Bearer <token or API key>")
		return caller{}, false
	}
	if key := g.cfg.Security.APIKey; key != "" && subtle.ConstantTimeCompare([]byte(cred), []byte(key)) == 1 {
		return caller{server: true}, true
	}
	id, err := g.verifyToken(r.Context(), cred)
	if err != nil {
		writeErr(w, http.StatusUnauthorized, authCode(err), err.Error())
		return caller{}, false
	}
	return caller{id: id}, true
}

// mayPublish reports whether c may publish over HTTP: the API key, or
// open mode when no key is configured.
func (g *Gateway) mayPublish(w http.ResponseWriter, c caller) bool {
	switch {
	case c.server:
		return true
	case c.open && g.cfg.Security.APIKey == "":
		return true
	case c.open:
		writeErr(w, http.StatusUnauthorized, protocol.CodeUnauthorized, "publishing needs the server API key: Authorization: Bearer <key>")
	default:
		writeErr(w, http.StatusForbidden, protocol.CodeForbidden, "publishing over HTTP needs the server API key, not a user token")
	}
	return false
}

// mayRead reports whether c may read room's history and presence.
func (g *Gateway) mayRead(w http.ResponseWriter, c caller, room string) bool {
	if c.server || c.open || c.id.CanRead(room) {
		return true
	}
	writeErr(w, http.StatusForbidden, protocol.CodeForbidden, "the token does not allow this room")
	return false
}
