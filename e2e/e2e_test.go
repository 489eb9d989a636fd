// Package e2e runs the real failoverd binary with real Alertmanagers on
// loopback. `make test` builds both first and sets FAILOVERD_BIN and
// FAILOVERD_TOOLS_BIN; without them the tests skip (or fail, when
// FAILOVERD_E2E_REQUIRED is set, so CI can never pass by skipping).
package e2e

import (
	"bufio"
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

const (
	webhookToken = "e2e-webhook-token"
	apiToken     = "e2e-api-token"
)

// binaries finds failoverd and alertmanager.
func binaries(t *testing.T) (failoverd, alertmanager string) {
	t.Helper()
	failoverd = os.Getenv("FAILOVERD_BIN")
	if failoverd == "" {
		failoverd = "../bin/failoverd"
	}
	alertmanager = filepath.Join(os.Getenv("FAILOVERD_TOOLS_BIN"), "alertmanager")
	for _, b := range []string{failoverd, alertmanager} {
		if _, err := os.Stat(b); err != nil {
			msg := fmt.Sprintf("%s not found (run `make test`, which builds bin/failoverd and the pinned Alertmanager): %v", b, err)
			if os.Getenv("FAILOVERD_E2E_REQUIRED") != "" {
				t.Fatal(msg)
			}
			t.Skip(msg)
		}
	}
	return failoverd, alertmanager
}

// freePort asks the kernel for a free loopback port.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// proc is a started process whose output is kept for the failure report.
type proc struct {
	name string
	cmd  *exec.Cmd
	mu   sync.Mutex
	out  bytes.Buffer
}

func (p *proc) Write(b []byte) (int, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.Write(b)
}

func (p *proc) output() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.out.String()
}

func start(t *testing.T, name string, env []string, bin string, args ...string) *proc {
	t.Helper()
	p := &proc{name: name}
	p.cmd = exec.Command(bin, args...)
	p.cmd.Env = append(os.Environ(), env...)
	p.cmd.Stdout, p.cmd.Stderr = p, p
	if err := p.cmd.Start(); err != nil {
		t.Fatalf("start %s: %v", name, err)
	}
	t.Cleanup(func() {
		_ = p.cmd.Process.Kill()
		_ = p.cmd.Wait()
		if t.Failed() {
			t.Logf("--- %s output ---\n%s", name, p.output())
		}
	})
	return p
}

func waitFor(t *testing.T, what string, timeout time.Duration, ok func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := ""
	for time.Now().Before(deadline) {
		var done bool
		if done, last = ok(); done {
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("timed out after %s waiting for %s (last: %s)", timeout, what, last)
}

func httpGet(url, token string) (int, []byte, error) {
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return resp.StatusCode, b, err
}

func postJSON(t *testing.T, url string, v any) {
	t.Helper()
	b, _ := json.Marshal(v)
	resp, err := http.Post(url, "application/json", bytes.NewReader(b))
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		body, _ := io.ReadAll(resp.Body)
		t.Fatalf("POST %s: %d %s", url, resp.StatusCode, body)
	}
}

type incident struct {
	ID      string `json:"id"`
	State   string `json:"state"`
	Reason  string `json:"reason"`
	Standby *struct {
		Name  string `json:"name"`
		State string `json:"state"`
	} `json:"standby"`
	History []struct {
		To string `json:"to"`
	} `json:"history"`
}

func incidents(base string) ([]incident, error) {
	code, body, err := httpGet(base+"/v1/incidents", apiToken)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/incidents: %d %s", code, body)
	}
	var out struct {
		Incidents []incident `json:"incidents"`
	}
	return out.Incidents, json.Unmarshal(body, &out)
}

// metric reads one sample (name with its labels, as exposed) from /metrics.
func metric(t *testing.T, base, series string) float64 {
	t.Helper()
	_, body, err := httpGet(base+"/metrics", "")
	if err != nil {
		t.Fatal(err)
	}
	sc := bufio.NewScanner(bytes.NewReader(body))
	for sc.Scan() {
		line := sc.Text()
		if strings.HasPrefix(line, series+" ") {
			v, err := strconv.ParseFloat(strings.TrimSpace(strings.TrimPrefix(line, series)), 64)
			if err != nil {
				t.Fatalf("metric %s: %v", series, err)
			}
			return v
		}
	}
	return 0
}

// The alert as Prometheus would post it to every Alertmanager of the pair,
// with the labels of the real sample delivery.
func validatorAlert(startsAt, endsAt time.Time) []map[string]any {
	a := map[string]any{
		"labels": map[string]string{
			"alertname": "ValidatorClientDown", "chain": "ethereum", "failover": "true", "namespace": "eth",
			"network": "mainnet", "pod": "lighthouse-0", "severity": "critical", "site": "basement",
			"validator": "eth-mainnet-1",
		},
		"annotations":  map[string]string{"summary": "Validator client eth-mainnet-1 is down"},
		"startsAt":     startsAt.UTC().Format(time.RFC3339Nano),
		"generatorURL": "http://prometheus:9090/graph",
	}
	if !endsAt.IsZero() {
		a["endsAt"] = endsAt.UTC().Format(time.RFC3339Nano)
	}
	return []map[string]any{a}
}

// TestAlertmanagerPairToReadyStandby: two Alertmanagers that do not
// deduplicate between themselves (an HA pair split apart, the worst case)
// both deliver every notification to failoverd, with bearer auth. One
// outage must give exactly one incident and one standby: firing → ready,
// then the resolve → recovering → closed with the standby deleted. failoverd
// tells the operator through the first Alertmanager when the standby is ready.
func TestAlertmanagerPairToReadyStandby(t *testing.T) {
	failoverdBin, amBin := binaries(t)
	dir := t.TempDir()
	fPort := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", fPort)
	amPorts := []int{freePort(t), freePort(t)}
	amURL := func(i int) string { return fmt.Sprintf("http://127.0.0.1:%d", amPorts[i]) }

	cfg := fmt.Sprintf(`
listen: 127.0.0.1:%d
dataDir: %s
engine:
  confirmFor: 1s
  keepWarm: 2s
  pollInterval: 200ms
  resyncInterval: 1s
  backoffBase: 200ms
cloud:
  providers: [sim]
  sim:
    bootTime: 1s
    syncTime: 2s
notify:
  alertmanagerURL: %s
  labels:
    source: failoverd-e2e
fleet:
  - name: eth-mainnet-1
    chain: ethereum
    network: mainnet
    site: basement
`, fPort, filepath.Join(dir, "data"), amURL(0))
	cfgFile := filepath.Join(dir, "failoverd.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, "failoverd", []string{"FAILOVERD_WEBHOOK_TOKEN=" + webhookToken, "FAILOVERD_API_TOKEN=" + apiToken},
		failoverdBin, "serve", "--config", cfgFile)
	waitFor(t, "failoverd /readyz", 20*time.Second, func() (bool, string) {
		code, body, err := httpGet(base+"/readyz", "")
		return err == nil && code == 200, fmt.Sprint(code, string(body), err)
	})

	amCfg := fmt.Sprintf(`
route:
  receiver: failoverd
  group_by: [alertname, validator]
  group_wait: 1s
  group_interval: 1s
  repeat_interval: 1h
receivers:
  - name: failoverd
    webhook_configs:
      - url: %s/webhook/alertmanager
        send_resolved: true
        http_config:
          authorization:
            type: Bearer
            credentials: %s
`, base, webhookToken)
	amFile := filepath.Join(dir, "am.yml")
	if err := os.WriteFile(amFile, []byte(amCfg), 0o600); err != nil {
		t.Fatal(err)
	}
	for i, port := range amPorts {
		start(t, fmt.Sprintf("alertmanager-%d", i), nil, amBin,
			"--config.file="+amFile,
			"--storage.path="+filepath.Join(dir, fmt.Sprintf("am%d", i)),
			fmt.Sprintf("--web.listen-address=127.0.0.1:%d", port),
			"--cluster.listen-address=")
		waitFor(t, fmt.Sprintf("alertmanager %d ready", i), 30*time.Second, func() (bool, string) {
			code, _, err := httpGet(amURL(i)+"/-/ready", "")
			return err == nil && code == 200, fmt.Sprint(code, err)
		})
	}

	startsAt := time.Now().Add(-time.Second)
	for i := range amPorts {
		postJSON(t, amURL(i)+"/api/v2/alerts", validatorAlert(startsAt, time.Time{}))
	}

	var ready incident
	waitFor(t, "incident ready", 30*time.Second, func() (bool, string) {
		incs, err := incidents(base)
		if err != nil || len(incs) == 0 {
			return false, fmt.Sprint(incs, err)
		}
		ready = incs[0]
		return len(incs) == 1 && ready.State == "ready", fmt.Sprintf("%+v", incs)
	})
	if ready.Standby == nil || ready.Standby.State != "running" {
		t.Fatalf("ready without a running standby: %+v", ready.Standby)
	}
	// Both Alertmanagers delivered; the second copy was dropped as a duplicate.
	waitFor(t, "both peers' deliveries", 10*time.Second, func() (bool, string) {
		d := metric(t, base, "failoverd_duplicates_dropped_total")
		return d >= 1, fmt.Sprint("duplicates dropped: ", d)
	})
	if got := metric(t, base, `failoverd_webhook_requests_total{outcome="unauthorized"}`); got != 0 {
		t.Fatalf("%v deliveries were refused: the bearer token did not reach failoverd", got)
	}

	// failoverd told the operator through their own Alertmanager.
	waitFor(t, "FailoverdStandbyReady in Alertmanager", 10*time.Second, func() (bool, string) {
		_, body, err := httpGet(amURL(0)+`/api/v2/alerts?filter=alertname%3D%22FailoverdStandbyReady%22`, "")
		var alerts []struct {
			Labels map[string]string `json:"labels"`
		}
		if err != nil || json.Unmarshal(body, &alerts) != nil {
			return false, fmt.Sprint(string(body), err)
		}
		return len(alerts) == 1 && alerts[0].Labels["incident"] == ready.ID && alerts[0].Labels["source"] == "failoverd-e2e", string(body)
	})

	// The outage ends: Prometheus posts the resolve to both.
	for i := range amPorts {
		postJSON(t, amURL(i)+"/api/v2/alerts", validatorAlert(startsAt, time.Now()))
	}
	var closed incident
	waitFor(t, "incident closed", 30*time.Second, func() (bool, string) {
		incs, err := incidents(base)
		if err != nil || len(incs) != 1 {
			return false, fmt.Sprint(incs, err)
		}
		closed = incs[0]
		return closed.State == "closed", fmt.Sprintf("%s: %s", closed.State, closed.Reason)
	})
	var path []string
	for _, h := range closed.History {
		if h.To != "" {
			path = append(path, h.To)
		}
	}
	if got := strings.Join(path, ","); got != "confirming,provisioning,syncing,ready,recovering,closed" {
		t.Fatalf("lifecycle %s", got)
	}
	if closed.Standby == nil || closed.Standby.State != "deleted" {
		t.Fatalf("standby not deleted: %+v", closed.Standby)
	}
	if got := metric(t, base, "failoverd_sim_instances_created_total"); got != 1 {
		t.Fatalf("%v standbys created for one outage, want exactly 1", got)
	}
	if got := metric(t, base, "failoverd_sim_instances"); got != 0 {
		t.Fatalf("%v standbys still live", got)
	}
	// Leaving ready cleared the page.
	waitFor(t, "FailoverdStandbyReady resolved", 10*time.Second, func() (bool, string) {
		_, body, err := httpGet(amURL(0)+`/api/v2/alerts?active=true&filter=alertname%3D%22FailoverdStandbyReady%22`, "")
		return err == nil && strings.TrimSpace(string(body)) == "[]", string(body)
	})
}

// TestWrongTokenIsRefused: an Alertmanager configured with the wrong
// token gets 401s and failoverd stores nothing.
func TestWrongTokenIsRefused(t *testing.T) {
	failoverdBin, amBin := binaries(t)
	dir := t.TempDir()
	fPort, amPort := freePort(t), freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", fPort)
	cfg := fmt.Sprintf("listen: 127.0.0.1:%d\ndataDir: %s\nfleet:\n  - {name: eth-mainnet-1, chain: ethereum, network: mainnet, site: basement}\n",
		fPort, filepath.Join(dir, "data"))
	cfgFile := filepath.Join(dir, "failoverd.yaml")
	os.WriteFile(cfgFile, []byte(cfg), 0o600)
	start(t, "failoverd", []string{"FAILOVERD_WEBHOOK_TOKEN=" + webhookToken, "FAILOVERD_API_TOKEN=" + apiToken},
		failoverdBin, "serve", "--config", cfgFile)
	waitFor(t, "failoverd /readyz", 20*time.Second, func() (bool, string) {
		code, _, err := httpGet(base+"/readyz", "")
		return err == nil && code == 200, fmt.Sprint(code, err)
	})
	amCfg := fmt.Sprintf(`
route: {receiver: failoverd, group_wait: 1s, group_interval: 1s}
receivers:
  - name: failoverd
    webhook_configs:
      - url: %s/webhook/alertmanager
        http_config: {authorization: {type: Bearer, credentials: wrong-token}}
`, base)
	amFile := filepath.Join(dir, "am.yml")
	os.WriteFile(amFile, []byte(amCfg), 0o600)
	amURL := fmt.Sprintf("http://127.0.0.1:%d", amPort)
	start(t, "alertmanager", nil, amBin, "--config.file="+amFile, "--storage.path="+filepath.Join(dir, "am"),
		fmt.Sprintf("--web.listen-address=127.0.0.1:%d", amPort), "--cluster.listen-address=")
	waitFor(t, "alertmanager ready", 30*time.Second, func() (bool, string) {
		code, _, err := httpGet(amURL+"/-/ready", "")
		return err == nil && code == 200, fmt.Sprint(code, err)
	})
	postJSON(t, amURL+"/api/v2/alerts", validatorAlert(time.Now(), time.Time{}))
	waitFor(t, "a refused delivery", 20*time.Second, func() (bool, string) {
		n := metric(t, base, `failoverd_webhook_requests_total{outcome="unauthorized"}`)
		return n >= 1, fmt.Sprint(n)
	})
	incs, err := incidents(base)
	if err != nil || len(incs) != 0 {
		t.Fatalf("an unauthorized delivery opened incidents: %v %v", incs, err)
	}
}
