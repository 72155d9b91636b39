package auth_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"math/big"
	"strings"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/auth"
)

var (
	now    = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)
	secret = []byte("0123456789abcdef0123456789abcdef")
	rsaKey *rsa.PrivateKey
	edPub  ed25519.PublicKey
	edKey  ed25519.PrivateKey
)

func init() {
	var err error
	if rsaKey, err = rsa.GenerateKey(rand.Reader, 2048); err != nil {
		panic(err)
	}
	if edPub, edKey, err = ed25519.GenerateKey(rand.Reader); err != nil {
		panic(err)
	}
}

func pemOf(t testing.TB, pub any) []byte {
	t.Helper()
	der, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		t.Fatal(err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PUBLIC KEY", Bytes: der})
}

func verifier(t testing.TB, cfg auth.Config) *auth.Verifier {
	t.Helper()
	rk, err := auth.ParsePublicKeyPEM(pemOf(t, &rsaKey.PublicKey))
	if err != nil {
		t.Fatal(err)
	}
	ek, err := auth.ParsePublicKeyPEM(pemOf(t, edPub))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Keys == nil {
		cfg.Keys = []auth.Key{auth.SecretKey(secret), rk, ek}
	}
	cfg.Now = func() time.Time { return now }
	v, err := auth.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return v
}

func sign(t testing.TB, m jwt.SigningMethod, key any, c jwt.MapClaims, hdr map[string]any) string {
	t.Helper()
	tok := jwt.NewWithClaims(m, c)
	for k, v := range hdr {
		tok.Header[k] = v
	}
	s, err := tok.SignedString(key)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func claims(extra map[string]any) jwt.MapClaims {
	c := jwt.MapClaims{"sub": "alice", "exp": now.Add(time.Hour).Unix(), "iat": now.Unix(),
		"rooms": map[string]any{"read": []string{"news"}, "write": []string{"team-*"}}}
	for k, v := range extra {
		if v == nil {
			delete(c, k)
		} else {
			c[k] = v
		}
	}
	return c
}

// noneToken builds an unsigned token by hand: the library refuses to.
func noneToken(c jwt.MapClaims) string {
	enc := func(v any) string { b, _ := json.Marshal(v); return base64.RawURLEncoding.EncodeToString(b) }
	return enc(map[string]string{"alg": "none", "typ": "JWT"}) + "." + enc(c) + "."
}

func TestAuthenticate(t *testing.T) {
	v := verifier(t, auth.Config{Issuer: "issuer", Audience: "chat", Leeway: 10 * time.Second})
	std := map[string]any{"iss": "issuer", "aud": "chat"}
	with := func(m map[string]any) map[string]any {
		out := map[string]any{}
		for k, x := range std {
			out[k] = x
		}
		for k, x := range m {
			out[k] = x
		}
		return out
	}
	rsaPEM := pemOf(t, &rsaKey.PublicKey)
	for _, tc := range []struct {
		name  string
		token string
		err   string // "" = accepted
	}{
		{"HS256", sign(t, jwt.SigningMethodHS256, secret, claims(std), nil), ""},
		{"RS256", sign(t, jwt.SigningMethodRS256, rsaKey, claims(std), nil), ""},
		{"EdDSA", sign(t, jwt.SigningMethodEdDSA, edKey, claims(std), nil), ""},
		{"exp within leeway", sign(t, jwt.SigningMethodHS256, secret, claims(with(map[string]any{"exp": now.Add(-5 * time.Second).Unix()})), nil), ""},
		{"empty", "", "token is empty"},
		{"garbage", "not-a-token", "malformed"},
		{"three garbage parts", "a.b.c", "malformed"},
		{"too long", strings.Repeat("a", auth.MaxTokenBytes+1), "longer than"},
		{"alg none", noneToken(claims(std)), "algorithm is not accepted"},
		{"HS256 keyed with the RSA public key", sign(t, jwt.SigningMethodHS256, rsaPEM, claims(std), nil), "signature is invalid"},
		{"HS384 not configured", sign(t, jwt.SigningMethodHS384, secret, claims(std), nil), "algorithm is not accepted"},
		{"wrong secret", sign(t, jwt.SigningMethodHS256, []byte("another secret of 32 bytes......"), claims(std), nil), "signature is invalid"},
		{"unknown kid", sign(t, jwt.SigningMethodHS256, secret, claims(std), map[string]any{"kid": "k9"}), ""}, // keys without an id match any kid
		{"expired", sign(t, jwt.SigningMethodHS256, secret, claims(with(map[string]any{"exp": now.Add(-time.Minute).Unix()})), nil), natter.ErrTokenExpired.Error()},
		{"no exp", sign(t, jwt.SigningMethodHS256, secret, claims(with(map[string]any{"exp": nil})), nil), "no exp"},
		{"not yet valid", sign(t, jwt.SigningMethodHS256, secret, claims(with(map[string]any{"nbf": now.Add(time.Minute).Unix()})), nil), "not valid yet"},
		{"issued in the future", sign(t, jwt.SigningMethodHS256, secret, claims(with(map[string]any{"iat": now.Add(time.Hour).Unix()})), nil), "issued in the future"},
		{"wrong issuer", sign(t, jwt.SigningMethodHS256, secret, claims(with(map[string]any{"iss": "evil"})), nil), "issuer"},
		{"no issuer", sign(t, jwt.SigningMethodHS256, secret, claims(with(map[string]any{"iss": nil})), nil), "no iss"},
		{"wrong audience", sign(t, jwt.SigningMethodHS256, secret, claims(with(map[string]any{"aud": []string{"other"}})), nil), "audience"},
		{"no sub", sign(t, jwt.SigningMethodHS256, secret, claims(with(map[string]any{"sub": nil})), nil), "no sub"},
		{"bad sub", sign(t, jwt.SigningMethodHS256, secret, claims(with(map[string]any{"sub": "a.b"})), nil), "invalid user"},
		{"bad room pattern", sign(t, jwt.SigningMethodHS256, secret, claims(with(map[string]any{"rooms": map[string]any{"read": []string{">"}}})), nil), "invalid room pattern"},
		{"rooms of the wrong type", sign(t, jwt.SigningMethodHS256, secret, claims(with(map[string]any{"rooms": "everything"})), nil), "malformed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			id, err := v.Authenticate(context.Background(), tc.token)
			if tc.err == "" {
				if err != nil {
					t.Fatalf("refused: %v", err)
				}
				if id.User != "alice" || !id.CanRead("news") || id.CanWrite("news") || !id.CanWrite("team-x") || id.Expires.IsZero() {
					t.Errorf("identity %+v", id)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.err) {
				t.Fatalf("err = %v, want one containing %q", err, tc.err)
			}
			if tc.err == natter.ErrTokenExpired.Error() && !errors.Is(err, natter.ErrTokenExpired) {
				t.Errorf("err %v does not wrap natter.ErrTokenExpired", err)
			}
			if len(tc.token) > 20 && strings.Contains(err.Error(), tc.token[:20]) {
				t.Errorf("error echoes the token: %v", err)
			}
		})
	}
}

func TestIdentityExpiresAtExpPlusLeeway(t *testing.T) {
	v := verifier(t, auth.Config{Leeway: 7 * time.Second})
	exp := now.Add(time.Minute).Truncate(time.Second)
	id, err := v.Authenticate(context.Background(), sign(t, jwt.SigningMethodEdDSA, edKey, claims(map[string]any{"exp": exp.Unix()}), nil))
	if err != nil {
		t.Fatal(err)
	}
	if !id.Expires.Equal(exp.Add(7 * time.Second)) {
		t.Errorf("expires %v, want %v", id.Expires, exp.Add(7*time.Second))
	}
}

func TestKidSelectsTheKey(t *testing.T) {
	other := []byte("a second secret, also 32 bytes..")
	v := verifier(t, auth.Config{Keys: []auth.Key{{ID: "a", Alg: auth.HS256, Key: secret}, {ID: "b", Alg: auth.HS256, Key: other}}})
	ok := sign(t, jwt.SigningMethodHS256, other, claims(nil), map[string]any{"kid": "b"})
	if _, err := v.Authenticate(context.Background(), ok); err != nil {
		t.Errorf("kid b with key b: %v", err)
	}
	wrong := sign(t, jwt.SigningMethodHS256, other, claims(nil), map[string]any{"kid": "a"})
	if _, err := v.Authenticate(context.Background(), wrong); err == nil {
		t.Error("kid a with key b accepted")
	}
	unknown := sign(t, jwt.SigningMethodHS256, secret, claims(nil), map[string]any{"kid": "z"})
	if _, err := v.Authenticate(context.Background(), unknown); err == nil || !strings.Contains(err.Error(), "no key") {
		t.Errorf("unknown kid: %v", err)
	}
}

func TestNewRefusesWeakOrWrongKeys(t *testing.T) {
	small, err := rsa.GenerateKey(rand.Reader, 1024)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		keys []auth.Key
		err  string
	}{
		{"none", nil, "no keys"},
		{"short secret", []auth.Key{auth.SecretKey([]byte("short"))}, "at least 32"},
		{"small RSA", []auth.Key{{Alg: auth.RS256, Key: &small.PublicKey}}, "at least 2048"},
		{"RSA key as HS256", []auth.Key{{Alg: auth.HS256, Key: &rsaKey.PublicKey}}, "must be a secret"},
		{"secret as RS256", []auth.Key{{Alg: auth.RS256, Key: secret}}, "RSA public key"},
		{"alg none", []auth.Key{{Alg: "none", Key: secret}}, "not supported"},
	} {
		if _, err := auth.New(auth.Config{Keys: tc.keys}); err == nil || !strings.Contains(err.Error(), tc.err) {
			t.Errorf("%s: err = %v, want %q", tc.name, err, tc.err)
		}
	}
}

func TestParsePublicKeyPEM(t *testing.T) {
	k, err := auth.ParsePublicKeyPEM(pemOf(t, &rsaKey.PublicKey))
	if err != nil || k.Alg != auth.RS256 {
		t.Errorf("RSA PKIX: %+v %v", k.Alg, err)
	}
	pkcs1 := pem.EncodeToMemory(&pem.Block{Type: "RSA PUBLIC KEY", Bytes: x509.MarshalPKCS1PublicKey(&rsaKey.PublicKey)})
	if k, err := auth.ParsePublicKeyPEM(pkcs1); err != nil || k.Alg != auth.RS256 {
		t.Errorf("RSA PKCS1: %+v %v", k.Alg, err)
	}
	if k, err := auth.ParsePublicKeyPEM(pemOf(t, edPub)); err != nil || k.Alg != auth.EdDSA {
		t.Errorf("Ed25519: %+v %v", k.Alg, err)
	}
	der, _ := x509.MarshalPKCS8PrivateKey(edKey)
	priv := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	if _, err := auth.ParsePublicKeyPEM(priv); err == nil || !strings.Contains(err.Error(), "not a public key") {
		t.Errorf("private key accepted: %v", err)
	}
	if _, err := auth.ParsePublicKeyPEM([]byte("junk")); err == nil {
		t.Error("junk accepted")
	}
}

func TestParseJWKS(t *testing.T) {
	b64 := base64.RawURLEncoding.EncodeToString
	e := big.NewInt(int64(rsaKey.E)).Bytes()
	set := map[string]any{"keys": []map[string]any{
		{"kty": "RSA", "kid": "r1", "alg": "RS256", "use": "sig", "n": b64(rsaKey.N.Bytes()), "e": b64(e)},
		{"kty": "OKP", "kid": "e1", "crv": "Ed25519", "x": b64(edPub)},
		{"kty": "oct", "kid": "h1", "k": b64(secret)},
	}}
	data, _ := json.Marshal(set)
	keys, err := auth.ParseJWKS(data)
	if err != nil {
		t.Fatal(err)
	}
	if len(keys) != 3 || keys[0].Alg != auth.RS256 || keys[1].Alg != auth.EdDSA || keys[2].Alg != auth.HS256 {
		t.Fatalf("keys %+v", keys)
	}
	v, err := auth.New(auth.Config{Keys: keys, Now: func() time.Time { return now }})
	if err != nil {
		t.Fatal(err)
	}
	for _, tok := range []string{
		sign(t, jwt.SigningMethodRS256, rsaKey, claims(nil), map[string]any{"kid": "r1"}),
		sign(t, jwt.SigningMethodEdDSA, edKey, claims(nil), map[string]any{"kid": "e1"}),
		sign(t, jwt.SigningMethodHS256, secret, claims(nil), map[string]any{"kid": "h1"}),
	} {
		if _, err := v.Authenticate(context.Background(), tok); err != nil {
			t.Errorf("JWKS key refused its token: %v", err)
		}
	}
	for _, bad := range []string{
		`{}`, `not json`,
		`{"keys":[{"kty":"EC","crv":"P-256"}]}`,
		`{"keys":[{"kty":"RSA","alg":"HS256","n":"` + b64(rsaKey.N.Bytes()) + `","e":"AQAB"}]}`,
		`{"keys":[{"kty":"oct","use":"enc","k":"` + b64(secret) + `"}]}`,
		`{"keys":[{"kty":"OKP","crv":"Ed25519","x":"AAAA"}]}`,
	} {
		if _, err := auth.ParseJWKS([]byte(bad)); err == nil {
			t.Errorf("JWKS %s accepted", bad)
		}
	}
}

// FuzzAuthenticate: whatever the token, Authenticate never panics, and
// accepts nothing that was not signed with a configured key.
func FuzzAuthenticate(f *testing.F) {
	v := verifier(f, auth.Config{})
	good := sign(f, jwt.SigningMethodHS256, secret, claims(nil), nil)
	f.Add(good)
	f.Add(noneToken(claims(nil)))
	f.Add("a.b.c")
	f.Add(sign(f, jwt.SigningMethodEdDSA, edKey, claims(nil), nil))
	f.Fuzz(func(t *testing.T, tok string) {
		id, err := v.Authenticate(context.Background(), tok)
		if err != nil {
			return
		}
		if id.Check() != nil {
			t.Fatalf("accepted an invalid identity %+v", id)
		}
		// Whatever the fuzzer accepted carries a signature: mutations of
		// the good seed that still verify are re-encodings of it.
		parts := strings.Split(tok, ".")
		if len(parts) != 3 || parts[2] == "" {
			t.Fatalf("accepted a token without a signature: %q", tok)
		}
	})
}
