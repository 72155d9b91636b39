// The plan of a run: which connection goes to which gateway and room, and
// which connections publish. It is computed from the Config alone, so every
// load-generator process of a run builds the same plan and takes its slice.

package bench

import (
	"fmt"
	"math/rand/v2"
	"strconv"
	"strings"
	"time"
)

type connPlan struct {
	url  int // index into Config.URLs
	room int // index into plan.rooms; -1 for none
	pub  int // publisher index, or -1
}

type roomPlan struct {
	name    string
	members int
	pubs    []int // publisher indices, in order; a publisher's slot is its position
}

type plan struct {
	conns []connPlan
	rooms []roomPlan
	pubs  []int // publisher index → connection index
	slot  []int // publisher index → position in its room's pubs
	// messages is how many messages the schedule sends in all; message k
	// is sent by publisher k % len(pubs) at k/Rate after the start.
	messages int64
}

// roomSizes is a parsed --room-size: "10" or a uniform range "2-50".
type roomSizes struct{ lo, hi int }

func parseRoomSizes(s string) (roomSizes, error) {
	if strings.TrimSpace(s) == "0" {
		return roomSizes{0, 0}, nil // no rooms: connections only connect
	}
	lo, hi, isRange := strings.Cut(strings.TrimSpace(s), "-")
	a, err := strconv.Atoi(lo)
	if err != nil || a < 1 {
		return roomSizes{}, fmt.Errorf("room size %q: use a number like 10 or a range like 2-50", s)
	}
	b := a
	if isRange {
		if b, err = strconv.Atoi(hi); err != nil || b < a {
			return roomSizes{}, fmt.Errorf("room size %q: use a number like 10 or a range like 2-50", s)
		}
	}
	return roomSizes{a, b}, nil
}

func (r roomSizes) String() string {
	if r.lo == r.hi {
		return strconv.Itoa(r.lo)
	}
	return fmt.Sprintf("%d-%d", r.lo, r.hi)
}

func newPlan(cfg *Config) (*plan, error) {
	sizes, err := parseRoomSizes(cfg.RoomSize)
	if err != nil {
		return nil, err
	}
	if cfg.Scenario == ScenarioFanout {
		sizes = roomSizes{cfg.Conns, cfg.Conns}
	}
	p := &plan{conns: make([]connPlan, cfg.Conns)}
	if sizes.hi == 0 {
		for i := range p.conns {
			p.conns[i] = connPlan{url: i % len(cfg.URLs), room: -1, pub: -1}
		}
		return p, nil
	}
	rng := rand.New(rand.NewPCG(1, 2)) // fixed: every process draws the same sizes
	for i := 0; i < cfg.Conns; {
		size := sizes.lo + rng.IntN(sizes.hi-sizes.lo+1)
		size = min(size, cfg.Conns-i)
		r := len(p.rooms)
		p.rooms = append(p.rooms, roomPlan{name: fmt.Sprintf("bench-%s-%d", cfg.RunID, r), members: size})
		npub := 0
		if cfg.Rate > 0 && cfg.Scenario != ScenarioIdle {
			npub = size
			if cfg.Publishers > 0 {
				npub = min(cfg.Publishers, size)
			}
		}
		for j := 0; j < size; j++ {
			c := &p.conns[i+j]
			c.room, c.pub = r, -1
			// Spread the publishers evenly over the room's members.
			if npub > 0 && (j*npub)%size < npub {
				c.pub = len(p.pubs)
				p.slot = append(p.slot, len(p.rooms[r].pubs))
				p.rooms[r].pubs = append(p.rooms[r].pubs, c.pub)
				p.pubs = append(p.pubs, i+j)
			}
		}
		i += size
	}
	// Gateways: a room lives on one gateway (fan-out within a gateway
	// needs no shared NATS); idle connections round-robin; in cross the
	// publishers use the first gateway and everyone else the others.
	n := len(cfg.URLs)
	other := 0
	for i := range p.conns {
		c := &p.conns[i]
		switch cfg.Scenario {
		case ScenarioIdle:
			c.url = i % n
		case ScenarioCross:
			if c.pub >= 0 {
				c.url = 0
			} else {
				c.url = 1 + other%(n-1)
				other++
			}
		default:
			c.url = c.room % n
		}
	}
	if len(p.pubs) > 0 {
		p.messages = int64(cfg.Duration.Seconds() * cfg.Rate)
	}
	return p, nil
}

// sentBy is how many messages the schedule gives publisher pub.
func (p *plan) sentBy(pub int) int64 {
	n := int64(len(p.pubs))
	if n == 0 {
		return 0
	}
	q := p.messages / n
	if int64(pub) < p.messages%n {
		q++
	}
	return q
}

// due is when message k is to be sent, after the start.
func due(k int64, rate float64) time.Duration {
	return time.Duration(float64(k) / rate * float64(time.Second))
}

// slice is the [lo, hi) range of connections process i of n runs.
func slice(conns, i, n int) (lo, hi int) {
	return conns * i / n, conns * (i + 1) / n
}
