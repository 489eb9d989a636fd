package main

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover/agent"
	"github.com/failoverd/failoverd/failover/agent/agenttest"
	"github.com/failoverd/failoverd/failover/pki"
)

// TestAgentProcess runs `failoverd agent` in-process with credentials made
// by failoverd's CA, polls it with the client failoverd uses, and stops it.
func TestAgentProcess(t *testing.T) {
	ca, err := pki.LoadOrCreate(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	const name = "fo-process-1"
	dir := t.TempDir()
	creds := agenttest.WriteCredentials(t, ca, name, dir)
	beacon := agenttest.NewBeacon(t, agenttest.SyncedBeacon())
	exec := agenttest.NewExecution(t, agenttest.SyncedExecution())

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var stdout, stderr syncBuffer
	done := make(chan error, 1)
	go func() {
		done <- run(ctx, []string{"agent",
			"--listen", "127.0.0.1:0",
			"--tls-cert", creds.CertFile, "--tls-key", creds.KeyFile, "--client-ca", creds.ClientCAFile,
			"--execution-url", exec.URL, "--beacon-url", beacon.URL, "--data-path", dir,
			"--log-level", "debug",
		}, environ{}.get, &stdout, &stderr)
	}()

	// The agent logs where it listens.
	addrRE := regexp.MustCompile(`standby agent listening"? addr=(\S+)`)
	var addr string
	for deadline := time.Now().Add(10 * time.Second); addr == ""; {
		select {
		case err := <-done:
			t.Fatalf("agent ended early: %v; stderr:\n%s", err, stderr.String())
		default:
		}
		if m := addrRE.FindStringSubmatch(stderr.String()); m != nil {
			addr = m[1]
			continue
		}
		if time.Now().After(deadline) {
			t.Fatalf("agent did not log its address; stderr:\n%s", stderr.String())
		}
		time.Sleep(10 * time.Millisecond)
	}

	client, err := agent.NewClient(ca, 0)
	if err != nil {
		t.Fatal(err)
	}
	sb := cloud.Standby{Name: name, State: cloud.StateRunning, Address: addr}
	st, err := client.SyncStatus(ctx, sb)
	if err != nil {
		t.Fatalf("SyncStatus: %v", err)
	}
	if !st.Ready() {
		t.Fatalf("not ready: %v", st.NotReady())
	}
	beacon.Update(func(s *agenttest.BeaconState) { s.IsOptimistic = true })
	if st, err = client.SyncStatus(ctx, sb); err != nil || st.Ready() {
		t.Fatalf("optimistic beacon: ready=%v err=%v", st.Ready(), err)
	}
	raw, _, err := client.Status(ctx, sb)
	if err != nil || raw.Version != version {
		t.Fatalf("status %+v, %v", raw, err)
	}

	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("agent returned %v after cancel", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("agent did not stop after cancel")
	}
	if stdout.String() != "" {
		t.Errorf("agent wrote to stdout: %q", stdout.String())
	}
	if !strings.Contains(stderr.String(), "standby agent stopped") {
		t.Errorf("stderr lacks the stop: %s", stderr.String())
	}
}

func TestAgentUsage(t *testing.T) {
	_, _, err := cli(t, context.Background(), nil, "agent", "--tls-key", "k", "--client-ca", "c")
	if !isUsage(err) || !strings.Contains(err.Error(), "--tls-cert") {
		t.Fatalf("missing --tls-cert: %v", err)
	}
	_, _, err = cli(t, context.Background(), nil, "agent", "extra")
	if !isUsage(err) {
		t.Fatalf("positional argument: %v", err)
	}
	out, _, err := cli(t, context.Background(), nil, "agent", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Threat model", "Examples:", "--client-ca", "0.0.0.0:7443", "/var/lib/failoverd-chain"} {
		if !strings.Contains(out, want) {
			t.Errorf("--help lacks %q:\n%s", want, out)
		}
	}
	// Files that do not exist: a plain error, not a usage error.
	_, _, err = cli(t, context.Background(), nil, "agent", "--listen", "127.0.0.1:0",
		"--tls-cert", "/nonexistent/c", "--tls-key", "/nonexistent/k", "--client-ca", "/nonexistent/ca")
	if err == nil || isUsage(err) || !strings.Contains(err.Error(), "certificate") {
		t.Fatalf("missing files: %v", err)
	}
}
