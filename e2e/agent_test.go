package e2e

import (
	"crypto/x509"
	"encoding/pem"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/failoverd/failoverd/cloud/gcp/gcpfake"
	"github.com/failoverd/failoverd/failover/agent/agenttest"
)

// credentialsFromBootstrap takes the agent's CA, certificate and key out of
// the startup-script failoverd gave the instance: the only way they reach
// a real standby.
func credentialsFromBootstrap(t *testing.T, script, dir string) (ca, cert, key string) {
	t.Helper()
	rest := []byte(script[strings.Index(script, "-----BEGIN"):])
	for {
		var b *pem.Block
		b, rest = pem.Decode(rest)
		if b == nil {
			break
		}
		data := pem.EncodeToMemory(b)
		switch b.Type {
		case "PRIVATE KEY":
			key = filepath.Join(dir, "agent.key")
			os.WriteFile(key, data, 0o600)
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			if c.IsCA {
				ca = filepath.Join(dir, "ca.crt")
				os.WriteFile(ca, data, 0o600)
			} else {
				cert = filepath.Join(dir, "agent.crt")
				os.WriteFile(cert, data, 0o600)
			}
		}
		if i := strings.Index(string(rest), "-----BEGIN"); i >= 0 {
			rest = rest[i:]
		} else {
			break
		}
	}
	if ca == "" || cert == "" || key == "" {
		t.Fatalf("the bootstrap lacks the agent's credentials (ca %q, cert %q, key %q)", ca, cert, key)
	}
	return ca, cert, key
}

// TestAgentGatesReadiness: the real failoverd provisions a GCP standby
// (through the real SDK, against the local Compute server) whose bootstrap
// carries freshly made agent credentials; the real `failoverd agent` runs
// with exactly those, against local clients that follow the beacon API and
// JSON-RPC. The incident becomes ready only when every condition holds, and
// goes back to syncing when one stops holding.
func TestAgentGatesReadiness(t *testing.T) {
	bin, _ := binaries(t)
	fake := gcpfake.New()
	defer fake.Close()
	fake.SetExternalIP("127.0.0.1")
	agentPort := freePort(t)
	d := newDaemon(t, bin, fmt.Sprintf(`  providers: [gcp]
  gcp:
    project: staking-e2e
    zones: [europe-west4-a]
    endpoint: %s
    insecureNoAuth: true
    apiSourceRanges: [127.0.0.1/32]
agent:
  port: %d
  image: ghcr.io/failoverd/failoverd:e2e`, fake.URL(), agentPort))
	d.start()
	d.fire()
	inc := d.waitState("syncing", "waiting for its agent")
	t.Logf("before the agent runs: %s", inc.Reason)

	in := fake.Instance("europe-west4-a", inc.Standby.Name)
	if in == nil {
		t.Fatalf("no instance %s", inc.Standby.Name)
	}
	script := ""
	for _, item := range in.GetMetadata().GetItems() {
		if item.GetKey() == "startup-script" {
			script = item.GetValue()
		}
	}
	for _, want := range []string{"--entrypoint failoverd", "--tls-cert /etc/failoverd/agent.crt", "--control-dir", "sigp/lighthouse:v8.0.1", "ethereum/client-go:v1.16.7"} {
		if !strings.Contains(script, want) {
			t.Fatalf("startup-script lacks %q", want)
		}
	}
	ca, cert, key := credentialsFromBootstrap(t, script, t.TempDir())

	beacon := agenttest.NewBeacon(t, agenttest.SyncedBeacon())
	beacon.Update(func(s *agenttest.BeaconState) { s.IsSyncing, s.SyncDistance, s.Health = true, 1200, 206 })
	exec := agenttest.NewExecution(t, agenttest.SyncedExecution())
	start(t, "agent", nil, bin, "agent", "--listen", fmt.Sprintf("127.0.0.1:%d", agentPort),
		"--tls-cert", cert, "--tls-key", key, "--client-ca", ca,
		"--execution-url", exec.URL, "--beacon-url", beacon.URL, "--data-path", t.TempDir())

	inc = d.waitState("syncing", "beacon node syncing")
	t.Logf("agent answering, beacon syncing: %s", inc.Reason)

	beacon.Set(agenttest.SyncedBeacon())
	inc = d.waitState("ready", "in sync")
	t.Logf("every condition holds: %s", inc.Reason)

	beacon.Update(func(s *agenttest.BeaconState) { s.IsOptimistic = true })
	inc = d.waitState("syncing", "optimistic")
	t.Logf("optimistic again: %s", inc.Reason)

	beacon.Set(agenttest.SyncedBeacon())
	d.waitState("ready", "in sync")

	exec.Close() // the execution client dies
	inc = d.waitState("syncing", "execution")
	t.Logf("execution client down: %s", inc.Reason)
}
