package bootstrap_test

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/failoverd/failoverd/cloud"
	"github.com/failoverd/failoverd/failover/agent"
	"github.com/failoverd/failoverd/failover/approval"
	"github.com/failoverd/failoverd/failover/bootstrap"
)

var update = flag.Bool("update", false, "rewrite testdata/golden from the current templates")

func readTestdata(t *testing.T, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func fakeAgent(t *testing.T) bootstrap.Agent {
	return bootstrap.Agent{
		Version:   "v0.4.0",
		Port:      7443,
		CACertPEM: readTestdata(t, "fake-ca.crt"),
		CertPEM:   readTestdata(t, "fake-agent.crt"),
		KeyPEM:    readTestdata(t, "fake-agent.key"),
	}
}

// feeRecipient is a made-up fee recipient for the tests.
const feeRecipient = "0x00000000219ab540356cBB839Cbe05303d7705Fa"

// input is a valid Input for a chain and network, with two approvers of
// whom two must sign.
func input(t *testing.T, chain, network string) bootstrap.Input {
	in := bootstrap.Input{Validator: chain + "-" + network + "-1", Chain: chain, Network: network, Agent: fakeAgent(t),
		Approval:     bootstrap.Approval{AllowedSigners: []string{string(readTestdata(t, "fake-approvers"))}, Threshold: 2, SilentEpochs: 4},
		FeeRecipient: feeRecipient}
	switch chain {
	case "ethereum":
		in.Execution = bootstrap.Client{Name: "geth", Version: "v1.16.7"}
		in.Consensus = bootstrap.Client{Name: "lighthouse", Version: "v8.0.1"}
	case "berachain":
		in.Execution = bootstrap.Client{Name: "bera-reth", Version: "v1.3.0"}
		in.Consensus = bootstrap.Client{Name: "beacond", Version: "v1.3.4"}
	}
	return in
}

type combo struct{ chain, network, provider string }

func combos() []combo {
	var out []combo
	for _, cn := range [][2]string{{"ethereum", "mainnet"}, {"ethereum", "hoodi"}, {"ethereum", "sepolia"}, {"berachain", "mainnet"}, {"berachain", "bepolia"}} {
		for _, p := range []string{"gcp", "aws"} {
			out = append(out, combo{cn[0], cn[1], p})
		}
	}
	return out
}

func (c combo) name() string {
	f, _ := bootstrap.FormatFor(c.provider)
	ext := map[bootstrap.Format]string{bootstrap.FormatScript: "sh", bootstrap.FormatCloudInit: "yaml"}[f]
	return fmt.Sprintf("%s-%s-%s.%s", c.chain, c.network, f, ext)
}

func render(t *testing.T, c combo) []byte {
	t.Helper()
	out, err := bootstrap.RenderFor(input(t, c.chain, c.network), c.provider)
	if err != nil {
		t.Fatalf("RenderFor(%s): %v", c.name(), err)
	}
	return out
}

// script is the bash script of a rendered bootstrap: the document itself,
// or the steps file a cloud-init document writes.
func script(t *testing.T, out []byte) string {
	t.Helper()
	if bytes.HasPrefix(out, []byte("#!/bin/bash\n")) {
		return string(out)
	}
	for _, f := range cloudInitFiles(t, out) {
		if f.Path == bootstrap.StepsPath {
			return f.Content
		}
	}
	t.Fatalf("no %s in the cloud-init document", bootstrap.StepsPath)
	return ""
}

// files are the files a rendered bootstrap installs, by path, from either
// format: cloud-init's write_files, or the script's put heredocs.
func files(t *testing.T, out []byte) map[string]writeFile {
	t.Helper()
	m := map[string]writeFile{}
	if !bytes.HasPrefix(out, []byte("#!/bin/bash\n")) {
		for _, f := range cloudInitFiles(t, out) {
			m[f.Path] = f
		}
		return m
	}
	for _, g := range putRE.FindAllStringSubmatch(string(out), -1) {
		m[g[1]] = writeFile{Path: g[1], Owner: "root:root", Permissions: g[2], Content: g[3]}
	}
	if len(m) == 0 {
		t.Fatal("the script writes no files")
	}
	return m
}

var putRE = regexp.MustCompile(`(?ms)^put (\S+) (0[0-7]{3}) <<'FAILOVERD_EOF'\n(.*?)^FAILOVERD_EOF\n`)

type writeFile struct {
	Path        string `json:"path"`
	Owner       string `json:"owner"`
	Permissions string `json:"permissions"`
	Content     string `json:"content"`
}

func cloudInitFiles(t *testing.T, out []byte) []writeFile {
	t.Helper()
	var doc struct {
		WriteFiles []writeFile `json:"write_files"`
		RunCmd     [][]string  `json:"runcmd"`
	}
	if err := yaml.UnmarshalStrict(out, &doc); err != nil {
		t.Fatalf("cloud-init document does not parse: %v", err)
	}
	if len(doc.RunCmd) != 1 || len(doc.RunCmd[0]) != 1 || doc.RunCmd[0][0] != bootstrap.StepsPath {
		t.Fatalf("runcmd = %v, want [[%s]]", doc.RunCmd, bootstrap.StepsPath)
	}
	return doc.WriteFiles
}

func TestGolden(t *testing.T) {
	for _, c := range combos() {
		t.Run(c.name(), func(t *testing.T) {
			out := render(t, c)
			path := filepath.Join("testdata", "golden", c.name())
			if *update {
				if err := os.WriteFile(path, out, 0o644); err != nil {
					t.Fatal(err)
				}
				return
			}
			want, err := os.ReadFile(path)
			if err != nil {
				t.Fatalf("%v (regenerate with: go test ./failover/bootstrap -update)", err)
			}
			if !bytes.Equal(out, want) {
				t.Errorf("%s differs from the golden file; review the diff and regenerate with: go test ./failover/bootstrap -update", path)
			}
			again := render(t, c)
			if !bytes.Equal(out, again) {
				t.Error("rendering is not deterministic")
			}
		})
	}
}

// tool finds an external checker, or skips (fails when
// FAILOVERD_E2E_REQUIRED is set, as in CI).
func tool(t *testing.T, name, pkg string) string {
	t.Helper()
	p, err := exec.LookPath(name)
	if err != nil {
		msg := fmt.Sprintf("%s not found (Debian/Ubuntu: apt-get install -y %s)", name, pkg)
		if os.Getenv("FAILOVERD_E2E_REQUIRED") != "" {
			t.Fatal(msg + "; FAILOVERD_E2E_REQUIRED is set")
		}
		t.Skip(msg)
	}
	return p
}

// TestShellcheck: the steps script and every script it installs (the gate,
// the CometBFT key script) pass shellcheck at style level and bash -n.
func TestShellcheck(t *testing.T) {
	sc := tool(t, "shellcheck", "shellcheck")
	dir := t.TempDir()
	for _, c := range combos() {
		t.Run(c.name(), func(t *testing.T) {
			out := render(t, c)
			scripts := map[string]string{"steps": script(t, out)}
			for path, f := range files(t, out) {
				if strings.HasPrefix(f.Content, "#!/bin/bash\n") && path != bootstrap.StepsPath {
					scripts[filepath.Base(path)] = f.Content
				}
			}
			want := 2 // the steps and the gate
			if c.chain == "berachain" {
				want = 3 // and the CometBFT key script
			}
			if len(scripts) != want {
				t.Errorf("%d scripts, want %d", len(scripts), want)
			}
			for name, body := range scripts {
				f := filepath.Join(dir, c.name()+"."+name+".sh")
				if err := os.WriteFile(f, []byte(body), 0o644); err != nil {
					t.Fatal(err)
				}
				out, err := exec.Command(sc, "--shell=bash", "--severity=style", f).CombinedOutput()
				if err != nil {
					t.Errorf("shellcheck %s: %v\n%s", name, err, out)
				}
				if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
					t.Errorf("bash -n %s: %v\n%s", name, err, out)
				}
			}
		})
	}
}

func TestCloudInitSchema(t *testing.T) {
	ci := tool(t, "cloud-init", "cloud-init")
	dir := t.TempDir()
	for _, c := range combos() {
		if c.provider != "aws" {
			continue
		}
		t.Run(c.name(), func(t *testing.T) {
			f := filepath.Join(dir, c.name())
			if err := os.WriteFile(f, render(t, c), 0o644); err != nil {
				t.Fatal(err)
			}
			// --config-file validates a file offline: no root, no datasource.
			out, err := exec.Command(ci, "schema", "--config-file", f).CombinedOutput()
			if err != nil || !strings.Contains(string(out), "Valid") {
				t.Errorf("cloud-init schema: %v\n%s", err, out)
			}
		})
	}
}

// TestCloudInitFiles: the document writes the credentials, the units and the
// steps with the right modes, byte for byte.
func TestCloudInitFiles(t *testing.T) {
	in := input(t, "ethereum", "mainnet")
	out, err := bootstrap.RenderFor(in, "aws")
	if err != nil {
		t.Fatal(err)
	}
	files := map[string]writeFile{}
	for _, f := range cloudInitFiles(t, out) {
		files[f.Path] = f
		if f.Owner != "root:root" {
			t.Errorf("%s: owner %q", f.Path, f.Owner)
		}
	}
	// agent.key is 0640: the steps give it the agent's group, and nobody
	// else may read it.
	approvers := "alice@example.org ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIH/z/rNeqaYQXUbl3lH8amt8NkslkAWcbfHixCe+BlS1\n" +
		"bob@example.org namespaces=\"failoverd-approval\" ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIC1tyM/VvahBCT5ClmcObhE/eBJP0XyJ9hRe9q2nvMLn\n"
	for path, want := range map[string]struct {
		mode    string
		content []byte
	}{
		"/etc/failoverd/ca.crt":      {"0644", in.Agent.CACertPEM},
		"/etc/failoverd/agent.crt":   {"0644", in.Agent.CertPEM},
		"/etc/failoverd/agent.key":   {"0640", in.Agent.KeyPEM},
		bootstrap.AllowedSignersFile: {"0644", []byte(approvers)},
	} {
		f, ok := files[path]
		if !ok || f.Permissions != want.mode || f.Content != string(want.content) {
			t.Errorf("%s: got %+v, want mode %s and %q", path, f, want.mode, want.content)
		}
	}
	if f := files[bootstrap.GatePath]; f.Permissions != "0755" || !strings.HasPrefix(f.Content, "#!/bin/bash\n") {
		t.Errorf("gate: %+v", f)
	}
	if !strings.Contains(files[bootstrap.StepsPath].Content, "chgrp 65532 /etc/failoverd/agent.key") {
		t.Error("agent.key is not given the agent's group")
	}
	for _, u := range []string{bootstrap.ExecutionUnit, bootstrap.BeaconUnit, bootstrap.AgentUnit, bootstrap.ValidatorUnit} {
		if _, ok := files["/etc/systemd/system/"+u]; !ok {
			t.Errorf("no unit %s", u)
		}
	}
	if f := files[bootstrap.StepsPath]; f.Permissions != "0700" || !strings.HasPrefix(f.Content, "#!/bin/bash\n") {
		t.Errorf("steps: %+v", f.Permissions)
	}
	if strings.Contains(files[bootstrap.StepsPath].Content, "FAILOVERD_EOF") {
		t.Error("the cloud-init steps write files again; write_files does that")
	}
}

func TestSizeUnderProviderLimit(t *testing.T) {
	for _, c := range combos() {
		out := render(t, c)
		packed, err := bootstrap.Pack(out, c.provider)
		if err != nil {
			t.Fatal(err)
		}
		limit := cloud.MaxUserData[c.provider]
		t.Logf("%-40s %6d bytes, %6d as sent (limit %d)", c.name(), len(out), len(packed), limit)
		// Real credentials are about the size of the fakes; keep 2 KiB spare.
		if len(packed) > limit-2<<10 {
			t.Errorf("%s: %d bytes as sent, within 2 KiB of the %s limit %d", c.name(), len(packed), c.provider, limit)
		}
		again, _ := bootstrap.Pack(out, c.provider)
		if !bytes.Equal(packed, again) {
			t.Errorf("%s: packing is not deterministic", c.name())
		}
		if c.provider == "aws" {
			zr, err := gzip.NewReader(bytes.NewReader(packed))
			if err != nil {
				t.Fatalf("%s: not gzip: %v", c.name(), err)
			}
			plain, err := io.ReadAll(zr)
			if err != nil || !bytes.Equal(plain, out) {
				t.Errorf("%s: gzip does not round-trip (%v)", c.name(), err)
			}
		}
	}
	// A bootstrap over the limit is refused, not truncated.
	in := input(t, "ethereum", "mainnet")
	// Random-looking bytes, so gzip cannot shrink them under the limit.
	big := make([]byte, 0, 40<<10)
	for i := 0; len(big) < 40<<10; i++ {
		big = fmt.Appendf(big, "%x", sha256.Sum256([]byte{byte(i), byte(i >> 8)}))
	}
	in.Execution.ExtraArgs = []string{string(big)}
	if _, err := bootstrap.RenderFor(in, "aws"); !errors.Is(err, bootstrap.ErrTooLarge) {
		t.Errorf("40 KiB of noise for aws: err = %v, want ErrTooLarge", err)
	}
	if _, err := bootstrap.RenderFor(in, "gcp"); err != nil {
		t.Errorf("40 KiB for gcp: %v", err)
	}
}

// TestNoKeys: no rendered bootstrap carries key material or signing
// history, and a validator key reaches the standby only through the agent's
// import (Ethereum) or the CometBFT key script (Berachain).
func TestNoKeys(t *testing.T) {
	forbidden := []*regexp.Regexp{
		// EIP-2335 keystores, EIP-3076 interchange, a CometBFT key's value.
		regexp.MustCompile(`"(crypto|kdf|checksum|cipher|pubkey)"\s*:`),
		regexp.MustCompile(`(?i)interchange_format_version|signed_attestations|signed_blocks|"priv_key"\s*:\s*\{`),
		// Ways around the gate or the slashing protection.
		regexp.MustCompile(`(?i)--init-slashing-protection|web3signer|account_manager|lighthouse\S*\s+(\\\s+)?(am|account)\b|--unencrypted-http-transport`),
	}
	for _, c := range combos() {
		t.Run(c.name(), func(t *testing.T) {
			out := string(render(t, c))
			for _, re := range forbidden {
				if m := re.FindString(out); m != "" {
					t.Errorf("found %q", m)
				}
			}
			fs := files(t, []byte(out))
			// priv_validator_key.json is written only where beacond init
			// makes a fresh throwaway on the VM, or by the key script on
			// the agent's request; never from the bootstrap itself.
			for path, f := range fs {
				if path == bootstrap.CometBFTKeyScript {
					continue
				}
				for _, line := range strings.Split(f.Content, "\n") {
					trim := strings.TrimSpace(line)
					if !strings.Contains(line, "priv_validator") || strings.HasPrefix(trim, "#") {
						continue
					}
					if !strings.HasPrefix(trim, `install -m 0600 "$D/keygen/config/priv_validator_key.json"`) {
						t.Errorf("%s: priv_validator_key handled outside the fresh-key path: %q", path, trim)
					}
				}
			}
			// The agent's key import flags, only where the agent can import.
			agent := fs["/etc/systemd/system/"+bootstrap.AgentUnit].Content
			for _, flag := range []string{"--allowed-signers", "--state-dir", "--approval-threshold"} {
				if !strings.Contains(agent, flag) {
					t.Errorf("agent has no %s", flag)
				}
			}
			eth := c.chain == "ethereum"
			for flag, want := range map[string]bool{"--keymanager-url": eth, "--keymanager-token-file": eth, "--silent-epochs": eth,
				"--chain berachain": !eth, "--cometbft-dir " + bootstrap.CometBFTStageDir: !eth, "--silent-blocks 150": !eth,
				"--cometbft-chain-id " + c.network + "-beacon-": !eth} {
				if got := strings.Contains(agent, flag); got != want {
					t.Errorf("agent has %s: %v, want %v", flag, got, want)
				}
			}
			if c.chain == "berachain" {
				if strings.Contains(out, "lighthouse") || fs["/etc/systemd/system/"+bootstrap.ValidatorUnit].Path != "" {
					t.Error("a Berachain standby runs no lighthouse validator client")
				}
				for _, want := range []string{"init failoverd-standby --chain-id", "bcd_init beacond.new", "bcd_init keygen", "THROWAWAY", "never copied here"} {
					if !strings.Contains(script(t, []byte(out)), want) {
						t.Errorf("beacond key handling: no %q", want)
					}
				}
			}
			// Container units: execution, beacon node, agent and, on
			// Ethereum, the validator client; plus the clean-stop commands
			// and, on Berachain, the key script.
			containers, other := 4, 3
			if c.chain == "berachain" {
				containers, other = 3, 4
			}
			if n := strings.Count(out, "ExecStart=/usr/bin/docker run"); n != containers {
				t.Errorf("%d container units, want %d", n, containers)
			}
			if n := strings.Count(out, "ExecStart="); n != containers+other {
				t.Errorf("%d ExecStart lines, want %d", n, containers+other)
			}
			for _, want := range []string{
				"ExecStart=/bin/systemctl stop failoverd-beacon.service failoverd-execution.service",
				"ExecStart=/bin/sync",
				"ExecStart=/usr/bin/touch /var/lib/failoverd-agent/clients-stopped",
				"PathExists=/var/lib/failoverd-agent/stop-requested",
				"--control-dir /var/lib/failoverd-agent",
			} {
				if !strings.Contains(out, want) {
					t.Errorf("clean stop: no %q", want)
				}
			}
		})
	}
}

// unitLines are the non-comment lines of a unit file's section.
func unitLines(unit, section string) []string {
	var out []string
	in := false
	for _, l := range strings.Split(unit, "\n") {
		if strings.HasPrefix(l, "[") {
			in = l == "["+section+"]"
			continue
		}
		if in && l != "" && !strings.HasPrefix(l, "#") {
			out = append(out, l)
		}
	}
	return out
}

// TestSignersStartThroughTheGate: every unit that can sign (the lighthouse
// validator client; beacond on Berachain) runs the gate before anything
// else, the validator client is never enabled, and a closed gate does not
// stop the bootstrap.
func TestSignersStartThroughTheGate(t *testing.T) {
	for _, c := range combos() {
		t.Run(c.name(), func(t *testing.T) {
			out := render(t, c)
			fs := files(t, out)
			steps := script(t, out)
			signer := bootstrap.ValidatorUnit
			if c.chain == "berachain" {
				signer = bootstrap.BeaconUnit
			}
			for path, f := range fs {
				if !strings.HasPrefix(path, "/etc/systemd/system/") || !strings.HasSuffix(path, ".service") {
					continue
				}
				svc := unitLines(f.Content, "Service")
				gated := len(svc) > 0 && slices.Contains(svc, "ExecStartPre="+bootstrap.GatePath)
				if gated != (filepath.Base(path) == signer) {
					t.Errorf("%s: gated %v", path, gated)
				}
				if !gated {
					continue
				}
				// The gate is the first command, and never ignored ("-").
				for _, l := range svc {
					if strings.HasPrefix(l, "Exec") {
						if l != "ExecStartPre="+bootstrap.GatePath {
							t.Errorf("%s: first command %q, want the gate", path, l)
						}
						break
					}
				}
			}
			enable := regexp.MustCompile(`(?m)^systemctl enable -q (failoverd-.*)$`).FindStringSubmatch(steps)
			start := regexp.MustCompile(`(?m)^systemctl start (failoverd-execution.*)$`).FindStringSubmatch(steps)
			if enable == nil || start == nil {
				t.Fatal("no systemctl enable / start line")
			}
			if !strings.Contains(steps, "\nsystemctl start "+signer+" || log ") {
				t.Errorf("%s is not started with its gate's refusal logged", signer)
			}
			if strings.Contains(start[1], signer) {
				t.Errorf("%s is in the start line that stops the bootstrap on failure", signer)
			}
			if c.chain == "berachain" {
				if !strings.Contains(enable[1], bootstrap.BeaconUnit) || !strings.Contains(enable[1], bootstrap.CometBFTKeyUnit) {
					t.Errorf("enable: %s", enable[1])
				}
				return
			}
			vc := fs["/etc/systemd/system/"+bootstrap.ValidatorUnit].Content
			if strings.Contains(enable[1], bootstrap.ValidatorUnit) || regexp.MustCompile(`(?m)^\[Install\]|^WantedBy`).MatchString(vc) {
				t.Error("the validator client can be enabled")
			}
			if !slices.Contains(unitLines(fs["/etc/systemd/system/"+bootstrap.AgentUnit].Content, "Unit"), "Wants=network-online.target "+bootstrap.ValidatorUnit) {
				t.Error("the agent does not bring the validator client up (it imports through its Keymanager API)")
			}
			// Restart on a failure polls the gate; a clean exit stays down.
			for _, want := range []string{"Restart=on-failure", "RestartSec=30"} {
				if !slices.Contains(unitLines(vc, "Service"), want) {
					t.Errorf("validator client: no %s", want)
				}
			}
		})
	}
}

// TestValidatorClient: the Ethereum standby's lighthouse validator client.
func TestValidatorClient(t *testing.T) {
	out := render(t, combo{"ethereum", "hoodi", "aws"})
	fs := files(t, out)
	vc := fs["/etc/systemd/system/"+bootstrap.ValidatorUnit].Content
	bn := fs["/etc/systemd/system/"+bootstrap.BeaconUnit].Content
	for _, want := range []string{
		// The beacon node's own image: the same pinned release.
		"--entrypoint lighthouse sigp/lighthouse:v8.0.1 \\\n  vc \\\n  --network hoodi \\",
		"--validators-dir /var/lib/failoverd-validator/validators",
		"--secrets-dir /var/lib/failoverd-validator/secrets",
		"--beacon-nodes http://127.0.0.1:5052",
		"--enable-doppelganger-protection",
		"--http \\\n  --http-port 5062 \\",
		"--http-token-path /etc/failoverd/keymanager/api-token.txt",
		"--suggested-fee-recipient " + feeRecipient,
		"--metrics-address 127.0.0.1",
		"-v /var/lib/failoverd-validator:/var/lib/failoverd-validator \\",
		"-v /etc/failoverd/keymanager:/etc/failoverd/keymanager:ro \\",
		"After=network-online.target docker.service failoverd-beacon.service",
	} {
		if !strings.Contains(vc, want) {
			t.Errorf("validator client: no %q", want)
		}
	}
	if !strings.Contains(bn, "--entrypoint lighthouse sigp/lighthouse:v8.0.1 \\\n  bn") {
		t.Error("beacon node image changed")
	}
	// Loopback only by lighthouse's default (127.0.0.1:5062): any
	// --http-address would also need --unencrypted-http-transport. Keys and
	// slashing protection off the chain-data disk, which gets snapshotted.
	// The container sees the token's directory only, never agent.key.
	for _, bad := range []string{"--http-address", "--unencrypted-http-transport", "--init-slashing-protection", "/var/lib/failoverd-chain:", "-v /etc/failoverd:", "--user"} {
		if strings.Contains(vc, bad) {
			t.Errorf("validator client: %q", bad)
		}
	}
	if bootstrap.KeymanagerURL != "http://127.0.0.1:5062" || !strings.HasPrefix(bootstrap.ValidatorDir, "/var/lib/") || strings.HasPrefix(bootstrap.ValidatorDir, bootstrap.DataDir) {
		t.Error("Keymanager URL or validator directory moved")
	}
	// The agent's gate file is where the agent writes it.
	if bootstrap.ValidatorStartFile != filepath.Join(bootstrap.ControlDir, agent.ValidatorStartFile) {
		t.Errorf("gate file %s, the agent writes %s", bootstrap.ValidatorStartFile, filepath.Join(bootstrap.ControlDir, agent.ValidatorStartFile))
	}
	steps := script(t, out)
	for _, want := range []string{
		// Made on the VM, without a newline (lighthouse reads the whole
		// file as the token; the agent trims it).
		"(umask 077 && openssl rand -hex 32 | tr -d '\\n' >\"$T.new\")",
		"install -d -g 65532 -m 0750 \"${T%/*}\"",
		"chgrp 65532 \"$T\"\nchmod 0640 \"$T\"",
		"install -d -m 0700 /var/lib/failoverd-validator /var/lib/failoverd-validator/validators /var/lib/failoverd-validator/secrets",
		"install -d -o 65532 -g 65532 -m 0755 /var/lib/failoverd-agent",
		// A new token restarts both readers.
		"if changed /etc/systemd/system/failoverd-validator.service /etc/failoverd/keymanager/api-token.txt; then",
	} {
		if !strings.Contains(steps, want) {
			t.Errorf("steps: no %q", want)
		}
	}
	if !regexp.MustCompile(`if changed /etc/systemd/system/failoverd-agent.service /etc/failoverd/keymanager/api-token.txt \S`).MatchString(steps) {
		t.Error("a new token does not restart the agent")
	}
	if strings.Count(steps, "openssl rand") != 2 || strings.Index(steps, `if [ ! -s "$T" ]; then`) > strings.Index(steps, "openssl rand -hex 32 | tr") {
		t.Error("the token is made only when absent")
	}
	// The agent can read what it must, as its own user.
	agentUnit := fs["/etc/systemd/system/"+bootstrap.AgentUnit].Content
	for _, want := range []string{
		"--user 65532:65532",
		"-v /etc/failoverd:/etc/failoverd:ro",
		"--allowed-signers /etc/failoverd/allowed_signers",
		"--approval-threshold 2",
		"--keymanager-url http://127.0.0.1:5062",
		"--keymanager-token-file /etc/failoverd/keymanager/api-token.txt",
		"--state-dir /var/lib/failoverd-agent/state",
		"--silent-epochs 4",
	} {
		if !strings.Contains(agentUnit, want) {
			t.Errorf("agent: no %q", want)
		}
	}
	// The file the agent gets is one it parses, with both approvers.
	signers, err := approval.ParseAllowedSigners([]string{fs[bootstrap.AllowedSignersFile].Content})
	if err != nil || len(signers.Principals()) != 2 {
		t.Errorf("allowed signers: %v %v", signers.Principals(), err)
	}

	// Without approvers the agent takes no keys; the validator client
	// still runs (empty), and no fee recipient is invented.
	in := input(t, "ethereum", "mainnet")
	in.Approval, in.FeeRecipient = bootstrap.Approval{}, ""
	b, err := bootstrap.RenderFor(in, "gcp")
	if err != nil {
		t.Fatal(err)
	}
	fs = files(t, b)
	if a := fs["/etc/systemd/system/"+bootstrap.AgentUnit].Content; strings.Contains(a, "--allowed-signers") || strings.Contains(a, "--keymanager") {
		t.Error("agent without approvers has import flags")
	}
	if _, ok := fs[bootstrap.AllowedSignersFile]; ok {
		t.Error("allowed_signers written without approvers")
	}
	if vc := fs["/etc/systemd/system/"+bootstrap.ValidatorUnit].Content; vc == "" || strings.Contains(vc, "--suggested-fee-recipient") {
		t.Errorf("validator client without a fee recipient: %q", vc)
	}
	// Only comments: no approvers either.
	in.Approval = bootstrap.Approval{AllowedSigners: []string{"# nobody yet"}}
	if b, err = bootstrap.RenderFor(in, "gcp"); err != nil || strings.Contains(string(b), "--allowed-signers") {
		t.Errorf("comment-only approvers: %v", err)
	}
	// Defaults: threshold 1, silent epochs 3.
	in.Approval = bootstrap.Approval{AllowedSigners: []string{string(readTestdata(t, "fake-approvers"))}}
	if b, err = bootstrap.RenderFor(in, "gcp"); err != nil || !strings.Contains(string(b), "--approval-threshold 1") || !strings.Contains(string(b), "--silent-epochs 3") {
		t.Errorf("approval defaults: %v", err)
	}
}

// TestIdempotencyGuards: every step that changes the VM is guarded.
func TestIdempotencyGuards(t *testing.T) {
	for _, c := range combos() {
		t.Run(c.name(), func(t *testing.T) {
			s := script(t, render(t, c))
			before := func(guard, action string) {
				t.Helper()
				g, a := strings.Index(s, guard), strings.Index(s, action)
				if g < 0 || a < 0 || g > a {
					t.Errorf("%q must come after its guard %q (guard at %d, action at %d)", action, guard, g, a)
				}
			}
			before(`if ! mountpoint -q "$D"; then`, "mkfs.ext4")
			before(`if [ -z "$fs" ] && [ -z "$pt" ]; then`, "mkfs.ext4")
			if strings.Count(s, "mkfs") != 1 || strings.Contains(s, "mkfs.ext4 -F") || strings.Contains(s, "wipefs") {
				t.Error("one unforced mkfs only")
			}
			before(`fs=$(blkid -p -o value -s TYPE "$dev"`, "mkfs.ext4")
			before(`if [ ! -s "$D/jwt.hex" ]; then`, "openssl rand -hex 32")
			before(`if ! grep -q '^LABEL=failoverd-data ' /etc/fstab; then`, ">>/etc/fstab")
			if !strings.Contains(s, "LABEL=failoverd-data $D ext4 defaults,noatime,nofail") {
				t.Error("fstab entry by label with nofail missing")
			}
			before(`if [ "${#missing[@]}" -gt 0 ]; then`, "apt-get install")
			if !strings.Contains(s, `chmod 0600 "$D/jwt.hex"`) {
				t.Error("jwt.hex mode 0600")
			}
			if c.chain == "berachain" {
				before(`if [ ! -d "$D/beacond" ]; then`, "bcd_init beacond.new")
				before(`if [ ! -d "$D/execution/db" ]; then`, "init --datadir /data/execution")
				before(`if [ ! -d "$D/seed" ]; then`, "curl -fsSL")
			}
			if strings.Contains(s, "systemctl restart") {
				t.Error("units are restarted only when changed (try-restart after changed)")
			}
		})
	}
}

// TestPutIsIdempotent runs the rendered file-writing part of a script twice
// in a scratch root: the second run changes nothing.
func TestPutIsIdempotent(t *testing.T) {
	if _, err := exec.LookPath("bash"); err != nil {
		t.Skip("no bash")
	}
	out := string(render(t, combo{"ethereum", "hoodi", "gcp"}))
	// The header (put/changed) and the inline files, with paths moved into
	// a scratch directory; stop before the steps that need root.
	end := strings.Index(out, "\n# 1. ")
	if end < 0 {
		t.Fatal("no step 1")
	}
	root := t.TempDir()
	part := strings.ReplaceAll(out[:end], " /etc/", " "+root+"/etc/")
	part += "\necho \"CHANGED=$CHANGED\"\n"
	f := filepath.Join(root, "part.sh")
	if err := os.WriteFile(f, []byte(part), 0o700); err != nil {
		t.Fatal(err)
	}
	run := func() string {
		b, err := exec.Command("bash", f).CombinedOutput()
		if err != nil {
			t.Fatalf("%v\n%s", err, b)
		}
		return strings.TrimSpace(string(b))
	}
	first := run()
	if !strings.Contains(first, root+"/etc/failoverd/agent.key") {
		t.Errorf("first run: %s", first)
	}
	if second := run(); second != "CHANGED=" {
		t.Errorf("second run changed files: %s", second)
	}
	st, err := os.Stat(filepath.Join(root, "etc/failoverd/agent.key"))
	if err != nil || st.Mode().Perm() != 0o640 {
		t.Errorf("agent.key: %v %v", st, err)
	}
	key, _ := os.ReadFile(filepath.Join(root, "etc/failoverd/agent.key"))
	if !bytes.Equal(key, readTestdata(t, "fake-agent.key")) {
		t.Error("agent.key content differs")
	}
}

func TestClientCommandLines(t *testing.T) {
	eth := string(render(t, combo{"ethereum", "hoodi", "gcp"}))
	for _, want := range []string{
		"--entrypoint geth ethereum/client-go:v1.16.7 \\\n  --hoodi \\",
		"--authrpc.jwtsecret /data/jwt.hex",
		"--http.addr 127.0.0.1", "--http.port 8545", "--http.api eth,net", "--metrics.addr 127.0.0.1",
		"--entrypoint lighthouse sigp/lighthouse:v8.0.1 \\\n  bn \\\n  --network hoodi",
		"--execution-endpoint http://127.0.0.1:8551", "--execution-jwt /data/jwt.hex",
		"--checkpoint-sync-url https://checkpoint-sync.hoodi.ethpandaops.io",
		"--http-address 127.0.0.1", "--http-port 5052", "--metrics-address 127.0.0.1",
		"--entrypoint failoverd ghcr.io/failoverd/failoverd:v0.4.0 \\\n  agent \\\n  --listen 0.0.0.0:7443",
		"--tls-cert /etc/failoverd/agent.crt", "--tls-key /etc/failoverd/agent.key", "--client-ca /etc/failoverd/ca.crt",
		"--execution-url http://127.0.0.1:8545", "--beacon-url http://127.0.0.1:5052", "--data-path /var/lib/failoverd-chain",
		"--network host",
		"-v /var/lib/failoverd-chain:/data",
		"/dev/disk/by-id/google-data",
	} {
		if !strings.Contains(eth, want) {
			t.Errorf("ethereum/hoodi: no %q", want)
		}
	}
	main := string(render(t, combo{"ethereum", "mainnet", "aws"}))
	if strings.Contains(main, "--mainnet") {
		t.Error("geth on mainnet needs no network flag")
	}
	if !strings.Contains(main, "--checkpoint-sync-url https://mainnet.checkpoint.sigp.io") || !strings.Contains(main, "nvme id-ctrl --raw-binary") {
		t.Error("mainnet checkpoint URL or NVMe lookup missing")
	}
	bera := string(render(t, combo{"berachain", "bepolia", "gcp"}))
	for _, want := range []string{
		"--entrypoint bera-reth ghcr.io/berachain/bera-reth:v1.3.0 \\\n  node \\\n  --chain /data/seed/eth-genesis.json",
		"$EL_PEER_ARGS", "EnvironmentFile=/etc/failoverd/execution.env",
		"--entrypoint beacond ghcr.io/berachain/beacon-kit:v1.3.4 \\\n  start \\\n  --home /data/beacond",
		"--chain-id 80069 --beacon-kit.chain-spec testnet",
		"https://raw.githubusercontent.com/berachain/beacon-kit/main/testing/networks/80069",
		"no checkpoint sync",
	} {
		if !strings.Contains(bera, want) {
			t.Errorf("berachain/bepolia: no %q", want)
		}
	}
	if strings.Contains(bera, "--checkpoint-sync-url") {
		t.Error("beacond has no checkpoint sync")
	}
}

func TestDefaults(t *testing.T) {
	in := input(t, "ethereum", "sepolia")
	in.Format = bootstrap.FormatScript
	in.DataDisk = "gcp:data"
	in.Agent.Port = 0
	in.Consensus.Image = "registry.example/lighthouse@sha256:" + strings.Repeat("a", 64)
	in.Execution.ExtraArgs = []string{"--cache=4096", "--graffiti=50% $off"}
	out, err := bootstrap.Render(in)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"--listen 0.0.0.0:7443", "--sepolia", "https://sepolia.checkpoint.sigp.io", in.Consensus.Image, "--cache=4096", `"--graffiti=50%% $$off"`} {
		if !strings.Contains(s, want) {
			t.Errorf("no %q", want)
		}
	}
	if img, err := bootstrap.DefaultImage("beacond", "v1.3.4"); err != nil || img != "ghcr.io/berachain/beacon-kit:v1.3.4" {
		t.Errorf("DefaultImage = %q, %v", img, err)
	}
	if bootstrap.DefaultCheckpointSyncURL("berachain", "mainnet") != "" {
		t.Error("berachain has no checkpoint sync URL")
	}
}

func TestPlaceholderCredentials(t *testing.T) {
	in := input(t, "berachain", "mainnet")
	in.Agent = bootstrap.PlaceholderAgent("ghcr.io/failoverd/failoverd:latest", 7443)
	out, err := bootstrap.RenderFor(in, "aws")
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(out), bootstrap.Placeholder); n != 3 {
		t.Errorf("%d placeholders, want 3", n)
	}
}

func TestValidation(t *testing.T) {
	for _, tc := range []struct {
		name   string
		mutate func(*bootstrap.Input)
		want   string
	}{
		{"no validator", func(in *bootstrap.Input) { in.Validator = "" }, "Validator"},
		{"bad validator", func(in *bootstrap.Input) { in.Validator = "Eth_1" }, "Validator"},
		{"chain", func(in *bootstrap.Input) { in.Chain = "solana" }, "Chain \"solana\""},
		{"network", func(in *bootstrap.Input) { in.Network = "holesky" }, "Network \"holesky\": ethereum networks are mainnet, hoodi, sepolia"},
		{"format", func(in *bootstrap.Input) { in.Format = "ignition" }, "Format \"ignition\""},
		{"no format", func(in *bootstrap.Input) { in.Format = "" }, "Format is required"},
		{"execution name", func(in *bootstrap.Input) { in.Execution.Name = "" }, "Execution.Name is required"},
		{"unknown client", func(in *bootstrap.Input) { in.Execution.Name = "nethermind" }, "Execution.Name \"nethermind\""},
		{"wrong layer", func(in *bootstrap.Input) { in.Consensus.Name = "geth" }, "Consensus.Name \"geth\": a ethereum execution client"},
		{"wrong chain", func(in *bootstrap.Input) { in.Consensus.Name = "beacond" }, "Consensus.Name \"beacond\": a berachain consensus client"},
		{"no version", func(in *bootstrap.Input) { in.Consensus.Version = "" }, "Consensus.Version is required"},
		{"bad version", func(in *bootstrap.Input) { in.Execution.Version = "v1; rm -rf /" }, "Execution.Version"},
		{"bad image", func(in *bootstrap.Input) { in.Execution.Image = "Docker.io/Geth:1 x" }, "Execution.Image"},
		{"validator flag", func(in *bootstrap.Input) { in.Consensus.ExtraArgs = []string{"--validators-dir=/x"} }, "keys and validator flags have no place here"},
		{"keystore flag", func(in *bootstrap.Input) { in.Execution.ExtraArgs = []string{"--keystore", "/k"} }, "keys and validator flags have no place here"},
		{"quote in arg", func(in *bootstrap.Input) { in.Execution.ExtraArgs = []string{`--x="y"`} }, "printable ASCII"},
		{"newline in arg", func(in *bootstrap.Input) { in.Execution.ExtraArgs = []string{"--x\nExecStartPre=/bin/sh"} }, "printable ASCII"},
		{"checkpoint url", func(in *bootstrap.Input) { in.CheckpointSyncURL = "ftp://x" }, "CheckpointSyncURL"},
		{"data disk", func(in *bootstrap.Input) { in.DataDisk = "" }, "DataDisk is required"},
		{"bad data disk", func(in *bootstrap.Input) { in.DataDisk = "aws:/dev/nvme1n1" }, "DataDisk \"aws:/dev/nvme1n1\""},
		{"port", func(in *bootstrap.Input) { in.Agent.Port = 70000 }, "Agent.Port 70000"},
		{"agent image", func(in *bootstrap.Input) { in.Agent.Version = "" }, "Agent.Image (or Agent.Version) is required"},
		{"no key", func(in *bootstrap.Input) { in.Agent.KeyPEM = nil }, "Agent.KeyPEM is required"},
		{"key is a cert", func(in *bootstrap.Input) { in.Agent.KeyPEM = in.Agent.CertPEM }, "Agent.KeyPEM: want one PEM block"},
		{"cert garbage", func(in *bootstrap.Input) { in.Agent.CertPEM = []byte("hello") }, "Agent.CertPEM: want one PEM block"},
		{"fee recipient", func(in *bootstrap.Input) { in.FeeRecipient = "0x1234" }, "FeeRecipient \"0x1234\": want 0x and 40 hex digits"},
		{"fee recipient injection", func(in *bootstrap.Input) { in.FeeRecipient = feeRecipient + " --http-address 0.0.0.0" }, "FeeRecipient"},
		{"old lighthouse", func(in *bootstrap.Input) { in.Consensus.Version = "v5.3.0" }, "needs lighthouse v7.0.0 or later"},
		{"bad approver", func(in *bootstrap.Input) { in.Approval.AllowedSigners = []string{"alice ssh-ed25519 nope"} }, "Approval.AllowedSigners"},
		{"approver with a heredoc end", func(in *bootstrap.Input) {
			in.Approval.AllowedSigners = append(in.Approval.AllowedSigners, "# FAILOVERD_EOF")
		}, "must not contain FAILOVERD_EOF"},
		{"threshold above approvers", func(in *bootstrap.Input) { in.Approval.Threshold = 3 }, "Approval.Threshold 3: between 1 and the 2 approvers"},
		{"negative threshold", func(in *bootstrap.Input) { in.Approval.Threshold = -1 }, "Approval.Threshold -1"},
		{"too few silent epochs", func(in *bootstrap.Input) { in.Approval.SilentEpochs = 2 }, "Approval.SilentEpochs 2: at least 3"},
		{"two blocks", func(in *bootstrap.Input) {
			in.Agent.CACertPEM = append(append([]byte{}, in.Agent.CACertPEM...), in.Agent.CertPEM...)
		}, "Agent.CACertPEM"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := input(t, "ethereum", "mainnet")
			in.Format, in.DataDisk = bootstrap.FormatScript, "gcp:data"
			tc.mutate(&in)
			_, err := bootstrap.Render(in)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err = %v, want it to mention %q", err, tc.want)
			}
		})
	}
	in := input(t, "berachain", "bepolia")
	in.CheckpointSyncURL = "https://example.com"
	if _, err := bootstrap.RenderFor(in, "gcp"); err == nil || !strings.Contains(err.Error(), "CheckpointSyncURL: berachain") {
		t.Errorf("berachain checkpoint URL: %v", err)
	}
	// A lighthouse of a newer major, an image of its own, or a tag that is
	// not a version: rendered (the version check only knows version tags).
	for _, mutate := range []func(*bootstrap.Input){
		func(in *bootstrap.Input) { in.Consensus.Version = "v10.0.0" },
		func(in *bootstrap.Input) {
			in.Consensus.Version, in.Consensus.Image = "v5.3.0", "sigp/lighthouse:v8.0.1"
		},
		func(in *bootstrap.Input) { in.Consensus.Version = "latest-modern" },
	} {
		in := input(t, "ethereum", "mainnet")
		mutate(&in)
		if _, err := bootstrap.RenderFor(in, "gcp"); err != nil {
			t.Errorf("%+v: %v", in.Consensus, err)
		}
	}
	if _, err := bootstrap.RenderFor(input(t, "ethereum", "mainnet"), "azure"); err == nil || !strings.Contains(err.Error(), "azure") {
		t.Errorf("unknown provider: %v", err)
	}
	// All problems at once.
	_, err := bootstrap.Render(bootstrap.Input{})
	for _, want := range []string{"Validator", "Chain", "Format", "Execution.Name", "Consensus.Name", "DataDisk", "Agent.Image", "Agent.CACertPEM"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("empty input: %v, want %q", err, want)
		}
	}
}
