// Flags of natter's internal links: how a role reaches Kafka, Redis and
// PostgreSQL (TLS, SASL, passwords from files). docs/security.md's
// "Internal links" section lists each with what it protects.

package main

import (
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"strings"
	"sync"

	"github.com/nats-io/nats.go"
	"github.com/redis/go-redis/v9"

	"github.com/natter-chat/natter/embedded"
	"github.com/natter-chat/natter/kafka"
	"github.com/natter-chat/natter/postgres"
	"github.com/natter-chat/natter/tlsconf"
)

// maxSecretBytes bounds a secret file: a password, not a file picked by
// mistake.
const maxSecretBytes = 4096

// readSecretFile reads a password from path for flag. Surrounding
// whitespace (a trailing newline) is not part of it; an empty file is an
// error, so a missing secret never reads as "no password".
func readSecretFile(flag, path string) (string, error) {
	f, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("%s: %w", flag, err)
	}
	defer f.Close()
	b := make([]byte, maxSecretBytes+1)
	n, err := f.Read(b)
	if err != nil && n == 0 {
		return "", fmt.Errorf("%s %s: the file is empty or unreadable: %v", flag, path, err)
	}
	if n > maxSecretBytes {
		return "", fmt.Errorf("%s %s: longer than %d bytes; is it the right file?", flag, path, maxSecretBytes)
	}
	s := strings.TrimSpace(string(b[:n]))
	if s == "" {
		return "", fmt.Errorf("%s %s: the file is empty", flag, path)
	}
	return s, nil
}

// tlsFlags are the PEM files of one link's client side.
type tlsFlags struct {
	prefix                           string // "--kafka"
	enable                           *bool  // nil when TLS is implied by the files alone
	caFile, certFile, keyFile, sname *string
}

func addTLSFlags(f *flags, link, what string, withEnable bool) *tlsFlags {
	t := &tlsFlags{prefix: "--" + link}
	if withEnable {
		t.enable = f.Bool(link+"-tls", false, "TLS to "+what+", verified against the system's roots unless --"+link+"-ca-file is given")
	}
	t.caFile = f.String(link+"-ca-file", "", "PEM CA certificates that verify "+what+" (turns TLS on)")
	t.certFile = f.String(link+"-cert-file", "", "PEM client certificate presented to "+what+" (mutual TLS; with --"+link+"-key-file)")
	t.keyFile = f.String(link+"-key-file", "", "PEM private key of --"+link+"-cert-file")
	t.sname = f.String(link+"-server-name", "", "name the certificate of "+what+" must carry, when not the host dialled")
	return t
}

// on reports whether any TLS setting is given.
func (t *tlsFlags) on() bool {
	return (t.enable != nil && *t.enable) || *t.caFile != "" || *t.certFile != "" || *t.keyFile != "" || *t.sname != ""
}

// files are the flags as tlsconf.Files.
func (t *tlsFlags) files() tlsconf.Files {
	return tlsconf.Files{CA: *t.caFile, Cert: *t.certFile, Key: *t.keyFile, ServerName: *t.sname}
}

// client returns the dialling configuration, nil when TLS is off, or an
// error naming the flags.
func (t *tlsFlags) client() (*tls.Config, error) {
	if !t.on() {
		return nil, nil
	}
	c, err := t.files().Client()
	if err != nil {
		return nil, fmt.Errorf("%s-ca-file/-cert-file/-key-file: %w", t.prefix, err)
	}
	return c, nil
}

// kafkaFlags say how a role reaches Kafka.
type kafkaFlags struct {
	brokers                       *string
	tls                           *tlsFlags
	mechanism, user, passwordFile *string
}

func addKafkaFlags(f *flags, brokersUsage string) *kafkaFlags {
	return &kafkaFlags{
		brokers:      f.String("kafka-brokers", "", brokersUsage),
		tls:          addTLSFlags(f, "kafka", "the Kafka brokers", true),
		mechanism:    f.String("kafka-sasl-mechanism", "", "SASL mechanism: "+strings.Join(kafka.Mechanisms, ", ")+" (empty: none); needs TLS unless every broker is on loopback"),
		user:         f.String("kafka-sasl-user", "", "SASL user name"),
		passwordFile: f.String("kafka-sasl-password-file", "", "file holding the SASL password (kept out of ps and logs)"),
	}
}

// cluster resolves the flags into a kafka.Cluster, reading the password
// file. It refuses a configuration that cannot work or would leak the
// password.
func (k *kafkaFlags) cluster() (kafka.Cluster, error) {
	c := kafka.Cluster{Brokers: splitList(*k.brokers)}
	var errs []error
	tc, err := k.tls.client()
	errs = append(errs, err)
	c.TLS = tc
	c.SASL = kafka.SASL{Mechanism: strings.ToUpper(*k.mechanism), User: *k.user}
	if *k.passwordFile != "" {
		pw, err := readSecretFile("--kafka-sasl-password-file", *k.passwordFile)
		errs = append(errs, err)
		c.SASL.Password = pw
	}
	switch {
	case c.SASL.Mechanism == "" && (c.SASL.User != "" || *k.passwordFile != ""):
		errs = append(errs, errors.New("--kafka-sasl-user and --kafka-sasl-password-file need --kafka-sasl-mechanism"))
	case c.SASL.Mechanism != "" && c.SASL.User == "":
		errs = append(errs, fmt.Errorf("--kafka-sasl-mechanism %s needs --kafka-sasl-user", c.SASL.Mechanism))
	case c.SASL.Mechanism != "" && *k.passwordFile == "":
		errs = append(errs, fmt.Errorf("--kafka-sasl-mechanism %s needs --kafka-sasl-password-file", c.SASL.Mechanism))
	case c.SASL.Mechanism != "":
		if err := c.SASL.Check(); err != nil {
			errs = append(errs, fmt.Errorf("--kafka-sasl-mechanism: %w", err))
		}
	}
	if c.SASL.Mechanism != "" && c.TLS == nil {
		if remote := nonLoopback(c.Brokers); len(remote) > 0 {
			errs = append(errs, fmt.Errorf("--kafka-sasl-mechanism %s without TLS would expose the SASL exchange to the network on the way to %s: add --kafka-tls or --kafka-ca-file",
				c.SASL.Mechanism, strings.Join(remote, ",")))
		}
	}
	return c, errors.Join(errs...)
}

// nonLoopback returns the addresses of hostports whose host is not a
// loopback address or "localhost".
func nonLoopback(hostports []string) []string {
	var out []string
	for _, hp := range hostports {
		host, _, err := net.SplitHostPort(hp)
		if err != nil {
			host = hp
		}
		if !isLoopback(host) {
			out = append(out, hp)
		}
	}
	return out
}

func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(strings.Trim(host, "[]"))
	return ip != nil && ip.IsLoopback()
}

// redisFlags say how a bridge reaches Redis.
type redisFlags struct {
	url          *string
	tls          *tlsFlags
	passwordFile *string
}

func addRedisFlags(f *flags) *redisFlags {
	return &redisFlags{
		url:          f.String("redis-url", "", "Redis URL federating the regions, redis:// or rediss:// (TLS), user in the URL for ACLs (empty: no federation)"),
		tls:          addTLSFlags(f, "redis", "Redis", false),
		passwordFile: f.String("redis-password-file", "", "file holding the Redis password (instead of one in --redis-url, which shows in ps)"),
	}
}

// options resolves the flags into go-redis options; nil without a URL.
func (r *redisFlags) options() (*redis.Options, error) {
	if *r.url == "" {
		if r.tls.on() || *r.passwordFile != "" {
			return nil, errors.New("--redis-ca-file, --redis-cert-file, --redis-key-file, --redis-server-name and --redis-password-file need --redis-url")
		}
		return nil, nil
	}
	opt, err := redis.ParseURL(*r.url)
	if err != nil {
		return nil, fmt.Errorf("--redis-url: %w", err)
	}
	if r.tls.on() {
		if opt.TLSConfig == nil {
			return nil, errors.New("--redis-ca-file, --redis-cert-file, --redis-key-file and --redis-server-name need a rediss:// URL in --redis-url")
		}
		tc, err := r.tls.client()
		if err != nil {
			return nil, err
		}
		if tc.ServerName == "" {
			tc.ServerName = opt.TLSConfig.ServerName // the URL's host, as go-redis sets it
		}
		opt.TLSConfig = tc
	}
	if *r.passwordFile != "" {
		if opt.Password != "" {
			return nil, errors.New("give the Redis password in --redis-url or in --redis-password-file, not both")
		}
		if opt.Password, err = readSecretFile("--redis-password-file", *r.passwordFile); err != nil {
			return nil, err
		}
		// Each new connection reads the file again, so a rotated or
		// corrected password takes effect without a restart.
		user, path, last := opt.Username, *r.passwordFile, opt.Password
		var mu sync.Mutex
		opt.CredentialsProvider = func() (string, string) {
			mu.Lock()
			defer mu.Unlock()
			if pw, err := readSecretFile("--redis-password-file", path); err == nil {
				last = pw
			}
			return user, last
		}
	}
	return opt, nil
}

// redisTarget describes a Redis link for logs, without its password.
func redisTarget(opt *redis.Options) string {
	sec := "plaintext"
	if opt.TLSConfig != nil {
		sec = "TLS"
	}
	if opt.Username != "" {
		sec += ", user " + opt.Username
	}
	return opt.Addr + " (" + sec + ")"
}

// databaseFlags say how a role reaches PostgreSQL. TLS is set in the URL
// (sslmode=verify-full&sslrootcert=ca.pem), as libpq does.
type databaseFlags struct {
	url, passwordFile *string
}

func addDatabaseFlags(f *flags) *databaseFlags {
	return &databaseFlags{
		url:          f.String("database-url", "", "PostgreSQL URL; for TLS add sslmode=verify-full&sslrootcert=ca.pem", "DATABASE_URL"),
		passwordFile: f.String("database-password-file", "", "file holding the PostgreSQL password (instead of one in the URL, which shows in ps)"),
	}
}

// config resolves the flags into the store's configuration.
func (d *databaseFlags) config() (postgres.Config, error) {
	c := postgres.Config{URL: *d.url}
	if *d.passwordFile != "" && passwordInURL(*d.url) {
		return c, errors.New("give the PostgreSQL password in --database-url or in --database-password-file, not both")
	}
	if *d.passwordFile != "" {
		pw, err := readSecretFile("--database-password-file", *d.passwordFile)
		if err != nil {
			return c, err
		}
		c.Password = pw
	}
	if err := c.Check(); err != nil {
		return c, fmt.Errorf("--database-url: %w", err)
	}
	return c, nil
}

// passwordInURL reports whether a URL carries a password.
func passwordInURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return false
	}
	_, ok := u.User.Password()
	return ok
}

// natsClientFlags say how a process reaches a gateway's NATS client port:
// the credentials that port requires and the CA its certificate is
// checked against. A gateway reads the same flags as the server side of
// that port.
type natsClientFlags struct {
	user, passwordFile *string
	tls                *tlsFlags
}

func addNATSClientFlags(f *flags) *natsClientFlags {
	return &natsClientFlags{
		user:         f.String("nats-user", "natter", "user name on the gateways' NATS client port, with --nats-password-file"),
		passwordFile: f.String("nats-password-file", "", "file holding the password of --nats-user on the gateways' NATS client port"),
		tls:          addTLSFlags(f, "nats", "the gateways' NATS servers", false),
	}
}

// options resolves the flags into nats.go options, reading the password
// file.
func (n *natsClientFlags) options() ([]nats.Option, error) {
	var opts []nats.Option
	if *n.passwordFile != "" {
		pw, err := readSecretFile("--nats-password-file", *n.passwordFile)
		if err != nil {
			return nil, err
		}
		if *n.user == "" {
			return nil, errors.New("--nats-password-file needs --nats-user")
		}
		// Each (re)connect reads the file again, so a rotated or corrected
		// password takes effect without a restart.
		user, path, last := *n.user, *n.passwordFile, pw
		var mu sync.Mutex
		opts = append(opts, nats.UserInfoHandler(func() (string, string) {
			mu.Lock()
			defer mu.Unlock()
			if pw, err := readSecretFile("--nats-password-file", path); err == nil {
				last = pw
			}
			return user, last
		}))
	}
	tc, err := n.tls.client()
	if err != nil {
		return nil, err
	}
	if tc != nil {
		opts = append(opts, nats.Secure(tc))
	}
	return opts, nil
}

// natsServerFlags secure a gateway's embedded NATS server: its client
// port (bridges), its routes (the region's other gateways) and its leaf
// nodes (edge gateways and their hub). The names match natsClientFlags,
// so one set of files and secrets serves a whole region.
type natsServerFlags struct {
	user, passwordFile                    *string
	caFile, certFile, keyFile             *string
	clusterPasswordFile, leafPasswordFile *string
	insecure                              *bool
}

// Users the route and leaf listeners require; the password is the
// secret.
const (
	natsRouteUser = "natter-route"
	natsLeafUser  = "natter-leaf"
)

func addNATSServerFlags(f *flags) *natsServerFlags {
	return &natsServerFlags{
		user:                f.String("nats-user", "natter", "user name bridges log in with on the NATS client port, with --nats-password-file"),
		passwordFile:        f.String("nats-password-file", "", "file holding the password the NATS client port requires (bridges use the same file)"),
		caFile:              f.String("nats-ca-file", "", "PEM CA certificates that verify the region's other gateways on routes and leaf-node links (mutual TLS)"),
		certFile:            f.String("nats-cert-file", "", "PEM certificate of this gateway's NATS server: TLS on the client port, routes and leaf nodes, and presented on the routes and leaf links it dials"),
		keyFile:             f.String("nats-key-file", "", "PEM private key of --nats-cert-file"),
		clusterPasswordFile: f.String("nats-cluster-password-file", "", "file holding the password routes require and present (user "+natsRouteUser+")"),
		leafPasswordFile:    f.String("nats-leaf-password-file", "", "file holding the password the leaf-node listener requires and --nats-leaf-remotes present (user "+natsLeafUser+")"),
		insecure:            f.Bool("nats-insecure", false, "let NATS listen on a non-loopback address without authentication, or dial a non-loopback hub without TLS: anyone on that network can then read every room and publish as anyone"),
	}
}

// apply secures cfg as the flags say, reading the secret files, and
// refuses a NATS server that would be open to the network unless
// --nats-insecure; it returns what the gateway should log about that.
func (n *natsServerFlags) apply(cfg *embedded.NATSConfig) (warnings []string, err error) {
	if err := errors.Join(n.applyAuth(cfg), n.applyTLS(cfg)); err != nil {
		return nil, err
	}
	// Open to the network: say so, or refuse.
	open := openToNetwork(cfg)
	if len(open) > 0 && !*n.insecure {
		return nil, fmt.Errorf("NATS would be open to the network: %s; or pass --nats-insecure on a network you trust", strings.Join(open, "; "))
	}
	for _, o := range open {
		warnings = append(warnings, "NATS INSECURE (--nats-insecure): "+o+": anyone who reaches it can read every room and publish as anyone")
	}
	return warnings, nil
}

// applyAuth sets the user and password that the client port, the routes
// and the leaf-node links require, read from their files.
func (n *natsServerFlags) applyAuth(cfg *embedded.NATSConfig) error {
	var errs []error
	read := func(flag, path, user string) *embedded.UserPassword {
		if path == "" {
			return nil
		}
		pw, err := readSecretFile(flag, path)
		if err != nil {
			errs = append(errs, err)
			return nil
		}
		return &embedded.UserPassword{User: user, Password: pw}
	}
	if *n.passwordFile != "" && *n.user == "" {
		errs = append(errs, errors.New("--nats-password-file needs --nats-user"))
	}
	cfg.ClientAuth = read("--nats-password-file", *n.passwordFile, *n.user)
	if cfg.ClusterName != "" {
		cfg.ClusterAuth = read("--nats-cluster-password-file", *n.clusterPasswordFile, natsRouteUser)
	} else if *n.clusterPasswordFile != "" {
		errs = append(errs, errors.New("--nats-cluster-password-file needs --nats-cluster-addr"))
	}
	if cfg.LeafPort != 0 || len(cfg.LeafRemotes) > 0 {
		cfg.LeafAuth = read("--nats-leaf-password-file", *n.leafPasswordFile, natsLeafUser)
	} else if *n.leafPasswordFile != "" {
		errs = append(errs, errors.New("--nats-leaf-password-file needs --nats-leaf-addr or --nats-leaf-remotes"))
	}
	if cfg.ClientAuth != nil && cfg.LeafPort != 0 && cfg.LeafAuth == nil {
		errs = append(errs, errors.New("--nats-password-file with --nats-leaf-addr needs --nats-leaf-password-file: leaf nodes would otherwise log in as a client"))
	}
	return errors.Join(errs...)
}

// applyTLS puts the client port under TLS when a certificate is given,
// and the routes and leaf-node links under mutual TLS, which needs the CA
// file too.
func (n *natsServerFlags) applyTLS(cfg *embedded.NATSConfig) error {
	clustered := cfg.ClusterName != ""
	leaf := cfg.LeafPort != 0 || len(cfg.LeafRemotes) > 0
	files := tlsconf.Files{CA: *n.caFile, Cert: *n.certFile, Key: *n.keyFile}
	if files.Cert == "" && files.Key == "" {
		if files.CA != "" {
			return errors.New("--nats-ca-file needs --nats-cert-file and --nats-key-file: routes and leaf nodes use mutual TLS")
		}
		return nil
	}
	var err error
	if cfg.ClientTLS, err = files.Server(false); err != nil {
		return fmt.Errorf("--nats-cert-file/--nats-key-file: %w", err)
	}
	if !clustered && !leaf {
		return nil
	}
	if files.CA == "" {
		return errors.New("--nats-ca-file is needed with --nats-cert-file on routes and leaf nodes: they verify each other (mutual TLS)")
	}
	mutual, err := files.Server(true)
	if err != nil {
		return fmt.Errorf("--nats-ca-file: %w", err)
	}
	if clustered {
		cfg.ClusterTLS = mutual
	}
	if leaf {
		cfg.LeafTLS = mutual
	}
	return nil
}

// openToNetwork lists what of the server cfg describes anyone on the
// network could use: a client port without a password, a route or
// leaf-node port without TLS or a password, a leaf-node link without
// TLS; loopback addresses excepted.
func openToNetwork(cfg *embedded.NATSConfig) []string {
	var open []string
	if !cfg.DontListen && cfg.ClientAuth == nil && !isLoopback(orDefault(cfg.Host, "127.0.0.1")) {
		open = append(open, fmt.Sprintf("the client port %s accepts anyone (set --nats-password-file)", net.JoinHostPort(cfg.Host, fmt.Sprint(cfg.Port))))
	}
	if cfg.ClusterName != "" && cfg.ClusterTLS == nil && cfg.ClusterAuth == nil && !isLoopback(orDefault(cfg.ClusterHost, "127.0.0.1")) {
		open = append(open, fmt.Sprintf("the route port %s accepts any server into the region (set --nats-cert-file and --nats-ca-file, or --nats-cluster-password-file)", net.JoinHostPort(cfg.ClusterHost, fmt.Sprint(cfg.ClusterPort))))
	}
	if cfg.LeafPort != 0 && cfg.LeafTLS == nil && cfg.LeafAuth == nil && !isLoopback(orDefault(cfg.LeafHost, "127.0.0.1")) {
		open = append(open, fmt.Sprintf("the leaf-node port %s accepts any server (set --nats-cert-file and --nats-ca-file, or --nats-leaf-password-file)", net.JoinHostPort(cfg.LeafHost, fmt.Sprint(cfg.LeafPort))))
	}
	for _, r := range cfg.LeafRemotes {
		if u, err := url.Parse(r); err == nil && cfg.LeafTLS == nil && !isLoopback(u.Hostname()) {
			open = append(open, fmt.Sprintf("the leaf-node link to %s is not encrypted (set --nats-cert-file, --nats-key-file and --nats-ca-file)", u.Host))
		}
	}
	return open
}
