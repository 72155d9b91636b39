// The gateway's security flags: token keys, the API key, origins,
// proxies, TLS, and the abuse limits. Shared by `natter` and `natter
// gateway`; docs/security.md lists each with its default.

package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"net/url"
	"time"

	"github.com/natter-chat/natter/auth"
	"github.com/natter-chat/natter/gateway"
)

// minAPIKeyLen keeps guessable server keys out.
const minAPIKeyLen = 16

// Compile-time check: the auth adapter is what the gateway needs.
var _ gateway.Authenticator = (*auth.Verifier)(nil)

type securityFlags struct {
	jwtSecret, jwtSecretFile, jwtPublicKeys, jwksFile, jwtIssuer, jwtAudience *string
	jwtLeeway                                                                 *time.Duration
	apiKey, apiKeyFile, allowedOrigins, trustedProxies, tlsCert, tlsKey       *string
	compression                                                               *bool

	maxFrameBytes, maxRoomsPerConn, maxConnsPerIP, maxConnsPerUser *int
	burstPerConn, burstPerUser, maxHistoryPage, sendQueueBytes     *int
	maxPending, maxPendingBytes                                    *int
	ratePerConn, ratePerUser                                       *float64
	handshakeTimeout, idleTimeout                                  *time.Duration

	// Set by resolve.
	security gateway.Security
	limits   gateway.Limits
	tls      *tls.Config
}

func addSecurityFlags(f *flags) *securityFlags {
	d := gateway.DefaultLimits
	s := &securityFlags{}
	s.jwtSecret = f.String("jwt-secret", "", "HS256 shared secret (at least 32 bytes) for client tokens; prefer the environment or --jwt-secret-file")
	s.jwtSecretFile = f.String("jwt-secret-file", "", "file holding the HS256 shared secret")
	s.jwtPublicKeys = f.String("jwt-public-keys", "", "PEM public key files (comma-separated): RSA keys verify RS256, Ed25519 keys EdDSA")
	s.jwksFile = f.String("jwks-file", "", "JSON Web Key Set file of token keys (RSA, Ed25519, oct)")
	s.jwtIssuer = f.String("jwt-issuer", "", "required iss of tokens (empty: not checked)")
	s.jwtAudience = f.String("jwt-audience", "", "required aud of tokens (empty: not checked)")
	s.jwtLeeway = f.Duration("jwt-leeway", auth.DefaultLeeway, "clock-skew tolerance on exp, nbf and iat")
	s.apiKey = f.String("api-key", "", "server key for the HTTP API (Authorization: Bearer <key>): publish as any user, read any room; prefer --api-key-file or the environment (a flag shows in ps)")
	s.apiKeyFile = f.String("api-key-file", "", "file holding the server key of the HTTP API")
	s.allowedOrigins = f.String("allowed-origins", "", "browser origins allowed on /ws besides the gateway's own (comma-separated, e.g. https://chat.example.com; * = any)")
	s.trustedProxies = f.String("trusted-proxies", "", "reverse proxy addresses or CIDRs whose X-Forwarded-For names the client (comma-separated)")
	s.tlsCert = f.String("tls-cert", "", "TLS certificate file (PEM); with --tls-key, serve HTTPS and WSS")
	s.tlsKey = f.String("tls-key", "", "TLS private key file (PEM)")
	s.compression = f.Bool("compression", false, "negotiate permessage-deflate (frames stay limited after decompression)")
	s.maxFrameBytes = f.Int("max-frame-bytes", d.FrameBytes, "largest client frame handled; larger ones up to 1 MiB get too_large, beyond that the connection closes")
	s.maxRoomsPerConn = f.Int("max-rooms-per-conn", d.RoomsPerConn, "rooms one connection may join")
	s.maxConnsPerIP = f.Int("max-conns-per-ip", d.ConnsPerIP, "WebSocket connections from one client address (0 = no limit)")
	s.maxConnsPerUser = f.Int("max-conns-per-user", d.ConnsPerUser, "connections of one user on this gateway (0 = no limit)")
	s.ratePerConn = f.Float64("rate-per-conn", d.RatePerConn, "messages (send, typing) per second per connection (0 = no limit)")
	s.burstPerConn = f.Int("burst-per-conn", d.BurstPerConn, "burst allowed above --rate-per-conn")
	s.ratePerUser = f.Float64("rate-per-user", d.RatePerUser, "messages per second per user on this gateway (0 = no limit)")
	s.burstPerUser = f.Int("burst-per-user", d.BurstPerUser, "burst allowed above --rate-per-user")
	s.maxHistoryPage = f.Int("max-history-page", d.HistoryPage, "largest history page (limit) a client may ask for")
	s.sendQueueBytes = f.Int("send-queue-bytes", d.QueueBytes, "bytes queued to a connection before it is closed as a slow consumer")
	s.maxPending = f.Int("max-pending", d.MaxPending, "messages sent live but not yet in Kafka before further sends are refused with unavailable")
	s.maxPendingBytes = f.Int("max-pending-bytes", d.MaxPendingBytes, "bytes of those messages before further sends are refused with unavailable")
	s.handshakeTimeout = f.Duration("handshake-timeout", d.HandshakeTimeout, "time to send the HTTP headers, and from WebSocket open to a successful connect")
	s.idleTimeout = f.Duration("idle-timeout", d.IdleTimeout, "a connection silent this long (not even a pong) is closed")
	return s
}

// Float64 is a float flag with an environment fallback.
func (f *flags) Float64(name string, def float64, usage string) *float64 {
	f.envs[name] = EnvName(name)
	return f.fs.Float64(name, def, usage)
}

// resolve checks the flags and builds the gateway's Security, Limits and
// TLS configuration, one clear error per problem. open is the --open
// flag: when token keys are configured and --open was not given, it is
// turned off, so configuring keys never leaves the open mode on by
// accident. A gateway needs keys or --open.
func (s *securityFlags) resolve(f *flags, open *bool, log *slog.Logger) error {
	if err := s.resolveAuth(f, open, log); err != nil {
		return err
	}
	s.security.Compression = *s.compression
	return errors.Join(s.resolveAPIKey(), s.resolveOrigins(), s.resolveTLS(), s.resolveLimits())
}

// resolveAuth builds the verifier of client tokens from the configured
// keys, and turns the open mode off as resolve says. It fails when a key
// cannot be read or clients would have no way in.
func (s *securityFlags) resolveAuth(f *flags, open *bool, log *slog.Logger) error {
	keys, err := s.tokenKeys()
	if err != nil {
		return err
	}
	if len(keys) > 0 {
		leeway := *s.jwtLeeway
		if leeway == 0 {
			leeway = -1 // none; auth's zero value means its default
		}
		v, err := auth.New(auth.Config{Keys: keys, Issuer: *s.jwtIssuer, Audience: *s.jwtAudience, Leeway: leeway})
		if err != nil {
			return fmt.Errorf("token keys: %w", err)
		}
		s.security.Auth = v
		if *open && !f.isSet("open") {
			*open = false
			log.Info("token keys configured: open mode is off (pass --open to keep it as well)")
		}
	}
	if !*open && s.security.Auth == nil {
		return errors.New("no way to authenticate clients: configure token keys (--jwt-secret, --jwt-secret-file, --jwt-public-keys or --jwks-file) or pass --open to let anyone in under any name")
	}
	return nil
}

// tokenKeys reads every configured token key: the shared secret, its
// file, the public key files and the JWKS file. The error names each
// file that could not be read.
func (s *securityFlags) tokenKeys() ([]auth.Key, error) {
	var errs []error
	var keys []auth.Key
	if *s.jwtSecret != "" {
		keys = append(keys, auth.SecretKey([]byte(*s.jwtSecret)))
	}
	if *s.jwtSecretFile != "" {
		k, err := auth.ReadSecretFile(*s.jwtSecretFile)
		errs = append(errs, wrapFlag("--jwt-secret-file", err))
		keys = append(keys, k)
	}
	for _, p := range splitList(*s.jwtPublicKeys) {
		k, err := auth.ReadPublicKeyFile(p)
		errs = append(errs, wrapFlag("--jwt-public-keys", err))
		keys = append(keys, k)
	}
	if *s.jwksFile != "" {
		ks, err := auth.ReadJWKSFile(*s.jwksFile)
		errs = append(errs, wrapFlag("--jwks-file", err))
		keys = append(keys, ks...)
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return keys, nil
}

// resolveAPIKey sets the HTTP API's server key from --api-key or
// --api-key-file (not both), refusing a short one.
func (s *securityFlags) resolveAPIKey() error {
	var errs []error
	apiKey, apiKeyFlag := *s.apiKey, "--api-key"
	if *s.apiKeyFile != "" {
		if apiKey != "" {
			errs = append(errs, errors.New("give the API key with --api-key or --api-key-file, not both"))
		}
		k, err := readSecretFile("--api-key-file", *s.apiKeyFile)
		errs = append(errs, err)
		apiKey, apiKeyFlag = k, "--api-key-file"
	}
	if apiKey != "" && len(apiKey) < minAPIKeyLen {
		errs = append(errs, fmt.Errorf("%s: the key is %d characters; use at least %d random ones", apiKeyFlag, len(apiKey), minAPIKeyLen))
	}
	s.security.APIKey = apiKey
	return errors.Join(errs...)
}

// resolveOrigins checks and sets the browser origins allowed on /ws and
// the reverse proxies trusted to name the client.
func (s *securityFlags) resolveOrigins() error {
	var errs []error
	for _, o := range splitList(*s.allowedOrigins) {
		if err := checkOrigin(o); err != nil {
			errs = append(errs, fmt.Errorf("--allowed-origins %q: %w", o, err))
		}
		s.security.AllowedOrigins = append(s.security.AllowedOrigins, o)
	}
	for _, p := range splitList(*s.trustedProxies) {
		pfx, err := parsePrefix(p)
		if err != nil {
			errs = append(errs, fmt.Errorf("--trusted-proxies %q: use an IP address or a CIDR", p))
		}
		s.security.TrustedProxies = append(s.security.TrustedProxies, pfx)
	}
	return errors.Join(errs...)
}

// resolveTLS loads the certificate and key when both are given.
func (s *securityFlags) resolveTLS() error {
	switch {
	case (*s.tlsCert == "") != (*s.tlsKey == ""):
		return errors.New("--tls-cert and --tls-key go together")
	case *s.tlsCert != "":
		cert, err := tls.LoadX509KeyPair(*s.tlsCert, *s.tlsKey)
		s.tls = &tls.Config{Certificates: []tls.Certificate{cert}, MinVersion: tls.VersionTLS12}
		if err != nil {
			return fmt.Errorf("--tls-cert/--tls-key: %w", err)
		}
	}
	return nil
}

// resolveLimits checks the abuse limits and builds the gateway's Limits.
func (s *securityFlags) resolveLimits() error {
	var errs []error
	for name, v := range map[string]int{"--max-frame-bytes": *s.maxFrameBytes, "--max-rooms-per-conn": *s.maxRoomsPerConn,
		"--burst-per-conn": *s.burstPerConn, "--burst-per-user": *s.burstPerUser, "--max-history-page": *s.maxHistoryPage,
		"--send-queue-bytes": *s.sendQueueBytes, "--max-pending": *s.maxPending, "--max-pending-bytes": *s.maxPendingBytes} {
		if v < 1 {
			errs = append(errs, fmt.Errorf("%s must be positive", name))
		}
	}
	if *s.maxConnsPerIP < 0 || *s.maxConnsPerUser < 0 || *s.ratePerConn < 0 || *s.ratePerUser < 0 {
		errs = append(errs, errors.New("--max-conns-per-ip, --max-conns-per-user, --rate-per-conn and --rate-per-user must be 0 (no limit) or positive"))
	}
	if *s.maxFrameBytes > gateway.DefaultLimits.HardFrameBytes {
		errs = append(errs, fmt.Errorf("--max-frame-bytes may be at most %d", gateway.DefaultLimits.HardFrameBytes))
	}
	if *s.handshakeTimeout <= 0 || *s.idleTimeout <= 0 {
		errs = append(errs, errors.New("--handshake-timeout and --idle-timeout must be positive"))
	}
	s.limits = gateway.Limits{
		FrameBytes: *s.maxFrameBytes, RoomsPerConn: *s.maxRoomsPerConn, HistoryPage: *s.maxHistoryPage,
		QueueBytes: *s.sendQueueBytes, IdleTimeout: *s.idleTimeout, HandshakeTimeout: *s.handshakeTimeout,
		MaxPending: *s.maxPending, MaxPendingBytes: *s.maxPendingBytes,
		ConnsPerIP: offIfZero(*s.maxConnsPerIP), ConnsPerUser: offIfZero(*s.maxConnsPerUser),
		RatePerConn: offIfZero(*s.ratePerConn), BurstPerConn: *s.burstPerConn,
		RatePerUser: offIfZero(*s.ratePerUser), BurstPerUser: *s.burstPerUser,
	}
	if *s.idleTimeout <= gateway.DefaultLimits.PingInterval {
		s.limits.PingInterval = *s.idleTimeout * 2 / 5 // pings must come well within the idle timeout
	}
	return errors.Join(errs...)
}

// listen wraps ln in TLS when a certificate is configured.
func (s *securityFlags) listen(ln net.Listener) net.Listener {
	if s.tls == nil {
		return ln
	}
	return tls.NewListener(ln, s.tls)
}

// scheme is the URL scheme the gateway serves.
func (s *securityFlags) scheme() string {
	if s.tls != nil {
		return "https"
	}
	return "http"
}

// offIfZero maps a flag's "0 = no limit" to the gateway's negative "off"
// (its zero means "default").
func offIfZero[T int | float64](v T) T {
	if v == 0 {
		return -1
	}
	return v
}

func checkOrigin(o string) error {
	if o == "*" {
		return nil
	}
	u, err := url.Parse(o)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") || u.RawQuery != "" {
		return errors.New("use scheme://host[:port], e.g. https://chat.example.com")
	}
	return nil
}

func parsePrefix(s string) (netip.Prefix, error) {
	if p, err := netip.ParsePrefix(s); err == nil {
		return p.Masked(), nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Prefix{}, err
	}
	return netip.PrefixFrom(a, a.BitLen()), nil
}

func wrapFlag(name string, err error) error {
	if err == nil {
		return nil
	}
	return fmt.Errorf("%s: %w", name, err)
}
