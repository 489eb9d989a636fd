package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"
)

// siteIncident is the part of an incident this test reads.
type siteIncident struct {
	ID        string    `json:"id"`
	Validator string    `json:"validator"`
	Site      string    `json:"site"`
	State     string    `json:"state"`
	Reason    string    `json:"reason"`
	CreatedAt time.Time `json:"createdAt"`
	History   []struct {
		To    string `json:"to"`
		Cause string `json:"cause"`
	} `json:"history"`
}

func siteIncidents(base string) (map[string][]siteIncident, error) {
	code, body, err := httpGet(base+"/v1/incidents", apiToken)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/incidents: %d %s", code, body)
	}
	var out struct {
		Incidents []siteIncident `json:"incidents"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	by := map[string][]siteIncident{}
	for _, inc := range out.Incidents {
		by[inc.Validator] = append(by[inc.Validator], inc)
	}
	return by, nil
}

func lastHeartbeats(base string) (map[string]time.Time, error) {
	code, body, err := httpGet(base+"/v1/sites", apiToken)
	if err != nil {
		return nil, err
	}
	if code != http.StatusOK {
		return nil, fmt.Errorf("GET /v1/sites: %d %s", code, body)
	}
	var out struct {
		Sites []struct {
			Name          string    `json:"name"`
			LastHeartbeat time.Time `json:"lastHeartbeat"`
		} `json:"sites"`
	}
	if err := json.Unmarshal(body, &out); err != nil {
		return nil, err
	}
	m := map[string]time.Time{}
	for _, s := range out.Sites {
		m[s.Name] = s.LastHeartbeat
	}
	return m, nil
}

// sendWatchdogs posts each site's Watchdog to that site's Alertmanagers every
// interval, as Prometheus resends a firing alert, until stop is called.
// Posts to an Alertmanager that is down fail and are dropped, as they are.
func sendWatchdogs(interval time.Duration, sites map[string][]string) (stop func()) {
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		client := &http.Client{Timeout: interval}
		started := time.Now().Add(-time.Minute).UTC()
		t := time.NewTicker(interval)
		defer t.Stop()
		for {
			for site, urls := range sites {
				body, _ := json.Marshal([]map[string]any{{
					"labels":       map[string]string{"alertname": "Watchdog", "severity": "none", "site": site},
					"annotations":  map[string]string{"summary": "An alert that should always be firing"},
					"startsAt":     started.Format(time.RFC3339Nano),
					"endsAt":       time.Now().Add(4 * interval).UTC().Format(time.RFC3339Nano),
					"generatorURL": "http://prometheus:9090/graph",
				}})
				for _, u := range urls {
					req, err := http.NewRequestWithContext(ctx, http.MethodPost, u+"/api/v2/alerts", bytes.NewReader(body))
					if err != nil {
						continue
					}
					req.Header.Set("Content-Type", "application/json")
					if resp, err := client.Do(req); err == nil {
						resp.Body.Close()
					}
				}
			}
			select {
			case <-ctx.Done():
				return
			case <-t.C:
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

// stop ends a process the way systemd or the kubelet would (SIGTERM) and waits.
func (p *proc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatalf("stop %s: %v", p.name, err)
	}
	done := make(chan struct{})
	go func() { _ = p.cmd.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(10 * time.Second):
		_ = p.cmd.Process.Kill()
		<-done
	}
}

// TestSiteOutageFromMissingWatchdog: the basement's Alertmanager pair (not
// clustered, so both deliver every heartbeat) and the garage's Alertmanager
// carry their site's Watchdog to the real failoverd. The basement goes dark
// (both its Alertmanagers stop): after siteDownAfter each basement validator
// has an incident, with the reason, and the garage's has none. The basement
// comes back (same storage) before anybody approves a migration: the
// incidents go to recovering.
func TestSiteOutageFromMissingWatchdog(t *testing.T) {
	failoverdBin, amBin := binaries(t)
	const siteDownAfter = 4 * time.Second
	dir := t.TempDir()
	fPort := freePort(t)
	base := fmt.Sprintf("http://127.0.0.1:%d", fPort)
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:%d
dataDir: %s
heartbeat:
  resolution: 200ms
  siteDownAfter: %s
engine:
  confirmFor: 1s
  keepWarm: 1h
  pollInterval: 200ms
  resyncInterval: 250ms
  backoffBase: 200ms
cloud:
  providers: [sim]
  sim:
    bootTime: 500ms
    syncTime: 1s
fleet:
  - {name: eth-1, chain: ethereum, network: mainnet, site: basement}
  - {name: eth-2, chain: ethereum, network: mainnet, site: basement}
  - {name: eth-3, chain: ethereum, network: mainnet, site: garage}
`, fPort, filepath.Join(dir, "data"), siteDownAfter)
	cfgFile := filepath.Join(dir, "failoverd.yaml")
	if err := os.WriteFile(cfgFile, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	start(t, "failoverd", []string{"FAILOVERD_WEBHOOK_TOKEN=" + webhookToken, "FAILOVERD_API_TOKEN=" + apiToken},
		failoverdBin, "serve", "--config", cfgFile)

	// The Watchdog route as docs/install-helm.md sets it up, with the
	// repeat_interval (1m there) shortened to the test's timescale.
	amCfg := fmt.Sprintf(`
route:
  receiver: failoverd
  group_by: [alertname, site]
  group_wait: 100ms
  group_interval: 500ms
  repeat_interval: 500ms
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
	type am struct {
		name, url, storage string
		port               int
		p                  *proc
	}
	ams := []*am{{name: "basement-0"}, {name: "basement-1"}, {name: "garage"}}
	for _, a := range ams {
		a.port = freePort(t)
		a.url = fmt.Sprintf("http://127.0.0.1:%d", a.port)
		a.storage = filepath.Join(dir, "am-"+a.name)
	}
	startAM := func(a *am) {
		a.p = start(t, "alertmanager-"+a.name, nil, amBin, "--config.file="+amFile, "--storage.path="+a.storage,
			fmt.Sprintf("--web.listen-address=127.0.0.1:%d", a.port), "--cluster.listen-address=")
	}
	waitAM := func(a *am) {
		waitFor(t, "alertmanager "+a.name+" ready", 30*time.Second, func() (bool, string) {
			code, _, err := httpGet(a.url+"/-/ready", "")
			return err == nil && code == 200, fmt.Sprint(code, err)
		})
	}
	for _, a := range ams {
		startAM(a)
	}
	for _, a := range ams {
		waitAM(a)
	}
	waitFor(t, "failoverd /readyz", 20*time.Second, func() (bool, string) {
		code, body, err := httpGet(base+"/readyz", "")
		return err == nil && code == 200, fmt.Sprint(code, string(body), err)
	})
	stopPrometheus := sendWatchdogs(300*time.Millisecond, map[string][]string{
		"basement": {ams[0].url, ams[1].url},
		"garage":   {ams[2].url},
	})
	t.Cleanup(stopPrometheus)

	waitFor(t, "heartbeats from both sites", 15*time.Second, func() (bool, string) {
		hb, err := lastHeartbeats(base)
		return err == nil && !hb["basement"].IsZero() && !hb["garage"].IsZero(), fmt.Sprint(hb, err)
	})
	// Both basement Alertmanagers deliver each heartbeat; the copies are
	// recognised as duplicates.
	waitFor(t, "HA duplicates dropped", 10*time.Second, func() (bool, string) {
		n := metric(t, base, `failoverd_heartbeats_total{result="duplicate",site="basement"}`)
		return n >= 1, fmt.Sprint("duplicates: ", n)
	})
	// Heartbeats flowing for longer than siteDownAfter: nobody is down.
	time.Sleep(siteDownAfter)
	if incs, err := siteIncidents(base); err != nil || len(incs) != 0 {
		t.Fatalf("incidents while every site beats: %v %v", incs, err)
	}
	if got := metric(t, base, `failoverd_site_down{site="basement"}`); got != 0 {
		t.Fatalf("basement down while it beats: %v", got)
	}

	// The basement goes dark.
	dark := time.Now()
	ams[0].p.stop(t)
	ams[1].p.stop(t)
	var open map[string][]siteIncident
	waitFor(t, "an incident for each basement validator", siteDownAfter+15*time.Second, func() (bool, string) {
		var err error
		open, err = siteIncidents(base)
		return err == nil && len(open["eth-1"]) == 1 && len(open["eth-2"]) == 1, fmt.Sprint(open, err)
	})
	if took := time.Since(dark); took < siteDownAfter-time.Second {
		t.Fatalf("incidents %s after the basement went dark, before siteDownAfter (%s)", took, siteDownAfter)
	}
	hb, err := lastHeartbeats(base)
	if err != nil {
		t.Fatal(err)
	}
	want := "site basement silent: no Watchdog heartbeat since " + hb["basement"].UTC().Format(time.RFC3339) +
		fmt.Sprintf(" (siteDownAfter %s)", siteDownAfter)
	for _, name := range []string{"eth-1", "eth-2"} {
		inc := open[name][0]
		if inc.Site != "basement" || len(inc.History) == 0 || !strings.Contains(inc.History[0].Cause, want) {
			t.Fatalf("%s: site %q, history %+v; want the cause %q", inc.ID, inc.Site, inc.History, want)
		}
		if inc.CreatedAt.Sub(hb["basement"]) < siteDownAfter {
			t.Fatalf("%s opened at %s, less than %s after the last heartbeat %s", inc.ID, inc.CreatedAt, siteDownAfter, hb["basement"])
		}
	}
	if len(open["eth-3"]) != 0 {
		t.Fatalf("the garage validator got an incident: %+v", open["eth-3"])
	}
	if got := metric(t, base, `failoverd_site_down{site="basement"}`); got != 1 {
		t.Fatalf("failoverd_site_down{basement} = %v, want 1", got)
	}
	if got := metric(t, base, `failoverd_site_down{site="garage"}`); got != 0 {
		t.Fatalf("failoverd_site_down{garage} = %v, want 0", got)
	}
	// The standbys become ready, where a migration would need a person's
	// signed approval. Nobody gives one.
	waitFor(t, "standbys ready", 15*time.Second, func() (bool, string) {
		incs, err := siteIncidents(base)
		if err != nil {
			return false, err.Error()
		}
		s1, s2 := incs["eth-1"][0].State, incs["eth-2"][0].State
		return s1 == "ready" && s2 == "ready", s1 + " " + s2
	})

	// The basement is back: the same Alertmanagers, the same storage.
	startAM(ams[0])
	startAM(ams[1])
	waitAM(ams[0])
	waitAM(ams[1])
	var back map[string][]siteIncident
	waitFor(t, "basement incidents recovering", 15*time.Second, func() (bool, string) {
		var err error
		back, err = siteIncidents(base)
		if err != nil {
			return false, err.Error()
		}
		s1, s2 := back["eth-1"][0].State, back["eth-2"][0].State
		return s1 == "recovering" && s2 == "recovering", s1 + " " + s2
	})
	for _, name := range []string{"eth-1", "eth-2"} {
		if n := len(back[name]); n != 1 {
			t.Fatalf("%s has %d incidents, want the one", name, n)
		}
		var path []string
		for _, h := range back[name][0].History {
			if h.To != "" {
				path = append(path, h.To)
			}
		}
		if got := strings.Join(path, ","); got != "confirming,provisioning,syncing,ready,recovering" {
			t.Fatalf("%s lifecycle %s", name, got)
		}
	}
	if len(back["eth-3"]) != 0 {
		t.Fatalf("the garage validator got an incident: %+v", back["eth-3"])
	}
	if got := metric(t, base, `failoverd_site_down{site="basement"}`); got != 0 {
		t.Fatalf("failoverd_site_down{basement} = %v after the heartbeat returned", got)
	}
	if got := metric(t, base, `failoverd_site_outages_total{site="basement"}`); got != 1 {
		t.Fatalf("failoverd_site_outages_total{basement} = %v, want 1", got)
	}
	if got := metric(t, base, "failoverd_sim_instances_created_total"); got != 2 {
		t.Fatalf("%v standbys created, want one per basement validator", got)
	}
}
