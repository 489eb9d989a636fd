package agent

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestParseEthSyncing(t *testing.T) {
	cases := []struct {
		raw              string
		syncing          bool
		current, highest uint64
		err              bool
	}{
		{`false`, false, 0, 0, false},
		{`{"startingBlock":"0x0","currentBlock":"0x10","highestBlock":"0x20"}`, true, 16, 32, false},
		{`true`, false, 0, 0, true},
		{`null`, false, 0, 0, true},
		{`{}`, false, 0, 0, true},
		{`{"currentBlock":"16","highestBlock":"0x20"}`, false, 0, 0, true},
		{`{"currentBlock":"0x","highestBlock":"0x20"}`, false, 0, 0, true},
		{`"false"`, false, 0, 0, true},
	}
	for _, tc := range cases {
		s, c, h, err := parseEthSyncing(json.RawMessage(tc.raw))
		if (err != nil) != tc.err || s != tc.syncing || c != tc.current || h != tc.highest {
			t.Errorf("%s: got %v %d %d %v", tc.raw, s, c, h, err)
		}
	}
}

// fakeBackend answers each path with a fixed status and body.
func fakeBackend(t *testing.T, answers map[string]string) *prober {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		key := r.URL.Path
		if r.Method == http.MethodPost {
			var req struct{ Method string }
			_ = json.NewDecoder(r.Body).Decode(&req)
			key = req.Method
		}
		a, ok := answers[key]
		if !ok {
			w.WriteHeader(http.StatusOK) // health
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_, _ = w.Write([]byte(a))
	}))
	t.Cleanup(srv.Close)
	return &prober{http: srv.Client(), executionURL: srv.URL, beaconURL: srv.URL, timeout: 2 * time.Second}
}

func TestBeaconAnswersFollowTheSpec(t *testing.T) {
	good := `{"data":{"head_slot":"10","sync_distance":"0","is_syncing":false,"is_optimistic":false,"el_offline":false}}`
	peers := `{"data":{"disconnected":"1","connecting":"0","connected":"9","disconnecting":"0"}}`
	cases := []struct {
		name, syncing, peers, wantErr string
	}{
		{"good", good, peers, ""},
		{"numbers instead of strings", `{"data":{"head_slot":10,"sync_distance":0,"is_syncing":false,"is_optimistic":false,"el_offline":false}}`, peers, "cannot unmarshal number"},
		{"el_offline missing", `{"data":{"head_slot":"10","sync_distance":"0","is_syncing":false,"is_optimistic":false}}`, peers, "el_offline required"},
		{"no data", `{}`, peers, "malformed reply: syncing: data with head_slot"},
		{"negative", `{"data":{"head_slot":"-1","sync_distance":"0","is_syncing":false,"is_optimistic":false,"el_offline":false}}`, peers, "not decimal"},
		{"peers missing connected", good, `{"data":{}}`, "data.connected"},
		{"not JSON", "<html>", peers, "invalid character"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			p := fakeBackend(t, map[string]string{"/eth/v1/node/syncing": tc.syncing, "/eth/v1/node/peer_count": tc.peers})
			st := p.consensus(context.Background())
			if tc.wantErr == "" {
				if st.Error != "" || st.HeadSlot != 10 || st.Peers != 9 || st.Health != 200 {
					t.Fatalf("%+v", st)
				}
				return
			}
			if !strings.Contains(st.Error, tc.wantErr) {
				t.Fatalf("error %q, want %q", st.Error, tc.wantErr)
			}
		})
	}
}

func TestJSONRPCErrors(t *testing.T) {
	p := fakeBackend(t, map[string]string{
		"eth_syncing":   `{"jsonrpc":"2.0","id":1,"error":{"code":-32601,"message":"method not found"}}`,
		"net_peerCount": `{"jsonrpc":"2.0","id":1,"result":25}`,
	})
	st := p.execution(context.Background())
	if !strings.Contains(st.Error, "eth_syncing: error -32601: method not found") ||
		!strings.Contains(st.Error, "net_peerCount: unexpected result") {
		t.Fatalf("error %q", st.Error)
	}
}

func TestDecodeStatusRefusesMissingFields(t *testing.T) {
	full := Status{Time: time.Now()}
	b, _ := json.Marshal(full)
	if _, err := decodeStatus(b); err != nil {
		t.Fatalf("full status refused: %v", err)
	}
	for _, drop := range []string{`"isOptimistic":false,`, `"syncing":false,`, `"elOffline":false,`} {
		s := strings.Replace(string(b), drop, "", 1)
		if s == string(b) {
			t.Fatalf("%s not in %s", drop, b)
		}
		if _, err := decodeStatus([]byte(s)); err == nil {
			t.Errorf("status without %s accepted", drop)
		}
	}
	if _, err := decodeStatus([]byte(`{"time":"2026-01-01T00:00:00Z"}`)); err == nil {
		t.Error("status without execution and consensus accepted")
	}
}
