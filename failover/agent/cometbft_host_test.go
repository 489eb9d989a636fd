package agent_test

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverd/failoverd/failover"
	"github.com/failoverd/failoverd/failover/agent"
	"github.com/failoverd/failoverd/failover/bootstrap"
	"github.com/failoverd/failoverd/failover/privval"
)

// The fake host in cometbft_keys_test.go follows the protocol as the agent
// reads it; this test runs the agent against the host side the bootstrap
// really installs (its failoverd-cometbft-key script and beacond's gate),
// moved into a scratch root, with stand-ins for systemctl and docker.

var hostPutRE = regexp.MustCompile(`(?ms)^put (\S+) (0[0-7]{3}) <<'FAILOVERD_EOF'\n(.*?)^FAILOVERD_EOF\n`)

// hostScripts are the key script and the gate a Berachain standby's
// bootstrap installs (GCP's format: a script with its files inline).
func hostScripts(t *testing.T) (key, gate string) {
	t.Helper()
	out, err := bootstrap.RenderFor(bootstrap.Input{Validator: "bera-bepolia-1", Chain: "berachain", Network: "bepolia",
		Agent:     bootstrap.PlaceholderAgent("ghcr.io/failoverd/failoverd:test", agent.DefaultPort),
		Execution: bootstrap.Client{Name: "bera-reth", Version: "v1.3.0"}, Consensus: bootstrap.Client{Name: "beacond", Version: "v1.3.4"}}, "gcp")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range hostPutRE.FindAllStringSubmatch(string(out), -1) {
		switch m[1] {
		case bootstrap.CometBFTKeyScript:
			key = m[3]
		case bootstrap.GatePath:
			gate = m[3]
		}
	}
	if key == "" || gate == "" {
		t.Fatalf("the bootstrap installs no %s or %s", bootstrap.CometBFTKeyScript, bootstrap.GatePath)
	}
	return key, gate
}

// moveScript writes body to dir/name with its path variables pointed into
// the scratch root; each must be set exactly once, on its own line.
func moveScript(t *testing.T, dir, name, body string, moves map[string]string) string {
	t.Helper()
	for from, to := range moves {
		if n := strings.Count(body, "\n"+from+"\n"); n != 1 {
			t.Fatalf("%s: the line %q appears %d times, want once", name, from, n)
		}
		body = strings.Replace(body, "\n"+from+"\n", "\n"+to+"\n", 1)
	}
	path := filepath.Join(dir, name)
	if err := os.WriteFile(path, []byte(body), 0o755); err != nil {
		t.Fatal(err)
	}
	return path
}

func needHostTools(t *testing.T) {
	t.Helper()
	for _, tool := range []string{"bash", "install", "sed", "grep", "chown", "mv", "tr"} {
		if _, err := exec.LookPath(tool); err != nil {
			if os.Getenv("FAILOVERD_E2E_REQUIRED") == "1" {
				t.Fatalf("%s not found: the host's key script cannot run", tool)
			}
			t.Skipf("%s not found: the host's key script cannot run", tool)
		}
	}
	// The script hands its answers to the agent's uid and group, the same
	// number on a standby; here that is the test's own.
	if os.Getuid() != os.Getgid() {
		t.Skipf("uid %d and gid %d differ: the key script's chown uid:uid would fail here", os.Getuid(), os.Getgid())
	}
}

func TestCometBFTWithTheHostScript(t *testing.T) {
	needHostTools(t)
	f := newBeraFixtureHost(t, false)
	root := t.TempDir()
	chain := filepath.Join(root, "chain")
	home := filepath.Join(chain, "beacond")
	keyBody, gateBody := hostScripts(t)
	script := moveScript(t, root, "cometbft-key", keyBody, map[string]string{
		"control=" + bootstrap.ControlDir:               "control=" + f.controlDir,
		"stage=" + bootstrap.CometBFTStageDir:           "stage=" + f.keyDir,
		"chain=" + bootstrap.DataDir:                    "chain=" + chain,
		"agent_uid=" + strconv.Itoa(bootstrap.AgentUID): "agent_uid=" + strconv.Itoa(os.Getuid()),
	})
	gate := moveScript(t, root, "gate", gateBody, map[string]string{
		"control=" + bootstrap.ControlDir:        "control=" + f.controlDir,
		"home=" + bootstrap.DataDir + "/beacond": "home=" + home,
	})
	// beacond as the VM's bootstrap leaves it: a throwaway key, a fresh
	// signing state, CometBFT's default key paths, block building off.
	const throwaway = `{"address":"AAAA","pub_key":{"type":"cometbft/PubKeyBls12_381","value":"dGhyb3dhd2F5"},"priv_key":{"type":"cometbft/PrivKeyBls12_381","value":"dGhyb3dhd2F5"}}`
	for path, body := range map[string]string{
		home + "/config/priv_validator_key.json": throwaway,
		home + "/config/config.toml":             "priv_validator_key_file = \"config/priv_validator_key.json\"\npriv_validator_state_file = \"data/priv_validator_state.json\"\n\n[consensus]\ndouble_sign_check_height = 10\n",
		home + "/config/app.toml":                "[beacon-kit.payload-builder]\nenabled = false\nsuggested-fee-recipient = \"0x0000000000000000000000000000000000000000\"\n",
		home + "/data/priv_validator_state.json": `{"height":"0","round":0,"step":0}`,
	} {
		if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	fresh := strings.ReplaceAll(throwaway, "dGhyb3dhd2F5", "ZnJlc2g=")
	// systemctl records what it is asked; docker stands in for `beacond
	// init`, which writes a new key under its --home.
	bin := filepath.Join(root, "bin")
	calls := filepath.Join(root, "systemctl.log")
	if err := os.Mkdir(bin, 0o755); err != nil {
		t.Fatal(err)
	}
	stubs := map[string]string{
		"systemctl": "#!/bin/bash\necho \"$*\" >>" + calls + "\n",
		"docker": "#!/bin/bash\nhost='' home=''\nwhile [ $# -gt 0 ]; do\n  case \"$1\" in\n    -v) host=${2%%:/data}; shift ;;\n    --home) home=${2#/data/}; shift ;;\n  esac\n  shift\ndone\n" +
			"mkdir -p \"$host/$home/config\"\nprintf '%s' '" + fresh + "' >\"$host/$home/config/priv_validator_key.json\"\n",
	}
	for name, body := range stubs {
		if err := os.WriteFile(filepath.Join(bin, name), []byte(body), 0o755); err != nil {
			t.Fatal(err)
		}
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))

	// The path unit: whenever a request file exists, run the script once.
	var (
		mu  sync.Mutex
		out strings.Builder
	)
	stop, done := make(chan struct{}), make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(5 * time.Millisecond):
			}
			if !exists(filepath.Join(f.keyDir, agent.CometBFTInstallRequested)) && !exists(filepath.Join(f.keyDir, agent.CometBFTRemoveRequested)) {
				continue
			}
			b, _ := exec.Command("bash", script).CombinedOutput()
			mu.Lock()
			out.Write(b)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		close(stop)
		<-done
		mu.Lock()
		t.Logf("the key script said:\n%s", out.String())
		mu.Unlock()
	})
	gateSays := func() (bool, string) {
		b, err := exec.Command("bash", gate).CombinedOutput()
		return err == nil, strings.TrimSpace(string(b))
	}
	if open, said := gateSays(); !open || !strings.Contains(said, "throwaway") {
		t.Fatalf("gate before the install: open %v, %q", open, said)
	}

	reply, err := agent.ImportKeys(context.Background(), f.endpoint(), f.request(1, ""))
	if err != nil || reply.Phase != failover.SignerImported {
		t.Fatalf("install through the host script: %+v %v", reply, err)
	}
	key, err := os.ReadFile(home + "/config/priv_validator_key.json")
	if err != nil || string(key) != string(f.key.File()) {
		t.Fatalf("beacond's key is not the validator's: %s %v", key, err)
	}
	stateBytes, err := os.ReadFile(home + "/data/priv_validator_state.json")
	if err != nil {
		t.Fatal(err)
	}
	st, err := privval.ParseState(stateBytes)
	if err != nil || st.Height != beraHead+1 || st.Round != privval.MaxRound || st.Step != privval.StepPrecommit {
		t.Fatalf("beacond's signing state %v (%v), want nothing at or below %d signable", st, err, beraHead+1)
	}
	if marker, _ := readTrim(home + "/validator-key"); marker != "1" {
		t.Fatalf("marker %q", marker)
	}
	if app, _ := os.ReadFile(home + "/config/app.toml"); !strings.Contains(string(app), "enabled = true") {
		t.Fatalf("block building not turned on:\n%s", app)
	}
	if open, said := gateSays(); !open || !strings.Contains(said, "generation 1") {
		t.Fatalf("gate after the install: open %v, %q", open, said)
	}
	f.wantNoStagedKey()

	// beacond signs on; the failback removes the key and hands its state back.
	signed := privval.State{Height: 1777, Round: 1, Step: privval.StepPrevote, Signature: []byte("sig"), SignBytes: []byte{0xEE}}
	if err := os.WriteFile(home+"/data/priv_validator_state.json", signed.File(), 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := f.client().FenceCometBFT(context.Background(), f.standby(), f.failbackGrant(2))
	if err != nil {
		t.Fatalf("fence through the host script: %v", err)
	}
	if got, err := privval.ParseState([]byte(rep.PrivValidatorState)); err != nil || privval.Compare(got, signed) != 0 {
		t.Fatalf("returned state %q (%v), want %v", rep.PrivValidatorState, err, signed)
	}
	if key, _ := os.ReadFile(home + "/config/priv_validator_key.json"); string(key) != fresh {
		t.Fatalf("beacond holds %s, not a new throwaway key", key)
	}
	if exists(home + "/validator-key") {
		t.Fatal("the marker survived the removal")
	}
	if open, said := gateSays(); !open || !strings.Contains(said, "throwaway") {
		t.Fatalf("gate after the fence: open %v, %q", open, said)
	}
	if _, open := f.gate(); open {
		t.Fatal("validator-start survived the fence")
	}
	// The script answers before it starts beacond again: wait for it.
	u := bootstrap.BeaconUnit
	want := strings.Join([]string{"stop", u, "start", u, "stop", u, "start", u}, " ")
	for deadline := time.Now().Add(5 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		b, _ := os.ReadFile(calls)
		got := strings.Join(strings.Fields(string(b)), " ")
		if got == want {
			break
		}
		if !strings.HasPrefix(want, got) || time.Now().After(deadline) {
			t.Fatalf("systemctl calls %q, want %q", got, want)
		}
	}
}
