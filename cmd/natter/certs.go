// natter certs: a throwaway certificate authority and certificates for
// securing natter's internal links on a laptop or a test machine.

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"github.com/natter-chat/natter/tlsconf"
)

func (m *Main) runCerts(_ context.Context, args []string) error {
	f := newFlags("natter certs", "natter certs: make a throwaway CA (kept in --dir and reused) and certificates signed by it, for local use and tests; use your own PKI in production", m.Stderr)
	dir := f.String("dir", "natter-certs", "directory of ca.pem, ca-key.pem and NAME.pem, NAME-key.pem")
	hosts := f.String("hosts", "127.0.0.1,localhost,::1", "DNS names and IP addresses the certificates are valid for (comma-separated)")
	names := f.String("names", "node", "certificates to issue, one per name (comma-separated); each serves and authenticates as a client")
	if err := f.parse(args, m.Getenv); err != nil {
		return err
	}
	if len(splitList(*names)) == 0 {
		return errors.New("--names: name at least one certificate")
	}
	ca, created, err := loadOrCreateCA(*dir)
	if err != nil {
		return err
	}
	if created {
		fmt.Fprintf(m.Stdout, "created CA %s\n", filepath.Join(*dir, "ca.pem"))
	}
	for _, name := range splitList(*names) {
		if filepath.Base(name) != name || name == "ca" || name == "ca-key" {
			return fmt.Errorf("--names: %q is not a plain file name other than ca", name)
		}
		cert, key, err := ca.IssueFiles(*dir, name, splitList(*hosts)...)
		if err != nil {
			return err
		}
		fmt.Fprintf(m.Stdout, "issued %s (key %s) for %s\n", cert, key, *hosts)
	}
	return nil
}

// loadOrCreateCA reads dir's CA, or makes one there when it has none.
func loadOrCreateCA(dir string) (*tlsconf.CA, bool, error) {
	certFile, keyFile := filepath.Join(dir, "ca.pem"), filepath.Join(dir, "ca-key.pem")
	if _, err := os.Stat(certFile); err == nil {
		ca, err := tlsconf.LoadCAFiles(certFile, keyFile)
		if err != nil {
			return nil, false, fmt.Errorf("--dir %s: existing CA: %w", dir, err)
		}
		return ca, false, nil
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, false, fmt.Errorf("--dir: %w", err)
	}
	ca, err := tlsconf.NewCA("natter throwaway CA")
	if err != nil {
		return nil, false, err
	}
	if err := ca.WriteCA(dir); err != nil {
		return nil, false, fmt.Errorf("--dir: %w", err)
	}
	return ca, true, nil
}
