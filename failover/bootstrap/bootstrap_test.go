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
	"strings"
	"testing"

	"sigs.k8s.io/yaml"

	"github.com/failoverd/failoverd/cloud"
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

// input is a valid Input for a chain and network.
func input(t *testing.T, chain, network string) bootstrap.Input {
	in := bootstrap.Input{Validator: chain + "-" + network + "-1", Chain: chain, Network: network, Agent: fakeAgent(t)}
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

func TestShellcheck(t *testing.T) {
	sc := tool(t, "shellcheck", "shellcheck")
	dir := t.TempDir()
	for _, c := range combos() {
		t.Run(c.name(), func(t *testing.T) {
			f := filepath.Join(dir, c.name()+".sh")
			if err := os.WriteFile(f, []byte(script(t, render(t, c))), 0o644); err != nil {
				t.Fatal(err)
			}
			out, err := exec.Command(sc, "--shell=bash", "--severity=style", f).CombinedOutput()
			if err != nil {
				t.Errorf("shellcheck: %v\n%s", err, out)
			}
			if out, err := exec.Command("bash", "-n", f).CombinedOutput(); err != nil {
				t.Errorf("bash -n: %v\n%s", err, out)
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
	for path, want := range map[string]struct {
		mode    string
		content []byte
	}{
		"/etc/failoverd/ca.crt":    {"0644", in.Agent.CACertPEM},
		"/etc/failoverd/agent.crt": {"0644", in.Agent.CertPEM},
		"/etc/failoverd/agent.key": {"0600", in.Agent.KeyPEM},
	} {
		f, ok := files[path]
		if !ok || f.Permissions != want.mode || f.Content != string(want.content) {
			t.Errorf("%s: got %+v, want mode %s and the PEM", path, f, want.mode)
		}
	}
	for _, u := range []string{bootstrap.ExecutionUnit, bootstrap.BeaconUnit, bootstrap.AgentUnit} {
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

// TestNoKeys: a standby runs no validator client and holds no keys.
func TestNoKeys(t *testing.T) {
	forbidden := []*regexp.Regexp{
		regexp.MustCompile(`lighthouse\S*\s+(\\\s+)?(vc|validator_client|validator-client|account_manager|am)\b`),
		regexp.MustCompile(`(?i)validator_client|keystore|--validators-dir|--secrets-dir|slashing[_-]protection|voting-keystore`),
		regexp.MustCompile(`(?i)--suggested-fee-recipient|--enable-doppelganger|web3signer`),
	}
	for _, c := range combos() {
		t.Run(c.name(), func(t *testing.T) {
			out := string(render(t, c))
			for _, re := range forbidden {
				if m := re.FindString(out); m != "" {
					t.Errorf("found %q", m)
				}
			}
			// priv_validator_key.json may only appear where beacond init makes
			// a fresh one on the VM: never written from the bootstrap, never
			// downloaded, never copied from anywhere but a fresh init.
			for _, line := range strings.Split(out, "\n") {
				if !strings.Contains(line, "priv_validator") {
					continue
				}
				trim := strings.TrimSpace(line)
				if strings.HasPrefix(trim, "#") {
					continue
				}
				if !strings.HasPrefix(trim, `install -m 0600 "$D/keygen/config/priv_validator_key.json"`) {
					t.Errorf("priv_validator_key handled outside the fresh-key path: %q", trim)
				}
			}
			if c.chain == "berachain" {
				s := script(t, []byte(out))
				for _, want := range []string{
					"init failoverd-standby --chain-id",
					"bcd_init beacond.new", "bcd_init keygen",
					"THROWAWAY",
					"never copied here",
					`install -m 0600 "$D/keygen/config/priv_validator_key.json"`,
				} {
					if !strings.Contains(s, want) {
						t.Errorf("beacond key handling: no %q", want)
					}
				}
			}
			// One beacon node and one execution client, nothing else with a
			// signer: three container units, and the clean-stop service whose
			// three commands stop the two clients, sync and say so.
			if n := strings.Count(out, "ExecStart=/usr/bin/docker run"); n != 3 {
				t.Errorf("%d container units, want 3 (execution, beacon node, agent)", n)
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
			if n := strings.Count(out, "ExecStart="); n != 6 {
				t.Errorf("%d ExecStart lines, want 6 (3 container units, 3 clean-stop commands)", n)
			}
		})
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
	if err != nil || st.Mode().Perm() != 0o600 {
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
		{"validator flag", func(in *bootstrap.Input) { in.Consensus.ExtraArgs = []string{"--validators-dir=/x"} }, "no validator and holds no keys"},
		{"keystore flag", func(in *bootstrap.Input) { in.Execution.ExtraArgs = []string{"--keystore", "/k"} }, "no validator and holds no keys"},
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
