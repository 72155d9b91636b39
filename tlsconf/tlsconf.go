// Package tlsconf builds the TLS configurations of natter's internal links
// (NATS client port, routes and leaf nodes, Kafka, Redis, PostgreSQL) from
// PEM files, and makes throwaway certificate authorities for local runs
// and tests.
//
// One Files value describes one side of one link: a CA that verifies the
// other side, and optionally this side's own certificate and key. Client
// returns the configuration that dials, Server the one that listens. Both
// refuse TLS below 1.2, and both check the files at once, so a missing or
// mismatched file is reported at start, not at the first connection.
package tlsconf

import (
	"crypto/tls"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
)

// Files names the PEM files of one side of a link. The zero value means
// "no files": Client then verifies the server against the system's roots.
type Files struct {
	// CA is a PEM file of one or more certificates that verify the peer.
	// Empty means the system's roots (Client) or no client verification
	// (Server).
	CA string
	// Cert and Key are this side's certificate chain and private key.
	// They go together: a client presents them for mutual TLS, a server
	// needs them.
	Cert, Key string
	// ServerName overrides the name a client verifies the server's
	// certificate against (default: the host it dials).
	ServerName string
}

// Empty reports whether no file and no server name is set.
func (f Files) Empty() bool { return f == Files{} }

// Client returns the configuration for dialling a server: the server's
// certificate is always verified (against CA, or the system's roots),
// and Cert/Key are presented when set.
func (f Files) Client() (*tls.Config, error) {
	c := &tls.Config{MinVersion: tls.VersionTLS12, ServerName: f.ServerName}
	if f.CA != "" {
		pool, err := LoadCA(f.CA)
		if err != nil {
			return nil, err
		}
		c.RootCAs = pool
	}
	cert, err := f.keyPair()
	if err != nil {
		return nil, err
	}
	if cert != nil {
		c.Certificates = []tls.Certificate{*cert}
	}
	return c, nil
}

// Server returns the configuration for accepting connections with Cert
// and Key. With verifyClients, a client must present a certificate that
// CA verifies (mutual TLS); CA is then required.
func (f Files) Server(verifyClients bool) (*tls.Config, error) {
	cert, err := f.keyPair()
	if err != nil {
		return nil, err
	}
	if cert == nil {
		return nil, errors.New("a server needs a certificate and its key")
	}
	c := &tls.Config{MinVersion: tls.VersionTLS12, Certificates: []tls.Certificate{*cert}}
	if f.CA != "" {
		pool, err := LoadCA(f.CA)
		if err != nil {
			return nil, err
		}
		c.ClientCAs = pool
		// Routes and leaf nodes dial with the same configuration they
		// listen with, so the pool verifies servers too.
		c.RootCAs = pool
	}
	if verifyClients {
		if f.CA == "" {
			return nil, errors.New("verifying clients needs a CA file")
		}
		c.ClientAuth = tls.RequireAndVerifyClientCert
	}
	return c, nil
}

func (f Files) keyPair() (*tls.Certificate, error) {
	switch {
	case f.Cert == "" && f.Key == "":
		return nil, nil
	case f.Cert == "":
		return nil, errors.New("a key file without its certificate")
	case f.Key == "":
		return nil, errors.New("a certificate without its key file")
	}
	cert, err := tls.LoadX509KeyPair(f.Cert, f.Key)
	if err != nil {
		return nil, fmt.Errorf("certificate %s and key %s: %w", f.Cert, f.Key, err)
	}
	return &cert, nil
}

// LoadCA reads a PEM file of CA certificates into a pool. A file with no
// certificate in it is an error, not an empty pool that trusts nothing.
func LoadCA(path string) (*x509.CertPool, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("CA file: %w", err)
	}
	pool := x509.NewCertPool()
	n := 0
	for rest := b; ; {
		var blk *pem.Block
		blk, rest = pem.Decode(rest)
		if blk == nil {
			break
		}
		if blk.Type != "CERTIFICATE" {
			continue
		}
		c, err := x509.ParseCertificate(blk.Bytes)
		if err != nil {
			return nil, fmt.Errorf("CA file %s: %w", path, err)
		}
		pool.AddCert(c)
		n++
	}
	if n == 0 {
		return nil, fmt.Errorf("CA file %s holds no PEM certificate", path)
	}
	return pool, nil
}
