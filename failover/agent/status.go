// Package agent is the standby agent — `failoverd agent`, which runs on a
// standby node next to its execution client and beacon node — and the client
// failoverd uses to ask it how far the standby has synced.
//
// The agent serves one authenticated, encrypted endpoint, GET /v1/status
// (mutual TLS 1.3 against failoverd's own CA, see package pki), and reports
// what the local clients say: execution eth_syncing and net_peerCount,
// beacon /eth/v1/node/syncing, /eth/v1/node/health and
// /eth/v1/node/peer_count, disk free and the agent's clock. It holds no keys
// and can do nothing but report. POST /v1/keys is the seam where key import
// arrives with approve-migration; today it answers 501.
//
// See README.md in this directory for the wire format and the auth model.
package agent

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/beacon"
)

// Status is the agent's answer to GET /v1/status. Errors talking to the
// local clients are reported in it (and make the standby not ready), not as
// HTTP errors.
type Status struct {
	Execution ExecutionStatus `json:"execution"`
	Consensus ConsensusStatus `json:"consensus"`
	// DiskFreeBytes available to unprivileged users on DiskPath (0: unknown,
	// DiskError says why).
	DiskFreeBytes uint64 `json:"diskFreeBytes"`
	DiskPath      string `json:"diskPath"`
	DiskError     string `json:"diskError,omitempty"`
	// ReceivedAt is the agent's clock when the request arrived and Time when
	// the answer was written; failoverd compares their midpoint with the
	// midpoint of its own send and receive times (as NTP does), so the time
	// the agent spends asking its clients does not count as clock offset.
	ReceivedAt time.Time `json:"receivedAt"`
	Time       time.Time `json:"time"`
	// Version is the agent's failoverd version.
	Version string `json:"version"`
	// ClientsStopped: the host stopped the clients cleanly on request.
	ClientsStopped bool `json:"clientsStopped"`
	// Signer is the validator client's state (keys imported, at which
	// ownership generation).
	Signer failover.SignerState `json:"signer"`
}

// ExecutionStatus is what the execution client said over JSON-RPC.
type ExecutionStatus struct {
	// Syncing: eth_syncing answered an object rather than false.
	Syncing bool `json:"syncing"`
	// CurrentBlock and HighestBlock come from eth_syncing's object, so they
	// are 0 once the client is in sync.
	CurrentBlock uint64 `json:"currentBlock"`
	HighestBlock uint64 `json:"highestBlock"`
	// Peers: net_peerCount.
	Peers int `json:"peers"`
	// Error is why a query failed; non-empty means "not synced".
	Error string `json:"error"`
}

// ConsensusStatus is what the beacon node said over the beacon API.
type ConsensusStatus struct {
	IsSyncing    bool   `json:"isSyncing"`
	IsOptimistic bool   `json:"isOptimistic"`
	ELOffline    bool   `json:"elOffline"`
	HeadSlot     uint64 `json:"headSlot"`
	SyncDistance uint64 `json:"syncDistance"`
	// Health is the HTTP status of /eth/v1/node/health (0: no answer).
	Health int `json:"health"`
	// Peers: data.connected of /eth/v1/node/peer_count.
	Peers int `json:"peers"`
	// Error is why a query failed; non-empty means "not synced".
	Error string `json:"error"`
}

// maxBackendBody bounds what the agent reads from its local clients.
const maxBackendBody = 1 << 20

// prober asks the local clients.
type prober struct {
	http         *http.Client
	executionURL string
	beaconURL    string
	timeout      time.Duration
}

func (p *prober) execution(ctx context.Context) ExecutionStatus {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var (
		st       ExecutionStatus
		wg       sync.WaitGroup
		syncErr  error
		peersErr error
	)
	wg.Add(2)
	go func() {
		defer wg.Done()
		var raw json.RawMessage
		if syncErr = p.rpc(ctx, "eth_syncing", &raw); syncErr == nil {
			st.Syncing, st.CurrentBlock, st.HighestBlock, syncErr = parseEthSyncing(raw)
		}
		if syncErr != nil {
			syncErr = fmt.Errorf("eth_syncing: %w", syncErr)
		}
	}()
	go func() {
		defer wg.Done()
		var s string
		if peersErr = p.rpc(ctx, "net_peerCount", &s); peersErr == nil {
			var n uint64
			if n, peersErr = parseQuantity(s); peersErr == nil {
				st.Peers = clampInt(n)
			}
		}
		if peersErr != nil {
			peersErr = fmt.Errorf("net_peerCount: %w", peersErr)
		}
	}()
	wg.Wait()
	st.Error = joinErrors(syncErr, peersErr)
	return st
}

func (p *prober) consensus(ctx context.Context) ConsensusStatus {
	ctx, cancel := context.WithTimeout(ctx, p.timeout)
	defer cancel()
	var (
		st                           ConsensusStatus
		wg                           sync.WaitGroup
		syncErr, healthErr, peersErr error
	)
	wg.Add(3)
	go func() {
		defer wg.Done()
		// The same strict reading of /eth/v1/node/syncing failoverd uses
		// everywhere (failover/beacon).
		var b *beacon.Client
		if b, syncErr = beacon.New(p.beaconURL, beacon.WithHTTPClient(p.http), beacon.WithTimeout(p.timeout)); syncErr == nil {
			var s beacon.SyncStatus
			if s, syncErr = b.Syncing(ctx); syncErr == nil {
				st.HeadSlot, st.SyncDistance = s.HeadSlot, s.SyncDistance
				st.IsSyncing, st.IsOptimistic, st.ELOffline = s.IsSyncing, s.IsOptimistic, s.ELOffline
			}
		}
		if syncErr != nil {
			syncErr = fmt.Errorf("/eth/v1/node/syncing: %w", syncErr)
		}
	}()
	go func() {
		defer wg.Done()
		st.Health, healthErr = p.beaconHealth(ctx)
		if healthErr != nil {
			healthErr = fmt.Errorf("/eth/v1/node/health: %w", healthErr)
		}
	}()
	go func() {
		defer wg.Done()
		var body struct {
			Data *struct {
				Connected *uint64String `json:"connected"`
			} `json:"data"`
		}
		peersErr = p.beaconGet(ctx, "/eth/v1/node/peer_count", &body)
		if peersErr == nil {
			if body.Data == nil || body.Data.Connected == nil {
				peersErr = errors.New("answer lacks data.connected")
			} else {
				st.Peers = clampInt(uint64(*body.Data.Connected))
			}
		}
		if peersErr != nil {
			peersErr = fmt.Errorf("/eth/v1/node/peer_count: %w", peersErr)
		}
	}()
	wg.Wait()
	st.Error = joinErrors(syncErr, healthErr, peersErr)
	return st
}

// rpc makes one JSON-RPC 2.0 call to the execution client.
func (p *prober) rpc(ctx context.Context, method string, result any) error {
	reqBody, _ := json.Marshal(map[string]any{"jsonrpc": "2.0", "id": 1, "method": method, "params": []any{}})
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, p.executionURL, bytes.NewReader(reqBody))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("Accept", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBackendBody))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, excerpt(b))
	}
	var r struct {
		Result json.RawMessage `json:"result"`
		Error  *struct {
			Code    int    `json:"code"`
			Message string `json:"message"`
		} `json:"error"`
	}
	if err := json.Unmarshal(b, &r); err != nil {
		return fmt.Errorf("not a JSON-RPC answer: %w", err)
	}
	if r.Error != nil {
		return fmt.Errorf("error %d: %s", r.Error.Code, r.Error.Message)
	}
	if len(r.Result) == 0 {
		return errors.New("answer has no result")
	}
	if err := json.Unmarshal(r.Result, result); err != nil {
		return fmt.Errorf("unexpected result %s: %w", excerpt(r.Result), err)
	}
	return nil
}

// parseEthSyncing reads eth_syncing's result: false, or an object with at
// least currentBlock and highestBlock (hex quantities).
func parseEthSyncing(raw json.RawMessage) (syncing bool, current, highest uint64, err error) {
	if string(bytes.TrimSpace(raw)) == "false" {
		return false, 0, 0, nil
	}
	var obj struct {
		CurrentBlock *string `json:"currentBlock"`
		HighestBlock *string `json:"highestBlock"`
	}
	if err := json.Unmarshal(raw, &obj); err != nil || bytes.TrimSpace(raw)[0] != '{' {
		return false, 0, 0, fmt.Errorf("unexpected result %s: want false or a sync object", excerpt(raw))
	}
	if obj.CurrentBlock == nil || obj.HighestBlock == nil {
		return false, 0, 0, errors.New("sync object lacks currentBlock or highestBlock")
	}
	if current, err = parseQuantity(*obj.CurrentBlock); err != nil {
		return false, 0, 0, fmt.Errorf("currentBlock: %w", err)
	}
	if highest, err = parseQuantity(*obj.HighestBlock); err != nil {
		return false, 0, 0, fmt.Errorf("highestBlock: %w", err)
	}
	return true, current, highest, nil
}

// parseQuantity reads a JSON-RPC QUANTITY ("0x1a").
func parseQuantity(s string) (uint64, error) {
	h, ok := strings.CutPrefix(s, "0x")
	if !ok || h == "" {
		return 0, fmt.Errorf("%q is not a hex quantity", s)
	}
	n, err := strconv.ParseUint(h, 16, 64)
	if err != nil {
		return 0, fmt.Errorf("%q is not a hex quantity", s)
	}
	return n, nil
}

// beaconGet GETs a beacon API path that answers 200 with JSON.
func (p *prober) beaconGet(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.beaconURL+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	resp, err := p.http.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(io.LimitReader(resp.Body, maxBackendBody))
	if err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("HTTP %d: %s", resp.StatusCode, excerpt(b))
	}
	if err := json.Unmarshal(b, v); err != nil {
		return fmt.Errorf("bad answer: %w", err)
	}
	return nil
}

// beaconHealth returns the status code of /eth/v1/node/health; the spec
// defines 200, 206 and 503, anything else is an error (and still reported).
func (p *prober) beaconHealth(ctx context.Context) (int, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.beaconURL+"/eth/v1/node/health", nil)
	if err != nil {
		return 0, err
	}
	resp, err := p.http.Do(req)
	if err != nil {
		return 0, err
	}
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, maxBackendBody))
	resp.Body.Close()
	switch resp.StatusCode {
	case http.StatusOK, http.StatusPartialContent, http.StatusServiceUnavailable:
		return resp.StatusCode, nil
	}
	return resp.StatusCode, fmt.Errorf("unexpected HTTP %d", resp.StatusCode)
}

// uint64String is the beacon API's Uint64: a JSON string of decimal digits.
type uint64String uint64

func (u *uint64String) UnmarshalJSON(b []byte) error {
	var s string
	if err := json.Unmarshal(b, &s); err != nil {
		return fmt.Errorf("%s is not a decimal string (Uint64)", excerpt(b))
	}
	n, err := strconv.ParseUint(s, 10, 64)
	if err != nil {
		return fmt.Errorf("%q is not a decimal string (Uint64)", s)
	}
	*u = uint64String(n)
	return nil
}

func clampInt(n uint64) int {
	const maxInt = int(^uint(0) >> 1)
	if n > uint64(maxInt) {
		return maxInt
	}
	return int(n)
}

func joinErrors(errs ...error) string {
	var msgs []string
	for _, err := range errs {
		if err != nil {
			msgs = append(msgs, err.Error())
		}
	}
	return strings.Join(msgs, "; ")
}

// excerpt is b shortened for an error message.
func excerpt(b []byte) string {
	s := strings.TrimSpace(string(b))
	if len(s) > 200 {
		s = s[:200] + "…"
	}
	return strconv.Quote(s)
}
