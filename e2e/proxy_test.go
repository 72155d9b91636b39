// A TCP proxy that a test can cut and restore, to break one link between
// two real components on purpose.

package e2e

import (
	"net"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

type proxy struct {
	ln     net.Listener
	target string
	mu     sync.Mutex
	cut    bool
	conns  map[net.Conn]struct{}
	wg     sync.WaitGroup
	// mode shapes traffic on open connections: 0 normal, modeDelay adds
	// 200 ms to every chunk, modeBlackhole holds all bytes (the peers see
	// a silent network, not a reset).
	mode atomic.Int32
}

const (
	modeNormal int32 = iota
	modeDelay
	modeBlackhole
)

// healer is a proxy or several: what a fault breaks, then heals.
type healer interface {
	Heal()
	Restore()
}

// proxies act on several proxies at once: the links of one component.
type proxies []*proxy

func (ps proxies) Cut() {
	for _, p := range ps {
		p.Cut()
	}
}

func (ps proxies) Delay() {
	for _, p := range ps {
		p.Delay()
	}
}

func (ps proxies) Blackhole() {
	for _, p := range ps {
		p.Blackhole()
	}
}

func (ps proxies) Heal() {
	for _, p := range ps {
		p.Heal()
	}
}

func (ps proxies) Restore() {
	for _, p := range ps {
		p.Restore()
	}
}

// Delay adds 200 ms to every chunk in both directions.
func (p *proxy) Delay() { p.mode.Store(modeDelay) }

// Blackhole stops forwarding without closing anything.
func (p *proxy) Blackhole() { p.mode.Store(modeBlackhole) }

// Heal forwards normally again.
func (p *proxy) Heal() { p.mode.Store(modeNormal) }

// startProxy forwards a free loopback port to target until the test ends.
func startProxy(t testing.TB, target string) *proxy {
	t.Helper()
	return startProxyOn(t, "127.0.0.1:0", target)
}

// startProxyOn forwards addr to target until the test ends: for a proxy
// whose address a service advertises, and so must be known in advance.
func startProxyOn(t testing.TB, addr, target string) *proxy {
	t.Helper()
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		t.Fatalf("proxy on %s: %v", addr, err)
	}
	p := &proxy{ln: ln, target: target, conns: map[net.Conn]struct{}{}}
	p.wg.Add(1)
	go p.accept()
	t.Cleanup(func() {
		ln.Close()
		p.Cut()
		p.wg.Wait()
	})
	return p
}

func (p *proxy) Addr() string { return p.ln.Addr().String() }

// Cut closes every proxied connection and refuses new ones.
func (p *proxy) Cut() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = true
	for c := range p.conns {
		c.Close()
	}
}

// Restore accepts connections again.
func (p *proxy) Restore() {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.cut = false
}

func (p *proxy) accept() {
	defer p.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		p.mu.Lock()
		if p.cut {
			p.mu.Unlock()
			c.Close()
			continue
		}
		up, err := net.Dial("tcp", p.target)
		if err != nil {
			p.mu.Unlock()
			c.Close()
			continue
		}
		p.conns[c], p.conns[up] = struct{}{}, struct{}{}
		p.mu.Unlock()
		p.wg.Add(2)
		go p.pipe(c, up)
		go p.pipe(up, c)
	}
}

func (p *proxy) pipe(dst, src net.Conn) {
	defer p.wg.Done()
	buf := make([]byte, 32<<10)
	for {
		n, err := src.Read(buf)
		for n > 0 && p.mode.Load() == modeBlackhole {
			time.Sleep(20 * time.Millisecond) // bytes held until healed
			p.mu.Lock()
			_, open := p.conns[src]
			p.mu.Unlock()
			if !open {
				n = 0
			}
		}
		if n > 0 && p.mode.Load() == modeDelay {
			time.Sleep(200 * time.Millisecond)
		}
		if n > 0 {
			if _, werr := dst.Write(buf[:n]); werr != nil {
				break
			}
		}
		if err != nil {
			break
		}
	}
	dst.Close()
	src.Close()
	p.mu.Lock()
	delete(p.conns, dst)
	delete(p.conns, src)
	p.mu.Unlock()
}
