// This file runs a Kafka-protocol broker inside the natter process, so the
// one-process default keeps the durable message log without a Kafka cluster.
// It is franz-go's kfake, a single broker that speaks the Kafka wire protocol
// well enough for sarama's idempotent producer and consumer groups.

package embedded

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"os"
	"strconv"
	"sync"
	"syscall"

	"github.com/twmb/franz-go/pkg/kfake"
)

// KafkaConfig configures StartKafka. The zero value is a memory-only broker
// on a free 127.0.0.1 port with no topics.
type KafkaConfig struct {
	// Host is the address to listen on and the address clients are told to
	// use, so it must be a specific address, not 0.0.0.0. Empty means
	// 127.0.0.1.
	Host string
	// Port is the listen port. 0 picks a free port at each start; Brokers
	// says which. A restart on the same DataDir does not remember the port,
	// so clients that keep broker addresses across restarts need it fixed.
	Port int

	// DataDir keeps the log, topics and committed offsets across restarts,
	// including after a kill -9. Empty means memory only.
	DataDir string
	// SyncWrites fsyncs every produced batch before acknowledging it, so
	// acknowledged messages also survive a power loss. Without it they
	// survive a crash of natter, but a power loss may take the last ones,
	// as with Kafka's default flush settings.
	SyncWrites bool

	// Topics are created at start if they do not exist yet, with Partitions
	// partitions. Producing to any other topic fails: topics are not
	// created on first use, so a misspelt name is an error, not a new topic.
	Topics []string
	// Partitions is the partition count of new topics. 0 means 4.
	Partitions int
}

// Kafka is a running in-process Kafka-protocol broker.
type Kafka struct {
	cluster   *kfake.Cluster
	brokers   []string
	unlock    func() error // releases the DataDir lock; nil without DataDir
	log       *slog.Logger
	closeOnce sync.Once
	closeErr  error
}

// StartKafka starts a one-broker Kafka cluster in this process and returns
// once it accepts connections and every topic in cfg.Topics exists. Its log
// lines go to log (nil discards them).
func StartKafka(cfg KafkaConfig, log *slog.Logger) (*Kafka, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With(slog.String("component", "kafka"))
	host := orDefault(cfg.Host, "127.0.0.1")
	if ip := net.ParseIP(host); ip != nil && ip.IsUnspecified() {
		return nil, fmt.Errorf("kafka: host %s is not an address clients can connect to; use 127.0.0.1 or the machine's address", host)
	}
	partitions := cfg.Partitions
	if partitions == 0 {
		partitions = 4
	}
	if partitions < 0 || cfg.Port < 0 {
		return nil, fmt.Errorf("kafka: partitions (%d) and port (%d) must not be negative", cfg.Partitions, cfg.Port)
	}

	k := &Kafka{log: log}
	opts := []kfake.Opt{
		// kfake starts three brokers by default; natter wants one process
		// with one listener.
		kfake.NumBrokers(1),
		kfake.DefaultNumPartitions(partitions),
		kfake.WithLogger(kfakeLogger{log}),
		// kfake always listens on 127.0.0.1; this moves it to host.
		kfake.ListenFn(func(network, addr string) (net.Listener, error) {
			_, port, err := net.SplitHostPort(addr)
			if err != nil {
				return nil, err
			}
			return net.Listen(network, net.JoinHostPort(host, port))
		}),
	}
	if cfg.Port != 0 {
		opts = append(opts, kfake.Ports(cfg.Port))
	}
	if cfg.DataDir != "" {
		if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
			return nil, fmt.Errorf("kafka: create data dir: %w", err)
		}
		// kfake does not lock its data dir, and two brokers writing one
		// log would corrupt it.
		unlock, err := lockDir("kafka", cfg.DataDir)
		if err != nil {
			return nil, err
		}
		k.unlock = unlock
		opts = append(opts, kfake.DataDir(cfg.DataDir))
	}
	if cfg.SyncWrites {
		opts = append(opts, kfake.SyncWrites())
	}

	c, err := kfake.NewCluster(opts...)
	if err != nil {
		k.releaseLock()
		addr := net.JoinHostPort(host, strconv.Itoa(cfg.Port))
		if errors.Is(err, syscall.EADDRINUSE) {
			return nil, &PortInUseError{Service: "kafka", Addr: addr, Hint: "pass --embedded-kafka-port or stop the other process"}
		}
		return nil, fmt.Errorf("kafka: start broker on %s (data dir %q): %w", addr, cfg.DataDir, err)
	}
	k.cluster = c
	k.brokers = c.ListenAddrs()

	for _, topic := range cfg.Topics {
		if err := k.ensureTopic(topic, partitions); err != nil {
			k.Close()
			return nil, err
		}
	}
	log.Info("kafka broker started", slog.Any("brokers", k.brokers), slog.String("data_dir", cfg.DataDir))
	return k, nil
}

// Brokers returns the bootstrap addresses for Kafka clients, e.g.
// ["127.0.0.1:9092"].
func (k *Kafka) Brokers() []string {
	return append([]string(nil), k.brokers...)
}

// Close stops the broker. With a DataDir it first writes the broker's state
// and syncs the log, then releases the directory. Connected clients are
// disconnected. It is safe to call more than once.
func (k *Kafka) Close() error {
	k.closeOnce.Do(func() {
		k.cluster.Close()
		k.closeErr = k.releaseLock()
		k.log.Info("kafka broker stopped")
	})
	return k.closeErr
}

// ensureTopic creates topic unless it exists. A topic that exists with fewer
// partitions than asked for is kept as it is: adding partitions would move
// keys to other partitions and break per-key order.
func (k *Kafka) ensureTopic(topic string, partitions int) error {
	if have := len(k.cluster.PartitionInfos(topic)); have > 0 {
		if have != partitions {
			k.log.Warn("kafka topic keeps its partition count",
				slog.String("topic", topic), slog.Int("partitions", have), slog.Int("configured", partitions))
		}
		return nil
	}
	if err := k.cluster.CreateTopic(topic, int32(partitions), nil); err != nil {
		return fmt.Errorf("kafka: create topic %s: %w", topic, err)
	}
	return nil
}

func (k *Kafka) releaseLock() error {
	if k.unlock == nil {
		return nil
	}
	err := k.unlock()
	k.unlock = nil
	return err
}

// kfakeLogger bridges kfake's logger to slog. kfake logs every request at
// its info level, which is far too chatty for natter's info, so each kfake
// level goes one step down.
type kfakeLogger struct{ log *slog.Logger }

func (l kfakeLogger) Logf(level kfake.LogLevel, format string, args ...any) {
	var sl slog.Level
	switch level {
	case kfake.LogLevelError:
		sl = slog.LevelError
	case kfake.LogLevelWarn:
		sl = slog.LevelWarn
	case kfake.LogLevelInfo:
		sl = slog.LevelDebug
	default:
		sl = levelTrace
	}
	ctx := context.Background()
	if l.log.Enabled(ctx, sl) {
		l.log.Log(ctx, sl, fmt.Sprintf(format, args...))
	}
}
