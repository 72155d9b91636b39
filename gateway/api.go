// The HTTP API, health endpoints and metrics.

package gateway

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/natter-chat/natter"
	"github.com/natter-chat/natter/protocol"
)

// maxAPIBody bounds a POST body.
const maxAPIBody = 64 << 10

func (g *Gateway) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.HandleFunc("GET /readyz", g.readyz)
	mux.Handle("GET /metrics", promhttp.HandlerFor(g.cfg.Registry, promhttp.HandlerOpts{}))
	mux.HandleFunc("POST /api/rooms/{room}/messages", g.apiPublish)
	mux.HandleFunc("GET /api/rooms/{room}/messages", g.apiHistory)
	mux.HandleFunc("GET /api/rooms/{room}/presence", g.apiPresence)
	if g.cfg.Web != nil {
		mux.Handle("/", g.cfg.Web)
	}
	return mux
}

type apiError struct {
	Code    protocol.Code `json:"code"`
	Message string        `json:"message"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeErr(w http.ResponseWriter, status int, code protocol.Code, msg string) {
	writeJSON(w, status, apiError{Code: code, Message: msg})
}

// readyz answers 200 when every dependency check passes, else 503 with
// the failures.
func (g *Gateway) readyz(w http.ResponseWriter, r *http.Request) {
	ok, res := g.ready(r.Context())
	status := http.StatusOK
	if !ok {
		status = http.StatusServiceUnavailable
	}
	writeJSON(w, status, res)
}

// ready runs every dependency check, each within a second, and reports
// whether all passed, with each one's outcome ("ok" or its error).
func (g *Gateway) ready(ctx context.Context) (bool, map[string]string) {
	ok, res := RunChecks(ctx, g.cfg.Checks)
	g.mu.Lock()
	if g.draining {
		ok = false
		res["gateway"] = "shutting down"
	}
	g.mu.Unlock()
	if which := g.nats.down(); which != "" {
		ok = false
		res["nats"] = "not connected (" + which + ")"
	} else {
		res["nats"] = "ok"
	}
	return ok, res
}

// RunChecks runs checks concurrently, each within a second, and returns
// whether all passed and each one's outcome ("ok" or its error): what a
// /readyz answers, here and in the roles behind the gateway.
func RunChecks(ctx context.Context, checks map[string]func(context.Context) error) (bool, map[string]string) {
	ctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	res := make(map[string]string, len(checks)+2)
	var mu sync.Mutex
	var wg sync.WaitGroup
	ok := true
	for name, check := range checks {
		wg.Go(func() {
			err := check(ctx)
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				ok = false
				res[name] = err.Error()
			} else {
				res[name] = "ok"
			}
		})
	}
	wg.Wait()
	return ok, res
}

type publishRequest struct {
	User  string `json:"user"`
	CID   string `json:"cid"`
	Body  string `json:"body"`
	Retry bool   `json:"retry"`
}

type publishResponse struct {
	ID string `json:"id"`
	TS int64  `json:"ts"`
}

// apiPublish sends a message from a backend. It answers 201 once the
// message is durable, like a client's ack.
func (g *Gateway) apiPublish(w http.ResponseWriter, r *http.Request) {
	if c, ok := g.apiCaller(w, r); !ok || !g.mayPublish(w, c) {
		return
	}
	room := r.PathValue("room")
	if err := natter.CheckRoom(room); err != nil {
		writeErr(w, http.StatusBadRequest, protocol.CodeInvalidRoom, err.Error())
		return
	}
	var req publishRequest
	dec := json.NewDecoder(http.MaxBytesReader(w, r.Body, maxAPIBody))
	if err := dec.Decode(&req); err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			writeErr(w, http.StatusRequestEntityTooLarge, protocol.CodeTooLarge, "body exceeds 64 KiB")
			return
		}
		writeErr(w, http.StatusBadRequest, protocol.CodeBadFrame, "body must be a JSON object {user, body, cid?}")
		return
	}
	if err := natter.CheckUser(req.User); err != nil {
		writeErr(w, http.StatusBadRequest, protocol.CodeInvalidUser, err.Error())
		return
	}
	if err := natter.CheckBody(req.Body, g.cfg.Limits.BodyBytes); err != nil {
		writeErr(w, http.StatusBadRequest, protocol.CodeInvalidBody, err.Error())
		return
	}
	if req.CID == "" {
		var b [12]byte
		_, _ = rand.Read(b[:])
		req.CID = "api-" + hex.EncodeToString(b[:])
	} else if err := natter.CheckCID(req.CID); err != nil {
		writeErr(w, http.StatusBadRequest, protocol.CodeInvalidCID, err.Error())
		return
	}
	acked := make(chan publishResponse, 1)
	err := g.accept(req.User, room, req.CID, req.Body, req.Retry, func(id string, ts int64) {
		acked <- publishResponse{ID: id, TS: ts}
	})
	if err != nil {
		code := protocol.CodeUnavailable
		if errors.Is(err, errDraining) {
			code = protocol.CodeShuttingDown
		}
		writeErr(w, http.StatusServiceUnavailable, code, err.Error())
		return
	}
	select {
	case res := <-acked:
		writeJSON(w, http.StatusCreated, res)
	case <-time.After(10 * time.Second):
		writeErr(w, http.StatusServiceUnavailable, protocol.CodeUnavailable, "not yet durable; retry with the same cid")
	case <-r.Context().Done():
	}
}

type historyResponse struct {
	Messages []protocol.Msg `json:"messages"`
	More     bool           `json:"more"`
}

func (g *Gateway) apiHistory(w http.ResponseWriter, r *http.Request) {
	c, ok := g.apiCaller(w, r)
	if !ok {
		return
	}
	room := r.PathValue("room")
	if err := natter.CheckRoom(room); err != nil {
		writeErr(w, http.StatusBadRequest, protocol.CodeInvalidRoom, err.Error())
		return
	}
	if !g.mayRead(w, c, room) {
		return
	}
	q := r.URL.Query()
	limit := defaultHistoryLimit
	if s := q.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > g.cfg.Limits.HistoryPage {
			writeErr(w, http.StatusBadRequest, protocol.CodeInvalidLimit, "limit must be 1-"+strconv.Itoa(g.cfg.Limits.HistoryPage))
			return
		}
		limit = n
	}
	before := q.Get("before")
	if before != "" {
		if _, err := natter.ParseID(before); err != nil {
			writeErr(w, http.StatusBadRequest, protocol.CodeInvalidID, "before: "+err.Error())
			return
		}
	}
	msgs, more, err := g.cfg.History.Page(r.Context(), room, before, limit)
	if err != nil {
		g.log.Warn("api history", "room", room, "err", err)
		writeErr(w, http.StatusServiceUnavailable, protocol.CodeUnavailable, "history is unavailable; retry")
		return
	}
	writeJSON(w, http.StatusOK, historyResponse{Messages: protocol.MsgsOf(msgs), More: more})
}

func (g *Gateway) apiPresence(w http.ResponseWriter, r *http.Request) {
	c, ok := g.apiCaller(w, r)
	if !ok {
		return
	}
	room := r.PathValue("room")
	if err := natter.CheckRoom(room); err != nil {
		writeErr(w, http.StatusBadRequest, protocol.CodeInvalidRoom, err.Error())
		return
	}
	if !g.mayRead(w, c, room) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"room": room, "members": g.hub.members(room)})
}
