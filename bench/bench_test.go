package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/failoverd/failoverd/bench/decodeonly"
	"github.com/failoverd/failoverd/cloud/gcp/gcpfake"
	"github.com/failoverd/failoverd/failover/config"
)

// fleetConfig is what bench/run.sh writes (write_config): n validators on
// the instant simulated cloud, or on the GCP wire fake at gcpURL.
func fleetConfig(t *testing.T, n int, gcpURL string) *config.Config {
	t.Helper()
	dir := t.TempDir()
	var b strings.Builder
	fmt.Fprintf(&b, `dataDir: %s
store: {type: bolt}
alerts: {matchers: [failover="true"]}
heartbeat: {defaultSite: basement}
engine: {confirmFor: 0s, keepWarm: 1h, pollInterval: 1m, resyncInterval: 30s, workers: 4}
caps: {maxConcurrentStandbys: %d, monthlyStandbyHours: %d}
`, filepath.Join(dir, "data"), n+10, n*1000+1000)
	if gcpURL == "" {
		b.WriteString("cloud: {providers: [sim], sim: {bootTime: 0s, syncTime: 0s}}\n")
	} else {
		fmt.Fprintf(&b, "cloud: {providers: [gcp], gcp: {project: bench-project, zones: [europe-west4-a], endpoint: %q, insecureNoAuth: true, apiSourceRanges: [127.0.0.1/32], operationTimeout: 20s}}\n", gcpURL)
	}
	b.WriteString("fleet:\n")
	for i := range n {
		fmt.Fprintf(&b, "  - {name: %s, chain: ethereum, network: hoodi, site: basement, clients: {execution: {name: geth, version: v1.16.7}, consensus: {name: lighthouse, version: v8.0.1}}}\n", ValidatorName("val-", i))
	}
	file := filepath.Join(dir, "failoverd.yaml")
	if err := os.WriteFile(file, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg, err := config.Load(config.LoadOptions{File: file})
	if err != nil {
		t.Fatalf("config: %v\n%s", err, b.String())
	}
	return cfg
}

func startFailoverd(t *testing.T, cfg *config.Config) *Server {
	t.Helper()
	srv, err := StartServer(context.Background(), ServerOptions{Config: cfg, WebhookToken: "w", APIToken: "a"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := srv.Close(); err != nil {
			t.Error(err)
		}
	})
	return srv
}

func save(t *testing.T, dir, name string, r *Result) {
	t.Helper()
	b, err := json.Marshal(r)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name), b, 0o644); err != nil {
		t.Fatal(err)
	}
}

// storm is the small storm every receiver in these tests gets.
func storm(target, token string, n int) Options {
	return Options{Target: target, Token: token, Validators: n, Peers: 2, Repeats: 5, Concurrency: 4,
		Duration: time.Second, PID: os.Getpid(), Settle: 15 * time.Second}
}

// checkAcked: every request was answered 200 and the run lasted.
func checkAcked(t *testing.T, name string, r *Result) {
	t.Helper()
	if r.Requests == 0 || r.Status["200"] != r.Requests || r.Errors != 0 {
		t.Fatalf("%s: %d requests, status %v, %d transport errors (%s)", name, r.Requests, r.Status, r.Errors, r.FirstError)
	}
	if r.DurationSec < 0.9 || r.RequestsPerSec <= 0 || r.Latency.P50Ms <= 0 || r.Latency.P99Ms < r.Latency.P50Ms {
		t.Fatalf("%s: %.2fs, %.0f req/s, latency %+v", name, r.DurationSec, r.RequestsPerSec, r.Latency)
	}
	if r.RSS == nil || r.RSS.Samples == 0 || r.RSS.PeakMiB <= 0 || len(r.RSS.Timeline) != r.RSS.Samples {
		t.Fatalf("%s: memory not sampled: %+v", name, r.RSS)
	}
	if r.ResolvedAtSec == 0 {
		t.Fatalf("%s: the alerts never resolved", name)
	}
}

func checkProvision(t *testing.T, name string, r *Result, n int) {
	t.Helper()
	p := r.Provision
	if p == nil || p.Error != "" || p.Validators != n || p.Missing != 0 {
		t.Fatalf("%s: provision %+v", name, p)
	}
	// Both ends are wall-clock times of this machine and the engine acts
	// within the test's seconds; anything outside that is a join gone wrong.
	if p.Latency.MaxMs > 15000 || p.Latency.MinMs < -1000 || p.AllSec < 0 || p.AllSec > 15 {
		t.Fatalf("%s: implausible latencies %+v all %.2fs", name, p.Latency, p.AllSec)
	}
}

// TestStormAndReport runs the bench tooling end to end on a tiny fleet:
// the storm against failoverd's real stack in-process (simulated cloud, then
// the GCP wire fake), against the decode-only baseline and, when it is
// installed, against the peer; then the report over their results.
func TestStormAndReport(t *testing.T) {
	const n = 3
	ctx := context.Background()
	results := t.TempDir()

	// failoverd on the simulated cloud: the throughput run of bench/run.sh.
	cfg := fleetConfig(t, n, "")
	fo := startFailoverd(t, cfg)
	o := storm(fo.URL+"/webhook/alertmanager", "w", n)
	o.Label, o.API, o.APIToken, o.Metrics = "failoverd", fo.URL, "a", fo.URL+"/metrics"
	o.HoldResolve, o.HoldMax = true, 20*time.Second
	o.SimState = filepath.Join(cfg.DataDir, "sim-cloud.json")
	res, err := Run(ctx, o)
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, "failoverd", res)
	if f := res.Failed(); len(f) > 0 {
		t.Fatalf("failoverd: %v", f)
	}
	if res.New != 2*n || res.RepliesJSON != res.Requests || res.Duplicates != res.Requests-2*n {
		t.Fatalf("failoverd: new %d, duplicates %d of %d requests (%d replies with counts)", res.New, res.Duplicates, res.Requests, res.RepliesJSON)
	}
	if res.Incidents.WithOne != n || res.StandbysCreated == nil || *res.StandbysCreated != n || res.HoldTimedOut {
		t.Fatalf("failoverd: incidents %+v, standbys %v, hold timed out %v", res.Incidents, res.StandbysCreated, res.HoldTimedOut)
	}
	checkProvision(t, "failoverd", res, n)
	save(t, results, "failoverd-3.json", res)

	// The decode-only baseline answers {}: no counts, nothing to settle.
	base := httptest.NewServer(decodeonly.Handler())
	defer base.Close()
	bres, err := Run(ctx, storm(base.URL+"/webhook/alertmanager", "", n))
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, "baseline", bres)
	if bres.RepliesJSON != 0 || bres.Provision != nil || bres.Incidents != nil {
		t.Fatalf("baseline: %+v", bres)
	}
	save(t, results, "baseline-3.json", bres)

	// failoverd on the GCP wire fake, paced: the alert-to-provision run.
	fake := gcpfake.New()
	defer fake.Close()
	rec := NewInsertRecorder(fake)
	recSrv := httptest.NewServer(rec)
	defer recSrv.Close()
	gfo := startFailoverd(t, fleetConfig(t, n, fake.URL()))
	g := storm(gfo.URL+"/webhook/alertmanager", "w", n)
	g.Label, g.API, g.APIToken, g.Rate = "failoverd-gcp", gfo.URL, "a", 300
	g.CloudInserts, g.HoldResolve, g.HoldMax = recSrv.URL, true, 30*time.Second
	gres, err := Run(ctx, g)
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, "failoverd on GCP", gres)
	if f := gres.Failed(); len(f) > 0 {
		t.Fatalf("failoverd on GCP: %v", f)
	}
	checkProvision(t, "failoverd on GCP", gres, n)
	// Paced at 300/s for about a second and a bit of holding.
	if gres.RequestsPerSec > 330 {
		t.Fatalf("--rate 300 sent %.0f req/s", gres.RequestsPerSec)
	}
	snap := rec.Snapshot()
	if len(snap.Inserts) != n || snap.InstancesCreated != n || fake.Instances() != n {
		t.Fatalf("recorder %+v, fake has %d instances", snap, fake.Instances())
	}
	save(t, results, "gcp-3.json", gres)

	peer := ""
	t.Run("peer", func(t *testing.T) {
		bin := tool(t, "webhook")
		peer = runPeer(t, bin, results, n)
	})

	var doc bytes.Buffer
	ro := ReportOptions{Results: results, Sizes: []int{n}, Duration: "1s", Concurrency: "4", Repeats: "5", Peers: "2",
		HoldMax: "20s", GCPRate: "300", GCPDuration: "1s", Peer: peer, Notes: "## Notes\n\nhand-written", Now: time.Unix(0, 0)}
	if peer == "" {
		ro.PeerSkipped = "not installed"
	}
	if err := WriteReport(&doc, ro); err != nil {
		t.Fatal(err)
	}
	md := doc.String()
	for _, want := range []string{
		"# Benchmarks: failoverd under an alert storm",
		fmt.Sprintf("| 3 | %.0f / ", res.RequestsPerSec),
		fmt.Sprintf(" / %.0f | %.2f |", bres.RequestsPerSec, res.RequestsPerSec/bres.RequestsPerSec),
		"| 3 | 6 / 6 | 0 | 0 (3 incidents in all) | **3 / 3** |",
		fmt.Sprintf("| 3 | %s | %s |", msOrS(gres.Provision.Latency.P50Ms), msOrS(gres.Provision.Latency.P99Ms)),
		"| failoverd peak RSS (MiB) |",
		"| 3 | failoverd (sim) |",
		"| 3 | failoverd (GCP fake) |",
		"hand-written",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("the report lacks %q:\n%s", want, md)
		}
	}
	if strings.Contains(md, "✗") {
		t.Errorf("a good run is flagged:\n%s", md)
	}

	// A run that left a validator without a standby must show, and say so.
	two := float64(n - 1)
	res.StandbysCreated = &two
	save(t, results, "failoverd-3.json", res)
	doc.Reset()
	if err := WriteReport(&doc, ro); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(doc.String(), "**2 / 3 ✗**") || len(res.Failed()) == 0 {
		t.Errorf("a missing standby is not flagged: %v\n%s", res.Failed(), doc.String())
	}
}

// runPeer runs the storm against webhook with bench/peer/hooks.json, as
// bench/run.sh does, and returns how the report names it.
func runPeer(t *testing.T, bin, results string, n int) string {
	ln := freeAddr(t)
	cmd := exec.Command(bin, "-hooks", "peer/hooks.json", "-template", "-nopanic", "-ip", "127.0.0.1", "-port", ln[strings.LastIndexByte(ln, ':')+1:])
	cmd.Env = append(os.Environ(), "PEER_TOKEN=peer-token")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		_ = cmd.Wait()
	})
	base := "http://" + ln
	deadline := time.Now().Add(10 * time.Second)
	for {
		resp, err := http.Get(base + "/")
		if err == nil {
			resp.Body.Close()
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("webhook never answered: %v\n%s", err, out.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The hook checks the token the way Alertmanager sends it.
	req, _ := http.NewRequest(http.MethodPost, base+"/hooks/alertmanager", strings.NewReader(`{"status":"firing"}`))
	req.Header.Set("Authorization", "Bearer wrong")
	req.Header.Set("Content-Type", "application/json")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("a wrong token got %d", resp.StatusCode)
	}
	o := storm(base+"/hooks/alertmanager", "peer-token", n)
	o.PID, o.Label = cmd.Process.Pid, "peer"
	pres, err := Run(context.Background(), o)
	if err != nil {
		t.Fatal(err)
	}
	checkAcked(t, "peer", pres)
	// Its work is the command it runs per delivery, in its children.
	if pres.CPU.ReceiverSec <= 0 {
		t.Fatalf("peer: no CPU time measured: %+v", pres.CPU)
	}
	save(t, results, "peer-3.json", pres)
	return "webhook (test)"
}

// tool finds a program on $FAILOVERD_TOOLS_BIN or PATH; without it the test
// skips, unless FAILOVERD_E2E_REQUIRED=1 (make test) makes that a failure.
func tool(t *testing.T, name string) string {
	t.Helper()
	if dir := os.Getenv("FAILOVERD_TOOLS_BIN"); dir != "" {
		if p := filepath.Join(dir, name); isExec(p) {
			return p
		}
	}
	if p, err := exec.LookPath(name); err == nil {
		return p
	}
	msg := fmt.Sprintf("%s is not on $FAILOVERD_TOOLS_BIN or PATH (Debian: apt-get install %s)", name, name)
	if os.Getenv("FAILOVERD_E2E_REQUIRED") == "1" {
		t.Fatal(msg)
	}
	t.Skip(msg)
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

func freeAddr(t *testing.T) string {
	t.Helper()
	srv := httptest.NewServer(http.NotFoundHandler())
	addr := srv.Listener.Addr().String()
	srv.Close()
	return addr
}

func TestLatenciesNearestRank(t *testing.T) {
	var ds []time.Duration
	for i := 100; i >= 1; i-- {
		ds = append(ds, time.Duration(i)*time.Millisecond)
	}
	l := latencies(ds)
	if l.P50Ms != 50 || l.P90Ms != 90 || l.P99Ms != 99 || l.MaxMs != 100 || l.MinMs != 1 || l.MeanMs != 50.5 {
		t.Fatalf("%+v", l)
	}
	if (latencies(nil) != Latency{}) {
		t.Fatal("no samples must give zeros")
	}
}

func TestStoreMinKeepsTheEarliest(t *testing.T) {
	var a atomic.Int64
	for _, v := range []int64{50, 70, 20, 30} {
		storeMin(&a, v)
	}
	if a.Load() != 20 {
		t.Fatal(a.Load())
	}
}

// TestProvisionJoin: the latency is per validator, from its own first ack
// to its own standby; a validator without a standby is missing, not zero.
func TestProvisionJoin(t *testing.T) {
	dir := t.TempDir()
	t0 := time.Date(2026, 11, 21, 12, 0, 0, 0, time.UTC)
	state := fmt.Sprintf(`{"version":1,"instances":[
		{"name":"fo-val-1-1","labels":{"failoverd-validator":"val-1"},"createdAt":%q},
		{"name":"fo-val-2-1","labels":{"failoverd-validator":"val-2"},"createdAt":%q},
		{"name":"fo-val-2-2","labels":{"failoverd-validator":"val-2"},"createdAt":%q},
		{"name":"other","labels":{},"createdAt":%q}]}`,
		t0.Add(100*time.Millisecond).Format(time.RFC3339Nano), t0.Add(2*time.Second).Format(time.RFC3339Nano),
		t0.Add(time.Hour).Format(time.RFC3339Nano), t0.Format(time.RFC3339Nano))
	file := filepath.Join(dir, "sim-cloud.json")
	if err := os.WriteFile(file, []byte(state), 0o600); err != nil {
		t.Fatal(err)
	}
	o := Options{Prefix: "val-", SimState: file}
	acks := []int64{t0.UnixNano(), t0.Add(time.Second).UnixNano(), t0.UnixNano()}
	p := provisionLatency(&o, acks)
	if p.Error != "" || p.Validators != 2 || p.Missing != 1 {
		t.Fatalf("%+v", p)
	}
	if p.Latency.MinMs != 100 || p.Latency.MaxMs != 1000 || p.AllSec != 2 {
		t.Fatalf("%+v all %v", p.Latency, p.AllSec)
	}
	o.SimState = filepath.Join(dir, "none.json")
	if p := provisionLatency(&o, acks); p.Error == "" {
		t.Fatal("a missing state file must be an error")
	}
}

func TestOptionsRefuse(t *testing.T) {
	good := Options{Target: "http://127.0.0.1:1/webhook", Validators: 1, Peers: 1, Repeats: 1, Concurrency: 1, Duration: time.Second}
	if err := good.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, mut := range map[string]func(*Options){
		"remote target":   func(o *Options) { o.Target = "http://192.0.2.1/webhook" },
		"remote api":      func(o *Options) { o.API = "http://example.com" },
		"hold, no source": func(o *Options) { o.HoldResolve = true },
		"hold max too low": func(o *Options) {
			o.HoldResolve, o.Metrics, o.HoldMax = true, "http://127.0.0.1:1/metrics", 100*time.Millisecond
		},
		"negative rate": func(o *Options) { o.Rate = -1 },
		"no validators": func(o *Options) { o.Validators = 0 },
	} {
		o := good
		mut(&o)
		if err := o.Validate(); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
