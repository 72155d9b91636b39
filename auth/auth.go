// Package auth verifies the JSON Web Tokens clients present on connect,
// on refresh and as an HTTP bearer token, and turns them into a
// natter.Identity.
//
// # Keys and algorithms
//
// Every Key is pinned to one algorithm: HS256 (a shared secret of at least
// 32 bytes), RS256 (an RSA public key of at least 2048 bits) or EdDSA (an
// Ed25519 public key). A token is checked only against keys of the
// algorithm its header names, and only algorithms some key has are
// accepted at all. So "alg":"none" is always refused, and so is the
// classic confusion attack of an HS256 token "signed" with a server's RSA
// public key: no HS256 key is that public key. A token with a "kid" header
// is checked against the keys with that id (or without an id); without a
// kid, against every key of its algorithm.
//
// # Claims
//
//	sub    the user name (the room-name rule applies); required
//	exp    required; nbf and iat are checked when present
//	iss    must equal Config.Issuer when that is set
//	aud    must contain Config.Audience when that is set
//	rooms  {"read": [patterns], "write": [patterns]}; absent = no rooms
//
// Patterns are room names or prefixes ending in '*' (natter.Identity).
// Time claims are checked with Config.Leeway of tolerance for clock skew;
// the identity expires at exp + leeway.
package auth

import (
	"context"
	"crypto/ed25519"
	"crypto/rsa"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/natter-chat/natter"
)

// Algorithms a Key may be pinned to.
const (
	HS256 = "HS256"
	RS256 = "RS256"
	EdDSA = "EdDSA"
)

// DefaultLeeway is the clock-skew tolerance when Config.Leeway is zero.
const DefaultLeeway = 30 * time.Second

// MaxTokenBytes bounds the token length accepted; longer ones are refused
// before any parsing.
const MaxTokenBytes = 8 << 10

// Minimum key sizes.
const (
	MinSecretBytes = 32
	MinRSABits     = 2048
)

// Key is one verification key, pinned to one algorithm.
type Key struct {
	// ID matches a token's "kid" header; "" matches any.
	ID string
	// Alg is HS256, RS256 or EdDSA.
	Alg string
	// Key is a []byte secret (HS256), *rsa.PublicKey (RS256) or
	// ed25519.PublicKey (EdDSA).
	Key any
}

// Config configures a Verifier.
type Config struct {
	// Keys verify signatures; at least one is required.
	Keys []Key
	// Issuer, if set, must equal the token's iss.
	Issuer string
	// Audience, if set, must be among the token's aud.
	Audience string
	// Leeway tolerates clock skew on exp, nbf and iat (DefaultLeeway when
	// zero; negative means none).
	Leeway time.Duration
	// Now is the clock (time.Now when nil).
	Now func() time.Time
}

// Verifier checks tokens. It is safe for concurrent use.
type Verifier struct {
	keys   []Key
	leeway time.Duration
	parser *jwt.Parser
}

// New checks cfg's keys and returns a Verifier.
func New(cfg Config) (*Verifier, error) {
	if len(cfg.Keys) == 0 {
		return nil, errors.New("auth: no keys configured")
	}
	methods := map[string]bool{}
	for i, k := range cfg.Keys {
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("auth: key %d (%s%s): %w", i+1, k.Alg, kidText(k.ID), err)
		}
		methods[k.Alg] = true
	}
	var valid []string
	for _, m := range []string{HS256, RS256, EdDSA} {
		if methods[m] {
			valid = append(valid, m)
		}
	}
	leeway := cfg.Leeway
	switch {
	case leeway == 0:
		leeway = DefaultLeeway
	case leeway < 0:
		leeway = 0
	}
	opts := []jwt.ParserOption{
		jwt.WithValidMethods(valid),
		jwt.WithLeeway(leeway),
		jwt.WithExpirationRequired(),
		jwt.WithIssuedAt(),
		jwt.WithStrictDecoding(),
	}
	if cfg.Issuer != "" {
		opts = append(opts, jwt.WithIssuer(cfg.Issuer))
	}
	if cfg.Audience != "" {
		opts = append(opts, jwt.WithAudience(cfg.Audience))
	}
	if cfg.Now != nil {
		opts = append(opts, jwt.WithTimeFunc(cfg.Now))
	}
	return &Verifier{keys: cfg.Keys, leeway: leeway, parser: jwt.NewParser(opts...)}, nil
}

type claims struct {
	jwt.RegisteredClaims
	Rooms *struct {
		Read  []string `json:"read"`
		Write []string `json:"write"`
	} `json:"rooms,omitempty"`
}

// Authenticate verifies token and returns the identity it carries. An
// expired token gives an error wrapping natter.ErrTokenExpired; other
// errors say what was wrong without echoing the token.
func (v *Verifier) Authenticate(_ context.Context, token string) (natter.Identity, error) {
	if token == "" {
		return natter.Identity{}, errors.New("token is empty")
	}
	if len(token) > MaxTokenBytes {
		return natter.Identity{}, fmt.Errorf("token is longer than %d bytes", MaxTokenBytes)
	}
	var c claims
	if _, err := v.parser.ParseWithClaims(token, &c, v.keyFor); err != nil {
		return natter.Identity{}, describe(err)
	}
	id := natter.Identity{User: c.Subject}
	if c.ExpiresAt != nil {
		id.Expires = c.ExpiresAt.Add(v.leeway)
	}
	if c.Rooms != nil {
		id.Read, id.Write = c.Rooms.Read, c.Rooms.Write
	}
	if c.Subject == "" {
		return natter.Identity{}, errors.New("token has no sub (the user)")
	}
	if err := id.Check(); err != nil {
		return natter.Identity{}, fmt.Errorf("token claims: %w", err)
	}
	return id, nil
}

// keyFor returns the keys a token may be verified with: those of its
// algorithm whose id matches its kid. The parser has already refused
// algorithms no key has.
func (v *Verifier) keyFor(t *jwt.Token) (any, error) {
	alg := t.Method.Alg()
	kid, _ := t.Header["kid"].(string)
	var set jwt.VerificationKeySet
	for _, k := range v.keys {
		if k.Alg == alg && (k.ID == "" || k.ID == kid) {
			set.Keys = append(set.Keys, k.Key)
		}
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("no key for this token")
	}
	return set, nil
}

// describe turns a jwt error into a short message for the client.
func describe(err error) error {
	switch {
	case errors.Is(err, jwt.ErrTokenExpired):
		return natter.ErrTokenExpired
	case errors.Is(err, jwt.ErrTokenMalformed):
		return errors.New("token is malformed")
	case errors.Is(err, jwt.ErrTokenUnverifiable):
		return errors.New("no key matches the token's kid and algorithm")
	case errors.Is(err, jwt.ErrTokenSignatureInvalid):
		return errors.New("token signature is invalid or its algorithm is not accepted")
	case errors.Is(err, jwt.ErrTokenRequiredClaimMissing):
		for _, c := range []string{"iss", "aud"} {
			if strings.Contains(err.Error(), c+" claim") {
				return errors.New("token has no " + c)
			}
		}
		return errors.New("token has no exp")
	case errors.Is(err, jwt.ErrTokenNotValidYet):
		return errors.New("token is not valid yet (nbf)")
	case errors.Is(err, jwt.ErrTokenUsedBeforeIssued):
		return errors.New("token is issued in the future (iat)")
	case errors.Is(err, jwt.ErrTokenInvalidIssuer):
		return errors.New("token issuer is not accepted")
	case errors.Is(err, jwt.ErrTokenInvalidAudience):
		return errors.New("token audience is not accepted")
	default:
		return errors.New("token is invalid")
	}
}

func checkKey(k Key) error {
	switch k.Alg {
	case HS256:
		b, ok := k.Key.([]byte)
		if !ok {
			return errors.New("an HS256 key must be a secret")
		}
		if len(b) < MinSecretBytes {
			return fmt.Errorf("secret is %d bytes, at least %d are needed", len(b), MinSecretBytes)
		}
	case RS256:
		pk, ok := k.Key.(*rsa.PublicKey)
		if !ok {
			return errors.New("an RS256 key must be an RSA public key")
		}
		if pk.N.BitLen() < MinRSABits {
			return fmt.Errorf("RSA key has %d bits, at least %d are needed", pk.N.BitLen(), MinRSABits)
		}
	case EdDSA:
		pk, ok := k.Key.(ed25519.PublicKey)
		if !ok || len(pk) != ed25519.PublicKeySize {
			return errors.New("an EdDSA key must be an Ed25519 public key")
		}
	default:
		return fmt.Errorf("algorithm %q is not supported; use HS256, RS256 or EdDSA", k.Alg)
	}
	return nil
}

func kidText(kid string) string {
	if kid == "" {
		return ""
	}
	return ", kid " + kid
}
