package e2e

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io/fs"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/failoverd/failoverd/cloud/gcp/gcpfake"
	"github.com/failoverd/failoverd/failover/agent"
	"github.com/failoverd/failoverd/failover/agent/agenttest"
	"github.com/failoverd/failoverd/failover/cometbft/cometbfttest"
	"github.com/failoverd/failoverd/failover/privval"
)

// The throwaway key and states of failover/privval/testdata (see its
// README): never a validator's key, on no chain.
const (
	beraKeyFixture   = "../failover/privval/testdata/key-bls.json"
	beraStateFixture = "../failover/privval/testdata/state-signed.json"
	beraValidator    = "bera-bepolia-1"
	beraChainID      = "bepolia-beacon-80069"
)

// beraDaemon is newDaemon's failoverd with one Berachain validator on the
// GCP wire fake: newDaemon's fleet is Ethereum's.
func beraDaemon(t *testing.T, bin, gcpURL, pubkey string, agentPort int, signersLine string) *daemon {
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
  providers: [gcp]
  gcp:
    project: staking-e2e
    zones: [europe-west4-a]
    endpoint: %s
    insecureNoAuth: true
    apiSourceRanges: [127.0.0.1/32]
agent:
  port: %d
  image: ghcr.io/failoverd/failoverd:e2e
approval:
  allowedSigners:
    - %s
  importTimeout: 2m
  silentBlocks: 150
fleet:
  - name: %s
    chain: berachain
    network: bepolia
    site: basement
    pubkeys: [%s]
    clients:
      execution: {name: reth, version: v1.9.3}
      consensus: {name: beacond, version: v1.3.4}
`, port, filepath.Join(dir, "data"), gcpURL, agentPort, signersLine, beraValidator, pubkey)
	file := filepath.Join(dir, "failoverd.yaml")
	if err := os.WriteFile(file, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
	return &daemon{t: t, bin: bin, cfg: file, env: []string{"FAILOVERD_WEBHOOK_TOKEN=" + webhookToken, "FAILOVERD_API_TOKEN=" + apiToken},
		base: fmt.Sprintf("http://127.0.0.1:%d", port)}
}

// beraFire posts the sample firing alert relabelled for the Berachain
// validator, as Alertmanager would deliver the beacond alert.
func beraFire(t *testing.T, d *daemon) {
	t.Helper()
	body, err := os.ReadFile("../failover/alertmanager/testdata/validator-down-firing.json")
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Format(time.RFC3339)
	body = bytes.Replace(body, []byte(`"2026-11-21T08:59:34.387112228Z"`), []byte(`"`+now+`"`), 1)
	for _, r := range [][2]string{
		{`"eth-mainnet-1"`, `"` + beraValidator + `"`},
		{`eth-mainnet-1 is down`, beraValidator + ` is down`},
		{`validator=\"eth-mainnet-1\"`, `validator=\"` + beraValidator + `\"`},
		{`"chain": "ethereum"`, `"chain": "berachain"`},
		{`"network": "mainnet"`, `"network": "bepolia"`},
		{`"namespace": "eth"`, `"namespace": "bera"`},
		{`"pod": "lighthouse-0"`, `"pod": "beacond-0"`},
	} {
		if !bytes.Contains(body, []byte(r[0])) {
			t.Fatalf("the sample alert no longer has %s", r[0])
		}
		body = bytes.ReplaceAll(body, []byte(r[0]), []byte(r[1]))
	}
	req, _ := http.NewRequest(http.MethodPost, d.base+"/webhook/alertmanager", bytes.NewReader(body))
	req.Header.Set("Authorization", "Bearer "+webhookToken)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("webhook: %d", resp.StatusCode)
	}
}

// beraHost plays the standby VM's failoverd-cometbft-key path unit on
// temporary directories, as failover/agent's cometbft_keys_test.go fake
// host does (and failover/bootstrap's signer.sh.tmpl on a real VM): a
// removal request first (beacond's state handed back, the throwaway key
// put back), else an install only for the generation in validator-start;
// the request is consumed and answered in result.
type beraHost struct {
	t                    *testing.T
	stage, control, home string

	mu                 sync.Mutex
	installs, removals int
	installedState     []byte

	stop, done chan struct{}
}

const beraThrowaway = `{"throwaway":true}`

func startBeraHost(t *testing.T, stage, control string) *beraHost {
	t.Helper()
	h := &beraHost{t: t, stage: stage, control: control, home: t.TempDir(), stop: make(chan struct{}), done: make(chan struct{})}
	for _, d := range []string{"config", "data"} {
		if err := os.MkdirAll(filepath.Join(h.home, d), 0o700); err != nil {
			t.Fatal(err)
		}
	}
	// beacond starts with the key `beacond init` made on the VM.
	h.write(h.homeKey(), []byte(beraThrowaway))
	go h.loop()
	t.Cleanup(func() { close(h.stop); <-h.done })
	return h
}

func (h *beraHost) homeKey() string   { return filepath.Join(h.home, "config", agent.CometBFTKeyFile) }
func (h *beraHost) homeState() string { return filepath.Join(h.home, "data", agent.CometBFTStateFile) }
func (h *beraHost) marker() string    { return filepath.Join(h.home, "validator-key") }
func (h *beraHost) path(n string) string {
	return filepath.Join(h.stage, n)
}

func (h *beraHost) loop() {
	defer close(h.done)
	for {
		select {
		case <-h.stop:
			return
		case <-time.After(5 * time.Millisecond):
		}
		h.step()
	}
}

func (h *beraHost) write(path string, b []byte) {
	if err := os.WriteFile(path, b, 0o600); err != nil {
		h.t.Errorf("host: %v", err)
	}
}

func beraReadTrim(path string) (string, bool) {
	b, err := os.ReadFile(path)
	if err != nil {
		return "", false
	}
	return strings.TrimSpace(string(b)), true
}

func beraExists(path string) bool { _, err := os.Lstat(path); return err == nil }

func (h *beraHost) answer(s string) {
	h.write(h.path("result.new"), []byte(s+"\n"))
	if err := os.Rename(h.path("result.new"), h.path(agent.CometBFTResult)); err != nil {
		h.t.Errorf("host: %v", err)
	}
}

func (h *beraHost) forget() {
	for _, n := range []string{agent.CometBFTInstallRequested, agent.CometBFTRemoveRequested, agent.CometBFTKeyFile, agent.CometBFTStateFile} {
		os.Remove(h.path(n))
	}
}

func (h *beraHost) step() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if beraExists(h.path(agent.CometBFTRemoveRequested)) {
		gen, _ := beraReadTrim(h.path(agent.CometBFTRemoveRequested))
		if beraExists(h.marker()) {
			if b, err := os.ReadFile(h.homeState()); err == nil {
				h.write(h.path(agent.CometBFTReturnedState), b)
			}
			h.write(h.homeKey(), []byte(beraThrowaway))
			os.Remove(h.marker())
			h.removals++
		}
		h.forget()
		h.answer("removed " + gen)
		return
	}
	if !beraExists(h.path(agent.CometBFTInstallRequested)) {
		return
	}
	gen, _ := beraReadTrim(h.path(agent.CometBFTInstallRequested))
	start, _ := beraReadTrim(filepath.Join(h.control, agent.ValidatorStartFile))
	key, _ := os.ReadFile(h.path(agent.CometBFTKeyFile))
	state, _ := os.ReadFile(h.path(agent.CometBFTStateFile))
	refuse := func(why string) { h.forget(); h.answer("refused " + gen + ": " + why) }
	switch {
	case start == "":
		refuse("this standby does not own the signing right (no validator-start)")
		return
	case start != gen:
		refuse("this standby owns generation " + start + ", not " + gen)
		return
	case key == nil || state == nil:
		refuse("no staged key or state")
		return
	}
	h.write(h.marker(), []byte(gen+"\n"))
	h.write(h.homeState(), state)
	h.write(h.homeKey(), key)
	h.installs++
	h.installedState = state
	h.forget()
	h.answer("installed " + gen)
}

func (h *beraHost) counts() (installs, removals int, state []byte) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.installs, h.removals, h.installedState
}

// TestBerachainMigration moves a Berachain validator's CometBFT key with the
// real binaries: failoverd on the GCP wire fake, the real agent in its
// Berachain mode on the standby's credentials with a fake host key unit, a
// CometBFT-shaped node, and the CLI as the approver. beacond has no
// Keymanager, so home is fenced by the approver's power-off confirmation;
// the signing state is raised past the height where silence was proven,
// both ways. The private key never reaches failoverd.
func TestBerachainMigration(t *testing.T) {
	bin, _ := binaries(t)
	keyJSON, err := os.ReadFile(beraKeyFixture)
	if err != nil {
		t.Fatal(err)
	}
	key, err := privval.ParseKey(keyJSON)
	if err != nil {
		t.Fatal(err)
	}
	var kf struct {
		PubKey  struct{ Value []byte } `json:"pub_key"`
		PrivKey struct{ Value string } `json:"priv_key"`
	}
	if err := json.Unmarshal(keyJSON, &kf); err != nil || kf.PrivKey.Value == "" {
		t.Fatalf("key fixture: %v", err)
	}
	privB64 := kf.PrivKey.Value
	homeStateJSON, err := os.ReadFile(beraStateFixture)
	if err != nil {
		t.Fatal(err)
	}
	homeState, err := privval.ParseState(homeStateJSON)
	if err != nil {
		t.Fatal(err)
	}

	alice := newApprover(t, "alice@example.org")
	fake := gcpfake.New()
	defer fake.Close()
	fake.SetExternalIP("127.0.0.1")
	agentPort := freePort(t)
	d := beraDaemon(t, bin, fake.URL(), key.Pubkey, agentPort, alice.signersLine)
	d.start()
	beraFire(t, d)
	inc := d.waitState("syncing", "waiting for its agent")
	in := fake.Instance("europe-west4-a", inc.Standby.Name)
	script := ""
	for _, item := range in.GetMetadata().GetItems() {
		if item.GetKey() == "startup-script" {
			script = item.GetValue()
		}
	}
	ca, cert, tlsKey := credentialsFromBootstrap(t, script, t.TempDir())

	// The chain: bepolia, with the validator and two peers in the set. Every
	// validator signs every block unless told otherwise, so the
	// validator's silence is set height by height below.
	node := cometbfttest.New(t)
	node.SetChainID(beraChainID)
	addr := node.AddValidator(cometbfttest.Validator{PubKey: kf.PubKey.Value, Power: 250_000})
	for i, b := range []byte{1, 2} {
		node.AddValidator(cometbfttest.Validator{PubKey: bytes.Repeat([]byte{b}, 96), Power: int64(1_000_000 + i)})
	}
	// Home's last signature is 5 blocks before the head, well above the
	// signing state it has on disk (4242117): the state is behind the chain.
	h0 := homeState.Height + 1000
	node.SetAbsent(addr, h0-400, h0)
	node.SetVote(h0-5, addr, cometbfttest.FlagCommit)
	node.SetHead(h0, time.Now())

	beacon := agenttest.NewBeacon(t, agenttest.SyncedBeacon())
	exe := agenttest.NewExecution(t, agenttest.SyncedExecution())
	signers := filepath.Join(t.TempDir(), "allowed_signers")
	if err := os.WriteFile(signers, []byte(alice.signersLine+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	control, agentState := t.TempDir(), t.TempDir()
	keyDir := filepath.Join(control, "cometbft")
	if err := os.Mkdir(keyDir, 0o700); err != nil {
		t.Fatal(err)
	}
	host := startBeraHost(t, keyDir, control)
	agentProc := start(t, "agent", nil, bin, "agent", "--listen", fmt.Sprintf("127.0.0.1:%d", agentPort),
		"--tls-cert", cert, "--tls-key", tlsKey, "--client-ca", ca,
		"--execution-url", exe.URL, "--beacon-url", beacon.URL, "--data-path", t.TempDir(),
		"--chain", "berachain", "--cometbft-url", node.URL, "--cometbft-dir", keyDir, "--cometbft-chain-id", beraChainID,
		"--allowed-signers", signers, "--approval-threshold", "1", "--state-dir", agentState,
		"--control-dir", control, "--silent-blocks", "150", "--cometbft-host-timeout", "20s")
	inc = d.waitState("ready", "in sync")

	// The approver's machine: the key and home's last signing state.
	keysDir := t.TempDir()
	for name, b := range map[string][]byte{"priv_validator_key.json": keyJSON, "priv_validator_state.json": homeStateJSON} {
		if err := os.WriteFile(filepath.Join(keysDir, name), b, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	outDir := t.TempDir()
	move := []string{"--signing-key", alice.keyFile, "--approver", alice.principal, "--keystores", keysDir,
		"--out-dir", outDir, "--wait", "30s"}
	nothingInstalled := func(when string) {
		t.Helper()
		if n, _, _ := host.counts(); n != 0 {
			t.Fatalf("%s: the host installed a key", when)
		}
		if b, _ := os.ReadFile(host.homeKey()); string(b) != beraThrowaway {
			t.Fatalf("%s: beacond's key on the standby changed: %q", when, b)
		}
		if _, err := os.Stat(filepath.Join(control, agent.ValidatorStartFile)); !os.IsNotExist(err) {
			t.Fatalf("%s: beacond's gate on the standby is open: %v", when, err)
		}
		if out, _ := cli(t, bin, d.base, "gate", "--validator", beraValidator, "--as", "home"); !strings.Contains(out, "gate open") {
			t.Fatalf("%s: home lost the signing right", when)
		}
	}

	// Refused: the validator signed 5 blocks ago, whoever says home is off.
	out, err := cli(t, bin, d.base, append([]string{"approve-migration", inc.ID, "--confirm-home-powered-off"}, move...)...)
	if err == nil || !strings.Contains(out, fmt.Sprintf("signed block %d", h0-5)) {
		t.Fatalf("approval while the validator signed recently: %v", err)
	}
	nothingInstalled("after a refusal for a recent signature")

	// The chain goes on 200 blocks without its signature: silent.
	h1 := h0 + 200
	node.SetAbsent(addr, h0-5, h1)
	node.SetHead(h1, time.Now())

	// Refused: this failoverd has no Kubernetes access to scale home down.
	out, err = cli(t, bin, d.base, append([]string{"approve-migration", inc.ID, "--fence", "scale-to-zero"}, move...)...)
	if err == nil || !strings.Contains(out, "cannot scale the home workload") {
		t.Fatalf("approval with scale-to-zero and no Kubernetes fencing: %v", err)
	}
	nothingInstalled("after a refusal for scale-to-zero")

	// The migration: home confirmed powered off, the key to the standby.
	node.SetHead(h1, time.Now())
	out, err = cli(t, bin, d.base, append([]string{"approve-migration", inc.ID, "--confirm-home-powered-off"}, move...)...)
	if err != nil {
		t.Fatalf("approve-migration: %v", err)
	}
	if !strings.Contains(out, "is migrated") {
		t.Fatalf("approve-migration said:\n%s", out)
	}
	installs, _, installed := host.counts()
	if installs != 1 {
		t.Fatalf("the host installed %d times", installs)
	}
	// The agent writes the file anew (its own layout): the key inside must
	// be the validator's.
	var got struct {
		PubKey  struct{ Value []byte } `json:"pub_key"`
		PrivKey struct{ Value string } `json:"priv_key"`
	}
	if b, _ := os.ReadFile(host.homeKey()); json.Unmarshal(b, &got) != nil ||
		!bytes.Equal(got.PubKey.Value, kf.PubKey.Value) || got.PrivKey.Value != privB64 {
		t.Fatal("beacond's key on the standby is not the validator's")
	}
	st, err := privval.ParseState(installed)
	if err != nil {
		t.Fatalf("the installed signing state: %v", err)
	}
	if st.Height < h1+1 {
		t.Fatalf("the standby signs from %s, at or below the silent height %d", st, h1)
	}
	if g, _ := beraReadTrim(filepath.Join(control, agent.ValidatorStartFile)); g != "1" {
		t.Fatalf("beacond's gate on the standby: %q", g)
	}
	for _, n := range []string{agent.CometBFTKeyFile, agent.CometBFTStateFile, agent.CometBFTInstallRequested} {
		if beraExists(filepath.Join(keyDir, n)) {
			t.Fatalf("%s is still staged after the install", n)
		}
	}
	// One signer: the home gate is shut, the standby's open.
	if out, err := cli(t, bin, d.base, "gate", "--validator", beraValidator, "--as", "home"); err == nil || !strings.Contains(out, "gate closed") {
		t.Fatalf("home gate open after the migration: %v", err)
	}
	if _, err := cli(t, bin, d.base, "gate", "--validator", beraValidator, "--as", "standby", "--standby", inc.Standby.Name); err != nil {
		t.Fatalf("standby gate: %v", err)
	}
	beraCanary(t, d, privB64, agentProc, agentState)

	// The standby signs 50 blocks, then its beacond stops signing; its
	// state on disk is past the migration's.
	h2 := h1 + 300
	node.SetAbsent(addr, h1+51, h2)
	for h := h1 + 1; h <= h1+50; h++ {
		node.SetVote(h, addr, cometbfttest.FlagCommit)
	}
	node.SetHead(h2, time.Now())
	signed := fmt.Sprintf(`{"height":"%d","round":0,"step":3}`, h1+50)
	if err := os.WriteFile(host.homeState(), []byte(signed), 0o600); err != nil {
		t.Fatal(err)
	}

	// Failback: the host removes the key and hands the state back; home's
	// state is raised past the height where the standby was silent.
	out, err = cli(t, bin, d.base, "failback", inc.ID, "--signing-key", alice.keyFile, "--approver", alice.principal,
		"--out-dir", outDir, "--wait", "60s")
	if err != nil {
		t.Fatalf("failback: %v", err)
	}
	if _, removals, _ := host.counts(); removals != 1 {
		t.Fatalf("the host removed the key %d times", removals)
	}
	if b, _ := os.ReadFile(host.homeKey()); string(b) != beraThrowaway {
		t.Fatalf("beacond on the standby still has a key other than the throwaway one: %q", b)
	}
	if _, err := os.Stat(filepath.Join(control, agent.ValidatorStartFile)); !os.IsNotExist(err) {
		t.Fatalf("beacond's gate on the standby is still open: %v", err)
	}
	if b, err := os.ReadFile(filepath.Join(keyDir, agent.CometBFTReturnedState)); err != nil || !bytes.Equal(b, []byte(signed)) {
		t.Fatalf("the host returned %q (%v), want beacond's last state", b, err)
	}
	homeOut, err := os.ReadFile(filepath.Join(outDir, "priv_validator_state-"+inc.ID+".json"))
	if err != nil {
		t.Fatalf("the CLI wrote no signing state for home: %v", err)
	}
	back, err := privval.ParseState(homeOut)
	if err != nil {
		t.Fatalf("home's signing state: %v", err)
	}
	if back.Height < h2 {
		t.Fatalf("home's signing state %s is below the height %d where the standby was proven silent", back, h2)
	}
	if out, err := cli(t, bin, d.base, "gate", "--validator", beraValidator, "--as", "home"); err != nil || !strings.Contains(out, "generation 2") {
		t.Fatalf("home gate after failback: %v", err)
	}
	incs, err := incidents(d.base)
	if err != nil || len(incs) != 1 || incs[0].State != "closed" {
		t.Fatalf("after failback: %+v %v", incs, err)
	}
	if fake.Instance("europe-west4-a", inc.Standby.Name) != nil {
		t.Fatal("the standby was not deleted after the failback")
	}
	beraCanary(t, d, privB64, agentProc, agentState)
}

// beraCanary looks for the private key's base64 in everything failoverd
// wrote or shows, and in the agent's logs and signer state (the agent
// stages the key for the host, and nowhere else).
func beraCanary(t *testing.T, d *daemon, privB64 string, agentProc *proc, agentState string) {
	t.Helper()
	needle := []byte(privB64)
	check := func(where string, b []byte) {
		if bytes.Contains(b, needle) {
			t.Errorf("the private key is in %s", where)
		}
	}
	walk := func(dir string) int {
		n := 0
		err := filepath.WalkDir(dir, func(p string, de fs.DirEntry, err error) error {
			if err != nil || de.IsDir() {
				return err
			}
			b, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			n++
			check(p, b)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := walk(filepath.Join(filepath.Dir(d.cfg), "data")); n < 2 {
		t.Fatalf("only %d files in failoverd's data dir", n)
	}
	walk(agentState)
	check("failoverd's logs", []byte(d.proc.output()))
	check("the agent's logs", []byte(agentProc.output()))
	for _, u := range []struct{ path, token string }{{"/metrics", ""}, {"/v1/incidents", apiToken}} {
		code, body, err := httpGet(d.base+u.path, u.token)
		if err != nil || code != http.StatusOK {
			t.Fatalf("GET %s: %d %v", u.path, code, err)
		}
		check(u.path, body)
	}
}
