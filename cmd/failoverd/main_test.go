package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/spf13/cobra"
	"sigs.k8s.io/yaml"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/httpapi"
)

// syncBuffer is a bytes.Buffer safe to write from serve's goroutines while
// the test reads it.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// environ is a fake environment.
type environ map[string]string

func (e environ) get(k string) string { return e[k] }

// cli runs the program in-process.
func cli(t *testing.T, ctx context.Context, env environ, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut syncBuffer
	err = run(ctx, args, env.get, &out, &errOut)
	return out.String(), errOut.String(), err
}

func isUsage(err error) bool {
	var ue *usageError
	return errors.As(err, &ue)
}

func TestVersion(t *testing.T) {
	out, _, err := cli(t, context.Background(), nil, "version")
	if err != nil {
		t.Fatal(err)
	}
	if want := fmt.Sprintf("failoverd %s (commit %s, go", version, commit); !strings.HasPrefix(out, want) {
		t.Fatalf("version printed %q, want %q...", out, want)
	}
	out, _, err = cli(t, context.Background(), nil, "version", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v map[string]string
	if err := json.Unmarshal([]byte(out), &v); err != nil {
		t.Fatalf("version -o json printed %q: %v", out, err)
	}
	if v["version"] != version || v["commit"] != commit || !strings.HasPrefix(v["go"], "go") {
		t.Fatalf("version json %v", v)
	}
}

// TestHelp asks every command for --help: it succeeds, prints usage and the
// command's examples.
func TestHelp(t *testing.T) {
	var walk func(c *cobra.Command, path []string)
	type cmdCase struct {
		path    []string
		example string
	}
	var cases []cmdCase
	walk = func(c *cobra.Command, path []string) {
		cases = append(cases, cmdCase{path, c.Example})
		for _, sub := range c.Commands() {
			if sub.Name() == "help" || sub.Name() == "completion" {
				continue
			}
			walk(sub, append(append([]string{}, path...), sub.Name()))
		}
	}
	walk(newRoot(environ{}.get, nil, nil), nil)
	if len(cases) < 10 {
		t.Fatalf("found only %d commands", len(cases))
	}
	withExamples := 0
	for _, tc := range cases {
		t.Run(strings.Join(append([]string{"failoverd"}, tc.path...), " "), func(t *testing.T) {
			out, _, err := cli(t, context.Background(), nil, append(tc.path, "--help")...)
			if err != nil {
				t.Fatalf("--help: %v", err)
			}
			if !strings.Contains(out, "Usage:") {
				t.Fatalf("--help printed no usage:\n%s", out)
			}
			if tc.example != "" {
				withExamples++
				first := strings.TrimSpace(strings.SplitN(tc.example, "\n", 2)[0])
				if !strings.Contains(out, "Examples:") || !strings.Contains(out, first) {
					t.Fatalf("--help does not show the examples:\n%s", out)
				}
			}
		})
	}
	if withExamples < 5 {
		t.Fatalf("only %d commands have examples; serve, config validate, incidents list/show and teardown should", withExamples)
	}
}

func TestUsageErrors(t *testing.T) {
	tests := [][]string{
		{"--bogus"},
		{"version", "--bogus"},
		{"version", "-o", "xml"},
		{"version", "extra"},
		{"serve", "--no-such-flag"},
		{"serve", "extra"},
		{"serve", "--log-format", "xml"},
		{"serve", "--log-level", "loud"},
		{"config", "validate"},
		{"config", "validate", "--config", "x.yaml", "-o", "toml"},
		{"incidents", "list", "--nope"},
		{"incidents", "list", "-o", "xml"},
		{"incidents", "show"},
		{"incidents", "show", "a", "b"},
		{"incidents", "show", "a", "-o", "table"},
		{"teardown"},
		{"teardown", "x-1", "-o", "yaml"},
		{"sites", "-o", "yaml"},
		{"sites", "--timeout", "soon"},
		{"bogus"},
		{"incidents", "bogus"},
	}
	for _, args := range tests {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			// No server runs: a usage error must be found before any call.
			env := environ{"FAILOVERD_SERVER": "http://127.0.0.1:1"}
			_, _, err := cli(t, context.Background(), env, args...)
			if !isUsage(err) {
				t.Fatalf("error %v (%T), want a usage error", err, err)
			}
		})
	}
}

// A command that only groups others prints help without arguments and
// rejects an unknown subcommand, suggesting the right one.
func TestGroupCommands(t *testing.T) {
	for _, args := range [][]string{nil, {"incidents"}, {"inc"}, {"config"}} {
		out, _, err := cli(t, context.Background(), nil, args...)
		if err != nil || !strings.Contains(out, "Available Commands:") {
			t.Errorf("failoverd %v: %v\n%s", args, err, out)
		}
	}
	_, _, err := cli(t, context.Background(), nil, "incidents", "lsit")
	if !isUsage(err) || !strings.Contains(err.Error(), "did you mean list") {
		t.Errorf("incidents lsit: %v, want a usage error suggesting list", err)
	}
	_, _, err = cli(t, context.Background(), nil, "serv")
	if !isUsage(err) || !strings.Contains(err.Error(), "did you mean serve") {
		t.Errorf("serv: %v, want a usage error suggesting serve", err)
	}
}

func TestConfigValidate(t *testing.T) {
	out, _, err := cli(t, context.Background(), environ{}, "config", "validate", "--config", "../../examples/local.yaml")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(out, "../../examples/local.yaml: valid") || !strings.Contains(out, "validators:") {
		t.Fatalf("config validate printed %q", out)
	}
	out, _, err = cli(t, context.Background(), environ{}, "config", "validate", "--config", "../../examples/local.yaml", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var v struct {
		Valid  bool           `json:"valid"`
		Config map[string]any `json:"config"`
	}
	if err := json.Unmarshal([]byte(out), &v); err != nil || !v.Valid || v.Config == nil {
		t.Fatalf("-o json printed %q (%v)", out, err)
	}

	// The environment applies, as it does for serve.
	_, _, err = cli(t, context.Background(), environ{"FAILOVERD_ENGINE_WORKERS": "0"}, "config", "validate", "--config", "../../examples/local.yaml")
	if err == nil || !strings.Contains(err.Error(), "engine.workers") {
		t.Fatalf("FAILOVERD_ENGINE_WORKERS=0: %v, want an error naming engine.workers", err)
	}

	bad := filepath.Join(t.TempDir(), "bad.yaml")
	writeFile(t, bad, "fleet:\n  - name: sol-1\n    chain: solana\n    network: mainnet\n")
	_, _, err = cli(t, context.Background(), environ{}, "config", "validate", "--config", bad)
	if err == nil || !strings.Contains(err.Error(), "fleet[0].chain") || !strings.Contains(err.Error(), "solana") {
		t.Fatalf("bad config: %v, want an error naming fleet[0].chain", err)
	}
	if isUsage(err) {
		t.Fatal("a bad config file is not a usage error")
	}

	_, _, err = cli(t, context.Background(), environ{}, "config", "validate", "--config", filepath.Join(t.TempDir(), "missing.yaml"))
	if err == nil || !strings.Contains(err.Error(), "missing.yaml") {
		t.Fatalf("missing file: %v", err)
	}
}

func writeFile(t *testing.T, path, content string) {
	t.Helper()
	if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// serveConfig writes a config with fast timings, authentication on and one
// validator the real Alertmanager sample maps to.
func serveConfig(t *testing.T) string {
	t.Helper()
	dir := t.TempDir()
	path := filepath.Join(dir, "failoverd.yaml")
	writeFile(t, path, fmt.Sprintf(`listen: 127.0.0.1:9097
dataDir: %s
auth:
  disabled: false
heartbeat:
  defaultSite: basement
engine:
  confirmFor: 0s
  pollInterval: 100ms
  resyncInterval: 1s
cloud:
  sim:
    bootTime: 0s
    syncTime: 0s
fleet:
  - name: eth-mainnet-1
    chain: ethereum
    network: mainnet
    site: basement
`, filepath.Join(dir, "data")))
	return path
}

func TestServeRefusesWithoutTokens(t *testing.T) {
	cfg := serveConfig(t)
	for name, env := range map[string]environ{
		"none":         {},
		"webhook only": {"FAILOVERD_WEBHOOK_TOKEN": "w"},
		"API only":     {"FAILOVERD_API_TOKEN": "a"},
	} {
		t.Run(name, func(t *testing.T) {
			ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
			defer cancel()
			_, _, err := cli(t, ctx, env, "serve", "--config", cfg, "--listen", freeAddr(t))
			if err == nil || !strings.Contains(err.Error(), "FAILOVERD_WEBHOOK_TOKEN") || !strings.Contains(err.Error(), "--insecure-disable-auth") {
				t.Fatalf("serve without tokens: %v, want a refusal naming FAILOVERD_WEBHOOK_TOKEN", err)
			}
		})
	}
}

func TestServeTokenFileMissing(t *testing.T) {
	cfg := serveConfig(t)
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	writeFile(t, cfg, strings.Replace(string(b), "  disabled: false\n",
		"  disabled: false\n  webhookTokenFile: "+filepath.Join(t.TempDir(), "nope")+"\n", 1))
	_, _, err = cli(t, context.Background(), environ{"FAILOVERD_API_TOKEN": "a"}, "serve", "--config", cfg, "--listen", freeAddr(t))
	if err == nil || !strings.Contains(err.Error(), "webhook token") {
		t.Fatalf("missing token file: %v", err)
	}
}

// waitFor polls cond until it holds or the time is up.
func waitFor(t *testing.T, what string, d time.Duration, served <-chan error, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		select {
		case err := <-served:
			t.Fatalf("serve returned while waiting for %s: %v", what, err)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestServeEndToEnd runs the daemon in-process and drives it as a person
// would: Alertmanager posts, the CLI lists, shows and tears down.
func TestServeEndToEnd(t *testing.T) {
	cfg := serveConfig(t)
	addr := freeAddr(t)
	server := "http://" + addr
	env := environ{"FAILOVERD_WEBHOOK_TOKEN": "hook-token", "FAILOVERD_API_TOKEN": "api-token"}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var serveOut, serveErr syncBuffer
	served := make(chan error, 1)
	go func() {
		served <- run(ctx, []string{"serve", "--config", cfg, "--listen", addr}, env.get, &serveOut, &serveErr)
	}()

	hc := &http.Client{Timeout: 5 * time.Second}
	waitFor(t, "/readyz", 20*time.Second, served, func() bool {
		resp, err := hc.Get(server + "/readyz")
		if err != nil {
			return false
		}
		resp.Body.Close()
		return resp.StatusCode == http.StatusOK
	})
	if logs := serveErr.String(); !strings.Contains(logs, "failoverd serving") || !strings.Contains(logs, addr) {
		t.Errorf("serve did not log to the stderr it was given:\n%s", logs)
	}

	post := func(name, token string) (int, httpapi.WebhookReply) {
		t.Helper()
		body, err := os.ReadFile(filepath.Join("..", "..", "failover", "alertmanager", "testdata", name))
		if err != nil {
			t.Fatal(err)
		}
		req, err := http.NewRequest(http.MethodPost, server+"/webhook/alertmanager", bytes.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		req.Header.Set("Content-Type", "application/json")
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var wr httpapi.WebhookReply
		if resp.StatusCode == http.StatusOK {
			if err := json.NewDecoder(resp.Body).Decode(&wr); err != nil {
				t.Fatal(err)
			}
		}
		return resp.StatusCode, wr
	}
	if code, _ := post("validator-down-firing.json", "api-token"); code != http.StatusUnauthorized {
		t.Fatalf("webhook with the API token: %d, want 401", code)
	}
	if code, wr := post("validator-down-firing.json", "hook-token"); code != http.StatusOK || wr.New != 1 {
		t.Fatalf("firing sample: %d %+v, want 200 new=1", code, wr)
	}
	if code, wr := post("watchdog-firing.json", "hook-token"); code != http.StatusOK || wr.Heartbeats != 1 {
		t.Fatalf("watchdog sample: %d %+v, want 200 heartbeats=1", code, wr)
	}

	client := func(args ...string) (string, error) {
		t.Helper()
		out, _, err := cli(t, ctx, env, append(args, "--server", server)...)
		return out, err
	}
	const id = "eth-mainnet-1-1"

	// The engine takes the incident to ready (no hold-down, instant sim cloud).
	var list httpapi.IncidentList
	waitFor(t, "the incident to become ready", 20*time.Second, served, func() bool {
		out, err := client("incidents", "list", "-o", "json")
		if err != nil {
			t.Fatalf("incidents list -o json: %v", err)
		}
		list = httpapi.IncidentList{}
		if err := json.Unmarshal([]byte(out), &list); err != nil {
			t.Fatalf("incidents list -o json printed %q: %v", out, err)
		}
		return len(list.Incidents) == 1 && list.Incidents[0].State == failover.StateReady
	})
	if inc := list.Incidents[0]; inc.ID != id || inc.Validator != "eth-mainnet-1" || inc.Site != "basement" || inc.Standby == nil {
		t.Fatalf("incident %+v", inc)
	}

	out, err := client("incidents", "list")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ID", "VALIDATOR", "STATE", id, "eth-mainnet-1", "basement", "ready", "sim/"} {
		if !strings.Contains(out, want) {
			t.Errorf("incidents list table lacks %q:\n%s", want, out)
		}
	}
	if out, err = client("incidents", "list", "--state", "closed"); err != nil || !strings.Contains(out, "(no incidents)") || strings.Contains(out, id) {
		t.Errorf("incidents list --state closed: %v\n%s", err, out)
	}

	out, err = client("incidents", "show", id, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var inc failover.Incident
	if err := json.Unmarshal([]byte(out), &inc); err != nil || inc.ID != id || len(inc.History) == 0 {
		t.Fatalf("show -o json printed %q (%v)", out, err)
	}
	out, err = client("incidents", "show", id, "-o", "yaml")
	if err != nil {
		t.Fatal(err)
	}
	var fromYAML failover.Incident
	if err := yaml.Unmarshal([]byte(out), &fromYAML); err != nil || fromYAML.ID != id || fromYAML.State != failover.StateReady {
		t.Fatalf("show -o yaml printed %q (%v)", out, err)
	}
	out, err = client("incidents", "show", id)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Incident:", id, "eth-mainnet-1 (ethereum/mainnet) at site basement", "State:", "ready", "Standby:", "History:", "-> confirming"} {
		if !strings.Contains(out, want) {
			t.Errorf("show text lacks %q:\n%s", want, out)
		}
	}
	_, err = client("incidents", "show", "eth-mainnet-1-9")
	if !httpapi.IsNotFound(err) || isUsage(err) {
		t.Errorf("show of an unknown incident: %v, want the daemon's 404", err)
	}

	out, err = client("sites", "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	var sites httpapi.SiteList
	if err := json.Unmarshal([]byte(out), &sites); err != nil || len(sites.Sites) != 1 || sites.Sites[0].Name != "basement" {
		t.Fatalf("sites -o json printed %q (%v)", out, err)
	}
	if out, err = client("sites"); err != nil || !strings.Contains(out, "basement") || !strings.Contains(out, "LAST HEARTBEAT") {
		t.Errorf("sites: %v\n%s", err, out)
	}

	// The token comes from the environment or a file; without it, 401.
	_, _, err = cli(t, ctx, environ{}, "incidents", "list", "--server", server)
	var ae *httpapi.APIError
	if !errors.As(err, &ae) || ae.Status != http.StatusUnauthorized {
		t.Errorf("without a token: %v, want the daemon's 401", err)
	}
	tokenFile := filepath.Join(t.TempDir(), "token")
	writeFile(t, tokenFile, "api-token\n")
	if out, _, err = cli(t, ctx, environ{"FAILOVERD_SERVER": server}, "incidents", "list", "--api-token-file", tokenFile); err != nil || !strings.Contains(out, id) {
		t.Errorf("FAILOVERD_SERVER and --api-token-file: %v\n%s", err, out)
	}

	out, err = client("teardown", id, "--by", "tester")
	if err != nil {
		t.Fatal(err)
	}
	if want := "incident " + id + ": recovering"; !strings.HasPrefix(out, want) {
		t.Fatalf("teardown printed %q, want %q...", out, want)
	}
	out, err = client("incidents", "show", id, "-o", "json")
	if err != nil {
		t.Fatal(err)
	}
	inc = failover.Incident{}
	if err := json.Unmarshal([]byte(out), &inc); err != nil {
		t.Fatal(err)
	}
	named := false
	for _, h := range inc.History {
		named = named || (h.Event == failover.EventTeardown && strings.Contains(h.Cause, "tester"))
	}
	if inc.TornDownBy != "tester" || !named {
		t.Fatalf("teardown not recorded: tornDownBy %q, history %+v", inc.TornDownBy, inc.History)
	}
	// The engine deletes the standby and closes the incident.
	waitFor(t, "the incident to close", 20*time.Second, served, func() bool {
		out, err := client("incidents", "list", "--open", "-o", "json")
		if err != nil {
			t.Fatal(err)
		}
		var l httpapi.IncidentList
		return json.Unmarshal([]byte(out), &l) == nil && l.Incidents != nil && len(l.Incidents) == 0
	})

	if _, err := client("incidents", "list", "-o", "xml"); !isUsage(err) {
		t.Errorf("-o xml: %v, want a usage error", err)
	}

	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Fatalf("serve returned %v after cancel, want nil", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("serve did not stop within 10s of cancel")
	}
	if _, err := hc.Get(server + "/healthz"); err == nil {
		t.Fatal("the listener is still open after serve returned")
	}
}

// A client command against no daemon says how to point it at one.
func TestClientUnreachable(t *testing.T) {
	server := "http://" + freeAddr(t)
	_, _, err := cli(t, context.Background(), environ{}, "incidents", "list", "--server", server, "--timeout", "5s")
	if err == nil || !strings.Contains(err.Error(), "FAILOVERD_SERVER") || !strings.Contains(err.Error(), server) {
		t.Fatalf("unreachable: %v", err)
	}
	_, _, err = cli(t, context.Background(), environ{"FAILOVERD_SERVER": "127.0.0.1:9097"}, "sites")
	if err == nil || !strings.Contains(err.Error(), "http(s) URL") {
		t.Fatalf("bad FAILOVERD_SERVER: %v", err)
	}
}
