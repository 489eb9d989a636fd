package main

import (
	"bytes"
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover/bootstrap"
)

const localConfig = "../../examples/local.yaml"

// bootstrapCLI runs the program in-process with the bootstrap command
// registered (whether or not main.go registers it yet).
func bootstrapCLI(t *testing.T, args ...string) (stdout, stderr string, err error) {
	t.Helper()
	var out, errOut bytes.Buffer
	getenv := environ{}.get
	root := newRoot(getenv, &out, &errOut)
	if c, _, ferr := root.Find([]string{"bootstrap"}); ferr != nil || c == root {
		root.AddCommand(newBootstrapCmd(&env{getenv: getenv, stdout: &out, stderr: &errOut}))
	}
	root.SetArgs(args)
	root.SetOut(&out)
	root.SetErr(&errOut)
	err = root.ExecuteContext(context.Background())
	return out.String(), errOut.String(), err
}

func TestBootstrapRenderEthereum(t *testing.T) {
	out, stderr, err := bootstrapCLI(t, "bootstrap", "render", "--config", localConfig, "--validator", "eth-mainnet-1")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	// local.yaml uses only the simulated cloud: the GCP script is shown, and why.
	if !strings.Contains(stderr, "uses no real cloud") {
		t.Errorf("stderr: %q", stderr)
	}
	for _, want := range []string{
		"#!/bin/bash\n",
		"validator eth-mainnet-1, ethereum/mainnet",
		"--entrypoint geth ethereum/client-go:v1.16.7",
		"--entrypoint lighthouse sigp/lighthouse:v8.0.1",
		"--checkpoint-sync-url https://mainnet.checkpoint.sigp.io",
		"--entrypoint failoverd ghcr.io/failoverd/failoverd:latest",
		"--listen 0.0.0.0:7443",
		bootstrap.Placeholder,
		// The validator client runs behind the ownership gate, with
		// doppelganger protection, and the agent can import into it.
		"ExecStartPre=/usr/local/sbin/failoverd-gate",
		"--enable-doppelganger-protection",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output has no %q", want)
		}
	}
	// Keys only ever arrive through the agent: no keystore, no password
	// and no enabled validator unit in what a standby boots with.
	for _, bad := range []string{"voting_keystore_path", "systemctl enable failoverd-validator", "--keymanager-url"} {
		if strings.Contains(out, bad) {
			t.Errorf("output contains %q", bad)
		}
	}
}

// With approvers configured, the standby's agent gets the same approvers,
// threshold and chain silence as failoverd, and the validator client's
// Keymanager API to import into.
func TestBootstrapRenderPassesApprovers(t *testing.T) {
	base, err := os.ReadFile(localConfig)
	if err != nil {
		t.Fatal(err)
	}
	signers := filepath.Join(t.TempDir(), "allowed_signers")
	line := "bob@example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIMzFbDhUWqyk0Xfu1uv2A8XKVGGUpkFsIQ6Hb5n1kfWT"
	if err := os.WriteFile(signers, []byte("# approvers\n"+line+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	cfg := filepath.Join(t.TempDir(), "failoverd.yaml")
	extra := fmt.Sprintf("\napproval:\n  allowedSignersFile: %s\n  threshold: 1\n  silentEpochs: 4\n", signers)
	if err := os.WriteFile(cfg, append(base, extra...), 0o600); err != nil {
		t.Fatal(err)
	}
	out, stderr, err := bootstrapCLI(t, "bootstrap", "render", "--config", cfg, "--validator", "eth-mainnet-1")
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	for _, want := range []string{"--allowed-signers", "--approval-threshold 1", "--silent-epochs 4", "--keymanager-url http://127.0.0.1:5062", "bob@example.org ssh-ed25519"} {
		if !strings.Contains(out, want) {
			t.Errorf("output has no %q", want)
		}
	}
	if strings.Contains(out, "# approvers") {
		t.Error("the allowed_signers comment reached the standby")
	}
}

func TestBootstrapRenderBerachainAWS(t *testing.T) {
	path := filepath.Join(t.TempDir(), "user-data.yaml")
	out, stderr, err := bootstrapCLI(t, "bootstrap", "render", "-c", localConfig, "--validator", "bera-bepolia-1", "--provider", "aws", "-o", path)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	if out != "" || !strings.Contains(stderr, "wrote "+path) {
		t.Errorf("stdout %q, stderr %q", out, stderr)
	}
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, want := range []string{
		"#cloud-config\n",
		"ghcr.io/paradigmxyz/reth:v1.9.3",
		"ghcr.io/berachain/beacon-kit:v1.3.4",
		"--chain-id 80069",
		"nvme id-ctrl",
		bootstrap.Placeholder,
	} {
		if !strings.Contains(s, want) {
			t.Errorf("output has no %q", want)
		}
	}
	// What reaches EC2 is the packed (gzip) form.
	packed, err := bootstrap.Pack(b, "aws")
	if err != nil {
		t.Fatal(err)
	}
	if len(packed) > cloud.MaxUserData["aws"] {
		t.Errorf("%d bytes packed, over the AWS limit", len(packed))
	}
}

func TestBootstrapRenderErrors(t *testing.T) {
	for _, tc := range []struct {
		name  string
		args  []string
		usage bool
		want  string
	}{
		{"no validator", []string{"--config", localConfig}, true, "--validator NAME is required"},
		{"no config", []string{"--validator", "eth-mainnet-1"}, true, "--config FILE is required"},
		{"unknown validator", []string{"--config", localConfig, "--validator", "nope"}, true, "eth-mainnet-1, bera-bepolia-1"},
		{"bad provider", []string{"--config", localConfig, "--validator", "eth-mainnet-1", "--provider", "azure"}, true, "use gcp or aws"},
		{"missing file", []string{"--config", "does-not-exist.yaml", "--validator", "x"}, false, "does-not-exist.yaml"},
		{"extra argument", []string{"--config", localConfig, "--validator", "eth-mainnet-1", "extra"}, true, "no arguments"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, _, err := bootstrapCLI(t, append([]string{"bootstrap", "render"}, tc.args...)...)
			if err == nil || !strings.Contains(err.Error(), tc.want) || isUsage(err) != tc.usage {
				t.Fatalf("err = %v (usage %v), want %q (usage %v)", err, isUsage(err), tc.want, tc.usage)
			}
		})
	}
	if _, _, err := bootstrapCLI(t, "bootstrap", "rendr"); err == nil || !isUsage(err) {
		t.Errorf("unknown subcommand: %v", err)
	}
}

func TestBootstrapHelp(t *testing.T) {
	out, _, err := bootstrapCLI(t, "bootstrap", "render", "--help")
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"--validator", "--config", "--provider", "no validator keys", bootstrap.Placeholder, "16 KiB"} {
		if !strings.Contains(out, want) {
			t.Errorf("help has no %q", want)
		}
	}
}
