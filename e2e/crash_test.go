package e2e

import (
	"bytes"
	"fmt"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverd/failoverd/cloud/aws/ec2fake"
	"github.com/failoverd/failoverd/cloud/gcp/gcpfake"
)

// daemon runs bin/failoverd with one config and data dir, and can be killed
// (SIGKILL) and started again on the same state.
type daemon struct {
	t    *testing.T
	bin  string
	cfg  string
	env  []string
	base string
	proc *proc
	runs int
}

func newDaemon(t *testing.T, bin, cloudYAML string, env ...string) *daemon {
	t.Helper()
	dir := t.TempDir()
	port := freePort(t)
	cfg := fmt.Sprintf(`
listen: 127.0.0.1:%d
dataDir: %s
engine:
  confirmFor: 0s
  pollInterval: 200ms
  resyncInterval: 500ms
  backoffBase: 200ms
  backoffMax: 1s
  callTimeout: 20s
caps:
  maxConcurrentStandbys: 4
cloud:
%s
fleet:
  - name: eth-mainnet-1
    chain: ethereum
    network: mainnet
    site: basement
    pubkeys: [%s]
    clients:
      execution: {name: geth, version: v1.16.7}
      consensus: {name: lighthouse, version: v8.0.1}
`, port, filepath.Join(dir, "data"), cloudYAML, validatorKey)
	file := filepath.Join(dir, "failoverd.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	env = append(env, "FAILOVERD_WEBHOOK_TOKEN="+webhookToken, "FAILOVERD_API_TOKEN="+apiToken)
	return &daemon{t: t, bin: bin, cfg: file, env: env, base: fmt.Sprintf("http://127.0.0.1:%d", port)}
}

func (d *daemon) start() {
	d.t.Helper()
	d.runs++
	d.proc = start(d.t, fmt.Sprintf("failoverd-run-%d", d.runs), d.env, d.bin, "serve", "--config", d.cfg)
	waitFor(d.t, "failoverd /readyz", 20*time.Second, func() (bool, string) {
		code, body, err := httpGet(d.base+"/readyz", "")
		return err == nil && code == 200, fmt.Sprint(code, string(body), err)
	})
}

// kill is SIGKILL: no shutdown code runs, as in a power cut.
func (d *daemon) kill() {
	d.t.Helper()
	if err := d.proc.cmd.Process.Kill(); err != nil {
		d.t.Fatal(err)
	}
	_ = d.proc.cmd.Wait()
}

// fire posts the firing sample, as Alertmanager would.
func (d *daemon) fire() {
	d.t.Helper()
	body, err := os.ReadFile("../failover/alertmanager/testdata/validator-down-firing.json")
	if err != nil {
		d.t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	body = bytes.Replace(body, []byte(`"2026-11-21T08:59:34.387112228Z"`), []byte(`"`+now+`"`), 1)
	req, _ := http.NewRequest(http.MethodPost, d.base+"/webhook/alertmanager", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+webhookToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		d.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		d.t.Fatalf("webhook: %d", resp.StatusCode)
	}
}

func (d *daemon) waitState(state, reasonPart string) incident {
	d.t.Helper()
	var last incident
	waitFor(d.t, "incident "+state, 40*time.Second, func() (bool, string) {
		incs, err := incidents(d.base)
		if err != nil || len(incs) == 0 {
			return false, fmt.Sprint(incs, err)
		}
		last = incs[len(incs)-1]
		return len(incs) == 1 && last.State == state && strings.Contains(last.Reason, reasonPart),
			fmt.Sprintf("%d incidents, last %s: %s", len(incs), last.State, last.Reason)
	})
	return last
}

// gate blocks the first request that matches until the test lets it go, so
// the test can kill failoverd while its request is on the wire: the cloud
// then carries the request out, but failoverd never hears the answer.
type gate struct {
	once    sync.Once
	arrived chan struct{}
	release chan struct{}
}

func newGate() *gate { return &gate{arrived: make(chan struct{}), release: make(chan struct{})} }

func (g *gate) hold() {
	first := false
	g.once.Do(func() { first = true })
	if first {
		close(g.arrived)
		<-g.release
	}
}

func (g *gate) wait(t *testing.T, what string) {
	t.Helper()
	select {
	case <-g.arrived:
	case <-time.After(40 * time.Second):
		t.Fatalf("%s never reached the cloud", what)
	}
}

// TestCrashDuringProvisioningGCP kills failoverd (SIGKILL) at each step of
// provisioning on GCP, right after the request reached the cloud and before
// failoverd could record the answer. On restart exactly one instance, one
// data disk and one set of firewall rules exist and the incident goes on.
func TestCrashDuringProvisioningGCP(t *testing.T) {
	bin, _ := binaries(t)
	// The data disk is created by the instance insert itself (so a stockout
	// leaves no disk behind), so these are all of provisioning's writes.
	steps := []struct{ name, method, path string }{
		{"firewall insert", http.MethodPost, "/global/firewalls"},
		{"instance insert", http.MethodPost, "/instances"},
		{"operation wait", http.MethodPost, "/wait"},
	}
	for _, step := range steps {
		t.Run(step.name, func(t *testing.T) {
			fake := gcpfake.New()
			defer fake.Close()
			g := newGate()
			fake.Hook(func(r *http.Request) {
				if (step.method == "" || r.Method == step.method) && strings.Contains(r.URL.Path, step.path) {
					g.hold()
				}
			})
			d := newDaemon(t, bin, fmt.Sprintf(`  providers: [gcp]
  gcp:
    project: staking-e2e
    zones: [europe-west4-a, europe-west4-b]
    endpoint: %s
    insecureNoAuth: true
    apiSourceRanges: [127.0.0.1/32]
    operationTimeout: 20s`, fake.URL()))
			d.start()
			d.fire()
			g.wait(t, step.name)
			d.kill()
			close(g.release)

			d.start()
			inc := d.waitState("syncing", "waiting for its agent")
			if inc.Standby == nil || inc.Standby.Name != "fo-eth-mainnet-1-1" {
				t.Fatalf("standby %+v", inc.Standby)
			}
			t.Logf("killed at %s; the restarted daemon went: %s", step.name, path(inc))
			// One instance with its boot and data disk.
			if fake.Instances() != 1 || fake.Created("instance") != 1 || fake.Disks() != 2 {
				t.Fatalf("after the crash: %d instances (%d created), %d disks",
					fake.Instances(), fake.Created("instance"), fake.Disks())
			}
			if n := fake.Created("firewall"); n != fake.Firewalls() {
				t.Fatalf("firewall rules created %d times for %d rules", n, fake.Firewalls())
			}
		})
	}
}

// TestCrashDuringProvisioningAWS does the same on EC2: the ClientToken makes
// the repeated RunInstances return the first launch.
func TestCrashDuringProvisioningAWS(t *testing.T) {
	bin, _ := binaries(t)
	steps := []string{"CreateSecurityGroup", "AuthorizeSecurityGroupIngress", "RunInstances", "DescribeInstances"}
	for _, step := range steps {
		t.Run(step, func(t *testing.T) {
			fake := ec2fake.New()
			defer fake.Close()
			g := newGate()
			seenRun := false
			var mu sync.Mutex
			fake.Hook(func(action string, _ url.Values) {
				mu.Lock()
				if action == "RunInstances" {
					seenRun = true
				}
				// DescribeInstances also comes before the launch (is it there
				// already?); the step that matters is the one after it.
				hit := action == step && (step != "DescribeInstances" || seenRun)
				mu.Unlock()
				if hit {
					g.hold()
				}
			})
			d := newDaemon(t, bin, fmt.Sprintf(`  providers: [aws]
  aws:
    zones: [eu-west-1a, eu-west-1b]
    amis: {eu-west-1: ami-0123456789abcdef0}
    apiSourceRanges: [127.0.0.1/32]
    endpoint: %s`, fake.URL()),
				"AWS_ACCESS_KEY_ID=AKIDEXAMPLE", "AWS_SECRET_ACCESS_KEY=secret", "AWS_REGION=eu-west-1",
				"AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
			d.start()
			d.fire()
			g.wait(t, step)
			d.kill()
			close(g.release)

			runsBefore := fake.Calls("RunInstances")
			d.start()
			inc := d.waitState("syncing", "waiting for its agent")
			if inc.Standby == nil || inc.Standby.Name != "fo-eth-mainnet-1-1" {
				t.Fatalf("standby %+v", inc.Standby)
			}
			t.Logf("killed at %s (RunInstances calls before the restart: %d, after: %d); the restarted daemon went: %s",
				step, runsBefore, fake.Calls("RunInstances"), path(inc))
			if fake.Instances() != 1 || fake.Calls("RunInstances") < 1 {
				t.Fatalf("after the crash: %d live instances, %d RunInstances calls", fake.Instances(), fake.Calls("RunInstances"))
			}
		})
	}
}

// path is the incident's lifecycle as recorded, for the log.
func path(inc incident) string {
	var p []string
	for _, h := range inc.History {
		if h.To != "" {
			p = append(p, h.To)
		}
	}
	return strings.Join(p, " -> ")
}
