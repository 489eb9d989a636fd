package main

import (
	"context"
	"encoding/json"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/failoverd/failoverd/failover"
)

// TestGateFailsClosed: the gate opens only on failoverd's answer naming the
// caller (DESIGN.md rule 3); no answer keeps it shut, and the override
// applies to no answer only, never against an answer.
func TestGateFailsClosed(t *testing.T) {
	owner := failover.Ownership{Owner: "fo-eth-1-1", Generation: 1, Incident: "eth-1-1"}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/v1/owners/eth-1" {
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(owner)
	}))
	defer srv.Close()
	// A port nobody listens on: failoverd unreachable.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	dead := "http://" + ln.Addr().String()
	ln.Close()

	ctx := context.Background()
	cases := []struct {
		name, server string
		args         []string
		open         bool
		want         string
	}{
		{"standby owner asks", srv.URL, []string{"--as", "standby", "--standby", "fo-eth-1-1"}, true, "gate open"},
		{"home asks while the standby owns", srv.URL, []string{"--as", "home"}, false, "owned by fo-eth-1-1"},
		{"another standby asks", srv.URL, []string{"--as", "standby", "--standby", "fo-eth-1-2"}, false, "owned by fo-eth-1-1"},
		{"unknown validator", srv.URL, []string{"--as", "home", "--validator", "eth-9"}, false, "cannot learn who owns"},
		{"unreachable", dead, []string{"--as", "home"}, false, "cannot learn who owns"},
		{"override when unreachable", dead, []string{"--as", "home", "--override-unreachable", "failoverd host burnt"}, true, "OVERRIDDEN"},
		{"override never beats an answer", srv.URL, []string{"--as", "home", "--override-unreachable", "hurry"}, false, "owned by fo-eth-1-1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"gate", "--validator", "eth-1", "--server", c.server, "--timeout", "3s"}, c.args...)
			out, errOut, err := cli(t, ctx, environ{}, args...)
			if (err == nil) != c.open {
				t.Fatalf("open %v, want %v (%v)", err == nil, c.open, err)
			}
			all := out + errOut
			if err != nil {
				all += err.Error()
			}
			if !strings.Contains(all, c.want) {
				t.Fatalf("output %q lacks %q", all, c.want)
			}
		})
	}
}

// The gate sends the read-only gate token when it has one, and the API
// token only when it has none.
func TestGateToken(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer gate-x" {
			w.WriteHeader(http.StatusUnauthorized)
			_, _ = w.Write([]byte(`{"error":"missing or wrong API token"}`))
			return
		}
		_ = json.NewEncoder(w).Encode(failover.Ownership{})
	}))
	defer srv.Close()
	file := t.TempDir() + "/gate.token"
	if err := os.WriteFile(file, []byte("gate-x\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	base := []string{"gate", "--validator", "eth-1", "--as", "home", "--server", srv.URL, "--timeout", "3s"}
	for _, c := range []struct {
		name string
		env  environ
		args []string
		open bool
	}{
		{"gate token from the environment", environ{"FAILOVERD_GATE_TOKEN": "gate-x", "FAILOVERD_API_TOKEN": "api-y"}, nil, true},
		{"gate token from a file", environ{"FAILOVERD_API_TOKEN": "api-y"}, []string{"--gate-token-file", file}, true},
		{"only the API token", environ{"FAILOVERD_API_TOKEN": "api-y"}, nil, false},
		// A 401 is an answer: the override does not open the gate.
		{"refused token with an override", environ{"FAILOVERD_GATE_TOKEN": "old"}, []string{"--override-unreachable", "x"}, false},
	} {
		t.Run(c.name, func(t *testing.T) {
			_, _, err := cli(t, context.Background(), c.env, append(slices.Clone(base), c.args...)...)
			if (err == nil) != c.open {
				t.Fatalf("open %v, want %v (%v)", err == nil, c.open, err)
			}
		})
	}
}
