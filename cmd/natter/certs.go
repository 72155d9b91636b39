// natter certs: a throwaway certificate authority, certificates and
// random passwords for securing natter's internal links on a laptop, a
// test machine or a compose deployment. `natter local --secure` uses the
// same functions.

package main

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/natter-chat/natter/tlsconf"
)

func (m *Main) runCerts(_ context.Context, args []string) error {
	f := newFlags("natter certs", "natter certs: make a throwaway CA (kept in --dir and reused), certificates signed by it and random passwords, for local use and tests; use your own PKI in production", m.Stderr)
	dir := f.String("dir", "natter-certs", "directory of ca.pem, ca-key.pem, NAME.pem, NAME-key.pem and NAME.password")
	hosts := f.String("hosts", "127.0.0.1,localhost,::1", "DNS names and IP addresses the certificates are valid for (comma-separated)")
	names := f.String("names", "node", "certificates to issue, one per name (comma-separated; empty: none, with --passwords); each serves and authenticates as a client")
	passwords := f.String("passwords", "", "random passwords to make, one per name (comma-separated): NAME.password in --dir, mode 0600, made only when missing and reused after, for the --*-password-file flags")
	if err := f.parse(args, m.Getenv); err != nil {
		return err
	}
	certNames, pwNames := splitList(*names), splitList(*passwords)
	if len(certNames) == 0 && len(pwNames) == 0 {
		return errors.New("--names, --passwords: name at least one certificate or password")
	}
	var errs []error
	for _, n := range certNames {
		errs = append(errs, checkFileName("--names", n))
	}
	for _, n := range pwNames {
		errs = append(errs, checkFileName("--passwords", n))
	}
	if err := errors.Join(errs...); err != nil {
		return err
	}
	if len(certNames) > 0 {
		if _, err := issueCerts(m.Stdout, *dir, splitList(*hosts), certNames...); err != nil {
			return err
		}
	}
	if len(pwNames) > 0 {
		if _, err := makePasswords(m.Stdout, *dir, pwNames...); err != nil {
			return err
		}
	}
	return nil
}

// checkFileName refuses a name that is not a plain file name of its own
// in the directory, or that would clash with the CA's files.
func checkFileName(flag, name string) error {
	if filepath.Base(name) != name || name == "." || name == ".." || strings.ContainsAny(name, `/\`) || name == "ca" || name == "ca-key" {
		return fmt.Errorf("%s: %q is not a plain file name other than ca", flag, name)
	}
	return nil
}

// certFiles are the files of one issued certificate.
type certFiles struct {
	CA, Cert, Key string
}

// issueCerts makes or reuses dir's CA and issues a certificate for each
// name, valid for hosts (a new one each time, so hosts may change), and
// tells out what it did. It returns the files of each name.
func issueCerts(out io.Writer, dir string, hosts []string, names ...string) (map[string]certFiles, error) {
	ca, created, err := loadOrCreateCA(dir)
	if err != nil {
		return nil, err
	}
	caFile := filepath.Join(dir, "ca.pem")
	if created {
		fmt.Fprintf(out, "created CA %s\n", caFile)
	}
	files := make(map[string]certFiles, len(names))
	for _, name := range names {
		if err := checkFileName("--names", name); err != nil {
			return nil, err
		}
		cert, key, err := ca.IssueFiles(dir, name, hosts...)
		if err != nil {
			return nil, err
		}
		fmt.Fprintf(out, "issued %s (key %s) for %s\n", cert, key, strings.Join(hosts, ","))
		files[name] = certFiles{CA: caFile, Cert: cert, Key: key}
	}
	return files, nil
}

// makePasswords writes a random password to dir/NAME.password (mode
// 0600) for each name that has none yet, keeps those that exist, and
// tells out which. It returns each name's file.
func makePasswords(out io.Writer, dir string, names ...string) (map[string]string, error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--dir: %w", err)
	}
	files := make(map[string]string, len(names))
	for _, name := range names {
		if err := checkFileName("--passwords", name); err != nil {
			return nil, err
		}
		path := filepath.Join(dir, name+".password")
		made, err := makePassword(path)
		if err != nil {
			return nil, err
		}
		if made {
			fmt.Fprintf(out, "made password %s\n", path)
		} else {
			fmt.Fprintf(out, "kept password %s (it exists)\n", path)
		}
		files[name] = path
	}
	return files, nil
}

// makePassword creates path with a random password (26 characters of
// base32, 130 bits from crypto/rand) unless it exists; an existing file
// must hold a usable password.
func makePassword(path string) (made bool, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if errors.Is(err, fs.ErrExist) {
		if _, err := readSecretFile("existing password file", path); err != nil {
			return false, fmt.Errorf("%w (delete it to make a new one)", err)
		}
		return false, nil
	}
	if err != nil {
		return false, err
	}
	_, err = f.WriteString(rand.Text() + "\n")
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		_ = os.Remove(path)
		return false, fmt.Errorf("write %s: %w", path, err)
	}
	return true, nil
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
