// How natter's Kafka clients reach the brokers: plaintext, TLS, SASL
// (PLAIN, SCRAM-SHA-256, SCRAM-SHA-512) or SASL over TLS, as managed
// Kafka services require.

package kafka

import (
	"crypto/sha256"
	"crypto/sha512"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"hash"
	"strings"

	"github.com/IBM/sarama"
	"github.com/xdg-go/scram"
)

// SASL mechanisms natter speaks.
const (
	MechanismPlain       = "PLAIN"
	MechanismSCRAMSHA256 = "SCRAM-SHA-256"
	MechanismSCRAMSHA512 = "SCRAM-SHA-512"
)

// Mechanisms lists the SASL mechanisms natter speaks, for help texts and
// errors.
var Mechanisms = []string{MechanismPlain, MechanismSCRAMSHA256, MechanismSCRAMSHA512}

// Cluster says how to reach a Kafka cluster: its bootstrap brokers and
// the link's security. The zero Security is plaintext without
// authentication, as on a trusted network.
type Cluster struct {
	Brokers []string
	// TLS, when not nil, encrypts every connection and verifies the
	// brokers' certificates (tlsconf builds it from a CA file, with an
	// optional client certificate for mutual TLS).
	TLS *tls.Config
	// SASL, when Mechanism is set, authenticates every connection.
	SASL SASL
}

// SASL is a SASL identity.
type SASL struct {
	// Mechanism is one of Mechanisms, or empty for none.
	Mechanism string
	User      string
	Password  string
}

// Check reports a SASL configuration that cannot work.
func (s SASL) Check() error {
	if s.Mechanism == "" {
		if s.User != "" || s.Password != "" {
			return errors.New("a SASL user or password without a mechanism")
		}
		return nil
	}
	if !validMechanism(s.Mechanism) {
		return fmt.Errorf("SASL mechanism %q is not one of %s", s.Mechanism, strings.Join(Mechanisms, ", "))
	}
	if s.User == "" || s.Password == "" {
		return fmt.Errorf("SASL %s needs a user and a password", s.Mechanism)
	}
	return nil
}

func validMechanism(m string) bool {
	for _, v := range Mechanisms {
		if m == v {
			return true
		}
	}
	return false
}

// Config returns the sarama configuration (see NewConfig) with c's
// security applied.
func (c Cluster) Config(clientID string) *sarama.Config {
	cfg := NewConfig(clientID)
	if c.TLS != nil {
		cfg.Net.TLS.Enable = true
		cfg.Net.TLS.Config = c.TLS.Clone()
	}
	if s := c.SASL; s.Mechanism != "" {
		cfg.Net.SASL.Enable = true
		cfg.Net.SASL.Handshake = true
		cfg.Net.SASL.User = s.User
		cfg.Net.SASL.Password = s.Password
		switch s.Mechanism {
		case MechanismPlain:
			cfg.Net.SASL.Mechanism = sarama.SASLTypePlaintext
		case MechanismSCRAMSHA256:
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA256
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: sha256.New} }
		case MechanismSCRAMSHA512:
			cfg.Net.SASL.Mechanism = sarama.SASLTypeSCRAMSHA512
			cfg.Net.SASL.SCRAMClientGeneratorFunc = func() sarama.SCRAMClient { return &scramClient{hash: sha512.New} }
		}
	}
	return cfg
}

// String describes the link for logs and errors, without secrets:
// "127.0.0.1:9093 (TLS, SASL SCRAM-SHA-512 as natter)".
func (c Cluster) String() string {
	var sec []string
	if c.TLS != nil {
		sec = append(sec, "TLS")
	}
	if c.SASL.Mechanism != "" {
		sec = append(sec, "SASL "+c.SASL.Mechanism+" as "+c.SASL.User)
	}
	if len(sec) == 0 {
		sec = append(sec, "plaintext")
	}
	return strings.Join(c.Brokers, ",") + " (" + strings.Join(sec, ", ") + ")"
}

// scramClient is sarama's SCRAMClient on xdg-go/scram.
type scramClient struct {
	hash func() hash.Hash
	conv *scram.ClientConversation
}

func (s *scramClient) Begin(user, password, authzID string) error {
	c, err := scram.HashGeneratorFcn(s.hash).NewClient(user, password, authzID)
	if err != nil {
		return err
	}
	s.conv = c.NewConversation()
	return nil
}

func (s *scramClient) Step(challenge string) (string, error) { return s.conv.Step(challenge) }

func (s *scramClient) Done() bool { return s.conv.Done() }

// Explain puts the check a connection failed first, so that an operator
// reads "SASL authentication failed" or "TLS: …" before sarama's
// layered text; other errors come back unchanged.
func Explain(err error) error {
	if err == nil {
		return nil
	}
	var (
		unknownCA x509.UnknownAuthorityError
		badHost   x509.HostnameError
		invalid   x509.CertificateInvalidError
		notTLS    tls.RecordHeaderError
	)
	why := ""
	switch {
	case errors.Is(err, sarama.ErrSASLAuthenticationFailed):
		why = "SASL authentication failed (wrong user or password, or a mechanism the broker does not enable)"
	case errors.Is(err, sarama.ErrUnsupportedSASLMechanism):
		why = "SASL: the broker does not enable this mechanism"
	case errors.As(err, &unknownCA):
		why = "TLS: the broker's certificate is not signed by a trusted CA (check the CA file)"
	case errors.As(err, &badHost):
		why = "TLS: the broker's certificate is not valid for the address dialled (check the server name)"
	case errors.As(err, &invalid):
		why = "TLS: the broker's certificate is not valid (expired, or not a server certificate)"
	case errors.As(err, &notTLS):
		why = "TLS: the broker did not answer with TLS (is this a plaintext listener?)"
	default:
		return err
	}
	return fmt.Errorf("%s: %w", why, err)
}
