// Loading keys: a shared secret, PEM public keys, a JWKS file.

package auth

import (
	"crypto/ed25519"
	"crypto/rsa"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"strings"
)

// SecretKey is an HS256 key from a shared secret.
func SecretKey(secret []byte) Key { return Key{Alg: HS256, Key: secret} }

// ReadSecretFile reads an HS256 secret from a file; surrounding
// whitespace (a trailing newline) is not part of the secret.
func ReadSecretFile(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("read secret: %w", err)
	}
	return SecretKey([]byte(strings.TrimSpace(string(b)))), nil
}

// ParsePublicKeyPEM reads a PEM "PUBLIC KEY" (PKIX) or "RSA PUBLIC KEY"
// (PKCS #1) block. An RSA key is pinned to RS256, an Ed25519 key to
// EdDSA.
func ParsePublicKeyPEM(data []byte) (Key, error) {
	block, _ := pem.Decode(data)
	if block == nil {
		return Key{}, errors.New("no PEM block found")
	}
	var pub any
	var err error
	switch block.Type {
	case "PUBLIC KEY":
		pub, err = x509.ParsePKIXPublicKey(block.Bytes)
	case "RSA PUBLIC KEY":
		pub, err = x509.ParsePKCS1PublicKey(block.Bytes)
	default:
		return Key{}, fmt.Errorf("PEM block %q is not a public key (a private key must never be given to the gateway)", block.Type)
	}
	if err != nil {
		return Key{}, fmt.Errorf("parse public key: %w", err)
	}
	return pinned("", pub)
}

// ReadPublicKeyFile reads a PEM public key file (ParsePublicKeyPEM).
func ReadPublicKeyFile(path string) (Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return Key{}, fmt.Errorf("read public key: %w", err)
	}
	k, err := ParsePublicKeyPEM(b)
	if err != nil {
		return Key{}, fmt.Errorf("%s: %w", path, err)
	}
	return k, nil
}

type jwk struct {
	Kty string `json:"kty"`
	Kid string `json:"kid"`
	Alg string `json:"alg"`
	Use string `json:"use"`
	Crv string `json:"crv"`
	N   string `json:"n"`
	E   string `json:"e"`
	X   string `json:"x"`
	K   string `json:"k"`
}

// ParseJWKS reads a JSON Web Key Set: RSA keys ("kty":"RSA") become RS256
// keys, Ed25519 keys ("kty":"OKP","crv":"Ed25519") EdDSA keys, and
// symmetric keys ("kty":"oct") HS256 keys. A key's "alg", when present,
// must agree; keys meant for encryption ("use":"enc") are refused.
func ParseJWKS(data []byte) ([]Key, error) {
	var set struct {
		Keys []jwk `json:"keys"`
	}
	if err := json.Unmarshal(data, &set); err != nil {
		return nil, fmt.Errorf("JWKS is not valid JSON: %w", err)
	}
	if len(set.Keys) == 0 {
		return nil, errors.New("JWKS has no keys")
	}
	var out []Key
	for i, j := range set.Keys {
		k, err := j.key()
		if err != nil {
			return nil, fmt.Errorf("JWKS key %d%s: %w", i+1, kidText(j.Kid), err)
		}
		if j.Alg != "" && j.Alg != k.Alg {
			return nil, fmt.Errorf("JWKS key %d%s: alg %q does not fit a %s key", i+1, kidText(j.Kid), j.Alg, j.Kty)
		}
		if err := checkKey(k); err != nil {
			return nil, fmt.Errorf("JWKS key %d%s: %w", i+1, kidText(j.Kid), err)
		}
		out = append(out, k)
	}
	return out, nil
}

// ReadJWKSFile reads a JWKS file (ParseJWKS).
func ReadJWKSFile(path string) ([]Key, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read JWKS: %w", err)
	}
	keys, err := ParseJWKS(b)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	return keys, nil
}

func (j jwk) key() (Key, error) {
	if j.Use != "" && j.Use != "sig" {
		return Key{}, fmt.Errorf("use %q: only signature keys are accepted", j.Use)
	}
	b64 := base64.RawURLEncoding
	switch j.Kty {
	case "RSA":
		n, err1 := b64.DecodeString(j.N)
		e, err2 := b64.DecodeString(j.E)
		if err := errors.Join(err1, err2); err != nil || len(n) == 0 || len(e) == 0 || len(e) > 4 {
			return Key{}, errors.New("RSA key needs base64url n and e")
		}
		pub := &rsa.PublicKey{N: new(big.Int).SetBytes(n), E: int(new(big.Int).SetBytes(e).Int64())}
		return pinned(j.Kid, pub)
	case "OKP":
		if j.Crv != "Ed25519" {
			return Key{}, fmt.Errorf("OKP curve %q is not supported; use Ed25519", j.Crv)
		}
		x, err := b64.DecodeString(j.X)
		if err != nil || len(x) != ed25519.PublicKeySize {
			return Key{}, errors.New("Ed25519 key needs a base64url x of 32 bytes")
		}
		return pinned(j.Kid, ed25519.PublicKey(x))
	case "oct":
		k, err := b64.DecodeString(j.K)
		if err != nil {
			return Key{}, errors.New("oct key needs a base64url k")
		}
		return Key{ID: j.Kid, Alg: HS256, Key: k}, nil
	default:
		return Key{}, fmt.Errorf("kty %q is not supported; use RSA, OKP (Ed25519) or oct", j.Kty)
	}
}

// pinned pins a public key to the one algorithm its type allows.
func pinned(kid string, pub any) (Key, error) {
	var k Key
	switch p := pub.(type) {
	case *rsa.PublicKey:
		k = Key{ID: kid, Alg: RS256, Key: p}
	case ed25519.PublicKey:
		k = Key{ID: kid, Alg: EdDSA, Key: p}
	default:
		return Key{}, fmt.Errorf("%T keys are not supported; use RSA or Ed25519", pub)
	}
	return k, checkKey(k)
}
