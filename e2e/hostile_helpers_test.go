// Helpers of the hostile-input suite: token keys and tokens, a natter
// started with tokens and tight limits, raw dials from chosen source
// addresses, and the checks that the server is still up.

package e2e

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	"github.com/gorilla/websocket"
)

const (
	hostileSecret   = "e2e-shared-secret-0123456789abcdef"
	hostileAPIKey   = "e2e-server-key-0123456789"
	hostileIssuer   = "natter-e2e"
	hostileAudience = "chat"
)

// tokenKeys are the keys a hostile natter trusts, and their private
// halves for minting tokens.
type tokenKeys struct {
	rsa       *rsa.PrivateKey
	ed        ed25519.PrivateKey
	rsaPubPEM []byte
	files     string // --jwt-public-keys value
}

func newTokenKeys(t *testing.T) *tokenKeys {
	t.Helper()
	rk, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	edPub, ek, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	k := &tokenKeys{rsa: rk, ed: ek}
	dir := t.TempDir()
	var files []string
	for name, pub := range map[string]any{"rsa.pem": &rk.PublicKey, "ed.pem": edPub} {
		der, err := x509.MarshalPKIXPublicKey(pub)
		if err != nil {
			t.Fatal(err)
		}
		data := pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
		if name == "rsa.pem" {
			k.rsaPubPEM = data
		}
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, data, 0o600); err != nil {
			t.Fatal(err)
		}
		files = append(files, path)
	}
	k.files = strings.Join(files, ",")
	return k
}

// claims are a valid token's claims for user, with the given rooms; mods
// override or (with nil) remove claims.
func claims(user string, read, write []string, mods map[string]any) jwt.MapClaims {
	now := time.Now()
	c := jwt.MapClaims{"sub": user, "iss": hostileIssuer, "aud": hostileAudience,
		"iat": now.Unix(), "exp": now.Add(time.Hour).Unix(),
		"rooms": map[string]any{"read": read, "write": write}}
	for k, v := range mods {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

func signToken(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims) string {
	t.Helper()
	s, err := jwt.NewWithClaims(m, c).SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// hs is an HS256 token with the gateway's shared secret.
func hs(t testing.TB, c jwt.MapClaims) string {
	return signToken(t, jwt.SigningMethodHS256, []byte(hostileSecret), c)
}

// unsignedToken is an "alg":"none" token, built by hand: the library
// refuses to make one.
func unsignedToken(c jwt.MapClaims) string {
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	return enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(c) + "."
}

// startHostile starts a one-process natter that requires tokens, with
// tight limits the suite can reach, plus extra flags.
func startHostile(t *testing.T, k *tokenKeys, extra ...string) (*proc, string) {
	t.Helper()
	db := freshDatabase(t)
	uniq := fmt.Sprintf("%d", time.Now().UnixNano())
	args := []string{"--database-url", db, "--data-dir", t.TempDir(),
		"--kafka-topic", "e2e." + uniq, "--kafka-group", "e2e-" + uniq,
		"--jwt-secret", hostileSecret, "--jwt-public-keys", k.files,
		"--jwt-issuer", hostileIssuer, "--jwt-audience", hostileAudience, "--jwt-leeway", "1s",
		"--api-key", hostileAPIKey}
	return startNatter(t, append(args, extra...)...), db
}

// dialToken dials and connects with token, expecting connected.
func dialToken(t *testing.T, p *proc, token string) *client {
	t.Helper()
	c := dial(t, p)
	c.sendJSON(map[string]any{"op": "connect", "token": token})
	c.expect("connected")
	return c
}

// dialFrom opens a WebSocket from source address ip with header; it
// returns the HTTP response of a refused upgrade.
func dialFrom(p *proc, ip string, header http.Header) (*websocket.Conn, *http.Response, error) {
	d := websocket.Dialer{HandshakeTimeout: 30 * time.Second, NetDial: func(network, addr string) (net.Conn, error) {
		nd := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}, Timeout: 30 * time.Second}
		return nd.Dial(network, addr)
	}}
	return d.Dial("ws://"+p.addr+"/ws", header)
}

// httpDo sends a request with an optional bearer credential and returns
// the status and the error code of the body, if any.
func httpDo(t *testing.T, method, url, bearer, body string) (int, string, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, url, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	if bearer != "" {
		req.Header.Set("Authorization", "Bearer "+bearer)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	var e struct {
		Code string `json:"code"`
	}
	_ = json.Unmarshal(data, &e)
	return resp.StatusCode, e.Code, data
}

// assertUp checks the process answers HTTP and that ctl still answers a
// ping: the server survived the case.
func assertUp(t *testing.T, p *proc, ctl *client) {
	t.Helper()
	select {
	case <-p.done:
		t.Fatalf("natter exited:\n%s", tail(p.logs.String(), 40))
	default:
	}
	resp, err := http.Get(p.url("/healthz"))
	if err != nil {
		t.Fatalf("healthz: %v", err)
	}
	resp.Body.Close()
	if resp.StatusCode != 200 {
		t.Fatalf("healthz: %s", resp.Status)
	}
	assertAlive(t, ctl)
}

// expectClose waits for c to be closed by the server with code and
// reason.
func expectClose(t *testing.T, c *client, code int, reason string) {
	t.Helper()
	select {
	case <-c.closed:
	case <-time.After(30 * time.Second):
		t.Fatalf("connection not closed (want %d %s)", code, reason)
	}
	ce, ok := c.err.(*websocket.CloseError)
	if !ok || ce.Code != code || ce.Text != reason {
		t.Fatalf("closed with %v, want %d %q", c.err, code, reason)
	}
}

// metric returns the value of a Prometheus sample line of p, or 0.
func metric(t *testing.T, p *proc, sample string) float64 {
	t.Helper()
	resp, err := http.Get(p.url("/metrics"))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(data), "\n") {
		if v, ok := strings.CutPrefix(line, sample+" "); ok {
			var f float64
			fmt.Sscan(v, &f)
			return f
		}
	}
	return 0
}
