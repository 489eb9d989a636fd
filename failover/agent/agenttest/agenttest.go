// Package agenttest has local stand-ins for what a standby agent talks to —
// a beacon node that follows the beacon API spec (shared/specs/beacon-apis:
// /eth/v1/node/syncing, /health, /peer_count) and an execution client's
// JSON-RPC (eth_syncing, net_peerCount, eth_blockNumber) — and a helper that
// starts a real agent against them with credentials from a pki.Authority.
// Everything listens on 127.0.0.1 and is closed by t.Cleanup.
package agenttest

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover/agent"
	"github.com/failoverd/failoverd/failover/pki"
)

// BeaconState is what the fake beacon node reports.
type BeaconState struct {
	IsSyncing    bool
	IsOptimistic bool
	ELOffline    bool
	HeadSlot     uint64
	SyncDistance uint64
	// Health, when not 0, is the status of /eth/v1/node/health. When 0 it
	// follows the spec: 200 when neither syncing, optimistic nor EL offline,
	// else 206 (or the syncing_status query parameter).
	Health int
	// Peers is data.connected of /eth/v1/node/peer_count.
	Peers uint64
	// Fail, when not 0, is the HTTP status every endpoint but health answers
	// (the spec's InternalError body for 500).
	Fail int
}

// SyncedBeacon is a beacon node in sync, healthy, with peers.
func SyncedBeacon() BeaconState {
	return BeaconState{HeadSlot: 12_345_678, Peers: 80}
}

// Beacon is a fake beacon node.
type Beacon struct {
	URL string

	srv   *httptest.Server
	mu    sync.Mutex
	state BeaconState
	hits  map[string]int
}

// NewBeacon starts a fake beacon node on 127.0.0.1 reporting st.
func NewBeacon(t testing.TB, st BeaconState) *Beacon {
	t.Helper()
	b := &Beacon{state: st, hits: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /eth/v1/node/syncing", b.syncing)
	mux.HandleFunc("GET /eth/v1/node/health", b.health)
	mux.HandleFunc("GET /eth/v1/node/peer_count", b.peerCount)
	b.srv = newLocalServer(t, mux)
	b.URL = b.srv.URL
	return b
}

// Set replaces the reported state.
func (b *Beacon) Set(st BeaconState) { b.mu.Lock(); b.state = st; b.mu.Unlock() }

// Update changes the reported state in place.
func (b *Beacon) Update(f func(*BeaconState)) { b.mu.Lock(); f(&b.state); b.mu.Unlock() }

// State is the reported state.
func (b *Beacon) State() BeaconState { b.mu.Lock(); defer b.mu.Unlock(); return b.state }

// Hits is how often path was asked.
func (b *Beacon) Hits(path string) int { b.mu.Lock(); defer b.mu.Unlock(); return b.hits[path] }

// Close stops the server: the beacon node is down.
func (b *Beacon) Close() { b.srv.Close() }

func (b *Beacon) get(r *http.Request) BeaconState {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.hits[r.URL.Path]++
	return b.state
}

func (b *Beacon) syncing(w http.ResponseWriter, r *http.Request) {
	st := b.get(r)
	if failed(w, st.Fail) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"head_slot":     strconv.FormatUint(st.HeadSlot, 10),
		"sync_distance": strconv.FormatUint(st.SyncDistance, 10),
		"is_syncing":    st.IsSyncing,
		"is_optimistic": st.IsOptimistic,
		"el_offline":    st.ELOffline,
	}})
}

func (b *Beacon) health(w http.ResponseWriter, r *http.Request) {
	st := b.get(r)
	code := st.Health
	if code == 0 {
		code = http.StatusOK
		if st.IsSyncing || st.IsOptimistic || st.ELOffline {
			code = http.StatusPartialContent
			if q := r.URL.Query().Get("syncing_status"); q != "" {
				n, err := strconv.Atoi(q)
				if err != nil || n < 100 || n > 599 {
					writeJSON(w, http.StatusBadRequest, map[string]any{"code": 400, "message": "Invalid syncing status code"})
					return
				}
				code = n
			}
		}
	}
	w.WriteHeader(code)
}

func (b *Beacon) peerCount(w http.ResponseWriter, r *http.Request) {
	st := b.get(r)
	if failed(w, st.Fail) {
		return
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": map[string]any{
		"disconnected":  "12",
		"connecting":    "3",
		"connected":     strconv.FormatUint(st.Peers, 10),
		"disconnecting": "1",
	}})
}

// ExecutionState is what the fake execution client reports.
type ExecutionState struct {
	// Syncing makes eth_syncing answer an object with CurrentBlock and
	// HighestBlock; otherwise it answers false.
	Syncing      bool
	CurrentBlock uint64
	HighestBlock uint64
	// Peers is net_peerCount.
	Peers uint64
	// Fail, when not 0, is the HTTP status of every answer.
	Fail int
}

// SyncedExecution is an execution client in sync with peers.
func SyncedExecution() ExecutionState {
	return ExecutionState{CurrentBlock: 22_000_000, HighestBlock: 22_000_000, Peers: 50}
}

// Execution is a fake execution client's JSON-RPC endpoint.
type Execution struct {
	URL string

	srv   *httptest.Server
	mu    sync.Mutex
	state ExecutionState
	calls map[string]int
}

// NewExecution starts a fake JSON-RPC server on 127.0.0.1 reporting st.
func NewExecution(t testing.TB, st ExecutionState) *Execution {
	t.Helper()
	e := &Execution{state: st, calls: map[string]int{}}
	e.srv = newLocalServer(t, http.HandlerFunc(e.serve))
	e.URL = e.srv.URL
	return e
}

// Set replaces the reported state.
func (e *Execution) Set(st ExecutionState) { e.mu.Lock(); e.state = st; e.mu.Unlock() }

// Update changes the reported state in place.
func (e *Execution) Update(f func(*ExecutionState)) { e.mu.Lock(); f(&e.state); e.mu.Unlock() }

// State is the reported state.
func (e *Execution) State() ExecutionState { e.mu.Lock(); defer e.mu.Unlock(); return e.state }

// Calls is how often method was called.
func (e *Execution) Calls(method string) int {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.calls[method]
}

// Close stops the server: the execution client is down.
func (e *Execution) Close() { e.srv.Close() }

type rpcRequest struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Method  string          `json:"method"`
	Params  json.RawMessage `json:"params"`
}

type rpcError struct {
	Code    int    `json:"code"`
	Message string `json:"message"`
}

type rpcResponse struct {
	JSONRPC string          `json:"jsonrpc"`
	ID      json.RawMessage `json:"id"`
	Result  any             `json:"result,omitempty"`
	Error   *rpcError       `json:"error,omitempty"`
}

func (e *Execution) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		http.Error(w, "JSON-RPC wants POST", http.StatusMethodNotAllowed)
		return
	}
	e.mu.Lock()
	st := e.state
	e.mu.Unlock()
	if st.Fail != 0 {
		http.Error(w, "execution client failing", st.Fail)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		return
	}
	// A batch is an array of requests.
	var batch []rpcRequest
	if err := json.Unmarshal(body, &batch); err == nil {
		out := make([]rpcResponse, 0, len(batch))
		for _, req := range batch {
			out = append(out, e.call(st, req))
		}
		writeJSON(w, http.StatusOK, out)
		return
	}
	var req rpcRequest
	if err := json.Unmarshal(body, &req); err != nil {
		writeJSON(w, http.StatusOK, rpcResponse{JSONRPC: "2.0", ID: json.RawMessage("null"),
			Error: &rpcError{Code: -32700, Message: "parse error"}})
		return
	}
	writeJSON(w, http.StatusOK, e.call(st, req))
}

func (e *Execution) call(st ExecutionState, req rpcRequest) rpcResponse {
	e.mu.Lock()
	e.calls[req.Method]++
	e.mu.Unlock()
	resp := rpcResponse{JSONRPC: "2.0", ID: req.ID}
	if req.JSONRPC != "2.0" || len(req.ID) == 0 {
		resp.Error = &rpcError{Code: -32600, Message: "invalid request"}
		return resp
	}
	switch req.Method {
	case "eth_syncing":
		if !st.Syncing {
			resp.Result = false
			break
		}
		resp.Result = map[string]string{
			"startingBlock": "0x0",
			"currentBlock":  hex(st.CurrentBlock),
			"highestBlock":  hex(st.HighestBlock),
		}
	case "net_peerCount":
		resp.Result = hex(st.Peers)
	case "eth_blockNumber":
		resp.Result = hex(st.CurrentBlock)
	default:
		resp.Error = &rpcError{Code: -32601, Message: fmt.Sprintf("the method %s does not exist/is not available", req.Method)}
	}
	return resp
}

func hex(n uint64) string { return "0x" + strconv.FormatUint(n, 16) }

func failed(w http.ResponseWriter, code int) bool {
	if code == 0 {
		return false
	}
	writeJSON(w, code, map[string]any{"code": code, "message": "Internal server error"})
	return true
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func newLocalServer(t testing.TB, h http.Handler) *httptest.Server {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("agenttest: listen: %v", err)
	}
	srv := &httptest.Server{Listener: ln, Config: &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second}}
	srv.Start()
	t.Cleanup(srv.Close)
	return srv
}

// Credentials are a standby's credential files, written by WriteCredentials.
type Credentials struct {
	CertFile, KeyFile, ClientCAFile string
}

// WriteCredentials writes the standby's certificate, key and failoverd's CA
// into dir, as the bootstrap does on a real standby.
func WriteCredentials(t testing.TB, a *pki.Authority, name string, dir string) Credentials {
	t.Helper()
	certPEM, keyPEM, err := a.StandbyCredentials(name, time.Now().Add(-time.Hour))
	if err != nil {
		t.Fatalf("agenttest: %v", err)
	}
	c := Credentials{
		CertFile:     filepath.Join(dir, "agent.crt"),
		KeyFile:      filepath.Join(dir, "agent.key"),
		ClientCAFile: filepath.Join(dir, "client-ca.crt"),
	}
	for path, b := range map[string][]byte{c.CertFile: certPEM, c.KeyFile: keyPEM, c.ClientCAFile: a.CAPEM()} {
		if err := os.WriteFile(path, b, 0o600); err != nil {
			t.Fatalf("agenttest: %v", err)
		}
	}
	return c
}

// StartAgent runs a real agent for the standby named name on 127.0.0.1,
// with credentials from a, and returns its address (host:port, usable as
// cloud.Standby.Address). o's credential files, Listen and — when empty —
// DataPath are filled in; the rest is used as given. The agent stops at
// cleanup, and the test fails if it ended with an error.
func StartAgent(t testing.TB, a *pki.Authority, name string, o agent.Options) string {
	t.Helper()
	dir := t.TempDir()
	c := WriteCredentials(t, a, name, dir)
	o.CertFile, o.KeyFile, o.ClientCAFile = c.CertFile, c.KeyFile, c.ClientCAFile
	if o.DataPath == "" {
		o.DataPath = dir
	}
	tw := &testWriter{t: t}
	if o.Logger == nil {
		o.Logger = slog.New(slog.NewTextHandler(tw, &slog.HandlerOptions{Level: slog.LevelDebug}))
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatalf("agenttest: listen: %v", err)
	}
	addr := ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- agent.Serve(ctx, ln, o) }()
	t.Cleanup(func() {
		cancel()
		if err := <-done; err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("agent ended with %v", err)
		}
		tw.close()
	})
	return addr
}

// testWriter sends log lines to t.Log until the test ends.
type testWriter struct {
	t      testing.TB
	mu     sync.Mutex
	closed bool
}

func (w *testWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.closed {
		w.t.Log(strings.TrimRight(string(p), "\n"))
	}
	return len(p), nil
}

func (w *testWriter) close() { w.mu.Lock(); w.closed = true; w.mu.Unlock() }
